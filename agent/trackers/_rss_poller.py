"""Child process that samples another process's resident set size until told to stop.

Usage: ``python -m edgebench.agent.trackers._rss_poller PID INTERVAL_S [NICE]``. Prints ``ready`` once
the first sample is taken, then samples every INTERVAL_S seconds until a line arrives on stdin or stdin
is closed (or the target exits), and finally prints one JSON line: ``{"peak_rss_bytes": ...,
"samples": ..., "interval_s": ..., "target_exited": ...}``.

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
    read = _statm_reader(pid) or _psutil_reader(pid)
    peak = read()
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
        except Exception:  # target gone: report what we have
            target_exited = True
            break
        samples += 1
        if rss > peak:
            peak = rss
        if readable:
            break
    out.write(
        json.dumps(
            {
                "peak_rss_bytes": peak,
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
