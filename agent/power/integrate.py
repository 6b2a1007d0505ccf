"""Joules from samples: pure functions, exact on the traces they are tested with.

Every series is stored as a cumulative energy counter ``J(t)``: counters come from the source (RAPL, NVML
total energy) or from trapezoidal integration of watts between consecutive samples. A window's energy is
then ``J(b) - J(a)`` with ``J`` linear between samples — for a watts source that is the trapezoid rule,
for a counter the counter difference — and held at the nearest sample's power just outside the sampled
span (a sample-and-hold sensor keeps its last value until it updates).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence


def counter_delta(previous: int, current: int, max_range: int) -> int:
    """Increase of a wrapping counter (RAPL ``energy_uj`` wraps at ``max_energy_range_uj``).

    One wrap between two reads is assumed: at 10 Hz that holds up to ~2.6 MW for a 262 kJ range.
    """
    delta = current - previous
    if delta < 0:
        delta += max_range
    return delta


def trapezoid_joules(times: Sequence[float], watts: Sequence[float]) -> list[float]:
    """Cumulative energy at each sample of a watts series (trapezoidal rule), starting at 0."""
    out = [0.0] * len(times)
    for i in range(1, len(times)):
        out[i] = out[i - 1] + (watts[i] + watts[i - 1]) * 0.5 * (times[i] - times[i - 1])
    return out


def counter_at(times: Sequence[float], joules: Sequence[float], watts: Sequence[float], t: float) -> float:
    """``J(t)``: linear between samples; outside the span, the nearest sample's power is held."""
    n = len(times)
    if n == 0:
        raise ValueError("no samples")
    if t <= times[0]:
        return joules[0] - watts[0] * (times[0] - t)
    if t >= times[-1]:
        return joules[-1] + watts[-1] * (t - times[-1])
    i = bisect_right(times, t)
    t0, t1 = times[i - 1], times[i]
    frac = (t - t0) / (t1 - t0)
    return joules[i - 1] + (joules[i] - joules[i - 1]) * frac


def window_joules(
    times: Sequence[float], joules: Sequence[float], watts: Sequence[float], a: float, b: float
) -> float:
    """Energy between monotonic times ``a`` and ``b``."""
    if b < a:
        raise ValueError(f"window ends before it starts ({a} > {b})")
    return counter_at(times, joules, watts, b) - counter_at(times, joules, watts, a)


def integrate_watts(times: Sequence[float], watts: Sequence[float], a: float, b: float) -> float:
    """Energy of a watts series over ``[a, b]`` (the trapezoid rule with clipped ends)."""
    return window_joules(times, trapezoid_joules(times, watts), watts, a, b)


def watts_from_counter(times: Sequence[float], joules: Sequence[float]) -> list[float]:
    """Mean power of each interval ending at a sample (``ΔJ/Δt``); the first sample gets the second's."""
    n = len(times)
    if n < 2:
        return [0.0] * n
    out = [0.0] * n
    for i in range(1, n):
        dt = times[i] - times[i - 1]
        out[i] = (joules[i] - joules[i - 1]) / dt if dt > 0 else out[i - 1]
    out[0] = out[1]
    return out


def span(times: Sequence[float], a: float, b: float) -> tuple[int, int]:
    """Index range [lo, hi) of samples with a <= t <= b."""
    return bisect_left(times, a), bisect_right(times, b)


def downsample(points: Sequence[tuple[float, ...]], limit: int = 500) -> list[tuple[float, ...]]:
    """At most ``limit`` points: consecutive buckets averaged (keeps the shape and the mean power, unlike
    dropping points). None values are averaged over the non-None ones."""
    n = len(points)
    if n <= limit:
        return [tuple(p) for p in points]
    out: list[tuple[float, ...]] = []
    for k in range(limit):
        bucket = points[k * n // limit : (k + 1) * n // limit]
        cols = []
        for c in range(len(bucket[0])):
            vals = [p[c] for p in bucket if p[c] is not None]
            cols.append(sum(vals) / len(vals) if vals else None)
        out.append(tuple(cols))
    return out
