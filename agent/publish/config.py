"""Agent configuration for streaming results: where the broker is, who this host is, where the spool lives.

Precedence, highest first: command-line flags (``--broker``, ``--fleet``), environment variables
(``EDGEBENCH_MQTT_HOST``, ``_PORT``, ``_USERNAME``, ``_PASSWORD``, ``_TLS_CA``, ``EDGEBENCH_FLEET``,
``EDGEBENCH_HOST``), the TOML file (``--config PATH``, else ``/etc/edgebench/agent.toml`` when it exists),
then defaults. No ``[mqtt] host`` anywhere means publishing is off and the agent behaves exactly as without
this module (local store only).

The configured ``[agent] host`` is written into every result document and into the topic. The broker's ACL
lets a user publish only under its own host (username = host by convention), and the collector rejects a
document whose host/fleet differ from its topic — so ``host`` must match the MQTT username's ACL entry.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from edgebench.agent.errors import EdgebenchError, require

DEFAULT_CONFIG = Path("/etc/edgebench/agent.toml")
TOPIC_PREFIX = "edgebench/v1"


IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Fleet and host names: letters, digits, '.', '_', '-' (at most 64, starting with a letter or digit).

They become MQTT topic levels, the client id, the Last Will topic, the broker's ACL entries (line-based:
``deploy/mosquitto/make_acl.py`` applies the same rule) and InfluxDB tags. A wildcard or separator would
publish somewhere else; a control character makes the broker close the connection as a protocol error,
which looks like "broker unreachable" and would leave a result spooled under a topic nobody can accept."""


def identifier_problem(value: str) -> str | None:
    """Why ``value`` cannot be a fleet or host name (None when it can)."""
    if IDENTIFIER.fullmatch(value):
        return None
    shown = ascii(value) if not value.isprintable() else repr(value)
    return f"{shown} is not a valid name: use 1-64 letters, digits, '.', '_' or '-' (first a letter or digit)"


class _Section(BaseModel):
    """Unknown keys are errors: a typo such as ``passwrd`` must not silently disable authentication."""

    model_config = ConfigDict(extra="forbid")


class AgentSection(_Section):
    fleet: str = "default"
    host: str | None = None
    """Default: this machine's hostname. Must match the MQTT username / ACL entry of this host."""


class MqttSection(_Section):
    host: str | None = None
    """Absent: publishing disabled."""
    port: int | None = None
    """Default 8883 with TLS, 1883 without."""
    tls: bool | None = None
    """Default: on when a CA file is given."""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    client_id: str | None = None
    keepalive: int = 30
    max_message_bytes: int = 512 * 1024
    """Results are decimated to fit (``trim.py``); the broker's own Maximum Packet Size, when it announces a
    smaller one, wins. Keep it at or below the collector's ``max_payload_bytes`` (1 MiB by default)."""
    session_expiry_s: int = 7 * 24 * 3600
    """How long the broker keeps this device's session (its unread receipts) while the device is off."""


class SpoolSection(_Section):
    path: str | None = None
    """Default: the data directory's ``spool.sqlite``."""
    max_messages: int = 10_000
    confirm: Literal["collector", "broker"] = "collector"
    """When a sent result leaves the spool: on the collector's receipt (after its database write), or on
    the broker's PUBACK (for a collector older than receipts; a broker crash can then lose results)."""
    resend_after_s: float = 600.0
    """A result the broker acknowledged but the collector has not confirmed is sent again after this."""


class DaemonSection(_Section):
    """``edgebench-agent serve``: what a job may ask of this device (``agent/daemon/``)."""

    dataset_dirs: list[str] = []
    """Folders a job's dataset (and noise recording) may come from; 'builtin' is always allowed."""
    max_job_seconds: float = 3600.0
    """A job whose worst case (configurations x max-duration) exceeds this is refused; a job still
    running after it is stopped and reported failed."""
    max_job_bytes: int = 64 * 1024
    """Larger job messages are refused unread."""
    queue_path: str | None = None
    """Default: the data directory's ``jobs.sqlite``."""
    max_queued: int = 100


class _File(_Section):
    agent: AgentSection = AgentSection()
    mqtt: MqttSection = MqttSection()
    spool: SpoolSection = SpoolSection()
    daemon: DaemonSection = DaemonSection()


class PublishConfig(BaseModel):
    """Resolved configuration: every default filled in, files checked, ready to connect."""

    fleet: str
    host: str
    broker_host: str | None
    port: int
    tls: bool
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    username: str | None
    password: str | None
    client_id: str
    keepalive: int
    max_message_bytes: int
    session_expiry_s: int
    spool_path: Path
    max_messages: int
    confirm: Literal["collector", "broker"]
    resend_after_s: float
    source: str | None
    """The TOML file read, if any (for messages)."""
    daemon: DaemonSection = DaemonSection()
    serving_class: str | None = None
    """Set by the daemon's job worker (not a file key): the daemon owns this device's liveness, so the
    worker's publisher sets no Last Will, leaves the status online when it closes, and its status
    messages say the device takes jobs (``jobs``) and its class (what ``campaign start`` selects on)."""

    @property
    def enabled(self) -> bool:
        return self.broker_host is not None

    @property
    def broker(self) -> str:
        """``host:port`` as shown to users."""
        return f"{self.broker_host}:{self.port}"

    def result_topic(self, fleet: str | None = None, host: str | None = None) -> str:
        return f"{TOPIC_PREFIX}/{fleet or self.fleet}/{host or self.host}/result"

    def status_topic(self) -> str:
        return f"{TOPIC_PREFIX}/{self.fleet}/{self.host}/status"

    def receipt_topic(self) -> str:
        from edgebench.agent.publish.receipt import receipt_topic

        return receipt_topic(TOPIC_PREFIX, self.fleet, self.host)


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser, under its PyPI name
        tomllib = require("tomli", "mqtt", "Reading the agent config on Python 3.10")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise EdgebenchError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise EdgebenchError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise EdgebenchError(f"config file {path} is not valid TOML: {exc}") from None


def _validation_message(source: str, exc: ValidationError) -> str:
    """Pydantic's multi-line report, condensed to one line naming the file and the dotted key."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: [{key}] {msg}{more}"


def _host_problem(host: str) -> str | None:
    """Why ``host`` is not a broker address (an IP address or a DNS name), or None."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    label = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
    if len(host) <= 253 and re.fullmatch(rf"{label}(\.{label})*\.?", host):
        return None
    return f"'{host}' is not a host name or IP address"


def parse_broker(value: str) -> tuple[str, int | None, bool | None]:
    """``(host, port, tls)`` from what people type: ``host``, ``host:port``, ``[v6]:port``,
    ``mqtt://host[:port]``, ``mqtts://host[:port]`` (TLS); ``tls`` is None when the form does not say.
    Anything else raises EdgebenchError before any model loads."""
    from urllib.parse import urlsplit

    usage = "use HOST, HOST:PORT, mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
    text = value.strip()
    tls: bool | None = None
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise EdgebenchError(f"--broker '{value}': unknown scheme '{scheme}://' ({usage})")
        tls = scheme in ("mqtts", "ssl")
    else:
        text = f"mqtt://{text}"
    try:
        url = urlsplit(text)
        host, port = url.hostname, url.port
    except ValueError as exc:
        raise EdgebenchError(f"--broker '{value}': {exc} ({usage})") from None
    if not host or url.path not in ("", "/") or url.query or url.fragment or url.username:
        raise EdgebenchError(f"--broker '{value}' is not a broker address ({usage})")
    problem = _host_problem(host)
    if problem:
        raise EdgebenchError(f"--broker '{value}': {problem} ({usage})")
    if port == 0:
        raise EdgebenchError(f"--broker '{value}': port 0 ({usage})")
    return host, port, tls


def _existing(path: str | None, key: str, source: str) -> str | None:
    if not path:
        return None
    if not Path(path).is_file():
        raise EdgebenchError(f"{source}: [{key}] file {path} does not exist")
    return path


def load_config(
    config_path: str | None = None,
    broker: str | None = None,
    fleet: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> PublishConfig:
    """Merge file, environment and flags into a :class:`PublishConfig`; any problem is one EdgebenchError."""
    env = os.environ if environ is None else environ
    path = Path(config_path) if config_path else (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    raw = _read_toml(path) if path else {}
    source = str(path) if path else "configuration"
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        raise EdgebenchError(_validation_message(source, exc)) from None

    a, m, s = parsed.agent, parsed.mqtt, parsed.spool
    origin = {"agent.fleet": source, "agent.host": source}
    """Where each identifier came from, for the error message (file, environment variable or flag)."""
    env_map = {
        "EDGEBENCH_MQTT_HOST": (m, "host"),
        "EDGEBENCH_MQTT_USERNAME": (m, "username"),
        "EDGEBENCH_MQTT_PASSWORD": (m, "password"),
        "EDGEBENCH_MQTT_TLS_CA": (m, "ca_file"),
        "EDGEBENCH_FLEET": (a, "fleet"),
        "EDGEBENCH_HOST": (a, "host"),
    }
    for var, (section, attr) in env_map.items():
        if env.get(var):
            setattr(section, attr, env[var])
            if section is a:
                origin[f"agent.{attr}"] = f"environment variable {var}"
    if env.get("EDGEBENCH_MQTT_PORT"):
        if not env["EDGEBENCH_MQTT_PORT"].isdigit():
            raise EdgebenchError(
                f"EDGEBENCH_MQTT_PORT must be a port number (got '{env['EDGEBENCH_MQTT_PORT']}')"
            )
        m.port = int(env["EDGEBENCH_MQTT_PORT"])
    if broker:
        m.host, port, scheme_tls = parse_broker(broker)
        m.port = port or m.port
        if scheme_tls is not None:
            m.tls = scheme_tls
    if m.host:
        problem = _host_problem(m.host)
        if problem:
            raise EdgebenchError(f"{source}: [mqtt.host] {problem}")
    if fleet:
        a.fleet = fleet
        origin["agent.fleet"] = "--fleet"
    if a.host is None:
        a.host = socket.gethostname()
        origin["agent.host"] = "this machine's hostname (set [agent] host or EDGEBENCH_HOST)"
    for key, value in (("agent.fleet", a.fleet), ("agent.host", a.host)):
        problem = identifier_problem(value)
        if problem:
            raise EdgebenchError(f"{origin[key]}: [{key}] {problem}")

    password = m.password
    if m.password_file and not password:
        pw_path = _existing(m.password_file, "mqtt.password_file", source)
        assert pw_path is not None
        try:
            password = Path(pw_path).read_text().strip()
        except OSError as exc:
            raise EdgebenchError(f"{source}: [mqtt.password_file] cannot read {pw_path}: {exc}") from None
    ca_file = _existing(m.ca_file, "mqtt.ca_file", source)
    tls = m.tls if m.tls is not None else ca_file is not None
    host = a.host
    if s.max_messages < 1:
        raise EdgebenchError(f"{source}: [spool.max_messages] must be >= 1")
    if m.max_message_bytes < 4096:
        raise EdgebenchError(f"{source}: [mqtt.max_message_bytes] must be >= 4096")
    if m.client_id is not None and not (m.client_id.isprintable() and 0 < len(m.client_id) <= 128):
        raise EdgebenchError(f"{source}: [mqtt.client_id] {m.client_id!a}: use 1-128 printable characters")
    from edgebench.agent.paths import data_dir

    return PublishConfig(
        fleet=a.fleet,
        host=host,
        broker_host=m.host or None,
        port=m.port or (8883 if tls else 1883),
        tls=tls,
        ca_file=ca_file,
        cert_file=_existing(m.cert_file, "mqtt.cert_file", source),
        key_file=_existing(m.key_file, "mqtt.key_file", source),
        username=m.username or None,
        password=password,
        client_id=m.client_id or f"edgebench-agent-{host}",
        keepalive=m.keepalive,
        max_message_bytes=m.max_message_bytes,
        session_expiry_s=m.session_expiry_s,
        spool_path=Path(s.path) if s.path else data_dir() / "spool.sqlite",
        max_messages=s.max_messages,
        confirm=s.confirm,
        resend_after_s=s.resend_after_s,
        source=str(path) if path else None,
        daemon=parsed.daemon,
    )
