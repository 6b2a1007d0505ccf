"""MQTT publisher: sends the spool to the fleet broker with QoS 1 and removes a message only after its PUBACK.

Contract (design.md §2): results on ``edgebench/v1/{fleet}/{host}/result`` (QoS 1), a retained status on
``edgebench/v1/{fleet}/{host}/status`` (``online`` / ``running`` / ``offline``) whose Last Will is
``offline``, payload = the result document's JSON.

Threading, and why: paho's network thread (``loop_start``) handles the socket, keep-alives, PUBACKs and
reconnects. Its callbacks only record events in lock-free deques; every spool read/write (SQLite with fsync)
happens in the caller's thread inside :meth:`Publisher.pump` / :meth:`Publisher.flush`, which the CLI calls
*between* measured points. That keeps disk I/O out of timed work, and avoids a lock-order deadlock: paho calls
``on_publish`` while holding its own message mutex, which ``client.publish`` also takes.

Delivery: at least once, confirmed end to end (``spool.py`` has the states). Paho re-sends unacknowledged
in-flight messages itself after a reconnect (same mid); :meth:`pump` then sends whatever else is due. A
PUBACK moves a result to ``sent``; the collector's receipt (``receipt.py``), read through a persistent
session, removes it; an unconfirmed one is sent again after ``resend_after_s``. Refusals are classified:
a broker reason code >= 0x80 other than "quota exceeded"/"server busy" (e.g. "Not authorized" from the
ACL), a topic that is not a valid edgebench topic, or a result that cannot be made to fit the broker's
Maximum Packet Size (``trim.py``) moves that one result to ``refused`` with the reason, and the rest of
the queue keeps flowing. The collector deduplicates by ``run_id``/``seq``.
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
from edgebench.agent.publish.config import TOPIC_PREFIX, PublishConfig, identifier_problem
from edgebench.agent.publish.receipt import Receipt
from edgebench.agent.publish.spool import PutResult, Spool, SpooledMessage, payload_digest, result_key
from edgebench.agent.publish.status import status_payload
from edgebench.agent.publish.trim import TooLarge, fit

MAX_INFLIGHT = 100
"""Messages published but not yet acknowledged: bounds memory and what paho re-sends after a reconnect."""
RECEIPT_QUIET_S = 3.0
""":meth:`Publisher.flush` stops waiting for receipts after this long without one (collector away)."""
TRANSIENT_REFUSALS = {0x89, 0x97}
"""PUBACK reason codes worth retrying later (Server busy, Quota exceeded); other failures are permanent."""
PACKET_OVERHEAD = 16
"""PUBLISH bytes besides topic and payload: fixed header, length, packet id, property length."""


def topic_problem(topic: str) -> str | None:
    """Why a spooled result's topic cannot be sent (a spool written before names were checked)."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_PREFIX or parts[4] != "result":
        return f"malformed topic {ascii(topic)[:120]}"
    for part in parts[2:4]:
        problem = identifier_problem(part)
        if problem:
            return f"malformed topic: {problem}"
    return None


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
        self.confirmed = 0
        """Results the collector confirmed stored in this session (receipts)."""
        self.not_spooled: list[str] = []
        """Keys of results that did not fit in the full spool (still in the local store)."""
        self.max_packet: int | None = None
        """The broker's Maximum Packet Size from CONNACK (None: it announced none)."""
        self._state = "online"
        self._run_id: str | None = None
        self._inflight: dict[int, int] = {}  # mid -> spool id (caller's thread only)
        self._refused: dict[int, str] = {}  # spool id -> reason (permanent ones are also in the spool)
        self._held: set[int] = set()  # transient refusals: not retried in this session
        self._events: collections.deque[tuple[int, bool, str, int]] = collections.deque()
        self._receipts: collections.deque[bytes] = collections.deque()
        self._last_receipt = 0.0
        self.by_collector = config.confirm == "collector"
        """Whether results wait for the collector's receipt in this session (off when the broker refuses
        the receipt subscription: an ACL older than receipts)."""
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
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        connect_kwargs: dict[str, Any] = {"keepalive": cfg.keepalive}
        if cfg.confirm == "collector":  # receipts wait at the broker while this device is off
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = cfg.session_expiry_s
            connect_kwargs |= {"clean_start": False, "properties": props}
        client.connect_timeout = 5.0
        client.reconnect_delay_set(min_delay=1, max_delay=4)
        client.max_inflight_messages_set(self.max_inflight)
        if cfg.serving_class is None:  # under the daemon, the daemon's own connection carries the Will
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
            client.connect(cfg.broker_host, cfg.port, **connect_kwargs)
        except (OSError, ValueError) as exc:
            reason = describe_error(exc)
            if cfg.tls and isinstance(exc, ConnectionResetError):
                reason = f"TLS handshake failed ({reason}): is port {cfg.port} a TLS listener?"
            self._fail(reason)
            client.connect_async(cfg.broker_host, cfg.port, **connect_kwargs)  # retried by the thread
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
        self._apply_events()
        if self.connected:
            state = "offline" if self.config.serving_class is None else "online"  # the daemon lives on
            info = self.client.publish(
                self.config.status_topic(),
                self._status_payload(state, "agent stopped" if state == "offline" else None),
                1,
                True,
            )
            with contextlib.suppress(RuntimeError, ValueError):  # not connected any more: Last Will
                info.wait_for_publish(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()
        self._apply_events()
        self._emit_warnings()
        self.client = None

    # --- results --------------------------------------------------------------------------------------

    def spool_result(self, doc: Any, force: bool = False, only_copy: bool = False) -> PutResult:
        """Write one ResultDocument durably to the spool (before any publish attempt), decimated to fit
        ``max_message_bytes`` (``trim.py``; the local store keeps it whole).

        The topic uses the document's own fleet/host: the collector checks that they match."""
        topic = self.config.result_topic(doc.fleet, doc.host)
        key = result_key(doc.run_id, doc.seq)
        full = doc.model_dump_json().encode()
        origin = payload_digest(full)  # the whole measurement's identity, however it is trimmed
        refusal = None
        try:
            payload, sent = fit(doc, self._payload_limit(topic), full)
            if sent.decimated:
                lists = ", ".join(f"{d.path} {d.total}->{d.kept}" for d in sent.decimated)
                kept = (
                    "with --no-store the spool is the only copy: the full lists are not kept"
                    if only_copy
                    else "the local store keeps them whole"
                )
                self._warn_once(
                    "decimated",
                    f"result {key} is larger than one MQTT message allows: published with {lists} "
                    f"(every summary is from the full lists; {kept})",
                )
        except TooLarge as exc:
            payload, refusal = full, f"too large: {exc}"
        put = self.spool.put(topic, payload, key, force=force, origin=origin)
        if put is PutResult.FULL:
            self.not_spooled.append(key)
            self._warn_once(
                "spool-full",
                f"MQTT spool {self.spool.path} is full ({self.spool.max_messages} messages): new results are "
                f"not queued for the broker; they stay in the local results store and `edgebench-agent "
                f"publish` queues them once the spool has room",
            )
        elif put is PutResult.CONFLICT:
            self._warn_once(
                f"conflict:{key}",
                f"result {key} is already in the spool with different content: run id and sequence number "
                f"were reused for another measurement; the new one is not queued (it is in the local store)",
            )
        elif put is PutResult.QUEUED and refusal:
            self.spool.refuse_digest(payload_digest(payload), refusal)
            self._note_refusal(key, refusal)
        return put

    def _payload_limit(self, topic: str) -> int:
        """Bytes a payload may have: our own bound, or the broker's packet limit when smaller."""
        limit = self.config.max_message_bytes
        if self.max_packet:
            limit = min(limit, self.max_packet - len(topic.encode()) - PACKET_OVERHEAD)
        return limit

    def pump(self) -> int:
        """Apply acknowledgements and receipts, then publish what is due up to the in-flight bound. Cheap
        and non-blocking: call it between measured points. Returns how many were handed to paho."""
        self._apply_events()
        self._emit_warnings()
        if not self.connected or self.client is None:
            return 0
        free = self.max_inflight - len(self._inflight)
        if free <= 0:
            return 0
        exclude = set(self._inflight.values()) | self._held
        resend_before = None
        if self.by_collector:
            resend_before = time.time_ns() - int(self.config.resend_after_s * 1e9)
        else:  # results left 'sent' by an earlier session that waited for receipts: send them now
            resend_before = time.time_ns() + 1
        sent = 0
        for msg in self.spool.peek(free, exclude=exclude, resend_before_ns=resend_before):
            problem = topic_problem(msg.topic)
            if problem:
                self._refuse(msg, problem)
                continue
            payload = self._fitted(msg)
            if payload is None:
                continue
            info = self.client.publish(msg.topic, payload, qos=1)
            if info.rc not in (0, 4):  # 4 = MQTT_ERR_NO_CONN: paho keeps it and sends it on reconnect
                break
            self._inflight[info.mid] = msg.id
            sent += 1
        return sent

    def _fitted(self, msg: SpooledMessage) -> bytes | None:
        """The payload, decimated again when the broker's packet limit is below what it was spooled for;
        None (and refused) when it cannot fit."""
        limit = self._payload_limit(msg.topic)
        if len(msg.payload) <= limit:
            return msg.payload
        from edgebench.agent.results.schema import ResultDocument

        try:
            payload, _ = fit(ResultDocument.model_validate_json(msg.payload), limit)
        except TooLarge as exc:
            self._refuse(msg, f"too large for broker {self.config.broker}: {exc}")
            return None
        except ValueError:
            self._refuse(msg, f"{len(msg.payload)} bytes exceed the broker's limit and it is not a result")
            return None
        self.spool.replace_payload(msg.id, payload)
        return payload

    def flush(self, timeout_s: float) -> int:
        """Send until every deliverable spooled message is acknowledged or ``timeout_s`` passes; then wait
        for the collector's receipts while they keep coming (at most until the deadline).

        Returns the number of messages still in the spool that wait to be sent or confirmed."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            due = self._due()
            if due <= 0 and not self._inflight:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if self.by_collector and self.connected:
            quiet_since = max(self._last_receipt, time.monotonic())
            while self.spool.counts()["sent"] and time.monotonic() < deadline:
                self._apply_events()
                if time.monotonic() - max(quiet_since, self._last_receipt) > RECEIPT_QUIET_S:
                    break
                time.sleep(0.02)
        self._apply_events()
        self._emit_warnings()
        counts = self.spool.counts()
        return counts["queued"] + counts["sent"]

    def _due(self) -> int:
        """Queued messages this session may still send (held ones wait for the next session)."""
        return self.spool.queued_count(self._held)

    # --- status ---------------------------------------------------------------------------------------

    def set_status(self, state: str, run_id: str | None = None) -> None:
        """Retained status for dashboards: 'online', 'running' (with the run id), 'offline'."""
        self._state, self._run_id = state, run_id
        if self.connected and self.client is not None:
            self.client.publish(self.config.status_topic(), self._status_payload(state), 1, True)

    def _status_payload(self, state: str, reason: str | None = None, stamped: bool = True) -> bytes:
        """JSON of :class:`~edgebench.agent.publish.status.StatusPayload` (the collector's contract)."""
        counts = self.spool.counts() if stamped else None  # the Last Will's text is fixed at connect
        return status_payload(
            state,
            self.config.host,
            self.config.fleet,
            _agent.__version__,
            self._run_id,
            reason,
            stamped=stamped,
            unconfirmed=counts["queued"] + counts["sent"] if counts else None,
            refused=counts["refused"] if counts else None,
            device_class=self.config.serving_class,
            jobs=True if self.config.serving_class is not None else None,
        )

    @property
    def refused(self) -> dict[int, str]:
        """Spool ids refused in this session (for good, or held by a busy broker), with the reason."""
        return dict(self._refused)

    @property
    def held_reasons(self) -> list[str]:
        """Why a busy broker made results wait for the next session (empty when none)."""
        return sorted({self._refused[i] for i in self._held if i in self._refused})

    # --- paho callbacks (network thread: record only, no I/O) ------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.connected = False
            self._fail(f"broker refused the connection: {reason_code}")
        else:
            self.connected = self.ever_connected = True
            self.last_error = None
            self.max_packet = getattr(properties, "MaximumPacketSize", None) if properties else None
            if self.by_collector:
                client.subscribe(self.config.receipt_topic(), qos=1)
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
        self._events.append((mid, not reason_code.is_failure, str(reason_code), int(reason_code.value)))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._receipts.append(message.payload)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused and self.by_collector:
            # No receipts can arrive: waiting for them would re-send every result forever. Confirm on
            # PUBACK for this session (what an agent without receipts did) and say how to fix it.
            self.by_collector = False
            self._warn_once(
                "receipt-refused",
                f"broker {self.config.broker} refused the receipt subscription {self.config.receipt_topic()} "
                f"({', '.join(refused)}): results are confirmed on the broker's PUBACK in this session; "
                f'update the broker\'s ACL (deploy/mosquitto/make_acl.py) or set [spool] confirm = "broker"',
            )

    # --- helpers ---------------------------------------------------------------------------------------

    def _apply_events(self) -> None:
        """Turn recorded PUBACKs and receipts into spool changes (caller's thread)."""
        acked: list[int] = []
        while self._events:
            mid, ok, reason, code = self._events.popleft()
            spool_id = self._inflight.pop(mid, None)
            if spool_id is None:
                continue  # a status message
            if ok:
                acked.append(spool_id)
            elif code in TRANSIENT_REFUSALS:
                self._held.add(spool_id)
                self._refused[spool_id] = reason
                self._warn_once(f"held:{reason}", f"broker {self.config.broker}: {reason}; retried next time")
            else:
                why = f"broker refused: {reason}"
                if code == 0x87:  # Not authorized: the ACL pins fleet and host to the MQTT user
                    why += (
                        f" (check that [agent] host/fleet {self.config.host}/{self.config.fleet} and the "
                        f"document's match this machine's MQTT user and ACL)"
                    )
                self._refuse(SpooledMessage(spool_id, "", "", b""), why)
        if acked:
            if self.by_collector:
                self.spool.mark_sent(acked)
            else:
                self.spool.remove(*acked)
            self.published += len(acked)
        written: list[str] = []
        while self._receipts:
            payload = self._receipts.popleft()
            self._last_receipt = time.monotonic()
            try:
                receipt = Receipt.model_validate_json(payload)
            except ValueError:
                topic = self.config.receipt_topic()
                self._warn_once("bad-receipt", f"ignored a malformed receipt on {topic}")
                continue
            for item in receipt.items:
                if item.outcome == "written":
                    written.append(item.digest)
                elif self.spool.refuse_digest(item.digest, f"collector refused: {item.reason}"):
                    self._note_refusal(item.key or item.digest, f"collector refused: {item.reason}")
        if written:
            self.confirmed += self.spool.confirm(written)

    def _refuse(self, msg: SpooledMessage, reason: str) -> None:
        """Move one result out of the queue for good (visible in ``publish --list-refused``)."""
        self.spool.refuse(msg.id, reason)
        self._refused[msg.id] = reason
        self._note_refusal(msg.key or str(msg.id), reason)

    def _note_refusal(self, what: str, reason: str) -> None:
        self._warn_once(
            f"refused:{reason.split(' (', 1)[0]}",
            f"result {what} refused ({reason}); it is kept in the spool {self.spool.path} as refused and no "
            f"longer blocks the others: `edgebench-agent publish --list-refused`, `--retry-refused`",
        )

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
