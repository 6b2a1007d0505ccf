"""End-to-end collector throughput on real servers, next to the two ceilings it sits between.

Run: ``.venv/bin/python -m benchmarks.collector_throughput [--publishers 4 --docs 500]`` from the repo
root. The script starts its own mosquitto (production config from deploy/mosquitto, one broker user
per simulated device) and InfluxDB 1.x via ``tests/servers.py`` in a temporary directory, then measures:

1. raw QoS 1 receive rate: a bare paho subscriber (auto-ack) while N publishers send M documents each;
2. bare writer: 5000-line POSTs of the same documents' line protocol straight to ``/write``;
3. the collector (``edgebench-collector run`` subprocess): messages/s and points/s until every point is
   queryable, and the p99 publish-to-queryable latency (InfluxDB polled every 50 ms).

It is repeated for each broker ``max_inflight_messages`` given (mosquitto's default 20 caps how many
unacked messages the collector can hold, so it caps the batch size). Targets (reported, not asserted):
collector msgs/s >= 0.8 x raw QoS 1, points/s >= 0.5 x bare writer.
"""

from __future__ import annotations

import argparse
import json
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


def build_docs(publishers: int, docs: int) -> list[list[tuple[str, bytes, int]]]:
    """Per publisher: (topic, payload, created_ns); created_ns is unique across all documents."""
    out = []
    for p in range(publishers):
        host = f"dev{p}"
        mine = []
        for i in range(docs):
            k = p * docs + i
            d = make_doc(k, host=host).model_copy(update={"fleet": FLEET})
            mine.append((f"edgebench/v1/{FLEET}/{host}/result", d.model_dump_json().encode(), d.created_ns))
        out.append(mine)
    return out


def publish_all(broker: Mosquitto, batches, sent_at: dict[int, float]) -> float:  # type: ignore[no-untyped-def]
    """Each publisher in its own thread as its own broker user; returns the first publish time."""
    import paho.mqtt.client as mqtt

    start = threading.Barrier(len(batches) + 1)
    t0 = [0.0]

    def worker(p: int, items) -> None:  # type: ignore[no-untyped-def]
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.username_pw_set(f"dev{p}", f"pw{p}")
        c.max_inflight_messages_set(100)
        c.connect(broker.host, broker.port)
        c.loop_start()
        start.wait()
        infos = []
        for topic, payload, created in items:
            sent_at[created] = time.monotonic()
            infos.append(c.publish(topic, payload, qos=1))
        for info in infos:
            info.wait_for_publish(60)
        c.disconnect()
        c.loop_stop()

    threads = [threading.Thread(target=worker, args=(p, b), daemon=True) for p, b in enumerate(batches)]
    for t in threads:
        t.start()
    start.wait()
    t0[0] = time.monotonic()
    return t0[0], threads  # type: ignore[return-value]


def raw_qos1(broker: Mosquitto, batches) -> float:  # type: ignore[no-untyped-def]
    import paho.mqtt.client as mqtt

    total = sum(len(b) for b in batches)
    got = [0]
    done = threading.Event()
    last = [0.0]

    def on_message(c, u, m):  # type: ignore[no-untyped-def]
        got[0] += 1
        if got[0] >= total:
            last[0] = time.monotonic()
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.username_pw_set("collector", "collector-pw")
    sub.on_message = on_message
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    sub.subscribe("edgebench/v1/+/+/result", qos=1)
    time.sleep(0.5)
    t0, threads = publish_all(broker, batches, {})
    done.wait(300)
    for t in threads:
        t.join()
    sub.disconnect()
    sub.loop_stop()
    return total / (last[0] - t0)


def bare_writer(influx: InfluxDB1, lines: list[str]) -> float:
    db = influx.new_database("bare")
    t0 = time.monotonic()
    for i in range(0, len(lines), 5000):
        status, body = influx.write(db, "\n".join(lines[i : i + 5000]))
        assert status == 204, body
    return len(lines) / (time.monotonic() - t0)


def collector_run(broker: Mosquitto, influx: InfluxDB1, batches, tmp: Path, points_per_doc: int) -> dict:  # type: ignore[no-untyped-def]
    db = f"bench_{int(time.time() * 1000)}"
    cfg = tmp / f"{db}.toml"
    cfg.write_text(
        f"""data_dir = "{tmp / "state"}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "collector"
password = "collector-pw"
client_id = "bench-{db}"
max_inflight = 1000
[influx]
url = "{influx.url}"
database = "{db}"
batch_lines = 5000
flush_interval_s = 1.0
"""
    )
    log = open(tmp / f"{db}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from edgebench.collector.cli import main; main()",
            "run",
            "--config",
            str(cfg),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while b'"mqtt_connected"' not in (tmp / f"{db}.log").read_bytes():
            assert time.monotonic() < deadline and proc.poll() is None, (tmp / f"{db}.log").read_text()
            time.sleep(0.05)
        time.sleep(0.3)
        total = sum(len(b) for b in batches)
        sent_at: dict[int, float] = {}
        seen_at: dict[int, float] = {}
        t0, threads = publish_all(broker, batches, sent_at)
        # Per publisher (= host) delivery is in order over one connection and batches are written in
        # arrival order, so "count for host p is c" means its first c documents are queryable: a cheap
        # count query per poll instead of reading every row back (which would load the 2 cores).
        created = {f"dev{p}": [c for _, _, c in b] for p, b in enumerate(batches)}
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
            time.sleep(0.05)
        t_end = max(seen_at.values())
        for t in threads:
            t.join()
        # every latency_sample point too (the last batch is written in one request, so they are there)
        n_samples = influx.points("SELECT count(latency_s) FROM latency_sample", db)[0]["count"]
        lat = sorted(seen_at[k] - sent_at[k] for k in seen_at)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        elapsed = t_end - t0
        return {
            "docs": len(seen_at),
            "samples": n_samples,
            "msgs_per_s": len(seen_at) / elapsed,
            "points_per_s": len(seen_at) * points_per_doc / elapsed,
            "p50_latency_s": lat[len(lat) // 2],
            "p99_latency_s": p99,
        }
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--docs", type=int, default=500, help="documents per publisher")
    ap.add_argument("--broker-inflight", default="20,1000", help="mosquitto max_inflight_messages values")
    a = ap.parse_args()

    batches = build_docs(a.publishers, a.docs)
    sample_doc = json.loads(batches[0][0][1])
    from edgebench.agent.results.schema import ResultDocument

    lines = [
        line
        for b in batches
        for _, payload, _ in b
        for line in document_to_lines(ResultDocument.model_validate_json(payload))
    ]
    points_per_doc = len(lines) // (a.publishers * a.docs)
    print(
        f"{a.publishers} publishers x {a.docs} documents, {len(batches[0][0][1])} bytes and "
        f"{points_per_doc} points each (schema {sample_doc['schema_version']})"
    )
    users = {"collector": "collector-pw", **{f"dev{p}": f"pw{p}" for p in range(a.publishers)}}
    devices = [(FLEET, f"dev{p}") for p in range(a.publishers)]
    with tempfile.TemporaryDirectory(prefix="edgebench-bench-") as tmpdir:
        tmp = Path(tmpdir)
        influx = InfluxDB1(tmp / "influx").start()
        try:
            writer = bare_writer(influx, lines)
            print(f"bare writer (5000-line POST /write, InfluxDB {influx.version}): {writer:,.0f} points/s")
            for inflight in [int(x) for x in a.broker_inflight.split(",")]:
                broker = Mosquitto(
                    tmp / f"mosquitto-{inflight}",
                    users,
                    devices,
                    log_types=("error",),
                    max_inflight_messages=inflight,
                ).start()
                try:
                    raw = raw_qos1(broker, batches)
                    r = collector_run(broker, influx, batches, tmp, points_per_doc)
                finally:
                    broker.stop()
                print(
                    f"broker max_inflight_messages={inflight}: raw QoS1 {raw:,.0f} msg/s | collector "
                    f"{r['msgs_per_s']:,.0f} msg/s ({r['msgs_per_s'] / raw:.2f}x raw), "
                    f"{r['points_per_s']:,.0f} points/s ({r['points_per_s'] / writer:.2f}x bare writer), "
                    f"publish->queryable p50 {r['p50_latency_s'] * 1000:.0f} ms p99 "
                    f"{r['p99_latency_s'] * 1000:.0f} ms; docs {r['docs']}, latency_sample points "
                    f"{r['samples']}"
                )
        finally:
            influx.stop()


if __name__ == "__main__":
    main()
