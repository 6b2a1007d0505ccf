"""Raspberry Pi 5 PMIC rails via ``vcgencmd pmic_read_adc``.

The firmware prints one line per ADC channel: ``VDD_CORE_A current(7)=0.75012000A`` and
``VDD_CORE_V volt(15)=0.72060000V``. Rails are paired by name (the channel numbers of a rail's current and
voltage differ); power = V x A summed over paired rails. ``EXT5V_V`` (the USB-C input) has no current
channel, so the board input cannot be measured: the sum of the PMIC rails misses the USB/Ethernet/HAT
loads and the PMIC's conversion losses, so this source is an **estimate** of the board's power.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

from edgebench.agent.power.base import PowerSource, Reading, SourceUnavailable

_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-+0-9.eE]+|nan)([AV])\s*$", re.MULTILINE)


def parse_pmic(text: str) -> dict[str, float]:
    """Watts per rail from ``pmic_read_adc`` output (rails with both a current and a voltage)."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for rail, kind, value, _unit in _LINE.findall(text):
        try:
            x = float(value)
        except ValueError:
            continue
        if x != x:  # nan
            continue
        (amps if kind == "A" else volts)[rail] = x
    return {r: amps[r] * volts[r] for r in sorted(amps) if r in volts}


class RpiPmicSource(PowerSource):
    name = "rpi-pmic"
    kind = "estimated"
    update_period_s = 0.2
    # One vcgencmd process per read (a few ms of CPU on a Pi 5): 5 Hz keeps the meter's own cost, which
    # lands in the measurement, small. --power-rate can ask for less, not more.
    min_poll_period_s = 0.2

    def __init__(self) -> None:
        super().__init__()
        self.exe: str | None = None

    def _run(self) -> str:
        assert self.exe is not None
        try:
            proc = subprocess.run([self.exe, "pmic_read_adc"], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError) as e:
            raise SourceUnavailable(f"vcgencmd pmic_read_adc failed: {e}") from None
        if proc.returncode != 0 or "error" in proc.stdout.lower():
            msg = (proc.stdout + proc.stderr).strip().splitlines()
            raise SourceUnavailable(
                f"vcgencmd pmic_read_adc is not supported here ({msg[0] if msg else proc.returncode}): "
                "it needs a Raspberry Pi 5 firmware"
            )
        return proc.stdout

    def open(self) -> None:
        self.exe = shutil.which("vcgencmd")
        if self.exe is None:
            raise SourceUnavailable("vcgencmd not found (not a Raspberry Pi, or install raspi-utils)")
        rails = parse_pmic(self._run())
        if not rails:
            raise SourceUnavailable("vcgencmd pmic_read_adc printed no rail with both current and voltage")
        self.rails = list(rails)

    def read(self) -> Reading:
        t = time.monotonic()
        rails = parse_pmic(self._run())
        return Reading(t=t, watts=sum(rails.values()), rails=rails)
