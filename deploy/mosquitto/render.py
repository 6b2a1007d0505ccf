"""Render the production mosquitto.conf (mosquitto 2.0.x).

One renderer for production and tests: the tests start a real broker from exactly this text, so what is
proven there (authentication, ACLs, TLS, persistence across restarts, packet-size limit) is what runs on
the server. Only paths, ports and the user the broker runs as differ.

Usage:  python deploy/mosquitto/render.py [--port 1883] [--tls-port 8883] > /etc/mosquitto/mosquitto.conf
(replaces the Debian file: it sets persistence/log options that mosquitto refuses to see twice)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Results are JSON documents of a few KiB; 1 MiB leaves room for big per-iteration latency lists while
# refusing a runaway payload at the broker, before it reaches the collector.
MAX_PACKET_SIZE = 1024 * 1024
# Per client. A collector outage of minutes on a fleet of ~100 devices publishing a result every few
# seconds queues some 10^4 messages: 100000 is headroom without being unbounded (0 would be unlimited).
MAX_QUEUED_MESSAGES = 100_000


def render_config(
    *,
    port: int = 1883,
    tls_port: int | None = 8883,
    bind_address: str = "127.0.0.1",
    tls_bind_address: str = "",
    password_file: str | Path = "/etc/mosquitto/passwd",
    acl_file: str | Path = "/etc/mosquitto/acl",
    persistence_location: str | Path = "/var/lib/mosquitto/",
    cafile: str | Path = "/etc/mosquitto/certs/ca.crt",
    certfile: str | Path = "/etc/mosquitto/certs/server.crt",
    keyfile: str | Path = "/etc/mosquitto/certs/server.key",
    log_file: str | Path | None = "/var/log/mosquitto/mosquitto.log",
    log_stdout: bool = True,
    log_types: tuple[str, ...] = ("error", "warning", "notice", "information"),
    run_as_user: str = "mosquitto",
    max_packet_size: int = MAX_PACKET_SIZE,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    max_inflight_messages: int = 20,
    persistent_client_expiration: str = "7d",
    autosave_interval: int = 60,
    pid_file: str | Path | None = None,
) -> str:
    """Return mosquitto.conf text.

    ``port`` is the plain listener, on loopback by default (the collector on the broker's machine, dev);
    ``bind_address=""`` opens it on every interface (trusted LAN/VPN only: credentials travel in clear).
    ``tls_port=None`` leaves TLS out (a dev broker without certificates). ``run_as_user`` is the user
    a broker started as root drops to; tests running as root pass ``"root"`` instead of chowning their
    temporary directory.
    """
    if not str(persistence_location).endswith("/"):
        # the Debian default spells the directory with a trailing slash; keep that form.
        persistence_location = f"{persistence_location}/"
    lines = [
        "# edgebench MQTT broker — rendered by deploy/mosquitto/render.py (mosquitto 2.0.x). Do not edit",
        "# by hand: re-render, so production and the tests keep using the same settings.",
        "",
        "# One authentication/ACL setup for every listener (the TLS and the plain one must not differ).",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        f"user {run_as_user}",
    ]
    if pid_file:
        lines.append(f"pid_file {pid_file}")
    lines += [
        "",
        "# Persistence: retained status messages, persistent sessions and their queued QoS 1 results",
        "# survive a broker restart. The database is written on a clean shutdown (SIGTERM) and every",
        "# autosave_interval seconds, so a crash loses at most that window.",
        "persistence true",
        f"persistence_location {persistence_location}",
        f"autosave_interval {autosave_interval}",
        "",
        "# Queue rather than drop while the collector is away: per-client queue of QoS 1 messages and how",
        "# long an offline persistent session (clean session false / no expiry) is kept.",
        f"max_queued_messages {max_queued_messages}",
        "max_queued_bytes 0",
        f"max_inflight_messages {max_inflight_messages}",
        f"persistent_client_expiration {persistent_client_expiration}",
        "queue_qos0_messages false",
        "",
        "# Oversized packets are refused by the broker (MQTT v5 clients see it in CONNACK's Maximum Packet",
        "# Size; a client sending more is disconnected).",
        f"max_packet_size {max_packet_size}",
        "retain_available true",
        "",
        "# Logging",
    ]
    if log_stdout:
        lines.append("log_dest stdout")
    if log_file:
        lines.append(f"log_dest file {log_file}")
    lines += [f"log_type {t}" for t in log_types]
    lines += [
        "log_timestamp true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        "connection_messages true",
        "",
        "# Plain listener (loopback unless deliberately opened to a trusted network).",
        f"listener {port} {bind_address}".rstrip(),
        "protocol mqtt",
    ]
    if tls_port is not None:
        lines += [
            "",
            "# TLS listener: devices verify the broker with ca.crt (deploy/mosquitto/make_certs.sh).",
            f"listener {tls_port} {tls_bind_address}".rstrip(),
            "protocol mqtt",
            f"cafile {cafile}",
            f"certfile {certfile}",
            f"keyfile {keyfile}",
            "tls_version tlsv1.2",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI: print the production configuration (defaults are the Debian package's paths)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=1883)
    p.add_argument(
        "--bind-address", default="127.0.0.1", help="plain listener's address ('' = all interfaces)"
    )
    p.add_argument("--tls-port", type=int, default=8883, help="0 = no TLS listener")
    p.add_argument("--conf-dir", default="/etc/mosquitto", help="where passwd, acl and certs/ live")
    p.add_argument("--persistence-location", default="/var/lib/mosquitto/")
    p.add_argument("--log-file", default="/var/log/mosquitto/mosquitto.log", help="'' = stdout only")
    p.add_argument("--user", default="mosquitto", help="user the broker drops to when started as root")
    a = p.parse_args(argv)
    conf = Path(a.conf_dir)
    sys.stdout.write(
        render_config(
            port=a.port,
            bind_address=a.bind_address,
            tls_port=a.tls_port or None,
            password_file=conf / "passwd",
            acl_file=conf / "acl",
            cafile=conf / "certs" / "ca.crt",
            certfile=conf / "certs" / "server.crt",
            keyfile=conf / "certs" / "server.key",
            persistence_location=a.persistence_location,
            log_file=a.log_file or None,
            run_as_user=a.user,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
