"""Which result documents a comparison or report is about: local runs plus other hosts' exported JSON.

Other hosts hand their results over as ``edgebench-agent results export --format json`` files (a JSON
array of result documents; ``run --json`` prints the same). They are validated with the same schema
module as everything else, so a file from an incompatible edgebench fails here with the file's name
and the first problem, not later with a KeyError.

Selection rule (documented in docs/report.md): ``--run`` / ``--last`` pick local runs; with neither,
the whole local store is used unless ``--from`` files are given (then only the files are, so a report
of two exported hosts is not polluted by whatever this machine measured).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.results.schema import SUPPORTED_MAJOR, ResultDocument


@dataclass
class Selection:
    """What the user asked for on the command line."""

    runs: Sequence[str] = ()
    """Run ids, unique prefixes or 'last'."""
    last: int | None = None
    """The N most recent local runs."""
    files: Sequence[str] = ()
    models: Sequence[str] = ()
    scenarios: Sequence[str] = ()


@dataclass
class Loaded:
    """The selected documents and where they came from (for titles and the report's index page)."""

    docs: list[ResultDocument]
    runs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    store: str | None = None
    duplicates: int = 0
    """Documents seen twice (same host, run and seq — e.g. a local run that is also in a --from file)."""

    @property
    def hosts(self) -> list[str]:
        return sorted({d.host for d in self.docs})


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(document)"
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{more}"


def load_json_file(path: str | Path) -> list[ResultDocument]:
    """Read an exported results file: a JSON array of result documents (a single document is accepted)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgebenchError(f"--from {p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgebenchError(f"--from {p}: cannot read it ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgebenchError(
            f"--from {p}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "expected the output of `edgebench-agent results export --format json`"
        ) from None
    items = [data] if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise EdgebenchError(
            f"--from {p}: expected a JSON array of result documents "
            f"(`edgebench-agent results export --format json`), got a JSON {type(data).__name__}"
        )
    docs: list[ResultDocument] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            version = str(item.get("schema_version", ""))
            major = version.split(".")[0]
            if version and major != str(SUPPORTED_MAJOR):
                raise EdgebenchError(
                    f"--from {p}: result #{i} has schema version {version}, this edgebench reads "
                    f"{SUPPORTED_MAJOR}.x: export it with a matching edgebench version"
                )
        try:
            docs.append(ResultDocument.model_validate(item))
        except ValidationError as exc:
            raise EdgebenchError(
                f"--from {p}: result #{i} is not an edgebench result document: {_first_error(exc)}"
            ) from None
    return docs


def _from_store(sel: Selection, loaded: Loaded) -> list[ResultDocument]:
    from edgebench.agent.results.store import ResultStore

    with ResultStore() as store:
        loaded.store = str(store.path)
        run_ids: list[str] = [store.resolve_run(r) for r in sel.runs]
        if sel.last is not None:
            if sel.last < 1:
                raise EdgebenchError(f"--last must be at least 1 (got {sel.last})")
            run_ids += [r["run_id"] for r in store.runs(sel.last)]
        if not sel.runs and sel.last is None:
            docs = list(store.documents())
        else:
            run_ids = list(dict.fromkeys(run_ids))
            docs = [d for r in run_ids for d in store.documents(r)]
        if not docs:
            raise EdgebenchError(
                f"the results store {store.path} is empty: run `edgebench-agent run` first "
                "(or pass other hosts' results with --from FILE)"
            )
        return docs


def select(sel: Selection) -> Loaded:
    """Load, de-duplicate and filter the documents a command works on; one-line errors for bad input."""
    loaded = Loaded(docs=[])
    docs: list[ResultDocument] = []
    for f in sel.files:
        docs += load_json_file(f)
        loaded.files.append(str(f))
    if sel.runs or sel.last is not None or not sel.files:
        docs += _from_store(sel, loaded)
    seen: set[tuple[str, str, int]] = set()
    unique: list[ResultDocument] = []
    for d in docs:
        key = (d.host, d.run_id, d.seq)
        if key in seen:
            loaded.duplicates += 1
            continue
        seen.add(key)
        unique.append(d)
    if sel.models:
        known = sorted({d.config.model for d in unique})
        unique = [d for d in unique if d.config.model in sel.models]
        if not unique:
            raise EdgebenchError(
                f"--model {', '.join(sel.models)}: no selected result is for that model "
                f"(models present: {', '.join(known)})"
            )
    if sel.scenarios:
        known = sorted({d.config.scenario for d in unique})
        unique = [d for d in unique if d.config.scenario in sel.scenarios]
        if not unique:
            raise EdgebenchError(
                f"--scenario {', '.join(sel.scenarios)}: no selected result has that scenario "
                f"(scenarios present: {', '.join(known)})"
            )
    if not unique:
        raise EdgebenchError("no results selected: the --from files contain no result documents")
    loaded.docs = sorted(unique, key=lambda d: (d.created_ns, d.host, d.seq))
    loaded.runs = list(dict.fromkeys(d.run_id for d in loaded.docs))
    return loaded
