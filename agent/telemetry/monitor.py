"""Telemetry sampled on a background thread and summarised per measured window.

Readers that exist nowhere on this device are dropped once at start (no wasted syscalls per tick). The
Raspberry Pi flags cost a ``vcgencmd`` call, so the default period is 0.5 s — temperatures and governor
decisions move slower than that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgebench.agent.power.integrate import downsample
from edgebench.agent.power.sampler import PeriodicSampler
from edgebench.agent.results.schema import TelemetryResult
from edgebench.agent.telemetry import cpufreq, jetson, rpi, thermal

DEFAULT_PERIOD_S = 0.5
PI_FLAGS_EVERY = 4


@dataclass
class TelemetrySample:
    t: float
    temps: dict[str, float]
    freq_mhz: float | None
    pi_throttled: int | None
    throttle_counts: dict[str, int] | None


@dataclass
class TelemetryWindow:
    a: float
    wall_ns: int
    samples: list[TelemetrySample] = field(default_factory=list)


class TelemetryMonitor:
    """Samples telemetry every ``period_s``; :meth:`summarize` turns a window into a TelemetryResult."""

    def __init__(
        self,
        period_s: float = DEFAULT_PERIOD_S,
        jetson_state: Callable[[], tuple[str | None, bool | None]] | None = None,
    ) -> None:
        self.zones = thermal.thermal_zones()
        self.vcgencmd = rpi.vcgencmd_path()
        self.passive_trips = {z.name: z.passive_trip_c for z in self.zones if z.passive_trip_c}
        self._jetson_state = jetson_state
        self._nvpmodel = jetson.nvpmodel_mode()
        self._samples: list[TelemetrySample] = []
        self._ticks = 0
        self._lock = threading.Lock()
        self._sampler = PeriodicSampler(self.sample_now, period_s, name="edgebench-telemetry")

    def start(self) -> None:
        self.sample_now()
        self._sampler.start()

    def stop(self) -> None:
        self._sampler.stop()

    def sample_now(self, force: bool = False) -> None:
        """One sample. ``vcgencmd get_throttled`` (a process per call) runs only every
        ``PI_FLAGS_EVERY`` ticks and at window edges (``force``): its sticky bits record any throttling
        in between, so nothing is missed."""
        ask_pi = self.vcgencmd is not None and (force or self._ticks % PI_FLAGS_EVERY == 0)
        self._ticks += 1
        s = TelemetrySample(
            t=time.monotonic(),
            temps=thermal.read_temperatures(self.zones),
            freq_mhz=cpufreq.cpu_freq_mhz(),
            pi_throttled=rpi.get_throttled(self.vcgencmd) if ask_pi and self.vcgencmd else None,
            throttle_counts=cpufreq.thermal_throttle_counts(),
        )
        with self._lock:
            self._samples.append(s)

    def begin(self) -> TelemetryWindow:
        self.sample_now(force=True)
        with self._lock:
            a = self._samples[-1].t
            # keep the one sample before the window: it is the baseline of the throttle counters
            self._samples = self._samples[-1:]
        return TelemetryWindow(a=a, wall_ns=time.time_ns())

    def summarize(self, window: TelemetryWindow) -> TelemetryResult:
        self.sample_now(force=True)
        with self._lock:
            samples = [s for s in self._samples if s.t >= window.a]
        temps: dict[str, float] = {}
        for s in samples:
            for k, v in s.temps.items():
                temps[k] = max(v, temps.get(k, v))
        freqs = [s.freq_mhz for s in samples if s.freq_mhz is not None]
        flags, can_tell = self._throttle_flags(samples, temps)
        nvpmodel, clocks = self._nvpmodel, None
        if self._jetson_state is not None:
            mode, clocks = self._jetson_state()
            nvpmodel = mode or nvpmodel
        trace = [(s.t - window.a, max(s.temps.values()) if s.temps else None, s.freq_mhz) for s in samples]
        return TelemetryResult(
            temperatures_c=temps,
            temp_max_c=max(temps.values()) if temps else None,
            cpu_freq_mhz=sum(freqs) / len(freqs) if freqs else None,
            cpu_governor=cpufreq.cpu_governor(),
            throttled=bool(flags) if can_tell else None,
            throttle_flags=flags,
            nvpmodel=nvpmodel,
            jetson_clocks=clocks,
            trace_start_ns=window.wall_ns,
            trace=[tuple(p) for p in downsample(trace, 500)],  # type: ignore[misc]
        )

    def _throttle_flags(
        self, samples: list[TelemetrySample], temps: dict[str, float]
    ) -> tuple[list[str], bool]:
        """Flags, and whether this device can tell at all (else throttled is None, not False)."""
        flags: list[str] = []
        can_tell = False
        pi = [s.pi_throttled for s in samples if s.pi_throttled is not None]
        if pi:
            can_tell = True
            flags += rpi.window_flags(pi)
        counts = [s.throttle_counts for s in samples if s.throttle_counts]
        if counts:
            can_tell = True
            for kind in counts[0]:
                if counts[-1].get(kind, 0) > counts[0][kind]:
                    flags.append(f"{kind}-thermal-throttle")
        if self.passive_trips:
            can_tell = True
            for name, trip in sorted(self.passive_trips.items()):
                if temps.get(name, -1e9) >= trip:
                    flags.append(f"{name}-passive-trip")
        return flags, can_tell


def throttle_warning(t: TelemetryResult) -> str | None:
    if not t.throttled:
        return None
    hot = f", max {t.temp_max_c:.0f} °C" if t.temp_max_c is not None else ""
    flags = ", ".join(t.throttle_flags)
    return f"device throttled during the measurement ({flags}{hot}): results are not representative"
