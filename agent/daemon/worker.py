"""One job, in its own process: ``python -m edgebench.agent.daemon.worker CONFIG`` reads the admitted
RunSpec (JSON) on stdin, runs it with :func:`~edgebench.agent.benchmark.run_benchmark` and reports on
stdout as JSON lines (``progress``, ``done``, ``failed``); everything else it prints goes to stderr.

A process per job: cancelling is a signal, a model's memory is returned to the system after each job,
and a crash in a runtime fails the job instead of the daemon. The worker dies with the daemon
(``PR_SET_PDEATHSIG``, set by the daemon), so a killed daemon leaves no orphan measuring in the dark.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import IO, Any

from edgebench.agent.runner import Progress


class JsonProgress(Progress):
    """Progress as JSON lines: the fraction of configurations measured (plus the share of the current
    one's minimum iterations), at most twice a second."""

    def __init__(self, out: IO[str], total_points: int) -> None:
        self.out = out
        self.total = max(total_points, 1)
        self.done = 0
        self.label = ""
        self.expected: int | None = None
        self._last = 0.0

    def emit(self, **event: Any) -> None:
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()

    def _progress(self, share: float, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= 0.5:
            self._last = now
            fraction = min((self.done + share) / self.total, 1.0)
            self.emit(event="progress", progress=round(fraction, 4), detail=self.label)

    def point_started(self, label: str, expected_iterations: int | None) -> None:
        self.label, self.expected = label, expected_iterations
        self._progress(0.0, force=True)

    def iteration(self, count: int) -> None:
        if self.expected:
            self._progress(min(count / self.expected, 0.99))

    def point_finished(self) -> None:
        self.done += 1
        self._progress(0.0, force=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Cancellation is SIGTERM: unwind (``finally`` blocks close the publisher, flush the store) and exit
    with the conventional 128 + 15."""
    sys.exit(128 + signum)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library output never mixes into the event stream
    from edgebench.agent.errors import EdgebenchError

    try:
        from edgebench.agent.benchmark import run_benchmark
        from edgebench.agent.publish.config import load_config
        from edgebench.agent.runspec import RunSpec

        agent = load_config(argv[0] if argv else None)
        # Its own client id: a timer's ``edgebench-agent run`` may publish at the same time as this job,
        # and two connections with one id take each other's session over.
        serving = os.environ.get("EDGEBENCH_SERVING_CLASS", "other")
        agent = agent.model_copy(update={"serving_class": serving, "client_id": f"{agent.client_id}-job"})
        spec = RunSpec.parse(sys.stdin.read())
        progress = JsonProgress(events, spec.point_count())
        warnings: list[str] = []
        measured = run_benchmark(spec, agent, progress, warn=warnings.append)
        progress.emit(
            event="done",
            run_id=measured.run_id,
            results=len(measured.docs),
            publish=measured.publish_line,
            warnings=warnings[-3:],
        )
        return 0
    except EdgebenchError as exc:
        events.write(json.dumps({"event": "failed", "reason": str(exc)}) + "\n")
        return 2
    except Exception as exc:  # a runtime crash fails this job, never the daemon
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        reason = f"internal error: {type(exc).__name__}: {first}".rstrip(": ")
        events.write(json.dumps({"event": "failed", "reason": reason}) + "\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
