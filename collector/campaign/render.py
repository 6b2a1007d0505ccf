"""Terminal output of the campaign commands, designed for 80 columns (wider when there is room)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgebench.collector.campaign.commands import CampaignView

STYLE = {
    "done": "green",
    "running": "cyan",
    "queued": "blue",
    "sent": "blue",
    "failed": "red",
    "refused": "red",
    "interrupted": "yellow",
    "cancelled": "yellow",
    "offline": "dim",
}


def _bar(progress: float | None, width: int = 8) -> str:
    if progress is None:
        return ""
    filled = round(progress * width)
    return "█" * filled + "░" * (width - filled) + f" {progress:4.0%}"


def status_table(v: CampaignView) -> Table:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(v.counts().items()))
    done = sum(1 for r in v.rows if r.state == "done")
    table = Table(title=f"campaign {v.name}: {done}/{len(v.rows)} done ({counts})", title_justify="left")
    table.add_column("device", overflow="fold")
    table.add_column("class")
    table.add_column("state", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("states seen / note", overflow="fold", ratio=1)
    for r in v.rows:
        style = STYLE.get(r.state, "")
        seen = " → ".join(r.path)
        note = f"{seen}\n[dim]{escape(r.detail)}[/]" if r.detail else seen  # reasons come from devices
        table.add_row(escape(r.host), r.device_class, f"[{style}]{r.state}[/]", _bar(r.progress), note)
    return table


class StatusPrinter:
    """``--wait`` on a terminal: a live table; piped: one line per device change, then the table."""

    def __init__(self, live: bool) -> None:
        self.console = Console()
        self.live: Any = None
        self.follow = live
        self.seen: dict[str, tuple[str, float | None]] = {}
        if live and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, auto_refresh=False)
            self.live.start()

    def update(self, v: CampaignView) -> None:
        if self.live is not None:
            self.live.update(status_table(v), refresh=True)
            return
        if not self.follow:
            return
        for r in v.rows:
            now = (r.state, r.progress if r.state != "running" else round(r.progress or 0, 1))
            if self.seen.get(r.host) != now:
                self.seen[r.host] = now
                pct = f" {r.progress:.0%}" if r.state == "running" and r.progress is not None else ""
                print(f"{r.host}: {r.state}{pct}", flush=True)

    def close(self, v: CampaignView) -> None:
        if self.live is not None:
            self.live.update(status_table(v), refresh=True)
            self.live.stop()
        else:
            self.console.print(status_table(v))


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _config_cell(config: str) -> str:
    """The model on its own line (names are never cut: they are what one types), the rest below."""
    model, _, rest = config.partition(" ")
    return escape(model) + (f"\n{escape(rest)}" if rest else "")


REPORT_COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("p50/p90 ms", "p50_ms", lambda r: f"{_num(r.p50_ms, '.1f')}/{_num(r.p90_ms, '.1f')}"),
    ("RTF", "rtf", lambda r: _num(r.rtf, ".3f")),
    ("tok/s", "tokens_per_s", lambda r: _num(r.tokens_per_s, ".0f")),
    ("WER", "wer", lambda r: "-" if r.wer is None else f"{r.wer:.1%}"),
    ("J/utt", "j_per_utt", lambda r: _num(r.j_per_utt, ".2f")),
    ("MB model/peak", "peak_mb", lambda r: f"{_num(r.share_mb, '.0f')}/{_num(r.peak_mb, '.0f')}"),
)
"""Figure columns: (header, the row's field, cell). A column no row has a figure for is left out."""


def _count(verdicts: list[Any], kind: str) -> str:
    n = sum(v.verdict == kind for v in verdicts)
    return f"{n} {kind}{'' if n == 1 else 's'}"


def print_report(name, rows, verdicts, baseline, alpha: float, min_effect: float) -> None:  # type: ignore[no-untyped-def]
    console = Console()
    table = Table(title=f"campaign {name}: {len(rows)} results", title_justify="left")
    longest_model = max((len(r.config.partition(" ")[0]) for r in rows), default=10)
    table.add_column("device", overflow="fold")
    table.add_column("configuration", overflow="fold", min_width=longest_model, ratio=1)
    shown = [c for c in REPORT_COLUMNS if any(getattr(r, c[1]) is not None for r in rows)]
    for header, _, _ in shown:
        table.add_column(header, justify="right", no_wrap=True)
    for r in rows:
        device = f"{escape(r.host)}\n[dim]{r.device_class}{' EMULATED' if r.emulated else ''}[/]"
        table.add_row(device, _config_cell(r.config), *(cell(r) for _, _, cell in shown))
    console.print(table)
    if any(r.emulated for r in rows):
        console.print("[yellow]EMULATED devices' figures are not performance figures of real hardware.[/]")
    if verdicts is None:
        return
    flagged = [v for v in verdicts if v.verdict in ("regression", "improvement")]
    vt = Table(
        title=f"against {baseline}: {_count(verdicts, 'regression')}, {_count(verdicts, 'improvement')} "
        f"of {len(verdicts)} configurations",
        title_justify="left",
    )
    for col in ("verdict", "device", "configuration", "median ms", "change", "p (Holm)"):
        vt.add_column(col, overflow="fold", no_wrap=col in ("median ms", "change"))
    from edgebench.collector.campaign.report import KEY_TAGS, _config_label

    for v in sorted(verdicts, key=lambda v: (v.verdict not in ("regression", "improvement"), v.key)):
        tags = dict(zip(KEY_TAGS, v.key, strict=True))
        style = {"regression": "red", "improvement": "green"}.get(v.verdict, "dim")
        vt.add_row(
            f"[{style}]{v.verdict}[/]",
            escape(tags["host"]),
            escape(_config_label({k: t for k, t in tags.items() if t})),
            f"{v.baseline_median_s * 1e3:.1f}→{v.current_median_s * 1e3:.1f}",
            f"{v.ratio - 1:+.0%}",
            "-" if v.p_adjusted is None else f"{v.p_adjusted:.1g}",
        )
    console.print(vt)
    console.print(
        f"[dim]Mann–Whitney U (two-sided) on per-iteration latencies, Holm-corrected; flagged when "
        f"p < {alpha:g} and the median moved by at least {min_effect:.0%}.[/]",
    )
    if not flagged:
        console.print("no regression or improvement found")
    sys.stdout.flush()
