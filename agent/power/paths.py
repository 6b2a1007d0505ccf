"""Roots of the kernel's pseudo file systems, overridable so tests can lay out a fake sysfs tree.

``EDGEBENCH_SYSFS_ROOT`` (default ``/sys``) and ``EDGEBENCH_PROC_ROOT`` (default ``/proc``) are honoured by
every power source and telemetry reader; the paths below them follow the kernel ABI documentation
(Documentation/ABI/testing/sysfs-class-powercap, sysfs-class-hwmon, sysfs-class-thermal, cpufreq).
"""

from __future__ import annotations

import os
from pathlib import Path


def sysfs_root() -> Path:
    return Path(os.environ.get("EDGEBENCH_SYSFS_ROOT") or "/sys")


def proc_root() -> Path:
    return Path(os.environ.get("EDGEBENCH_PROC_ROOT") or "/proc")


def read_text(path: Path) -> str | None:
    """File content stripped, or None when absent/unreadable (sysfs attributes come and go)."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None
