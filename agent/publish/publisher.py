"""MQTT publisher: sends the spool to the fleet broker with QoS 1 and removes a message only after its PUBACK.

Contract (design.md §2): results on ``edgebench/v1/{fleet}/{host}/result`` (QoS 1), a retained status on
``edgebench/v1/{fleet}/{host}/status`` (``online`` / ``running`` / ``offline``) whose Last Will is
``offline``, payload = the result document's JSON.

Threading, and why: paho's network thread (``loop_start``) handles the socket, keep-alives, PUBACKs and
reconnects. Its callbacks only record events in lock-free deques; every spool read/write (SQLite with fsync)
happens in the caller's thread inside :meth:`Publisher.pump` / :meth:`Publisher.flush`, which the CLI calls
*between* measured points. That keeps disk I/O out of timed work, and avoids a lock-order deadlock: paho calls
``on_publish`` while holding its own message mutex, which ``client.publish`` also takes.

Delivery: at least once. Paho re-sends unacknowledged in-flight messages itself after a reconnect (same mid);
:meth:`pump` then sends whatever else is spooled. A PUBACK with an MQTT v5 reason code >= 0x80 (e.g.
"Not authorized" from the ACL) means *not delivered*: the message stays spooled, is not retried in this
session, and a warning says why. The collector deduplicates by ``run_id``/``seq``.
"""

from __future__ import annotations

import collections
import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import edgebench.agent as _agent
from edgebench.agent.errors import require
from edgebench.agent.publish.config import PublishConfig
from edgebench.agent.publish.spool import PutResult, Spool, result_key
from edgebench.agent.publish.status import status_payload

MAX_INFLIGHT = 100
"""Messages published but not yet acknowledged: bounds memory and what paho re-sends after a reconnect."""


def describe_error(exc: BaseException) -> str:
    """One short human reason for a connection failure (no traceback, no errno soup)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Publisher:
    """Connects to the broker and drains a :class:`Spool` into it.

    Typical use (what ``edgebench-agent run`` does)::

        pub = Publisher(config, spool, warn=print)
        pub.start()                         # connect (non-fatal on failure), status 'online'
        pub.set_status("running", run_id)
        for doc in run_sweep(...):
            pub.spool_result(doc)           # durable first
            pub.pump()                      # then send, between measured points
        pub.set_status("online")
        remaining = pub.flush(15)
        pub.close()                         # status 'offline', clean disconnect (no Last Will)
    """

    def __init__(
        self,
        config: PublishConfig,
        spool: Spool,
        warn: Callable[[str], None] | None = None,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self.config = config
        self.spool = spool
        self._warn_fn = warn or (lambda msg: None)
        self.max_inflight = max_inflight
        self.client: Any = None
        self.connected = False
        self.ever_connected = False
        self.last_error: str | None = None
        """Why the broker is unreachable or refused us (None while all is well)."""
        self.published = 0
        """Results acknowledged by the broker in this session."""
        self.not_spooled: list[str] = []
        """Keys of results that did not fit in the full spool (still in the local store)."""
        self._state = "online"
        self._run_id: str | None = None
        self._inflight: dict[int, int] = {}  # mid -> spool id (caller's thread only)
        self._refused: dict[int, str] = {}  # spool id -> broker's reason (not retried this session)
        self._events: collections.deque[tuple[int, bool, str]] = collections.deque()  # (mid, ok, reason)
        self._warnings: collections.deque[str] = collections.deque()
        self._warned: set[str] = set()
        self._connected_event = threading.Event()
        self._attempted = threading.Event()
        self._closing = False

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self, wait_s: float = 5.0) -> bool:
        """Connect and start the network thread. Never raises for network trouble: a failure becomes a
        warning and paho keeps retrying in the background. Returns whether the broker accepted us."""
        mqtt = require("paho.mqtt.client", "mqtt", "Publishing results to an MQTT broker")
        cfg = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5)
        self.client = client
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        client.connect_timeout = 5.0
        client.reconnect_delay_set(min_delay=1, max_delay=4)
        client.max_inflight_messages_set(self.max_inflight)
        client.will_set(
            cfg.status_topic(), self._status_payload("offline", "connection lost", stamped=False), 1, True
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            try:
                client.tls_set(ca_certs=cfg.ca_file, certfile=cfg.cert_file, keyfile=cfg.key_file)
            except (OSError, ValueError) as exc:
                self._fail(f"TLS setup failed: {describe_error(exc)}")
                return False
        try:
            client.connect(cfg.broker_host, cfg.port, keepalive=cfg.keepalive)
        except (OSError, ValueError) as exc:
            reason = describe_error(exc)
            if cfg.tls and isinstance(exc, ConnectionResetError):
                reason = f"TLS handshake failed ({reason}): is port {cfg.port} a TLS listener?"
            self._fail(reason)
            client.connect_async(cfg.broker_host, cfg.port, keepalive=cfg.keepalive)  # retried by the thread
        client.loop_start()
        if self.last_error is None:  # TCP/TLS is up: wait for CONNACK (accepted or refused)
            self._attempted.wait(wait_s)
        self._emit_warnings()
        return self.connected

    def close(self, timeout_s: float = 3.0) -> None:
        """Publish the retained ``offline`` status, then disconnect cleanly (so the Last Will is not sent)."""
        if self.client is None:
            return
        self._closing = True
        if self.connected:
            info = self.client.publish(
                self.config.status_topic(), self._status_payload("offline", "agent stopped"), 1, True
            )
            with contextlib.suppress(RuntimeError, ValueError):  # not connected any more: Last Will
                info.wait_for_publish(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()
        self._apply_events()
        self._emit_warnings()
        self.client = None

    # --- results --------------------------------------------------------------------------------------

    def spool_result(self, doc: Any, force: bool = False) -> PutResult:
        """Write one ResultDocument durably to the spool (before any publish attempt).

        The topic uses the document's own fleet/host: the collector checks that they match."""
        topic = self.config.result_topic(doc.fleet, doc.host)
        key = result_key(doc.run_id, doc.seq)
        put = self.spool.put(topic, doc.model_dump_json().encode(), key, force=force)
        if put is PutResult.FULL:
            self.not_spooled.append(key)
            self._warn_once(
                "spool-full",
                f"MQTT spool {self.spool.path} is full ({self.spool.max_messages} messages): new results are "
                f"not queued for the broker; they stay in the local results store — send them later with "
                f"`edgebench-agent publish --run {doc.run_id}`",
            )
        return put

    def pump(self) -> int:
        """Apply acknowledgements, then publish spooled messages up to the in-flight bound. Cheap and
        non-blocking: call it between measured points. Returns how many were handed to paho."""
        self._apply_events()
        self._emit_warnings()
        if not self.connected or self.client is None:
            return 0
        free = self.max_inflight - len(self._inflight)
        if free <= 0:
            return 0
        exclude = set(self._inflight.values()) | set(self._refused)
        sent = 0
        for msg in self.spool.peek(free, exclude=exclude):
            info = self.client.publish(msg.topic, msg.payload, qos=1)
            if info.rc not in (0, 4):  # 4 = MQTT_ERR_NO_CONN: paho keeps it and sends it on reconnect
                break
            self._inflight[info.mid] = msg.id
            sent += 1
        return sent

    def flush(self, timeout_s: float) -> int:
        """Send until every deliverable spooled message is acknowledged or ``timeout_s`` passes.

        Returns the number of messages still in the spool (refused ones included)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            if self.spool.count() - len(self._refused) <= 0 and not self._inflight:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        self._apply_events()
        self._emit_warnings()
        return self.spool.count()

    # --- status ---------------------------------------------------------------------------------------

    def set_status(self, state: str, run_id: str | None = None) -> None:
        """Retained status for dashboards: 'online', 'running' (with the run id), 'offline'."""
        self._state, self._run_id = state, run_id
        if self.connected and self.client is not None:
            self.client.publish(self.config.status_topic(), self._status_payload(state), 1, True)

    def _status_payload(self, state: str, reason: str | None = None, stamped: bool = True) -> bytes:
        """JSON of :class:`~edgebench.agent.publish.status.StatusPayload` (the collector's contract)."""
        return status_payload(
            state,
            self.config.host,
            self.config.fleet,
            _agent.__version__,
            self._run_id,
            reason,
            stamped=stamped,
        )

    @property
    def refused(self) -> dict[int, str]:
        """Spool ids the broker refused in this session, with its reason."""
        return dict(self._refused)

    # --- paho callbacks (network thread: record only, no I/O) ------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.connected = False
            self._fail(f"broker refused the connection: {reason_code}")
        else:
            self.connected = self.ever_connected = True
            self.last_error = None
            client.publish(self.config.status_topic(), self._status_payload(self._state), qos=1, retain=True)
            self._connected_event.set()
        self._attempted.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
        was = self.connected
        self.connected = False
        if was and not self._closing:
            self._fail(f"connection lost ({reason_code}); retrying")

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._fail(self.last_error or "connection failed")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self._events.append((mid, not reason_code.is_failure, str(reason_code)))

    # --- helpers ---------------------------------------------------------------------------------------

    def _apply_events(self) -> None:
        """Turn recorded PUBACKs into spool removals (caller's thread)."""
        acked: list[int] = []
        while self._events:
            mid, ok, reason = self._events.popleft()
            spool_id = self._inflight.pop(mid, None)
            if spool_id is None:
                continue  # a status message
            if ok:
                acked.append(spool_id)
            else:
                self._refused[spool_id] = reason
                self._warn_once(
                    f"refused:{reason}",
                    f"broker {self.config.broker} refused a result ({reason}); it stays in the spool "
                    f"{self.spool.path}. Check that [agent] host/fleet ({self.config.host}/"
                    f"{self.config.fleet}) match this machine's MQTT user and ACL",
                )
        if acked:
            self.spool.remove(*acked)
            self.published += len(acked)

    def _fail(self, reason: str) -> None:
        self.last_error = reason
        self._attempted.set()
        self._warn_once(f"fail:{reason}", f"MQTT broker {self.config.broker}: {reason}")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warnings.append(message)

    def _emit_warnings(self) -> None:
        while self._warnings:
            self._warn_fn(self._warnings.popleft())
