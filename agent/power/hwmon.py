"""Linux hwmon power monitors (Documentation/hwmon/sysfs-interface.rst): INA219/INA226/INA3221/INA238 …

A chip directory ``/sys/class/hwmon/hwmonN`` has ``name`` and either ``powerK_input`` (µW) or, as the
INA3221 driver does, bus voltage ``inK_input`` (mV) and ``currK_input`` (mA) per channel, labelled by
``inK_label``/``currK_label``/``powerK_label``; the power is then V x I. ``update_interval`` (ms), when the
chip has it, is the conversion period. When one rail is the board input (VDD_IN, VIN, POM_5V_IN, as on
Jetson carriers), it alone is the total — the others are downstream of it and would be counted twice.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from edgebench.agent.power.base import PowerSource, Reading, SourceUnavailable
from edgebench.agent.power.paths import read_int, read_text, sysfs_root

INPUT_RAILS = ("VIN", "VDD_IN", "POM_5V_IN", "VDD_IN_SYS")


@dataclass
class _Rail:
    name: str
    power: Path | None = None
    volt: Path | None = None
    curr: Path | None = None

    def watts(self) -> float | None:
        if self.power is not None:
            uw = read_int(self.power)
            return None if uw is None else uw / 1e6
        mv, ma = read_int(self.volt), read_int(self.curr)  # type: ignore[arg-type]
        return None if mv is None or ma is None else mv * ma / 1e6


def chip_rails(chip: Path) -> list[_Rail]:
    """The rails of one hwmon chip that measure power (empty when it only has temperatures, fans …)."""
    chip_name = read_text(chip / "name") or chip.name
    rails: list[_Rail] = []
    for p in sorted(chip.glob("power*_input")):
        k = re.match(r"power(\d+)_input", p.name)
        if k:
            label = read_text(chip / f"power{k.group(1)}_label") or f"{chip_name}-power{k.group(1)}"
            rails.append(_Rail(label, power=p))
    if rails:
        return rails
    for c in sorted(chip.glob("curr*_input")):
        k = re.match(r"curr(\d+)_input", c.name)
        v = chip / f"in{k.group(1)}_input" if k else None
        if k and v is not None and v.exists():
            n = k.group(1)
            label = (
                read_text(chip / f"in{n}_label") or read_text(chip / f"curr{n}_label") or f"{chip_name}-{n}"
            )
            rails.append(_Rail(label, volt=v, curr=c))
    return rails


class HwmonSource(PowerSource):
    name = "hwmon"
    kind = "measured"
    min_poll_period_s = 0.01

    def __init__(self, chip: str | None = None) -> None:
        super().__init__()
        self.chip_filter = chip
        self._rails: list[_Rail] = []

    def open(self) -> None:
        base = sysfs_root() / "class" / "hwmon"
        chips = sorted(base.glob("hwmon*"))
        found: list[tuple[Path, str, list[_Rail]]] = []
        for chip in chips:
            chip_name = read_text(chip / "name") or chip.name
            if self.chip_filter and chip_name != self.chip_filter:
                continue
            rails = chip_rails(chip)
            if rails:
                found.append((chip, chip_name, rails))
        if not found:
            which = f"named '{self.chip_filter}' " if self.chip_filter else ""
            raise SourceUnavailable(f"no hwmon chip {which}with power*_input or in*/curr*_input under {base}")
        chip, chip_name, rails = found[0]  # one meter: the first chip (pick another with hwmon:CHIP)
        inputs = [r for r in rails if r.name.upper() in INPUT_RAILS]
        self._rails = inputs[:1] or rails
        self.all_rails = rails
        self.name = f"hwmon:{chip_name}"
        self.rails = [r.name for r in self._rails]
        interval_ms = read_int(chip / "update_interval")
        self.update_period_s = interval_ms / 1000.0 if interval_ms else 0.1

    def read(self) -> Reading:
        t = time.monotonic()
        rails: dict[str, float] = {}
        for r in self.all_rails:
            w = r.watts()
            if w is not None:
                rails[r.name] = w
        missing = [r.name for r in self._rails if r.name not in rails]
        if missing:
            raise SourceUnavailable(f"{self.name}: cannot read rail(s) {', '.join(missing)}")
        return Reading(t=t, watts=sum(rails[r.name] for r in self._rails), rails=rails)
