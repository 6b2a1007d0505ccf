"""Pin glibc's malloc thresholds before a model loads, so that a measurement does not depend on which
mode the allocator happens to be in.

glibc serves large allocations with ``mmap`` and returns them with ``munmap``; it raises that threshold
(and the heap trim threshold, 2x) *dynamically* each time a mapped block is freed, up to 32 MiB on 64-bit.
Whether, and when, a process's activations cross from "mapped, unmapped, page-faulted again every
iteration" to "reused from the heap" depends on the order of its first allocations, so two processes
running the very same benchmark differ: a 1-thread forward of ``conformer-hybrid:tiny`` measured 3.0 ms
in about half of the processes and 4.1 ms in the others (ASLR off, same CPU, no denormals), and 5.2 ms
with the thresholds fixed at glibc's *initial* values. Fixed at the values the dynamic rule converges to
(``pinned``, the default) every process measured 3.0-3.1 ms. A campaign compares separate processes, so
without this its regression check would flag noise; ``system`` keeps glibc's behaviour for those who
want to measure exactly what their deployed process does.

What was used is recorded in every result (``measurement.allocator``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from typing import Literal

Allocator = Literal["pinned", "system"]
ALLOCATORS: tuple[str, ...] = ("pinned", "system")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
"""glibc's DEFAULT_MMAP_THRESHOLD_MAX (32 MiB on 64-bit, 16 MiB on 32-bit): where its dynamic rule ends."""
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
"""What the dynamic rule sets the trim threshold to alongside it."""

_applied: str | None = None


def apply(mode: str) -> str:
    """Configure this process's allocator for ``mode`` (once per process: the first call wins, later
    calls report it) and return what is in effect, as recorded in the result."""
    global _applied
    if _applied is not None:
        return _applied
    libc_name, _ = platform.libc_ver()
    if mode != "pinned":
        _applied = "system"
    elif libc_name != "glibc":
        _applied = "system (not glibc: nothing to pin)"
    else:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(
            _M_TRIM_THRESHOLD, TRIM_THRESHOLD
        )
        mib = MMAP_THRESHOLD // 2**20
        _applied = (
            f"glibc pinned (mmap {mib} MiB, trim {2 * mib} MiB)" if ok else "system (glibc refused mallopt)"
        )
    return _applied
