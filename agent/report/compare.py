"""Speedups against a baseline: the comparison behind ``edgebench-agent compare`` (seed 004's summary).

A baseline is one value of one axis (``runtime=torch``, ``precision=fp32``, ``device=cpu``,
``host=pi5``). Every other axis must match: a result is compared with the baseline result of the same
model, scenario, batch size, input seconds, new tokens, CTC weight, dataset and the remaining setup axes
(e.g. ``--baseline runtime=torch`` compares onnxruntime int8 with torch int8 on the same host).
When the same configuration was measured more than once (several runs, or the same run exported
twice) the newest measurement is used and the older ones are counted as superseded.

speedup = baseline latency / latency (> 1: faster than the baseline); throughput and tokens/s ratios =
value / baseline value; memory ratio = the model's share of memory / the baseline's (peak RSS for documents
before schema 1.6; < 1: less memory); WER delta =
WER - baseline WER (absolute); energy ratio = energy per unit of work / baseline's (< 1: less energy).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.report.metrics import (
    BASELINE_AXES,
    LABELLED_AXES,
    MATCH_AXES,
    RUNTIME_OWN_AXES,
    Metrics,
    axis_value,
    fmt_axis,
    memory_ratio,
    metrics,
    ratio,
)
from edgebench.agent.results.schema import ResultDocument

_SCENARIO_ORDER = ("load", "forward", "generate", "transcribe", "stream")
# Which value a baseline defaults to when the user names only the axis, or nothing at all.
_PREFERRED = {"runtime": "torch", "precision": "fp32", "device": "cpu"}


@dataclass(frozen=True)
class Baseline:
    axis: str
    value: str

    def __str__(self) -> str:
        return f"{self.axis}={self.value}"


def parse_baseline(text: str) -> Baseline:
    """``AXIS=VALUE`` (``runtime=torch``); one-line error for anything else."""
    axis, sep, value = text.partition("=")
    axis, value = axis.strip(), value.strip()
    if not sep or not axis or not value:
        raise EdgebenchError(
            f"--baseline '{text}': expected AXIS=VALUE, e.g. runtime=torch, precision=fp32, host=pi5"
        )
    if axis not in BASELINE_AXES:
        raise EdgebenchError(
            f"--baseline '{text}': unknown axis '{axis}' (one of {', '.join(BASELINE_AXES)})"
        )
    return Baseline(axis, value)


def auto_baseline(docs: Sequence[ResultDocument]) -> Baseline:
    """No --baseline: the first setup axis that varies, at its conventional reference value (torch, fp32,
    cpu) when present, else its first value in sort order."""
    for axis in ("runtime", "precision", "device", "host", "model"):
        values = sorted({fmt_axis(axis_value(d, axis)) for d in docs})
        if len(values) > 1:
            preferred = _PREFERRED.get(axis)
            return Baseline(axis, preferred if preferred in values else values[0])
    raise EdgebenchError(
        "nothing to compare: every selected result has the same runtime, precision, device, host and "
        "model; select more runs (--run, --last, --from) or name a --baseline"
    )


def _order(value: object) -> tuple[int, float, str]:
    """Sort key for mixed None/number/str axis values."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, int | float):
        return (1, float(value), "")
    return (2, 0.0, str(value))


@dataclass
class Row:
    """One result next to its baseline (the baseline itself appears with is_baseline=True)."""

    key: dict[str, object]
    """The matched axes (every identity axis except the baseline's)."""
    value: str
    """This result's value of the baseline axis."""
    doc: ResultDocument
    base: ResultDocument
    is_baseline: bool
    m: Metrics
    bm: Metrics

    @property
    def speedup(self) -> float | None:
        return ratio(self.bm.latency_s, self.m.latency_s)

    @property
    def throughput_ratio(self) -> float | None:
        if self.m.throughput_unit != self.bm.throughput_unit:
            return None
        return ratio(self.m.throughput, self.bm.throughput)

    @property
    def tokens_per_s_ratio(self) -> float | None:
        return ratio(self.m.tokens_per_s, self.bm.tokens_per_s)

    @property
    def memory_ratio(self) -> float | None:
        return memory_ratio(self.m, self.bm)

    @property
    def wer_delta(self) -> float | None:
        if self.m.wer is None or self.bm.wer is None:
            return None
        return self.m.wer - self.bm.wer

    @property
    def energy_ratio(self) -> float | None:
        if self.m.energy_unit != self.bm.energy_unit:
            return None
        return ratio(self.m.energy, self.bm.energy)

    def to_json(self) -> dict[str, object]:
        m, bm = self.m, self.bm
        return {
            "key": self.key,
            "value": self.value,
            "is_baseline": self.is_baseline,
            "host": self.doc.host,
            "run_id": self.doc.run_id,
            "seq": self.doc.seq,
            "baseline_host": self.base.host,
            "baseline_run_id": self.base.run_id,
            "baseline_seq": self.base.seq,
            "latency_s": m.latency_s,
            "baseline_latency_s": bm.latency_s,
            "speedup": self.speedup,
            "throughput": m.throughput,
            "throughput_unit": m.throughput_unit,
            "baseline_throughput": bm.throughput,
            "throughput_ratio": self.throughput_ratio,
            "tokens_per_s": m.tokens_per_s,
            "baseline_tokens_per_s": bm.tokens_per_s,
            "tokens_per_s_ratio": self.tokens_per_s_ratio,
            "rtf": m.rtf,
            "baseline_rtf": bm.rtf,
            "peak_rss_bytes": m.peak_rss_bytes,
            "baseline_peak_rss_bytes": bm.peak_rss_bytes,
            "model_share_bytes": m.model_share_bytes,
            "baseline_model_share_bytes": bm.model_share_bytes,
            "memory_ratio": self.memory_ratio,
            "wer": m.wer,
            "baseline_wer": bm.wer,
            "wer_delta": self.wer_delta,
            "energy": m.energy,
            "energy_unit": m.energy_unit,
            "baseline_energy": bm.energy,
            "energy_ratio": self.energy_ratio,
        }


@dataclass
class Summary:
    """Seed 004's 'Speedup: 2.70x' line, over every matched configuration of one value."""

    value: str
    configurations: int
    geomean_speedup: float | None
    min_speedup: float | None
    max_speedup: float | None


@dataclass
class Comparison:
    baseline: Baseline
    rows: list[Row]
    """Grouped by configuration: the baseline row first, then the others."""
    unmatched: list[ResultDocument] = field(default_factory=list)
    """Results whose configuration has no baseline measurement."""
    superseded: int = 0

    @property
    def candidates(self) -> list[Row]:
        return [r for r in self.rows if not r.is_baseline]

    def summary(self) -> list[Summary]:
        per_value: dict[str, list[float]] = defaultdict(list)
        counts: dict[str, int] = defaultdict(int)
        for r in self.candidates:
            counts[r.value] += 1
            if r.speedup is not None:
                per_value[r.value].append(r.speedup)
        out = []
        for value in sorted(counts, key=str):
            s = per_value[value]
            geo = math.exp(sum(math.log(x) for x in s) / len(s)) if s else None
            out.append(Summary(value, counts[value], geo, min(s, default=None), max(s, default=None)))
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "baseline": {"axis": self.baseline.axis, "value": self.baseline.value},
            "definitions": {
                "speedup": "baseline latency_s / latency_s",
                "throughput_ratio": "throughput / baseline throughput",
                "memory_ratio": "model_share_bytes / baseline model_share_bytes (peak_rss_bytes for "
                "documents before schema 1.6)",
                "wer_delta": "wer - baseline wer",
                "energy_ratio": "energy per unit of work / baseline's",
            },
            "rows": [r.to_json() for r in self.rows],
            "summary": [s.__dict__ for s in self.summary()],
            "unmatched": [
                {"host": d.host, "run_id": d.run_id, "seq": d.seq, **_identity(d, MATCH_AXES)}
                for d in self.unmatched
            ],
            "superseded": self.superseded,
        }


def _identity(doc: ResultDocument, axes: Sequence[str]) -> dict[str, object]:
    return {a: axis_value(doc, a) for a in axes}


def _own_settings(doc: ResultDocument, own: Sequence[str]) -> list[str]:
    """The runtime's own settings of ``doc`` that are not their defaults, as short words."""
    words = []
    for a in own:
        v = axis_value(doc, a)
        if v is not None and v != RUNTIME_OWN_AXES[a]:
            words.append(a if v is True else f"{a.removeprefix('ort_')}={fmt_axis(v)}")
    return words


def _side(doc: ResultDocument, axis: str, own: Sequence[str]) -> str:
    """The compared value (``onnxruntime``), with its runtime's own settings where they are not the
    defaults (``torch torch_mode=compile``)."""
    return " ".join([fmt_axis(axis_value(doc, axis)), *_own_settings(doc, own)])


def compare(docs: Sequence[ResultDocument], baseline: Baseline) -> Comparison:
    """Match every result with the baseline result of the same configuration."""
    axis = baseline.axis
    if axis == "label":  # a named setup: the axes the labels stand for may all differ
        identity_axes: tuple[str, ...] = (*(a for a in MATCH_AXES if a not in LABELLED_AXES), "label")
    else:
        identity_axes = MATCH_AXES if axis in MATCH_AXES else (*MATCH_AXES, axis)
    present = sorted({fmt_axis(axis_value(d, axis)) for d in docs})
    if baseline.value not in present:
        raise EdgebenchError(
            f"baseline {baseline}: no selected result has {axis} '{baseline.value}' "
            f"({axis} values present: {', '.join(present)})"
        )
    newest: dict[tuple, ResultDocument] = {}
    superseded = 0
    for d in docs:
        ident = tuple(axis_value(d, a) for a in identity_axes)
        if ident in newest:
            superseded += 1
            if d.created_ns < newest[ident].created_ns:
                continue
        newest[ident] = d
    own = tuple(RUNTIME_OWN_AXES) if axis == "runtime" else ()  # cannot match across runtimes
    key_axes = [a for a in identity_axes if a != axis and a not in own]
    groups: dict[tuple, list[ResultDocument]] = defaultdict(list)
    for d in newest.values():
        groups[tuple(axis_value(d, a) for a in key_axes)].append(d)

    def group_order(k: tuple) -> tuple:
        parts = dict(zip(key_axes, k, strict=True))
        scen = _SCENARIO_ORDER.index(parts["scenario"]) if parts["scenario"] in _SCENARIO_ORDER else 99
        return (_order(parts.get("model")), scen, *(_order(v) for v in k))

    rows: list[Row] = []
    unmatched: list[ResultDocument] = []
    for k in sorted(groups, key=group_order):
        members = groups[k]
        bases = [d for d in members if fmt_axis(axis_value(d, axis)) == baseline.value]
        # The baseline runtime at its default settings where it was measured so (torch eager, not compile).
        base = min(bases, key=lambda d: len(_own_settings(d, own)), default=None)
        others = [d for d in members if d is not base]
        if base is None:
            unmatched += others
            continue
        if not others:
            continue  # a baseline measurement with nothing to compare against
        key = dict(zip(key_axes, k, strict=True))
        bm = metrics(base)
        rows.append(Row(key, _side(base, axis, own), base, base, True, bm, bm))
        for d in sorted(others, key=lambda d: _order(_side(d, axis, own))):
            rows.append(Row(key, _side(d, axis, own), d, base, False, metrics(d), bm))
    if not rows:
        raise EdgebenchError(
            f"nothing to compare against {baseline}: no configuration measured with {axis} "
            f"'{baseline.value}' was also measured with another {axis} ({axis} values present: "
            f"{', '.join(present)}; model, scenario, batch, input seconds, new tokens, CTC weight, dataset "
            "and the other setup axes must match)"
        )
    return Comparison(baseline, rows, unmatched, superseded)
