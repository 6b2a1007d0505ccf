"""Ansible callback (tests only): each task's wall time per host, appended as JSON lines to the file named
by ``EDGEBENCH_TASK_TIMES``, so a slow deployment test says which tasks its minutes went to."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("EDGEBENCH_TASK_TIMES")
        self._started: dict[str, float] = {}

    def v2_playbook_on_task_start(self, task, is_conditional):  # type: ignore[no-untyped-def]
        self._started[task._uuid] = time.monotonic()

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _done(self, result, status: str) -> None:  # type: ignore[no-untyped-def]
        if not self._path:
            return
        task = result._task
        started = self._started.get(task._uuid, time.monotonic())
        line = {"task": task.get_name(), "host": result._host.get_name(), "status": status,
                "seconds": round(time.monotonic() - started, 2)}  # fmt: skip
        with open(self._path, "a") as f:
            f.write(json.dumps(line) + "\n")

    def v2_runner_on_ok(self, result):  # type: ignore[no-untyped-def]
        self._done(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):  # type: ignore[no-untyped-def]
        self._done(result, "failed")

    def v2_runner_on_skipped(self, result):  # type: ignore[no-untyped-def]
        self._done(result, "skipped")
