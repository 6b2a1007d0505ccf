"""Put a report folder together: tables as SVG, figures as PNG + SVG, the data, and index.html.

matplotlib is checked first, before anything is written, so a missing extra never leaves a
half-written folder behind; a requested baseline is compared up front for the same reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.report.html import Entry, results_table_html, write_index
from edgebench.agent.report.plots import Plot, all_plots, figure_class
from edgebench.agent.report.sources import Loaded

_MAX_TABLE_WIDTH = 240


@dataclass
class ReportResult:
    index: Path
    files: list[Path] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)


def prepare_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise EdgebenchError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".edgebench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise EdgebenchError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def save_svg(renderables: list, path: Path, title: str) -> None:
    """Render rich objects off-screen and save them as SVG (rich's own exporter, as in seed 000)."""
    from rich.console import Console

    probe = Console(width=_MAX_TABLE_WIDTH, file=io.StringIO())
    width = max(min(probe.measure(r).maximum, _MAX_TABLE_WIDTH) for r in renderables)
    console = Console(record=True, width=max(width, 60), file=io.StringIO(), force_terminal=True)
    for r in renderables:
        console.print(r)
    console.save_svg(str(path), title=title)


def save_plot(plot: Plot, folder: Path, stem: str | None = None) -> list[Path]:
    """Save a drawn figure as SVG and PNG (``stem`` defaults to the plot's name) and release it."""
    paths = []
    for ext in ("svg", "png"):
        path = folder / f"{stem or plot.name}.{ext}"
        plot.figure.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    plot.figure = None  # let matplotlib free it: a report may have many figures
    return paths


def build_report(loaded: Loaded, out: Path, baseline: str | None, title: str) -> ReportResult:
    """Write the whole report for ``loaded`` into ``out`` and return what was written."""
    from edgebench.agent.report.compare import compare, parse_baseline
    from edgebench.agent.report.metrics import emulated_hosts_note
    from edgebench.agent.report.tables import comparison_table, report_table, summary_table
    from edgebench.agent.results.store import to_json

    figure_class()  # missing matplotlib -> MissingExtraError before anything is written
    comparison = compare(loaded.docs, parse_baseline(baseline)) if baseline else None
    prepare_folder(out)
    result = ReportResult(index=out / "index.html")
    tables: list[Entry] = []

    table_svg = out / "results_table.svg"
    save_svg([report_table(loaded.docs, title="results")], table_svg, title)
    result.files.append(table_svg)
    tables.append(Entry("Results", "every selected result, one row each (rich table)", [table_svg.name]))
    if comparison is not None:
        cmp_svg = out / "speedup_table.svg"
        save_svg([comparison_table(comparison), summary_table(comparison)], cmp_svg, f"{title}: speedup")
        result.files.append(cmp_svg)
        tables.append(
            Entry(f"Speedup vs {comparison.baseline}", "speedup = baseline latency / latency", [cmp_svg.name])
        )

    data = out / "results.json"
    data.write_text(to_json(loaded.docs), encoding="utf-8")
    result.files.append(data)

    figures: list[Entry] = []
    skipped: list[tuple[str, str]] = []
    for plot in all_plots(loaded.docs):
        result.plots.append(plot)
        if plot.figure is None:
            skipped.append((plot.title, plot.skipped or "no data"))
            continue
        paths = save_plot(plot, out)
        result.files += paths
        figures.append(Entry(plot.title, plot.caption, [p.name for p in paths]))

    meta = [
        f"{len(loaded.docs)} results from {len(loaded.runs)} runs on {len(loaded.hosts)} hosts: "
        + ", ".join(loaded.hosts),
        "models: " + ", ".join(sorted({d.config.model for d in loaded.docs})),
        "runs: " + ", ".join(r[:8] for r in loaded.runs),
    ]
    emulated = emulated_hosts_note(loaded.docs)
    if emulated:
        meta.insert(0, emulated)
    if loaded.files:
        meta.append("from files: " + ", ".join(loaded.files))
    if loaded.store:
        meta.append(f"local store: {loaded.store}")
    from edgebench.agent.report.headline import headline, result_rows

    rows, text_columns = result_rows(loaded.docs)
    write_index(
        out,
        title,
        meta,
        tables,
        figures,
        skipped,
        data.name,
        headline=headline(loaded.docs),
        results_html=results_table_html(rows, text_columns),
    )
    result.files.append(result.index)
    return result
