"""Child process that samples another process's resident set size until told to stop.

Usage: ``python -m edgebench.agent.trackers._rss_poller PID INTERVAL_S [NICE [BUDGET_BYTES]]``. Prints
``ready`` once the first sample is taken, then samples every INTERVAL_S seconds until a line arrives on
stdin or stdin is closed (or the target exits), and finally prints one JSON line: ``{"peak_rss_bytes":
..., "peak_pss_bytes": ..., "peak_uss_bytes": ..., "samples": ..., "interval_s": ..., "target_exited":
..., "exceeded_at_bytes": ...}``.

PSS and USS come from ``/proc/PID/smaps_rollup`` (Linux >= 4.14), read every tenth sample: the kernel
walks the target's page tables for it, which costs more than ``statm``. With a BUDGET_BYTES (``--max-rss``)
the first sample above it sends the target SIGUSR1 (once): the agent stops that configuration with the
budget as its reason, before the kernel's OOM killer would stop the whole agent.

It is a separate process (as in optimum-benchmark) so sampling never takes the measured process's GIL
or CPU time in-thread. On Linux it reads ``/proc/PID/statm`` directly — one small read per sample, no
psutil import, so the poller starts fast and stays cheap; elsewhere it falls back to psutil.

It lowers its own CPU priority (``nice`` 19 by default): when every core is busy with the model's
threads, a normal-priority poller waking 100 times a second preempts one of them and, with intra-op
parallelism, delays the whole operator. At nice 19 the scheduler still runs it (unlike SCHED_IDLE,
which can starve it for the whole window) but rarely lets it cut into a running model thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from collections.abc import Callable


def _statm_reader(pid: int) -> Callable[[], int] | None:
    """Reader of RSS bytes from /proc/PID/statm (field 2 is resident pages), or None off Linux."""
    path = f"/proc/{pid}/statm"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    page = os.sysconf("SC_PAGE_SIZE")

    def read() -> int:
        # pread at offset 0 re-reads the live values through the same descriptor: no open/close per sample.
        return int(os.pread(fd, 128, 0).split()[1]) * page

    try:
        read()
    except (OSError, IndexError, ValueError):
        os.close(fd)
        return None
    return read


def _rollup_reader(pid: int) -> Callable[[], tuple[int, int]] | None:
    """Reader of (PSS, USS) bytes from /proc/PID/smaps_rollup, or None where there is none."""
    path = f"/proc/{pid}/smaps_rollup"

    def read() -> tuple[int, int]:
        pss = uss = 0
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith((b"Private_Clean:", b"Private_Dirty:")):
                    uss += int(line.split()[1]) * 1024
        return pss, uss

    try:
        read()
    except (OSError, IndexError, ValueError):
        return None
    return read


def _psutil_reader(pid: int) -> Callable[[], int]:
    import psutil

    proc = psutil.Process(pid)
    return lambda: proc.memory_info().rss


def main(argv: list[str]) -> int:
    pid = int(argv[0])
    interval = float(argv[1]) if len(argv) > 1 else 0.01
    niceness = int(argv[2]) if len(argv) > 2 else 19
    if niceness and hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # not permitted here: sample at normal priority
            os.nice(niceness)
    budget = int(argv[3]) if len(argv) > 3 and int(argv[3]) > 0 else None
    read = _statm_reader(pid) or _psutil_reader(pid)
    rollup = _rollup_reader(pid)
    peak = read()
    peak_pss = peak_uss = None
    if rollup is not None:
        peak_pss, peak_uss = rollup()
    exceeded_at = None
    samples = 1
    target_exited = False
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    stdin = sys.stdin
    while True:
        # select doubles as the sleep: it returns early once the parent writes a line or closes the pipe.
        readable, _, _ = select.select([stdin], [], [], interval)
        try:
            rss = read()
            if rollup is not None and samples % 10 == 0:
                pss, uss = rollup()
                peak_pss, peak_uss = max(pss, peak_pss or 0), max(uss, peak_uss or 0)
        except Exception:  # target gone: report what we have
            target_exited = True
            break
        samples += 1
        if rss > peak:
            peak = rss
        if budget is not None and exceeded_at is None and rss > budget:
            exceeded_at = rss
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR1)
        if readable:
            break
    out.write(
        json.dumps(
            {
                "peak_rss_bytes": peak,
                "peak_pss_bytes": peak_pss,
                "peak_uss_bytes": peak_uss,
                "exceeded_at_bytes": exceeded_at,
                "samples": samples,
                "interval_s": interval,
                "target_exited": target_exited,
            }
        )
        + "\n"
    )
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
