"""``edgebench-collector``: run the MQTT → InfluxDB collector, or check its surroundings.

Only typer is imported at start-up (paho and influxdb-client load inside the commands) so ``--help``
is instant; user errors are one line on stderr and a non-zero exit, as in ``edgebench-agent``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from edgebench.agent.errors import EdgebenchError, run_cli
from edgebench.collector.campaign.cli import app as campaign_app
from edgebench.collector.grafana.cli import app as grafana_app

PROG = "edgebench-collector"
app = typer.Typer(
    name=PROG,
    help="Subscribe to edgebench result documents over MQTT and write them to InfluxDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(grafana_app, name="grafana")
app.add_typer(campaign_app, name="campaign")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="collector.toml (EDGEBENCH_COLLECTOR_<SECTION>_<KEY> overrides)."),
]


def _sink_with_retry(cfg, stop: list[bool]):  # type: ignore[no-untyped-def]
    """Detect the server version and build the sink, waiting (with back-off) while InfluxDB is down.

    A collector started before its database (boot order, container restarts) must wait, not exit.
    """
    from edgebench.collector.logs import log
    from edgebench.collector.sinks.base import SinkError
    from edgebench.collector.sinks.detect import make_sink, ping
    from edgebench.collector.sinks.influx_v1 import InfluxV1Sink

    delay = cfg.influx.retry_initial_s
    while not stop[0]:
        try:
            info = ping(cfg.influx.url, cfg.influx.timeout_s) if cfg.influx.version == "auto" else None
            sink = make_sink(cfg.influx, info)
            if isinstance(sink, InfluxV1Sink):
                sink.ensure_database()
            log(
                "sink_ready",
                kind=sink.kind,
                url=cfg.influx.url,
                server_version=info.version if info else None,
                configured_version=cfg.influx.version,
            )
            return sink
        except SinkError as exc:
            log("sink_not_ready", "warning", error=str(exc), retry_in_s=delay)
            time.sleep(delay)
            delay = min(delay * 2, cfg.influx.retry_max_s)
    return None


@app.command()
def run(config: ConfigOpt = None) -> None:
    """Run until SIGTERM/SIGINT: validate, write, ack; rejects go to edgebench/v1/{fleet}/deadletter."""
    from edgebench.collector.config import load_config
    from edgebench.collector.consumer import Collector
    from edgebench.collector.logs import log, redact

    if config is None and not any(k.startswith("EDGEBENCH_COLLECTOR_") for k in os.environ):
        raise EdgebenchError(
            "no configuration: pass --config collector.toml (the playbook writes "
            "/etc/edgebench/collector.toml) or set EDGEBENCH_COLLECTOR_<SECTION>_<KEY> variables; "
            "without either it would wait forever for a broker on 127.0.0.1:1883"
        )
    cfg = load_config(config)
    log("config", **redact(cfg.model_dump(mode="json")))
    stop = [False]
    collector: list[Collector] = []

    def on_signal(signum: int, frame: object) -> None:
        stop[0] = True
        log("signal", signum=signum)
        if collector:
            collector[0].stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sink = _sink_with_retry(cfg, stop)
    if sink is None:
        return
    c = Collector(cfg, sink)
    collector.append(c)
    if stop[0]:
        c.stop()
    c.run()


@app.command()
def status(config: ConfigOpt = None) -> None:
    """Broker reachable? Database reachable and which version? Dead letters and last write (state file)."""
    from edgebench.collector.config import load_config
    from edgebench.collector.sinks.base import SinkError
    from edgebench.collector.sinks.detect import ping
    from edgebench.collector.stats import read_stats

    cfg = load_config(config)
    ok = True
    broker = _probe_broker(cfg)
    ok &= broker.startswith("ok")
    typer.echo(f"broker:      {cfg.mqtt.host}:{cfg.mqtt.port} {broker}")
    try:
        info = ping(cfg.influx.url, cfg.influx.timeout_s)
        api = info.api if cfg.influx.version == "auto" else cfg.influx.version
        typer.echo(
            f"database:    {cfg.influx.url} ok (X-Influxdb-Version: {info.version or 'none'}; "
            f"write path v{api})"
        )
    except SinkError as exc:
        ok = False
        typer.echo(f"database:    {cfg.influx.url} UNREACHABLE ({exc})")
    stats = read_stats(cfg.state_dir()) or {}
    by = stats.get("deadletters_by_reason") or {}
    detail = ", ".join(f"{k}={v}" for k, v in sorted(by.items()))
    typer.echo(f"deadletters: {stats.get('deadletters_total', 0)}" + (f" ({detail})" if detail else ""))
    typer.echo(
        f"written:     {stats.get('documents_written_total', 0)} documents, "
        f"{stats.get('points_written_total', 0)} points"
    )
    last = stats.get("last_write_ns")
    typer.echo("last write:  " + (f"{(time.time_ns() - last) / 1e9:.1f} s ago" if last else "never"))
    typer.echo(f"backlog:     {stats.get('pending', 0)} in process at the last write; at the broker unknown")
    typer.echo("             (mosquitto does not expose per-session queues)")
    unknown = stats.get("unknown_fields") or {}
    if unknown:
        names = ", ".join(sorted(unknown)[:5]) + (", ..." if len(unknown) > 5 else "")
        typer.echo(
            f"newer agents: {stats.get('documents_with_unknown_fields_total', 0)} documents with fields "
            f"this collector ignored:"
        )
        typer.echo(f"             {names}")
    devices = stats.get("devices") or {}
    waiting = {k: d for k, d in devices.items() if d.get("unconfirmed") or d.get("refused")}
    typer.echo(
        f"devices:     {len(devices)} reported a status; "
        + (f"{len(waiting)} with results not yet stored:" if waiting else "all their results are stored")
    )
    for key, d in sorted(waiting.items(), key=lambda kv: -(kv[1].get("unconfirmed") or 0))[:20]:
        typer.echo(
            f"  {key:<30} {d.get('unconfirmed') or 0:>6} unconfirmed {d.get('refused') or 0:>5} refused "
            f"({d.get('state')})"
        )
    typer.echo(f"state file:  {cfg.state_dir()}")
    if not ok:
        raise typer.Exit(1)


def _probe_broker(cfg) -> str:  # type: ignore[no-untyped-def]
    """Connect with a throw-away client id (never the collector's: that would steal its session)."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edgebench.collector.config import apply_auth

    m = cfg.mqtt
    result: list[str] = []
    done = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    apply_auth(client, m)

    def on_connect(c, u, flags, rc, props):  # type: ignore[no-untyped-def]
        result.append("ok" if not rc.is_failure else f"REFUSED ({rc})")
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(m.host, m.port, keepalive=10)
    except OSError as exc:
        return f"UNREACHABLE ({exc})"
    client.loop_start()
    done.wait(5)
    client.disconnect()
    client.loop_stop()
    return result[0] if result else "UNREACHABLE (no CONNACK within 5 s)"


def main() -> None:
    """Console-script entry point (one-line errors, see :func:`run_cli`)."""
    run_cli(app, PROG)


if __name__ == "__main__":
    main()
