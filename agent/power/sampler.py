"""Background sampling on the monotonic clock.

:class:`PeriodicSampler` calls a function every ``period_s`` on a daemon thread, scheduling against
absolute deadlines (``start + k * period``) so that the period does not drift with the cost of each call;
a late tick is skipped rather than bunched. :class:`PowerSampler` keeps a power source's samples as one
cumulative-energy series (see :mod:`.integrate`) that measured windows are cut from.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from edgebench.agent.power.base import PowerSource, Reading
from edgebench.agent.power.integrate import counter_at, span

MAX_CONSECUTIVE_ERRORS = 20


class PeriodicSampler:
    """Runs ``tick()`` every ``period_s`` seconds until :meth:`stop`. Exceptions from ``tick`` are counted;
    after ``MAX_CONSECUTIVE_ERRORS`` in a row the sampler gives up and keeps the last error."""

    def __init__(self, tick: Callable[[], None], period_s: float, name: str = "edgebench-sampler") -> None:
        if period_s <= 0:
            raise ValueError("period must be > 0")
        self.period_s = period_s
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None
        self.ticks = 0
        self.skipped = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(5.0, 3 * self.period_s))

    @property
    def failed(self) -> bool:
        return self.error is not None and not self._thread.is_alive()

    def _run(self) -> None:
        errors = 0
        period = self.period_s
        deadline = time.monotonic() + period  # callers take a sample themselves right before start()
        if self._stop.wait(period):
            return
        while True:
            try:
                self._tick()
                errors = 0
            except Exception as exc:  # a flaky sensor read must not kill the measurement at once
                self.error = exc
                errors += 1
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    return
            self.ticks += 1
            deadline += period
            now = time.monotonic()
            if deadline < now:  # overran: skip the missed ticks instead of firing them back to back
                missed = math.ceil((now - deadline) / period)
                self.skipped += missed
                deadline += missed * period
            if self._stop.wait(deadline - now):
                return


class PowerSampler:
    """Samples a source into parallel lists ``times``/``watts``/``joules`` (cumulative)."""

    def __init__(self, source: PowerSource, period_s: float) -> None:
        self.source = source
        self.times: list[float] = []
        self.watts: list[float] = []
        self.joules: list[float] = []
        self.last: Reading | None = None
        self._lock = threading.Lock()
        self._pending_counter: tuple[float, float] | None = None
        self._thread = PeriodicSampler(self.sample_now, period_s, name=f"edgebench-power-{source.name}")

    @property
    def period_s(self) -> float:
        return self._thread.period_s

    @property
    def error(self) -> BaseException | None:
        return self._thread.error if self._thread.failed else None

    def start(self, threaded: bool = True) -> None:
        self.sample_now()  # a first sample before any window can start
        if threaded:
            self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def sample_now(self) -> None:
        """Take one reading (also called at window boundaries so that polled sources have a sample there)."""
        with self._lock:
            reading = self.source.read()
            self._add(reading)

    def _add(self, r: Reading) -> None:
        if self.times and r.t <= self.times[-1]:
            return  # sample-and-hold source with no new value since the last poll
        self.last = r
        if r.joules is not None:
            if not self.times:
                # Counter without a previous value: the power so far is unknown until the next sample.
                self.times.append(r.t)
                self.joules.append(r.joules)
                self.watts.append(r.watts if r.watts is not None else 0.0)
                self._pending_counter = (r.t, r.joules)
                return
            dt = r.t - self.times[-1]
            w = r.watts if r.watts is not None else (r.joules - self.joules[-1]) / dt
            if self._pending_counter is not None and r.watts is None:
                self.watts[0] = w  # first interval's power, for holding before the first sample
                self._pending_counter = None
            self.times.append(r.t)
            self.joules.append(r.joules)
            self.watts.append(w)
            return
        if r.watts is None:
            return
        j = (
            0.0
            if not self.times
            else self.joules[-1] + (r.watts + self.watts[-1]) * 0.5 * (r.t - self.times[-1])
        )
        self.times.append(r.t)
        self.watts.append(r.watts)
        self.joules.append(j)

    def snapshot(self, a: float, b: float) -> tuple[list[float], list[float], list[float]]:
        """Copies of the samples in [a, b] plus one on each side (for interpolation at the edges)."""
        with self._lock:
            lo, hi = span(self.times, a, b)
            lo, hi = max(lo - 1, 0), min(hi + 1, len(self.times))
            return self.times[lo:hi], self.watts[lo:hi], self.joules[lo:hi]

    def energy(self, a: float, b: float) -> float:
        with self._lock:
            return counter_at(self.times, self.joules, self.watts, b) - counter_at(
                self.times, self.joules, self.watts, a
            )

    def trim_before(self, t: float) -> None:
        """Forget samples older than ``t`` (keeping one before it): a long run must not grow without bound."""
        with self._lock:
            lo = max(span(self.times, t, t)[0] - 1, 0)
            if lo > 0:
                del self.times[:lo], self.watts[:lo], self.joules[:lo]
