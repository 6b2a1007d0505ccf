"""Everything the runner needs for energy and telemetry: one object per run.

``RunMonitor.start()`` opens the power source (or records why there is none), starts its sampler and the
telemetry thread, and measures the idle baseline before anything is loaded. ``window()`` marks a measured
window; ``finish()`` returns its EnergyResult (null fields + reason when there is no source), its
TelemetryResult and any warnings (throttling).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.agent.power.meter import EnergyMeter, EnergyWindow, Units
from edgebench.agent.results.schema import EnergyResult, TelemetryResult
from edgebench.agent.telemetry.monitor import TelemetryMonitor, TelemetryWindow, throttle_warning


@dataclass
class MonitorWindow:
    energy: EnergyWindow | None
    telemetry: TelemetryWindow | None

    def long_enough(self) -> bool:
        """False while the power source needs a longer window (repeat the workload)."""
        return self.energy is None or self.energy.long_enough()


class RunMonitor:
    def __init__(
        self,
        power_source: str = "auto",
        idle_s: float = 2.0,
        rate_hz: float | None = None,
        telemetry: bool = True,
    ) -> None:
        self.spec = power_source
        self.idle_s = idle_s
        self.rate_hz = rate_hz
        self.with_telemetry = telemetry
        self.meter: EnergyMeter | None = None
        self.reason: str | None = None
        self.telemetry: TelemetryMonitor | None = None

    def start(self) -> None:
        from edgebench.agent.power.detect import open_source

        source, self.reason = open_source(self.spec)
        if source is not None:
            self.meter = EnergyMeter(source, self.rate_hz, self.idle_s)
            self.meter.start()
        if self.with_telemetry:
            jetson_state = getattr(source, "jetson_state", None)
            self.telemetry = TelemetryMonitor(jetson_state=jetson_state)
            self.telemetry.start()

    def close(self) -> None:
        if self.meter is not None:
            self.meter.stop()
        if self.telemetry is not None:
            self.telemetry.stop()

    def __enter__(self) -> RunMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def window(self) -> MonitorWindow:
        return MonitorWindow(
            energy=self.meter.begin() if self.meter else None,
            telemetry=self.telemetry.begin() if self.telemetry else None,
        )

    def finish(
        self, window: MonitorWindow, units: Units | None
    ) -> tuple[EnergyResult, TelemetryResult | None, list[str]]:
        """``units=None``: a window without energy accounting (e.g. the load scenario)."""
        if self.meter is None or window.energy is None:
            energy = EnergyResult(unavailable_reason=self.reason)
        elif units is None:
            energy = self.meter.unavailable("energy is not measured for this scenario")
        else:
            energy = self.meter.end(window.energy, units)
        telemetry = (
            self.telemetry.summarize(window.telemetry) if self.telemetry and window.telemetry else None
        )
        warnings = []
        if telemetry is not None and (w := throttle_warning(telemetry)):
            warnings.append(w)
        return energy, telemetry, warnings
