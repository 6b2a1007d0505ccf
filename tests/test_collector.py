"""edgebench-collector against real servers: mosquitto 2.0, InfluxDB 1.6.7 and VictoriaMetrics.

The collector runs as a subprocess (``edgebench-collector run --config …``) so that SIGKILL is a real
crash. Every end-to-end assertion is an InfluxQL count or value read back from the database: 0 lost and
0 duplicated points after each fault.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebench.agent.publish.status import StatusPayload, status_payload
from edgebench.agent.results.schema import (
    SCHEMA_VERSION,
    ForwardResult,
    MemoryResult,
    ModelReport,
    ResultDocument,
    RunConfig,
    SysInfo,
    TranscribeResult,
    UtteranceResult,
)
from edgebench.agent.stats import summarize
from edgebench.collector.fleet_points import agent_status_line, deadletter_line
from edgebench.collector.points import document_to_lines, document_to_points
from edgebench.collector.sinks.detect import api_for_version, ping
from edgebench.collector.sinks.influx_v2 import InfluxV2Sink
from edgebench.collector.validate import Rejection, fleet_of, validate, validate_status

FLEET = "lab"
BASE_NS = 1_700_000_000_000_000_000  # 2023-11-14: fixed, so every run writes the same timestamps
INFLUX_OUTAGE_S = 60  # as the issue asks; the whole file still runs in well under 2 minutes
SAMPLES = 4  # latency_sample points per forward document


# ------------------------------------------------------------------------------------------ documents
def make_doc(
    k: int, host: str = "host1", scenario: str = "forward", run_id: str | None = None
) -> ResultDocument:
    """A real ResultDocument (as the agent builds it); ``k`` makes created_ns and values distinct."""
    lat = [0.01 + k * 1e-4, 0.011 + k * 1e-4, 0.009 + k * 1e-4, 0.0105 + k * 1e-4][:SAMPLES]
    s = summarize(lat)
    forward = transcribe = None
    if scenario == "forward":
        forward = ForwardResult(
            latency_s=s, iterations_per_s=1 / s.mean, samples_per_s=1 / s.mean, latency_samples_s=lat
        )
    else:
        utts = [
            UtteranceResult(id=f"u{i}", audio_s=2.0, latency_s=x, reference="a b", hypothesis="a c")
            for i, x in enumerate(lat)
        ]
        transcribe = TranscribeResult(
            utterances=len(utts),
            audio_s_total=8.0,
            latency_s=s,
            rtf=sum(lat) / 8.0,
            wer=0.5,
            cer=0.25,
            accuracy_meaningful=True,
            normalizer="basic",
            per_utterance=utts,
        )
    return ResultDocument(
        run_id=run_id or str(uuid.uuid4()),
        seq=k,
        created_ns=BASE_NS + k * 1_000_000_000,
        host=host,
        fleet=FLEET,
        device_class="x86",
        edgebench_version="test",
        config=RunConfig(
            model="lstm-ctc:tiny",
            runtime="torch",
            precision="fp32",
            device="cpu",
            scenario=scenario,
            threads=2,
            frontend="torch",
            audio_seconds=10 if scenario == "forward" else None,
        ),
        model=ModelReport(
            name="lstm-ctc:tiny",
            family="lstm-ctc",
            trained=False,
            weights_source="seeded",
            params={"total": 3000 + k, "encoder": 2000},
        ),
        sysinfo=SysInfo(
            hostname=host,
            device_class="x86",
            cpu_model="Test CPU",
            arch="x86_64",
            cpu_cores_logical=2,
            ram_bytes=8 << 30,
            os="Debian 12",
            kernel="6.1",
            python="3.11",
            libraries={"torch": "2.13.0"},
        ),
        forward=forward,
        transcribe=transcribe,
        memory=MemoryResult(
            peak_rss_bytes=100_000_000 + k, baseline_rss_bytes=90_000_000, sampling_interval_s=0.01
        ),
    )


def payload(doc: ResultDocument) -> bytes:
    return doc.model_dump_json().encode()


def with_version(body: bytes, version: str) -> bytes:
    """The same payload claiming another schema_version (whatever the current one is)."""
    data = json.loads(body)
    data["schema_version"] = version
    return json.dumps(data).encode()


def topic(host: str = "host1") -> str:
    return f"edgebench/v1/{FLEET}/{host}/result"


# ------------------------------------------------------------------------------------------ collector process
class CollectorProc:
    """``edgebench-collector run`` as a subprocess with its own config, database and client id."""

    def __init__(  # type: ignore[no-untyped-def]
        self,
        tmp: Path,
        broker,
        influx_url: str,
        db: str,
        mqtt: dict | None = None,
        limits: dict | None = None,
        **influx: object,
    ) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.config = tmp / "collector.toml"
        self.log = tmp / "collector.log"
        self.client_id = f"collector-{uuid.uuid4().hex[:8]}"
        extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in influx.items())
        mqtt_extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in (mqtt or {}).items())
        limits = {"max_payload_bytes": 200000, **(limits or {})}
        limits_text = "\n".join(f"{k} = {json.dumps(v)}" for k, v in limits.items())
        self.config.write_text(
            f"""data_dir = "{tmp / "state"}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "collector"
password = "{broker.users["collector"]}"
client_id = "{self.client_id}"
session_expiry_s = 600
max_inflight = 200
{mqtt_extra}
[influx]
url = "{influx_url}"
database = "{db}"
flush_interval_s = 0.2
retry_initial_s = 0.2
retry_max_s = 2.0
{extra}
[limits]
{limits_text}
"""
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> CollectorProc:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from edgebench.collector.cli import main; main()",
                    "run",
                    "--config",
                    str(self.config),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_log("mqtt_connected", count=self.log_text().count('"mqtt_connected"') + 1)
        return self

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_log(self, event: str, count: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.log_text().count(f'"{event}"') < count:
            assert self.proc is not None and self.proc.poll() is None, (
                f"collector died:\n{self.log_text()[-3000:]}"
            )
            assert time.monotonic() < deadline, f"no {event} in collector log:\n{self.log_text()[-3000:]}"
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> subprocess.CompletedProcess:
        """``edgebench-collector status`` with this collector's config, as an operator runs it."""
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "from edgebench.collector.cli import main; main()",
                "status",
                "--config",
                str(self.config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_collector(collectors, tmp_path, broker, influx, db=None, mqtt=None, limits=None, **kw):  # type: ignore[no-untyped-def]
    db = db or f"eb_{uuid.uuid4().hex[:10]}"
    c = CollectorProc(tmp_path, broker, influx.url, db, mqtt, limits, **kw)
    collectors.append(c)
    c.start()
    return c, db


def count(influx, db: str, measurement: str, field: str) -> int:  # type: ignore[no-untyped-def]
    try:
        rows = influx.points(f'SELECT count("{field}") FROM "{measurement}"', db)
    except Exception:  # database not created yet / server restarting
        return -1
    return int(rows[0]["count"]) if rows else 0


def wait_counts(influx, db: str, docs: int, samples: int, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    """Wait for exact counts, then make sure they stay exact (no late duplicates)."""
    deadline = time.monotonic() + timeout
    got = (None, None)
    while time.monotonic() < deadline:
        got = (count(influx, db, "inference", "seq"), count(influx, db, "latency_sample", "latency_s"))
        if got == (docs, samples):
            break
        assert got[0] <= docs and got[1] <= samples, f"too many points: {got} > {(docs, samples)}"
        time.sleep(0.2)
    assert got == (docs, samples), f"(inference, latency_sample) = {got}, expected {(docs, samples)}"
    time.sleep(0.5)
    again = (count(influx, db, "inference", "seq"), count(influx, db, "latency_sample", "latency_s"))
    assert again == (docs, samples)


# ------------------------------------------------------------------------------------------ validate (unit)
def test_validate_accepts_real_document_and_rejects_each_rule() -> None:
    doc = make_doc(1)
    assert validate(topic(), payload(doc)) == doc
    cases = {
        "too_large": (topic(), b"x" * 2000, 1000),
        "bad_topic": ("edgebench/v1/lab/host1/status", payload(doc), None),
        "not_utf8": (topic(), b"\xff\xfe{", None),
        "bad_json": (topic(), b'{"schema_version": ', None),
        "unsupported_schema_version": (topic(), with_version(payload(doc), "2.0"), None),
        "invalid_document": (topic(), json.dumps({"schema_version": SCHEMA_VERSION}).encode(), None),
        "topic_mismatch": (topic("host2"), payload(doc), None),
    }
    for reason, (t, p, limit) in cases.items():
        r = validate(t, p, limit) if limit else validate(t, p)
        assert isinstance(r, Rejection) and r.reason == reason, (reason, r)
        assert "\n" not in r.detail
    fleet_doc = doc.model_copy(update={"fleet": "other"})
    assert validate(topic(), payload(fleet_doc)).reason == "topic_mismatch"  # type: ignore[union-attr]


_REAL = json.loads(payload(make_doc(3, scenario="transcribe")))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated_documents(draw) -> bytes:  # type: ignore[no-untyped-def]
    """A real document with one key replaced, deleted or added (deep or shallow)."""
    doc = json.loads(json.dumps(_REAL))
    target = doc
    path_keys = draw(
        st.lists(st.sampled_from(["config", "model", "sysinfo", "transcribe", "memory"]), max_size=1)
    )
    for k in path_keys:
        target = target[k]
    key = draw(st.sampled_from(sorted(target)) | st.text(max_size=10))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "delete":
        target.pop(key, None)
    else:
        target[key] = draw(_json)
    return json.dumps(doc).encode()


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    t=st.sampled_from([topic(), topic("host2"), "edgebench/v1/lab/host1", "x", ""]) | st.text(max_size=40),
    p=st.binary(max_size=300) | mutated_documents() | _json.map(lambda v: json.dumps(v).encode()),
)
def test_validate_never_raises(t: str, p: bytes) -> None:
    r = validate(t, p, 100_000)
    assert isinstance(r, ResultDocument | Rejection)
    if isinstance(r, ResultDocument):
        document_to_lines(r)  # anything valid must also map onto line protocol
    status_topic = t.removesuffix("/result") + "/status"
    s = validate_status(status_topic, p, 100_000)
    assert s is None or isinstance(s, StatusPayload | Rejection)
    if isinstance(s, StatusPayload):
        assert agent_status_line(s, 1).startswith("agent_status,")
    if isinstance(r, Rejection):
        assert deadletter_line(fleet_of(t), r.reason, t, len(p), 1).startswith("deadletter,")


STATUS_TOPIC = f"edgebench/v1/{FLEET}/host1/status"


def status_body(state: str = "online", **kw: object) -> bytes:
    return json.dumps({"state": state, "host": "host1", "fleet": FLEET, "ts_ns": BASE_NS, **kw}).encode()


def test_validate_status_accepts_the_publishers_payload_and_rejects_each_rule() -> None:
    real = status_payload("running", "host1", FLEET, "test", run_id="r1")
    ok = validate_status(STATUS_TOPIC, real)
    assert isinstance(ok, StatusPayload) and ok.state == "running" and ok.run_id == "r1" and ok.online
    will_body = status_payload("offline", "host1", FLEET, "t", reason="connection lost", stamped=False)
    will = validate_status(STATUS_TOPIC, will_body)
    assert isinstance(will, StatusPayload) and will.ts_ns is None and not will.online
    assert validate_status(STATUS_TOPIC, b"") is None  # a cleared retained status: nothing to write
    cases = {
        "too_large": (STATUS_TOPIC, status_body(pad="x" * 2000)),
        "bad_topic": (f"edgebench/v1/{FLEET}/host1/state", status_body()),
        "not_utf8": (STATUS_TOPIC, b"\xff\xfe{"),
        "bad_json": (STATUS_TOPIC, b"[1, 2]"),
        "invalid_status": (STATUS_TOPIC, status_body("dancing")),
        "topic_mismatch": (f"edgebench/v1/{FLEET}/host2/status", status_body()),
    }
    for reason, (t, p) in cases.items():
        r = validate_status(t, p, 1000)
        assert isinstance(r, Rejection) and r.reason == reason, (reason, r)
    assert validate_status(STATUS_TOPIC, status_body(ts_ns=-5)).reason == "invalid_status"  # type: ignore[union-attr]
    line = agent_status_line(ok, 7)
    assert line.startswith('agent_status,fleet=lab,host=host1 online=1i,run_id="r1",state="running" ')
    assert agent_status_line(will, 7).endswith(' online=0i,reason="connection lost",state="offline" 7')
    assert deadletter_line("lab", "bad_json", "a\nb", 12, 9) == (
        'deadletter,fleet=lab,reason=bad_json bytes=12i,count=1i,topic="a?b" 9'
    )


def test_points_are_deterministic_and_run_id_is_a_field() -> None:
    doc = make_doc(2)
    again = ResultDocument.model_validate_json(payload(doc))
    assert document_to_lines(doc) == document_to_lines(again)
    points = document_to_points(doc)
    assert [p._name for p in points] == ["inference"] + ["latency_sample"] * SAMPLES + ["sysinfo"]
    inference = points[0].to_line_protocol()
    assert "run_id=" not in inference.split(" ")[0] and f'run_id="{doc.run_id}"' in inference
    assert "input_seconds=10," in inference and "ctc_weight" not in inference


# ------------------------------------------------------------------------------------------ sinks
def test_version_detection_from_ping(influxdb, victoria) -> None:  # type: ignore[no-untyped-def]
    info = ping(influxdb.url)
    assert info.version == influxdb.version and info.version.startswith("1.6") and info.api == "1"
    vm = ping(victoria.url)
    assert vm.version is None and vm.api == "2"
    assert [api_for_version(v) for v in ("1.7.10", "1.8.10", "v2.7.4", "3.0.1", None, "junk")] == [
        "1",
        "2",
        "2",
        "2",
        "2",
        "2",
    ]


def test_v2_write_path_against_victoriametrics(victoria) -> None:  # type: ignore[no-untyped-def]
    doc = make_doc(7)
    sink = InfluxV2Sink(victoria.url, "edgebench", "edgebench", "token")
    sink.write(document_to_lines(doc))
    sink.write(document_to_lines(doc))  # idempotent re-delivery
    sink.close()
    series = victoria.wait_for_series('{__name__="inference_latency_mean_s", host="host1"}')
    assert len(series) == 1
    # VictoriaMetrics keeps both raw samples unless started with -dedup.minScrapeInterval (then one);
    # same series, same timestamp, same value is what makes the re-delivery collapse there.
    assert set(series[0]["values"]) == {doc.forward.latency_s.mean}  # type: ignore[union-attr]
    assert set(series[0]["timestamps"]) == {doc.created_ns // 1_000_000}
    assert series[0]["metric"]["model"] == "lstm-ctc:tiny" and "run_id" not in series[0]["metric"]


# ------------------------------------------------------------------------------------------ end to end
def test_end_to_end_exact_values_and_idempotent_redelivery(  # type: ignore[no-untyped-def]
    mosquitto, influxdb, mqtt_probe, collectors, tmp_path
) -> None:
    c, db = start_collector(collectors, tmp_path, mosquitto, influxdb)
    pub = mqtt_probe(mosquitto, "host1")
    docs = [make_doc(k) for k in range(3)] + [make_doc(3, scenario="transcribe")]
    for d in docs:
        assert not pub.publish(topic(), payload(d)).is_failure
    wait_counts(influxdb, db, 4, 4 * SAMPLES)
    for d in docs[:2]:  # the same documents again: same points, overwritten
        pub.publish(topic(), payload(d))
    c.wait_log("mqtt_connected")  # still alive
    time.sleep(1.0)
    wait_counts(influxdb, db, 4, 4 * SAMPLES)

    rows = influxdb.points("SELECT * FROM inference", db)
    by_seq = {r["seq"]: r for r in rows}
    for d in docs:
        r = by_seq[d.seq]
        assert r["time"] == d.created_ns and r["run_id"] == d.run_id and r["host"] == "host1"
        summary = d.forward.latency_s if d.forward else d.transcribe.latency_s  # type: ignore[union-attr]
        for stat in ("mean", "std", "cv", "min", "max", "p50", "p90", "p95", "p99", "ci95_low", "ci95_high"):
            name = f"latency_{stat}" if stat == "cv" else f"latency_{stat}_s"
            assert r[name] == getattr(summary, stat), (name, r[name])
        assert r["peak_rss_bytes"] == d.memory.peak_rss_bytes  # type: ignore[union-attr]
        assert r["params_total"] == d.model.params["total"] and r["trained"] is False
        assert r["scenario"] == d.config.scenario and r["precision"] == "fp32"
    t = by_seq[3]
    assert t["rtf"] == docs[3].transcribe.rtf and t["wer"] == 0.5 and t["cer"] == 0.25  # type: ignore[union-attr]
    assert by_seq[0]["iterations_per_s"] == docs[0].forward.iterations_per_s  # type: ignore[union-attr]
    window = f"time >= {BASE_NS} AND time < {BASE_NS + 10**9}"
    samples = influxdb.points(f"SELECT latency_s, iteration FROM latency_sample WHERE {window}", db)
    assert [s["latency_s"] for s in samples] == docs[0].forward.latency_samples_s  # type: ignore[union-attr]
    assert [s["iteration"] for s in samples] == list(range(SAMPLES))
    info = influxdb.points("SELECT * FROM sysinfo", db)
    assert len(info) == 4 and info[0]["cpu_model"] == "Test CPU" and info[0]["lib_torch"] == "2.13.0"


def deadletter_counts(influx, db: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """sum(count) of ``deadletter`` points by reason."""
    try:
        rows = influx.points('SELECT sum("count") FROM "deadletter" GROUP BY "reason"', db)
    except Exception:  # measurement not there yet
        return {}
    return {r["reason"]: int(r["sum"]) for r in rows}


def test_deadletters_with_reasons_collector_stays_alive(  # type: ignore[no-untyped-def]
    mosquitto, influxdb, mqtt_probe, collectors, tmp_path
) -> None:
    c, db = start_collector(collectors, tmp_path, mosquitto, influxdb)
    watcher = mqtt_probe(mosquitto, "collector")
    watcher.subscribe(f"edgebench/v1/{FLEET}/deadletter")
    pub = mqtt_probe(mosquitto, "host1")
    good = make_doc(20)
    bad = {  # (topic, payload) -> expected reason; each is sent REPEAT times
        "bad_json": (topic(), b'{"schema_version": "1.0", '),
        "unsupported_schema_version": (topic(), with_version(payload(good), "9.1")),
        "topic_mismatch": (topic(), payload(make_doc(21, host="host2"))),
        "too_large": (topic(), payload(good) + b" " * 200_001),
        # malformed agent status messages (not retained: the session broker's host1 state stays intact)
        "invalid_status": (STATUS_TOPIC, status_body("dancing")),
        "not_utf8": (STATUS_TOPIC, b"\xff{"),
        "status_bad_json": (STATUS_TOPIC, b"[]"),
        "status_topic_mismatch": (STATUS_TOPIC, status_body(host="host2")),
    }
    expected_reason = {k: k.removeprefix("status_") for k in bad}
    repeat = 3
    for t, p in bad.values():
        for _ in range(repeat):
            assert not pub.publish(t, p).is_failure
    n = repeat * len(bad)
    msgs = watcher.expect(n, timeout=20)
    letters = [json.loads(m.payload) for m in msgs]
    got = {(d["topic"], d["payload_bytes"]): d["reason"] for d in letters}
    assert got == {(t, len(p)): expected_reason[k] for k, (t, p) in bad.items()}
    tm = next(d for d in letters if d["reason"] == "topic_mismatch" and d["topic"] == topic())
    assert "host2" in tm["detail"]
    assert next(d for d in letters if d["reason"] == "too_large")["truncated"] is True
    assert c.alive()
    pub.publish(topic(), payload(good))
    wait_counts(influxdb, db, 1, SAMPLES)  # only the good one was written
    # one deadletter point per reject (the MQTT copies were published after the points were written)
    want: dict[str, int] = {}
    for k in bad:
        want[expected_reason[k]] = want.get(expected_reason[k], 0) + repeat
    assert deadletter_counts(influxdb, db) == want
    rows = influxdb.points('SELECT "topic", "bytes", "fleet" FROM "deadletter"', db)
    assert len(rows) == n and {r["fleet"] for r in rows} == {FLEET}
    assert {(r["topic"], r["bytes"]) for r in rows} == {(t, len(p)) for t, p in bad.values()}
    assert count(influxdb, db, "agent_status", "state") <= 1  # only a retained, valid host1 state
    status = c.status()
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"deadletters: {n}" in status.stdout and "X-Influxdb-Version: 1.6.7" in status.stdout
    assert '"password": "***"' in c.log_text()  # the config is logged, redacted
    assert mosquitto.users["collector"] not in c.log_text()


def test_agent_status_points_online_running_offline_and_last_will(  # type: ignore[no-untyped-def]
    mosquitto, influxdb, collectors, tmp_path
) -> None:
    """A real Publisher (what `edgebench-agent run` uses) goes online -> running -> online -> offline;
    a second one is SIGKILLed and the broker's Last Will says offline: each is one agent_status point."""
    from edgebench.agent.publish.config import load_config as agent_config
    from edgebench.agent.publish.publisher import Publisher as AgentPublisher
    from edgebench.agent.publish.spool import Spool
    from tests.conftest import ROOT
    from tests.test_publish import write_config

    c, db = start_collector(collectors, tmp_path, mosquitto, influxdb)
    t0 = time.time_ns()
    cfg_path = write_config(tmp_path / "agent.toml", mosquitto, host="host2", user="host2", tls=False)
    cfg = agent_config(str(cfg_path), environ={})
    with Spool(cfg.spool_path) as spool:
        agent = AgentPublisher(cfg, spool)
        assert agent.start(), agent.last_error
        agent.set_status("running", "run-a")
        agent.set_status("online")
        agent.close()
    script = (
        "import time\n"
        "from edgebench.agent.publish.config import load_config\n"
        "from edgebench.agent.publish.publisher import Publisher\n"
        "from edgebench.agent.publish.spool import Spool\n"
        f"cfg = load_config({str(cfg_path)!r})\n"
        "p = Publisher(cfg, Spool(cfg.spool_path))\n"
        "assert p.start(), p.last_error\n"
        "p.set_status('running', 'run-b')\n"
        "time.sleep(0.5)\n"
        "print('running', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
    expected = [
        ("online", 1, None, None),
        ("running", 1, "run-a", None),
        ("online", 1, None, None),
        ("offline", 0, None, "agent stopped"),
        ("online", 1, None, None),
        ("running", 1, "run-b", None),
        ("offline", 0, None, "connection lost"),  # the Last Will, stamped on receipt
    ]
    query = (
        'SELECT "state", "online", "run_id", "reason", "fleet" FROM "agent_status" '
        f"WHERE \"host\" = 'host2' AND time >= {t0}"
    )
    deadline = time.monotonic() + 30
    rows: list = []
    while time.monotonic() < deadline:
        rows = influxdb.points(query, db) if count(influxdb, db, "agent_status", "state") > 0 else []
        if len(rows) >= len(expected):
            break
        time.sleep(0.2)
    got = [(r["state"], r["online"], r["run_id"], r["reason"]) for r in rows]
    assert got == expected, got
    assert {r["fleet"] for r in rows} == {FLEET}
    time.sleep(0.5)
    assert len(influxdb.points(query, db)) == len(expected)  # nothing late, nothing doubled
    assert deadletter_counts(influxdb, db) == {} and c.alive()


class Publisher(threading.Thread):
    """Publishes documents k0..k0+n-1 at ``rate``/s as host1, reconnecting if the broker goes away."""

    def __init__(self, broker, mqtt_probe, k0: int, n: int, rate: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.broker, self.make, self.k0, self.n, self.rate = broker, mqtt_probe, k0, n, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            probe = self.make(self.broker, "host1")
            for k in range(self.k0, self.k0 + self.n):
                probe.publish(topic(), payload(make_doc(k)), timeout=20)
                self.sent += 1
                time.sleep(1 / self.rate)
        except BaseException as exc:
            self.error = exc


def test_influxdb_outage_nothing_lost_nothing_doubled(  # type: ignore[no-untyped-def]
    mosquitto, influxdb_fresh, mqtt_probe, collectors, tmp_path
) -> None:
    c, db = start_collector(collectors, tmp_path, mosquitto, influxdb_fresh)
    n = int(INFLUX_OUTAGE_S * 5) + 20
    pub = Publisher(mosquitto, mqtt_probe, 100, n, rate=5)
    pub.start()
    time.sleep(2)
    influxdb_fresh.stop()
    time.sleep(INFLUX_OUTAGE_S)
    assert c.alive() and '"sink_unavailable"' in c.log_text()
    influxdb_fresh.start()
    pub.join(60)
    assert pub.error is None and pub.sent == n
    wait_counts(influxdb_fresh, db, n, n * SAMPLES, timeout=60)


def test_collector_sigkill_midstream_redelivers_exactly_once(  # type: ignore[no-untyped-def]
    mosquitto, influxdb, mqtt_probe, collectors, tmp_path
) -> None:
    c, db = start_collector(collectors, tmp_path, mosquitto, influxdb)
    n = 60
    pub = Publisher(mosquitto, mqtt_probe, 300, n, rate=20)
    pub.start()
    time.sleep(1.0)
    c.kill()
    time.sleep(1.0)
    c.start()  # same client id: the persistent session's unacked + queued messages come back
    connects = [line for line in c.log_text().splitlines() if '"mqtt_connected"' in line]
    assert len(connects) == 2 and '"session_present": true' in connects[-1]
    pub.join(30)
    assert pub.error is None and pub.sent == n
    wait_counts(influxdb, db, n, n * SAMPLES)


def test_broker_restart_collector_reconnects(  # type: ignore[no-untyped-def]
    mosquitto_fresh, influxdb, mqtt_probe, collectors, tmp_path
) -> None:
    c, db = start_collector(collectors, tmp_path, mosquitto_fresh, influxdb)
    pub = mqtt_probe(mosquitto_fresh, "host1")
    for k in range(500, 510):
        pub.publish(topic(), payload(make_doc(k)))
    mosquitto_fresh.stop()
    time.sleep(1)
    mosquitto_fresh.start()
    c.wait_log("mqtt_connected", count=2, timeout=30)
    pub2 = mqtt_probe(mosquitto_fresh, "host1")
    for k in range(510, 520):
        pub2.publish(topic(), payload(make_doc(k)))
    wait_counts(influxdb, db, 20, 20 * SAMPLES)
    assert c.terminate() == 0 and '"collector_stopped"' in c.log_text()


def test_shared_group_splits_results_and_status_exactly_once(  # type: ignore[no-untyped-def]
    mosquitto, influxdb, mqtt_probe, collectors, tmp_path
) -> None:
    """Two collectors on one $share/ group (results and status): each message written by exactly one."""
    group = {"shared_group": f"g{uuid.uuid4().hex[:6]}"}
    a, db = start_collector(collectors, tmp_path / "a", mosquitto, influxdb, mqtt=group)
    b, _ = start_collector(collectors, tmp_path / "b", mosquitto, influxdb, db=db, mqtt=group)
    pub = mqtt_probe(mosquitto, "host1")
    n = 40
    for k in range(700, 700 + n):
        pub.publish(topic(), payload(make_doc(k)))
    for i, state in enumerate(("online", "running", "online")):  # not retained: the session state stays
        pub.publish(STATUS_TOPIC, status_body(state, ts_ns=BASE_NS + i, run_id="r" if i == 1 else None))
    wait_counts(influxdb, db, n, n * SAMPLES)
    rows = influxdb.points(f'SELECT "state" FROM "agent_status" WHERE time < {BASE_NS + 10}', db)
    assert [r["state"] for r in rows] == ["online", "running", "online"]
    for c in (a, b):
        assert "mqtt_subscribe_refused" not in c.log_text() and c.alive()
        stats = json.loads((c.tmp / "state" / "collector-stats.json").read_text())
        assert 0 < stats["documents_written_total"] < n  # both took part


def test_bad_config_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text("[influx]\nbach_lines = 3\n")
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from edgebench.collector.cli import main; main()",
            "run",
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bach_lines" in r.stderr, r.stderr
