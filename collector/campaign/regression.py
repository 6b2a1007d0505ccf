"""The regression check of ``campaign report --baseline``: did a configuration get slower (or faster)
on a device than it was in the baseline campaign?

Per configuration (same host, model, runtime, precision, device, scenario, shape and runtime options),
the per-iteration latency samples of both campaigns are compared with the Mann–Whitney U test
(two-sided, ``scipy.stats.mannwhitneyu``: no normality assumed; latencies are skewed). With many
configurations some would pass p < 0.05 by chance, so the p-values are corrected for multiple
comparisons (Holm–Bonferroni: controls the family-wise error rate, never less powerful than Bonferroni).
A statistically clear but tiny shift is not worth anyone's time — run-to-run drift of a few percent is
normal on a shared machine — so a change is flagged only when the corrected p-value is below ``alpha``
*and* the medians differ by at least ``min_effect`` (default 10 %). Both thresholds are printed with the
verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ALPHA = 0.01
MIN_EFFECT = 0.10
MIN_SAMPLES = 5
"""Fewer samples on either side: not tested (the rank test has no power there)."""


@dataclass(frozen=True)
class Verdict:
    key: tuple[str, ...]
    """The configuration (host first), as the report labels it."""
    baseline_n: int
    current_n: int
    baseline_median_s: float
    current_median_s: float
    ratio: float
    """current / baseline median latency (1.25 = 25 % slower)."""
    p_value: float | None
    p_adjusted: float | None
    verdict: Literal["regression", "improvement", "unchanged", "not tested"]
    note: str = ""


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def compare(
    baseline: dict[tuple[str, ...], list[float]],
    current: dict[tuple[str, ...], list[float]],
    alpha: float = ALPHA,
    min_effect: float = MIN_EFFECT,
) -> list[Verdict]:
    """A verdict for every configuration present in both campaigns (sorted by key)."""
    from scipy.stats import mannwhitneyu

    keys = sorted(set(baseline) & set(current))
    raw: list[tuple[tuple[str, ...], float, float, float | None, str]] = []
    for key in keys:
        a, b = baseline[key], current[key]
        ma, mb = _median(a), _median(b)
        ratio = mb / ma if ma > 0 else math.inf
        if min(len(a), len(b)) < MIN_SAMPLES:
            raw.append((key, ma, mb, None, f"fewer than {MIN_SAMPLES} samples"))
            continue
        p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        raw.append((key, ma, mb, p, ""))
    tested = [r[3] for r in raw if r[3] is not None]
    adjusted = iter(holm(tested)) if tested else iter(())
    out: list[Verdict] = []
    for key, ma, mb, p, note in raw:
        ratio = mb / ma if ma > 0 else math.inf
        if p is None:
            out.append(
                Verdict(
                    key, len(baseline[key]), len(current[key]), ma, mb, ratio, None, None, "not tested", note
                )
            )
            continue
        p_adj = next(adjusted)
        verdict: Literal["regression", "improvement", "unchanged"] = "unchanged"
        if p_adj < alpha and ratio >= 1 + min_effect:
            verdict = "regression"
        elif p_adj < alpha and ratio <= 1 / (1 + min_effect):
            verdict = "improvement"
        elif p_adj < alpha:
            note = f"significant but under the {min_effect:.0%} minimum effect"
        out.append(
            Verdict(key, len(baseline[key]), len(current[key]), ma, mb, ratio, p, p_adj, verdict, note)
        )
    return out
