"""Seed 000's report: for every (device, batch size, new tokens) cell, a rich table of the setups and two
bar plots, forward throughput (iterations/s) and generate throughput (tokens/s), in a folder named like
the seed's ``reports/cpu_1_10/``; plus one summary table of every setup's speedup over the baseline.

Forward results have no token count, so a forward measurement at batch b appears in every cell of batch
b, exactly as the seed shows the same forward bars under both token counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from edgebench.agent.recipes.reports.common import RecipeReport, by_label, cell_name
from edgebench.agent.report.metrics import metrics, newest_by, ratio
from edgebench.agent.report.plots import throughput_bars
from edgebench.agent.report.tables import fmt_mib, fmt_num, fmt_times
from edgebench.agent.results.schema import ResultDocument


def build(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    recipe = report.recipe
    gen = [d for d in docs if d.config.scenario == "generate"]
    fwd = [d for d in docs if d.config.scenario == "forward"]
    hosts = sorted({d.host for d in docs})
    models = sorted({d.config.model for d in docs})
    cells = sorted(
        {(d.host, d.config.model, d.config.device, d.config.batch_size, d.config.new_tokens) for d in gen}
        | {(d.host, d.config.model, d.config.device, d.config.batch_size, None) for d in fwd if not gen},
        key=lambda c: (c[0], c[1], c[2], c[3], c[4] or 0),
    )
    if not cells:
        report.not_drawn.append(("throughput tables", "no forward or generate results"))
        return
    summary_rows: list[tuple[str, dict[str, str]]] = []
    columns: list[str] = []
    labels = by_label(docs, recipe)
    for host, model, device, batch, tokens in cells:

        def here(d: ResultDocument, h=host, m=model, dev=device, b=batch) -> bool:
            return (d.host, d.config.model, d.config.device, d.config.batch_size) == (h, m, dev, b)

        in_cell = [d for d in fwd if here(d)] + [d for d in gen if here(d) and d.config.new_tokens == tokens]
        newest = newest_by(in_cell, lambda d: (d.config.label or "", d.config.scenario))
        parts = [host if len(hosts) > 1 else None, model if len(models) > 1 else None, device, batch, tokens]
        folder = cell_name(*parts)
        heading = f"{device} · batch {batch}" + (f" · {tokens} new tokens" if tokens is not None else "")
        title = f"{heading} — {model}" + (f" on {host}" if len(hosts) > 1 else "")
        base_f = newest.get((recipe.baseline, "forward")) if recipe.baseline else None
        base_g = newest.get((recipe.baseline, "generate")) if recipe.baseline else None
        table = Table(title=title, title_justify="left")
        for col, just in [
            ("setup", "left"),
            ("runtime", "left"),
            ("precision", "left"),
            ("forward it/s", "right"),
            (f"vs {recipe.baseline}", "right"),
            ("forward ms", "right"),
            ("generate tok/s", "right"),
            (f"vs {recipe.baseline} ", "right"),
            ("generate ms", "right"),
            ("peak RSS", "right"),
        ]:
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        col_f, col_g = f"{device} b{batch} forward", f"{device} b{batch} {tokens} tok generate"
        for c in (col_f, col_g):
            if c not in columns:
                columns.append(c)
        for label in labels:
            f, g = newest.get((label, "forward")), newest.get((label, "generate"))
            if f is None and g is None:
                continue
            mf, mg = (metrics(f) if f else None), (metrics(g) if g else None)
            sf = ratio(mf.throughput, metrics(base_f).throughput) if mf and base_f else None
            sg = ratio(mg.throughput, metrics(base_g).throughput) if mg and base_g else None
            any_doc = f or g
            rss = max((m.peak_rss_bytes or 0) for m in (mf, mg) if m) or None
            table.add_row(
                label,
                any_doc.config.runtime,  # type: ignore[union-attr]
                any_doc.config.precision,  # type: ignore[union-attr]
                fmt_num(mf.throughput if mf else None, ".2f"),
                fmt_times(sf),
                fmt_num(mf.latency_s if mf else None, ".1f", 1e3),
                fmt_num(mg.throughput if mg else None, ".1f"),
                fmt_times(sg),
                fmt_num(mg.latency_s if mg else None, ".1f", 1e3),
                fmt_mib(rss),
            )
            row = next((r for n, r in summary_rows if n == label), None)
            if row is None:
                row = {}
                summary_rows.append((label, row))
            if sf is not None:
                row[col_f] = fmt_times(sf)
            if sg is not None:
                row[col_g] = fmt_times(sg)
        report.table(
            f"{folder}/rich_table.svg",
            f"Setups at {heading}",
            "forward: iterations/s = forward passes / time; generate: tokens/s = batch × new tokens / time "
            "(token count forced)",
            [table],
        )
        cell_fwd = [d for d in in_cell if d.config.scenario == "forward"]
        cell_gen = [d for d in in_cell if d.config.scenario == "generate"]
        for scenario, ds in (("forward", cell_fwd), ("generate", cell_gen)):
            plot = throughput_bars(ds, scenario, axes=("label",))
            plot.title = f"{plot.title}, {heading}"
            report.plot(plot, f"{folder}/{scenario}_throughput")
    if recipe.baseline and summary_rows:
        summary = Table(title=f"Speedup over '{recipe.baseline}' (throughput ratio)", title_justify="left")
        summary.add_column("setup")
        used = [c for c in columns if any(c in r for _, r in summary_rows)]
        for c in used:
            summary.add_column(c, justify="right")
        for label, row in summary_rows:
            summary.add_row(label, *(row.get(c, "–") for c in used))
        report.table(
            "speedup_summary.svg", "Speedup summary", "throughput / baseline throughput, per cell", [summary]
        )
        _headline(report, gen, recipe.baseline)


def _headline(report: RecipeReport, gen: Sequence[ResultDocument], baseline: str) -> None:
    """The fastest generate setup per cell, and how it compares with the baseline."""
    cells: dict[tuple, list[ResultDocument]] = {}
    for d in gen:
        cells.setdefault((d.host, d.config.device, d.config.batch_size, d.config.new_tokens), []).append(d)
    for (host, device, batch, tokens), ds in sorted(cells.items(), key=lambda kv: str(kv[0])):
        best = max(ds, key=lambda d: metrics(d).throughput or 0)
        base = next((d for d in ds if d.config.label == baseline), None)
        speed = ratio(metrics(best).throughput, metrics(base).throughput) if base else None
        report.headlines.append(
            f"{host} {device} batch {batch}, {tokens} tokens: fastest generate is '{best.config.label}' at "
            f"{metrics(best).throughput:.1f} tok/s" + (f" ({speed:.2f}× {baseline})" if speed else "")
        )
