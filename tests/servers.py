"""Real servers on free loopback ports for tests: mosquitto, InfluxDB 1.x and VictoriaMetrics.

Why real servers rather than fakes: what breaks in streaming is the servers' behaviour (ACL refusals,
queued QoS 1 messages surviving a broker restart, 400s on bad line protocol, write visibility delays),
which a fake would only restate. The broker is configured by the production renderers in
``deploy/mosquitto/`` so the tests prove the deployed configuration, not a test-only one.

Every server listens on 127.0.0.1 only, keeps all its files in the directory it is given, can be
stopped (SIGTERM), killed (SIGKILL) and started again on the same ports with the same data — fault
tests depend on that. Children get SIGTERM if the test process dies, so nothing outlives pytest.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_MOSQUITTO = ROOT / "deploy" / "mosquitto"
LOOPBACK = "127.0.0.1"

MOSQUITTO_BIN = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD_BIN = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
INFLUXD_BIN = shutil.which("influxd") or "/usr/bin/influxd"
VICTORIA_BIN = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class ServerError(RuntimeError):
    """A server did not start (or answered an error); the message carries its log tail."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the kernel's choice; a tiny race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load(name: str, path: Path) -> ModuleType:
    """Import a deploy/ script by path: deploy/ is not a package, and the scripts must stay standalone."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mosquitto_render = _load("edgebench_deploy_mosquitto_render", DEPLOY_MOSQUITTO / "render.py")
mosquitto_acl = _load("edgebench_deploy_mosquitto_make_acl", DEPLOY_MOSQUITTO / "make_acl.py")


try:  # loaded here, not in the child: dlopen between fork and exec can deadlock a threaded parent
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not glibc Linux: servers just lack the parent-death safety net
    _LIBC = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """preexec_fn: SIGTERM the server when the test process dies (Linux PR_SET_PDEATHSIG), so a
    killed pytest leaves no broker or database behind; SIGTERM lets mosquitto save its database."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:]) or f"(empty log {path})"


_P = TypeVar("_P", bound="_Process")


class _Process:
    """Shared subprocess lifecycle: start, wait until ready, SIGTERM/SIGKILL, restart with same args."""

    name = "server"

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = self.base_dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None  # how long the last start() waited for readiness

    # -- to override ------------------------------------------------------------------------------
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write configuration files; called before every start (idempotent)."""

    def _ports(self) -> list[int]:
        return []

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        return _tail(self.log_file, n)

    def start(self: _P, timeout: float = START_TIMEOUT) -> _P:
        """Start (or start again, same ports and data) and wait until it serves; ServerError if not."""
        if self.is_running:
            return self
        self._prepare()
        busy = [p for p in self._ports() if port_open(p)]
        if busy:  # e.g. the previous instance is still closing, or another process took the port
            deadline = time.monotonic() + 5
            while busy and time.monotonic() < deadline:
                time.sleep(0.05)
                busy = [p for p in self._ports() if port_open(p)]
            if busy:
                raise ServerError(f"{self.name}: port(s) {busy} already in use on {LOOPBACK}")
        t0 = time.monotonic()
        log = open(self.log_file, "ab")  # noqa: SIM115 - the child keeps writing to it
        try:
            self.proc = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.proc.returncode} while starting; log "
                    f"{self.log_file}:\n{self.log_tail()}"
                )
            if self._ready():
                self.start_seconds = time.monotonic() - t0
                return self
            time.sleep(0.02)
        self.kill()
        raise ServerError(
            f"{self.name} did not become ready within {timeout:.0f} s; "
            f"log {self.log_file}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (a clean shutdown: servers flush their data) and wait; SIGKILL if it hangs."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL: a crash, nothing flushed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def restart(self: _P, timeout: float = START_TIMEOUT) -> _P:
        self.stop()
        return self.start(timeout)

    def __enter__(self: _P) -> _P:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------
# TLS certificates
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    """Files made by deploy/mosquitto/make_certs.sh."""

    dir: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """(cert, key) of a client certificate made with ``--client name``."""
        return self.dir / f"client-{name}.crt", self.dir / f"client-{name}.key"


_certs_cache: dict[Path, Certs] = {}


def make_certs(out_dir: Path, hosts: tuple[str, ...] = (), clients: tuple[str, ...] = ()) -> Certs:
    """Run make_certs.sh once per directory (openssl takes ~1 s; tests share one set per session)."""
    out_dir = Path(out_dir)
    if out_dir in _certs_cache:
        return _certs_cache[out_dir]
    argv = ["bash", str(DEPLOY_MOSQUITTO / "make_certs.sh"), str(out_dir)]
    for h in hosts:
        argv += ["--host", h]
    for c in clients:
        argv += ["--client", c]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise ServerError(f"make_certs.sh failed ({r.returncode}):\n{r.stderr}")
    certs = Certs(out_dir, out_dir / "ca.crt", out_dir / "server.crt", out_dir / "server.key")
    _certs_cache[out_dir] = certs
    return certs


# ------------------------------------------------------------------------------------------------
# mosquitto
# ------------------------------------------------------------------------------------------------


class Mosquitto(_Process):
    """mosquitto 2.0 with the production config (deploy/mosquitto/render.py + make_acl.py).

    ``users`` maps username -> password; ``devices`` are the (fleet, host) pairs the ACL grants (the
    device's username is its host); the collector user is ``collector_user``. Plain listener on
    ``port``, TLS on ``tls_port`` (verify with ``ca_file``, hostname ``localhost`` or 127.0.0.1).
    Persistence lives in ``data_dir`` and survives stop()/start(); log (debug level) in ``log_file``.
    """

    name = "mosquitto"

    def __init__(
        self,
        base_dir: Path,
        users: dict[str, str],
        devices: list[tuple[str, str]],
        *,
        certs: Certs | None = None,
        collector_user: str = "collector",
        log_types: tuple[str, ...] = ("all",),
        **config_overrides: Any,
    ) -> None:
        super().__init__(base_dir)
        self.host = LOOPBACK
        self.port = free_port()
        self.tls_port = free_port()
        self.users = dict(users)
        self.devices = list(devices)
        self.collector_user = collector_user
        self.certs = certs or make_certs(self.base_dir / "certs")
        self.ca_file = self.certs.ca_file
        self.data_dir = self.base_dir / "data"
        self.conf_file = self.base_dir / "mosquitto.conf"
        self.password_file = self.base_dir / "passwd"
        self.acl_file = self.base_dir / "acl"
        self.log_types = log_types
        self.config_overrides = config_overrides

    def _ports(self) -> list[int]:
        return [self.port, self.tls_port]

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.acl_file.write_text(mosquitto_acl.render_acl(self.devices, self.collector_user))
        self.password_file.write_text("")
        for user, password in self.users.items():
            r = subprocess.run(
                [MOSQUITTO_PASSWD_BIN, "-b", str(self.password_file), user, password],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if r.returncode != 0:
                raise ServerError(f"mosquitto_passwd failed for {user!r}: {r.stderr or r.stdout}")
        conf = mosquitto_render.render_config(
            **{
                "port": self.port,
                "bind_address": LOOPBACK,
                "tls_port": self.tls_port,
                "tls_bind_address": LOOPBACK,
                "password_file": self.password_file,
                "acl_file": self.acl_file,
                "persistence_location": self.data_dir,
                "cafile": self.certs.ca_file,
                "certfile": self.certs.cert_file,
                "keyfile": self.certs.key_file,
                "log_file": self.log_file,
                # stdout goes to the same log file through the pipe when the config cannot be read
                "log_stdout": False,
                "log_types": self.log_types,
                # running as root in CI: keep root rather than chown the temporary directory
                "run_as_user": "root" if os.geteuid() == 0 else os.environ.get("USER", "mosquitto"),
                **self.config_overrides,
            }
        )
        self.conf_file.write_text(conf)

    def _argv(self) -> list[str]:
        return [MOSQUITTO_BIN, "-c", str(self.conf_file)]

    def _ready(self) -> bool:
        return port_open(self.port) and port_open(self.tls_port)

    def reload(self) -> None:
        """Re-render passwd/ACL/config from ``users``/``devices`` and SIGHUP: mosquitto re-reads the
        password and ACL files without dropping connections (how a device is added in production)."""
        if not self.is_running:
            raise ServerError("mosquitto is not running")
        self._prepare()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)  # the broker handles the signal in its main loop

    @property
    def persistence_file(self) -> Path:
        return self.data_dir / "mosquitto.db"

    def url(self, tls: bool = False) -> str:
        """mqtt://127.0.0.1:PORT or mqtts://127.0.0.1:TLS_PORT."""
        return f"mqtts://{self.host}:{self.tls_port}" if tls else f"mqtt://{self.host}:{self.port}"


# ------------------------------------------------------------------------------------------------
# InfluxDB 1.x
# ------------------------------------------------------------------------------------------------


def _http(
    method: str, url: str, data: bytes | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) without raising on HTTP errors; stdlib only (no extra test deps)."""
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class InfluxDB1(_Process):
    """influxd 1.x (1.6.7 here) without auth, every directory under ``base_dir``, HTTP on ``port``.

    ``url`` is the base URL for ``/write?db=`` and ``/query``. The RPC (backup) listener is moved to a
    free loopback port so nothing listens on 0.0.0.0:8088. Usage reporting is off.
    """

    name = "influxd"

    def __init__(self, base_dir: Path) -> None:
        super().__init__(base_dir)
        self.host = LOOPBACK
        self.port = free_port()
        self.rpc_port = free_port()
        self.data_dir = self.base_dir / "var"
        self.conf_file = self.base_dir / "influxdb.conf"
        self.url = f"http://{self.host}:{self.port}"
        self.version: str | None = None

    def _ports(self) -> list[int]:
        return [self.port, self.rpc_port]

    def _prepare(self) -> None:
        d = self.data_dir
        self.conf_file.write_text(
            f"""reporting-disabled = true
bind-address = "{LOOPBACK}:{self.rpc_port}"

[meta]
  dir = "{d / "meta"}"

[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{LOOPBACK}:{self.port}"
  auth-enabled = false
  log-enabled = true
  write-tracing = false

[logging]
  level = "info"

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
"""
        )

    def _argv(self) -> list[str]:
        return [INFLUXD_BIN, "run", "-config", str(self.conf_file)]

    def _ready(self) -> bool:
        try:
            status, headers, _ = _http("GET", f"{self.url}/ping", timeout=0.5)
        except OSError:
            return False
        if status == 204:
            self.version = headers.get("X-Influxdb-Version")
            return True
        return False

    def create_database(self, name: str) -> None:
        """CREATE DATABASE (idempotent in InfluxQL)."""
        self.query(f'CREATE DATABASE "{name}"', method="POST")

    def new_database(self, prefix: str = "test") -> str:
        """Create and return a uniquely named database (tests sharing the session server stay apart)."""
        import uuid

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.create_database(name)
        return name

    def write(self, db: str, lines: str | bytes, precision: str = "ns") -> tuple[int, bytes]:
        """POST /write?db=…; returns (status, body) without raising (tests assert on 204/400/404)."""
        body = lines.encode() if isinstance(lines, str) else lines
        q = urllib.parse.urlencode({"db": db, "precision": precision})
        status, _, resp = _http("POST", f"{self.url}/write?{q}", data=body)
        return status, resp

    def query(self, influxql: str, db: str | None = None, method: str = "GET") -> dict[str, Any]:
        """Run InfluxQL via /query and return the JSON; ServerError on HTTP or statement errors."""
        params = {"q": influxql, "epoch": "ns"}
        if db:
            params["db"] = db
        q = urllib.parse.urlencode(params)
        status, _, body = _http(method, f"{self.url}/query?{q}")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {"error": body.decode(errors="replace")}
        errors = [doc.get("error")] + [r.get("error") for r in doc.get("results", [])]
        errors = [e for e in errors if e]
        if status != 200 or errors:
            raise ServerError(f"InfluxQL {influxql!r} failed ({status}): {errors or body!r}")
        return doc

    def points(self, influxql: str, db: str) -> list[dict[str, Any]]:
        """The rows of the first statement's series, as dicts (column -> value); [] when empty."""
        out: list[dict[str, Any]] = []
        for series in self.query(influxql, db)["results"][0].get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                out.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return out


# ------------------------------------------------------------------------------------------------
# VictoriaMetrics
# ------------------------------------------------------------------------------------------------


class VictoriaMetrics(_Process):
    """victoria-metrics single node: a real server for influxdb-client's v2 write path (/api/v2/write).

    Influx line ``m,t=a f=1`` becomes the series ``m_f{t="a"}`` (the v2 bucket adds no label). Fresh
    writes stay invisible to queries for ~10 s (1.79.5, in-memory buffers) unless flushed:
    ``export`` calls ``/internal/force_flush`` first, so reads right after a write see it.
    """

    name = "victoria-metrics"

    def __init__(self, base_dir: Path) -> None:
        super().__init__(base_dir)
        self.host = LOOPBACK
        self.port = free_port()
        self.data_dir = self.base_dir / "data"
        self.url = f"http://{self.host}:{self.port}"

    def _ports(self) -> list[int]:
        return [self.port]

    def _argv(self) -> list[str]:
        return [
            VICTORIA_BIN,
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr={LOOPBACK}:{self.port}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-retentionPeriod=100y",  # tests write fixed old timestamps (2023)
            "-loggerLevel=INFO",
        ]

    def _ready(self) -> bool:
        try:
            status, _, _ = _http("GET", f"{self.url}/health", timeout=0.5)
        except OSError:
            return False
        return status == 200

    def flush(self) -> None:
        """Make everything ingested so far searchable (/internal/force_flush)."""
        status, _, body = _http("GET", f"{self.url}/internal/force_flush")
        if status != 200:
            raise ServerError(f"force_flush failed ({status}): {body[:200]!r}")

    def export(self, match: str, flush: bool = True) -> list[dict[str, Any]]:
        """/api/v1/export for a series selector, e.g. ``{__name__="m_f"}``: one dict per series
        (``metric`` labels, ``values``, ``timestamps`` in ms). ``flush`` first makes fresh writes visible."""
        if flush:
            self.flush()
        q = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, _, body = _http("GET", f"{self.url}/api/v1/export?{q}")
        if status != 200:
            raise ServerError(f"export {match!r} failed ({status}): {body[:500]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def wait_for_series(self, match: str, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll export() until at least ``n`` series match (e.g. while a sink's async batch lands)."""
        deadline = time.monotonic() + timeout
        while True:
            series = self.export(match)
            if len(series) >= n or time.monotonic() > deadline:
                if len(series) < n:
                    raise ServerError(f"{len(series)} series for {match!r} after {timeout} s (wanted {n})")
                return series
            time.sleep(0.1)


# ------------------------------------------------------------------------------------------------
# MQTT probe: a small synchronous paho-mqtt v5 client for tests
# ------------------------------------------------------------------------------------------------


class MqttProbe:
    """paho-mqtt 2.x MQTT v5 client wrapped so tests can wait on CONNACK/SUBACK/PUBACK and messages.

    Why: paho is callback-driven; tests want "connect and tell me the reason code", "publish QoS 1 and
    give me the PUBACK reason code" (the broker's ACL verdict under v5), "what arrived within 1 s".
    Messages land in ``messages`` (a Queue of paho MQTTMessage). Not for production code.
    """

    def __init__(
        self,
        broker: Mosquitto,
        username: str | None,
        password: str | None = None,
        *,
        tls: bool = False,
        client_id: str = "",
        clean_start: bool = True,
        session_expiry: int | None = None,
        manual_ack: bool = False,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.broker = broker
        self.tls = tls
        self.clean_start = clean_start
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
            reconnect_on_failure=False,
        )
        if username is not None:
            pw = password if password is not None else broker.users.get(username)
            self.client.username_pw_set(username, pw)
        if tls:
            self.client.tls_set(ca_certs=str(broker.ca_file))
        self.properties: Any = None
        if session_expiry is not None:
            self.properties = Properties(PacketTypes.CONNECT)
            self.properties.SessionExpiryInterval = session_expiry
        self.messages: queue.Queue[Any] = queue.Queue()
        self.connack: Any = None  # ReasonCode of the last CONNACK
        self.connack_flags: Any = None
        self.connack_properties: Any = None
        self.disconnect_reason: Any = None
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._acks: dict[int, Any] = {}
        self._ack_cv = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = self._on_ack
        self.client.on_publish = self._on_publish

    # callbacks (paho network thread)
    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack, self.connack_flags, self.connack_properties = reason, flags, props
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.disconnect_reason = reason
        self._disconnected.set()
        self._connected.set()  # wake a connect() waiting on a refused/closed connection

    def _on_ack(self, _c: Any, _u: Any, mid: int, reasons: Any, _props: Any) -> None:
        with self._ack_cv:
            self._acks[mid] = reasons
            self._ack_cv.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        self._on_ack(_c, _u, mid, reason, _props)

    def _wait_ack(self, mid: int, timeout: float) -> Any:
        with self._ack_cv:
            if not self._ack_cv.wait_for(lambda: mid in self._acks, timeout):
                raise TimeoutError(f"no ack for mid {mid} within {timeout} s")
            return self._acks.pop(mid)

    # API
    def connect(self, timeout: float = 5.0) -> Any:
        """Connect and wait for CONNACK (or the connection closing); return its ReasonCode (or None)."""
        self._connected.clear()
        self._disconnected.clear()
        self.connack = None
        port = self.broker.tls_port if self.tls else self.broker.port
        self.client.connect(
            self.broker.host, port, keepalive=30, clean_start=self.clean_start, properties=self.properties
        )
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"no CONNACK within {timeout} s")
        return self.connack

    @property
    def is_connected(self) -> bool:
        """From our own callbacks: paho 2.2's ``is_connected()`` stays True after a broker DISCONNECT."""
        return self.connack is not None and not self.connack.is_failure and not self._disconnected.is_set()

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> list[Any]:
        """Subscribe and return SUBACK's reason codes (granted QoS or a refusal such as 0x87)."""
        _, mid = self.client.subscribe(topic, qos)
        assert mid is not None
        return list(self._wait_ack(mid, timeout))

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> Any:
        """Publish; for QoS 1 wait for PUBACK and return its ReasonCode (v5 carries the ACL verdict)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            return info.rc
        return self._wait_ack(info.mid, timeout)

    def expect(self, n: int = 1, timeout: float = 5.0) -> list[Any]:
        """Wait for ``n`` messages; AssertionError with what did arrive if they do not."""
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"expected {n} message(s) within {timeout} s, got {[m.topic for m in got]}"
                ) from None
        return got

    def drain(self, wait: float = 1.0) -> list[Any]:
        """Everything that arrives within ``wait`` seconds (to assert non-delivery)."""
        time.sleep(wait)
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def wait_disconnected(self, timeout: float = 5.0) -> Any:
        """Wait for the connection to close; the DISCONNECT reason (or None on a plain close)."""
        if not self._disconnected.wait(timeout):
            raise TimeoutError(f"still connected after {timeout} s")
        return self.disconnect_reason

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread (safe to call twice)."""
        with contextlib.suppress(Exception):
            self.client.disconnect()
        with contextlib.suppress(Exception):
            self.client.loop_stop()
