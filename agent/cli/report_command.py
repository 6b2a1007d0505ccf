"""``edgebench-agent report``: a folder of plots and tables with an index.html."""

from __future__ import annotations

from pathlib import Path

from edgebench.agent.report.sources import Selection


def report_command(sel: Selection, out: str, baseline: str | None, title: str) -> None:
    """Select results, build the report folder, say what was drawn and what was skipped (and why)."""
    from rich.console import Console

    from edgebench.agent.report.build import build_report
    from edgebench.agent.report.plots import figure_class
    from edgebench.agent.report.sources import select

    figure_class()  # the missing-extra hint comes before any other work
    loaded = select(sel)
    result = build_report(loaded, Path(out), baseline, title)
    console = Console(highlight=False)
    for plot in result.plots:
        if plot.skipped:
            console.print(f"[dim]skipped {plot.title}: {plot.skipped}[/]")
        else:
            console.print(f"drew {plot.title}: {plot.name}.png, {plot.name}.svg")
    console.print(
        f"report of {len(loaded.docs)} results ({len(result.files)} files): {result.index}", soft_wrap=True
    )
