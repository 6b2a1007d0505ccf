"""``results list|show|export`` over the local SQLite store."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from edgebench.agent.errors import EdgebenchError


def list_runs(limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from edgebench.agent.results.store import ResultStore

    with ResultStore() as store:
        runs = store.runs(limit)
        path = store.path
    if not runs:
        print(f"no results yet in {path}: run `edgebench-agent run --model whisper-tiny.en`")
        return
    t = Table(title=f"runs in {path}", header_style="bold", title_justify="left")
    for col in ("run id", "started (UTC)", "results", "models", "runtimes", "scenarios", "host"):
        t.add_column(col)
    for r in runs:
        when = dt.datetime.fromtimestamp(r["created_ns"] / 1e9, tz=dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        t.add_row(
            r["run_id"][:8], when, str(r["results"]), r["models"], r["runtimes"], r["scenarios"], r["host"]
        )
    Console().print(t)


def show_run(run_id: str, json_out: bool) -> None:
    from rich.console import Console

    from edgebench.agent.cli.tables import languages_table, models_params_table, results_table
    from edgebench.agent.results.store import ResultStore, to_json

    with ResultStore() as store:
        docs = list(store.documents(store.resolve_run(run_id)))
    if json_out:
        print(to_json(docs))
        return
    console = Console()
    console.print(results_table(docs, title=f"run {docs[0].run_id}", width=console.width))
    languages = languages_table(docs)
    if languages is not None:
        console.print(languages)
    console.print(models_params_table(docs))


def export(fmt: str, output: str | None, run_id: str | None) -> None:
    from edgebench.agent.results.store import ResultStore, to_csv, to_json

    if fmt not in ("json", "csv"):
        raise EdgebenchError(f"--format must be json or csv (got '{fmt}')")
    with ResultStore() as store:
        docs = list(store.documents(store.resolve_run(run_id) if run_id else None))
    text = to_json(docs) if fmt == "json" else to_csv(docs)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text)
    except OSError as exc:
        raise EdgebenchError(f"cannot write {output}: {exc.strerror}") from None
    print(f"wrote {len(docs)} results to {output}", file=sys.stderr)
