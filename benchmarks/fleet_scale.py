"""A simulated fleet against one broker, one collector and one InfluxDB: does nothing fall behind or get lost?

Run: ``.venv/bin/python -m benchmarks.fleet_scale [--devices 1000 --interval 10 --duration 60 --procs 4]``
from the repo root. The script starts its own mosquitto (production config from deploy/mosquitto, one
broker user and ACL entry per simulated device) and InfluxDB 1.x via ``tests/servers.py`` in a temporary
directory, and one ``edgebench-collector run`` subprocess (config as in ``benchmarks/collector_throughput``).

Each simulated device is its own MQTT v5 connection, as a real agent's: client id
``edgebench-agent-{host}``, username = its host name, the agent's in-flight bound and keep-alive, a retained
``offline`` Last Will, ``online`` on connect, ``running`` before its first result and ``offline`` when it
stops; results go out with QoS 1 on ``edgebench/v1/lab/{host}/result``. With ``--confirm collector`` (the
agent's default) each device also keeps a persistent session and subscribes to its receipt topic, as the
agent does, and counts a result as delivered only when the collector's receipt names it. Connections are
opened at ``--connect-rate`` per second (a fleet does not reconnect all at once), then every device
publishes one result every ``--interval`` seconds (+-``--jitter``, random phase) for ``--duration``
seconds: 1000 devices every 10 s offer ~100 results/s. A document is a realistic forward sweep point
(``make_doc`` from the collector tests, extended): 50-300 full-precision latency samples, policy, load,
memory, an energy summary and a telemetry trace (one point per 0.5 s of the measured window, as the agent
samples; the energy trace is left out): 4-15 KB (median ~7) and 50-530 points (median ~200) each. Every
device cycles through a 6-point sweep, so the series per measurement are devices x 6. The devices are
spread over ``--procs`` publisher processes; each drives all its paho clients from one thread with a
selector (paho's external-loop socket callbacks) instead of a network thread per client, which a 2-core
box could not carry for 1000 clients.

Printed (targets reported, not asserted):

- results/s offered vs written (queryable) over the steady window (after the first interval), and per
  bucket; target: written >= 0.99 x offered, and the last result queryable soon after the last publish;
- publish-to-queryable latency p50/p99/max: from just before ``publish()`` until the ``inference`` point
  is queryable, known to lie between two InfluxDB polls (``--poll``) and before the receipt arrived; the
  midpoint is reported with that +- grain; target p99 <= 2 s. Publish-to-PUBACK (broker) and
  publish-to-receipt (what the agent waits for) beside it;
- nothing lost: documents in InfluxDB == published (== PUBACKed, == confirmed by receipt),
  ``latency_sample``, ``telemetry_sample`` and ``sysinfo`` points == what the published documents carry,
  ``agent_status`` points == status messages, and the collector's dead letters (its stats file) == 0;
- CPU-µs per document of each process (publishers, broker, collector, influxd, this script's polling, the
  rest of the machine) over the measured window (start of publishing until the last result is
  queryable), because on a small shared box CPU decides the ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import heapq
import json
import multiprocessing as mp
import os
import queue
import random
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.collector_throughput import CpuMeter, collector_config, cpu_line  # noqa: E402
from edgebench.agent import __version__ as AGENT_VERSION  # noqa: E402
from edgebench.agent.results.schema import (  # noqa: E402
    EnergyResult,
    ForwardResult,
    LoadResult,
    MeasurementPolicy,
    MemoryResult,
    ModelReport,
    ResultDocument,
    RunConfig,
    TelemetryResult,
)
from edgebench.agent.stats import summarize  # noqa: E402
from edgebench.agent.telemetry.monitor import DEFAULT_PERIOD_S as TELEMETRY_PERIOD_S  # noqa: E402
from edgebench.collector.stats import read_stats  # noqa: E402
from tests.servers import InfluxDB1, Mosquitto, _die_with_parent  # noqa: E402
from tests.test_collector import make_doc  # noqa: E402  (a real ResultDocument, as the tests use)

FLEET = "lab"
COLLECTOR_USER, COLLECTOR_PASSWORD = "collector", "collector-pw"  # what collector_config() writes
KEEPALIVE_S = 30  # the agent's default ([mqtt] keepalive)
TRACE_LIMIT = 500  # the agent downsamples a trace to this many points (agent/telemetry/monitor.py)
LOOKBACK_S = 1.0
"""The poller also looks this far back in wall time: a document may be queryable before its publish
record (sent every ``RECORD_FLUSH_S``) reached this script."""
RECORD_FLUSH_S = 0.1
TARGET_WRITTEN_RATIO = 0.99
TARGET_P99_S = 2.0

# (model, family, runtime, precision, typical latency on a Pi-class CPU in s): the sweep every device
# cycles through; model/runtime/precision are tags, so this sets the series per device.
SWEEP: tuple[tuple[str, str, str, str, float], ...] = (
    ("whisper-tiny.en", "whisper", "onnx", "fp32", 0.35),
    ("whisper-tiny.en", "whisper", "onnx", "int8", 0.22),
    ("whisper-tiny.en", "whisper", "ctranslate2", "int8", 0.18),
    ("conformer-hybrid:small", "conformer-hybrid", "torch", "fp32", 0.12),
    ("lstm-ctc:tiny", "lstm-ctc", "torch", "fp32", 0.03),
    ("lstm-ctc:tiny", "lstm-ctc", "litert", "fp32", 0.02),
)
# (device_class, host prefix, relative speed, energy source, cpu_model, arch): a fleet mostly of Pis.
CLASSES: tuple[tuple[str, str, float, str, str, str], ...] = (
    ("rpi", "rpi", 1.0, "rpi-pmic", "Cortex-A76", "aarch64"),
    ("rpi", "rpi", 1.0, "rpi-pmic", "Cortex-A76", "aarch64"),
    ("jetson", "jetson", 0.5, "jtop", "ARMv8 Processor rev 1 (v8l)", "aarch64"),
    ("x86", "nuc", 0.3, "rapl", "Intel(R) Core(TM) i5-1135G7", "x86_64"),
)


def host_name(i: int) -> str:
    """Device i's host name = its MQTT username = its ACL entry (unique across the fleet)."""
    return f"{CLASSES[i % len(CLASSES)][1]}-{i:05d}"


def password(host: str) -> str:
    return f"pw-{host}"


# ------------------------------------------------------------------------------------------ documents
def device_templates(
    i: int, rng: random.Random, samples: tuple[int, int], trace: int
) -> list[ResultDocument]:
    """Device i's result documents, one per sweep point, built once (before the clock runs).

    Publishing then only stamps ``seq``/``created_ns`` (and the telemetry trace start) into a copy, so the
    publishers' CPU is the cost of serialising and sending, not of inventing numbers. Values are
    plausible rather than constant (full-precision floats: a real document does not compress to short
    decimals). Telemetry trace offsets are chosen so that their ns timestamps never coincide across two
    documents of one series (see :func:`trace_offsets`): a collision would overwrite a point and read as
    a loss.
    """
    host = host_name(i)
    cls, _, speed, source, cpu_model, arch = CLASSES[i % len(CLASSES)]
    base = make_doc(i, host=host)
    sysinfo = base.sysinfo.model_copy(
        update={
            "device_class": cls,
            "cpu_model": cpu_model,
            "arch": arch,
            "cpu_cores_logical": 4,
            "cpu_cores_physical": 4,
            "device_model": "Raspberry Pi 5 Model B Rev 1.0" if cls == "rpi" else None,
            "cpu_governor": "ondemand",
            "libraries": {"onnxruntime": "1.20.1", "numpy": "2.2.1", "ctranslate2": "4.5.0"},
        }
    )
    run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    out = []
    for model, family, runtime, precision, latency in SWEEP:
        n = rng.randint(*samples)
        mean = latency * speed * rng.uniform(0.9, 1.1)
        lat = [mean * rng.lognormvariate(0.0, 0.05) for _ in range(n)]
        summary = summarize(lat)
        window = sum(lat)
        temp = rng.uniform(45.0, 75.0)
        freq = 2400.0 if cls == "rpi" else 1800.0
        # as the agent: a sample every TELEMETRY_PERIOD_S over the measured window, downsampled to 500
        points = min(TRACE_LIMIT, int(window / TELEMETRY_PERIOD_S) + 1) if trace < 0 else trace
        offsets = trace_offsets(points, max(TELEMETRY_PERIOD_S, window / points if points else 0), rng)
        telemetry = TelemetryResult(
            temperatures_c={"cpu_thermal": round(temp, 1)},
            temp_max_c=round(temp + 2.0, 1),
            cpu_freq_mhz=freq,
            cpu_governor="ondemand",
            throttled=False,
            trace_start_ns=0,  # stamped per document
            trace=[(t, round(temp + rng.uniform(-2, 2), 1), freq) for t in offsets],
        )
        power = rng.uniform(4.0, 9.0)
        energy = EnergyResult(
            source=source,
            kind="estimated" if source == "rpi-pmic" else "measured",
            rails=["VDD_CORE", "VDD_SOC"] if source == "rpi-pmic" else ["package-0"],
            sample_period_s=0.1,
            samples=int(window / 0.1) + 1,
            window_s=window,
            repeats=0,
            idle_w=power * 0.4,
            joules_total=power * window,
            joules_net=power * 0.6 * window,
            joules_per_iteration=power * mean,
            joules_net_per_iteration=power * 0.6 * mean,
            average_w=power,
            peak_w=power * 1.3,
        )
        out.append(
            base.model_copy(
                update={
                    "fleet": FLEET,
                    "run_id": run_id,
                    "device_class": cls,
                    "edgebench_version": AGENT_VERSION,
                    "config": RunConfig(
                        model=model,
                        runtime=runtime,
                        precision=precision,  # type: ignore[arg-type]
                        device="cpu",
                        scenario="forward",
                        threads=4,
                        frontend="numpy",
                        audio_seconds=10.0,
                        label=f"{runtime}-{precision}",
                        recipe="fleet-nightly",
                    ),
                    "model": ModelReport(
                        name=model,
                        family=family,
                        trained=True,
                        weights_source="export",
                        params={"total": 37_760_256, "encoder": 8_208_384, "decoder": 29_551_872},
                        size_on_disk_bytes=151_000_000 if precision == "fp32" else 41_000_000,
                    ),
                    "sysinfo": sysinfo,
                    "policy": MeasurementPolicy(
                        warmup=3,
                        min_iterations=n,
                        min_duration_s=0.0,
                        max_iterations=n,
                        max_duration_s=120.0,
                        stopped_because=f"{n} iterations: max iterations reached",
                    ),
                    "forward": ForwardResult(
                        latency_s=summary,
                        iterations_per_s=1 / summary.mean,
                        samples_per_s=1 / summary.mean,
                        latency_samples_s=lat,
                    ),
                    "load": LoadResult(
                        load_s=rng.uniform(0.5, 3.0), first_inference_s=mean * 3, warm_inference_s=mean
                    ),
                    "memory": MemoryResult(
                        peak_rss_bytes=rng.randint(200, 900) << 20,
                        baseline_rss_bytes=150 << 20,
                        sampling_interval_s=0.01,
                    ),
                    "energy": energy,
                    "telemetry": telemetry if offsets else None,
                }
            )
        )
    return out


def trace_offsets(n: int, period_s: float, rng: random.Random) -> list[float]:
    """``n`` telemetry trace times (s) every ``period_s`` with a little jitter, whose ns value is
    ``j (mod 10^6)`` for point j. The trace starts of two documents of one series differ by whole
    milliseconds (:meth:`_Device.next_created_ns`, same template), so point j of one document could only
    meet point j of the other — a whole start apart. Floats of < 2^53 ns survive ``round(t * 1e9)``."""
    period_ms = int(period_s * 1000)
    return [(j * period_ms + rng.randint(0, 20)) * 1e-3 + j * 1e-9 for j in range(n)]


def points_of(doc: ResultDocument) -> tuple[int, int]:
    """(latency_sample, telemetry_sample) points the collector writes for ``doc``."""
    n_lat = len(doc.forward.latency_samples_s) if doc.forward else 0
    n_trace = len(doc.telemetry.trace) if doc.telemetry and doc.telemetry.trace_start_ns is not None else 0
    return n_lat, n_trace


# ------------------------------------------------------------------------------------------ publishers
@dataclass(frozen=True)
class FleetSpec:
    """Everything a publisher process needs (picklable: the processes are spawned)."""

    broker_host: str
    broker_port: int
    devices: int
    procs: int
    interval_s: float
    jitter: float
    duration_s: float
    samples: tuple[int, int]
    trace: int
    connect_rate: float
    drain_timeout_s: float
    seed: int
    confirm: str
    """The agent's ``[spool] confirm``: "collector" = persistent session + receipt subscription."""

    def devices_of(self, p: int) -> range:
        return range(p * self.devices // self.procs, (p + 1) * self.devices // self.procs)


@dataclass
class _Device:
    index: int
    host: str
    templates: list[ResultDocument]
    client: Any = None
    connected: bool = False
    refused: str | None = None  # CONNACK failure reason
    seq: int = 0
    last_ns: int = 0
    reconnect_at: float | None = None
    inflight: dict[int, tuple[str, int, float]] = field(default_factory=dict)  # mid -> (kind, created, sent)

    def next_created_ns(self) -> int:
        """Wall-clock ms with the device index in the sub-millisecond digits: unique across the fleet
        (the poller keys documents by it), strictly increasing per device, and within a millisecond of
        what a real agent stamps (``time.time_ns()``)."""
        ns = time.time_ns() // 1_000_000 * 1_000_000 + self.index
        if ns <= self.last_ns:
            ns = self.last_ns + 1_000_000
        self.last_ns = ns
        return ns


class _PublisherLoop:
    """One publisher process: many paho clients, one thread, one selector.

    paho's external-loop hooks (``on_socket_open``/``close``/``register_write``/``unregister_write``)
    keep the selector in step with each client's socket; reads, writes and keep-alives are driven here.
    A thread per client (``loop_start``) would mean 1000 threads on 2 cores, measuring the scheduler.
    """

    def __init__(self, spec: FleetSpec, p: int, out: Any) -> None:
        import paho.mqtt.client as mqtt

        from edgebench.agent.publish.config import TOPIC_PREFIX
        from edgebench.agent.publish.publisher import MAX_INFLIGHT
        from edgebench.agent.publish.status import status_payload

        self.spec, self.p, self.out = spec, p, out
        self.receipts = spec.confirm == "collector"
        self._connect_kwargs: dict[str, Any] = {}
        if self.receipts:  # as Publisher.start(): receipts wait at the broker while the device is away
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            from edgebench.agent.publish.config import MqttSection
            from edgebench.agent.publish.receipt import Receipt, receipt_topic
            from edgebench.agent.publish.spool import payload_digest

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = MqttSection.model_fields["session_expiry_s"].default
            self._connect_kwargs = {"clean_start": False, "properties": props}
            self._receipt = Receipt
            self._receipt_topic = receipt_topic
            self._digest = payload_digest
        self.unconfirmed: dict[str, int] = {}  # payload digest -> created_ns, until its receipt
        self.confirms: list[tuple[int, float]] = []
        self.sel = selectors.DefaultSelector()
        self.rng = random.Random(spec.seed * 1_000_003 + p)
        self._status_payload = status_payload
        self._version = AGENT_VERSION
        self._prefix = TOPIC_PREFIX
        self.closing = False
        self.records: list[tuple[int, int, float, int, int, int]] = []
        self.acks: list[tuple[int, float]] = []
        self.refusals: dict[str, int] = {}
        self.lags: list[float] = []
        self.counts = dict.fromkeys(
            (
                "connect_errors",
                "disconnects",
                "reconnects",
                "publish_errors",
                "status_sent",
                "status_acked",
                "receipts",
                "receipt_repeats",
                "bad_receipts",
                "subscribe_refused",
            ),
            0,
        )
        self.devices = []
        for i in spec.devices_of(p):
            host = host_name(i)
            d = _Device(
                i,
                host,
                device_templates(i, random.Random(spec.seed * 1_000_003 + i), spec.samples, spec.trace),
            )
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=f"edgebench-agent-{host}",
                protocol=mqtt.MQTTv5,
                userdata=d,
            )
            c.username_pw_set(host, password(host))
            c.max_inflight_messages_set(MAX_INFLIGHT)
            c.connect_timeout = 5.0
            c.will_set(self.topic(d, "status"), self.status(d, "offline", "connection lost", False), 1, True)
            c.on_connect = self._on_connect
            c.on_disconnect = self._on_disconnect
            c.on_publish = self._on_publish
            c.on_message = self._on_message
            c.on_subscribe = self._on_subscribe
            c.on_socket_open = self._on_socket_open
            c.on_socket_close = self._on_socket_close
            c.on_socket_register_write = self._on_want_write
            c.on_socket_unregister_write = self._on_no_write
            d.client = c
            self.devices.append(d)
        self._next_misc = 0.0

    # ---------------------------------------------------------------- helpers
    def topic(self, d: _Device, kind: str) -> str:
        return f"{self._prefix}/{FLEET}/{d.host}/{kind}"

    def status(self, d: _Device, state: str, reason: str | None = None, stamped: bool = True) -> bytes:
        run_id = d.templates[0].run_id if state == "running" else None
        return self._status_payload(state, d.host, FLEET, self._version, run_id, reason, stamped=stamped)

    def publish_status(self, d: _Device, state: str, reason: str | None = None) -> None:
        info = d.client.publish(self.topic(d, "status"), self.status(d, state, reason), qos=1, retain=True)
        d.inflight[info.mid] = ("status", 0, time.monotonic())
        self.counts["status_sent"] += 1

    def inflight(self, kind: str) -> int:
        return sum(1 for d in self.devices for k, _, _ in d.inflight.values() if k == kind)

    # ---------------------------------------------------------------- paho callbacks
    def _on_socket_open(self, client: Any, d: _Device, sock: Any) -> None:
        self.sel.register(sock, selectors.EVENT_READ, client)

    def _on_socket_close(self, client: Any, d: _Device, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)

    def _on_want_write(self, client: Any, d: _Device, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    def _on_no_write(self, client: Any, d: _Device, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ, client)

    def _on_connect(self, client: Any, d: _Device, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            d.refused = str(reason)
            return
        d.connected, d.refused = True, None
        if self.receipts:
            client.subscribe(self._receipt_topic(self._prefix, FLEET, d.host), qos=1)
        self.publish_status(d, "running" if d.seq else "online")  # as the agent does on (re)connect

    def _on_subscribe(self, client: Any, d: _Device, mid: int, reasons: Any, props: Any) -> None:
        self.counts["subscribe_refused"] += sum(1 for r in reasons if r.is_failure)

    def _on_message(self, client: Any, d: _Device, msg: Any) -> None:
        """A receipt: the collector's "stored" for results of this device, named by payload digest."""
        try:
            receipt = self._receipt.model_validate_json(msg.payload)
        except ValueError:
            self.counts["bad_receipts"] += 1
            return
        self.counts["receipts"] += 1
        now = time.monotonic()
        for item in receipt.items:
            created = self.unconfirmed.pop(item.digest, None)
            if item.outcome != "written":
                key = f"collector: {item.reason}"
                self.refusals[key] = self.refusals.get(key, 0) + 1
            elif created is None:
                self.counts["receipt_repeats"] += 1  # a redelivered receipt, or a re-sent result's
            else:
                self.confirms.append((created, now))

    def _on_disconnect(self, client: Any, d: _Device, flags: Any, reason: Any, props: Any) -> None:
        was, d.connected = d.connected, False
        if not self.closing:
            self.counts["disconnects"] += int(was)
            d.reconnect_at = time.monotonic() + 1.0  # the agent's reconnect_delay_set(min_delay=1)

    def _on_publish(self, client: Any, d: _Device, mid: int, reason: Any, props: Any) -> None:
        kind, created, _ = d.inflight.pop(mid, ("?", 0, 0.0))
        failed = reason is not None and reason.is_failure
        if failed:
            self.refusals[f"{kind}: {reason}"] = self.refusals.get(f"{kind}: {reason}", 0) + 1
        elif kind == "result":
            self.acks.append((created, time.monotonic()))
        elif kind == "status":
            self.counts["status_acked"] += 1

    # ---------------------------------------------------------------- the loop
    def pump(self, timeout: float) -> None:
        """One selector round, then keep-alives and reconnects once a second."""
        for key, mask in self.sel.select(max(0.0, timeout)):
            client = key.data
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE:
                client.loop_write()
        now = time.monotonic()
        if now >= self._next_misc:
            self._next_misc = now + 1.0
            for d in self.devices:
                if d.client.socket() is not None:
                    d.client.loop_misc()
                elif d.reconnect_at is not None and now >= d.reconnect_at and not self.closing:
                    self._connect(d, reconnect=True)

    def pump_until(self, done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= deadline:
                return False
            self.pump(0.05)
        return True

    def _connect(self, d: _Device, reconnect: bool = False) -> None:
        try:
            if reconnect:
                d.client.reconnect()
                self.counts["reconnects"] += 1
            else:
                d.client.connect(
                    self.spec.broker_host,
                    self.spec.broker_port,
                    keepalive=KEEPALIVE_S,
                    **self._connect_kwargs,
                )
            d.reconnect_at = None
        except OSError:
            self.counts["connect_errors"] += 1
            d.reconnect_at = time.monotonic() + 2.0

    def connect_all(self) -> float:
        """Open the connections at this process's share of --connect-rate, offset so the processes
        interleave; wait for every CONNACK. Returns the seconds it took."""
        spec = self.spec
        gap = spec.procs / spec.connect_rate
        t0 = time.monotonic()
        start = t0 + self.p / spec.connect_rate
        for k, d in enumerate(self.devices):
            due = start + k * gap
            while (now := time.monotonic()) < due:
                self.pump(due - now)
            self._connect(d)
        self.pump_until(lambda: all(d.connected or d.refused for d in self.devices), 60.0)
        return time.monotonic() - t0

    def publish_result(self, d: _Device) -> None:
        if d.seq == 0:
            self.publish_status(d, "running")  # the agent's set_status("running", run_id) before a sweep
        tpl = d.templates[d.seq % len(d.templates)]
        created = d.next_created_ns()
        update: dict[str, Any] = {"seq": d.seq, "created_ns": created}
        if tpl.telemetry is not None:
            window = round(tpl.telemetry.trace[-1][0] * 1e9) + 1 if tpl.telemetry.trace else 0
            update["telemetry"] = tpl.telemetry.model_copy(update={"trace_start_ns": created - window})
        doc = tpl.model_copy(update=update)
        payload = doc.model_dump_json().encode()
        n_lat, n_trace = points_of(doc)
        sent = time.monotonic()
        info = d.client.publish(self.topic(d, "result"), payload, qos=1)
        if info.rc not in (0, 4):  # 4 = not connected: paho keeps it and sends it after the reconnect
            self.counts["publish_errors"] += 1
        d.inflight[info.mid] = ("result", created, sent)
        if self.receipts:
            self.unconfirmed[self._digest(payload)] = created
        self.records.append((created, d.index, sent, n_lat, n_trace, len(payload)))
        d.seq += 1

    def run(self, go: Any, t0: Any, finish: Any) -> None:
        spec, out = self.spec, self.out
        parent = os.getppid()
        connect_s = self.connect_all()
        out.put(
            (
                "connected",
                self.p,
                {
                    "ok": sum(d.connected for d in self.devices),
                    "refused": sorted({d.refused for d in self.devices if d.refused}),
                    "seconds": connect_s,
                },
            )
        )
        while not go.is_set():
            self.pump(0.05)
            if os.getppid() != parent:
                return
        start = t0.value
        end = start + spec.duration_s
        due = [(start + self.rng.uniform(0, spec.interval_s), k) for k in range(len(self.devices))]
        heapq.heapify(due)
        next_flush = time.monotonic() + RECORD_FLUSH_S
        while due:
            when, k = due[0]
            if when > end:  # the earliest next result is past the end: every device is done
                break
            now = time.monotonic()
            if now >= next_flush:
                next_flush = now + RECORD_FLUSH_S
                self.flush_records()
            if when <= now:
                self.lags.append(now - when)
                self.publish_result(self.devices[k])
                step = spec.interval_s * self.rng.uniform(1 - spec.jitter, 1 + spec.jitter)
                heapq.heapreplace(due, (when + step, k))
                continue
            self.pump(min(when - now, RECORD_FLUSH_S))
        self.flush_records()
        # as Publisher.flush(): until every result is PUBACKed (and, with receipts, confirmed)
        self.pump_until(lambda: self.inflight("result") == 0 and not self.unconfirmed, spec.drain_timeout_s)
        out.put(
            (
                "done",
                self.p,
                {
                    "acks": self.acks,
                    "confirms": self.confirms,
                    "unconfirmed": len(self.unconfirmed),
                    "unacked": self.inflight("result"),
                    "refusals": self.refusals,
                    "lags": self.lags,
                    **self.counts,
                },
            )
        )
        # Stay connected (keep-alives) until the script has measured, then leave as an agent does.
        while not finish.wait(0):
            self.pump(0.1)
            if os.getppid() != parent:
                return
        self.closing = True
        for d in self.devices:
            if d.connected:
                self.publish_status(d, "offline", "agent stopped")
        self.pump_until(lambda: self.inflight("status") == 0, 10.0)
        for d in self.devices:
            d.client.disconnect()
        self.pump_until(lambda: all(d.client.socket() is None for d in self.devices), 5.0)
        out.put(("closed", self.p, {"status_sent": self.counts["status_sent"], **self._status_counts()}))

    def _status_counts(self) -> dict[str, int]:
        return {"status_acked": self.counts["status_acked"], "status_unacked": self.inflight("status")}

    def flush_records(self) -> None:
        if self.records:
            self.out.put(("records", self.p, self.records))
            self.records = []


def _publisher_main(spec: FleetSpec, p: int, out: Any, go: Any, t0: Any, finish: Any) -> None:
    """Publisher process entry (SIGINT ignored, see :meth:`PublisherFleet.start`); errors are reported."""
    _die_with_parent()  # a killed script leaves no publishers behind
    try:
        _PublisherLoop(spec, p, out).run(go, t0, finish)
    except Exception:
        out.put(("error", p, traceback.format_exc()))
        raise SystemExit(1) from None


class PublisherFleet:
    """The publisher processes and the events that pace them."""

    def __init__(self, ctx: Any, spec: FleetSpec) -> None:
        self.spec = spec
        self.closed = False  # every process said "closed": they exit by themselves
        self.queue = ctx.Queue()
        self.go, self.finish = ctx.Event(), ctx.Event()
        self.t0 = ctx.Value("d", 0.0, lock=False)
        self.procs = [
            ctx.Process(
                target=_publisher_main,
                args=(spec, p, self.queue, self.go, self.t0, self.finish),
                name=f"fleet-publisher-{p}",
                daemon=True,
            )
            for p in range(spec.procs)
        ]

    def start(self) -> None:
        """Ctrl-C is this script's to handle (it stops them): the children ignore SIGINT from their first
        instruction on (inherited through exec), so none dies mid-import with a traceback."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for proc in self.procs:
                proc.start()
        finally:
            signal.signal(signal.SIGINT, previous)

    def get(self, timeout: float) -> tuple[str, int, Any] | None:
        """The next message from a publisher; None after ``timeout``. A publisher's error is raised."""
        try:
            msg = self.queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if msg[0] == "error":
            raise RuntimeError(f"publisher process {msg[1]} failed:\n{msg[2]}")
        return msg

    def check_alive(self) -> None:
        dead = [p.name for p in self.procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"publisher process(es) died: {dead}")

    def wait_for(self, kind: str, timeout: float) -> dict[int, Any]:
        """Collect one ``kind`` message per process (nothing else is in flight at these points)."""
        got: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.procs):
            msg = self.get(min(1.0, deadline - time.monotonic()))
            if msg is None:
                self.check_alive()
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"no '{kind}' from publisher(s) {sorted(set(range(len(self.procs))) - set(got))}"
                    )
                continue
            if msg[0] == kind:
                got[msg[1]] = msg[2]
        return got

    def stop(self) -> None:
        """Normal end: they exit by themselves after "closed"; on errors and Ctrl-C: SIGTERM at once
        (a graceful goodbye to a broker that may be gone would only add waiting)."""
        self.finish.set()
        for proc in self.procs:
            if proc.pid is not None and self.closed:
                proc.join(10)
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        self.queue.cancel_join_thread()


# ------------------------------------------------------------------------------------------ servers
def raise_open_files(devices: int) -> int:
    """Raise this process's open-file limit for the broker (one socket per device) and the publishers;
    children inherit it (mosquitto does not raise its own). Returns the soft limit in effect."""
    want = devices + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want or soft == resource.RLIM_INFINITY:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # only root may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


@dataclass
class Collector:
    proc: subprocess.Popen[bytes]
    log_path: Path
    state_dir: Path
    """Its data_dir (collector_config's): the stats file with the dead-letter counts."""

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM: the collector writes and acks what it holds, then disconnects."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_collector(
    tmp: Path,
    broker: Mosquitto,
    influx: InfluxDB1,
    db: str,
    a: argparse.Namespace,
    stack: contextlib.ExitStack,
) -> Collector:
    """``edgebench-collector run`` on collector_throughput's config; returns once it is connected
    (its stop is on ``stack`` from the moment it exists)."""
    opts = SimpleNamespace(collectors=1, receive_max=a.receive_max, batch_lines=a.batch_lines)
    cfg = collector_config(tmp, "collector", broker, influx, db, opts)
    exe = Path(sys.executable).with_name("edgebench-collector")
    argv = (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-c", "from edgebench.collector.cli import main; main()"]
    )
    log_path = tmp / "collector.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*argv, "run", "-c", str(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    collector = Collector(proc, log_path, tmp / "collector")
    stack.callback(collector.stop)
    deadline = time.monotonic() + 30
    while b'"mqtt_connected"' not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"collector did not connect:\n{collector.log_tail()}")
        time.sleep(0.05)
    time.sleep(0.5)  # SUBACK
    return collector


def count(influx: InfluxDB1, db: str, field_: str, measurement: str) -> int:
    rows = influx.points(f'SELECT count("{field_}") FROM "{measurement}"', db)
    return int(rows[0]["count"]) if rows else 0


# ------------------------------------------------------------------------------------------ measurement
@dataclass
class Run:
    """What the measured window produced (times are CLOCK_MONOTONIC, comparable across processes)."""

    t0: float
    records: dict[int, tuple[int, float, int, int, int]] = field(default_factory=dict)
    seen: dict[int, tuple[float, float]] = field(default_factory=dict)
    """created_ns -> (start of the last successful poll that did not see it, end of the first that did):
    the document became queryable in between."""
    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    timed_out: bool = False

    def add_records(self, msg: tuple[str, int, Any]) -> None:
        if msg[0] == "records":
            for created, dev, sent, n_lat, n_trace, size in msg[2]:
                self.records[created] = (dev, sent, n_lat, n_trace, size)
        elif msg[0] == "done":
            self.done[msg[1]] = msg[2]


def measure(
    fleet: PublisherFleet, influx: InfluxDB1, db: str, collector: Collector, a: argparse.Namespace
) -> Run:
    """Publish for --duration, polling InfluxDB for new ``inference`` points until every published
    document is queryable (or --drain-timeout after the last publish)."""
    run = Run(t0=time.monotonic() + 0.2)  # every process sees "go" before the clock starts
    fleet.t0.value = run.t0
    fleet.go.set()
    unseen: list[int] = []  # heap of created_ns not yet queryable: the poll window starts at the oldest
    deadline = run.t0 + a.duration + a.drain_timeout
    next_poll = run.t0
    last_ok = run.t0
    while True:
        wait = next_poll - time.monotonic()
        msg = fleet.get(wait) if wait > 0 else None
        if msg is not None:
            run.add_records(msg)
            if msg[0] == "records":
                for created, *_ in msg[2]:
                    heapq.heappush(unseen, created)
            continue
        now = time.monotonic()
        next_poll = max(next_poll + a.poll, now + a.poll / 2)
        lookback = time.time_ns() - int(LOOKBACK_S * 1e9)
        since = min(unseen[0], lookback) if unseen else lookback
        try:
            rows = influx.points(f'SELECT "seq" FROM "inference" WHERE time >= {since}', db)
        except Exception:  # a slow or busy server: the next poll sees it
            rows = None
        if rows is not None:
            end = time.monotonic()
            for r in rows:
                run.seen.setdefault(int(r["time"]), (last_ok, end))
            last_ok = now
        while unseen and unseen[0] in run.seen:
            heapq.heappop(unseen)
        if len(run.done) == fleet.spec.procs and not unseen:
            return run
        if now > deadline:
            run.timed_out = True
            return run
        if collector.proc.poll() is not None:
            raise RuntimeError(f"the collector exited ({collector.proc.returncode})")
        fleet.check_alive()


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))]


def report(
    run: Run,
    a: argparse.Namespace,
    used: dict[str, float],
    final: dict[str, int],
    closed: dict[int, dict[str, int]],
    stats: dict[str, Any],
) -> dict[str, Any]:
    """Print the figures; return them for the JSON line."""
    recs = run.records
    done = run.done.values()
    sent_at = {c: r[1] for c, r in recs.items()}
    acks = [t - sent_at[c] for d in done for c, t in d["acks"] if c in sent_at]
    receipt_at = {c: t for d in done for c, t in d["confirms"] if c in sent_at}
    confirms = [t - sent_at[c] for c, t in receipt_at.items()]
    # Queryable at the middle of the interval it is known to lie in: after its publish and the last poll
    # that missed it, before the first poll that saw it and before its receipt arrived (the collector
    # sends receipts after the write, and InfluxDB 1.x serves a point once its write returned).
    bounds = {
        c: (max(run.seen[c][0], sent_at[c]), min(run.seen[c][1], receipt_at.get(c, run.seen[c][1])))
        for c in recs
        if c in run.seen
    }
    bounds = {c: (min(lo, hi), hi) for c, (lo, hi) in bounds.items()}  # clock noise: never negative
    seen = {c: (lo + hi) / 2 for c, (lo, hi) in bounds.items()}
    grain = pct([(hi - lo) / 2 for lo, hi in bounds.values()], 0.5)
    latencies = [seen[c] - sent_at[c] for c in seen]
    lags = [x for d in done for x in d["lags"]]
    refusals: dict[str, int] = {}
    for d in done:
        for k, v in d["refusals"].items():
            refusals[k] = refusals.get(k, 0) + v
    counts: dict[str, int] = {}
    for d in done:
        for k, v in d.items():
            if isinstance(v, int):
                counts[k] = counts.get(k, 0) + v

    # steady window: after the first interval (the collector's first batches, warm caches)
    w0 = run.t0 + min(a.interval, a.duration / 4)
    w1 = run.t0 + a.duration
    span = w1 - w0
    offered = sum(1 for t in sent_at.values() if w0 <= t < w1) / span
    written = sum(1 for t in seen.values() if w0 <= t < w1) / span
    bucket = 5.0 if span >= 20 else 1.0
    nb = max(1, int(span // bucket))

    def per_bucket(times: list[float]) -> list[float]:
        n = [0] * nb
        for t in times:
            k = int((t - w0) // bucket)
            if 0 <= k < nb:
                n[k] += 1
        return [x / bucket for x in n]

    ob, wb = per_bucket(list(sent_at.values())), per_bucket(list(seen.values()))
    last_sent = max(sent_at.values(), default=run.t0)
    last_seen = max(seen.values(), default=run.t0)

    published = len(recs)
    acked = len(acks)
    exp_lat = sum(r[2] for r in recs.values())
    exp_trace = sum(r[3] for r in recs.values())
    status_sent = sum(c["status_sent"] for c in closed.values())
    status_acked = sum(c["status_acked"] for c in closed.values())
    deadletters = int(stats.get("deadletters_total", 0))
    lost = {
        "inference": (final["inference"], published),
        "latency_sample": (final["latency_sample"], exp_lat),
        "telemetry_sample": (final["telemetry_sample"], exp_trace),
        "sysinfo": (final["sysinfo"], published),
        "agent_status": (final["agent_status"], status_acked),
    }
    # agent_status may exceed what was PUBACKed: a Last Will after a dropped connection is a status too
    nothing_lost = (
        all(got == want or (k == "agent_status" and got > want) for k, (got, want) in lost.items())
        and acked == published
        and (a.confirm != "collector" or len(confirms) == published)
        and not refusals
        and deadletters == 0
        and not run.timed_out
    )

    p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
    receipt_latency = (
        f"; publish->receipt p50 {pct(confirms, 0.5) * 1000:.0f} ms, p99 {pct(confirms, 0.99) * 1000:.0f} ms"
        if a.confirm == "collector"
        else ""
    )
    ratio = written / offered if offered else 0.0
    print(
        f"results/s: offered {offered:.1f}, written {written:.1f} ({ratio:.3f}x) "
        f"over the steady window {w0 - run.t0:.0f}-{w1 - run.t0:.0f} s; per {bucket:.0f} s: offered "
        f"{min(ob):.0f}-{max(ob):.0f}, written {min(wb):.0f}-{max(wb):.0f}; {published} published in "
        f"{a.duration:.0f} s, the last queryable {last_seen - last_sent:.2f} s after the last publish"
    )
    print(
        f"publish->queryable: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
        f"{max(latencies, default=0) * 1000:.0f} ms (+-{grain * 1000:.0f} ms: InfluxDB polled every "
        f"{a.poll * 1000:.0f} ms{', bounded by the receipt' if receipt_at else ''}); publish->PUBACK p50 "
        f"{pct(acks, 0.5) * 1000:.1f} ms, p99 {pct(acks, 0.99) * 1000:.1f} ms{receipt_latency}; "
        f"publisher lag behind schedule p99 "
        f"{pct(lags, 0.99) * 1000:.0f} ms"
    )
    detail = ", ".join(f"{k} {got}/{want}" for k, (got, want) in lost.items())
    by_reason = stats.get("deadletters_by_reason") or {}
    why_refused = f" {refusals}" if refusals else ""
    why_dead = f" {by_reason}" if by_reason else ""
    print(
        f"nothing lost: {'YES' if nothing_lost else 'NO'} — in InfluxDB/expected: {detail}; "
        f"PUBACKed {acked}/{published}, "
        + (f"confirmed by receipt {len(confirms)}/{published}, " if a.confirm == "collector" else "")
        + f"refused {sum(refusals.values())}{why_refused}; dead letters "
        f"{deadletters}{why_dead} (collector stats: {stats.get('documents_written_total', 0)} documents, "
        f"{stats.get('points_written_total', 0)} points written)"
        + ("; TIMED OUT waiting for the rest" if run.timed_out else "")
    )
    print(
        f"MQTT: {counts['disconnects']} disconnects, {counts['reconnects']} reconnects, "
        f"{counts['connect_errors']} connect errors, {counts['publish_errors']} publish errors; status "
        f"messages {status_acked}/{status_sent} PUBACKed"
        + (
            f"; receipts {counts['receipts']} ({counts['receipt_repeats']} repeated items, "
            f"{counts['bad_receipts']} unreadable), receipt subscriptions refused "
            f"{counts['subscribe_refused']}"
            if a.confirm == "collector"
            else ""
        )
    )
    line, path = cpu_line(used, max(1, len(seen)))
    print(f"CPU per document (window {used['(wall)']:.1f} s, {len(seen)} documents):")
    print(line.replace("CPU-µs/msg", "CPU-µs/doc"))
    verdict = {True: "met", False: "MISSED"}
    print(
        f"targets: written >= {TARGET_WRITTEN_RATIO}x offered: {verdict[ratio >= TARGET_WRITTEN_RATIO]}; "
        f"p99 <= {TARGET_P99_S:.0f} s: {verdict[p99 <= TARGET_P99_S]}; nothing lost: {verdict[nothing_lost]}"
    )
    return {
        "devices": a.devices,
        "offered_per_s": round(offered, 2),
        "written_per_s": round(written, 2),
        "published": published,
        "p50_ms": round(p50 * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "drain_s": round(last_seen - last_sent, 2),
        "nothing_lost": nothing_lost,
        "counts": {k: list(v) for k, v in lost.items()},
        "deadletters": deadletters,
        "cpu_us_per_doc": {
            k: round(v / max(1, len(seen)) * 1e6) for k, v in used.items() if not k.startswith("(")
        },
        "data_path_cpu_us_per_doc": round(path),
    }


def run_benchmark(a: argparse.Namespace) -> dict[str, Any]:
    """Servers up, fleet connected, measure, fleet gone, count; everything stopped on the way out."""
    ctx = mp.get_context("spawn")
    hosts = [host_name(i) for i in range(a.devices)]
    users = {COLLECTOR_USER: COLLECTOR_PASSWORD, **{h: password(h) for h in hosts}}
    spec = FleetSpec(
        broker_host="",
        broker_port=0,
        devices=a.devices,
        procs=min(a.procs, a.devices),
        interval_s=a.interval,
        jitter=a.jitter,
        duration_s=a.duration,
        samples=a.samples,
        trace=a.trace,
        connect_rate=a.connect_rate,
        drain_timeout_s=a.drain_timeout,
        seed=a.seed,
        confirm=a.confirm,
    )
    open_files = raise_open_files(a.devices)
    sample_doc = device_templates(0, random.Random(0), a.samples, a.trace)[0]
    examples = [
        d for i in range(len(CLASSES)) for d in device_templates(i, random.Random(i), a.samples, a.trace)
    ]
    sizes = sorted(len(d.model_dump_json()) for d in examples)
    points = sorted(2 + sum(points_of(d)) for d in examples)
    trace = "every 0.5 s of the window, <= 500" if a.trace < 0 else f"{a.trace} points"
    print(
        f"fleet: {a.devices} devices over {spec.procs} publisher processes, one result each every "
        f"{a.interval:g} s (+-{a.jitter:.0%}) for {a.duration:g} s -> offered ~{a.devices / a.interval:.0f} "
        f"results/s; documents {a.samples[0]}-{a.samples[1]} latency samples, telemetry trace {trace}; "
        f"e.g. {sizes[0] / 1024:.1f}-{sizes[-1] / 1024:.1f} KB, {points[0]}-{points[-1]} points; "
        f"collector receive maximum {a.receive_max}, "
        f"batch_lines {a.batch_lines}; broker max_inflight_messages {a.broker_inflight}; confirm "
        f"{a.confirm}; open files "
        f"{open_files}"
    )
    ResultDocument.model_validate_json(sample_doc.model_dump_json())  # what the collector will parse
    with tempfile.TemporaryDirectory(prefix="edgebench-fleet-") as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        t = time.monotonic()
        influx = InfluxDB1(tmp / "influx")
        stack.callback(influx.stop)
        influx.start()
        broker = Mosquitto(
            tmp / "mosquitto",
            users,
            [(FLEET, h) for h in hosts],
            collector_user=COLLECTOR_USER,
            log_types=("error", "warning"),
            max_inflight_messages=a.broker_inflight,
        )
        stack.callback(broker.stop)
        broker.start()
        db = "edgebench"
        influx.create_database(db)
        collector = start_collector(tmp, broker, influx, db, a, stack)
        servers_s = time.monotonic() - t
        try:
            spec = dataclasses.replace(spec, broker_host=broker.host, broker_port=broker.port)
            fleet = PublisherFleet(ctx, spec)
            stack.callback(fleet.stop)
            fleet.start()
            # building every device's documents happens here too, before the clock runs
            connected = fleet.wait_for("connected", 120 + a.devices / a.connect_rate)
            ok = sum(c["ok"] for c in connected.values())
            refused = sorted({r for c in connected.values() for r in c["refused"]})
            print(
                f"setup: servers {servers_s:.1f} s (broker users/ACL for {a.devices} devices included); "
                f"{ok}/{a.devices} connected in {max(c['seconds'] for c in connected.values()):.1f} s"
                + (f"; REFUSED: {refused}" if refused else "")
            )
            meter = CpuMeter()
            for proc in fleet.procs:
                meter.add("publishers", proc.pid)  # type: ignore[arg-type]
            meter.add("broker", broker.proc.pid)  # type: ignore[union-attr]
            meter.add("collector", collector.proc.pid)
            meter.add("influxd", influx.proc.pid)  # type: ignore[union-attr]
            meter.add("poller", os.getpid())
            meter.start()
            run = measure(fleet, influx, db, collector, a)
            used = meter.stop()
            deadline = time.monotonic() + 30  # timed out: take what the publishers say when they finish
            while len(run.done) < spec.procs and time.monotonic() < deadline:
                msg = fleet.get(1.0)
                if msg is not None:
                    run.add_records(msg)
            fleet.finish.set()
            closed = fleet.wait_for("closed", 60)
            fleet.closed = True
            status_acked = sum(c["status_acked"] for c in closed.values())
            deadline = time.monotonic() + 10  # the offline statuses are the collector's last messages
            while count(influx, db, "state", "agent_status") < status_acked and time.monotonic() < deadline:
                time.sleep(0.2)
            final = {
                "inference": count(influx, db, "seq", "inference"),
                "latency_sample": count(influx, db, "latency_s", "latency_sample"),
                "telemetry_sample": count(influx, db, "t_s", "telemetry_sample"),
                "sysinfo": count(influx, db, "arch", "sysinfo"),
                "agent_status": count(influx, db, "state", "agent_status"),
            }
            stats = read_stats(collector.state_dir) or {}
            return report(run, a, used, final, closed, stats)
        except Exception:
            print(f"--- collector log tail ({collector.log_path}):", file=sys.stderr)
            print(collector.log_tail(), file=sys.stderr)
            print(f"--- broker log tail:\n{broker.log_tail(20)}", file=sys.stderr)
            raise


# ------------------------------------------------------------------------------------------ CLI
def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    a, b = int(lo), int(hi or lo)
    if not 1 <= a <= b < 1_000_000:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX with 1 <= MIN <= MAX < 10^6, got {text!r}")
    return a, b


def agent_confirm_default() -> str:
    """The agent's default ``[spool] confirm`` ("broker" for an agent from before receipts)."""
    from edgebench.agent.publish.config import SpoolSection

    spec = SpoolSection.model_fields.get("confirm")
    return str(spec.default) if spec is not None else "broker"


def _trace(text: str) -> int:
    if text == "auto":
        return -1
    if not text.isdigit() or int(text) > TRACE_LIMIT:
        raise argparse.ArgumentTypeError(f"expected auto or 0..{TRACE_LIMIT}, got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000, help="simulated devices (one MQTT connection each)")
    ap.add_argument("--procs", type=int, default=4, help="publisher processes the devices are spread over")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between one device's results")
    ap.add_argument("--jitter", type=float, default=0.2, help="+- fraction of --interval, per result")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of publishing")
    ap.add_argument("--samples", type=_range, default=(50, 300), help="latency samples per document, MIN-MAX")
    ap.add_argument(
        "--trace",
        type=_trace,
        default=-1,
        help="telemetry trace points per document: auto (default: as the agent, one per 0.5 s of the "
        "measured window, at most 500), 0 (none) or a fixed count",
    )
    ap.add_argument(
        "--connect-rate", type=float, default=200.0, help="new connections per second, fleet-wide"
    )
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between InfluxDB polls (latency grain)")
    ap.add_argument("--drain-timeout", type=float, default=60.0, help="wait this long after the last publish")
    ap.add_argument("--receive-max", type=int, default=1000, help="collector's MQTT v5 Receive Maximum")
    ap.add_argument("--batch-lines", type=int, default=5000, help="collector's [influx] batch_lines")
    ap.add_argument("--broker-inflight", type=int, default=20, help="mosquitto max_inflight_messages")
    ap.add_argument(
        "--confirm",
        choices=("collector", "broker"),
        default=agent_confirm_default(),
        help="as the agent's [spool] confirm (default: the agent's): collector = persistent session and "
        "receipt subscription per device, results confirmed by the collector's receipts",
    )
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    if not 1 <= a.devices < 1_000_000 or a.procs < 1 or a.interval <= 0 or a.duration <= 0:
        ap.error("need 1 <= --devices < 10^6, --procs >= 1, --interval > 0, --duration > 0")
    if not 0 <= a.jitter < 1 or a.connect_rate <= 0 or a.poll <= 0:
        ap.error("need 0 <= --jitter < 1, --connect-rate > 0, --poll > 0")
    return a


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: the same orderly teardown as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        figures = run_benchmark(a)
    except KeyboardInterrupt:
        print("interrupted: servers stopped, temporary directory removed", file=sys.stderr)
        return 130
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
