"""Thermal zones (``/sys/class/thermal/thermal_zone*``: ``type``, ``temp`` in millidegrees Celsius, and
``trip_point_N_type``/``trip_point_N_temp``). Jetson (CPU-therm, GPU-therm, …) and Raspberry Pi
(cpu-thermal) sensors appear here too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgebench.agent.power.paths import read_int, read_text, sysfs_root


@dataclass(frozen=True)
class Zone:
    name: str
    temp_path: Path
    passive_trip_c: float | None
    """Lowest 'passive' trip point: above it the kernel starts throttling (cooling by slowing down)."""


def thermal_zones(root: Path | None = None) -> list[Zone]:
    base = (root or sysfs_root()) / "class" / "thermal"
    zones: list[Zone] = []
    seen: dict[str, int] = {}
    paths = sorted(
        base.glob("thermal_zone*"), key=lambda p: int(p.name[12:] or 0) if p.name[12:].isdigit() else 0
    )
    for zone in paths:
        kind = read_text(zone / "type") or zone.name
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}.{seen[kind] - 1}"
        trips = []
        for trip_type in zone.glob("trip_point_*_type"):
            if read_text(trip_type) == "passive":
                temp = read_int(trip_type.with_name(trip_type.name.replace("_type", "_temp")))
                if temp is not None and temp > 0:
                    trips.append(temp / 1000.0)
        zones.append(Zone(name, zone / "temp", min(trips) if trips else None))
    return zones


def read_temperatures(zones: list[Zone]) -> dict[str, float]:
    """°C per zone; zones that fail to read (some report -EINVAL when a sensor is off) are left out."""
    out: dict[str, float] = {}
    for z in zones:
        milli = read_int(z.temp_path)
        if milli is not None and milli > -200_000:
            out[z.name] = milli / 1000.0
    return out
