"""The headline numbers of one result document, the same way for every scenario and runtime.

Comparisons, tables and plots all need "the latency", "the throughput", "the energy" of a document;
reading them in one place keeps the three consistent (a speedup in a table is the ratio of the very
numbers a plot shows). Energy fields are read by name with ``getattr`` so documents of any schema 1.x
minor version work: fields a producer did not have are simply absent.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TypeVar

from edgebench.agent.results.schema import ResultDocument

K = TypeVar("K", bound=Hashable)

# The axes that identify a measured configuration. ``host`` comes from the document, the rest from
# its RunConfig. threads and frontend are recorded but not matched on (a Pi and a PC rarely run the
# same thread count; comparing them is the point of a cross-host table).
MATCH_AXES: tuple[str, ...] = (
    "host",
    "model",
    "runtime",
    "precision",
    "device",
    "scenario",
    "batch_size",
    "audio_seconds",
    "new_tokens",
    "ctc_weight",
    "dataset",
    # variants and robustness settings (None on results that did not use them)
    "torch_mode",
    "attn_impl",
    "amp",
    "ort_opt_level",
    "ggml_type",
    "language",
    "task",
    "stream_policy",
    "chunk_seconds",
    "stream_speed",
    "dataset_limit",
    "noise_snr_db",
    "speed",
)
EXTRA_AXES: tuple[str, ...] = ("threads", "frontend")
# Axes a user may compare against (``--baseline AXIS=VALUE``).
BASELINE_AXES: tuple[str, ...] = (
    "runtime",
    "precision",
    "device",
    "host",
    "model",
    "threads",
    "frontend",
    "torch_mode",
    "attn_impl",
    "ort_opt_level",
    "ggml_type",
    "language",
    "label",
)
# What a label (``run --label``, a recipe step) names: a baseline ``label=NAME`` compares setups that
# differ in any of these, matching everything else (seed 000: torch fp32 'baseline' vs onnxruntime int8).
LABELLED_AXES: tuple[str, ...] = (
    "runtime",
    "precision",
    "torch_mode",
    "attn_impl",
    "amp",
    "ort_opt_level",
    "ggml_type",
)
# Settings a runtime owns (set on one runtime, None on the others): they cannot match across runtimes,
# so a runtime comparison matches everything but these and shows them beside each runtime's name.
RUNTIME_OWN_AXES: dict[str, object] = {
    "torch_mode": "eager",
    "attn_impl": None,
    "amp": False,
    "ort_opt_level": "all",
    "ggml_type": None,
}
"""Each with its default value: only settings away from the default are shown."""
# Axes that name "what ran where" (as opposed to the workload): used for labels.
SETUP_AXES: tuple[str, ...] = ("host", "model", "runtime", "precision", "device", "label")
WORKLOAD_AXES: tuple[str, ...] = (
    "batch_size",
    "audio_seconds",
    "new_tokens",
    "ctc_weight",
    "stream_policy",
    "chunk_seconds",
    "dataset",
)

# Energy per unit of work, per scenario, in order of preference (schema 1.1 names; 1.0 had only the
# first). The first one present in a document is the one compared.
_ENERGY_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "generate": (("joules_per_token", "J/tok"), ("joules_per_iteration", "J/iter")),
    "transcribe": (("joules_per_audio_s", "J/audio s"), ("joules_per_iteration", "J/utt")),
    "stream": (("joules_per_audio_s", "J/audio s"), ("joules_per_iteration", "J/chunk")),
    "forward": (("joules_per_iteration", "J/iter"),),
    "load": (("joules_per_iteration", "J/iter"),),
}


def axis_value(doc: ResultDocument, axis: str) -> object:
    """The value of one axis (``host`` from the document, everything else from its config).

    ``dataset`` counts only for transcribe (forward/generate merely cut audio of a fixed length from it)
    and by its folder name, since the same clips sit under different paths on different hosts."""
    if axis == "host":
        return doc.host
    if axis == "dataset":
        ds = doc.config.dataset
        if doc.config.scenario not in ("transcribe", "stream") or ds is None:
            return None
        return PurePath(ds.rstrip("/\\")).name or ds
    return getattr(doc.config, axis)


def emulation_mark(docs: Sequence[ResultDocument]) -> str | None:
    """'EMULATED (how)' when any result was measured on an emulated CPU, else None: every table and report
    that shows timings puts it first, so emulated figures are never read as a device's speed."""
    how = sorted({d.sysinfo.emulated for d in docs if d.sysinfo.emulated})
    return f"EMULATED ({', '.join(how)})" if how else None


def emulated_hosts_note(docs: Sequence[ResultDocument]) -> str | None:
    """One line naming the hosts whose results were measured under emulation."""
    hosts = sorted({d.host for d in docs if d.sysinfo.emulated})
    if not hosts:
        return None
    return f"{emulation_mark(docs)}: {', '.join(hosts)}: timings and energy are not the device's"


def fmt_axis(value: object) -> str:
    """Axis values as people type them: ``1`` not ``1.0``, ``–`` for "not applicable"."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def workload_label(doc: ResultDocument) -> str:
    """Short description of the workload: 'b2 10s 32 tok ctc 0.3' (same style as the run table)."""
    c = doc.config
    if c.scenario == "load":
        return "load"
    parts = [f"b{c.batch_size}"]
    if c.scenario == "stream":
        parts = [f"{c.stream_policy} {c.chunk_seconds:g}s"]
        if c.stream_speed not in (None, 1.0):
            parts.append(f"x{c.stream_speed:g}")
    if c.audio_seconds is not None:
        parts.append(f"{c.audio_seconds:g}s")
    if c.new_tokens is not None:
        parts.append(f"{c.new_tokens} tok")
    if c.ctc_weight is not None:
        parts.append(f"ctc {c.ctc_weight:g}")
    return " ".join(parts)


def varying(docs: Sequence[ResultDocument], axes: Sequence[str]) -> list[str]:
    """The axes (in the given order) that take more than one value among ``docs``."""
    return [a for a in axes if len({axis_value(d, a) for d in docs}) > 1]


def setup_label(doc: ResultDocument, axes: Sequence[str]) -> str:
    """'pi5 · onnxruntime · int8' — only the given (usually: varying) setup axes, in order."""
    return " · ".join(fmt_axis(axis_value(doc, a)) for a in axes) or fmt_axis(doc.config.runtime)


@dataclass(frozen=True)
class Metrics:
    """What a person compares. None = not measured for this scenario (or not available on the host)."""

    latency_s: float | None
    """Mean latency of the scenario's unit of work (load: load time)."""
    latency_ci_half_s: float | None
    throughput: float | None
    throughput_unit: str | None
    """'it/s' (forward), 'tok/s' (generate), 'audio s/s' (transcribe: 1/RTF)."""
    tokens_per_s: float | None
    rtf: float | None
    wer: float | None
    cer: float | None
    peak_rss_bytes: int | None
    model_share_bytes: int | None
    """Peak RSS minus the RSS before the model loaded (schema 1.6; None for older documents)."""
    energy: float | None
    energy_unit: str | None
    average_w: float | None


def memory_ratio(m: Metrics, bm: Metrics) -> float | None:
    """Memory against a baseline: the model's shares where both are known (the harness's own imports
    are on both sides and would pull every ratio towards 1), else the peaks (documents before 1.6)."""
    if m.model_share_bytes is not None and bm.model_share_bytes is not None:
        return ratio(m.model_share_bytes, bm.model_share_bytes)
    return ratio(m.peak_rss_bytes, bm.peak_rss_bytes)


def metrics(doc: ResultDocument) -> Metrics:
    """Read the headline numbers of one document."""
    lat = ci = thr = unit = tps = rtf = wer = cer = None
    if doc.forward is not None:
        s = doc.forward.latency_s
        lat, ci = s.mean, (s.ci95_high - s.ci95_low) / 2
        thr, unit = doc.forward.iterations_per_s, "it/s"
    elif doc.generate is not None:
        s = doc.generate.latency_s
        lat, ci = s.mean, (s.ci95_high - s.ci95_low) / 2
        thr, unit = doc.generate.tokens_per_s, "tok/s"
        tps = doc.generate.tokens_per_s
    elif doc.transcribe is not None or doc.stream is not None:
        # transcribe: per utterance; stream: compute per chunk. Both sustain audio at their RTF.
        audio = doc.transcribe or doc.stream
        assert audio is not None
        s = audio.latency_s if doc.transcribe is not None else audio.compute_s  # type: ignore[union-attr]
        lat, ci = s.mean, (s.ci95_high - s.ci95_low) / 2
        rtf = audio.rtf
        thr, unit = (1.0 / audio.rtf if audio.rtf > 0 else None), "audio s/s"
        if audio.accuracy_meaningful:
            wer, cer = audio.wer, audio.cer
    elif doc.load is not None:
        lat = doc.load.load_s
    energy = energy_unit = average_w = None
    if doc.energy is not None:
        average_w = getattr(doc.energy, "average_w", None)
        for name, u in _ENERGY_FIELDS.get(doc.config.scenario, ()):
            value = getattr(doc.energy, name, None)
            if value is not None:
                energy, energy_unit = float(value), u
                break
    return Metrics(
        latency_s=lat,
        latency_ci_half_s=ci,
        throughput=thr,
        throughput_unit=unit if thr is not None else None,
        tokens_per_s=tps,
        rtf=rtf,
        wer=wer,
        cer=cer,
        peak_rss_bytes=doc.memory.peak_rss_bytes if doc.memory else None,
        model_share_bytes=doc.memory.model_share_bytes if doc.memory else None,
        energy=energy,
        energy_unit=energy_unit,
        average_w=average_w,
    )


def newest_by(docs: Sequence[ResultDocument], key: Callable[[ResultDocument], K]) -> dict[K, ResultDocument]:
    """One document per key, the newest, in the order keys first appear (a configuration measured in
    several runs, or exported twice, counts once: the latest measurement)."""
    best: dict[K, ResultDocument] = {}
    for d in docs:
        k = key(d)
        if k not in best or d.created_ns > best[k].created_ns:
            best[k] = d
    return best


def ratio(num: float | None, den: float | None) -> float | None:
    """num/den, or None when either is missing or the denominator is not positive."""
    if num is None or den is None or den <= 0:
        return None
    return num / den
