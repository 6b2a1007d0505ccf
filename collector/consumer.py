"""MQTT → InfluxDB with at-least-once delivery and idempotent writes: nothing lost, nothing doubled.

The rule that makes it safe: a QoS 1 message is acknowledged (PUBACK, paho ``manual_ack``) only after
its points are in the database, or after its dead-letter copy was acknowledged by the broker. The
session is persistent (fixed client id, ``clean_start=False``, session expiry), so whatever was not
acknowledged when the collector died or lost the broker is redelivered, and re-writing it overwrites the
same points (see ``points.py``). While InfluxDB is down the writer retries with capped exponential
back-off and holds the acks; the broker stops sending once ``max_inflight`` messages are unacknowledged
(receive maximum / mosquitto ``max_inflight_messages``) and queues the rest on disk — back-pressure
instead of the drop-oldest buffer Telegraf uses.

Three kinds of message share that pipeline: results (``inference``/``latency_sample``/``sysinfo``
points), agent status (``agent_status``) and rejects (a ``deadletter`` point, then the MQTT dead-letter
copy, then the ack) — see ``fleet_points.py``.

After each write the collector publishes a receipt per device (``agent/publish/receipt.py``): agents keep a
result until it arrives, so a broker that acknowledged a result and then crashed before persisting it
loses nothing. A document is written all or nothing: values InfluxDB cannot store are refused before the
write, and a document the server still stores only in part is deleted again (reported as
``partially_written`` when even that fails).

Memory is bounded by bytes as well as by count: a received document costs about 4x its payload until it
is written (``limits.max_pending_bytes``); beyond that a message is left unread and unacknowledged, and
once the backlog is written the collector reconnects its persistent session so the broker redelivers it.

Threads: paho's network thread validates and enqueues (``on_message``); the main thread builds the lines,
batches, writes and acks. Acks from a previous connection are never sent on the new one (packet ids are reused
after reconnect; the broker redelivers those messages anyway) — tracked by a connection generation.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from edgebench.agent.publish.config import TOPIC_PREFIX
from edgebench.agent.publish.receipt import receipt_topic
from edgebench.agent.publish.spool import payload_digest
from edgebench.agent.results.schema import ResultDocument
from edgebench.collector.config import CollectorConfig, apply_auth
from edgebench.collector.fleet_points import agent_status_line, deadletter_line, job_state_line, receive_ns
from edgebench.collector.logs import log
from edgebench.collector.points import document_footprint, document_to_lines
from edgebench.collector.sinks.base import Sink, SinkError, SinkRejected, SinkUnavailable
from edgebench.collector.stats import Stats
from edgebench.collector.validate import (
    Rejection,
    fleet_of,
    is_job_state_topic,
    is_status_topic,
    parse_topic,
    validate,
    validate_job_state,
    validate_status,
)

DEADLETTER_PAYLOAD_LIMIT = 64 * 1024
RESULT_MEMORY_FACTOR = 4
"""A waiting result costs about its payload plus the parsed document: 4.2x measured for a 280 kB document
of 18,000 latency samples (tests/test_delivery.py)."""
LINGER_S = 0.02
"""Flush early when no message arrived for this long: the broker may cap in-flight messages below
our batch size (an MQTT 3.1.1 client gets mosquitto's max_inflight_messages, default 20; a v5 client
its own Receive Maximum) and would otherwise wait for acks."""


@dataclass
class Pending:
    """A received message waiting for its batch to be written (then acked).

    ``kind`` is ``result`` (``doc`` set; its lines are built by the writer, so a waiting document costs
    its payload and parsed form, not the ~16x larger line protocol), ``status`` (its point in ``lines``),
    or ``deadletter`` (a rejected message whose ``deadletter`` point is in ``lines``; after the write its
    dead-letter copy is published and the original acked once the broker acknowledged that copy).
    """

    mid: int
    qos: int
    gen: int
    topic: str
    payload: bytes
    lines: list[str]
    kind: str = "result"
    rejection: Rejection | None = None
    received_ns: int = field(default_factory=receive_ns)
    doc: ResultDocument | None = None
    cost: int = 0
    """Bytes counted against ``limits.max_pending_bytes`` until this message is done."""

    def as_deadletter(self, rejection: Rejection, stats: Stats) -> Pending:
        """The same message, now refused: its ``deadletter`` point replaces its own points."""
        log(
            "deadletter",
            "warning",
            reason=rejection.reason,
            detail=rejection.detail,
            topic=self.topic[:200],
            bytes=len(self.payload),
        )
        stats.deadletter(rejection.reason)
        now = receive_ns()
        line = deadletter_line(fleet_of(self.topic), rejection.reason, self.topic, len(self.payload), now)
        return Pending(
            self.mid,
            self.qos,
            self.gen,
            self.topic,
            self.payload,
            [line],
            "deadletter",
            rejection,
            now,
            cost=self.cost,
        )


def deadletter_payload(topic: str, payload: bytes, rejection: Rejection, received_ns: int) -> bytes:
    """JSON {reason, detail, topic, payload, payload_encoding, payload_bytes, received_ns}."""
    body = payload[:DEADLETTER_PAYLOAD_LIMIT]
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return json.dumps(
        {
            "reason": rejection.reason,
            "detail": rejection.detail,
            "topic": topic,
            "payload": text,
            "payload_encoding": encoding,
            "payload_bytes": len(payload),
            "truncated": len(payload) > DEADLETTER_PAYLOAD_LIMIT,
            "received_ns": received_ns,
        }
    ).encode()


class Collector:
    """One collector process: call :meth:`run` (blocks until :meth:`stop`)."""

    def __init__(self, cfg: CollectorConfig, sink: Sink, stats: Stats | None = None) -> None:
        self.cfg = cfg
        self.sink = sink
        self.stats = stats or Stats(cfg.state_dir())
        self.queue: queue.Queue[Pending] = queue.Queue()
        self._stop = threading.Event()
        self._gen = 0
        self._connected = threading.Event()
        self._dl_lock = threading.Lock()
        self._dl_waiting: dict[int, tuple[int, int, int]] = {}  # deadletter mid -> (mid, qos, gen)
        self._dl_done: set[int] = set()  # PUBACKs that arrived before we recorded the mid
        self._receipt_mids: set[int] = set()  # receipts in flight (their PUBACKs are not dead letters')
        self._bytes_lock = threading.Lock()
        self._pending_bytes = 0
        self._deferred = 0  # messages of this connection left unread (over the byte budget)
        self._seen: collections.OrderedDict[tuple[str, str, str, int], int] = collections.OrderedDict()
        self._unknown_logged: set[str] = set()
        self.client = self._make_client()

    # ------------------------------------------------------------------ MQTT side (network thread)
    def _make_client(self):  # type: ignore[no-untyped-def]
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        m = self.cfg.mqtt
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=m.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        apply_auth(client, m)
        client.max_inflight_messages_set(max(20, m.max_inflight))
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._connect_props = Properties(PacketTypes.CONNECT)
        self._connect_props.SessionExpiryInterval = m.session_expiry_s
        self._connect_props.ReceiveMaximum = max(1, min(m.max_inflight, 65535))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log("mqtt_connect_failed", "error", reason=str(reason_code))
            return
        self._gen += 1
        with self._bytes_lock:
            self._deferred = 0  # the broker redelivers them on this connection
        with self._dl_lock:
            self._receipt_mids.clear()  # a new connection: old receipt ids mean nothing
        log(
            "mqtt_connected",
            session_present=bool(flags.session_present),
            generation=self._gen,
            subscription=self.cfg.mqtt.subscription,
            status_subscription=self.cfg.mqtt.status_subscription,
        )
        client.subscribe(self._subscriptions())
        self._connected.set()

    def _subscriptions(self):  # type: ignore[no-untyped-def]
        """Results, and agent status unless disabled. Status uses retain handling 1: retained states
        arrive when the subscription is new, not again on every reconnect of the persistent session
        (re-sending them would only rewrite the same points — their timestamp is the payload's)."""
        from paho.mqtt.subscribeoptions import SubscribeOptions

        m = self.cfg.mqtt
        subs = [(m.subscription, SubscribeOptions(qos=1))]
        if m.status_subscription:
            subs.append((m.status_subscription, SubscribeOptions(qos=1, retainHandling=1)))
        if m.jobs_subscription:
            subs.append((m.jobs_subscription, SubscribeOptions(qos=1, retainHandling=1)))
        return subs

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # type: ignore[no-untyped-def]
        bad = [str(rc) for rc in reason_codes if rc.is_failure]
        if bad:
            log("mqtt_subscribe_refused", "error", reasons=bad, subscription=self.cfg.mqtt.subscription)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self._connected.clear()
        if not self._stop.is_set():
            log("mqtt_disconnected", "warning", reason=str(reason_code))

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        """Validate here (network thread), queue for the writer. Never raises."""
        mid, qos, gen, topic, payload = msg.mid, msg.qos, self._gen, msg.topic, msg.payload
        try:
            if not self._admit(mid, qos, len(payload)):
                return
            if is_job_state_topic(topic):
                state = validate_job_state(topic, payload, self.cfg.limits.max_payload_bytes)
                if isinstance(state, Rejection):
                    self._reject(mid, qos, gen, topic, payload, state)
                    return
                lines = [job_state_line(state, receive_ns())] if state is not None else []
                self._queue(Pending(mid, qos, gen, topic, payload, lines, "status"))
                return
            if is_status_topic(topic):
                status = validate_status(topic, payload, self.cfg.limits.max_payload_bytes)
                if status is None:  # an emptied retained status: nothing to store
                    self._queue(Pending(mid, qos, gen, topic, payload, [], "status"))
                elif isinstance(status, Rejection):
                    self._reject(mid, qos, gen, topic, payload, status)
                else:
                    now = receive_ns()
                    skew = self.cfg.limits.status_clock_skew_s
                    if status.ts_ns is not None and status.ts_ns > now + skew * 1e9:
                        log("status_clock_ahead", "warning", topic=topic[:200], ts_ns=status.ts_ns, now=now)
                        status = status.model_copy(update={"ts_ns": None})  # stored at its receive time
                    self.stats.device_status(status)
                    line = agent_status_line(status, now)
                    self._queue(Pending(mid, qos, gen, topic, payload, [line], "status", received_ns=now))
                return
            unknown: list[str] = []
            result = validate(topic, payload, self.cfg.limits.max_payload_bytes, unknown)
            if isinstance(result, Rejection):
                self._reject(mid, qos, gen, topic, payload, result)
                return
            if unknown:
                self._note_unknown(unknown, result.schema_version)
            cost = RESULT_MEMORY_FACTOR * len(payload)
            self._queue(Pending(mid, qos, gen, topic, payload, [], doc=result, cost=cost))
        except Exception as exc:  # never let one message kill the network thread
            self._reject(mid, qos, gen, topic, payload, Rejection("internal", repr(exc)[:300]))

    def _admit(self, mid: int, qos: int, size: int) -> bool:
        """Whether a message fits the byte budget. One that does not stays unacknowledged (the broker
        counts it in flight, so it stops sending more) and is redelivered after a reconnect."""
        limit = self.cfg.limits.max_pending_bytes
        with self._bytes_lock:
            fits = self._pending_bytes + RESULT_MEMORY_FACTOR * size <= limit
            if qos == 0 or fits or not self._pending_bytes:  # one message always fits an empty budget
                return True
            self._deferred += 1
            first = self._deferred == 1
        if first:
            log("receive_budget_full", "warning", pending_bytes=self._pending_bytes, limit=limit)
        return False

    def _queue(self, p: Pending) -> None:
        if not p.cost:
            p.cost = len(p.payload) + sum(len(line) for line in p.lines)
        with self._bytes_lock:
            self._pending_bytes += p.cost
        self.queue.put(p)

    def _release(self, p: Pending) -> None:
        with self._bytes_lock:
            self._pending_bytes -= p.cost
        p.cost = 0

    def _note_unknown(self, fields: list[str], version: str) -> None:
        self.stats.unknown_fields(fields)
        new = [f for f in fields if f not in self._unknown_logged]
        if new:
            self._unknown_logged.update(new)
            log("unknown_fields_ignored", "warning", schema_version=version[:20], fields=new[:20])

    def _reject(self, mid: int, qos: int, gen: int, topic: str, payload: bytes, rej: Rejection) -> None:
        """Queue a reject: its ``deadletter`` point is written with the next batch, then it is published."""
        self._queue(Pending(mid, qos, gen, topic, payload, []).as_deadletter(rej, self.stats))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        refused = reason_code is not None and getattr(reason_code, "is_failure", False)
        with self._dl_lock:
            if mid in self._receipt_mids:
                self._receipt_mids.discard(mid)
                if refused:  # the ACL does not let us write receipts: agents will re-send until it does
                    log("receipt_publish_refused", "error", reason=str(reason_code))
                return
            if refused:
                log("deadletter_publish_refused", "error", reason=str(reason_code))
            original = self._dl_waiting.pop(mid, None)
            if original is None:
                self._dl_done.add(mid)
                return
        self._ack(*original)

    # ------------------------------------------------------------------ dead letters and acks
    def _publish_deadletter(self, p: Pending) -> None:
        """Publish the reject to ``edgebench/v1/{fleet}/deadletter``; ack the original once that is acked."""
        assert p.rejection is not None
        dl_topic = f"{self.cfg.mqtt.deadletter_prefix}/{fleet_of(p.topic)}/deadletter"
        body = deadletter_payload(p.topic, p.payload, p.rejection, p.received_ns)
        info = self.client.publish(dl_topic, body, qos=1)
        with self._dl_lock:
            if info.mid in self._dl_done:
                self._dl_done.discard(info.mid)
            else:
                self._dl_waiting[info.mid] = (p.mid, p.qos, p.gen)
                return
        self._ack(p.mid, p.qos, p.gen)

    def _ack(self, mid: int, qos: int, gen: int) -> None:
        """PUBACK, unless the message came over an earlier connection (the broker redelivers it)."""
        if qos == 0 or gen != self._gen:
            return
        try:
            self.client.ack(mid, qos)
        except Exception as exc:  # a lost connection: the message will be redelivered
            log("ack_failed", "warning", mid=mid, error=repr(exc))

    # ------------------------------------------------------------------ writer (main thread)
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Connect, then batch/write/ack until :meth:`stop`; flush and disconnect cleanly at the end."""
        m = self.cfg.mqtt
        self.client.connect_async(
            m.host, m.port, keepalive=m.keepalive_s, clean_start=False, properties=self._connect_props
        )
        self.client.loop_start()
        log("collector_started", sink=self.sink.kind, mqtt=f"{m.host}:{m.port}", client_id=m.client_id)
        try:
            while not self._stop.is_set():
                batch = self._collect()
                if batch:
                    self._write_batch(batch, give_up_at=None)
                else:
                    self.stats.flush()
                    if self._deferred and self.queue.empty():
                        self._request_redelivery()
            # graceful stop: what is already here is written (bounded wait) and acked
            rest = self._drain()
            if rest:
                self._write_batch(rest, give_up_at=time.monotonic() + 10)
        finally:
            time.sleep(0.1)  # let the last PUBACKs leave
            self.client.disconnect()
            self.client.loop_stop()
            self.sink.close()
            self.stats.flush()
            log("collector_stopped")

    def _request_redelivery(self) -> None:
        """Everything received is written: drop the connection so that the broker, on our reconnect of the
        persistent session, redelivers the messages left unread over the byte budget (MQTT v5 4.4)."""
        with self._dl_lock:
            if self._dl_waiting:
                return  # dead-letter copies still need this connection's PUBACKs
        log("redelivery_requested", deferred=self._deferred)
        self._deferred = 0
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                # the plain socket's shutdown, also under TLS: SSLSocket.shutdown would tear down the TLS
                # object under paho's reading thread (a ValueError it does not catch)
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # paho reconnects by itself

    def _drain(self) -> list[Pending]:
        out: list[Pending] = []
        while True:
            try:
                out.append(self._prepare(self.queue.get_nowait()))
            except queue.Empty:
                return out

    def _prepare(self, p: Pending) -> Pending:
        """Build a result's lines (writer thread), or turn it into a dead letter: a value InfluxDB cannot
        store, or a run id and sequence number already seen with a different measurement."""
        if p.kind != "result" or p.doc is None:
            return p
        doc = p.doc
        key = (doc.fleet, doc.host, doc.run_id, doc.seq)
        seen = self._seen.get(key)
        if seen is not None and seen != doc.created_ns:
            detail = (
                f"run {doc.run_id} seq {doc.seq} of {doc.host} was already stored with created_ns {seen}; "
                f"this one has {doc.created_ns}: a reused id, not a re-send (the first one is kept)"
            )
            return p.as_deadletter(Rejection("conflicting_duplicate", detail[:500]), self.stats)
        try:
            p.lines = document_to_lines(doc)
        except ValueError as exc:
            return p.as_deadletter(Rejection("bad_value", str(exc)[:300]), self.stats)
        self._seen[key] = doc.created_ns
        self._seen.move_to_end(key)
        while len(self._seen) > self.cfg.limits.dedup_window:
            self._seen.popitem(last=False)
        return p

    def _collect(self) -> list[Pending]:
        """Block for the first message, then gather until batch_lines, max_inflight, interval or linger."""
        icfg = self.cfg.influx
        try:
            first = self._prepare(self.queue.get(timeout=0.2))
        except queue.Empty:
            return []
        batch, lines = [first], len(first.lines)
        deadline = time.monotonic() + icfg.flush_interval_s
        # At most half the receive window per batch: the broker keeps sending the other half while this
        # batch is written (acks come only after the write), so receiving and writing overlap.
        max_docs = max(1, self.cfg.mqtt.max_inflight // 2)
        while lines < icfg.batch_lines and len(batch) < max_docs:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._prepare(self.queue.get(timeout=min(remaining, LINGER_S)))
            except queue.Empty:
                break
            batch.append(item)
            lines += len(item.lines)
        return batch

    def _write_batch(self, batch: list[Pending], give_up_at: float | None) -> None:
        """Write with capped exponential back-off on SinkUnavailable; ack (or dead-letter) what is stored.

        A document the server refuses (4xx) becomes a ``sink_rejected`` dead letter, whose own point is
        written in a second round before it is published and acked.
        """
        todo = batch
        while todo:
            outcome = self._write_with_retry(todo, give_up_at)
            if outcome is None:
                return  # abandoned at shutdown, not acked: the broker redelivers after restart
            written, todo = outcome
            self._send_receipts(written)
            for p in written:
                if p.kind == "deadletter":
                    self._publish_deadletter(p)
                else:
                    self._ack(p.mid, p.qos, p.gen)
                self._release(p)
            results = [p for p in written if p.kind == "result"]
            self.stats.written(len(results), sum(len(p.lines) for p in written), self.queue.qsize())
            for p in results:
                p.doc, p.lines = None, []  # the batch list lives on in the caller: free the memory now

    def _send_receipts(self, done: list[Pending]) -> None:
        """One receipt per device: its results now stored (or refused for good, with the reason). Sent
        before the acks; a lost receipt only makes the agent re-send, which rewrites the same points."""
        if not self.cfg.mqtt.receipts:
            return
        by_device: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for p in done:
            if p.kind == "status" or (p.kind == "deadletter" and is_status_topic(p.topic)):
                continue
            where = parse_topic(p.topic)
            if where is None:
                continue  # no device to tell
            item: dict[str, Any] = {"digest": payload_digest(p.payload)}
            if p.kind == "result" and p.doc is not None:
                item |= {"outcome": "written", "key": f"{p.doc.run_id}:{p.doc.seq}"}
            else:
                assert p.rejection is not None
                item |= {"outcome": "refused", "reason": str(p.rejection)[:300]}
            by_device.setdefault(where, []).append(item)
        for (fleet, host), items in by_device.items():
            body = json.dumps({"items": items, "collector": self.cfg.mqtt.client_id, "ts_ns": time.time_ns()})
            info = self.client.publish(receipt_topic(TOPIC_PREFIX, fleet, host), body.encode(), qos=1)
            with self._dl_lock:  # its PUBACK may already have come: then it sits in _dl_done
                if info.mid in self._dl_done:
                    self._dl_done.discard(info.mid)
                else:
                    self._receipt_mids.add(info.mid)

    def _write_with_retry(
        self, batch: list[Pending], give_up_at: float | None
    ) -> tuple[list[Pending], list[Pending]] | None:
        icfg = self.cfg.influx
        delay = icfg.retry_initial_s
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = self._write_isolating(batch)
                break
            except SinkUnavailable as exc:
                if give_up_at is not None and time.monotonic() + delay > give_up_at:
                    log("write_abandoned_unacked", "warning", documents=len(batch), error=str(exc))
                    return None
                log("sink_unavailable", "warning", attempt=attempt, retry_in_s=delay, error=str(exc))
                if self._stop.wait(delay) and give_up_at is None:
                    give_up_at = time.monotonic() + 10
                delay = min(delay * 2, icfg.retry_max_s)
        if attempt > 1:
            log("sink_recovered", attempts=attempt)
        return outcome

    def _write_isolating(self, batch: list[Pending]) -> tuple[list[Pending], list[Pending]]:
        """Write ``batch``; on a 4xx bisect to find the messages the server refuses.

        Returns (written, refused-turned-dead-letters). Halves that were written before a later
        SinkUnavailable are simply written again on retry (idempotent).
        """
        try:
            self.sink.write([line for p in batch for line in p.lines])
            return batch, []
        except SinkRejected as exc:
            if len(batch) == 1:
                p = batch[0]
                if p.kind == "deadletter":  # its own point refused: publish the copy anyway, never loop
                    log("deadletter_point_refused", "error", error=str(exc)[:300], topic=p.topic[:200])
                    return [p], []
                return [], [p.as_deadletter(self._rolled_back(p, str(exc)), self.stats)]
            half = len(batch) // 2
            w1, d1 = self._write_isolating(batch[:half])
            w2, d2 = self._write_isolating(batch[half:])
            return w1 + w2, d1 + d2

    def _rolled_back(self, p: Pending, error: str) -> Rejection:
        """The server refused part of one document and may have stored the rest: delete what it stored,
        so a dead-lettered document leaves nothing behind — or say exactly what may remain."""
        if p.kind != "result" or p.doc is None:
            return Rejection("sink_rejected", error[:300])
        footprint = document_footprint(p.doc)
        try:
            self.sink.delete(footprint)
        except SinkUnavailable:
            raise  # the database went away: the whole batch is retried (and rolled back then)
        except SinkError as exc:
            remains = ", ".join(f"{m} {t0}..{t1}" for m, _, t0, t1 in footprint)
            detail = f"{error[:200]}; rollback failed ({str(exc)[:100]}): points may remain in {remains}"
            log("rollback_failed", "error", error=str(exc)[:300], topic=p.topic[:200])
            return Rejection("partially_written", detail[:500])
        log("rolled_back", "warning", topic=p.topic[:200], series=len(footprint))
        return Rejection("sink_rejected", f"{error[:250]} (nothing kept: rolled back)")

    def status_fields(self) -> dict[str, Any]:
        return {
            "connected": self._connected.is_set(),
            "queued": self.queue.qsize(),
            "pending_bytes": self._pending_bytes,
        }
