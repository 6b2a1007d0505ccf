"""All statistics of edgebench in one module: summaries of timing series and the stopping rule.

Kept dependency-free (no numpy, no scipy) on purpose: the agent runs on small boards where every import
costs start-up time and memory, and the numbers here must be reproducible bit for bit on any platform, so
they are computed with plain floats in a fixed order.

Percentiles are *nearest-rank* (the value at 1-based rank ``ceil(p/100 * n)``), as MLPerf LoadGen reports
them: every reported percentile is a latency that was actually observed, never an interpolation between
two runs, and the definition is unambiguous for small ``n``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from edgebench.agent.results.schema import MeasurementPolicy, Summary

# Exact two-sided 95 % critical values t_{0.975, df} of Student's t distribution (computed with
# scipy.stats.t.ppf, rounded to 9 decimals). Between table points we interpolate linearly in 1/df, which
# is how printed t tables are meant to be read: t is very nearly linear in 1/df for large df, so the error
# stays below 1e-4 everywhere (e.g. df=35: 2.03016 vs exact 2.03011; df=200: 1.97194 vs 1.97190).
# Beyond df=120 we interpolate towards the normal quantile 1.959964 at 1/df = 0 (df = infinity).
_T975: dict[int, float] = {
    1: 12.706204736,
    2: 4.302652730,
    3: 3.182446305,
    4: 2.776445105,
    5: 2.570581836,
    6: 2.446911851,
    7: 2.364624252,
    8: 2.306004135,
    9: 2.262157163,
    10: 2.228138852,
    11: 2.200985160,
    12: 2.178812830,
    13: 2.160368656,
    14: 2.144786688,
    15: 2.131449546,
    16: 2.119905299,
    17: 2.109815578,
    18: 2.100922040,
    19: 2.093024054,
    20: 2.085963447,
    21: 2.079613845,
    22: 2.073873068,
    23: 2.068657610,
    24: 2.063898562,
    25: 2.059538553,
    26: 2.055529439,
    27: 2.051830516,
    28: 2.048407142,
    29: 2.045229642,
    30: 2.042272456,
    40: 2.021075390,
    60: 2.000297822,
    120: 1.979930405,
}
_Z975 = 1.959963985
"""Normal 97.5 % quantile: the limit of t_{0.975, df} as df → infinity."""
_T_POINTS = sorted(_T975)


def t_critical_95(df: int) -> float:
    """Two-sided 95 % Student t critical value for ``df`` degrees of freedom (see the table above)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df in _T975:
        return _T975[df]
    # Bracket df by table points; above the last one the upper bracket is df = infinity (1/df = 0).
    lo = max(p for p in _T_POINTS if p < df)
    hi = next((p for p in _T_POINTS if p > df), None)
    x_lo, y_lo = 1.0 / lo, _T975[lo]
    x_hi, y_hi = (0.0, _Z975) if hi is None else (1.0 / hi, _T975[hi])
    x = 1.0 / df
    return y_hi + (y_lo - y_hi) * (x - x_hi) / (x_lo - x_hi)


def nearest_rank(sorted_samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted samples: the value at 1-based rank ceil(p/100 * n).

    The rank is computed in exact rational arithmetic so that e.g. p=90, n=10 gives rank 9 and not 10
    through a float rounding of 0.9 * 10.
    """
    n = len(sorted_samples)
    if n == 0:
        raise ValueError("percentile of an empty series")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {p}")
    rank = math.ceil(Fraction(str(p)) * n / 100)
    return sorted_samples[min(max(rank, 1), n) - 1]


def mean_std(samples: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n-1 denominator; 0 for a single sample).

    Two-pass (mean first, then squared deviations): numerically stable for latencies, whose spread is
    tiny compared to their magnitude.
    """
    n = len(samples)
    if n == 0:
        raise ValueError("mean of an empty series")
    mean = math.fsum(samples) / n
    if n == 1:
        return mean, 0.0
    var = math.fsum((x - mean) ** 2 for x in samples) / (n - 1)
    return mean, math.sqrt(var)


def coefficient_of_variation(mean: float, std: float) -> float:
    """std/mean as a fraction; 0 when the mean is 0 (nothing meaningful to relate the spread to)."""
    return std / mean if mean != 0 else 0.0


def summarize(samples: Sequence[float]) -> Summary:
    """Summary statistics of a series: mean, sample std, cv, min/max, nearest-rank percentiles, 95 % CI.

    The confidence interval is ``mean ± t_{0.975, n-1} * std / sqrt(n)``; for n == 1 it collapses to the
    single value (there is no spread to estimate from).
    """
    n = len(samples)
    if n == 0:
        raise ValueError("cannot summarize an empty series of samples")
    values = [float(x) for x in samples]
    ordered = sorted(values)
    mean, std = mean_std(values)
    half = t_critical_95(n - 1) * std / math.sqrt(n) if n > 1 else 0.0
    return Summary(
        n=n,
        mean=mean,
        std=std,
        cv=coefficient_of_variation(mean, std),
        min=ordered[0],
        max=ordered[-1],
        p50=nearest_rank(ordered, 50),
        p90=nearest_rank(ordered, 90),
        p95=nearest_rank(ordered, 95),
        p99=nearest_rank(ordered, 99),
        ci95_low=mean - half,
        ci95_high=mean + half,
    )


@dataclass
class StoppingRule:
    """When to stop measuring.

    Keep measuring until *both* ``min_iterations`` and ``min_duration_s`` are reached (so fast models get
    many samples and slow ones still run long enough to average out frequency/thermal jitter). If
    ``max_cv`` is set, additionally keep going until the coefficient of variation of the samples is at or
    below it — but never beyond the caps ``max_iterations`` / ``max_duration_s``, which win over every
    other criterion so a run on a noisy or very slow board always ends; the reason then says which target
    was not met, so a reader can judge the result.

    ``max_cv`` is a fraction (0.03 = 3 %); the CLI takes percent and converts before building the rule.
    ``warmup`` iterations are run by the latency tracker and never recorded.
    """

    warmup: int = 2
    min_iterations: int = 10
    min_duration_s: float = 1.0
    max_cv: float | None = None
    max_iterations: int = 10_000
    max_duration_s: float = 60.0
    allocator: str | None = None
    """The malloc configuration in effect (``agent/allocator.py``), recorded with the policy."""

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.min_iterations < 1:
            raise ValueError(f"min_iterations must be >= 1, got {self.min_iterations}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if self.max_cv is not None and self.max_cv <= 0:
            raise ValueError(f"max_cv must be a positive fraction, got {self.max_cv}")

    def should_stop(self, samples: Sequence[float], elapsed_s: float, cv: float | None = None) -> str | None:
        """Reason to stop now, or None to keep measuring.

        ``elapsed_s`` is the wall time of the measured loop so far (warm-up excluded). ``cv`` may be passed
        when the caller maintains it incrementally (the latency tracker does, with Welford's algorithm);
        otherwise it is computed from ``samples`` — O(n), and only when ``max_cv`` is set and the minimums
        are reached, so callers without a cv pay nothing for it.
        """
        n = len(samples)
        minimums_met = n >= self.min_iterations and elapsed_s >= self.min_duration_s
        cv_met: bool | None = None  # None: no cv target
        if self.max_cv is not None:
            if cv is None:
                cv = _cv_of(samples)
            # One sample has cv 0 by definition; that says nothing about stability.
            cv_met = n >= 2 and cv <= self.max_cv
        if minimums_met:
            if cv_met is None:
                return "min iterations and min duration reached"
            if cv_met:
                return f"cv {cv:.1%} <= {self.max_cv:.1%}"
        cap = None
        if n >= self.max_iterations:
            cap = "max iterations"
        elif elapsed_s >= self.max_duration_s:
            cap = "max duration"
        if cap is None:
            return None
        unmet = []
        if n < self.min_iterations:
            unmet.append(f"only {n} of min {self.min_iterations} iterations")
        if elapsed_s < self.min_duration_s:
            unmet.append(f"only {elapsed_s:.2f} s of min {self.min_duration_s:g} s")
        if cv_met is False:
            unmet.append(f"cv {cv:.1%} still above {self.max_cv:.1%}")
        return f"{cap} ({'; '.join(unmet)})" if unmet else cap

    def to_policy(self, reason: str) -> MeasurementPolicy:
        """The rule and the reason it stopped, as recorded in the result document."""
        return MeasurementPolicy(
            warmup=self.warmup,
            min_iterations=self.min_iterations,
            min_duration_s=self.min_duration_s,
            max_cv=self.max_cv,
            max_iterations=self.max_iterations,
            max_duration_s=self.max_duration_s,
            stopped_because=reason,
            allocator=self.allocator,
        )


def _cv_of(samples: Sequence[float]) -> float:
    if not samples:
        return 0.0
    mean, std = mean_std(samples)
    return coefficient_of_variation(mean, std)


class RunningStats:
    """Welford's online mean/variance, so the latency loop can check a cv target in O(1) per sample.

    Recomputing the cv from all samples every iteration would make a long run O(n²) and add overhead
    inside the measurement loop; Welford is also numerically stable (no catastrophic cancellation).
    """

    __slots__ = ("_m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (x - self.mean)

    @property
    def std(self) -> float:
        """Sample standard deviation (n-1); 0 for fewer than two samples."""
        return math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 0.0

    @property
    def cv(self) -> float:
        return coefficient_of_variation(self.mean, self.std)
