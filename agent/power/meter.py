"""An energy meter for measured windows: a source, its sampler, the idle baseline, and the arithmetic
that turns a window into an :class:`EnergyResult`.

Windows shorter than a few of the source's update periods cannot be measured (Zeus on Jetson: a window
inside one update reads 0 J). :attr:`EnergyMeter.min_window_s` says how long a window must be; the
scenarios repeat the workload until it is (see ``scenarios/base.py``), and a window that still saw too
few updates is reported as unavailable with the reason, never as 0 J.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgebench.agent.power.base import PowerSource
from edgebench.agent.power.integrate import downsample, span, window_joules
from edgebench.agent.power.sampler import PowerSampler
from edgebench.agent.results.schema import EnergyResult

DEFAULT_RATE_HZ = 10.0
MIN_WINDOW_S = 0.5
UPDATES_PER_WINDOW = 5
TRACE_POINTS = 500


def choose_period(source: PowerSource, rate_hz: float | None) -> float:
    """Sampling period: the requested rate, else the source's native period but at least 10 Hz; never
    faster than the source can usefully be polled."""
    period = 1.0 / rate_hz if rate_hz else min(source.update_period_s, 1.0 / DEFAULT_RATE_HZ)
    return max(period, source.min_poll_period_s)


@dataclass
class EnergyWindow:
    a: float
    wall_ns: int
    min_s: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def elapsed_s(self) -> float:
        return self.clock() - self.a

    def long_enough(self) -> bool:
        return self.elapsed_s() >= self.min_s


@dataclass
class Units:
    """What the window did, to express energy per unit of work."""

    iterations: int
    tokens: int | None = None
    audio_s: float | None = None
    repeats: int = 0


class EnergyMeter:
    """``clock``/``sleep``/``threaded`` exist for tests that drive time themselves (a fake clock shared
    with a replay source); production uses the monotonic clock and the background sampler."""

    def __init__(
        self,
        source: PowerSource,
        rate_hz: float | None = None,
        idle_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        threaded: bool = True,
    ) -> None:
        self.source = source
        self.sampler = PowerSampler(source, choose_period(source, rate_hz))
        self.idle_s = idle_s
        self.idle_w: float | None = None
        self._clock = clock
        self._sleep = sleep
        self._threaded = threaded

    @property
    def min_window_s(self) -> float:
        return max(
            MIN_WINDOW_S,
            UPDATES_PER_WINDOW * self.source.update_period_s,
            UPDATES_PER_WINDOW * self.sampler.period_s,
        )

    def start(self) -> None:
        """Start sampling and measure the idle baseline (the process does nothing meanwhile)."""
        self.sampler.start(threaded=self._threaded)
        if self.idle_s > 0:
            self.sampler.sample_now()
            a = self._clock()
            self._sleep(max(self.idle_s, self.min_window_s))
            self.sampler.sample_now()
            b = self._clock()
            joules = self.sampler.energy(a, b)
            self.idle_w = joules / (b - a)

    def stop(self) -> None:
        self.sampler.stop()
        self.source.close()

    def begin(self) -> EnergyWindow:
        self.sampler.sample_now()
        a = self._clock()
        self.sampler.trim_before(a - 60.0)
        return EnergyWindow(a=a, wall_ns=time.time_ns(), min_s=self.min_window_s, clock=self._clock)

    def unavailable(self, reason: str) -> EnergyResult:
        return EnergyResult(
            source=self.source.name,
            kind=self.source.kind,
            rails=list(self.source.rails),
            unavailable_reason=reason,
        )

    def end(self, window: EnergyWindow, units: Units) -> EnergyResult:
        self.sampler.sample_now()
        b = self._clock()
        if self.sampler.error is not None:
            return self.unavailable(
                f"{self.source.name} stopped reading during the run: {self.sampler.error}"
            )
        times, watts, joules = self.sampler.snapshot(window.a, b)
        return summarize_window(times, watts, joules, window.a, b, units, self.idle_w, window.wall_ns, self)


def summarize_window(
    times: list[float],
    watts: list[float],
    joules: list[float],
    a: float,
    b: float,
    units: Units,
    idle_w: float | None,
    wall_ns: int,
    meter: EnergyMeter,
) -> EnergyResult:
    """The arithmetic of one window (separate from the clock so tests can feed exact series)."""
    src = meter.source
    lo, hi = span(times, a, b)
    inside_t, inside_w = times[lo:hi], watts[lo:hi]
    window_s = b - a
    if hi - lo < 2 or not times:
        return meter.unavailable(
            f"the {window_s:.2f} s window saw {hi - lo} update(s) of {src.name} (updates every "
            f"{src.update_period_s:g} s): too short to measure"
        )
    total = window_joules(times, joules, watts, a, b)
    if total <= 0:
        return meter.unavailable(
            f"{src.name} reported no energy over a {window_s:.2f} s window (sensor not updating?)"
        )
    net = None if idle_w is None else total - idle_w * window_s

    def per(value: float | None, count: float | None) -> float | None:
        return None if value is None or not count else value / count

    return EnergyResult(
        source=src.name,
        kind=src.kind,
        rails=list(src.rails),
        sample_period_s=(inside_t[-1] - inside_t[0]) / (len(inside_t) - 1),
        samples=len(inside_t),
        window_s=window_s,
        repeats=units.repeats,
        idle_w=idle_w,
        joules_total=total,
        joules_net=net,
        joules_per_iteration=per(total, units.iterations),
        joules_net_per_iteration=per(net, units.iterations),
        joules_per_token=per(total, units.tokens),
        joules_net_per_token=per(net, units.tokens),
        joules_per_audio_s=per(total, units.audio_s),
        joules_net_per_audio_s=per(net, units.audio_s),
        average_w=total / window_s,
        peak_w=max(inside_w),
        trace_start_ns=wall_ns,
        trace=[
            (float(t), float(w))
            for t, w in downsample(
                [(t - a, w) for t, w in zip(inside_t, inside_w, strict=True)], TRACE_POINTS
            )
        ],
    )
