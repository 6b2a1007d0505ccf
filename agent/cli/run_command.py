"""``edgebench-agent run``: the typed options become a RunSpec; measure with a progress bar; print."""

from __future__ import annotations

import json
import sys
from typing import Any


def execute(options: dict[str, Any]) -> None:
    """``options``: exactly ``run``'s parameters. The spec and the agent config are checked (one line
    each) before anything loads."""
    from rich.console import Console
    from rich.markup import escape

    from edgebench.agent.benchmark import run_benchmark
    from edgebench.agent.cli.progress import RichProgress
    from edgebench.agent.cli.tables import (
        languages_table,
        models_params_table,
        results_table,
        stream_table,
    )
    from edgebench.agent.publish.config import load_config
    from edgebench.agent.runspec import from_options

    json_out = options.pop("json_out")
    config, broker, fleet = options.pop("config"), options.pop("broker"), options.pop("fleet")
    spec = from_options(options)
    agent = load_config(config, broker, fleet)  # host/fleet identify results even with --no-publish
    err = Console(stderr=True, log_path=False)  # a time, not progress.py:40, beside each status line
    with RichProgress(err) as progress:
        measured = run_benchmark(
            spec,
            agent,
            progress,
            warn=lambda m: err.print(f"[yellow]warning:[/] {escape(m)}", soft_wrap=True),
        )
    docs, publish_line = measured.docs, measured.publish_line
    if json_out:
        sys.stdout.write(json.dumps([d.model_dump(mode="json") for d in docs], indent=2) + "\n")
        if publish_line:
            err.print(publish_line, highlight=False, markup=False)  # wrapped at words
        return
    out = Console()
    out.print(results_table(docs, width=out.width))
    for extra in (languages_table(docs), stream_table(docs)):
        if extra is not None:
            out.print(extra)
    out.print(models_params_table(docs))
    warnings = sorted({w for d in docs for w in d.warnings})
    for w in warnings:
        out.print(f"[yellow]warning:[/] {w}")
    if docs:
        s = docs[0].sysinfo
        where = f"stored in {measured.store_path}" if measured.store_path else "not stored (--no-store)"
        emulated = f", EMULATED: {escape(s.emulated)}" if s.emulated else ""
        out.print(
            f"[dim]{s.hostname} ({s.device_class}, {s.cpu_model or s.arch}, {s.cpu_cores_logical} cores"
            f"{emulated}) · run {docs[0].run_id} · {where}[/]"
        )
    if publish_line:
        out.print(publish_line, highlight=False, markup=False)  # wrapped at words
