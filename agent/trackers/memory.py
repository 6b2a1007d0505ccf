"""Peak memory of the agent process over a measured window, and the in-memory size of a model.

Peak RSS is sampled by a *separate process* (:mod:`._rss_poller`) every ~10 ms, so the sampling never
competes with the measured code for this process's GIL — a sampling thread would wake up inside the
timed loop and perturb latency. Sampling can miss a spike shorter than the interval, so on Linux we also
reset the kernel's own high-water mark (``/proc/self/clear_refs`` ← 5) on entry and read ``VmHWM`` on
exit, which is exact; the reported peak is the largest of all readings. Each source is optional and the
tracker degrades to what is available, recording why in :attr:`MemoryTracker.warning`.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from edgebench.agent.results.schema import MemoryResult

if TYPE_CHECKING:
    import torch

_READY_TIMEOUT_S = 10.0
"""Generous: on a cold Raspberry Pi SD card the poller's interpreter start can take a few seconds."""
_STOP_TIMEOUT_S = 5.0


def rss_now() -> int:
    """This process's resident set size now."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def _reset_hwm() -> bool:
    """Reset this process's peak-RSS high-water mark (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _read_hwm() -> int | None:
    """VmHWM (peak RSS since the last reset) of this process in bytes, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _torch_cuda() -> Any | None:
    """``torch.cuda`` if torch is *already* imported and CUDA is initialised, else None.

    We never import torch here (a tracker must not pull it into a process that does not use it), and we
    never initialise CUDA ourselves: that would allocate a context and inflate the RSS we measure.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        cuda = torch.cuda
        return cuda if cuda.is_available() and cuda.is_initialized() else None
    except Exception:
        return None


class MemoryBudgetExceeded(Exception):
    """Raised in the measured code when the poller found the process above ``--max-rss``."""

    def __init__(self, budget_bytes: int) -> None:
        super().__init__(f"memory budget exceeded (--max-rss {budget_bytes // 2**20} MB)")
        self.budget_bytes = budget_bytes


class MemoryTracker:
    """``with MemoryTracker() as mt: <measured work>`` then ``mt.result`` (a :class:`MemoryResult`).

    ``cuda_device`` selects the GPU whose allocator peak is reported (default: the current one); pass
    the session's device ('cuda:1') when it is not the current one.

    On entry it records the baseline RSS (model already loaded), starts the poller and waits until it has
    taken its first sample, so a peak right at the start of the window is not missed. On exit it stops the
    poller and combines its peak with an RSS reading at exit and the kernel high-water mark. If CUDA is in
    use (torch imported and initialised), the CUDA allocator's peak is reset on entry and read on exit.
    """

    def __init__(
        self,
        interval_s: float = 0.01,
        cuda_device: Any | None = None,
        poller_nice: int = 19,
        budget_bytes: int | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.budget_bytes = budget_bytes
        """``--max-rss``: above it the poller signals this process (SIGUSR1) and the measured code is
        interrupted with :class:`MemoryBudgetExceeded` (at the next Python instruction: a runtime's
        own C++ call finishes first)."""
        self._previous_handler: Any = None
        self._installed = False
        self._armed = False
        self._pending = False
        self._closing = False
        self.poller_nice = poller_nice
        """CPU niceness of the poller (see :mod:`._rss_poller` for why it runs at low priority)."""
        self.cuda_device = cuda_device
        self.warning: str | None = None
        """Set when a source failed (poller died, …); the result then rests on the remaining sources."""
        self.poller_samples: int = 0
        self._proc: subprocess.Popen[str] | None = None
        self._poller_pid: int | None = None
        self._baseline = 0
        self._hwm_reset = False
        self._result: MemoryResult | None = None

    @property
    def poller_pid(self) -> int | None:
        """Pid of the last poller started (kept after exit, so tests can check it is gone)."""
        return self._poller_pid

    @property
    def result(self) -> MemoryResult:
        if self._result is None:
            raise RuntimeError("MemoryTracker.result is available only after the with-block has exited")
        return self._result

    def _warn(self, message: str) -> None:
        self.warning = message if self.warning is None else f"{self.warning}; {message}"

    def __enter__(self) -> MemoryTracker:
        self._result = None
        self.warning = None
        self.poller_samples = 0
        cuda = _torch_cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats(self.cuda_device)
        self._arm_budget()
        try:
            self._start_poller()
            # Baseline and HWM reset after the poller is up: starting it must not count as the work.
            self._baseline = rss_now()
            self._hwm_reset = _reset_hwm()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        if self._pending:  # over budget before the window opened: the result says so, then raise
            self.__exit__(None, None, None)
            raise MemoryBudgetExceeded(self.budget_bytes or 0)
        self._armed = self._installed
        return self

    def _arm_budget(self) -> None:
        if self.budget_bytes is None:
            return
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            self._warn("--max-rss is enforced only when measuring on the main thread")
            return
        budget = self.budget_bytes

        def over_budget(signum: int, frame: object) -> None:
            # Raised only inside the window: not while the tracker starts (noted, raised once it is
            # open) nor once it is closing (its own exit must finish).
            if self._armed:
                self._armed = False
                raise MemoryBudgetExceeded(budget)
            if not self._closing:
                self._pending = True

        self._pending = False
        self._closing = False
        self._previous_handler = signal.signal(signal.SIGUSR1, over_budget)
        self._installed = True

    def _disarm_budget(self) -> None:
        if self._installed:
            import signal

            signal.signal(signal.SIGUSR1, self._previous_handler)
            self._installed = False

    def _start_poller(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "edgebench.agent.trackers._rss_poller",
            str(os.getpid()),
            repr(self.interval_s),
            str(self.poller_nice),
            str(self.budget_bytes or 0),
        ]
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            self._warn(f"RSS poller could not start ({exc}); peak RSS from exit reading only")
            return
        assert proc.stdout is not None
        self._poller_pid = proc.pid
        ready, _, _ = select.select([proc.stdout], [], [], _READY_TIMEOUT_S)
        line = proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            self._kill(proc)
            detail = (proc.stderr.read().strip().splitlines() or [""])[-1] if proc.stderr else ""
            self._warn(
                f"RSS poller did not start ({detail or 'no ready line'}); peak RSS from exit reading only"
            )
            return
        self._proc = proc

    @staticmethod
    def _kill(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_STOP_TIMEOUT_S)

    def _stop_poller(self) -> dict[str, Any] | None:
        """Stop the poller and return its report, or None (with a warning) if it failed."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is not None:
            self._warn(f"RSS poller died during the measurement (exit code {proc.returncode})")
            self._kill(proc)
            return None
        try:
            out, _ = proc.communicate("stop\n", timeout=_STOP_TIMEOUT_S)
        except (subprocess.TimeoutExpired, OSError) as exc:
            self._kill(proc)
            self._warn(f"RSS poller did not stop cleanly ({type(exc).__name__})")
            return None
        try:
            report = json.loads(out.strip().splitlines()[-1])
            self.poller_samples = int(report["samples"])
            int(report["peak_rss_bytes"])
            return dict(report)
        except (ValueError, IndexError, KeyError, TypeError):
            self._warn(f"RSS poller gave no report (exit code {proc.returncode})")
            return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._armed = False
        self._closing = True
        exit_rss = rss_now()
        hwm = _read_hwm() if self._hwm_reset else None
        report = self._stop_poller() or {}
        self._disarm_budget()  # after the poller is gone: no signal can arrive unhandled
        polled = report.get("peak_rss_bytes")
        self._proc_done()
        if polled is None:
            if hwm is not None:
                self._warn("peak RSS from the kernel high-water mark (VmHWM) and the exit reading")
            else:
                self._warn("peak RSS is only the reading at exit; transient peaks may be missed")
        peak = max(x for x in (self._baseline, exit_rss, polled, hwm) if x is not None)
        cuda_peak = None
        cuda = _torch_cuda()
        if cuda is not None:
            cuda_peak = int(cuda.max_memory_allocated(self.cuda_device))
        exceeded = report.get("exceeded_at_bytes")
        if exceeded is None and self.budget_bytes is not None and peak > self.budget_bytes:
            exceeded = peak  # between two samples, or before the poller started: seen at exit
        self._result = MemoryResult(
            peak_rss_bytes=peak,
            baseline_rss_bytes=self._baseline,
            cuda_peak_allocated_bytes=cuda_peak,
            sampling_interval_s=self.interval_s,
            peak_pss_bytes=report.get("peak_pss_bytes"),
            peak_uss_bytes=report.get("peak_uss_bytes"),
            budget_bytes=self.budget_bytes,
            budget_exceeded_at_bytes=exceeded,
        )

    def _proc_done(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self._kill(proc)  # reaps it; no-op if it already exited
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None and not stream.closed:
                    stream.close()


def model_size_bytes(module: torch.nn.Module) -> int:
    """In-memory size of a module's parameters and buffers (what loading the weights costs).

    Shared tensors count once (``parameters()``/``buffers()`` de-duplicate), so tied embeddings are not
    double-counted. No torch import needed: the module brings its tensors along.
    """
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        total += tensor.numel() * tensor.element_size()
    return total
