"""Jetson power mode: ``nvpmodel -q`` prints ``NV Power Mode: MAXN`` then the mode id. jetson_clocks'
state needs root to query directly; it comes from jtop when the jtop power source is active."""

from __future__ import annotations

import re
import shutil
import subprocess


def nvpmodel_mode() -> str | None:
    exe = shutil.which("nvpmodel")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-q"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"NV Power Mode:\s*(\S+)", out)
    return m.group(1) if m else None
