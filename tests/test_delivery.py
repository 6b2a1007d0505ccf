"""Nothing stuck, nothing silently lost: the faults of issue 14, each against real mosquitto, InfluxDB 1.6 and
the collector (as a subprocess), asserted by counts in InfluxDB, spool contents, exit codes and messages.

- an over-large result is decimated to fit and arrives; one that cannot fit is *refused*, and neither
  blocks the results behind it;
- hostile names are refused before anything is measured; a malformed topic already in a spool is refused;
- a document InfluxDB stores only in part is rolled back (or refused before the write);
- a newer minor schema version is stored, its unknown fields counted;
- a broker crash after PUBACK, and a broker queue that overflows, lose nothing (receipts + re-send);
- the collector's memory is bounded by bytes while the database is down;
- spool overflow, reused ids and clocks in the future are reported, not silent.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import psutil
import pytest

from edgebench.agent.publish.config import load_config
from edgebench.agent.publish.publisher import Publisher
from edgebench.agent.publish.spool import PutResult, Spool, result_key
from edgebench.agent.publish.status import status_payload
from edgebench.agent.results.schema import EnergyResult, ResultDocument
from edgebench.agent.results.store import ResultStore
from edgebench.agent.stats import summarize
from tests.conftest import MQTT_DEVICES, MQTT_USERS, _started, run_cli
from tests.servers import InfluxDB1, Mosquitto
from tests.test_collector import (
    FLEET,
    count,
    deadletter_counts,
    make_doc,
    payload,
    start_collector,
    topic,
    wait_counts,
    with_version,
)
from tests.test_publish import FAST_RUN, write_config


def agent(tmp: Path, broker: Mosquitto, host: str = "host1", **kw) -> tuple[Publisher, Spool, list[str]]:  # type: ignore[no-untyped-def]
    """An in-process publisher as ``run`` uses it (confirm by collector receipts unless told otherwise)."""
    extra = tuple(f"{k} = {json.dumps(v)}" for k, v in kw.pop("spool", {}).items())
    cfg_path = write_config(
        tmp / f"{host}.toml",
        broker,
        host=host,
        user=host,
        spool=tmp / f"{host}-spool.sqlite",
        confirm=kw.pop("confirm", "collector"),
        extra=extra,
        **kw,
    )
    cfg = load_config(str(cfg_path), environ={})
    spool = Spool(cfg.spool_path, cfg.max_messages)
    warnings: list[str] = []
    return Publisher(cfg, spool, warn=warnings.append), spool, warnings


def big_doc(k: int, samples: int) -> ResultDocument:
    lat = [0.0123456 + (i % 9973) * 1.1e-9 for i in range(samples)]  # ~20 characters each, as measured
    d = make_doc(k)
    fw = d.forward.model_copy(update={"latency_samples_s": lat, "latency_s": summarize(lat)})  # type: ignore[union-attr]
    return d.model_copy(update={"forward": fw})


def wait_spool_empty(pub: Publisher, spool: Spool, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while spool.count() and time.monotonic() < deadline:
        pub.pump()
        time.sleep(0.05)
    assert spool.count() == 0, spool.counts()


# ---------------------------------------------------------------------------------------- 1: refused by size
def test_oversized_result_is_decimated_and_the_queue_keeps_flowing(  # type: ignore[no-untyped-def]
    tmp_path, mqtt_certs, influxdb, collectors
) -> None:
    """A 1.3 MB result (100,000 latency samples) on a broker with a 150 kB packet limit: before, mosquitto
    disconnected the agent on every attempt and every later result waited behind it. Now it is decimated
    to fit the limit the broker announces in CONNACK, arrives with its full-length summary, and a result
    that cannot fit at all is refused (listed with the reason) while the next one is delivered."""
    broker = _started(
        Mosquitto(tmp_path / "broker", MQTT_USERS, MQTT_DEVICES, certs=mqtt_certs, max_packet_size=150_000)
    )
    try:
        _, db = start_collector(collectors, tmp_path / "c", broker, influxdb)
        pub, spool, warnings = agent(tmp_path, broker)
        huge = big_doc(1, 100_000)
        assert len(payload(huge)) > 1_000_000
        hopeless = make_doc(2).model_copy(update={"warnings": ["x" * 1000] * 400})  # 400 kB of text
        normal = make_doc(3)
        for d in (huge, hopeless, normal):  # spooled before connecting: fitted to max_message_bytes
            pub.spool_result(d)
        assert pub.start()
        assert pub.max_packet == 150_000  # then fitted again, to what the broker announces
        remaining = pub.flush(20)
        pub.close()
        assert remaining == 0, spool.counts()
        refused = spool.refused()
        assert [m.key for m in refused] == [result_key(hopeless.run_id, 2)]
        assert "too large" in (refused[0].reason or "")
        assert any("forward.latency_samples_s 100000->" in w for w in warnings), warnings
        rows = {r["seq"]: r for r in influxdb.points("SELECT * FROM inference", db)}
        assert sorted(rows) == [1, 3]
        assert rows[1]["latency_n"] == 100_000  # the summary of every sample
        kept = int(rows[1]["decimated"].split("->")[1])
        assert 16 <= kept < 100_000
        samples = influxdb.points(
            f"SELECT iteration, latency_s FROM latency_sample WHERE time >= {huge.created_ns} "
            f"AND time < {huge.created_ns + 10**9}",
            db,
        )
        stride = samples[1]["iteration"]
        assert len(samples) == kept and stride > 1
        full = huge.forward.latency_samples_s  # type: ignore[union-attr]
        for i, s in enumerate(samples):  # each kept sample is the original one, at its original index
            assert s["iteration"] == i * stride and s["time"] == huge.created_ns + i * stride
            assert s["latency_s"] == full[i * stride]
        assert spool.keys() == [result_key(hopeless.run_id, 2)]  # only the refused one stays
    finally:
        broker.stop()


# ------------------------------------------------------------------------------------------ 2: names
@pytest.mark.parametrize(
    ("env", "toml_host", "needle"),
    [
        (
            {"EDGEBENCH_HOST": "edge\n1"},
            "host1",
            "environment variable EDGEBENCH_HOST: [agent.host] 'edge\\n1'",
        ),
        ({}, "edge\\tpi", "agent.toml: [agent.host] 'edge\\tpi'"),
        ({"EDGEBENCH_FLEET": "lab/+"}, "host1", "environment variable EDGEBENCH_FLEET: [agent.fleet]"),
    ],
)
def test_hostile_names_are_refused_before_anything_is_measured(  # type: ignore[no-untyped-def]
    tmp_path, mosquitto, env, toml_host, needle
) -> None:
    cfg = write_config(tmp_path / "agent.toml", mosquitto)
    cfg.write_text(cfg.read_text().replace('host = "host1"', f'host = "{toml_host}"'))
    store = tmp_path / "data"
    r = run_cli(*FAST_RUN, "--config", str(cfg), env={**env, "EDGEBENCH_DATA_DIR": str(store)})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (store / "spool.sqlite").exists()  # refused before measuring or spooling anything


def test_malformed_topic_in_an_old_spool_is_refused_and_the_rest_flows(  # type: ignore[no-untyped-def]
    tmp_path, mosquitto, mqtt_probe
) -> None:
    """A spool written before names were checked holds a result under ``…/edge\\n1/result``: the broker
    would close the connection on it forever. It is refused, the next result is delivered."""
    sub = mqtt_probe(mosquitto, "collector")
    sub.subscribe(f"edgebench/v1/{FLEET}/+/result")
    pub, spool, warnings = agent(tmp_path, mosquitto, confirm="broker")
    bad = make_doc(1).model_copy(update={"host": "edge\n1"})
    spool.put(f"edgebench/v1/{FLEET}/edge\n1/result", payload(bad), result_key(bad.run_id, 1))
    good = make_doc(2)
    pub.spool_result(good)
    assert pub.start()
    assert pub.flush(10) == 0
    pub.close()
    assert [m.key for m in spool.refused()] == [result_key(bad.run_id, 1)]
    assert "malformed topic" in (spool.refused()[0].reason or "")
    got = [json.loads(m.payload)["seq"] for m in sub.drain(0.5) if m.topic.endswith("/result")]
    assert got == [2]
    assert any("refused (malformed topic" in w for w in warnings), warnings


# ------------------------------------------------------------------------------------------ 3: all or nothing
def test_rejected_documents_leave_nothing_behind(  # type: ignore[no-untyped-def]
    tmp_path, mosquitto, influxdb, mqtt_probe, collectors
) -> None:
    """Before: a value InfluxDB cannot store made it refuse *some* points while the rest of the document
    stayed written, and a NaN inside a trace was an ``internal`` error. Now out-of-range values are refused
    before the write (``bad_value``), and a document the server stores only in part (a field type clash
    no check can foresee) is deleted again: a dead-lettered document leaves no point behind. The device
    learns of each refusal through its receipt."""
    _, db = start_collector(collectors, tmp_path, mosquitto, influxdb)
    receipts = mqtt_probe(mosquitto, "host1")
    receipts.subscribe(f"edgebench/v1/{FLEET}/host1/receipt")
    pub = mqtt_probe(mosquitto, "host1")
    good = make_doc(1)
    too_big_int = make_doc(2).model_copy(
        update={"model": make_doc(2).model.model_copy(update={"params": {"total": 2**64}})}
    )
    nan_trace = make_doc(3).model_copy(
        update={
            "energy": EnergyResult(
                source="rapl",
                kind="measured",
                trace_start_ns=make_doc(3).created_ns,
                trace=[(0.0, 5.0), (math.nan, 6.0), (0.2, 5.5)],
            )
        }
    )
    # a type clash InfluxDB only finds while writing: wer already stored as a string in this shard (the
    # transcribe document's inference point is refused, its latency samples and sysinfo are not)
    clash = make_doc(4, scenario="transcribe")
    status, _ = influxdb.write(db, f'inference,fleet={FLEET},host=other wer="bad" {clash.created_ns}')
    assert status == 204
    # a neighbour stored before, 1 ns later, in the same series but for a "label" tag: the rollback's
    # time ranges overlap it, its tags do not match, so it must stay whole
    neighbour = clash.model_copy(
        update={
            "created_ns": clash.created_ns + 1,
            "run_id": f"{clash.run_id}-neighbour",
            "config": clash.config.model_copy(update={"label": "other"}),
            "transcribe": clash.transcribe.model_copy(update={"wer": None}),  # type: ignore[union-attr]
        }
    )
    assert not pub.publish(topic(), payload(neighbour)).is_failure
    wait_counts(influxdb, db, docs=1, samples=4)
    for d in (too_big_int, clash, good):
        assert not pub.publish(topic(), payload(d)).is_failure
    # what a producer writing NaN into JSON sends (pydantic itself would write null)
    assert not pub.publish(topic(), json.dumps(nan_trace.model_dump()).encode()).is_failure
    deadline = time.monotonic() + 20
    while sum(deadletter_counts(influxdb, db).values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deadletter_counts(influxdb, db) == {"bad_value": 2, "sink_rejected": 1}
    wait_counts(influxdb, db, docs=2, samples=8)  # only the good document's and the neighbour's points
    assert count(influxdb, db, "power_sample", "watts") <= 0
    sysinfo = influxdb.points("SELECT hostname, host FROM sysinfo", db)
    assert [r["time"] for r in sysinfo] == [good.created_ns, neighbour.created_ns]
    kept = influxdb.points("SELECT latency_s FROM latency_sample WHERE label = 'other'", db)
    assert len(kept) == 4
    items = [i for m in receipts.drain(0.5) for i in json.loads(m.payload)["items"]]
    outcomes = sorted((i["outcome"], (i.get("reason") or "").split(":")[0]) for i in items)
    assert outcomes == [
        ("refused", "bad_value"),
        ("refused", "bad_value"),
        ("refused", "sink_rejected"),
        ("written", ""),
        ("written", ""),
    ], items
    reasons = " ".join(i.get("reason") or "" for i in items)
    assert "rolled back" in reasons and "energy.trace[1]" in reasons and "64-bit" in reasons


# ------------------------------------------------------------------------------------------ 4: newer minor
def test_newer_minor_version_is_stored_and_its_unknown_fields_counted(  # type: ignore[no-untyped-def]
    tmp_path, mosquitto, influxdb, mqtt_probe, collectors
) -> None:
    c, db = start_collector(collectors, tmp_path, mosquitto, influxdb)
    pub = mqtt_probe(mosquitto, "host1")
    newer = json.loads(with_version(payload(make_doc(1)), "1.99"))
    newer["carbon_g"] = 1.5
    newer["forward"]["jitter_s"] = [0.1]
    newer["config"]["npu"] = "ethos"
    same_minor = json.loads(payload(make_doc(2)))
    same_minor["carbon_g"] = 1.5  # our own minor with an unknown field: still a producer bug
    for body in (newer, same_minor, json.loads(with_version(payload(make_doc(3)), "2.0"))):
        assert not pub.publish(topic(), json.dumps(body).encode()).is_failure
    wait_counts(influxdb, db, docs=1, samples=4)
    deadline = time.monotonic() + 10
    while sum(deadletter_counts(influxdb, db).values()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deadletter_counts(influxdb, db) == {"invalid_document": 1, "unsupported_schema_version": 1}
    stats = json.loads((tmp_path / "state" / "collector-stats.json").read_text())
    assert stats["unknown_fields"] == {"carbon_g": 1, "config.npu": 1, "forward.jitter_s": 1}
    assert "unknown_fields_ignored" in c.log_text()
    r = run_cli_collector_status(c)
    assert "1 documents with fields this collector ignored:" in r
    assert "carbon_g, config.npu, forward.jitter_s" in r


def run_cli_collector_status(c) -> str:  # type: ignore[no-untyped-def]
    r = c.status()
    return r.stdout + r.stderr


# ------------------------------------------------------------------------------------------ 5, 6: the broker
def test_broker_crash_after_puback_loses_nothing(  # type: ignore[no-untyped-def]
    tmp_path, mqtt_certs, influxdb, collectors
) -> None:
    """mosquitto acknowledges QoS 1 before it persists (autosave every 60 s). Results acknowledged to an
    agent and then lost by ``kill -9`` of the broker: host2, confirming on PUBACK as before, loses them for
    good; host1, confirming on the collector's receipt, keeps them as ``sent`` and re-sends them."""
    broker = _started(Mosquitto(tmp_path / "broker", MQTT_USERS, MQTT_DEVICES, certs=mqtt_certs))
    c, db = start_collector(collectors, tmp_path / "c", broker, influxdb)
    c.terminate()  # its persistent session now queues results at the broker
    fresh, fresh_spool, _ = agent(tmp_path, broker, spool={"resend_after_s": 2})
    old, old_spool, _ = agent(tmp_path, broker, host="host2", confirm="broker")
    docs1 = [make_doc(k) for k in range(5)]
    docs2 = [make_doc(10 + k, host="host2") for k in range(5)]
    for pub, docs in ((fresh, docs1), (old, docs2)):
        assert pub.start()
        for d in docs:
            pub.spool_result(d)
        pub.flush(10)
        assert pub.published == 5
        pub.close()
    assert fresh_spool.counts() == {"queued": 0, "sent": 5, "refused": 0}
    assert old_spool.count() == 0  # dropped on PUBACK: the old behaviour
    broker.kill()
    broker.start()
    c.start()
    time.sleep(2.5)  # past resend_after_s
    again, spool, _ = agent(tmp_path, broker, spool={"resend_after_s": 2})
    assert again.start()
    assert again.flush(20) == 0
    again.close()
    assert spool.count() == 0 and again.confirmed == 5
    wait_counts(influxdb, db, docs=5, samples=20)
    hosts = {r["host"] for r in influxdb.points("SELECT * FROM inference", db)}
    assert hosts == {"host1"}  # host2's acknowledged results died with the broker
    broker.stop()


def test_broker_queue_limit_is_recovered_and_unconfirmed_results_are_visible(  # type: ignore[no-untyped-def]
    tmp_path, mqtt_certs, influxdb, collectors
) -> None:
    """With the collector away longer than the broker's queue allows (max_queued_messages 3), mosquitto
    drops results it acknowledged. The device's status says how many are unconfirmed (agent_status field,
    ``edgebench-collector status``) and the re-send delivers every one."""
    broker = _started(
        Mosquitto(tmp_path / "broker", MQTT_USERS, MQTT_DEVICES, certs=mqtt_certs, max_queued_messages=3)
    )
    try:
        c, db = start_collector(collectors, tmp_path / "c", broker, influxdb)
        c.terminate()
        pub, spool, _ = agent(tmp_path, broker, spool={"resend_after_s": 2})
        docs = [make_doc(k) for k in range(12)]
        assert pub.start()
        for d in docs:
            pub.spool_result(d)
        pub.flush(3)
        pub.close()  # its offline status carries the count
        assert pub.published == 12 and spool.counts()["sent"] == 12
        c.start()
        deadline = time.monotonic() + 20
        while count(influxdb, db, "inference", "seq") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)
        kept = count(influxdb, db, "inference", "seq")
        assert 0 < kept < 12, kept  # the broker dropped the rest of what it acknowledged
        time.sleep(2.5)
        again, spool, _ = agent(tmp_path, broker, spool={"resend_after_s": 2})
        assert again.start()  # its status says how many of its results are unconfirmed
        deadline = time.monotonic() + 10
        query = "SELECT max(\"unconfirmed\") FROM agent_status WHERE host = 'host1'"
        while influxdb.points(query, db)[0]["max"] != 12 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert influxdb.points(query, db)[0]["max"] == 12
        assert "1 with results not yet stored" in run_cli_collector_status(c)
        assert again.flush(20) == 0
        again.close()
        wait_counts(influxdb, db, docs=12, samples=48)
        assert spool.count() == 0
        rows = influxdb.points("SELECT last(\"unconfirmed\") FROM agent_status WHERE host = 'host1'", db)
        assert rows[0]["last"] == 0
    finally:
        broker.stop()


# ------------------------------------------------------------------------------------------ 7: memory
def test_collector_memory_is_bounded_by_bytes_while_the_database_is_down(  # type: ignore[no-untyped-def]
    tmp_path, mqtt_certs, mqtt_probe, collectors
) -> None:
    """120 documents of ~280 kB while InfluxDB is down, receive window 200. Before, the collector held the
    line protocol (~16x the payload) of every unacknowledged document; holding only payload and parsed
    document and no byte bound (a 10 GB budget) it still grew by 142 MB here. With a 24 MB
    budget it grows by less than twice that (50 MB measured with a 3x estimate, under 48 MB with 4x), and
    after the database returns every document is written exactly once (the ones left unread are
    redelivered after the collector reconnects)."""
    broker = _started(
        Mosquitto(tmp_path / "broker", MQTT_USERS, MQTT_DEVICES, certs=mqtt_certs, max_inflight_messages=200)
    )
    influx = _started(InfluxDB1(tmp_path / "influx"))
    try:
        c, db = start_collector(
            collectors,
            tmp_path / "c",
            broker,
            influx,
            limits={"max_payload_bytes": 400_000, "max_pending_bytes": 24_000_000},
        )
        influx.stop()  # the database goes away after the collector found it
        proc = psutil.Process(c.proc.pid)  # type: ignore[union-attr]
        base = proc.memory_info().rss
        pub = mqtt_probe(broker, "host1")
        docs = [big_doc(k, 18_000) for k in range(120)]
        assert 200_000 < len(payload(docs[0])) < 400_000
        peak = base
        for d in docs:
            pub.publish(topic(), payload(d), timeout=10)
            peak = max(peak, proc.memory_info().rss)
        for _ in range(20):
            time.sleep(0.1)
            peak = max(peak, proc.memory_info().rss)
        assert peak - base < 48_000_000, f"collector grew by {(peak - base) / 1e6:.0f} MB"
        assert "receive_budget_full" in c.log_text()
        influx.start()
        deadline = time.monotonic() + 90
        while count(influx, db, "inference", "seq") < 120 and time.monotonic() < deadline:
            time.sleep(0.5)
        wait_counts(influx, db, docs=120, samples=120 * 18_000, timeout=30)
        assert "redelivery_requested" in c.log_text()
    finally:
        influx.stop()
        broker.stop()


# ------------------------------------------------------------------------------------------ 8: smaller ones
def test_publish_sends_results_that_did_not_fit_the_spool(  # type: ignore[no-untyped-def]
    tmp_path, mosquitto, mqtt_probe
) -> None:
    """Before: plain ``publish`` exited 0 while results that did not fit the full spool were never sent.
    Now it says how many and, when the broker is there, sends them from the local store."""
    env = {"EDGEBENCH_DATA_DIR": str(tmp_path / "data")}
    docs = [make_doc(k) for k in range(5)]
    sub = mqtt_probe(mosquitto, "collector")
    sub.subscribe(f"edgebench/v1/{FLEET}/host1/result")
    cfg_path = write_config(tmp_path / "agent.toml", mosquitto, max_messages=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEBENCH_DATA_DIR", env["EDGEBENCH_DATA_DIR"])
        with ResultStore() as store:
            for d in docs:
                store.add(d)
        cfg = load_config(str(cfg_path), environ={})
        with Spool(cfg.spool_path, cfg.max_messages) as spool:
            pub = Publisher(cfg, spool)
            puts = [pub.spool_result(d) for d in docs]
            assert puts == [PutResult.QUEUED] * 2 + [PutResult.FULL] * 3
    unreachable = cfg_path.read_text().replace(f"port = {mosquitto.tls_port}", "port = 1")
    (tmp_path / "down.toml").write_text(unreachable)
    r = run_cli("publish", "--config", str(tmp_path / "down.toml"), "--timeout", "2", env=env)
    assert r.returncode == 1
    assert "3 results did not fit in the full spool" in r.stdout, r.stdout
    r = run_cli("publish", "--config", str(cfg_path), "--timeout", "10", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    seqs = sorted(json.loads(m.payload)["seq"] for m in sub.drain(1.0) if m.topic.endswith("/result"))
    assert seqs == [0, 1, 2, 3, 4]
    r = run_cli("publish", "--config", str(cfg_path), env=env)
    assert r.returncode == 0 and "nothing to publish" in r.stdout


def test_reused_run_id_with_other_content_is_reported_on_both_sides(  # type: ignore[no-untyped-def]
    tmp_path, mosquitto, influxdb, mqtt_probe, collectors
) -> None:
    _, db = start_collector(collectors, tmp_path, mosquitto, influxdb)
    first = make_doc(1)
    other = make_doc(7).model_copy(update={"run_id": first.run_id, "seq": first.seq})
    # the agent's spool: same key, different measurement
    pub, _, warnings = agent(tmp_path, mosquitto, confirm="broker")
    assert pub.spool_result(first) is PutResult.QUEUED
    assert pub.spool_result(first) is PutResult.DUPLICATE
    assert pub.spool_result(other) is PutResult.CONFLICT
    pub.pump()  # warnings are emitted in the caller's thread
    assert any("reused" in w for w in warnings), warnings
    # the collector: the second one is refused, the first one's points stay
    probe = mqtt_probe(mosquitto, "host1")
    probe.publish(topic(), payload(first))
    wait_counts(influxdb, db, docs=1, samples=4)
    probe.publish(topic(), payload(first))  # a re-send: fine
    probe.publish(topic(), payload(other))
    deadline = time.monotonic() + 10
    while not deadletter_counts(influxdb, db) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deadletter_counts(influxdb, db) == {"conflicting_duplicate": 1}
    wait_counts(influxdb, db, docs=1, samples=4)
    assert influxdb.points("SELECT seq FROM inference", db)[0]["time"] == first.created_ns


def test_status_stamped_in_the_future_is_stored_at_its_receive_time(  # type: ignore[no-untyped-def]
    tmp_path, mosquitto, influxdb, mqtt_probe, collectors
) -> None:
    _, db = start_collector(collectors, tmp_path, mosquitto, influxdb)
    probe = mqtt_probe(mosquitto, "host1")
    body = json.loads(status_payload("running", "host1", FLEET, "test", "r1"))
    body["ts_ns"] = time.time_ns() + 10 * 365 * 86400 * 10**9  # a clock ten years ahead
    before = time.time_ns()
    probe.publish(f"edgebench/v1/{FLEET}/host1/status", json.dumps(body).encode())
    deadline = time.monotonic() + 10
    rows: list = []
    while not rows and time.monotonic() < deadline:
        try:
            rows = influxdb.points("SELECT state FROM agent_status WHERE run_id = 'r1'", db)
        except Exception:
            rows = []
        time.sleep(0.2)
    assert len(rows) == 1 and before <= rows[0]["time"] <= time.time_ns(), rows
