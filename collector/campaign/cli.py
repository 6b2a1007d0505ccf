"""``edgebench-collector campaign start|status|cancel|report``: the controller's commands.

They live on the collector's entry point because the controller needs what the collector's config
already holds: the broker (with TLS) and the database the results land in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Fleet campaigns: one benchmark on many devices now, its progress, its report.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="collector.toml ([mqtt], [controller], [influx])."),
]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Campaign name (letters, digits, . _ -).")]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def start(
    ctx: typer.Context,
    name: NameArg,
    fleet: Annotated[str | None, typer.Option(help="Only devices of this fleet.")] = None,
    device_class: Annotated[
        str | None, typer.Option("--device-class", help="Only these classes, e.g. rpi,jetson.")
    ] = None,
    hosts: Annotated[str | None, typer.Option(help="Only these hosts (comma list).")] = None,
    add: Annotated[bool, typer.Option("--add", help="Add devices to an existing campaign.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Send one job per selected device. The benchmark is `edgebench-agent run`'s options after `--`:

    edgebench-collector campaign start nightly --device-class rpi -- --model whisper-tiny.en
    --runtime ctranslate2 --precision int8 --scenario transcribe"""
    from edgebench.collector.campaign.commands import spec_from_run_args
    from edgebench.collector.campaign.commands import start as start_campaign
    from edgebench.collector.config import load_config

    spec = spec_from_run_args(ctx.args)
    sent = start_campaign(load_config(config), name, spec, fleet, device_class, hosts, add, echo=typer.echo)
    typer.echo(f"campaign {name}: {len(sent)} jobs sent; `edgebench-collector campaign status {name}`")


@app.command()
def status(
    name: NameArg,
    wait: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Follow until finished (or this long).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Per-device state with progress. Exit 0: all done; 1: finished, some failed / refused /
    interrupted / cancelled; 3: still running (or waiting for devices)."""
    from edgebench.collector.campaign.commands import status as campaign_status
    from edgebench.collector.campaign.commands import view_json
    from edgebench.collector.campaign.render import StatusPrinter

    if json_out:
        final = campaign_status(load(config), name, wait, lambda v: None)
        typer.echo(view_json(final))
        raise typer.Exit(final.exit_code)
    printer = StatusPrinter(live=wait is not None)
    final = campaign_status(load(config), name, wait, printer.update)
    printer.close(final)
    raise typer.Exit(final.exit_code)


@app.command()
def cancel(
    name: NameArg,
    hosts: Annotated[str | None, typer.Option(help="Only these hosts' jobs (comma list).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Cancel the campaign's jobs: queued ones are dropped, a running one is stopped."""
    from edgebench.collector.campaign.commands import cancel as cancel_campaign

    n = cancel_campaign(load(config), name, hosts, echo=typer.echo)
    typer.echo(f"campaign {name}: {n} cancels sent")


@app.command()
def report(
    name: NameArg,
    baseline: Annotated[
        str | None, typer.Option(metavar="OTHER", help="Regression check against this campaign.")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level after Holm correction.")] = 0.01,
    min_effect: Annotated[float, typer.Option(help="Smallest median change flagged (0.10 = 10 %).")] = 0.10,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    plots: Annotated[Path | None, typer.Option(metavar="DIR", help="Also write a PNG plot here.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Fleet comparison of a campaign from InfluxDB; with --baseline, regressions and improvements
    (written to InfluxDB too, for the Campaigns dashboard). Exit 1 when a regression is found."""
    from edgebench.agent.errors import EdgebenchError
    from edgebench.collector.campaign import report as rep
    from edgebench.collector.campaign.render import print_report

    cfg = load(config)
    rows = rep.rows(cfg, name)
    if not rows:
        raise EdgebenchError(f"campaign {name} has no results in InfluxDB (yet)")
    verdicts = None
    if baseline:
        verdicts = rep.regression(cfg, name, baseline, alpha, min_effect)
        rep.write_verdicts(cfg, name, baseline, verdicts, max(r.time_ms for r in rows) * 1_000_000)
    if json_out:
        typer.echo(rep.to_json(name, rows, verdicts, baseline))
    else:
        print_report(name, rows, verdicts, baseline, alpha, min_effect)
    if plots:
        typer.echo(f"plot: {rep.plot(rows, name, plots)}", err=json_out)
    raise typer.Exit(1 if verdicts and any(v.verdict == "regression" for v in verdicts) else 0)


def load(config: Path | None):  # type: ignore[no-untyped-def]
    from edgebench.collector.config import load_config

    return load_config(config)
