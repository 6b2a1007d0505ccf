"""End-to-end collector throughput on real servers, next to the two ceilings it sits between.

Run: ``.venv/bin/python -m benchmarks.collector_throughput [--publishers 4 --docs 2500 --runs 3]`` from the
repo root. The script starts its own mosquitto (production config from deploy/mosquitto, one broker user
per simulated device) and InfluxDB 1.x via ``tests/servers.py`` in a temporary directory. Each run then
measures, with the same publisher load (one publisher process, one MQTT v5 client per device, QoS 1):

1. raw QoS 1 receive rate: a bare paho subscriber *process* (auto-ack, same protocol and the same
   receive window as the collector) — the ceiling for anything that reads MQTT with paho;
2. bare writer: 5000-line POSTs of the same documents' line protocol straight to ``/write`` (one
   thread, lines built beforehand) — the ceiling for anything that writes InfluxDB 1.x;
3. the collector (``edgebench-collector run`` subprocesses, ``--collectors N`` on a ``$share/`` group):
   messages/s and points/s until every point is queryable (InfluxDB count polled every 100 ms),
   p50/p99 publish-to-queryable latency.

For every phase it also prints where the CPU went (CPU-µs per message of each process: publishers,
broker, subscriber/collector, influxd, this script's polling; plus the rest of the machine), because on
a small shared box the ratios are decided by CPU, not by any one component. Targets (reported, not
asserted): collector msgs/s >= 0.8 x raw QoS 1, points/s >= 0.5 x bare writer, and the collector's
CPU per document <= 2 x the bare subscriber's (printed as "CPU per document").
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebench.collector.points import document_to_lines  # noqa: E402
from tests.servers import InfluxDB1, Mosquitto  # noqa: E402
from tests.test_collector import make_doc  # noqa: E402  (a real ResultDocument, as the tests use)

FLEET = "lab"
RESULT_FILTER = "edgebench/v1/+/+/result"


def build_docs(publishers: int, docs: int, offset: int, samples: int) -> list[list[tuple[str, bytes, int]]]:
    """Per publisher: (topic, payload, created_ns); created_ns unique across all documents of all runs.

    ``samples`` latency samples per document (the tests' make_doc has 4; a real sweep point has
    ``--min-iterations`` 10 or, for fast models, hundreds): points per document = samples + 2."""
    from edgebench.agent.stats import summarize

    out = []
    for p in range(publishers):
        host = f"dev{p}"
        mine = []
        for i in range(docs):
            k = offset + p * docs + i
            d = make_doc(k, host=host).model_copy(update={"fleet": FLEET})
            if samples != len(d.forward.latency_samples_s):  # type: ignore[union-attr]
                lat = [0.01 + (k % 97) * 1e-4 + j * 1e-6 for j in range(samples)]
                fw = d.forward.model_copy(  # type: ignore[union-attr]
                    update={"latency_samples_s": lat, "latency_s": summarize(lat)}
                )
                d = d.model_copy(update={"forward": fw})
            # created_ns spaced by 1 s in make_doc: room for up to 10^9 samples (created_ns + i)
            mine.append((f"edgebench/v1/{FLEET}/{host}/result", d.model_dump_json().encode(), d.created_ns))
        out.append(mine)
    return out


# ------------------------------------------------------------------------------------------ child processes
def _publisher_proc(host: str, port: int, batches, go, ready, out) -> None:  # type: ignore[no-untyped-def]
    """One process, one paho client (thread) per simulated device; reports (t0, {created: sent_at})."""
    import paho.mqtt.client as mqtt

    clients = []
    for p, _ in enumerate(batches):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.username_pw_set(f"dev{p}", f"pw{p}")
        c.max_inflight_messages_set(100)
        c.connect(host, port)
        c.loop_start()
        clients.append(c)
    sent_at: dict[int, float] = {}
    barrier = threading.Barrier(len(batches))

    def worker(c, items) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        infos = []
        for topic, payload, created in items:
            sent_at[created] = time.monotonic()
            infos.append(c.publish(topic, payload, qos=1))
        for info in infos:
            info.wait_for_publish(300)

    threads = [threading.Thread(target=worker, args=(c, b)) for c, b in zip(clients, batches, strict=True)]
    ready.set()
    go.wait()
    t0 = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes on Linux
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.disconnect()
        c.loop_stop()
    out.put((t0, sent_at))


def _raw_subscriber_proc(
    host: str, port: int, total: int, receive_max: int, protocol: int, ready, out
) -> None:  # type: ignore[no-untyped-def]
    """A bare paho subscriber: auto-ack, nothing else; reports the time the last message arrived."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    got = [0]
    done = threading.Event()
    last = [0.0]

    def on_message(c, u, m) -> None:  # type: ignore[no-untyped-def]
        got[0] += 1
        if got[0] >= total:
            last[0] = time.monotonic()
            done.set()

    def on_subscribe(*a) -> None:  # type: ignore[no-untyped-def]
        ready.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
    sub.username_pw_set("collector", "collector-pw")
    sub.on_message = on_message
    sub.on_subscribe = on_subscribe
    kw = {}
    if protocol == mqtt.MQTTv5:
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = receive_max
        kw["properties"] = props
    sub.connect(host, port, **kw)
    sub.loop_start()
    sub.subscribe(RESULT_FILTER, qos=1)
    done.wait(600)
    sub.disconnect()
    sub.loop_stop()
    out.put(last[0])


# ------------------------------------------------------------------------------------------ CPU accounting
class CpuMeter:
    """CPU seconds of named processes (and their children) between start() and stop(), plus the machine."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.procs: dict[str, list] = {}
        self._t0: dict[str, float] = {}
        self._sys0 = None

    def add(self, name: str, pid: int) -> None:
        self.procs.setdefault(name, []).append(self._psutil.Process(pid))

    def _cpu(self, name: str) -> float:
        total = 0.0
        for p in self.procs[name]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except self._psutil.Error:
                pass
        return total

    def start(self) -> None:
        self._t0 = {n: self._cpu(n) for n in self.procs}
        self._sys0 = self._psutil.cpu_times()
        self._wall0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        used = {n: self._cpu(n) - self._t0.get(n, 0.0) for n in self.procs}
        s1 = self._psutil.cpu_times()
        busy = lambda t: t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # noqa: E731
        used["(whole machine)"] = busy(s1) - busy(self._sys0)
        used["(wall)"] = time.monotonic() - self._wall0
        return used


def per_message_us(used: dict[str, float], messages: int) -> dict[str, float]:
    """CPU-µs per message of each named process (the bookkeeping entries left out)."""
    return {n: v / messages * 1e6 for n, v in used.items() if not n.startswith("(")}


def cpu_line(used: dict[str, float], messages: int) -> tuple[str, float]:
    """One line of CPU-µs per message per process, and the CPU-µs per message of the data path itself
    (every named process except this script's polling, which only measures)."""
    used = dict(used)
    wall = used.pop("(wall)")
    machine = used.pop("(whole machine)")
    ours = sum(used.values())
    parts = [f"{n} {v / messages * 1e6:.0f}" for n, v in used.items()]
    parts.append(f"other processes {max(0.0, machine - ours) / messages * 1e6:.0f}")
    cores = os.cpu_count() or 1
    path = sum(v for n, v in used.items() if n != "poller") / messages * 1e6
    line = (
        f"    CPU-µs/msg: {', '.join(parts)} | machine busy {machine / wall / cores:.0%} of {cores} cores "
        f"over {wall:.1f} s"
    )
    return line, path


# ------------------------------------------------------------------------------------------ phases
def start_publishers(broker: Mosquitto, batches, ctx):  # type: ignore[no-untyped-def]
    go, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_publisher_proc, args=(broker.host, broker.port, batches, go, ready, out))
    proc.start()
    ready.wait(60)
    return proc, go, out


def raw_qos1(broker: Mosquitto, influx: InfluxDB1, batches, receive_max: int, ctx) -> tuple[float, tuple]:  # type: ignore[no-untyped-def]
    import paho.mqtt.client as mqtt

    total = sum(len(b) for b in batches)
    ready, out = ctx.Event(), ctx.Queue()
    sub = ctx.Process(
        target=_raw_subscriber_proc,
        args=(broker.host, broker.port, total, receive_max, mqtt.MQTTv5, ready, out),
    )
    sub.start()
    ready.wait(60)
    pub, go, pub_out = start_publishers(broker, batches, ctx)
    meter = CpuMeter()
    meter.add("publishers", pub.pid)
    meter.add("broker", broker.proc.pid)  # type: ignore[union-attr]
    meter.add("subscriber", sub.pid)
    meter.add("influxd", influx.proc.pid)  # type: ignore[union-attr]
    meter.start()
    go.set()
    last = out.get(timeout=600)
    used = meter.stop()
    t0, _ = pub_out.get(timeout=600)
    pub.join(60)
    sub.join(60)
    return total / (last - t0), (*cpu_line(used, total), per_message_us(used, total))


def bare_writer(influx: InfluxDB1, lines: list[str], docs: int) -> tuple[float, tuple]:
    db = influx.new_database("bare")
    meter = CpuMeter()
    meter.add("influxd", influx.proc.pid)  # type: ignore[union-attr]
    meter.add("writer", os.getpid())
    bodies = ["\n".join(lines[i : i + 5000]) for i in range(0, len(lines), 5000)]  # built outside the timing
    meter.start()
    t0 = time.monotonic()
    for body in bodies:
        status, resp = influx.write(db, body)
        assert status == 204, resp
    rate = len(lines) / (time.monotonic() - t0)
    return rate, cpu_line(meter.stop(), docs)


def collector_config(tmp: Path, name: str, broker: Mosquitto, influx: InfluxDB1, db: str, a) -> Path:  # type: ignore[no-untyped-def]
    cfg = tmp / f"{name}.toml"
    shared = f'shared_group = "bench-{db}"\n' if a.collectors > 1 else ""
    cfg.write_text(
        f"""data_dir = "{tmp / name}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "collector"
password = "collector-pw"
client_id = "{name}"
max_inflight = {a.receive_max}
{shared}[influx]
url = "{influx.url}"
database = "{db}"
batch_lines = {a.batch_lines}
flush_interval_s = 1.0
"""
    )
    return cfg


def collector_run(broker, influx, batches, tmp: Path, points_per_doc: int, a, ctx) -> dict:  # type: ignore[no-untyped-def]
    db = f"bench_{int(time.time() * 1000)}"
    influx.create_database(db)
    procs, logs = [], []
    for i in range(a.collectors):
        name = f"{db}-c{i}"
        cfg = collector_config(tmp, name, broker, influx, db, a)
        log_path = tmp / f"{name}.log"
        logs.append(log_path)
        with open(log_path, "wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        "from edgebench.collector.cli import main; main()",
                        "run",
                        "-c",
                        str(cfg),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        for proc, log_path in zip(procs, logs, strict=True):
            deadline = time.monotonic() + 30
            while b'"mqtt_connected"' not in log_path.read_bytes():
                assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()
                time.sleep(0.05)
        time.sleep(0.5)  # SUBACK
        total = sum(len(b) for b in batches)
        pub, go, pub_out = start_publishers(broker, batches, ctx)
        meter = CpuMeter()
        meter.add("publishers", pub.pid)
        meter.add("broker", broker.proc.pid)
        for p in procs:
            meter.add("collector", p.pid)
        meter.add("influxd", influx.proc.pid)
        meter.add("poller", os.getpid())
        meter.start()
        go.set()
        # Per publisher (= host) delivery is in order over one connection; with one collector batches are
        # written in arrival order, so "count for host p is c" means its first c documents are queryable.
        # With several collectors that is only approximately true (the latency figures then are too).
        created = {f"dev{p}": [c for _, _, c in b] for p, b in enumerate(batches)}
        seen_at: dict[int, float] = {}
        deadline = time.monotonic() + 600
        while len(seen_at) < total and time.monotonic() < deadline:
            try:
                rows = influx.points('SELECT count("seq") FROM "inference" GROUP BY "host"', db)
            except Exception:
                rows = []
            now = time.monotonic()
            for r in rows:
                for c in created[r["host"]][: int(r["count"])]:
                    seen_at.setdefault(c, now)
            time.sleep(0.1)
        used = meter.stop()
        t0, sent_at = pub_out.get(timeout=600)
        pub.join(60)
        t_end = max(seen_at.values())
        n_samples = influx.points("SELECT count(latency_s) FROM latency_sample", db)[0]["count"]
        lat = sorted(seen_at[k] - sent_at[k] for k in seen_at)
        elapsed = t_end - t0
        return {
            "docs": len(seen_at),
            "samples": n_samples,
            "msgs_per_s": len(seen_at) / elapsed,
            "points_per_s": len(seen_at) * points_per_doc / elapsed,
            "p50_latency_s": lat[len(lat) // 2],
            "p99_latency_s": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "cpu": (*cpu_line(used, total), per_message_us(used, total)),
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--docs", type=int, default=2500, help="documents per publisher per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--collectors", type=int, default=1, help="collector processes ($share/ group when > 1)")
    ap.add_argument("--receive-max", type=int, default=1000, help="MQTT v5 Receive Maximum (both)")
    ap.add_argument("--batch-lines", type=int, default=5000)
    ap.add_argument("--samples", type=int, default=4, help="latency samples per document (points = +2)")
    ap.add_argument("--broker-inflight", type=int, default=20, help="mosquitto max_inflight_messages")
    a = ap.parse_args()

    ctx = mp.get_context("spawn")
    users = {"collector": "collector-pw", **{f"dev{p}": f"pw{p}" for p in range(a.publishers)}}
    devices = [(FLEET, f"dev{p}") for p in range(a.publishers)]
    from edgebench.agent.results.schema import ResultDocument

    print(
        f"{a.publishers} publishers x {a.docs} documents per run, {a.runs} runs; collectors={a.collectors}, "
        f"receive maximum {a.receive_max}, batch_lines {a.batch_lines}, "
        f"broker max_inflight_messages {a.broker_inflight}"
    )
    figures: dict[str, list[float]] = {
        "raw": [],
        "writer": [],
        "msgs": [],
        "points": [],
        "cpu_msgs_ratio": [],
        "cpu_points_ratio": [],
        "collector_vs_subscriber_cpu": [],
    }
    with tempfile.TemporaryDirectory(prefix="edgebench-bench-") as tmpdir:
        tmp = Path(tmpdir)
        influx = InfluxDB1(tmp / "influx").start()
        broker = Mosquitto(
            tmp / "mosquitto", users, devices, log_types=("error",), max_inflight_messages=a.broker_inflight
        ).start()
        try:
            for run in range(a.runs):
                batches = build_docs(a.publishers, a.docs, run * a.publishers * a.docs, a.samples)
                lines = [
                    line
                    for b in batches
                    for _, payload, _ in b
                    for line in document_to_lines(ResultDocument.model_validate_json(payload))
                ]
                ppd = len(lines) // (a.publishers * a.docs)
                if run == 0:
                    print(f"documents: {len(batches[0][0][1])} bytes, {ppd} points each")
                writer, writer_cpu = bare_writer(influx, lines, a.publishers * a.docs)
                raw, raw_cpu = raw_qos1(broker, influx, batches, a.receive_max, ctx)
                # the collector's run uses other created_ns than the raw run's: fresh points in a fresh db
                r = collector_run(broker, influx, batches, tmp, ppd, a, ctx)
                figures["raw"].append(raw)
                figures["writer"].append(writer)
                figures["msgs"].append(r["msgs_per_s"])
                figures["points"].append(r["points_per_s"])
                # What the ratios would be if every phase got the same CPU (the box is shared and
                # saturated, so wall-clock rates follow our share of it): inverse CPU per message.
                coll_line, coll_path, coll_us = r["cpu"]
                figures["cpu_msgs_ratio"].append(raw_cpu[1] / coll_path)
                # the target (a): the collector process next to the bare subscriber, per document
                collector_us = sum(v for n, v in coll_us.items() if n.startswith("collector"))
                figures["collector_vs_subscriber_cpu"].append(collector_us / raw_cpu[2]["subscriber"])
                figures["cpu_points_ratio"].append(writer_cpu[1] / coll_path)
                print(
                    f"run {run + 1}: bare writer {writer:,.0f} points/s | raw QoS1 {raw:,.0f} msg/s | "
                    f"collector {r['msgs_per_s']:,.0f} msg/s ({r['msgs_per_s'] / raw:.2f}x raw), "
                    f"{r['points_per_s']:,.0f} points/s ({r['points_per_s'] / writer:.2f}x bare writer), "
                    f"publish->queryable p50 {r['p50_latency_s'] * 1000:.0f} ms p99 "
                    f"{r['p99_latency_s'] * 1000:.0f} ms; docs {r['docs']}, latency_sample {r['samples']}"
                )
                print(f"  bare writer{writer_cpu[0]}")
                print(f"  raw QoS1   {raw_cpu[0]}")
                print(f"  collector  {coll_line}")
                print(
                    f"  CPU per message of the data path: raw {raw_cpu[1]:.0f} µs, bare writer "
                    f"{writer_cpu[1]:.0f} µs, collector {coll_path:.0f} µs -> at equal CPU the collector "
                    f"would reach {figures['cpu_msgs_ratio'][-1]:.2f}x raw msgs/s and "
                    f"{figures['cpu_points_ratio'][-1]:.2f}x the bare writer's points/s"
                )
                print(
                    f"  CPU per document: collector {collector_us:.0f} µs, bare paho subscriber "
                    f"{raw_cpu[2]['subscriber']:.0f} µs = {figures['collector_vs_subscriber_cpu'][-1]:.2f}x "
                    f"(target <= 2x)"
                )
        finally:
            broker.stop()
            influx.stop()
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(
        f"median of {a.runs}: collector {med['msgs']:,.0f} msg/s = {med['msgs'] / med['raw']:.2f}x raw QoS1 "
        f"({med['raw']:,.0f}); {med['points']:,.0f} points/s = "
        f"{med['points'] / med['writer']:.2f}x bare writer "
        f"({med['writer']:,.0f}); per-run ratios msgs "
        + ", ".join(f"{m / r:.2f}" for m, r in zip(figures["msgs"], figures["raw"], strict=True))
        + "; points "
        + ", ".join(f"{p / w:.2f}" for p, w in zip(figures["points"], figures["writer"], strict=True))
    )
    print(
        f"CPU-normalised (median): {med['cpu_msgs_ratio']:.2f}x raw msgs/s, "
        f"{med['cpu_points_ratio']:.2f}x bare writer points/s; collector CPU per document "
        f"{med['collector_vs_subscriber_cpu']:.2f}x the bare subscriber's (target <= 2x)"
    )
    print(json.dumps({k: [round(x, 2) for x in v] for k, v in figures.items()}))


if __name__ == "__main__":
    main()
