"""Other processes' CPU time during a measured window: was the machine busy with something else?

A latency measured while another process burns a core is slower and noisier, and nothing in its numbers
says why. This tracker reads the kernel's CPU accounting (``/proc/stat`` through psutil) at both ends of
the window and subtracts what this agent and its children used: what remains is other processes' work
(and, on a VM, the hypervisor's ``steal``). Two reads per window, nothing sampled inside it.

The agent's own children are counted as its own (the memory poller, a power sampler's helper).
"""

from __future__ import annotations

import os
import time
from types import TracebackType

import psutil

from edgebench.agent.results.schema import Interference

BUSY_CORES = 0.25
"""Other processes using, on average, a quarter of one core or more during the window: ``busy``.
An idle Debian or Raspberry Pi OS stays well below (a few hundredths); one background compile or a
browser tab playing video is above."""

MIN_WINDOW_S = 0.5
"""Shorter windows are never called busy: too few ticks to tell."""


def _machine_busy_s() -> tuple[float, float]:
    """(CPU seconds spent not idle, summed over all CPUs; steal seconds)."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t)
    # guest time is already counted in user/nice on Linux: leave it out of the total
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    return total - idle, getattr(t, "steal", 0.0)


def _own_s(me: psutil.Process) -> float:
    """CPU seconds of this process and its live children (the poller, helpers)."""
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # a child that exited in between
            continue
        total += t.user + t.system
    return total


class InterferenceTracker:
    """``with InterferenceTracker() as t: …`` then ``t.result``: an :class:`Interference`."""

    def __init__(self) -> None:
        self._me = psutil.Process(os.getpid())
        self.result: Interference | None = None

    def __enter__(self) -> InterferenceTracker:
        self._t0 = time.monotonic()
        self._busy0, self._steal0 = _machine_busy_s()
        self._own0 = _own_s(self._me)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        own = _own_s(self._me) - self._own0
        busy, steal = _machine_busy_s()
        window = time.monotonic() - self._t0
        cpus = psutil.cpu_count() or 1
        # The kernel counts CPU time in ticks (1/100 s): each of the four readings may be off by a tick
        # per CPU, so a 40 ms window of an idle machine can look like half a core of "others". What
        # is within that resolution is not counted.
        resolution = (2 * cpus + 2) / os.sysconf("SC_CLK_TCK")
        other = max(busy - self._busy0 - own - resolution, 0.0)
        cores = other / window if window > 0 else 0.0
        self.result = Interference(
            window_s=window,
            other_cpu_s=other,
            other_cores=cores,
            steal_s=max(steal - self._steal0, 0.0),
            cpus=cpus,
            busy=window >= MIN_WINDOW_S and cores >= BUSY_CORES,
        )


CV_UNSTABLE = 0.10
"""A coefficient of variation above this (10 %) makes a mean worth doubting: say so."""


def stability_warnings(output: object, interference: Interference | None) -> list[str]:
    """Warnings for a result whose spread is large or whose machine was busy (empty when neither).

    ``output`` is a scenario's output (``.fields`` holding forward/generate/transcribe results)."""
    lines = []
    fields = getattr(output, "fields", {})
    section = fields.get("forward") or fields.get("generate") or fields.get("transcribe")
    stats = getattr(section, "latency_s", None)
    if stats is not None and stats.n >= 2 and stats.mean > 0 and section is not fields.get("transcribe"):
        # transcribe's per-utterance latencies vary with utterance length by design: not instability
        half = (stats.ci95_high - stats.ci95_low) / 2
        if stats.cv > CV_UNSTABLE:
            lines.append(
                f"unstable: latency CV {stats.cv:.2f} (95 % CI ±{100 * half / stats.mean:.0f} % of the "
                f"mean over {stats.n} iterations): raise --min-iterations/--min-duration, or set --max-cv"
            )
    if interference is not None and interference.busy:
        lines.append(
            f"busy machine: other processes kept {interference.other_cores:.2f} of {interference.cpus} "
            "cores busy during the measurement: figures are slower and noisier than on an idle device"
        )
    return lines
