"""A small JSON state file the running collector keeps in its data directory, read by ``status``.

Why a file: ``edgebench-collector status`` runs as a separate process (and possibly while the
collector is down), so the dead-letter count and the last successful write must outlive the process.
It is rewritten atomically (temp file + rename) at most every ``SAVE_INTERVAL_S`` while something
changed, and when the collector is idle: with 1000 devices the file holds one line per device and a
rewrite costs milliseconds, which must not happen per message (status messages arrive on paho's
network thread, next to the results).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

STATS_FILE = "collector-stats.json"
SAVE_INTERVAL_S = 1.0


class Stats:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STATS_FILE
        self._lock = threading.Lock()
        self.data: dict[str, Any] = read_stats(self.path.parent) or {}
        self.data.setdefault("deadletters_total", 0)
        self.data.setdefault("deadletters_by_reason", {})
        self.data.setdefault("documents_written_total", 0)
        self.data.setdefault("points_written_total", 0)
        self.data["started_ns"] = time.time_ns()
        self.data["pid"] = os.getpid()
        self._dirty = False
        self._saved_at = 0.0

    def deadletter(self, reason: str) -> None:
        with self._lock:
            self.data["deadletters_total"] += 1
            by = self.data["deadletters_by_reason"]
            by[reason] = by.get(reason, 0) + 1
            self.data["last_deadletter_ns"] = time.time_ns()
            self._save()

    def written(self, documents: int, points: int, pending: int) -> None:
        with self._lock:
            self.data["documents_written_total"] += documents
            self.data["points_written_total"] += points
            self.data["last_write_ns"] = time.time_ns()
            self.data["pending"] = pending
            self._save()

    def unknown_fields(self, fields: list[str]) -> None:
        """Fields of a newer agent's minor version that were ignored (by dotted path, at most 200 kept)."""
        with self._lock:
            by = self.data.setdefault("unknown_fields", {})
            for name in fields:
                if name in by or len(by) < 200:
                    by[name] = by.get(name, 0) + 1
            total = self.data.get("documents_with_unknown_fields_total", 0)
            self.data["documents_with_unknown_fields_total"] = total + 1
            self._save()

    def device_status(self, status: Any) -> None:
        """The latest status of each device, for ``edgebench-collector status``: its state and how many of
        its results wait for a receipt (``unconfirmed``) or were refused."""
        with self._lock:
            devices = self.data.setdefault("devices", {})
            key = f"{status.fleet}/{status.host}"
            if key not in devices and len(devices) >= 10_000:
                return
            devices[key] = {
                "state": status.state,
                "unconfirmed": status.unconfirmed,
                "refused": status.refused,
                "ts_ns": time.time_ns(),
            }
            self._save()

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.data.update(fields)
            self._save()

    def _save(self) -> None:
        """Mark changed; write now only if the last write is older than SAVE_INTERVAL_S (lock held)."""
        self._dirty = True
        if time.monotonic() - self._saved_at >= SAVE_INTERVAL_S:
            self._write()

    def flush(self) -> None:
        """Write pending changes (the collector calls this when idle and at exit)."""
        with self._lock:
            if self._dirty:
                self._write()

    def _write(self) -> None:
        self._dirty = False
        self._saved_at = time.monotonic()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:  # statistics must never stop the data path
            pass


def read_stats(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(state_dir) / STATS_FILE).read_text())
    except (OSError, ValueError):
        return None
