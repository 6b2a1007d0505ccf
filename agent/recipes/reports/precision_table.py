"""Seed 001's report: speed, memory and accuracy of one Whisper model across precisions (fp32 → fp16 →
int8) and runtimes, in one table (per host and device), a bar figure of the three, and WER against latency.

Speed is the mean end-to-end latency per utterance and the real-time factor of the transcribe scenario;
memory is the model's share next to the process's peak resident set size while transcribing (and the
model's size on disk); WER and CER come from jiwer over the whole speech set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rich.table import Table

from edgebench.agent.recipes.reports.common import RecipeReport, by_label, cell_name
from edgebench.agent.report.metrics import Metrics, memory_ratio, metrics, newest_by, ratio
from edgebench.agent.report.plots import Plot, figure_class, wer_vs_latency
from edgebench.agent.report.tables import fmt_delta_pct, fmt_mib, fmt_num, fmt_pct, fmt_times, memory_cell
from edgebench.agent.results.schema import ResultDocument


def build(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    recipe = report.recipe
    tr = [d for d in docs if d.config.scenario == "transcribe"]
    if not tr:
        report.not_drawn.append(("precision table", "no transcribe results"))
        return
    groups = sorted({(d.host, d.config.model, d.config.device, d.config.batch_size) for d in tr})
    hosts = {g[0] for g in groups}
    for host, model, device, batch in groups:
        ds = [
            d
            for d in tr
            if (d.host, d.config.model, d.config.device, d.config.batch_size) == (host, model, device, batch)
        ]
        newest = newest_by(ds, lambda d: d.config.label or "")
        labels = [x for x in by_label(ds, recipe) if x in newest]
        base = newest.get(recipe.baseline or "")
        bm = metrics(base) if base else None
        where = f"{model} on {device}, batch {batch}" + (f", {host}" if len(hosts) > 1 else "")
        table = Table(title=f"Speed, memory and accuracy — {where}", title_justify="left")
        for col in (
            "setup",
            "runtime",
            "precision",
            "ms / utterance",
            "RTF",
            f"speed vs {recipe.baseline}",
            "MiB model/peak",
            "memory vs base",
            "size on disk MiB",
            "WER",
            "CER",
            "Δ WER",
        ):
            table.add_column(col, justify="left" if col in ("setup", "runtime", "precision") else "right")
        for label in labels:
            d = newest[label]
            m = metrics(d)
            size = d.model.size_on_disk_bytes if d.model else None
            table.add_row(
                label,
                d.config.runtime,
                d.config.precision,
                fmt_num(m.latency_s, ".0f", 1e3),
                fmt_num(m.rtf, ".3f"),
                fmt_times(ratio(bm.latency_s, m.latency_s) if bm else None),
                memory_cell(m),
                fmt_times(memory_ratio(m, bm) if bm else None, higher_is_better=False),
                fmt_mib(size),
                fmt_pct(m.wer),
                fmt_pct(m.cer),
                fmt_delta_pct(None if bm is None or m.wer is None or bm.wer is None else m.wer - bm.wer),
            )
            if base is not None and d is not base and bm and m.latency_s and bm.latency_s:
                wer = "" if m.wer is None or bm.wer is None else f", WER {m.wer:.1%} vs {bm.wer:.1%}"
                report.headlines.append(
                    f"{where}: '{label}' is {bm.latency_s / m.latency_s:.2f}× the speed of "
                    f"'{recipe.baseline}' with {memory_cell(m)} MiB (model's share/peak RSS) vs "
                    f"{memory_cell(bm)}{wer}"
                )
        stem = cell_name(host if len(hosts) > 1 else None, model, device, f"b{batch}")
        report.table(
            f"{stem}/precision_table.svg",
            f"Precisions — {where}",
            "latency: mean end-to-end per utterance (front end + encoder + greedy decoding); RTF = compute "
            "time / audio time; memory: the model's share (peak RSS while transcribing − RSS before the "
            "model loaded) / peak RSS, compared by the share; WER/CER over the whole set (jiwer)",
            [table],
        )
        report.plot(_bars(ds, labels, newest, where), f"{stem}/speed_memory_wer")
    plot = wer_vs_latency(tr)
    report.plot(plot)


def _share(m: Metrics) -> int | None:
    return m.model_share_bytes if m.model_share_bytes is not None else m.peak_rss_bytes


def _bars(
    docs: Sequence[ResultDocument], labels: list[str], newest: dict[str, ResultDocument], where: str
) -> Plot:
    """Three panels side by side: latency per utterance, peak RSS, WER — one bar per setup."""
    plot = Plot(
        "speed_memory_wer",
        f"Speed, memory and WER — {where}",
        "mean latency per utterance, peak resident memory and word error rate per setup",
    )
    panels: list[tuple[str, Callable[[Metrics], float | None]]] = [
        ("latency per utterance (ms)", lambda m: None if m.latency_s is None else m.latency_s * 1e3),
        ("model's memory share (MiB)", lambda m: None if (b := _share(m)) is None else b / 2**20),
        ("WER (%)", lambda m: None if m.wer is None else m.wer * 100),
    ]
    fig = figure_class()(figsize=(max(9.0, 1.2 * len(labels) * 3), 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, value) in zip(axes, panels, strict=True):
        values = [value(metrics(newest[x])) for x in labels]
        ys = [math.nan if v is None else v for v in values]
        bars = ax.bar(range(len(labels)), ys, color=[f"C{i}" for i in range(len(labels))])
        ax.bar_label(bars, labels=["n/a" if v is None else f"{v:.3g}" for v in values], fontsize=7, padding=2)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0, ha="right")
        ax.set_title(title)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(plot.title)
    plot.figure = fig
    return plot
