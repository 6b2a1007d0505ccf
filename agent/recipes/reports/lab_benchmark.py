"""Seed 002's report (the ESPnet lab): per model, the parameter count split into encoder, CTC decoder and
attention decoder; latency and energy per CTC weight (0 = attention only, 1 = CTC only); and latency
(and energy, where a power source was found) against the number of input frames.

Input frames are the log-mel frames the encoder sees: one per 10 ms hop of the shared front end
(:data:`~edgebench.models.frontend.logmel.HOP_LENGTH` at 16 kHz), so 100 per second of audio.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from edgebench.agent.recipes.reports.common import RecipeReport
from edgebench.agent.report.metrics import metrics, newest_by
from edgebench.agent.report.plots import Plot, energy_vs_input_length, latency_vs_input_length
from edgebench.agent.report.tables import fmt_num, fmt_pct
from edgebench.agent.results.schema import ResultDocument
from edgebench.models.frontend.logmel import HOP_LENGTH, SAMPLE_RATE

FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH
_PARAM_ORDER = ("total", "encoder", "ctc_head", "attention_decoder", "decoder")
_PARAM_NAMES = {"ctc_head": "CTC decoder", "attention_decoder": "attention decoder"}


def build(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    _params(report, docs)
    _per_ctc_weight(report, docs)
    for plot in (latency_vs_input_length(docs), energy_vs_input_length(docs)):
        if plot.figure is not None:
            _frames_axis(plot)
        report.plot(plot)


def _params(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    models: dict[str, dict[str, int]] = {}
    for d in docs:
        if d.model is not None:
            models.setdefault(d.config.model, dict(d.model.params))
    if not models:
        return
    keys = [k for k in _PARAM_ORDER if any(k in p for p in models.values())]
    keys += sorted({k for p in models.values() for k in p} - set(keys))
    table = Table(title="Parameter count", title_justify="left")
    table.add_column("model")
    for k in keys:
        table.add_column(_PARAM_NAMES.get(k, k.replace("_", " ")), justify="right")
    for name, params in models.items():
        table.add_row(name, *(f"{params[k]:,}" if k in params else "–" for k in keys))
        if "total" in params:
            report.headlines.append(f"{name}: {params['total']:,} parameters")
    report.table(
        "parameter_table.svg",
        "Parameter count",
        "parameters per component, counted on the loaded PyTorch module (no sharing between components)",
        [table],
    )


def _per_ctc_weight(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    tr = [d for d in docs if d.config.scenario == "transcribe"]
    if not tr:
        report.not_drawn.append(("latency per CTC weight", "no transcribe results"))
        return
    newest = newest_by(
        tr, lambda d: (d.host, d.config.model, d.config.device, d.config.batch_size, d.config.ctc_weight)
    )
    docs_shown = list(newest.values())
    extra = [a for a in ("host", "device", "batch_size") if len({_axis(d, a) for d in docs_shown}) > 1]
    same = [
        f"{a.replace('_size', '')} {_axis(docs_shown[0], a)}"
        for a in ("device", "batch_size")
        if a not in extra
    ]
    energy_reasons = {
        d.energy.unavailable_reason
        for d in docs_shown
        if d.energy is not None and d.energy.unavailable_reason
    }
    caption = (
        "end-to-end per utterance on the speech set (front end, encoder, decoding with the given CTC "
        "weight); energy from the run's power source"
    )
    if energy_reasons:
        caption += " — no energy here: " + "; ".join(sorted(energy_reasons))
    title = "Latency and energy per CTC weight" + (f" ({', '.join(same)})" if same else "")
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for col in (
        *extra,
        "model",
        "CTC weight",
        "decoder",
        "ms / utt",
        "±95% CI",
        "RTF",
        "avg W",
        "J / utt",
        "WER",
    ):
        table.add_column(col, justify="left" if col in ("host", "model", "device", "decoder") else "right")
    for key in sorted(newest, key=lambda k: tuple(str(x) for x in k)):
        d = newest[key]
        m = metrics(d)
        t = d.transcribe
        w = d.config.ctc_weight
        decoder = "–" if w is None else "attention" if w == 0 else "CTC" if w == 1 else "hybrid"
        joules = None
        if d.energy is not None and d.energy.joules_per_iteration is not None and t is not None:
            joules = d.energy.joules_per_iteration / d.config.batch_size  # one iteration = one batch
        table.add_row(
            *(str(_axis(d, a)) for a in extra),
            d.config.model,
            "–" if w is None else f"{w:g}",
            decoder,
            fmt_num(m.latency_s, ".1f", 1e3),
            fmt_num(m.latency_ci_half_s, ".1f", 1e3),
            fmt_num(m.rtf, ".3f"),
            fmt_num(m.average_w, ".2f"),
            fmt_num(joules, ".3f"),
            fmt_pct(m.wer) if t is not None and t.accuracy_meaningful else "untrained",
        )
    report.table("latency_per_ctc_weight.svg", "Latency and energy per CTC weight", caption, [table])


def _axis(d: ResultDocument, axis: str) -> object:
    return d.host if axis == "host" else getattr(d.config, axis)


def _frames_axis(plot: Plot) -> None:
    """Add an input-frames axis on top of every panel (the seed plots against frames)."""
    for ax in plot.figure.axes:
        if not ax.get_visible() or not ax.lines:
            continue
        top = ax.secondary_xaxis(
            "top", functions=(lambda s: s * FRAMES_PER_SECOND, lambda f: f / FRAMES_PER_SECOND)
        )
        top.set_xlabel(f"input frames ({1000 / FRAMES_PER_SECOND:g} ms hop)")
    plot.caption += f"; top axis: input frames ({FRAMES_PER_SECOND:g} per second)"
