"""Durable outbox for MQTT messages: a result is written here before any publish attempt and leaves only when
it is known to be stored, so a crash, a power cut, an unreachable broker or a broker crash loses nothing.

SQLite in WAL mode with ``synchronous=FULL``: a committed change survives power loss, which matters on
SD-card devices that get unplugged. Each message carries a unique key (``run_id:seq``) so re-queuing the
same result is a no-op instead of a duplicate, and a *different* result under a used key is reported.

A message moves through states (``state`` column):

- ``queued``: to be sent.
- ``sent``: the broker acknowledged it (PUBACK) but the collector has not yet confirmed that it wrote it.
  A broker acknowledges QoS 1 *before* its periodic persistence, and drops messages beyond its queue
  limits, so a PUBACK alone is not proof of delivery. The collector's receipt removes the message; one
  still unconfirmed ``resend_after_s`` later is sent again (the collector's writes are idempotent).
  With ``confirm = "broker"`` (an old collector that sends no receipts) a PUBACK removes it at once.
- ``refused``: the broker or the collector refused it for good (too large, not authorised, malformed
  topic, invalid document). It no longer blocks the queue; ``publish --list-refused`` shows it with the
  reason and ``--retry-refused`` queues it again once the cause is fixed.

The spool is bounded (``max_messages``): a device whose broker is gone for weeks must not fill its disk.
When full, new results are *not* spooled; their keys are recorded in ``overflow`` and they stay in the
local results store, from which a plain ``edgebench-agent publish`` re-queues them as space frees up.
Nothing is ever dropped silently, and the oldest messages are never evicted (unlike Telegraf's buffer).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable
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
CREATE TABLE IF NOT EXISTS overflow (
    key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL
);
"""
_COLUMNS = {  # added to spools written by edgebench before states existed (all their rows are queued)
    "state": "TEXT NOT NULL DEFAULT 'queued'",
    "sent_ns": "INTEGER",
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "reason": "TEXT",
    "digest": "TEXT",
    "origin": "TEXT",
}

QUEUED, SENT, REFUSED = "queued", "sent", "refused"


class PutResult(Enum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    """Already in the spool under the same key with the same content: nothing written."""
    CONFLICT = "conflict"
    """Already in the spool under the same key with *different* content: nothing written (the caller
    warns: a run id and sequence number were reused for another measurement)."""
    FULL = "full"
    """The spool holds ``max_messages``: not written, key recorded in ``overflow``."""


@dataclass(frozen=True)
class SpooledMessage:
    id: int
    key: str
    topic: str
    payload: bytes
    state: str = QUEUED
    attempts: int = 0
    reason: str | None = None


def payload_digest(payload: bytes) -> str:
    """The identity the collector's receipt names (it may not be able to parse a refused payload)."""
    return hashlib.sha256(payload).hexdigest()[:32]


class Spool:
    """Thread-safe (one connection behind a lock)."""

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
            have = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
            with self._db:
                for column, decl in _COLUMNS.items():
                    if column not in have:
                        try:
                            self._db.execute(f"ALTER TABLE outbox ADD COLUMN {column} {decl}")
                        except sqlite3.OperationalError as exc:  # another process migrated it first
                            if "duplicate column" not in str(exc):
                                raise
                self._db.execute("CREATE INDEX IF NOT EXISTS outbox_digest ON outbox(digest)")
                for msg_id, payload in self._db.execute(
                    "SELECT id, payload FROM outbox WHERE digest IS NULL"
                ).fetchall():
                    digest = payload_digest(bytes(payload))
                    self._db.execute(
                        "UPDATE outbox SET digest = ?, origin = ? WHERE id = ?", (digest, digest, msg_id)
                    )
        except (OSError, sqlite3.Error) as exc:
            raise EdgebenchError(f"cannot open the MQTT spool {self.path}: {exc}") from None

    # --- writing ----------------------------------------------------------------------------------------

    def put(
        self, topic: str, payload: bytes, key: str, *, force: bool = False, origin: str | None = None
    ) -> PutResult:
        """Queue a message durably (committed and fsynced on return). ``force`` ignores the bound: used for
        an explicit re-queue by the user, who asked for exactly these results. ``origin``: the digest of
        the untrimmed document, which identifies the measurement when the payload was shortened."""
        origin = origin or payload_digest(payload)
        with self._lock, self._db:
            row = self._db.execute("SELECT origin, digest FROM outbox WHERE key = ?", (key,)).fetchone()
            if row:
                return PutResult.DUPLICATE if origin in row else PutResult.CONFLICT
            if not force and self._count() >= self.max_messages:
                run_id, _, seq = key.rpartition(":")
                self._db.execute(
                    "INSERT OR IGNORE INTO overflow (key, run_id, seq) VALUES (?,?,?)",
                    (key, run_id, int(seq) if seq.isdigit() else 0),
                )
                return PutResult.FULL
            self._db.execute(
                "INSERT INTO outbox (key, topic, payload, created_ns, digest, origin) VALUES (?,?,?,?,?,?)",
                (key, topic, payload, time.time_ns(), payload_digest(payload), origin),
            )
            self._db.execute("DELETE FROM overflow WHERE key = ?", (key,))
            return PutResult.QUEUED

    def replace_payload(self, msg_id: int, payload: bytes) -> None:
        """Swap in a shortened payload (the broker's packet limit turned out smaller than expected)."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE outbox SET payload = ?, digest = ? WHERE id = ?",
                (payload, payload_digest(payload), msg_id),
            )

    def mark_sent(self, ids: Iterable[int], now_ns: int | None = None) -> None:
        """The broker acknowledged these: keep them until the collector confirms."""
        now = now_ns or time.time_ns()
        with self._lock, self._db:
            self._db.executemany(
                "UPDATE outbox SET state = 'sent', sent_ns = ?, attempts = attempts + 1 "
                "WHERE id = ? AND state != 'refused'",  # a refusal receipt may beat the re-send's PUBACK
                [(now, i) for i in ids],
            )

    def refuse(self, msg_id: int, reason: str) -> None:
        """Out of the queue for good, with the reason shown by ``publish --list-refused``."""
        with self._lock, self._db:
            self._db.execute("UPDATE outbox SET state = 'refused', reason = ? WHERE id = ?", (reason, msg_id))

    def refuse_digest(self, digest: str, reason: str) -> int:
        with self._lock, self._db:
            cur = self._db.execute(
                "UPDATE outbox SET state = 'refused', reason = ? WHERE digest = ?", (reason, digest)
            )
            return cur.rowcount

    def confirm(self, digests: Iterable[str]) -> int:
        """The collector stored these: remove them. Returns how many were here."""
        with self._lock, self._db:
            cur = self._db.executemany("DELETE FROM outbox WHERE digest = ?", [(d,) for d in digests])
            return cur.rowcount

    def remove(self, *ids: int) -> None:
        if not ids:
            return
        with self._lock, self._db:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def retry_refused(self, keys: Iterable[str] | None = None) -> int:
        """Queue refused messages again (all, or those keys). Returns how many."""
        with self._lock, self._db:
            if keys is None:
                cur = self._db.execute(
                    "UPDATE outbox SET state = 'queued', reason = NULL, attempts = 0 WHERE state = 'refused'"
                )
                return cur.rowcount
            cur = self._db.executemany(
                "UPDATE outbox SET state = 'queued', reason = NULL, attempts = 0 "
                "WHERE state = 'refused' AND key = ?",
                [(k,) for k in keys],
            )
            return cur.rowcount

    def forget_overflow(self, keys: Iterable[str]) -> None:
        with self._lock, self._db:
            self._db.executemany("DELETE FROM overflow WHERE key = ?", [(k,) for k in keys])

    # --- reading ----------------------------------------------------------------------------------------

    def peek(
        self,
        limit: int = 100,
        exclude: set[int] | frozenset[int] = frozenset(),
        resend_before_ns: int | None = None,
    ) -> list[SpooledMessage]:
        """Oldest first: queued messages, and sent ones unconfirmed since before ``resend_before_ns``.
        ``exclude``: ids the caller already has in flight."""
        sql = "SELECT id, key, topic, payload, state, attempts, reason FROM outbox WHERE state = 'queued'"
        args: list[object] = []
        if resend_before_ns is not None:
            sql += " OR (state = 'sent' AND sent_ns < ?)"
            args.append(resend_before_ns)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit + len(exclude))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        out = [SpooledMessage(i, k, t, bytes(p), s, a, r) for i, k, t, p, s, a, r in rows if i not in exclude]
        return out[:limit]

    def refused(self) -> list[SpooledMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key, topic, payload, state, attempts, reason FROM outbox "
                "WHERE state = 'refused' ORDER BY id"
            ).fetchall()
        return [SpooledMessage(i, k, t, bytes(p), s, a, r) for i, k, t, p, s, a, r in rows]

    def counts(self) -> dict[str, int]:
        """Messages by state (every state present, zeros included)."""
        with self._lock:
            rows = dict(self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        return {state: int(rows.get(state, 0)) for state in (QUEUED, SENT, REFUSED)}

    def queued_count(self, exclude: set[int] | frozenset[int] = frozenset()) -> int:
        """Queued messages, not counting ``exclude`` (ids held back for this session)."""
        marks = ",".join("?" * len(exclude))
        sql = "SELECT COUNT(*) FROM outbox WHERE state = 'queued'"
        if exclude:
            sql += f" AND id NOT IN ({marks})"
        with self._lock:
            return int(self._db.execute(sql, tuple(exclude)).fetchone()[0])

    def overflow(self) -> list[tuple[str, str, int]]:
        """(key, run_id, seq) of results that did not fit: they are only in the local results store."""
        with self._lock:
            return list(self._db.execute("SELECT key, run_id, seq FROM overflow ORDER BY run_id, seq"))

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
