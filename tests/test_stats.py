"""Statistics: exact values on known series, the t table, and every stopping-rule outcome."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from edgebench.agent.stats import (
    RunningStats,
    StoppingRule,
    mean_std,
    nearest_rank,
    summarize,
    t_critical_95,
)

ONE_TO_TEN = [float(i) for i in range(1, 11)]


def test_summary_of_one_to_ten_is_exact():
    s = summarize(ONE_TO_TEN)
    assert s.n == 10
    assert s.mean == 5.5
    assert s.std == pytest.approx(3.0276503540974917, abs=1e-15)
    assert s.cv == pytest.approx(3.0276503540974917 / 5.5)
    assert (s.min, s.max) == (1.0, 10.0)
    # Nearest rank: ceil(0.5*10)=5, ceil(0.9*10)=9, ceil(0.95*10)=10, ceil(0.99*10)=10.
    assert (s.p50, s.p90, s.p95, s.p99) == (5.0, 9.0, 10.0, 10.0)
    half = 2.262157163 * 3.0276503540974917 / math.sqrt(10)
    assert s.ci95_low == pytest.approx(5.5 - half, rel=1e-12)
    assert s.ci95_high == pytest.approx(5.5 + half, rel=1e-12)
    # The brief's rounded form of the same interval.
    assert s.ci95_high - s.mean == pytest.approx(2.262 * s.std / math.sqrt(10), rel=1e-4)


def test_summary_of_a_single_sample():
    s = summarize([0.25])
    assert (s.n, s.mean, s.std, s.cv) == (1, 0.25, 0.0, 0.0)
    assert s.min == s.max == s.p50 == s.p90 == s.p95 == s.p99 == 0.25
    assert s.ci95_low == s.ci95_high == 0.25


def test_summary_is_order_independent_and_accepts_ints():
    shuffled = [7, 3, 10, 1, 5, 2, 9, 4, 8, 6]
    assert summarize(shuffled) == summarize(ONE_TO_TEN)


def test_empty_samples_raise():
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        nearest_rank([], 50)


def test_zero_mean_gives_zero_cv():
    assert summarize([0.0, 0.0, 0.0]).cv == 0.0


@pytest.mark.parametrize(
    ("n", "p", "rank"),
    [(100, 99, 99), (100, 50, 50), (20, 95, 19), (3, 50, 2), (1, 99, 1), (7, 0, 1), (7, 100, 7)],
)
def test_nearest_rank_uses_exact_ceil(n, p, rank):
    assert nearest_rank(list(range(1, n + 1)), p) == rank


@pytest.mark.parametrize(
    ("df", "expected", "tol"),
    [
        (1, 12.706, 5e-4),
        (9, 2.262, 5e-4),
        (10, 2.228, 5e-4),
        (30, 2.042, 5e-4),
        (120, 1.980, 5e-4),
        # Interpolated in 1/df; exact values from scipy.stats.t.ppf(0.975, df).
        (35, 2.030107928, 1e-4),
        (50, 2.008559112, 1e-4),
        (80, 1.990063421, 1e-4),
        (200, 1.971896224, 1e-4),
        (1000, 1.962339081, 1e-4),
    ],
)
def test_t_critical_values(df, expected, tol):
    assert t_critical_95(df) == pytest.approx(expected, abs=tol)


def test_t_beyond_table_tends_to_normal():
    assert 1.96 < t_critical_95(200) < 1.98
    assert t_critical_95(10**9) == pytest.approx(1.959964, abs=1e-6)
    values = [t_critical_95(df) for df in range(1, 500)]
    assert all(a > b for a, b in itertools.pairwise(values)), "t must fall strictly with df"
    with pytest.raises(ValueError):
        t_critical_95(0)


def test_running_stats_match_two_pass():
    rng = random.Random(3)
    xs = [0.01 + rng.gauss(0, 0.001) for _ in range(500)]
    rs = RunningStats()
    for x in xs:
        rs.add(x)
    mean, std = mean_std(xs)
    assert rs.mean == pytest.approx(mean, rel=1e-12)
    assert rs.std == pytest.approx(std, rel=1e-9)
    assert rs.cv == pytest.approx(std / mean, rel=1e-9)


# --- stopping rule -----------------------------------------------------------------------------------


def test_keeps_going_until_both_minimums_are_met():
    rule = StoppingRule(min_iterations=10, min_duration_s=1.0)
    assert rule.should_stop([0.01] * 9, elapsed_s=5.0) is None  # duration met, iterations not
    assert rule.should_stop([0.01] * 50, elapsed_s=0.5) is None  # iterations met, duration not
    assert rule.should_stop([0.01] * 10, elapsed_s=1.0) == "min iterations and min duration reached"


def test_cv_target_met():
    rule = StoppingRule(min_iterations=10, min_duration_s=0.0, max_cv=0.03)
    steady = [0.010, 0.0101, 0.0099, 0.010, 0.0102, 0.0098, 0.010, 0.0101, 0.0099, 0.010]
    reason = rule.should_stop(steady, elapsed_s=0.1)
    cv = summarize(steady).cv
    assert cv < 0.03
    assert reason == f"cv {cv:.1%} <= 3.0%"


def test_cv_target_not_met_keeps_going_then_hits_caps():
    noisy = [0.01, 0.02] * 10  # cv ~ 34 %
    rule = StoppingRule(min_iterations=10, min_duration_s=0.0, max_cv=0.03, max_iterations=100)
    assert rule.should_stop(noisy, elapsed_s=1.0) is None
    capped = StoppingRule(min_iterations=10, min_duration_s=0.0, max_cv=0.03, max_iterations=20)
    cv = summarize(noisy).cv
    assert capped.should_stop(noisy, elapsed_s=1.0) == f"max iterations (cv {cv:.1%} still above 3.0%)"
    timed = StoppingRule(min_iterations=10, min_duration_s=0.0, max_cv=0.03, max_duration_s=2.0)
    assert timed.should_stop(noisy, elapsed_s=2.0) == f"max duration (cv {cv:.1%} still above 3.0%)"


def test_cv_passed_in_is_used_instead_of_recomputing():
    rule = StoppingRule(min_iterations=2, min_duration_s=0.0, max_cv=0.05)
    assert rule.should_stop([1.0, 2.0], elapsed_s=1.0, cv=0.01) == "cv 1.0% <= 5.0%"
    assert rule.should_stop([1.0, 1.0], elapsed_s=1.0, cv=0.2) is None


def test_single_sample_never_satisfies_a_cv_target():
    rule = StoppingRule(min_iterations=1, min_duration_s=0.0, max_cv=0.05)
    assert rule.should_stop([1.0], elapsed_s=1.0) is None


def test_plain_caps():
    rule = StoppingRule(min_iterations=10, min_duration_s=0.0, max_iterations=10)
    assert rule.should_stop([0.1] * 10, 0.5) == "min iterations and min duration reached"
    slow = StoppingRule(min_iterations=10, min_duration_s=1.0, max_duration_s=30.0)
    assert slow.should_stop([10.0] * 3, 30.0) == "max duration (only 3 of min 10 iterations)"
    few = StoppingRule(min_iterations=5, min_duration_s=10.0, max_iterations=5)
    assert few.should_stop([0.1] * 5, 0.5) == "max iterations (only 0.50 s of min 10 s)"
    exact = StoppingRule(min_iterations=1, min_duration_s=0.0, max_iterations=3)
    assert exact.should_stop([0.1] * 1, 0.1) == "min iterations and min duration reached"


def test_rule_validation():
    with pytest.raises(ValueError):
        StoppingRule(min_iterations=0)
    with pytest.raises(ValueError):
        StoppingRule(max_cv=0.0)
    with pytest.raises(ValueError):
        StoppingRule(warmup=-1)


def test_to_policy_round_trips_the_rule():
    rule = StoppingRule(warmup=3, min_iterations=20, min_duration_s=2.0, max_cv=0.05, allocator="system")
    policy = rule.to_policy("cv 2.0% <= 5.0%")
    assert policy.model_dump() == {
        "warmup": 3,
        "min_iterations": 20,
        "min_duration_s": 2.0,
        "max_cv": 0.05,
        "max_iterations": 10_000,
        "max_duration_s": 60.0,
        "stopped_because": "cv 2.0% <= 5.0%",
        "allocator": "system",
    }


# --- properties ------------------------------------------------------------------------------------


def _check_invariants(samples: list[float]) -> None:
    s = summarize(samples)
    assert s.min <= s.p50 <= s.p90 <= s.p95 <= s.p99 <= s.max
    assert s.ci95_low <= s.mean <= s.ci95_high
    assert s.min <= s.mean * (1 + 1e-12) and s.mean <= s.max * (1 + 1e-12)
    assert s.std >= 0


def _random_series(seed: int) -> list[float]:
    rng = random.Random(seed)
    n = rng.choice([1, 2, 3, 5, 10, 31, 100, 1000])
    kind = seed % 3
    if kind == 0:
        return [rng.uniform(1e-4, 1.0) for _ in range(n)]
    if kind == 1:  # heavy right tail, like real latencies with hiccups
        return [0.01 + rng.expovariate(500) for _ in range(n)]
    return [rng.choice([0.005, 0.005, 0.005, 0.05]) for _ in range(n)]


@pytest.mark.parametrize("seed", range(60))
def test_summary_invariants_random(seed):
    _check_invariants(_random_series(seed))


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # hypothesis is optional; the parametrized test above covers the same invariants
    pass
else:

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.floats(min_value=1e-6, max_value=1e3, allow_nan=False), min_size=1, max_size=200))
    def test_summary_invariants_hypothesis(samples):
        _check_invariants(samples)
