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

Threads: paho's network thread validates and enqueues (``on_message``); the main thread batches,
writes and acks. Acks from a previous connection are never sent on the new one (packet ids are reused
after reconnect; the broker redelivers those messages anyway) — tracked by a connection generation.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from edgebench.collector.config import CollectorConfig, apply_auth
from edgebench.collector.fleet_points import agent_status_line, deadletter_line, receive_ns
from edgebench.collector.logs import log
from edgebench.collector.points import document_to_lines
from edgebench.collector.sinks.base import Sink, SinkRejected, SinkUnavailable
from edgebench.collector.stats import Stats
from edgebench.collector.validate import (
    Rejection,
    fleet_of,
    is_status_topic,
    validate,
    validate_status,
)

DEADLETTER_PAYLOAD_LIMIT = 64 * 1024
LINGER_S = 0.02
"""Flush early when no message arrived for this long: the broker may cap in-flight messages below
our batch size (an MQTT 3.1.1 client gets mosquitto's max_inflight_messages, default 20; a v5 client
its own Receive Maximum) and would otherwise wait for acks."""


@dataclass
class Pending:
    """A received message waiting for its batch to be written (then acked).

    ``kind`` is ``result`` or ``status`` (their points), or ``deadletter`` (a rejected message whose
    ``deadletter`` point is in ``lines``; after the write its dead-letter copy is published and the
    original acked once the broker acknowledged that copy).
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
        """Validate and turn into lines here (network thread), queue for the writer. Never raises."""
        mid, qos, gen, topic, payload = msg.mid, msg.qos, self._gen, msg.topic, msg.payload
        try:
            if is_status_topic(topic):
                status = validate_status(topic, payload, self.cfg.limits.max_payload_bytes)
                if status is None:  # an emptied retained status: nothing to store
                    self.queue.put(Pending(mid, qos, gen, topic, payload, [], "status"))
                elif isinstance(status, Rejection):
                    self._reject(mid, qos, gen, topic, payload, status)
                else:
                    now = receive_ns()
                    line = agent_status_line(status, now)
                    self.queue.put(Pending(mid, qos, gen, topic, payload, [line], "status", received_ns=now))
                return
            result = validate(topic, payload, self.cfg.limits.max_payload_bytes)
            if isinstance(result, Rejection):
                self._reject(mid, qos, gen, topic, payload, result)
            else:
                self.queue.put(Pending(mid, qos, gen, topic, payload, document_to_lines(result)))
        except Exception as exc:  # never let one message kill the network thread
            self._reject(mid, qos, gen, topic, payload, Rejection("internal", repr(exc)[:300]))

    def _reject(self, mid: int, qos: int, gen: int, topic: str, payload: bytes, rej: Rejection) -> None:
        """Queue a reject: its ``deadletter`` point is written with the next batch, then it is published."""
        now = receive_ns()
        log("deadletter", "warning", reason=rej.reason, detail=rej.detail, topic=topic, bytes=len(payload))
        self.stats.deadletter(rej.reason)
        line = deadletter_line(fleet_of(topic), rej.reason, topic, len(payload), now)
        self.queue.put(Pending(mid, qos, gen, topic, payload, [line], "deadletter", rej, now))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code is not None and getattr(reason_code, "is_failure", False):
            log("deadletter_publish_refused", "error", reason=str(reason_code))
        with self._dl_lock:
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
            # graceful stop: what is already here is written (bounded wait) and acked
            rest = self._drain()
            if rest:
                self._write_batch(rest, give_up_at=time.monotonic() + 10)
        finally:
            time.sleep(0.1)  # let the last PUBACKs leave
            self.client.disconnect()
            self.client.loop_stop()
            self.sink.close()
            log("collector_stopped")

    def _drain(self) -> list[Pending]:
        out: list[Pending] = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def _collect(self) -> list[Pending]:
        """Block for the first message, then gather until batch_lines, max_inflight, interval or linger."""
        icfg = self.cfg.influx
        try:
            first = self.queue.get(timeout=0.2)
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
                item = self.queue.get(timeout=min(remaining, LINGER_S))
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
            for p in written:
                if p.kind == "deadletter":
                    self._publish_deadletter(p)
                else:
                    self._ack(p.mid, p.qos, p.gen)
            results = [p for p in written if p.kind == "result"]
            self.stats.written(len(results), sum(len(p.lines) for p in written), self.queue.qsize())

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
                rej = Rejection("sink_rejected", str(exc)[:300])
                log("deadletter", "warning", reason=rej.reason, detail=rej.detail, topic=p.topic)
                self.stats.deadletter(rej.reason)
                now = receive_ns()
                line = deadletter_line(fleet_of(p.topic), rej.reason, p.topic, len(p.payload), now)
                return [], [Pending(p.mid, p.qos, p.gen, p.topic, p.payload, [line], "deadletter", rej, now)]
            half = len(batch) // 2
            w1, d1 = self._write_isolating(batch[:half])
            w2, d2 = self._write_isolating(batch[half:])
            return w1 + w2, d1 + d2

    def status_fields(self) -> dict[str, Any]:
        return {"connected": self._connected.is_set(), "queued": self.queue.qsize()}
