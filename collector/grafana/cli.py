"""``edgebench-collector grafana build|push``: dashboards as code -> JSON files -> a running Grafana.

Only typer is imported here; the generator, grafana-client and niquests load inside the commands so
``edgebench-collector --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgebench.agent.errors import EdgebenchError

app = typer.Typer(
    name="grafana",
    help="Grafana dashboards: regenerate the JSON files, or push data source + dashboards to Grafana.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_OUT = Path("deploy/grafana/dashboards")


def render(dashboard: dict) -> str:
    """The committed form of a dashboard: stable key order, 2-space indent, trailing newline."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


@app.command()
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the *.json files.")] = DEFAULT_OUT,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when a file differs from the code (CI).")
    ] = False,
) -> None:
    """Regenerate deploy/grafana/dashboards/*.json from collector/grafana/dashboards.py."""
    from edgebench.collector.grafana.dashboards import build_all

    dashboards = build_all()
    stale = []
    if not check:
        out.mkdir(parents=True, exist_ok=True)
    for stem, dash in dashboards.items():
        path = out / f"{stem}.json"
        text = render(dash)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and stale:
        raise EdgebenchError(
            f"{len(stale)} dashboard file(s) differ from the code ({', '.join(p.name for p in stale)}): "
            "run `edgebench-collector grafana build`"
        )
    verb = "would change" if check else "written"
    same = len(dashboards) - len(stale)
    typer.echo(f"{len(dashboards)} dashboards in {out}: {len(stale)} {verb}, {same} unchanged")


@app.command()
def push(
    url: Annotated[
        str, typer.Option("--url", envvar="GRAFANA_URL", help="Grafana base URL, e.g. http://grafana:3000.")
    ],
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="GRAFANA_TOKEN", help="Service-account token (or user:pw in --url)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="collector.toml: InfluxDB URL, database and credentials."),
    ] = None,
    influx_url: Annotated[
        str | None, typer.Option(help="InfluxDB URL as Grafana's server reaches it (default: the config's).")
    ] = None,
    database: Annotated[str | None, typer.Option(help="InfluxDB database (default: the config's).")] = None,
    no_datasource: Annotated[
        bool, typer.Option("--no-datasource", help="Only dashboards (the data source is provisioned).")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP request.")] = 10.0,
) -> None:
    """Create or update the edgebench folder, InfluxQL data source and dashboards (idempotent)."""
    from edgebench.collector.grafana.dashboards import build_all
    from edgebench.collector.grafana.push import datasource_body
    from edgebench.collector.grafana.push import push as do_push

    datasource = None
    if not no_datasource:
        from edgebench.collector.config import load_config

        influx = load_config(config).influx
        datasource = datasource_body(
            influx_url or influx.url,
            database or influx.database,
            username=influx.username,
            password=influx.password,
            token=influx.resolved_token(),
        )
    report = do_push(url, token, build_all(), datasource, timeout=timeout)
    for line in report.lines():
        typer.echo(line)


@app.command()
def check(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="collector.toml: InfluxDB URL, database, credentials."),
    ] = None,
    influx_url: Annotated[str | None, typer.Option(help="InfluxDB URL (default: the config's).")] = None,
    database: Annotated[str | None, typer.Option(help="InfluxDB database (default: the config's).")] = None,
    time_from: Annotated[
        str, typer.Option("--from", help="Time range start, Grafana style: now-30d.")
    ] = "now-30d",
    strict: Annotated[
        bool, typer.Option(help="Exit 1 when a panel has no data, not only on errors.")
    ] = False,
) -> None:
    """Run every dashboard's variable and panel queries against InfluxDB, as Grafana would, and report
    panels without data (e.g. energy panels on a fleet without power sensors) or with broken queries."""
    import time

    from edgebench.collector.config import load_config
    from edgebench.collector.grafana.dashboards import build_all
    from edgebench.collector.grafana.verify import verify_dashboard
    from edgebench.collector.influxql import influxql_runner

    influx = load_config(config).influx
    url = influx_url or influx.url
    run = influxql_runner(
        url,
        database or influx.database,
        username=influx.username,
        password=influx.password,
        token=influx.resolved_token(),
        timeout=influx.timeout_s,
    )
    now_ms = int(time.time() * 1000)
    errors = empty = total = 0
    for dash in build_all().values():
        result = verify_dashboard(dash, run, time_from=time_from, now_ms=now_ms)
        for p in result.problems:
            typer.echo(f"WARN   {dash['uid']}: {p}")
        for q in result.queries:
            total += 1
            missing = [p for p in q.problems if p == "no data" or p.endswith("null everywhere")]
            if not q.problems:
                typer.echo(f"ok     {q.where}: {q.series} series")
            elif missing == q.problems:  # the database lacks that data (yet): not the dashboard's fault
                empty += 1
                typer.echo(f"EMPTY  {q.where}: {'; '.join(q.problems)}")
            else:
                errors += 1
                typer.echo(f"ERROR  {q.where}: {'; '.join(q.problems)}")
    typer.echo(f"{total} queries: {total - errors - empty} with data, {empty} empty, {errors} with errors")
    if errors or (strict and empty):
        raise typer.Exit(1)
