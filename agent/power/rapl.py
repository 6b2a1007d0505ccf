"""Intel/AMD RAPL through the powercap framework (Documentation/power/powercap/powercap.rst).

``/sys/class/powercap/intel-rapl:N`` is a package zone (``name`` = ``package-N``); its subzones
``intel-rapl:N:M`` are ``core``, ``uncore`` and ``dram`` (AMD's ``amd_energy``/RAPL driver exposes the
same tree). Each zone has ``energy_uj``, a counter in microjoules that wraps at ``max_energy_range_uj``.
The total is package + dram: core and uncore are *inside* the package and would be counted twice.
``intel-rapl-mmio:*`` duplicates the package domain on newer Intel CPUs and is skipped for that reason.

Since Linux 5.10 (CVE-2020-8694, "Platypus") ``energy_uj`` is readable by root only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edgebench.agent.power.base import PowerSource, Reading, SourceUnavailable
from edgebench.agent.power.integrate import counter_delta
from edgebench.agent.power.paths import read_int, read_text, sysfs_root

SUMMED = ("package", "dram", "psys")


@dataclass
class _Domain:
    name: str
    energy: Path
    max_range: int
    last: int = 0
    total_uj: int = 0


class RaplSource(PowerSource):
    name = "rapl"
    kind = "measured"
    update_period_s = 0.001  # the counters update about every millisecond
    min_poll_period_s = 0.05  # a counter integrates exactly at any rate; 20 Hz is plenty for the trace

    def __init__(self) -> None:
        super().__init__()
        self.domains: list[_Domain] = []
        self.other_domains: list[str] = []

    def open(self) -> None:
        base = sysfs_root() / "class" / "powercap"
        zones = sorted(p for p in base.glob("intel-rapl:*") if (p / "energy_uj").exists())
        if not zones:
            raise SourceUnavailable(
                f"no RAPL zones under {base} (not an Intel/AMD x86 CPU, or a VM without RAPL)"
            )
        domains: list[_Domain] = []
        for zone in zones:
            name = read_text(zone / "name") or zone.name
            if not name.startswith(SUMMED):
                self.other_domains.append(name)
                continue
            max_range = read_int(zone / "max_energy_range_uj")
            if not max_range:
                raise SourceUnavailable(
                    f"{zone}/max_energy_range_uj is missing: cannot handle counter wrap-around"
                )
            domains.append(_Domain(name, zone / "energy_uj", max_range))
        # psys (platform) already contains the packages and dram: use it alone when present
        psys = [d for d in domains if d.name == "psys"]
        self.domains = psys or domains
        for d in self.domains:
            d.last = self._read(d)
        self.rails = [d.name for d in self.domains]

    @staticmethod
    def _read(domain: _Domain) -> int:
        try:
            return int(domain.energy.read_text())
        except PermissionError:
            raise SourceUnavailable(
                f"no permission to read {domain.energy}: energy_uj is root-only since Linux 5.10 "
                "(CVE-2020-8694); run as root, or grant read access (e.g. a udev rule or "
                f"`sudo chmod o+r {domain.energy.parent}/*/energy_uj`)"
            ) from None
        except (OSError, ValueError) as e:
            raise SourceUnavailable(f"cannot read {domain.energy}: {e}") from None

    def read(self) -> Reading:
        t = time.monotonic()
        total = 0
        for d in self.domains:
            now = self._read(d)
            d.total_uj += counter_delta(d.last, now, d.max_range)
            d.last = now
            total += d.total_uj
        return Reading(t=t, joules=total / 1e6)
