"""Energy arithmetic on synthetic traces: exact integration, idle subtraction, wrap-around, windows that
are too short, and the meter driven end to end through the replay source on a clock the test controls."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgebench.agent.power.base import PowerSource, Reading
from edgebench.agent.power.integrate import (
    counter_delta,
    downsample,
    integrate_watts,
    trapezoid_joules,
    window_joules,
)
from edgebench.agent.power.meter import EnergyMeter, Units, choose_period
from edgebench.agent.power.replay import ReplaySource
from edgebench.agent.power.sampler import PowerSampler

DATA = Path(__file__).parent / "data" / "power"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def grid(seconds: float, hz: float) -> list[float]:
    return [i / hz for i in range(round(seconds * hz) + 1)]


def test_constant_5w_for_2s_is_10j() -> None:
    t = grid(2.0, 10)
    assert integrate_watts(t, [5.0] * len(t), 0.0, 2.0) == pytest.approx(10.0, rel=0.005)
    assert integrate_watts(t, [5.0] * len(t), 0.0, 2.0) == pytest.approx(10.0, rel=1e-12)


def test_ramp_is_exact() -> None:
    t = grid(2.0, 10)  # 0 -> 10 W linearly over 2 s: 10 J
    w = [5.0 * x for x in t]
    assert integrate_watts(t, w, 0.0, 2.0) == pytest.approx(10.0, rel=1e-12)
    # a sub-window between samples: ∫_{0.55}^{1.45} 5t dt = 2.5 (1.45² - 0.55²) = 4.5
    assert integrate_watts(t, w, 0.55, 1.45) == pytest.approx(4.5, rel=1e-9)


def test_step_within_half_percent_at_100hz() -> None:
    t = grid(2.0, 100)  # 2 W for 1 s then 8 W for 1 s = 10 J
    w = [2.0 if x < 1.0 else 8.0 for x in t]
    assert integrate_watts(t, w, 0.0, 2.0) == pytest.approx(10.0, rel=0.005)


def test_step_exact_from_a_counter() -> None:
    # a counter (RAPL-like) integrates a step exactly whatever the sampling rate
    t = grid(2.0, 10)
    joules = [2.0 * x if x <= 1.0 else 2.0 + 8.0 * (x - 1.0) for x in t]
    from edgebench.agent.power.integrate import watts_from_counter

    w = watts_from_counter(t, joules)
    assert window_joules(t, joules, w, 0.0, 2.0) == pytest.approx(10.0, rel=1e-12)
    assert window_joules(t, joules, w, 0.5, 1.5) == pytest.approx(1.0 + 4.0, rel=1e-12)


def test_window_beyond_samples_holds_the_edge_power() -> None:
    t = [1.0, 2.0]
    assert integrate_watts(t, [4.0, 4.0], 0.5, 2.5) == pytest.approx(8.0)


def test_trapezoid_cumulative() -> None:
    assert trapezoid_joules([0, 1, 3], [2, 4, 4]) == [0.0, 3.0, 11.0]


def test_wrap_around() -> None:
    max_range = 262_143_328_850
    assert counter_delta(max_range - 1_000, 500, max_range) == 1_500
    assert counter_delta(10, 25, max_range) == 15


def test_downsample_keeps_mean_and_limit() -> None:
    pts = [(float(i), float(i % 7), None if i % 3 else 1.0) for i in range(2000)]
    out = downsample(pts, 500)
    assert len(out) == 500
    assert sum(p[1] for p in out) / 500 == pytest.approx(sum(p[1] for p in pts) / 2000, rel=1e-9)
    assert all(p[2] in (None, 1.0) for p in out)
    assert downsample(pts[:10], 500) == pts[:10]


# ------------------------------------------------------------------ the meter on a controlled clock


def drive(meter: EnergyMeter, clock: FakeClock, seconds: float, hz: float = 10.0) -> None:
    """Advance the fake clock, sampling as the background thread would."""
    for _ in range(round(seconds * hz)):
        clock.now += 1.0 / hz
        meter.sampler.sample_now()


def replay_meter(trace: Path, clock: FakeClock, idle_s: float) -> EnergyMeter:
    source = ReplaySource(str(trace), clock=clock)
    source.open()

    def sleep(s: float) -> None:
        for _ in range(round(s * 10)):
            clock.now += 0.1
            meter.sampler.sample_now()

    meter = EnergyMeter(source, idle_s=idle_s, clock=clock, sleep=sleep, threaded=False)
    return meter


def test_meter_constant_5w_window_and_idle_subtraction(tmp_path: Path) -> None:
    clock = FakeClock()
    trace = tmp_path / "t.csv"  # 2 W idle for the first 1 s, then 5 W: looping would bring 2 W back
    rows = [f"{i / 10:g},{2 if i <= 9 else 5}" for i in range(1000)]  # 10 Hz, like a real capture
    trace.write_text("t_s,watts\n" + "\n".join(rows) + "\n")
    meter = replay_meter(trace, clock, idle_s=0.9)
    meter.start()
    assert meter.idle_w == pytest.approx(2.0, rel=1e-12)
    drive(meter, clock, 1.0)  # past the 2 W -> 5 W edge
    window = meter.begin()
    drive(meter, clock, 2.0)
    assert window.long_enough()
    r = meter.end(window, Units(iterations=4, tokens=40, audio_s=8.0))
    assert r.joules_total == pytest.approx(10.0, rel=1e-9)
    assert r.joules_net == pytest.approx(10.0 - 2.0 * 2.0, rel=1e-9)
    assert r.joules_per_iteration == pytest.approx(2.5)
    assert r.joules_net_per_iteration == pytest.approx(1.5)
    assert r.joules_per_token == pytest.approx(0.25)
    assert r.joules_per_audio_s == pytest.approx(1.25)
    assert r.average_w == pytest.approx(5.0) and r.peak_w == pytest.approx(5.0)
    assert r.window_s == pytest.approx(2.0) and r.samples == 21
    assert r.sample_period_s == pytest.approx(0.1)
    assert r.trace[0] == (0.0, 5.0) and r.trace[-1][0] == pytest.approx(2.0)
    assert r.source == "replay" and r.kind == "measured" and r.unavailable_reason is None


def test_meter_step_trace_through_replay() -> None:
    clock = FakeClock()
    meter = replay_meter(DATA / "step_2w_8w.csv", clock, idle_s=0)
    meter.start()
    window = meter.begin()
    drive(meter, clock, 2.0, hz=100)
    r = meter.end(window, Units(iterations=1))
    # the recorded step has one 50 ms linear edge (2 -> 8 W between 0.95 s and 1.0 s): 9.85 J
    assert r.joules_total == pytest.approx(2.0 * 0.95 + 5.0 * 0.05 + 8.0 * 1.0, rel=0.005)
    assert r.idle_w is None and r.joules_net is None


def test_window_shorter_than_updates_is_unavailable_not_zero() -> None:
    clock = FakeClock()

    class SlowCounter(PowerSource):
        """A sensor that updates every 1 s (sample-and-hold, like jtop or powertop)."""

        name = "slow"
        update_period_s = 1.0

        def open(self) -> None: ...

        def read(self) -> Reading:
            tick = math.floor(clock.now)
            return Reading(t=float(tick), joules=3.0 * tick)

    meter = EnergyMeter(SlowCounter(), idle_s=0, clock=clock, threaded=False)
    meter.start()
    assert meter.min_window_s == 5.0  # five updates of the sensor
    window = meter.begin()
    drive(meter, clock, 0.5)
    assert not window.long_enough()
    r = meter.end(window, Units(iterations=3))
    assert r.joules_total is None and r.joules_per_iteration is None
    assert "too short" in (r.unavailable_reason or "")
    clock.now = 2000.0
    window = meter.begin()
    drive(meter, clock, 5.0)
    r = meter.end(window, Units(iterations=3))
    assert r.joules_total == pytest.approx(15.0, rel=1e-9)


def test_choose_period() -> None:
    class S(PowerSource):
        def open(self) -> None: ...
        def read(self) -> Reading:
            return Reading(0.0, 1.0)

    s = S()
    s.update_period_s, s.min_poll_period_s = 1.0, 0.01
    assert choose_period(s, None) == 0.1  # slow sensor: still at least 10 Hz
    s.update_period_s = 0.02
    assert choose_period(s, None) == 0.02  # the native period when faster
    assert choose_period(s, 1000) == 0.01  # never faster than the source can be polled
    assert choose_period(s, 2) == 0.5


def test_background_sampler_on_the_real_clock() -> None:
    """The threaded sampler on the monotonic clock: a constant trace integrates to watts x window."""
    import time

    source = ReplaySource(str(DATA / "constant_5w.csv"))
    source.open()
    sampler = PowerSampler(source, 0.01)
    sampler.start()
    a = time.monotonic()
    time.sleep(0.3)
    sampler.sample_now()
    b = time.monotonic()
    sampler.stop()
    assert len(sampler.times) >= 3
    assert sampler.energy(a, b) == pytest.approx(5.0 * (b - a), rel=1e-9)
