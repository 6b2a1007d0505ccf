"""``edgebench-agent power probe`` and ``power watch``."""

from __future__ import annotations

import json
import sys
import time


def probe(json_out: bool) -> None:
    """Every source, whether it works here, and why not when it does not."""
    from dataclasses import asdict

    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edgebench.agent.power.detect import probe_all

    probes = probe_all()
    if json_out:
        sys.stdout.write(json.dumps([asdict(p) for p in probes], indent=2) + "\n")
        return
    t = Table(title="power sources", title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for col in ("source", "here", "kind", "rails", "period", "watts now", "details"):
        t.add_column(col, overflow="fold")
    for p in probes:
        t.add_row(
            p.name,
            "[green]yes[/]" if p.available else "[red]no[/]",
            p.kind or "–",
            ", ".join(p.rails) or "–",
            f"{p.update_period_s:g} s" if p.update_period_s else "–",
            f"{p.watts:.2f} W" if p.watts is not None else "–",
            escape(p.detail) + ("" if p.auto else " [dim](never auto-selected)[/]"),
        )
    out = Console()
    out.print(t)
    chosen = next((p for p in probes if p.available and p.auto), None)
    out.print(
        f"--power-source auto uses: [bold]{chosen.name}[/]"
        if chosen
        else "--power-source auto finds nothing here: energy fields stay empty, with the reason, in results"
    )


def watch(spec: str, rate_hz: float | None, seconds: float | None) -> None:
    """Live watts, total and per rail, from the sampler the runs use."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from edgebench.agent.errors import EdgebenchError
    from edgebench.agent.power.detect import open_source
    from edgebench.agent.power.meter import choose_period
    from edgebench.agent.power.sampler import PowerSampler

    if rate_hz is not None and not 0 < rate_hz <= 1000:
        raise EdgebenchError(f"--rate must be within (0, 1000] Hz (got {rate_hz:g})")
    if seconds is not None and seconds <= 0:
        raise EdgebenchError(f"--seconds must be > 0 (got {seconds:g})")
    source, reason = open_source(spec)
    if source is None:
        raise EdgebenchError(reason or "no power source")
    sampler = PowerSampler(source, choose_period(source, rate_hz))
    console = Console()
    start = time.monotonic()

    def render() -> Table:
        now = time.monotonic()
        t = Table(title=f"{source.describe()}", title_justify="left", header_style="bold")
        t.add_column("rail")
        t.add_column("watts", justify="right")
        avg_1s = sampler.energy(now - 1.0, now) if now - start > 1.0 else None
        latest = sampler.watts[-1] if sampler.watts else None
        t.add_row("total (latest)", f"{latest:.3f}" if latest is not None else "–")
        if avg_1s is not None:
            t.add_row("total (mean of last 1 s)", f"{avg_1s:.3f}")
        for name, w in sorted((sampler.last.rails if sampler.last else {}).items()):
            t.add_row(name, f"{w:.3f}")
        t.caption = (
            f"{now - start:.1f} s · {len(sampler.times)} samples every {sampler.period_s:g} s · Ctrl-C stops"
        )
        return t

    sampler.start()
    try:
        with Live(render(), console=console, refresh_per_second=4, transient=False) as live:
            while seconds is None or time.monotonic() - start < seconds:
                time.sleep(0.25)
                if sampler.error is not None:
                    raise EdgebenchError(f"{source.name} stopped reading: {sampler.error}")
                live.update(render())
    finally:
        sampler.stop()
        source.close()
    total = sampler.energy(start, time.monotonic())
    console.print(f"{total:.3f} J over {time.monotonic() - start:.1f} s ({source.name}, {source.kind})")
