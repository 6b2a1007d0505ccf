"""The controller's MQTT link: read the fleet's retained state (device status, job states, campaign
manifests) and publish jobs, waiting for the broker's verdict on each."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from edgebench.agent.errors import EdgebenchError
from edgebench.collector.config import CollectorConfig


class ControllerLink:
    """One short-lived connection as the controller identity (``[controller]``; [mqtt]'s address/TLS)."""

    def __init__(self, cfg: CollectorConfig) -> None:
        self.cfg = cfg
        self.client: Any = None
        self.messages: dict[str, bytes] = {}
        """Latest payload per topic (retained ones first, then live updates)."""
        self.changed = threading.Event()
        self._last_message = 0.0
        self._subacked = threading.Event()
        self._connack: Any = None
        self._connected = threading.Event()
        self._acks: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> ControllerLink:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self, timeout_s: float = 10.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        m, c = self.cfg.mqtt, self.cfg.controller
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{c.client_id}-{os.getpid()}",
            protocol=mqtt.MQTTv5,
        )
        username = c.username or m.username
        if username:
            password = c.resolved_password() if c.username else m.resolved_password()
            client.username_pw_set(username, password)
        if m.tls:
            client.tls_set(
                ca_certs=str(m.ca_file) if m.ca_file else None,
                certfile=str(m.cert_file) if m.cert_file else None,
                keyfile=str(m.key_file) if m.key_file else None,
            )
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = lambda *a: self._subacked.set()
        client.on_publish = self._on_publish
        self.client = client
        try:
            client.connect(m.host, m.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise EdgebenchError(f"cannot reach the broker at {m.host}:{m.port}: {exc}") from None
        client.loop_start()
        if not self._connected.wait(timeout_s):
            self.close()
            raise EdgebenchError(f"the broker at {m.host}:{m.port} did not answer within {timeout_s:g} s")
        if self._connack is not None and self._connack.is_failure:
            self.close()
            raise EdgebenchError(
                f"the broker refused the controller ({username or 'anonymous'}): {self._connack}"
            )

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connack = reason_code
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages[message.topic] = bytes(message.payload)
            self._last_message = time.monotonic()
        self.changed.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._lock:
            self._acks[mid] = reason_code

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

    def snapshot(self, topics: list[str], quiet_s: float = 0.4, max_s: float = 5.0) -> dict[str, bytes]:
        """Subscribe to ``topics`` and return the retained messages (collected until none arrived for
        ``quiet_s`` after the broker's SUBACK). The subscription stays: later messages keep coming."""
        self._subacked.clear()
        self.client.subscribe([(t, 1) for t in topics])
        start = time.monotonic()
        self._subacked.wait(max_s)
        subacked = time.monotonic()  # retained messages follow the SUBACK: quiet counts from there
        while time.monotonic() - start < max_s:
            with self._lock:
                idle = time.monotonic() - max(self._last_message, subacked)
            if idle >= quiet_s:
                break
            time.sleep(0.05)
        with self._lock:
            return dict(self.messages)

    def current(self) -> dict[str, bytes]:
        """The latest message of every topic received so far."""
        with self._lock:
            return dict(self.messages)

    def publish(
        self, topic: str, payload: bytes, retain: bool = False, timeout_s: float = 10.0
    ) -> str | None:
        """Publish at QoS 1 and wait for the PUBACK; the broker's refusal reason, or None when accepted."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if info.mid in self._acks:
                    rc = self._acks.pop(info.mid)
                    return str(rc) if rc is not None and getattr(rc, "is_failure", False) else None
            time.sleep(0.02)
        return f"no acknowledgement within {timeout_s:g} s"
