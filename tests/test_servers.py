"""The test servers and the production broker configuration are real.

These prove what the streaming tests rely on: the broker from deploy/mosquitto/ authenticates, enforces
the per-device ACL, serves TLS with the make_certs.sh CA, refuses oversized packets, and keeps a
persistent session's queued QoS 1 messages across a clean restart; InfluxDB 1.x and VictoriaMetrics
accept, refuse and return data the way the sinks expect.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import MQTT_FLEET
from tests.servers import (
    DEPLOY_MOSQUITTO,
    ROOT,
    InfluxDB1,
    Mosquitto,
    MqttProbe,
    ServerError,
    VictoriaMetrics,
    free_port,
    mosquitto_acl,
    mosquitto_render,
    port_open,
)

Probe = Callable[..., MqttProbe]


def _topic(host: str, kind: str = "result") -> str:
    return f"edgebench/v1/{MQTT_FLEET}/{host}/{kind}"


def _cid(prefix: str) -> str:
    """Unique client ids: the session broker is shared, and a reused id would kick another client off."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------------------------------
# deploy/mosquitto renderers
# ------------------------------------------------------------------------------------------------


def test_checked_in_config_is_the_rendered_default() -> None:
    """deploy/mosquitto/mosquitto.conf is exactly what render.py prints (re-render after changes)."""
    assert (DEPLOY_MOSQUITTO / "mosquitto.conf").read_text() == mosquitto_render.render_config()


def test_render_config_has_the_production_settings() -> None:
    conf = mosquitto_render.render_config()
    for line in [
        "per_listener_settings false",
        "allow_anonymous false",
        "persistence true",
        "max_packet_size 1048576",
        "max_queued_messages 100000",
        "persistent_client_expiration 7d",
        "tls_version tlsv1.2",
        "user mosquitto",
        "listener 1883 127.0.0.1",
        "listener 8883",
    ]:
        assert line in conf.splitlines(), line
    assert "listener 8883" not in mosquitto_render.render_config(tls_port=None)


def test_acl_pins_fleet_and_host_per_user() -> None:
    acl = mosquitto_acl.render_acl([("fa", "h1"), ("fb", "h2"), ("fa", "h1")])
    blocks = [b.strip().splitlines() for b in acl.split("\n\n")[1:]]
    assert blocks == [
        [
            "user collector",
            "topic read edgebench/v1/#",
            "topic write edgebench/v1/+/deadletter",
            "topic write edgebench/v1/+/+/receipt",
        ],
        [
            "user controller",
            "topic read edgebench/v1/#",
            "topic write edgebench/v1/+/+/job",
            "topic write edgebench/v1/+/job",
            "topic write edgebench/v1/+/_campaign/+",
        ],
        *(
            [
                f"user {h}",
                f"topic write edgebench/v1/{f}/{h}/result",
                f"topic write edgebench/v1/{f}/{h}/status",
                f"topic write edgebench/v1/{f}/{h}/power",
                f"topic write edgebench/v1/{f}/{h}/jobs/#",
                f"topic read edgebench/v1/{f}/{h}/receipt",
                f"topic read edgebench/v1/{f}/{h}/job",
                f"topic read edgebench/v1/{f}/job",
            ]
            for f, h in (("fa", "h1"), ("fb", "h2"))
        ),
    ]
    assert "%u" not in acl and "pattern" not in acl


@pytest.mark.parametrize(
    "devices",
    [
        [("fa", "h1"), ("fb", "h1")],  # same username in two fleets
        [("fa", "h/1")],
        [("f+", "h1")],
        [("fa", "#")],
        [("fa", "h 1")],
        [("fa", "collector")],
        [("fa", "controller")],
    ],
)
def test_acl_refuses_ambiguous_or_widening_names(devices: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        mosquitto_acl.render_acl(devices)


def test_acl_cli() -> None:
    r = subprocess.run(
        [sys.executable, str(DEPLOY_MOSQUITTO / "make_acl.py"), "--device", "fa/h1", "--device", "fa/h2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stdout == mosquitto_acl.render_acl([("fa", "h1"), ("fa", "h2")])
    bad = subprocess.run(
        [sys.executable, str(DEPLOY_MOSQUITTO / "make_acl.py"), "--device", "nohost"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "FLEET/HOST" in bad.stderr


# ------------------------------------------------------------------------------------------------
# mosquitto
# ------------------------------------------------------------------------------------------------


def test_mosquitto_listens_on_loopback_only(mosquitto: Mosquitto) -> None:
    assert mosquitto.is_running and mosquitto.host == "127.0.0.1"
    assert port_open(mosquitto.port) and port_open(mosquitto.tls_port)
    conf = mosquitto.conf_file.read_text()
    assert f"listener {mosquitto.port} 127.0.0.1" in conf
    assert f"listener {mosquitto.tls_port} 127.0.0.1" in conf


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_mqtt_connect_plain_and_tls(mosquitto: Mosquitto, mqtt_probe: Probe, tls: bool) -> None:
    probe = mqtt_probe(mosquitto, "host1", tls=tls, client_id=_cid("h1"))
    assert probe.is_connected
    # The broker advertises its packet limit to v5 clients (publishers can check before sending).
    assert probe.connack_properties.MaximumPacketSize == 1024 * 1024


def test_tls_refuses_an_unknown_ca(mosquitto: Mosquitto, tmp_path: Path) -> None:
    from tests.servers import make_certs

    other = make_certs(tmp_path / "other-ca")
    probe = MqttProbe(mosquitto, "host1")
    probe.client.tls_set(ca_certs=str(other.ca_file))
    probe.tls = True
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        probe.connect()
    probe.close()


@pytest.mark.parametrize(
    ("username", "password"),
    [("host1", "wrong"), ("nobody", "x"), (None, None)],
    ids=["bad-pw", "unknown", "anon"],
)
def test_mqtt_refuses_bad_credentials(
    mosquitto: Mosquitto, mqtt_probe: Probe, username: str | None, password: str | None
) -> None:
    probe = mqtt_probe(mosquitto, username, password if username else None, connect=False)
    if username is not None:
        probe.client.username_pw_set(username, password)
    rc = probe.connect()
    # mosquitto 2.0.11 answers 0x87 "Not authorized" (not 0x86) for a wrong password under MQTT v5.
    assert rc is not None and rc.is_failure
    assert rc.getName() in ("Not authorized", "Bad user name or password")


def test_acl_device_writes_only_its_own_subtree(mosquitto: Mosquitto, mqtt_probe: Probe) -> None:
    collector = mqtt_probe(mosquitto, "collector", client_id=_cid("coll"))
    assert [rc.value for rc in collector.subscribe("edgebench/v1/#", qos=1)] == [1]
    host1 = mqtt_probe(mosquitto, "host1", client_id=_cid("h1"))

    mark = uuid.uuid4().hex
    # Foreign host and the dead-letter topic: under MQTT v5 a denied QoS 1 publish gets PUBACK 0x87,
    # the connection stays up, and nothing is delivered.
    assert host1.publish(_topic("host2"), f"forged {mark}", qos=1).getName() == "Not authorized"
    assert host1.publish(f"edgebench/v1/{MQTT_FLEET}/deadletter", mark, qos=1).getName() == "Not authorized"
    assert host1.publish("edgebench/v1/otherfleet/host1/result", mark, qos=1).getName() == "Not authorized"
    assert host1.publish(_topic("host2"), f"forged0 {mark}", qos=0) == 0  # QoS 0: silently dropped
    assert host1.is_connected
    # Its own subtree is delivered.
    assert host1.publish(_topic("host1"), f"own {mark}", qos=1).getName() == "Success"
    got = collector.expect(1, timeout=5) + collector.drain(0.5)
    assert [(m.topic, m.payload.decode()) for m in got if mark in m.payload.decode()] == [
        (_topic("host1"), f"own {mark}")
    ]


def test_acl_device_reads_nothing(mosquitto: Mosquitto, mqtt_probe: Probe) -> None:
    host1 = mqtt_probe(mosquitto, "host1", client_id=_cid("h1"))
    # mosquitto 2.0.11 grants the SUBSCRIBE (SUBACK QoS 1) but filters every delivery by the read ACL.
    host1.subscribe("edgebench/v1/#", qos=1)
    host2 = mqtt_probe(mosquitto, "host2", client_id=_cid("h2"))
    assert not host2.publish(_topic("host2"), "secret", qos=1).is_failure
    assert not host1.publish(_topic("host1"), "own", qos=1).is_failure
    assert host1.drain(1.0) == []


def test_acl_collector_reads_all_writes_only_deadletter(mosquitto: Mosquitto, mqtt_probe: Probe) -> None:
    collector = mqtt_probe(mosquitto, "collector", client_id=_cid("coll"))
    # MQTT v5 PUBACK 0x10 "No matching subscribers" is a success code (< 0x80): nobody reads deadletter here.
    assert not collector.publish(f"edgebench/v1/{MQTT_FLEET}/deadletter", "why", qos=1).is_failure
    assert collector.publish(_topic("host1"), "forged", qos=1).getName() == "Not authorized"
    # Shared subscriptions (several collectors splitting the load) pass the read ACL.
    shared = mqtt_probe(mosquitto, "collector", client_id=_cid("coll-shared"))
    assert [rc.value for rc in shared.subscribe("$share/collectors/edgebench/v1/+/+/result", 1)] == [1]
    host2 = mqtt_probe(mosquitto, "host2", client_id=_cid("h2"))
    mark = uuid.uuid4().hex
    host2.publish(_topic("host2"), mark, qos=1)
    assert [m.payload.decode() for m in shared.expect(1)] == [mark]


def test_adding_a_device_is_a_reload_not_a_restart(mosquitto_fresh: Mosquitto, mqtt_probe: Probe) -> None:
    """SIGHUP re-reads passwd and ACL: a new device can connect, connected clients stay."""
    broker = mosquitto_fresh
    collector = mqtt_probe(broker, "collector", client_id="coll")
    collector.subscribe("edgebench/v1/#", qos=1)
    assert mqtt_probe(broker, "host3", "pw3", connect=False).connect().getName() == "Not authorized"
    broker.users["host3"] = "pw3"
    broker.devices.append((MQTT_FLEET, "host3"))
    broker.reload()
    host3 = mqtt_probe(broker, "host3", client_id="h3")
    assert not host3.publish(_topic("host3"), "hello", qos=1).is_failure
    assert [m.topic for m in collector.expect(1)] == [_topic("host3")]
    assert collector.is_connected


def test_oversized_packet_disconnects_the_publisher(mosquitto: Mosquitto, mqtt_probe: Probe) -> None:
    """max_packet_size: paho 2.2 does not enforce CONNACK's Maximum Packet Size itself; mosquitto
    answers an oversized PUBLISH with DISCONNECT 0x95 and delivers nothing."""
    collector = mqtt_probe(mosquitto, "collector", client_id=_cid("coll"))
    collector.subscribe(_topic("host1", "power"), qos=1)
    cid = _cid("h1")
    host1 = mqtt_probe(mosquitto, "host1", client_id=cid)
    host1.client.publish(_topic("host1", "power"), b"x" * (1024 * 1024 + 1), qos=1)
    # paho reads the broker's DISCONNECT 0x95 only when it arrives before the socket closes; over TLS it
    # often sees the closed socket first ("Unspecified error"). The broker's log says why, either way.
    assert host1.wait_disconnected(5).getName() in {"Packet too large", "Unspecified error"}
    assert not host1.is_connected
    deadline = time.monotonic() + 5
    while f"Client {cid} disconnected due to oversize packet" not in mosquitto.log_tail(200):
        assert time.monotonic() < deadline, mosquitto.log_tail(20)
        time.sleep(0.05)
    assert collector.drain(0.5) == []
    # Just under the limit still goes through (a new connection: the old one is gone).
    ok = mqtt_probe(mosquitto, "host1", client_id=_cid("h1"))
    assert ok.publish(_topic("host1", "power"), b"x" * (1024 * 1024 - 1024), qos=1).getName() == "Success"
    assert len(collector.expect(1)[0].payload) == 1024 * 1024 - 1024


def test_persistent_session_survives_clean_broker_restart(
    mosquitto_fresh: Mosquitto, mqtt_probe: Probe
) -> None:
    broker = mosquitto_fresh
    session = {"client_id": "collector-persistent", "clean_start": False, "session_expiry": 3600}
    collector = mqtt_probe(broker, "collector", **session)
    collector.subscribe("edgebench/v1/#", qos=1)
    collector.close()

    host1 = mqtt_probe(broker, "host1", client_id="h1")
    assert not host1.publish(_topic("host1"), "while-away", qos=1).is_failure
    assert not host1.publish(_topic("host1", "status"), "online", qos=1, retain=True).is_failure
    host1.close()

    port, tls_port = broker.port, broker.tls_port
    assert broker.stop() == 0  # SIGTERM: mosquitto writes mosquitto.db on a clean shutdown
    assert broker.persistence_file.exists() and not broker.is_running
    broker.start()
    assert (broker.port, broker.tls_port) == (port, tls_port)

    collector = mqtt_probe(broker, "collector", **session)
    assert collector.connack_flags.session_present
    got = collector.expect(2, timeout=5)
    assert sorted((m.topic, m.payload) for m in got) == [
        (_topic("host1"), b"while-away"),
        (_topic("host1", "status"), b"online"),
    ]
    # The retained status survives too (what a dashboard reads after a broker restart).
    reader = mqtt_probe(broker, "collector", client_id="reader")
    reader.subscribe(_topic("host1", "status"), qos=1)
    msg = reader.expect(1)[0]
    assert msg.retain and msg.payload == b"online"


def test_sigkill_loses_what_was_not_autosaved(mosquitto_fresh: Mosquitto, mqtt_probe: Probe) -> None:
    """A crash (SIGKILL) between autosaves loses sessions and queued messages: documents the window
    (autosave_interval) rather than promising more. The broker still restarts on the same ports."""
    broker = mosquitto_fresh
    session = {"client_id": "collector-crash", "clean_start": False, "session_expiry": 3600}
    collector = mqtt_probe(broker, "collector", **session)
    collector.subscribe("edgebench/v1/#", qos=1)
    collector.close()
    mqtt_probe(broker, "host1", client_id="h1").publish(_topic("host1"), "lost", qos=1)
    broker.kill()
    broker.start()
    collector = mqtt_probe(broker, "collector", **session)
    assert not collector.connack_flags.session_present
    assert collector.drain(0.5) == []


# ------------------------------------------------------------------------------------------------
# InfluxDB 1.x
# ------------------------------------------------------------------------------------------------


def test_influxdb_write_query_and_errors(influxdb: InfluxDB1) -> None:
    assert influxdb.version and influxdb.version.startswith("1.")
    db = influxdb.new_database()
    status, _ = influxdb.write(db, "inference,host=h1,model=m latency_ms=12.5,n=3i 1700000000000000000")
    assert status == 204
    assert influxdb.points("SELECT * FROM inference", db) == [
        {"time": 1700000000000000000, "host": "h1", "model": "m", "latency_ms": 12.5, "n": 3}
    ]
    # Same measurement + tag set + timestamp overwrites (the idempotence the collector relies on).
    assert influxdb.write(db, "inference,host=h1,model=m latency_ms=13.0,n=3i 1700000000000000000")[0] == 204
    rows = influxdb.points("SELECT latency_ms FROM inference", db)
    assert [r["latency_ms"] for r in rows] == [13.0]

    status, body = influxdb.write(db, "inference,host=h1 latency_ms= 1700000000000000000")
    assert status == 400 and b"unable to parse" in body
    assert influxdb.write("no_such_db", "m f=1i")[0] == 404
    with pytest.raises(ServerError):
        influxdb.query("SELEKT nonsense", db)


def test_influxdb_stop_start_keeps_data(influxdb_fresh: InfluxDB1) -> None:
    server = influxdb_fresh
    db = server.new_database("keep")
    assert server.write(db, "m,t=a f=1i 1700000000000000000")[0] == 204
    port = server.port
    assert server.stop() == 0 and not server.is_running
    assert not port_open(port)
    server.start()
    assert server.port == port
    assert server.points("SELECT f FROM m", db) == [{"time": 1700000000000000000, "f": 1}]


# ------------------------------------------------------------------------------------------------
# VictoriaMetrics (influxdb-client's v2 write API against a real server)
# ------------------------------------------------------------------------------------------------


def test_victoria_accepts_influxdb_client_v2_writes(victoria: VictoriaMetrics) -> None:
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    metric = f"m{uuid.uuid4().hex[:8]}"
    with InfluxDBClient(url=victoria.url, token="x", org="x") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="b", record=f"{metric},t=a f=1i 1700000000000000000"
        )
    series = victoria.wait_for_series(f'{{__name__="{metric}_f"}}', n=1, timeout=10)
    assert len(series) == 1
    assert series[0]["metric"]["t"] == "a"
    assert series[0]["values"] == [1] and series[0]["timestamps"] == [1700000000000]


def test_victoria_stop_start_keeps_data(victoria_fresh: VictoriaMetrics) -> None:
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    server = victoria_fresh
    with InfluxDBClient(url=server.url, token="x", org="x") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="b", record="keep,t=a f=2 1700000000000000000"
        )
    server.wait_for_series('{__name__="keep_f"}')
    server.stop()
    server.start()
    assert [s["values"] for s in server.export('{__name__="keep_f"}')] == [[2]]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


class _BrokenInflux(InfluxDB1):
    def _prepare(self) -> None:
        self.conf_file.write_text("this is [not toml")


def test_free_port_is_bindable_and_start_failure_reports_the_log(tmp_path: Path) -> None:
    port = free_port()
    assert 1024 < port < 65536 and not port_open(port)
    server = _BrokenInflux(tmp_path / "broken")
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="influxd exited"):
        server.start()
    assert time.monotonic() - t0 < 10 and not server.is_running


def test_servers_die_with_a_killed_test_process(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a pytest killed with SIGKILL (no teardown) still leaves no server behind."""
    code = (
        "import sys, time; from pathlib import Path; from tests.servers import InfluxDB1;"
        f"s = InfluxDB1(Path({str(tmp_path / 'orphan')!r})).start();"
        "print(s.proc.pid, s.port, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert parent.stdout is not None
    pid, port = map(int, parent.stdout.readline().split())
    assert port_open(port)
    parent.kill()
    parent.wait()

    def alive() -> bool:  # a zombie awaiting a non-reaping PID 1 counts as gone
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive() and not port_open(port)
