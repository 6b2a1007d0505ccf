"""Durable outbox for MQTT messages: a result is written here before any publish attempt and removed only
after the broker acknowledged it (PUBACK), so a crash, a power cut or an unreachable broker loses nothing.

SQLite in WAL mode with ``synchronous=FULL``: a committed ``put`` survives power loss, which matters on
SD-card devices that get unplugged. Each message carries a unique key (``run_id:seq``) so re-queuing the same
result is a no-op instead of a duplicate.

The spool is bounded (``max_messages``): a device whose broker is gone for weeks must not fill its disk.
When full, new results are *not* spooled (and the caller warns); they remain in the local results store,
from which ``edgebench-agent publish --run`` re-queues them. Nothing is ever dropped silently, and the
oldest messages are never evicted (unlike Telegraf's buffer).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from edgebench.agent.errors import EdgebenchError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_ns INTEGER NOT NULL
);
"""


class PutResult(Enum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    """Already in the spool under the same key: nothing written."""
    FULL = "full"
    """The spool holds ``max_messages``: not written (the caller must warn)."""


@dataclass(frozen=True)
class SpooledMessage:
    id: int
    key: str
    topic: str
    payload: bytes


class Spool:
    """Thread-safe (one connection behind a lock): paho's network thread may call into it."""

    def __init__(self, path: Path, max_messages: int = 10_000) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise EdgebenchError(f"cannot open the MQTT spool {self.path}: {exc}") from None

    def put(self, topic: str, payload: bytes, key: str, *, force: bool = False) -> PutResult:
        """Queue a message durably (committed and fsynced on return). ``force`` ignores the bound: used for
        an explicit re-queue by the user, who asked for exactly these results."""
        with self._lock, self._db:
            if self._db.execute("SELECT 1 FROM outbox WHERE key = ?", (key,)).fetchone():
                return PutResult.DUPLICATE
            if not force and self._count() >= self.max_messages:
                return PutResult.FULL
            self._db.execute(
                "INSERT INTO outbox (key, topic, payload, created_ns) VALUES (?,?,?,?)",
                (key, topic, payload, time.time_ns()),
            )
            return PutResult.QUEUED

    def peek(
        self, limit: int = 100, exclude: set[int] | frozenset[int] = frozenset()
    ) -> list[SpooledMessage]:
        """Oldest first. ``exclude``: ids the caller already has in flight or knows are refused."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key, topic, payload FROM outbox ORDER BY id LIMIT ?", (limit + len(exclude),)
            ).fetchall()
        out = [SpooledMessage(i, k, t, bytes(p)) for i, k, t, p in rows if i not in exclude]
        return out[:limit]

    def remove(self, *ids: int) -> None:
        if not ids:
            return
        with self._lock, self._db:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def count(self) -> int:
        with self._lock:
            return self._count()

    def keys(self) -> list[str]:
        with self._lock:
            return [k for (k,) in self._db.execute("SELECT key FROM outbox ORDER BY id")]

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def result_key(run_id: str, seq: int) -> str:
    """The idempotence key of a result: the same (run_id, seq) is the same message."""
    return f"{run_id}:{seq}"
