"""powertop ``--csv`` reports (powertop 2.x; needs root).

The CSV is ``;``-separated, in sections headed ``*  *  *   <Title>   *  *  *``. Where the machine reports
measured power (a discharging battery), the "Device Power Report" section starts with the summary line
``The battery reports a discharge rate of:  7.10  W;`` — values carry an SI prefix (``820 m W``).
powertop's "system baseline power" is its own model's estimate and is not used as a measurement.

powertop cannot stream: each report averages over ``--time`` seconds. This source runs it back to back on
a background thread; every finished report adds ``average W x its duration`` to a cumulative energy
counter stamped at the report's end, so a window needs to span several reports (the meter makes it).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgebench.agent.power.base import PowerSource, Reading, SourceUnavailable

_SECTION = re.compile(r"^\s*\*\s+\*\s+\*\s+(.*?)\s+\*\s+\*\s+\*\s*$")
_DISCHARGE = re.compile(r"discharge rate of:?\s*;?\s*([0-9.]+)\s*([munµk]?)\s*W", re.IGNORECASE)
_PREFIX = {"": 1.0, "k": 1e3, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9}


@dataclass
class PowertopReport:
    sections: dict[str, list[list[str]]]
    discharge_w: float | None


def parse_powertop_csv(text: str) -> PowertopReport:
    """Sections (title -> rows of ';'-split cells) and the measured discharge rate in watts, if any."""
    sections: dict[str, list[list[str]]] = {}
    current = ""
    discharge = None
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            current = m.group(1)
            sections[current] = []
            continue
        if not line.strip() or set(line.strip()) <= {"_"}:
            continue
        sections.setdefault(current, []).append([c.strip() for c in line.split(";")])
        d = _DISCHARGE.search(line)
        if d:
            discharge = float(d.group(1)) * _PREFIX[d.group(2)]
    return PowertopReport(sections, discharge)


class PowertopSource(PowerSource):
    name = "powertop"
    kind = "measured"
    min_poll_period_s = 0.1

    def __init__(self, report_s: float = 2.0) -> None:
        super().__init__()
        self.report_s = report_s
        self.update_period_s = report_s
        self.exe: str | None = None
        self._joules = 0.0
        self._stamp: float | None = None
        self._watts = 0.0
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._dir: tempfile.TemporaryDirectory | None = None

    def _report(self) -> tuple[float, float, float]:
        """Run one report: (start, end, discharge watts)."""
        assert self.exe is not None and self._dir is not None
        out = Path(self._dir.name) / "report.csv"
        t0 = time.monotonic()
        for attempt in range(5):
            try:
                subprocess.run(
                    [self.exe, f"--csv={out}", f"--time={self.report_s:g}", "--quiet"],
                    capture_output=True,
                    timeout=self.report_s + 30,
                    env={**os.environ, "LANG": "C", "LC_ALL": "C"},  # localized reports would not parse
                )
                text = out.read_text(errors="replace")
                break
            except OSError as e:
                # ETXTBSY: the binary is open for writing somewhere (being upgraded, or a just-written file
                # whose descriptor a concurrently forked child still holds): busy for milliseconds, retry.
                if e.errno == errno.ETXTBSY and attempt < 4:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise SourceUnavailable(f"powertop failed: {e}") from None
            except subprocess.SubprocessError as e:
                raise SourceUnavailable(f"powertop failed: {e}") from None
        t1 = time.monotonic()
        report = parse_powertop_csv(text)
        if report.discharge_w is None:
            raise SourceUnavailable(
                "powertop reports no measured watts here: it measures only a laptop running on its battery"
            )
        return t0, t1, report.discharge_w

    def open(self) -> None:
        self.exe = shutil.which("powertop")
        if self.exe is None:
            raise SourceUnavailable("powertop is not installed (apt-get install powertop)")
        if os.geteuid() != 0:
            raise SourceUnavailable("powertop needs root")
        self._dir = tempfile.TemporaryDirectory(prefix="edgebench-powertop-")
        t0, t1, watts = self._report()  # fails here, with the reason, when there are no watts
        self.update_period_s = t1 - t0
        self.rails = ["battery"]
        with self._lock:
            self._stamp, self._watts = t1, watts
        self._thread = threading.Thread(target=self._loop, name="edgebench-powertop", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                t0, t1, watts = self._report()
            except SourceUnavailable as e:
                self._error = str(e)
                return
            with self._lock:
                # the report averages over its own run; charge it from the previous stamp (no gap)
                start = self._stamp if self._stamp is not None else t0
                self._joules += watts * (t1 - start)
                self._stamp, self._watts = t1, watts

    def read(self) -> Reading:
        if self._error:
            raise SourceUnavailable(self._error)
        with self._lock:
            assert self._stamp is not None
            return Reading(
                t=self._stamp, joules=self._joules, watts=self._watts, rails={"battery": self._watts}
            )

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.report_s + 35)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
