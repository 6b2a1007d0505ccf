"""``edgebench-agent compare``: speedup tables against a baseline, across runs and hosts."""

from __future__ import annotations

import json
from collections.abc import Sequence

from edgebench.agent.report.sources import Selection


def split_items(values: Sequence[str] | None) -> list[str]:
    """Repeatable options that also accept comma lists: ``--model a,b --model c`` -> [a, b, c]."""
    return [item.strip() for v in values or () for item in v.split(",") if item.strip()]


def selection(
    runs: Sequence[str] | None,
    last: int | None,
    files: Sequence[str] | None,
    models: Sequence[str] | None,
    scenarios: Sequence[str] | None,
) -> Selection:
    return Selection(
        runs=split_items(runs),
        last=last,
        files=list(files or ()),
        models=split_items(models),
        scenarios=split_items(scenarios),
    )


def compare_command(sel: Selection, baseline: str | None, json_out: bool) -> None:
    """Load, compare, print (a rich table + summary, or JSON)."""
    from edgebench.agent.report.compare import auto_baseline, compare, parse_baseline
    from edgebench.agent.report.sources import select

    loaded = select(sel)
    base = parse_baseline(baseline) if baseline else auto_baseline(loaded.docs)
    result = compare(loaded.docs, base)
    if json_out:
        out = result.to_json()
        out["sources"] = {
            "runs": loaded.runs,
            "files": loaded.files,
            "hosts": loaded.hosts,
            "duplicates_dropped": loaded.duplicates,
        }
        print(json.dumps(out, indent=2))
        return
    from rich.console import Console

    from edgebench.agent.report.metrics import emulated_hosts_note
    from edgebench.agent.report.tables import comparison_table, summary_table

    console = Console()
    emulated = emulated_hosts_note(loaded.docs)
    if emulated:
        console.print(emulated, style="bold red", highlight=False, markup=False)
    if not baseline:
        console.print(f"baseline: {base} (chosen automatically; set it with --baseline AXIS=VALUE)")
    console.print(comparison_table(result))
    console.print(summary_table(result))
    notes = []
    if result.unmatched:
        notes.append(f"{len(result.unmatched)} results have no {base} counterpart and are not shown")
    if result.superseded:
        notes.append(f"{result.superseded} older measurements of the same configuration superseded")
    notes.append(
        f"{len(loaded.docs)} results from {len(loaded.runs)} runs on {len(loaded.hosts)} hosts "
        f"({', '.join(loaded.hosts)})"
    )
    console.print(" · ".join(notes), style="dim", highlight=False)
