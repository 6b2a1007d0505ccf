"""Local SQLite store: the embedded default, so results survive without any server.

The full result document is stored as JSON (the contract); a few columns are extracted for listing and
filtering. WAL mode lets a publisher read while a run writes.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.paths import data_dir
from edgebench.agent.results.schema import ResultDocument

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    host TEXT NOT NULL,
    model TEXT NOT NULL,
    runtime TEXT NOT NULL,
    precision TEXT NOT NULL,
    device TEXT NOT NULL,
    scenario TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS results_created ON results (created_ns);
"""


def default_path() -> Path:
    return data_dir() / "results.sqlite"


class ResultStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise EdgebenchError(f"cannot open the results store {self.path}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, doc: ResultDocument) -> None:
        """Insert or replace (same run_id/seq overwrites: saving twice never duplicates)."""
        c = doc.config
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    doc.run_id,
                    doc.seq,
                    doc.created_ns,
                    doc.host,
                    c.model,
                    c.runtime,
                    c.precision,
                    c.device,
                    c.scenario,
                    doc.model_dump_json(),
                ),
            )

    def runs(self, limit: int = 20) -> list[dict]:
        """Most recent runs first, with their size and what they measured."""
        rows = self._db.execute(
            "SELECT run_id, MIN(created_ns), COUNT(*), GROUP_CONCAT(DISTINCT model), "
            "GROUP_CONCAT(DISTINCT runtime), GROUP_CONCAT(DISTINCT scenario), MIN(host) "
            "FROM results GROUP BY run_id ORDER BY MIN(created_ns) DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("run_id", "created_ns", "results", "models", "runtimes", "scenarios", "host")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def resolve_run(self, prefix: str) -> str:
        """A full run id from a unique prefix (as typed by a user); 'last' means the newest run."""
        if prefix == "last":
            row = self._db.execute("SELECT run_id FROM results ORDER BY created_ns DESC LIMIT 1").fetchone()
            if not row:
                raise EdgebenchError(
                    f"the results store {self.path} is empty: run `edgebench-agent run` first"
                )
            return row[0]
        rows = self._db.execute(
            "SELECT DISTINCT run_id FROM results WHERE run_id LIKE ?", (prefix + "%",)
        ).fetchall()
        if not rows:
            raise EdgebenchError(
                f"no run with id '{prefix}' in {self.path} (see `edgebench-agent results list`)"
            )
        if len(rows) > 1:
            raise EdgebenchError(
                f"run id prefix '{prefix}' is ambiguous ({len(rows)} runs): type more characters"
            )
        return rows[0][0]

    def documents(self, run_id: str | None = None) -> Iterator[ResultDocument]:
        if run_id is None:
            cur = self._db.execute("SELECT doc FROM results ORDER BY created_ns, seq")
        else:
            cur = self._db.execute("SELECT doc FROM results WHERE run_id = ? ORDER BY seq", (run_id,))
        for (doc,) in cur:
            yield ResultDocument.model_validate_json(doc)


# --- export -------------------------------------------------------------------------------------------

_CSV_SKIP = ("latency_samples_s", "per_utterance", "sysinfo.libraries")


def flatten(doc: ResultDocument) -> dict[str, object]:
    """One flat row per document (dotted keys), leaving out per-iteration and per-utterance lists."""
    out: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if any(prefix.endswith(s) for s in _CSV_SKIP):
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, list):
            out[prefix] = "; ".join(map(str, value))
        else:
            out[prefix] = value

    walk("", doc.model_dump(mode="json"))
    return out


def to_json(docs: Iterable[ResultDocument]) -> str:
    return json.dumps([d.model_dump(mode="json") for d in docs], indent=2)


def to_csv(docs: Iterable[ResultDocument]) -> str:
    rows = [flatten(d) for d in docs]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
