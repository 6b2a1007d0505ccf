"""A rich progress display implementing the runner's Progress callbacks (on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from edgebench.agent.runner import Progress as ProgressCallbacks


class RichProgress(ProgressCallbacks):
    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = None
        self._label = ""

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def status(self, text: str) -> None:
        self._progress.console.log(text)

    def point_started(self, label: str, expected_iterations: int | None) -> None:
        self._label = label
        self._task = self._progress.add_task(label, total=expected_iterations)

    def iteration(self, count: int) -> None:
        """``count`` iterations done; past the minimum (--min-duration, --max-cv keep measuring) the total
        is unknown, so the bar pulses and shows ``n/?`` rather than ``14/3``."""
        if self._task is None:
            return
        task = next((t for t in self._progress.tasks if t.id == self._task), None)
        if task is not None and task.total is not None and count > task.total:
            self._progress.update(self._task, total=None, completed=count)
        else:
            self._progress.update(self._task, completed=count)

    def point_finished(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._progress.console.log(f"measured {self._label}")
        self._task = None
