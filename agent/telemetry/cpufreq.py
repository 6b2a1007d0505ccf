"""CPU frequency and governor (cpufreq sysfs; ``/proc/cpuinfo`` 'cpu MHz' where cpufreq is absent, as in
most VMs) and the x86 thermal-throttle event counters."""

from __future__ import annotations

import re
from pathlib import Path

from edgebench.agent.power.paths import proc_root, read_int, read_text, sysfs_root

_CPU_DIR = re.compile(r"cpu\d+$")


def _cpu_dirs(root: Path | None = None) -> list[Path]:
    base = (root or sysfs_root()) / "devices" / "system" / "cpu"
    return sorted(p for p in base.glob("cpu*") if _CPU_DIR.match(p.name))


def cpu_freq_mhz() -> float | None:
    """Mean current frequency over all CPUs in MHz (``scaling_cur_freq`` is in kHz)."""
    khz = [read_int(d / "cpufreq" / "scaling_cur_freq") for d in _cpu_dirs()]
    values = [k for k in khz if k]
    if values:
        return sum(values) / len(values) / 1000.0
    text = read_text(proc_root() / "cpuinfo")
    if text:
        mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)]
        if mhz:
            return sum(mhz) / len(mhz)
    return None


def cpu_governor() -> str | None:
    """The scaling governor ('performance', 'schedutil', …); 'a,b' when CPUs differ."""
    govs = sorted({g for d in _cpu_dirs() if (g := read_text(d / "cpufreq" / "scaling_governor"))})
    return ",".join(govs) if govs else None


def thermal_throttle_counts() -> dict[str, int] | None:
    """Sum over CPUs of ``thermal_throttle/{core,package}_throttle_count`` (Intel; None when absent).
    An increase during a window means the CPU throttled for heat during it."""
    totals: dict[str, int] = {}
    for d in _cpu_dirs():
        for kind in ("core", "package"):
            n = read_int(d / "thermal_throttle" / f"{kind}_throttle_count")
            if n is not None:
                totals[kind] = totals.get(kind, 0) + n
    return totals or None
