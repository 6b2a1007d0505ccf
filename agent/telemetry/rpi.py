"""Raspberry Pi firmware throttling flags: ``vcgencmd get_throttled`` prints ``throttled=0x50005``.

Bits (Raspberry Pi documentation, "get_throttled"): 0 under-voltage now, 1 ARM frequency capped now,
2 throttled now, 3 soft temperature limit now; 16-19 the same conditions *have occurred* since boot.
"""

from __future__ import annotations

import re
import shutil
import subprocess

NOW_BITS = {0: "under-voltage", 1: "arm-frequency-capped", 2: "throttled", 3: "soft-temperature-limit"}
OCCURRED_BITS = {16 + k: f"{v}-occurred" for k, v in NOW_BITS.items()}


def vcgencmd_path() -> str | None:
    return shutil.which("vcgencmd")


def get_throttled(vcgencmd: str) -> int | None:
    try:
        out = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", out)
    return int(m.group(1), 0) if m else None


def decode(value: int) -> list[str]:
    """Names of the set flags, 'now' conditions first."""
    return [name for bit, name in {**NOW_BITS, **OCCURRED_BITS}.items() if value & (1 << bit)]


def window_flags(values: list[int]) -> list[str]:
    """Flags that show the device throttled during a window: any 'now' bit seen in a sample, or a sticky
    'occurred' bit that was clear in the first sample and set later."""
    flags: list[str] = []
    for bit, name in NOW_BITS.items():
        if any(v & (1 << bit) for v in values):
            flags.append(name)
    if values:
        first = values[0]
        for bit, name in OCCURRED_BITS.items():
            if not first & (1 << bit) and any(v & (1 << bit) for v in values[1:]):
                flags.append(name)
    return flags
