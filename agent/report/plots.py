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


RUNTIME_MARKERS = {"torch": "o", "onnxruntime": "s", "litert": "^", "ctranslate2": "D"}
"""One marker per runtime, the same in every figure (others fall back to 'P')."""


def host_colors(docs: Sequence[ResultDocument]) -> dict[str, str]:
    """One colour per host, the same in every figure of a report (hosts in sorted order)."""
    return {h: f"C{i % 10}" for i, h in enumerate(sorted({d.host for d in docs}))}


def _precision_style(precision: str, color: str) -> dict[str, object]:
    """fp32 filled, int8 hollow, fp16 half-transparent: the host's colour and the runtime's marker stay."""
    if precision == "int8":
        return {"facecolors": "none", "edgecolors": color, "linewidths": 1.5}
    if precision == "fp16":
        return {"color": color, "alpha": 0.5}
    return {"color": color}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, both coordinates to be minimised: no other point is at
    least as good on both and better on one."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any(x2 <= x and y2 <= y and (x2 < x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i):
            front.append(i)
    return front


def _tradeoff(
    plot: Plot, ds: list[ResultDocument], x_of: Callable[[ResultDocument], float], xlabel: str
) -> Plot:
    """WER (y) against a cost (x): colour by host, marker by runtime, the Pareto front drawn and its
    configurations labelled."""
    label_axes = varying(ds, SETUP_AXES) or ["model"]
    extra = [a for a in ("batch_size", "ctc_weight", "dataset") if len({axis_value(d, a) for d in ds}) > 1]
    ds = _newest(ds, lambda d: (setup_label(d, label_axes), *(axis_value(d, a) for a in extra)))
    ds = sorted(ds, key=_setup_order)
    colors = host_colors(ds)
    fig = figure_class()(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.subplots()
    xs = [x_of(d) for d in ds]
    ys = [metrics(d).wer * 100 for d in ds]  # type: ignore[operator]
    seen: set[str] = set()
    for d, x, y in zip(ds, xs, ys, strict=True):
        label = setup_label(d, label_axes)
        ax.scatter(
            [x],
            [y],
            marker=RUNTIME_MARKERS.get(d.config.runtime, "P"),
            s=50,
            label=None if label in seen else label,
            zorder=3,
            **_precision_style(d.config.precision, colors[d.host]),
        )
        seen.add(label)
    front = sorted(pareto_front(list(zip(xs, ys, strict=True))), key=lambda i: xs[i])
    ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="0.4", lw=1, ls="--",
            label="Pareto front", zorder=2)  # fmt: skip
    ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=140, facecolors="none", edgecolors="black",
               linewidths=1.2, zorder=4)  # fmt: skip
    for i in front:
        note = ", ".join(
            [setup_label(ds[i], label_axes), *(_axis_text(a, axis_value(ds[i], a)) for a in extra)]
        )
        ax.annotate(note, (xs[i], ys[i]), textcoords="offset points", xytext=(6, 5), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("WER (%)")
    top = max(ys)
    ax.set_ylim(-0.05 * top - 0.5, top * 1.15 + 1)  # WER 0 % stays visible, not on the frame
    ax.set_xlim(left=0)  # a cost: never below zero
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle(_title(plot.title, ds, label_axes))
    plot.figure = fig
    return plot


def _with_wer(docs: Sequence[ResultDocument]) -> list[ResultDocument]:
    return [d for d in docs if d.config.scenario == "transcribe" and metrics(d).wer is not None]


_NO_WER = (
    "no transcribe result with a meaningful WER (untrained models report none; "
    "e.g. `run -m whisper-tiny.en --scenario transcribe`)"
)


def wer_vs_latency(docs: Sequence[ResultDocument]) -> Plot:
    """Accuracy/speed trade-off: WER against mean per-utterance latency, the Pareto front marked."""
    plot = Plot(
        "wer_vs_latency",
        "WER vs latency",
        "transcription WER against mean per-utterance latency; circled and joined: the Pareto front "
        "(no other configuration is both faster and more accurate); colour = host, marker = runtime, "
        "filled = fp32, hollow = int8, faded = fp16",
    )
    ds = _with_wer(docs)
    if not ds:
        plot.skipped = _NO_WER
        return plot
    return _tradeoff(plot, ds, lambda d: metrics(d).latency_s * 1e3, "mean latency per utterance (ms)")  # type: ignore[operator]


def _joules_per_utterance(d: ResultDocument) -> float | None:
    e = d.energy
    if e is None or e.joules_per_iteration is None:
        return None
    return e.joules_per_iteration / d.config.batch_size  # one transcribe call is one batch


def wer_vs_energy(docs: Sequence[ResultDocument]) -> Plot:
    """Accuracy/energy trade-off: WER against joules per utterance, the Pareto front marked."""
    plot = Plot(
        "wer_vs_energy",
        "WER vs energy per utterance",
        "transcription WER against joules per utterance (gross); circled and joined: the Pareto front; "
        "colour = host, marker = runtime, filled = fp32, hollow = int8, faded = fp16",
    )
    ds = [d for d in _with_wer(docs) if _joules_per_utterance(d) is not None]
    if not ds:
        plot.skipped = (
            _NO_WER if not _with_wer(docs) else "no transcribe result with energy (no power source)"
        )
        return plot
    return _tradeoff(plot, ds, lambda d: _joules_per_utterance(d) or 0.0, "energy per utterance (J)")


def rtf_bars(docs: Sequence[ResultDocument]) -> Plot:
    """Real-time factor per host x runtime x precision with the 95 % CI over utterances."""
    plot = Plot(
        "rtf",
        "Real-time factor",
        "real-time factor (processing time / audio time; < 1 keeps up with live audio) with its 95 % "
        "confidence interval (from the per-utterance latencies); colour = host",
    )
    ds = [d for d in docs if d.transcribe is not None and d.transcribe.latency_s.n >= 2]
    if not ds:
        plot.skipped = "no transcribe result with at least two measured utterances"
        return plot
    ds = _newest(
        ds, lambda d: (d.host, d.config.model, d.config.runtime, d.config.precision, d.config.device)
    )
    ds = sorted(ds, key=lambda d: (d.host, *_setup_order(d)))
    colors = host_colors(ds)
    label_axes = varying(ds, SETUP_AXES) or ["runtime"]
    fig = figure_class()(figsize=(max(6.0, 0.7 * len(ds) + 2), 4.6), layout="constrained")
    ax = fig.subplots()
    for i, d in enumerate(ds):
        t = d.transcribe
        assert t is not None
        # RTF = total latency / total audio = mean latency x calls / audio: its 95 % CI is the mean
        # latency's, scaled by the same factor (the audio is fixed)
        lat = t.latency_s
        scale = t.rtf / lat.mean if lat.mean > 0 else 0.0
        err = [[(lat.mean - lat.ci95_low) * scale], [(lat.ci95_high - lat.mean) * scale]]
        ax.bar(i, t.rtf, color=colors[d.host], yerr=err, capsize=4)
    ax.set_xticks(
        range(len(ds)), [setup_label(d, label_axes) for d in ds], rotation=30, ha="right", fontsize=8
    )
    if max(b.get_height() for b in ax.patches) > 0.5:  # the real-time line where it is in reach
        ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_ylabel("real-time factor")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
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
        wer_vs_energy(docs),
        rtf_bars(docs),
        energy_vs_input_length(docs),
    ]
