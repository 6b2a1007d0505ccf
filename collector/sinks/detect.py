"""Which wire path a server needs, from ``GET /ping``'s ``X-Influxdb-Version`` header.

- ``1.x`` below 1.8 → v1 (``/write?db=``): those servers have no ``/api/v2/write``.
- ``1.8+``, ``v2.x`` (2.x prefixes a 'v'), ``3.x`` → v2.
- no header (VictoriaMetrics answers ``/ping`` with 204 and only ``X-Server-Hostname``) → v2, which
  VictoriaMetrics implements.
The configuration's ``version = "1"|"2"`` overrides detection (e.g. behind a proxy that strips headers).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from edgebench.collector.sinks.base import SinkUnavailable


@dataclass(frozen=True)
class ServerInfo:
    api: str
    """'1' or '2': the write path to use."""
    version: str | None
    """The header's value, None when absent."""
    product: str
    """'influxdb' or 'unknown (no X-Influxdb-Version; VictoriaMetrics?)'."""


def api_for_version(version: str | None) -> str:
    """'1' for InfluxDB < 1.8, else '2' (including no/unknown version)."""
    if not version:
        return "2"
    m = re.match(r"v?(\d+)\.(\d+)", version.strip())
    if not m:
        return "2"
    major, minor = int(m.group(1)), int(m.group(2))
    return "1" if major == 1 and minor < 8 else "2"


def ping(url: str, timeout_s: float = 5.0) -> ServerInfo:
    """Ask the server; :class:`SinkUnavailable` when it does not answer."""
    req = urllib.request.Request(f"{url.rstrip('/')}/ping", method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        headers = exc.headers  # 401 from an auth-enabled server still carries the version
    except OSError as exc:
        raise SinkUnavailable(f"GET {url}/ping: {exc}") from exc
    version = headers.get("X-Influxdb-Version")
    server = headers.get("X-Server-Hostname")
    if version:
        product = "influxdb"
    elif server is not None:
        product = "victoriametrics"
    else:
        product = "unknown"
    return ServerInfo(api_for_version(version), version, product)


def make_sink(cfg, info: ServerInfo | None = None):
    """Build the sink for an :class:`InfluxConfig` (``version`` "auto" pings the server first)."""
    from edgebench.collector.sinks.influx_v1 import InfluxV1Sink
    from edgebench.collector.sinks.influx_v2 import InfluxV2Sink

    api = cfg.version
    if api == "auto":
        api = (info or ping(cfg.url, cfg.timeout_s)).api
    if api == "1":
        return InfluxV1Sink(
            cfg.url,
            cfg.database,
            retention_policy=cfg.retention_policy,
            username=cfg.username,
            password=cfg.password,
            timeout_s=cfg.timeout_s,
        )
    token = cfg.resolved_token()
    if token is None and cfg.username:  # InfluxDB 1.8+ v2 compatibility: "user:password"
        token = f"{cfg.username}:{cfg.password or ''}"
    return InfluxV2Sink(cfg.url, cfg.org, cfg.bucket, token, timeout_s=cfg.timeout_s)
