"""matplotlib figures for ``edgebench-agent report``.

The figures mirror the seed studies: throughput bars per configuration (seed 000's forward/generate
throughput), latency against input length per model (seed 002), tokens/s against batch size and new
tokens (seed 000's observation that both change throughput several-fold), and WER against latency.

Every function returns a :class:`Plot`: either a figure or the reason it was skipped, because an empty
or one-point chart misleads more than a sentence saying what data is missing. matplotlib is imported
lazily (the ``report`` extra) and only its object-oriented API is used (``Figure`` with the Agg
canvas), so no global pyplot state or display is involved.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgebench.agent.errors import require
from edgebench.agent.report.metrics import (
    SETUP_AXES,
    Metrics,
    axis_value,
    fmt_axis,
    metrics,
    newest_by,
    setup_label,
    varying,
)
from edgebench.agent.results.schema import ResultDocument


@dataclass
class Plot:
    name: str
    """File stem: NAME.png and NAME.svg in the report folder."""
    title: str
    caption: str
    figure: Any | None = None
    skipped: str | None = None


def figure_class() -> type:
    """matplotlib's Figure (Agg canvas), or a MissingExtraError naming the ``report`` extra."""
    require("matplotlib", "report", "edgebench-agent report (plots)")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure


def _newest(docs: Sequence[ResultDocument], key: Callable[[ResultDocument], tuple]) -> list[ResultDocument]:
    """One document per key, the newest (a configuration measured in several runs is drawn once)."""
    return list(newest_by(docs, key).values())


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(max_cols, n)
    return math.ceil(n / cols), cols


def _axes_list(fig: Any, rows: int, cols: int) -> list[Any]:
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = [ax for row in axes for ax in row]
    return flat


def _hide_unused(axes: list[Any], used: int) -> None:
    for ax in axes[used:]:
        ax.set_visible(False)


def _sorted_values(values: set) -> list:
    return sorted(values, key=lambda v: (v is not None, v if v is not None else 0))


# --- throughput bars (seed 000) ----------------------------------------------------------------------


def throughput_bars(docs: Sequence[ResultDocument], scenario: str, axes: Sequence[str] | None = None) -> Plot:
    """Bars per configuration (host/model/runtime/precision/device/label), one panel per batch size (and
    new-token count for generate), one bar colour per input length. ``axes``: the setup axes that name a
    bar (default: those that vary, bars sorted; a recipe names its steps by ``label`` and passes the
    documents in its steps' order, which the bars keep)."""
    unit_title = {"forward": "iterations/s", "generate": "tokens/s"}[scenario]
    plot = Plot(
        f"{scenario}_throughput",
        f"{scenario.capitalize()} throughput",
        f"{scenario} throughput in {unit_title} per configuration"
        + (" (batch_size × new_tokens / mean generate latency)" if scenario == "generate" else ""),
    )
    ds = [d for d in docs if d.config.scenario == scenario and metrics(d).throughput is not None]
    if not ds:
        plot.skipped = f"no {scenario} results in the selection"
        return plot
    label_axes = list(axes) if axes is not None else varying(ds, SETUP_AXES)
    ds = _newest(
        ds,
        lambda d: (
            setup_label(d, label_axes),
            d.config.batch_size,
            d.config.new_tokens,
            d.config.audio_seconds,
            d.config.ctc_weight,
            d.config.dataset,
        ),
    )
    panels = _sorted_values({(d.config.batch_size, d.config.new_tokens) for d in ds})
    ordered = ds if axes is not None else sorted(ds, key=_setup_order)  # given axes: the caller's order
    labels = list(dict.fromkeys(setup_label(d, label_axes) for d in ordered))
    hues = _sorted_values({d.config.audio_seconds for d in ds})
    rows, cols = _grid(len(panels))
    width = max(4.5, 0.55 * len(labels) * len(hues) + 2.0)
    fig = figure_class()(figsize=(width * cols, 4.2 * rows), layout="constrained")
    axes = _axes_list(fig, rows, cols)
    bar_w = 0.8 / len(hues)
    for ax, (batch, new_tokens) in zip(axes, panels, strict=False):
        in_panel = [d for d in ds if (d.config.batch_size, d.config.new_tokens) == (batch, new_tokens)]
        present = {setup_label(d, label_axes) for d in in_panel}
        panel_labels = [lb for lb in labels if lb in present]  # never a bar for what was not measured
        for i, h in enumerate(hues):
            values = []
            for label in panel_labels:
                match = [
                    d for d in in_panel if setup_label(d, label_axes) == label and d.config.audio_seconds == h
                ]
                values.append(metrics(match[0]).throughput if match else math.nan)
            xs = [j + (i - (len(hues) - 1) / 2) * bar_w for j in range(len(panel_labels))]
            bars = ax.bar(xs, values, bar_w, label=f"{fmt_axis(h)} s input" if h is not None else None)
            texts = ["" if math.isnan(v) else f"{v:.3g}" for v in values]
            ax.bar_label(bars, labels=texts, fontsize=7, padding=2)
        rotate = len(panel_labels) > 2
        ax.set_xticks(
            range(len(panel_labels)),
            panel_labels,
            rotation=30 if rotate else 0,
            ha="right" if rotate else "center",
        )
        ax.set_ylabel(unit_title)
        ax.set_title(f"batch {batch}" + (f", {new_tokens} new tokens" if new_tokens is not None else ""))
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
        if len(hues) > 1:
            ax.legend(fontsize=8)
    _hide_unused(axes, len(panels))
    fig.suptitle(_title(f"{plot.title} ({unit_title})", ds, label_axes))
    plot.figure = fig
    return plot


def _title(title: str, docs: Sequence[ResultDocument], shown: Sequence[str]) -> str:
    """The figure title plus the setup every series shares (legends only name what differs)."""
    same = [
        fmt_axis(axis_value(docs[0], a))
        for a in SETUP_AXES
        if a not in shown
        and a != "model"
        and len({axis_value(d, a) for d in docs}) == 1
        and axis_value(docs[0], a) is not None
    ]
    models = {d.config.model for d in docs}
    if "model" not in shown and len(models) == 1:
        same.insert(0, next(iter(models)))
    return f"{title} — {' · '.join(same)}" if same else title


def _setup_order(d: ResultDocument) -> tuple:
    return tuple(str(axis_value(d, a)) for a in SETUP_AXES)


# --- lines: latency vs input length (seed 002), tokens/s vs batch / new tokens ------------------------


def _lines(
    docs: Sequence[ResultDocument],
    x_axis: str,
    series_axes: Sequence[str],
    value: Callable[[Metrics], float | None],
    error: Callable[[Metrics], float | None] | None,
    panel_axis: str | None,
) -> tuple[list[tuple[str, str, list[tuple[float, float, float | None]]]], str]:
    """(panel, series label, [(x, y, yerr)]) for series with at least two x values, and the figure
    title's suffix naming the setup all series share."""
    ds = [d for d in docs if axis_value(d, x_axis) is not None and value(metrics(d)) is not None]
    if not ds:
        return [], ""
    label_axes = varying(ds, [a for a in SETUP_AXES if a != panel_axis])
    extra = [a for a in series_axes if len({axis_value(d, a) for d in ds}) > 1]

    def series(d: ResultDocument) -> str:
        parts = [setup_label(d, label_axes)] if label_axes else []
        parts += [_axis_text(a, axis_value(d, a)) for a in extra]
        return ", ".join(parts) or setup_label(d, ("runtime",))

    def panel(d: ResultDocument) -> str:
        return fmt_axis(axis_value(d, panel_axis)) if panel_axis else ""

    ds = _newest(ds, lambda d: (panel(d), series(d), axis_value(d, x_axis)))
    grouped: dict[tuple[str, str], list[tuple[float, float, float | None]]] = defaultdict(list)
    for d in sorted(ds, key=_setup_order):
        m = metrics(d)
        y = value(m)
        assert y is not None
        grouped[(panel(d), series(d))].append((float(axis_value(d, x_axis)), y, error(m) if error else None))
    found = [(p, s, sorted(pts)) for (p, s), pts in grouped.items() if len(pts) >= 2]
    return found, _title("", ds, label_axes)


def _axis_text(axis: str, value: object) -> str:
    names = {
        "batch_size": "batch {}",
        "audio_seconds": "{} s input",
        "new_tokens": "{} new tok",
        "ctc_weight": "ctc {}",
        "dataset": "{}",
    }
    return names.get(axis, axis + " {}").format(fmt_axis(value))


def _line_plot(
    plot: Plot,
    found: list[tuple[str, str, list[tuple[float, float, float | None]]]],
    xlabel: str,
    ylabel: str,
    panel_title: Callable[[str], str],
    context: str,
    log_x: bool = False,
) -> Plot:
    panels = list(dict.fromkeys(p for p, _, _ in found))
    rows, cols = _grid(len(panels), max_cols=2)
    fig = figure_class()(figsize=(6.4 * cols, 4.4 * rows), layout="constrained")
    axes = _axes_list(fig, rows, cols)
    for ax, p in zip(axes, panels, strict=False):
        for _, label, pts in (f for f in found if f[0] == p):
            xs = [x for x, _, _ in pts]
            ys = [y for _, y, _ in pts]
            errs = [e for _, _, e in pts]
            yerr = errs if all(e is not None for e in errs) else None
            ax.errorbar(xs, ys, yerr=yerr, marker="o", capsize=3, label=label)
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({x for panel, _, pts in found if panel == p for x, _, _ in pts}))
        ax.get_xaxis().set_major_formatter(_plain_formatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)  # every plotted quantity is >= 0; a CI whisker must not suggest otherwise
        if p and len(panels) > 1:  # one panel: its name is already in the figure title
            ax.set_title(panel_title(p))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _hide_unused(axes, len(panels))
    fig.suptitle(plot.title + context)
    plot.figure = fig
    return plot


def _plain_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:g}")


def latency_vs_input_length(docs: Sequence[ResultDocument]) -> Plot:
    """Forward latency (mean ± 95 % CI) against input seconds, one panel per model (seed 002)."""
    plot = Plot(
        "latency_vs_input_length",
        "Forward latency vs input length",
        "mean forward latency (error bars: 95 % CI of the mean) against input seconds, one panel per model",
    )
    fwd = [d for d in docs if d.config.scenario == "forward"]
    found, context = _lines(
        fwd,
        "audio_seconds",
        ("batch_size", "dataset"),
        lambda m: None if m.latency_s is None else m.latency_s * 1e3,
        lambda m: None if m.latency_ci_half_s is None else m.latency_ci_half_s * 1e3,
        panel_axis="model",
    )
    if not found:
        plot.skipped = (
            "needs forward results at two or more input lengths for the same configuration "
            "(e.g. `run --scenario forward --audio-seconds 5,10,30`)"
            if fwd
            else "no forward results in the selection"
        )
        return plot
    return _line_plot(plot, found, "input length (s)", "latency (ms)", lambda p: p, context)


def energy_vs_input_length(docs: Sequence[ResultDocument]) -> Plot:
    """Forward energy per iteration against input seconds (seed 002's energy plot), when measured."""
    plot = Plot(
        "energy_vs_input_length",
        "Forward energy vs input length",
        "energy per forward pass against input seconds, one panel per model",
    )
    fwd = [d for d in docs if d.config.scenario == "forward" and metrics(d).energy is not None]
    found, context = _lines(
        fwd, "audio_seconds", ("batch_size", "dataset"), lambda m: m.energy, None, panel_axis="model"
    )
    if not found:
        plot.skipped = (
            "needs forward results with measured energy at two or more input lengths"
            if fwd
            else "no forward result carries energy (no power source on the measuring hosts)"
        )
        return plot
    return _line_plot(plot, found, "input length (s)", "energy per iteration (J)", lambda p: p, context)


def tokens_per_s_vs(docs: Sequence[ResultDocument], x_axis: str) -> Plot:
    """Generate tokens/s against batch size or against new tokens (one panel per model)."""
    what = {"batch_size": ("batch size", "batch"), "new_tokens": ("new tokens", "new_tokens")}[x_axis]
    plot = Plot(
        f"generate_tokens_per_s_vs_{what[1]}",
        f"Generate tokens/s vs {what[0]}",
        f"generate throughput (batch_size × new_tokens / mean latency) against {what[0]}",
    )
    gen = [d for d in docs if d.config.scenario == "generate"]
    others = [a for a in ("batch_size", "new_tokens", "audio_seconds", "dataset") if a != x_axis]
    found, context = _lines(gen, x_axis, others, lambda m: m.tokens_per_s, None, panel_axis="model")
    if not found:
        hint = "--batch-size 1,8" if x_axis == "batch_size" else "--new-tokens 10,100"
        plot.skipped = (
            f"needs generate results at two or more {what[0]} for the same configuration "
            f"(e.g. `run --scenario generate {hint}`)"
            if gen
            else "no generate results in the selection"
        )
        return plot
    return _line_plot(plot, found, what[0], "tokens/s", lambda p: p, context, log_x=x_axis == "batch_size")


# --- WER vs latency ------------------------------------------------------------------------------------


def wer_vs_latency(docs: Sequence[ResultDocument]) -> Plot:
    """Accuracy/speed trade-off: WER against mean per-utterance latency, one marker per setup."""
    plot = Plot(
        "wer_vs_latency",
        "WER vs latency",
        "transcription WER against mean per-utterance latency (lower-left is better)",
    )
    ds = [d for d in docs if d.config.scenario == "transcribe" and metrics(d).wer is not None]
    if not ds:
        plot.skipped = (
            "no transcribe result with a meaningful WER (untrained models report none; "
            "e.g. `run -m whisper-tiny.en --scenario transcribe`)"
        )
        return plot
    label_axes = varying(ds, SETUP_AXES) or ["model"]
    extra = [a for a in ("batch_size", "ctc_weight", "dataset") if len({axis_value(d, a) for d in ds}) > 1]
    ds = _newest(ds, lambda d: (setup_label(d, label_axes), *(axis_value(d, a) for a in extra)))
    fig = figure_class()(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.subplots()
    markers = "osD^v<>PX*"
    labels = dict.fromkeys(setup_label(d, label_axes) for d in sorted(ds, key=_setup_order))
    for i, label in enumerate(labels):
        group = [d for d in ds if setup_label(d, label_axes) == label]
        xs = [metrics(d).latency_s * 1e3 for d in group]  # type: ignore[operator]
        ys = [metrics(d).wer * 100 for d in group]  # type: ignore[operator]
        ax.scatter(xs, ys, marker=markers[i % len(markers)], s=50, label=label)
        for d, x, y in zip(group, xs, ys, strict=True):
            note = ", ".join(_axis_text(a, axis_value(d, a)) for a in extra)
            if note:
                ax.annotate(note, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlabel("mean latency per utterance (ms)")
    ax.set_ylabel("WER (%)")
    top = max(metrics(d).wer or 0.0 for d in ds) * 100
    ax.set_ylim(-0.05 * top - 0.5, top * 1.15 + 1)  # WER 0 % stays visible, not on the frame
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(_title(plot.title, ds, label_axes))
    plot.figure = fig
    return plot


def all_plots(docs: Sequence[ResultDocument]) -> list[Plot]:
    """Every report figure, in the order the index page shows them."""
    return [
        throughput_bars(docs, "forward"),
        throughput_bars(docs, "generate"),
        latency_vs_input_length(docs),
        tokens_per_s_vs(docs, "batch_size"),
        tokens_per_s_vs(docs, "new_tokens"),
        wer_vs_latency(docs),
        energy_vs_input_length(docs),
    ]
