"""Streaming results over MQTT, against a real mosquitto with the production config (tests/servers.py).

What matters here is behaviour under failure: every result reaches the broker at least once (QoS 1), the
spool empties only on PUBACK, an unreachable or refusing broker never fails a run nor loses a result, and
the retained status / Last Will tell dashboards whether an agent is alive.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.publish.command import summary_line
from edgebench.agent.publish.config import load_config
from edgebench.agent.publish.publisher import Publisher
from edgebench.agent.publish.spool import PutResult, Spool, result_key
from edgebench.agent.results.schema import ResultDocument
from edgebench.agent.results.store import ResultStore
from tests.conftest import MQTT_FLEET, ROOT, run_cli
from tests.servers import free_port, make_certs
from tests.test_store import make_doc

RESULT_FILTER = f"edgebench/v1/{MQTT_FLEET}/+/result"
FAST_RUN = (
    "run",
    "-m",
    "lstm-ctc:tiny",
    "--scenario",
    "forward",
    "--batch-size",
    "1,2",
    "--min-iterations",
    "2",
    "--min-duration",
    "0",
    "--warmup",
    "0",
)


def write_config(
    path: Path,
    broker,
    *,
    host: str = "host1",
    user: str | None = "host1",
    password: str | None = None,
    port: int | None = None,
    tls: bool = True,
    spool: Path | None = None,
    max_messages: int = 10_000,
    confirm: str = "broker",
    extra: tuple[str, ...] = (),
) -> Path:
    """An agent.toml as an operator would write it (TLS with the broker's CA by default).

    ``confirm = "broker"`` by default: these tests have no collector to send receipts (the receipt path
    is tested in test_delivery.py with a real one)."""
    lines = ["[agent]", f'fleet = "{MQTT_FLEET}"', f'host = "{host}"', "[mqtt]", 'host = "127.0.0.1"']
    lines.append(f"port = {port or (broker.tls_port if tls else broker.port)}")
    if tls:
        lines += ["tls = true", f'ca_file = "{broker.ca_file}"']
    if user:
        lines += [f'username = "{user}"', f'password = "{password or broker.users[user]}"']
    lines += [
        "[spool]",
        f'path = "{spool or path.parent / "spool.sqlite"}"',
        f"max_messages = {max_messages}",
        f'confirm = "{confirm}"',
        *extra,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def docs(n: int, host: str = "host1", run_id: str | None = None) -> list[ResultDocument]:
    run_id = run_id or f"run-{time.time_ns()}"
    out = []
    for i in range(n):
        d = make_doc(run_id, i)
        d.host, d.fleet = host, MQTT_FLEET
        out.append(d)
    return out


def received(probe, n: int, timeout: float = 15.0) -> dict[tuple[str, int], ResultDocument]:
    """Wait for ``n`` distinct results (QoS 1 may duplicate: dedupe by run_id/seq) and check each one."""
    got: dict[tuple[str, int], ResultDocument] = {}
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for msg in probe.drain(0.2):
            if not msg.topic.endswith("/result"):
                continue
            doc = ResultDocument.model_validate_json(msg.payload)
            _, _, fleet, host, _ = msg.topic.split("/")
            assert (doc.fleet, doc.host) == (fleet, host), msg.topic
            got[(doc.run_id, doc.seq)] = doc
    assert len(got) >= n, f"received {len(got)} of {n} results: {sorted(got)}"
    return got


def spool_count(path: Path) -> int:
    with Spool(path) as s:
        return s.count()


# --- configuration ---------------------------------------------------------------------------------


def test_config_defaults_disable_publishing(tmp_path: Path) -> None:
    cfg = load_config(None, environ={}) if not Path("/etc/edgebench/agent.toml").exists() else None
    if cfg is not None:
        assert not cfg.enabled and cfg.fleet == "default" and cfg.host
    p = tmp_path / "a.toml"
    p.write_text('[agent]\nfleet = "lab"\n')
    cfg = load_config(str(p), environ={})
    assert not cfg.enabled and cfg.fleet == "lab"


def test_config_precedence_and_files(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    (tmp_path / "pw").write_text("secret\n")
    p = tmp_path / "a.toml"
    p.write_text(
        '[agent]\nfleet = "lab"\nhost = "h1"\n[mqtt]\nhost = "b"\nusername = "h1"\n'
        f'password_file = "{tmp_path / "pw"}"\nca_file = "{ca}"\n'
    )
    cfg = load_config(str(p), environ={})
    assert (cfg.broker, cfg.tls, cfg.password, cfg.client_id) == (
        "b:8883",
        True,
        "secret",
        "edgebench-agent-h1",
    )
    env = {"EDGEBENCH_MQTT_HOST": "e", "EDGEBENCH_MQTT_PORT": "1884", "EDGEBENCH_HOST": "h2"}
    cfg = load_config(str(p), environ=env)
    assert (cfg.broker, cfg.host, cfg.result_topic()) == ("e:1884", "h2", "edgebench/v1/lab/h2/result")
    cfg = load_config(str(p), broker="127.0.0.1:1999", fleet="f2", environ=env)
    assert (cfg.broker, cfg.fleet) == ("127.0.0.1:1999", "f2")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[mqtt]\nhost = "b"\npasswrd = "x"\n', "[mqtt.passwrd] unknown key"),
        ("[mqtt\nhost=1", "not valid TOML"),
        ('[mqtt]\nport = "many"\n', "[mqtt.port]"),
        ('[agent]\nhost = "a/b"\n', "[agent.host]"),
        ('[mqtt]\nhost = "b"\nca_file = "/nonexistent/ca.pem"\n', "[mqtt.ca_file] file /nonexistent"),
    ],
)
def test_config_errors_are_one_line_naming_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(EdgebenchError) as e:
        load_config(str(p), environ={})
    assert needle in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(EdgebenchError, match="does not exist"):
        load_config(str(tmp_path / "missing.toml"), environ={})


# --- spool -----------------------------------------------------------------------------------------


def test_spool_is_idempotent_bounded_and_durable(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Spool(path, max_messages=2) as s:
        assert s.put("t", b"a", "r:0") is PutResult.QUEUED
        assert s.put("t", b"a", "r:0") is PutResult.DUPLICATE
        assert s.put("t", b"b", "r:1") is PutResult.QUEUED
        assert s.put("t", b"c", "r:2") is PutResult.FULL
        assert s.put("t", b"c", "r:2", force=True) is PutResult.QUEUED
        first = s.peek(10)
        assert [m.payload for m in first] == [b"a", b"b", b"c"]
        s.remove(first[0].id)
    with Spool(path) as s:  # reopened: still there, in order
        assert s.count() == 2 and s.keys() == ["r:1", "r:2"]
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- against a real broker -------------------------------------------------------------------------


def test_run_publishes_every_result_once_with_status(tmp_path: Path, mosquitto, mqtt_probe) -> None:
    """The real CLI: both results arrive once over TLS, status goes running -> online -> offline."""
    sub = mqtt_probe(mosquitto, "collector", tls=True)
    sub.subscribe("edgebench/v1/lab/host1/#")
    sub.drain(0.3)  # a retained status from an earlier test
    cfg = write_config(tmp_path / "agent.toml", mosquitto)
    r = run_cli(*FAST_RUN, "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "published 2 results to 127.0.0.1:" in r.stdout, r.stdout
    msgs = sub.drain(1.0)
    results = [ResultDocument.model_validate_json(m.payload) for m in msgs if m.topic.endswith("/result")]
    assert sorted(d.seq for d in results) == [0, 1]  # exactly once each (no reconnect happened)
    assert {(d.host, d.fleet) for d in results} == {("host1", "lab")}
    states = [json.loads(m.payload)["state"] for m in msgs if m.topic.endswith("/status")]
    assert "running" in states and states[-1] == "offline", states
    running = next(json.loads(m.payload) for m in msgs if b'"running"' in m.payload)
    assert running["run_id"] == results[0].run_id
    assert spool_count(tmp_path / "spool.sqlite") == 0
    with ResultStore() as store:  # the local store still has them too
        assert len(list(store.documents(results[0].run_id))) == 2


def test_last_will_marks_a_killed_agent_offline(tmp_path: Path, mosquitto, mqtt_probe) -> None:
    cfg = write_config(tmp_path / "agent.toml", mosquitto, tls=False)
    script = (
        "import sys, time\n"
        "from edgebench.agent.publish.config import load_config\n"
        "from edgebench.agent.publish.publisher import Publisher\n"
        "from edgebench.agent.publish.spool import Spool\n"
        f"cfg = load_config({str(cfg)!r})\n"
        "p = Publisher(cfg, Spool(cfg.spool_path))\n"
        "assert p.start(), p.last_error\n"
        "p.set_status('running', 'r-will')\n"
        "print('connected', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"
        sub = mqtt_probe(mosquitto, "collector")
        sub.subscribe("edgebench/v1/lab/host1/status")
        (retained,) = sub.expect(1)
        assert json.loads(retained.payload)["state"] in ("online", "running") and retained.retain
        sub.drain(0.3)
        proc.send_signal(signal.SIGKILL)
        (will,) = sub.expect(1, timeout=10)
        body = json.loads(will.payload)
        assert body["state"] == "offline" and body["reason"] == "connection lost" and body["host"] == "host1"
    finally:
        proc.kill()
        proc.wait()
    late = mqtt_probe(mosquitto, "collector")  # a dashboard connecting later sees it retained
    late.subscribe("edgebench/v1/lab/host1/status")
    assert json.loads(late.expect(1)[0].payload)["state"] == "offline"


def test_unreachable_broker_keeps_results_then_publish_delivers(
    tmp_path: Path, mosquitto, mqtt_probe
) -> None:
    """Run with nothing listening: exit 0, one line, results spooled — but the spool holds only 1, so the
    second result stays only in the local store; `publish --run` re-queues it and delivers both."""
    spool = tmp_path / "spool.sqlite"
    down = write_config(tmp_path / "down.toml", mosquitto, port=free_port(), max_messages=1)
    r = run_cli(*FAST_RUN, "--config", str(down), "--publish-timeout", "1")
    assert r.returncode == 0, r.stderr
    assert "broker unreachable (connection refused): 1 results kept in the spool" in r.stdout, r.stdout
    assert "is full (1 messages)" in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert spool_count(spool) == 1
    with ResultStore() as store:
        run_id = store.resolve_run("last")
        assert len(list(store.documents(run_id))) == 2  # nothing lost locally

    sub = mqtt_probe(mosquitto, "collector", tls=True)
    sub.subscribe(RESULT_FILTER)
    up = write_config(tmp_path / "up.toml", mosquitto, spool=spool, max_messages=1)
    r = run_cli("publish", "--config", str(up), "--run", run_id[:8], "--timeout", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "re-queued 1 results" in r.stdout and "published 2 results" in r.stdout, r.stdout
    got = received(sub, 2)
    assert set(got) == {(run_id, 0), (run_id, 1)}
    assert spool_count(spool) == 0


def test_killed_before_publishing_replays_on_next_start(tmp_path: Path, mosquitto, mqtt_probe) -> None:
    """An agent SIGKILLed after spooling but before any publish: the next `publish` sends exactly those."""
    cfg = write_config(tmp_path / "agent.toml", mosquitto)
    spooled = docs(3)
    payloads = [d.model_dump_json() for d in spooled]
    script = (
        "import os, signal, sys\n"
        "from edgebench.agent.publish.spool import Spool\n"
        f"s = Spool({str(tmp_path / 'spool.sqlite')!r})\n"
        f"for i, p in enumerate({payloads!r}):\n"
        "    s.put('edgebench/v1/lab/host1/result', p.encode(), f'k:{i}')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert spool_count(tmp_path / "spool.sqlite") == 3
    sub = mqtt_probe(mosquitto, "collector", tls=True)
    sub.subscribe(RESULT_FILTER)
    r = run_cli("publish", "--config", str(cfg), "--timeout", "10")
    assert r.returncode == 0 and "published 3 results" in r.stdout, r.stdout + r.stderr
    got = received(sub, 3)
    assert set(got) == {(d.run_id, d.seq) for d in spooled}
    assert not [m for m in sub.drain(0.5) if m.topic.endswith("/result")]  # nothing else (no extra run)
    assert spool_count(tmp_path / "spool.sqlite") == 0
    r = run_cli("publish", "--config", str(cfg), "--timeout", "2")
    assert r.returncode == 0 and "nothing to publish" in r.stdout


def test_broker_outage_mid_sequence_loses_nothing(tmp_path: Path, mosquitto_fresh, mqtt_probe) -> None:
    """Broker stopped for ~10 s while results keep coming: all arrive after it is back, spool ends empty."""
    broker = mosquitto_fresh
    sub = mqtt_probe(broker, "collector", tls=True)
    sub.subscribe(RESULT_FILTER)
    cfg = load_config(str(write_config(tmp_path / "agent.toml", broker)), environ={})
    warnings: list[str] = []
    spool = Spool(cfg.spool_path)
    pub = Publisher(cfg, spool, warn=warnings.append)
    all_docs = docs(8)
    try:
        assert pub.start()
        for d in all_docs[:3]:
            pub.spool_result(d)
            pub.pump()
        before = received(sub, 3)
        pub.pump()  # apply the PUBACKs
        assert spool.count() == 0
        broker.stop()
        t0 = time.monotonic()
        for d in all_docs[3:]:  # "measuring" while the broker is away
            pub.spool_result(d)
            pub.pump()
            time.sleep(1.0)
        time.sleep(max(0.0, 10 - (time.monotonic() - t0)))
        assert spool.count() == 5
        assert any("connection lost" in w for w in warnings), warnings
        broker.start()
        # a new subscriber before the agent sends (the flush below is where spooled results go out)
        sub2 = mqtt_probe(broker, "collector", tls=True)
        sub2.subscribe(RESULT_FILTER)
        assert pub.flush(30) == 0, (warnings, pub.last_error)
        assert pub.published == 8
    finally:
        pub.close()
        spool.close()
    after = received(sub2, 5)
    assert {*before, *after} == {(d.run_id, d.seq) for d in all_docs}


def test_wrong_password_warns_in_one_line_and_keeps_results(tmp_path: Path, mosquitto) -> None:
    cfg = write_config(tmp_path / "agent.toml", mosquitto, password="wrong")
    with Spool(tmp_path / "spool.sqlite") as s:
        for d in docs(2):
            s.put("edgebench/v1/lab/host1/result", d.model_dump_json().encode(), result_key(d.run_id, d.seq))
    r = run_cli("publish", "--config", str(cfg), "--timeout", "2")
    assert r.returncode == 1
    warn = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warn) == 1 and "refused the connection" in warn[0], r.stderr
    assert "Bad user name or password" in warn[0] or "Not authorized" in warn[0]
    assert "Traceback" not in r.stderr and "2 results kept in the spool" in r.stdout, r.stdout
    assert spool_count(tmp_path / "spool.sqlite") == 2


def test_acl_refusal_moves_result_to_refused_with_warning(tmp_path: Path, mosquitto, mqtt_probe) -> None:
    """host1 publishing results of host2: the v5 PUBACK says Not authorized, so it is NOT delivered; it
    moves to the refused state (kept, listed, retryable) and the rest of the queue is sent."""
    sub = mqtt_probe(mosquitto, "collector")
    sub.subscribe(RESULT_FILTER)
    cfg = load_config(str(write_config(tmp_path / "agent.toml", mosquitto)), environ={})
    warnings: list[str] = []
    with Spool(cfg.spool_path) as spool:
        pub = Publisher(cfg, spool, warn=warnings.append)
        assert pub.start()
        foreign, own = docs(2, host="host2"), docs(1)
        for d in [*foreign, *own]:
            pub.spool_result(d)
        remaining = pub.flush(5)
        pub.close()
        assert remaining == 0 and pub.published == 1
        assert spool.keys() == [result_key(d.run_id, d.seq) for d in foreign]
        assert [m.key for m in spool.refused()] == spool.keys()
        assert all("Not authorized" in (m.reason or "") for m in spool.refused())
        line = summary_line(pub)
    assert len(warnings) == 1 and "Not authorized" in warnings[0] and "ACL" in warnings[0], warnings
    assert "2 results refused (broker refused" in line and "--list-refused" in line, line
    r = run_cli("publish", "--config", str(tmp_path / "agent.toml"), "--list-refused")
    assert r.returncode == 0 and r.stdout.count("Not authorized") == 2, r.stdout
    r = run_cli("publish", "--config", str(tmp_path / "agent.toml"), "--retry-refused", "--timeout", "5")
    assert r.returncode == 1 and "queued 2 refused results again" in r.stdout, r.stdout + r.stderr
    assert "2 results refused" in r.stdout
    r = run_cli("publish", "--config", str(tmp_path / "agent.toml"), "--drop-refused")
    assert r.returncode == 0 and "dropped 2 refused results" in r.stdout, r.stdout + r.stderr
    got = received(sub, 1)
    assert set(got) == {(own[0].run_id, 0)}
    assert not [m for m in sub.drain(0.5) if m.topic.endswith("/result")]


def test_help_does_not_import_paho_or_torch() -> None:
    code = (
        "import sys\n"
        "from edgebench.agent.cli.main import app\n"
        "for argv in (['--help'], ['run', '--help'], ['publish', '--help']):\n"
        "    try:\n"
        "        app(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "bad = [m for m in sys.modules if m.startswith(('paho', 'torch'))]\n"
        "print('IMPORTED', bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "IMPORTED []" in r.stdout, r.stdout + r.stderr
    assert "--no-publish" in r.stdout and "--broker" in r.stdout and "--run" in r.stdout


def test_tls_failures_are_one_line_warnings(tmp_path: Path, mosquitto) -> None:
    """A CA that did not sign the broker's certificate, and TLS against the plain listener: one warning
    naming TLS each, no exception, start() reports not connected."""
    other = make_certs(tmp_path / "other-ca")
    wrong_ca = write_config(tmp_path / "a.toml", mosquitto)
    wrong_ca.write_text(wrong_ca.read_text().replace(str(mosquitto.ca_file), str(other.ca_file)))
    plain = write_config(tmp_path / "b.toml", mosquitto, port=mosquitto.port)
    for path, needle in ((wrong_ca, "TLS certificate verification failed"), (plain, "TLS handshake failed")):
        cfg = load_config(str(path), environ={})
        warnings: list[str] = []
        with Spool(cfg.spool_path) as spool:
            pub = Publisher(cfg, spool, warn=warnings.append)
            assert not pub.start()
            pub.close()
        assert len(warnings) == 1 and needle in warnings[0] and "\n" not in warnings[0], warnings


def test_spool_of_an_older_agent_is_migrated_in_place(tmp_path: Path) -> None:
    """A device upgraded with results waiting: the old outbox table gains the state columns, its rows are
    queued, and the same stored result queued again from the local store (``publish --run``) is
    recognised as the same message, not as a reused id."""
    import sqlite3

    path = tmp_path / "spool.sqlite"
    d = docs(1)[0].model_copy(update={"schema_version": "1.3"})  # as the older agent stored it
    old_payload = d.model_dump_json()
    assert '"decimated"' not in old_payload  # written only when something was thinned
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, "
            "topic TEXT NOT NULL, payload BLOB NOT NULL, created_ns INTEGER NOT NULL)"
        )
        db.execute(
            "INSERT INTO outbox (key, topic, payload, created_ns) VALUES (?,?,?,?)",
            (result_key(d.run_id, d.seq), f"edgebench/v1/{MQTT_FLEET}/host1/result", old_payload.encode(), 1),
        )
    cfg = load_config(
        None, broker="127.0.0.1", environ={"EDGEBENCH_HOST": "host1", "EDGEBENCH_FLEET": MQTT_FLEET}
    )
    with Spool(path) as spool:
        assert spool.counts() == {"queued": 1, "sent": 0, "refused": 0}
        [msg] = spool.peek(10)
        assert msg.payload == old_payload.encode()
        stored = ResultDocument.model_validate_json(old_payload)  # what the local store gives back
        assert Publisher(cfg, spool).spool_result(stored) is PutResult.DUPLICATE


def test_decimation_is_deterministic_and_bounded() -> None:
    """The same document and limit give the same bytes (a re-queue is a duplicate, not a conflict); the
    summaries stay those of the full lists; a document that cannot fit says so."""
    from edgebench.agent.publish.trim import TooLarge, fit
    from edgebench.agent.stats import summarize

    d = docs(1)[0]
    lat = [0.0123456 + i * 1e-9 for i in range(50_000)]
    d = d.model_copy(
        update={
            "forward": d.forward.model_copy(  # type: ignore[union-attr]
                update={"latency_samples_s": lat, "latency_s": summarize(lat)}
            )
        }
    )
    one, fitted = fit(d, 100_000)
    two, _ = fit(d, 100_000)
    assert one == two and len(one) <= 100_000
    [note] = fitted.decimated
    assert (note.path, note.total) == ("forward.latency_samples_s", 50_000)
    assert (
        note.kept == len(fitted.forward.latency_samples_s)
        and fitted.forward.latency_samples_s[1] == lat[note.stride]
    )  # type: ignore[union-attr]
    assert fitted.forward.latency_s == d.forward.latency_s  # type: ignore[union-attr]
    assert fit(d, 10**7)[1] is d  # fits: untouched
    with pytest.raises(TooLarge, match="even with its sample lists decimated"):
        fit(d.model_copy(update={"warnings": ["x" * 5000]}), 4096)
