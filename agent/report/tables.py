"""Rich tables for comparisons and reports.

Columns that would be the same in every row (one host, one model, …) move into the title so the
tables fit a terminal and an SVG; energy columns appear only when some result carries energy (most
hosts without a power sensor have none, and a column of dashes hides the interesting ones).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.markup import escape
from rich.table import Table

from edgebench.agent.report.compare import Comparison
from edgebench.agent.report.metrics import (
    SETUP_AXES,
    Metrics,
    axis_value,
    emulation_mark,
    fmt_axis,
    metrics,
    varying,
    workload_label,
)
from edgebench.agent.results.schema import ResultDocument

_SCENARIO_ORDER = ("load", "forward", "generate", "transcribe", "stream")


def fmt_num(x: float | None, fmt: str = ".1f", scale: float = 1.0) -> str:
    return "–" if x is None else format(x * scale, fmt)


def fmt_times(x: float | None, higher_is_better: bool = True) -> str:
    """'2.70×', green when better than the baseline by > 5 %, red when worse."""
    if x is None:
        return "–"
    better = x > 1.05 if higher_is_better else x < 0.95
    worse = x < 0.95 if higher_is_better else x > 1.05
    style = "green" if better else "red" if worse else ""
    text = f"{x:.2f}×"
    return f"[{style}]{text}[/]" if style else text


def fmt_delta_pct(x: float | None) -> str:
    if x is None:
        return "–"
    style = "red" if x > 0.005 else "green" if x < -0.005 else ""
    text = f"{x * 100:+.1f} pt"
    return f"[{style}]{text}[/]" if style else text


def fmt_mib(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:.0f}"


def memory_cell(m: Metrics) -> str:
    """'model share/peak' in MiB; the peak alone for documents older than schema 1.6."""
    if m.model_share_bytes is None:
        return fmt_mib(m.peak_rss_bytes)
    return f"{fmt_mib(m.model_share_bytes)}/{fmt_mib(m.peak_rss_bytes)}"


def fmt_pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def fmt_throughput(value: float | None, unit: str | None) -> str:
    return "–" if value is None else f"{value:.2f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def comparison_table(cmp: Comparison, title: str | None = None) -> Table:
    """Speedup table: one section per configuration, the baseline row first (1.00×)."""
    docs = [r.doc for r in cmp.rows]
    base_axis = cmp.baseline.axis
    shown = [a for a in varying(docs, (*SETUP_AXES, "dataset")) if a != base_axis]
    constant = [
        fmt_axis(v)
        for a in SETUP_AXES
        if a != base_axis and a not in shown and (v := axis_value(docs[0], a)) is not None
    ]
    has_wer = any(r.m.wer is not None for r in cmp.rows)
    has_energy = any(r.m.energy is not None for r in cmp.rows)
    t = Table(
        title=" · ".join([title or f"speedup vs {cmp.baseline}", *constant]),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        caption=(
            "speedup = baseline latency / latency (>1 faster) · thr × = throughput / baseline · "
            "MiB = the model's share (peak RSS − RSS before it loaded) / peak RSS · mem × = model's share "
            "/ baseline's"
            + (" · ΔWER = WER − baseline WER" if has_wer else "")
            + (" · energy × = energy per unit of work / baseline" if has_energy else "")
        ),
        caption_justify="left",
    )
    # Designed for 80 columns: the configuration (what every row of a section shares) is one wrapping
    # column, written once per section; the compared value and the figures never wrap; absolute
    # throughput is in --json (its ratio is here).
    sections = [_section_label(r.doc, shown) for r in cmp.rows]
    words = [len(w) for text in sections for w in text.split()]
    t.add_column("configuration", overflow="fold", min_width=max(words, default=8))
    t.add_column(base_axis, style="bold", no_wrap=True)
    for col in ("latency ms", "speedup", "thr ×", "MiB", "mem ×"):
        t.add_column(col, justify="right", no_wrap=True)
    if has_wer:
        t.add_column("WER", justify="right", no_wrap=True)
        t.add_column("ΔWER", justify="right", no_wrap=True)
    if has_energy:
        t.add_column("energy", justify="right", no_wrap=True)
        t.add_column("energy ×", justify="right", no_wrap=True)
    previous: dict[str, object] | None = None
    for r, section in zip(cmp.rows, sections, strict=True):
        first = previous is None or r.key != previous
        if previous is not None and first:
            t.add_section()
        previous = r.key
        cells = [section if first else "", r.value]
        cells += [
            fmt_num(r.m.latency_s, ".1f", 1e3),
            "baseline" if r.is_baseline else fmt_times(r.speedup),
            "" if r.is_baseline else fmt_times(r.throughput_ratio),
            memory_cell(r.m),
            "" if r.is_baseline else fmt_times(r.memory_ratio, higher_is_better=False),
        ]
        if has_wer:
            cells += [fmt_pct(r.m.wer), "" if r.is_baseline else fmt_delta_pct(r.wer_delta)]
        if has_energy:
            energy = "–" if r.m.energy is None else f"{r.m.energy:.3g} {r.m.energy_unit}"
            cells += [energy, "" if r.is_baseline else fmt_times(r.energy_ratio, higher_is_better=False)]
        t.add_row(*cells, style="dim" if r.is_baseline else None)
    return t


def _section_label(doc: ResultDocument, shown: Sequence[str]) -> str:
    """What the rows of one comparison section share: the varying axes that have a value, the
    scenario and the workload (``fp32 builtin transcribe b1 ctc 1``)."""
    values = [fmt_axis(v) for a in shown if (v := axis_value(doc, a)) is not None]
    return " ".join([*values, doc.config.scenario, workload_label(doc)]).strip()


def summary_table(cmp: Comparison) -> Table:
    """Per compared value: geometric-mean speedup over all matched configurations (seed 004's summary)."""
    t = Table(
        title=f"summary vs {cmp.baseline}",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for col, just in [
        (cmp.baseline.axis, "left"),
        ("configurations", "right"),
        ("speedup (geomean)", "right"),
        ("min", "right"),
        ("max", "right"),
    ]:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in cmp.summary():
        t.add_row(
            s.value,
            str(s.configurations),
            fmt_times(s.geomean_speedup),
            fmt_times(s.min_speedup),
            fmt_times(s.max_speedup),
        )
    return t


def _doc_order(doc: ResultDocument) -> tuple:
    c = doc.config
    scen = _SCENARIO_ORDER.index(c.scenario) if c.scenario in _SCENARIO_ORDER else 99
    return (
        doc.host,
        c.model,
        c.runtime,
        c.precision,
        c.device,
        scen,
        c.batch_size,
        c.audio_seconds or 0.0,
        c.new_tokens or 0,
        c.ctc_weight if c.ctc_weight is not None else -1.0,
        doc.created_ns,
    )


def report_table(docs: Sequence[ResultDocument], title: str = "edgebench results") -> Table:
    """Every selected result, one row each (the report's table; energy columns when measured)."""
    docs = sorted(docs, key=_doc_order)
    shown = varying(docs, SETUP_AXES)
    constant = (
        [fmt_axis(v) for a in SETUP_AXES if a not in shown and (v := axis_value(docs[0], a)) is not None]
        if docs
        else []
    )
    all_m = [metrics(d) for d in docs]
    has_wer = any(m.wer is not None for m in all_m)
    has_rtf = any(m.rtf is not None for m in all_m)
    has_energy = any(m.energy is not None or m.average_w is not None for m in all_m)
    mark = emulation_mark(docs)
    t = Table(
        title=" · ".join([*([f"[bold red]{escape(mark)}[/]"] if mark else []), title, *constant]),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        caption="latency: mean ± 95% CI in ms (load: load time) · MiB: the model's share (peak RSS − RSS "
        "before it loaded) / peak RSS",
        caption_justify="left",
    )
    for a in shown:
        t.add_column(a, overflow="fold")
    t.add_column("scenario")
    t.add_column("config", overflow="fold")
    for col in ("latency ms", "throughput", "MiB"):
        t.add_column(col, justify="right")
    if has_rtf:
        t.add_column("RTF", justify="right")
    if has_wer:
        t.add_column("WER/CER", justify="right")
    if has_energy:
        t.add_column("energy", justify="right")
        t.add_column("avg W", justify="right")
    for d, m in zip(docs, all_m, strict=True):
        lat = fmt_num(m.latency_s, ".1f", 1e3)
        if m.latency_ci_half_s is not None:
            lat += f" ± {m.latency_ci_half_s * 1e3:.1f}"
        cells = [fmt_axis(axis_value(d, a)) for a in shown]
        cells += [d.config.scenario, workload_label(d), lat]
        cells += [fmt_throughput(m.throughput, m.throughput_unit), memory_cell(m)]
        if has_rtf:
            cells.append(fmt_num(m.rtf, ".3f"))
        if has_wer:
            cells.append("–" if m.wer is None else f"{fmt_pct(m.wer)}/{fmt_pct(m.cer)}")
        if has_energy:
            cells.append("–" if m.energy is None else f"{m.energy:.3g} {m.energy_unit}")
            cells.append(fmt_num(m.average_w, ".2f"))
        t.add_row(*cells)
    return t
