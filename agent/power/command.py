"""An external meter: a user command that prints watts, one value per line (``command:CMD``).

For USB power meters on a Pi, smart plugs, lab supplies: ``command:'python3 read_um34c.py'`` or
``command:'cat /dev/ttyUSB0'`` for a serial stream. A line is a number, optionally followed by ``W`` or
preceded by a timestamp and a comma (the last number on the line is taken). Each line is stamped on
arrival on the monotonic clock; the energy is the trapezoid over the lines themselves (not over the
sampler's polls), kept as a cumulative counter so no line is lost between polls.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time

from edgebench.agent.power.base import PowerSource, Reading, SourceUnavailable

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
FIRST_LINE_TIMEOUT_S = 10.0


def parse_watts(line: str) -> float | None:
    numbers = _NUMBER.findall(line)
    if not numbers:
        return None
    value = float(numbers[-1])
    return value if value >= 0 else None


class CommandSource(PowerSource):
    name = "command"
    kind = "measured"
    update_period_s = 1.0
    min_poll_period_s = 0.01

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command
        self.rails = ["meter"]
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._t: float | None = None
        self._w = 0.0
        self._j = 0.0
        self._lines = 0
        self._t_first: float | None = None
        self._error: str | None = None

    def open(self) -> None:
        try:
            argv = shlex.split(self.command)
        except ValueError as e:
            raise SourceUnavailable(f"command:{self.command}: {e}") from None
        if not argv:
            raise SourceUnavailable("command: empty command")
        try:
            self._proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
            )
        except OSError as e:
            raise SourceUnavailable(f"command:{self.command}: {e.strerror or e}") from None
        self._thread = threading.Thread(target=self._pump, name="edgebench-meter", daemon=True)
        self._thread.start()
        if not self._first.wait(FIRST_LINE_TIMEOUT_S) or self._t is None:
            err = self._error or f"printed no watts within {FIRST_LINE_TIMEOUT_S:g} s"
            self.close()
            raise SourceUnavailable(f"command:{self.command}: {err}")

    def _pump(self) -> None:
        proc = self._proc  # close() may drop self._proc while this thread finishes
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic()
            watts = parse_watts(line)
            if watts is None:
                continue
            with self._lock:
                if self._t is not None:
                    self._j += (watts + self._w) * 0.5 * (now - self._t)
                else:
                    self._t_first = now
                self._t, self._w = now, watts
                self._lines += 1
                if self._lines >= 2 and self._t_first is not None:
                    self.update_period_s = (now - self._t_first) / (self._lines - 1)
            self._first.set()
        code = proc.wait()
        stderr = proc.stderr.read().strip().splitlines() if proc.stderr else []
        self._error = f"the meter command exited ({code})" + (f": {stderr[-1]}" if stderr else "")
        self._first.set()

    def read(self) -> Reading:
        with self._lock:
            if self._error and self._t is not None and time.monotonic() - self._t > 2 * self.update_period_s:
                raise SourceUnavailable(self._error)
            assert self._t is not None
            return Reading(t=self._t, watts=self._w, joules=self._j, rails={"meter": self._w})

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=5)
