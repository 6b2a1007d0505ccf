"""Replay of a recorded power trace (demos, tests, and re-analysing a captured run).

File: CSV with header ``t_s,watts`` and optionally more columns of per-rail watts
(``t_s,watts,<rail>...``). The trace plays on the monotonic clock from :meth:`open`, linear between
points, and loops when the run is longer: the loop length is the trace span plus its last interval, and
that last interval runs from the last value back to the first.
"""

from __future__ import annotations

import csv
import itertools
import time
from bisect import bisect_right
from pathlib import Path

from edgebench.agent.power.base import PowerSource, Reading, SourceUnavailable


class ReplaySource(PowerSource):
    name = "replay"
    kind = "measured"
    min_poll_period_s = 0.001

    def __init__(self, path: str, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.path = Path(path)
        self._clock = clock
        self.times: list[float] = []
        self.watts: list[float] = []
        self.rail_values: dict[str, list[float]] = {}
        self._t0 = 0.0
        self._length = 0.0

    def open(self) -> None:
        self.times, self.watts, self.rail_values = load_trace(self.path)
        self.rails = list(self.rail_values) or ["total"]
        t = self.times
        intervals = sorted(b - a for a, b in itertools.pairwise(t))
        self.update_period_s = intervals[len(intervals) // 2]
        self._length = (t[-1] - t[0]) + (t[-1] - t[-2])
        self._t0 = self._clock()

    def _at(self, series: list[float], pos: float) -> float:
        t = self.times
        if pos >= t[-1]:  # closing interval: last value back towards the first
            frac = (pos - t[-1]) / (t[-1] - t[-2])
            return series[-1] + (series[0] - series[-1]) * frac
        i = bisect_right(t, pos)
        if i == 0:
            return series[0]
        frac = (pos - t[i - 1]) / (t[i] - t[i - 1])
        return series[i - 1] + (series[i] - series[i - 1]) * frac

    def read(self) -> Reading:
        now = self._clock()
        pos = self.times[0] + ((now - self._t0) % self._length)
        rails = {k: self._at(v, pos) for k, v in self.rail_values.items()}
        return Reading(t=now, watts=self._at(self.watts, pos), rails=rails)


def load_trace(path: Path) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Parse and check a trace file; every problem is a one-line SourceUnavailable."""
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise SourceUnavailable(f"replay trace {path}: {e.strerror or e}") from e
    rows = [r for r in rows if r and not r[0].lstrip().startswith("#")]
    if not rows or [c.strip() for c in rows[0][:2]] != ["t_s", "watts"]:
        raise SourceUnavailable(
            f"replay trace {path}: the first line must be the header 't_s,watts[,<rail>...]'"
        )
    header = [c.strip() for c in rows[0]]
    times: list[float] = []
    watts: list[float] = []
    rails: dict[str, list[float]] = {name: [] for name in header[2:]}
    for n, row in enumerate(rows[1:], start=2):
        try:
            values = [float(c) for c in row]
        except ValueError:
            raise SourceUnavailable(f"replay trace {path}, line {n}: not numbers: {','.join(row)}") from None
        if len(values) != len(header):
            raise SourceUnavailable(
                f"replay trace {path}, line {n}: {len(values)} columns, header has {len(header)}"
            )
        if times and values[0] <= times[-1]:
            raise SourceUnavailable(f"replay trace {path}, line {n}: t_s must increase")
        if values[1] < 0:
            raise SourceUnavailable(f"replay trace {path}, line {n}: negative watts")
        times.append(values[0])
        watts.append(values[1])
        for name, v in zip(header[2:], values[2:], strict=False):
            rails[name].append(v)
    if len(times) < 2:
        raise SourceUnavailable(f"replay trace {path}: needs at least 2 samples")
    return times, watts, rails
