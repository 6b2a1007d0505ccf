"""The daemon's persistent job queue (SQLite): jobs survive a restart, one runs at a time, and a job
found ``running`` at start-up is one the daemon died during (reported ``interrupted``)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.agent.daemon.jobs import Transition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    campaign TEXT NOT NULL,
    spec TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    run_id TEXT,
    results INTEGER,
    history TEXT NOT NULL
);
"""


@dataclass
class QueuedJob:
    job_id: str
    campaign: str
    spec: str | None
    """The admitted RunSpec as JSON (None for refused jobs)."""
    state: str
    reason: str | None = None
    run_id: str | None = None
    results: int | None = None
    history: list[Transition] = field(default_factory=list)


class JobQueue:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _row(self, row: tuple) -> QueuedJob:
        job_id, campaign, spec, state, reason, run_id, results, history = row
        return QueuedJob(
            job_id,
            campaign,
            spec,
            state,
            reason,
            run_id,
            results,
            [Transition.model_validate(t) for t in json.loads(history)],
        )

    _COLUMNS = "job_id, campaign, spec, state, reason, run_id, results, history"

    def get(self, job_id: str) -> QueuedJob | None:
        row = self.db.execute(f"SELECT {self._COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return self._row(row) if row else None

    def add(
        self, job_id: str, campaign: str, spec: str | None, state: str, reason: str | None = None
    ) -> QueuedJob:
        """A new job (``queued``, or ``refused`` with the reason); an id already known is left as it is
        (a redelivered message) and returned."""
        known = self.get(job_id)
        if known:
            return known
        history = json.dumps([{"state": state, "ts_ns": time.time_ns()}])
        self.db.execute(
            "INSERT INTO jobs (job_id, campaign, spec, state, reason, history) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, campaign, spec, state, reason, history),
        )
        job = self.get(job_id)
        assert job is not None
        return job

    def set_state(
        self,
        job_id: str,
        state: str,
        reason: str | None = None,
        run_id: str | None = None,
        results: int | None = None,
    ) -> QueuedJob:
        job = self.get(job_id)
        assert job is not None
        history = [t.model_dump() for t in job.history] + [{"state": state, "ts_ns": time.time_ns()}]
        self.db.execute(
            "UPDATE jobs SET state = ?, reason = ?, run_id = COALESCE(?, run_id), "
            "results = COALESCE(?, results), history = ? WHERE job_id = ?",
            (state, reason, run_id, results, json.dumps(history), job_id),
        )
        updated = self.get(job_id)
        assert updated is not None
        return updated

    def next_queued(self) -> QueuedJob | None:
        row = self.db.execute(
            f"SELECT {self._COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1"
        ).fetchone()
        return self._row(row) if row else None

    def in_state(self, state: str) -> list[QueuedJob]:
        rows = self.db.execute(f"SELECT {self._COLUMNS} FROM jobs WHERE state = ? ORDER BY seq", (state,))
        return [self._row(r) for r in rows]

    def open_jobs(self, campaign: str) -> list[QueuedJob]:
        """Queued or running jobs of a campaign (what a campaign-wide cancel stops)."""
        rows = self.db.execute(
            f"SELECT {self._COLUMNS} FROM jobs WHERE campaign = ? AND state IN ('queued', 'running')",
            (campaign,),
        )
        return [self._row(r) for r in rows]

    def latest(self, n: int) -> list[QueuedJob]:
        """The ``n`` most recently added jobs, oldest first."""
        rows = self.db.execute(f"SELECT {self._COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ?", (n,)).fetchall()
        return [self._row(r) for r in reversed(rows)]

    def queued_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0])
