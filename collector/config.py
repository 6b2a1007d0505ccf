"""Collector configuration: one TOML file plus environment overrides.

Secrets may come from files (``password_file``, ``token_file``) or ``EDGEBENCH_COLLECTOR_*`` variables so
that the TOML checked into a deployment repo never has to contain them. Every mistake becomes one
:class:`~edgebench.agent.errors.EdgebenchError` line, never a pydantic traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgebench.agent.errors import EdgebenchError

DEFAULT_TOPIC = "edgebench/v1/+/+/result"
DEFAULT_STATUS_TOPIC = "edgebench/v1/+/+/status"
DEFAULT_JOBS_TOPIC = "edgebench/v1/+/+/jobs/#"


def _secret(value: str | None, file: Path | None, key: str) -> str | None:
    """A password given inline, or read from its file (which may not be readable: one clear line)."""
    if value is not None:
        return value
    if file is None:
        return None
    try:
        return file.read_text().strip()
    except OSError as exc:
        raise EdgebenchError(f"cannot read {key} {file}: {exc}") from exc


class _Section(BaseModel):
    """Unknown keys are errors: a typo like ``bach_lines`` must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    password_file: Path | None = None
    client_id: str = "edgebench-collector-1"
    """Fixed so the broker keeps our persistent session (and its unacked messages) across restarts."""
    session_expiry_s: int = 7 * 24 * 3600
    shared_group: str | None = None
    """When set, subscribe ``$share/{group}/{topic}`` so several collectors split the load."""
    topic: str = DEFAULT_TOPIC
    status_topic: str = DEFAULT_STATUS_TOPIC
    """Agent status messages (-> ``agent_status`` points); "" turns this off."""
    jobs_topic: str = DEFAULT_JOBS_TOPIC
    """Campaign job states from the agent daemons (-> ``campaign_job`` points); "" turns this off."""
    max_inflight: int = 1000
    """Receive maximum: unacked messages the broker may have outstanding to us (back-pressure)."""
    keepalive_s: int = 30
    deadletter_prefix: str = "edgebench/v1"
    receipts: bool = True
    """Publish a receipt per device after each write (``edgebench/v1/{fleet}/{host}/receipt``): agents
    keep a result until it is confirmed, so a broker crash cannot lose it (``agent/publish/receipt.py``)."""

    @property
    def subscription(self) -> str:
        return f"$share/{self.shared_group}/{self.topic}" if self.shared_group else self.topic

    @property
    def status_subscription(self) -> str | None:
        """Shared like the results: each status message is written by one collector of the group.
        (MQTT v5 sends no retained messages on a shared subscription: a group learns states as they
        change, or from the session queue; retained states reach only non-shared collectors.)"""
        if not self.status_topic:
            return None
        return f"$share/{self.shared_group}/{self.status_topic}" if self.shared_group else self.status_topic

    @property
    def jobs_subscription(self) -> str | None:
        if not self.jobs_topic:
            return None
        return f"$share/{self.shared_group}/{self.jobs_topic}" if self.shared_group else self.jobs_topic

    def resolved_password(self) -> str | None:
        return _secret(self.password, self.password_file, "mqtt.password_file")


class InfluxConfig(_Section):
    url: str = "http://127.0.0.1:8086"
    version: Literal["auto", "1", "2"] = "auto"
    """'auto' asks ``/ping``; '1' = POST /write?db= (InfluxDB < 1.8); '2' = /api/v2/write."""
    database: str = "edgebench"
    retention_policy: str | None = None
    org: str = "edgebench"
    bucket: str = "edgebench"
    token: str | None = Field(default=None, repr=False)
    token_file: Path | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    timeout_s: float = 10.0
    batch_lines: int = 5000
    flush_interval_s: float = 1.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0

    def resolved_token(self) -> str | None:
        return _secret(self.token, self.token_file, "influx.token_file")

    @model_validator(mode="after")
    def _positive(self) -> InfluxConfig:
        if self.batch_lines < 1 or self.flush_interval_s <= 0 or self.retry_initial_s <= 0:
            raise ValueError("batch_lines, flush_interval_s and retry_initial_s must be positive")
        return self


class LimitsConfig(_Section):
    max_payload_bytes: int = 1024 * 1024
    max_pending_bytes: int = 256 * 1024 * 1024
    """Memory for received documents waiting to be written (estimated at 4x their payload: the bytes and
    the parsed document). Beyond it a message is left unacknowledged and unread; the broker redelivers it
    once the backlog is written (the collector reconnects its persistent session to ask for it)."""
    status_clock_skew_s: float = 300.0
    """A status stamped further in the future than this is stored at its receive time instead (a device
    with a wrong clock would otherwise pin its state on the dashboards until that date)."""
    dedup_window: int = 100_000
    """Results remembered (fleet, host, run id, sequence number) to detect a reused id with other content."""


class ControllerConfig(_Section):
    """The identity ``campaign start``/``cancel`` publish jobs with: the broker lets only this user write
    job topics (``deploy/mosquitto/make_acl.py``). Broker address and TLS come from [mqtt]."""

    username: str | None = None
    """None: the [mqtt] identity (which the ACL does not let publish jobs)."""
    password: str | None = Field(default=None, repr=False)
    password_file: Path | None = None
    client_id: str = "edgebench-controller"

    def resolved_password(self) -> str | None:
        return _secret(self.password, self.password_file, "controller.password_file")


class CollectorConfig(_Section):
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    influx: InfluxConfig = Field(default_factory=InfluxConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    data_dir: Path | None = None
    """Where the dead-letter counter lives (default: the edgebench data directory / collector)."""

    def state_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        from edgebench.agent.paths import data_dir

        return data_dir() / "collector"


# Environment overrides: EDGEBENCH_COLLECTOR_<SECTION>_<KEY>, e.g. EDGEBENCH_COLLECTOR_INFLUX_TOKEN.
ENV_PREFIX = "EDGEBENCH_COLLECTOR_"


def _apply_env(raw: dict, environ: dict[str, str]) -> dict:
    sections = {
        "mqtt": MqttConfig,
        "influx": InfluxConfig,
        "limits": LimitsConfig,
        "controller": ControllerConfig,
    }
    for section, model in sections.items():
        for key in model.model_fields:
            value = environ.get(f"{ENV_PREFIX}{section}_{key}".upper())
            if value is not None:
                raw.setdefault(section, {})[key] = value
    return raw


def load_config(path: Path | None, environ: dict[str, str] | None = None) -> CollectorConfig:
    """Read ``path`` (optional: defaults + environment only) and apply environment overrides."""
    raw: dict = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise EdgebenchError(f"config file {path} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise EdgebenchError(f"config file {path} is not valid TOML: {exc}") from exc
    raw = _apply_env(raw, dict(os.environ if environ is None else environ))
    try:
        return CollectorConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise EdgebenchError(f"config {path or '(env)'}: {where}: {first['msg']}{more}") from exc


def apply_auth(client, mqtt_cfg) -> None:  # type: ignore[no-untyped-def]
    """Username/password and TLS from the [mqtt] section onto a paho client (the collector's own
    connection and the status probe must authenticate identically)."""
    if mqtt_cfg.username:
        client.username_pw_set(mqtt_cfg.username, mqtt_cfg.resolved_password())
    if mqtt_cfg.tls:
        client.tls_set(
            ca_certs=str(mqtt_cfg.ca_file) if mqtt_cfg.ca_file else None,
            certfile=str(mqtt_cfg.cert_file) if mqtt_cfg.cert_file else None,
            keyfile=str(mqtt_cfg.key_file) if mqtt_cfg.key_file else None,
        )
