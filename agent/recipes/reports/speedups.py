"""Speedup reports over :func:`edgebench.agent.report.compare.compare`, the engine behind ``compare``.

- ``variant-speedups`` (seed 003, the transformers benchmarks): every setup against the baseline step
  (torch eager) in the same workload — TorchScript, ``torch.compile``, AMP, … — with the per-setup
  geometric mean, and the throughput bars.
- ``device-speedup`` (seed 004, TorchBench's tokens benchmark): tokens/s per device and the speedup of
  every accelerator over the CPU ("Speedup: 2.70x (CUDA vs others)"), plus how throughput scales with
  the batch size, which is the other lever that seed points at.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.recipes.reports.common import RecipeReport
from edgebench.agent.report.compare import Baseline, compare
from edgebench.agent.report.metrics import metrics, newest_by, ratio, workload_label
from edgebench.agent.report.plots import throughput_bars, tokens_per_s_vs
from edgebench.agent.report.tables import comparison_table, fmt_num, fmt_times, summary_table
from edgebench.agent.results.schema import ResultDocument


def _comparison(report: RecipeReport, docs: Sequence[ResultDocument], baseline: Baseline, stem: str) -> bool:
    """The speedup and summary tables against ``baseline``; False (with a note) when nothing matches."""
    try:
        cmp = compare(docs, baseline)
    except EdgebenchError as exc:
        report.not_drawn.append((f"speedup vs {baseline}", str(exc)))
        return False
    report.table(
        f"{stem}.svg",
        f"Speedup vs {baseline}",
        "speedup = baseline latency / latency, same model and workload; summary: geometric mean",
        [comparison_table(cmp), summary_table(cmp)],
    )
    for s in cmp.summary():
        if s.geomean_speedup is not None:
            report.headlines.append(
                f"{s.value} vs {baseline.value}: {s.geomean_speedup:.2f}× (geomean of {s.configurations} "
                f"configurations, {s.min_speedup:.2f}–{s.max_speedup:.2f}×)"
            )
    return True


def build_variants(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    baseline = report.recipe.baseline
    if baseline is None:
        raise EdgebenchError(f"recipe {report.recipe.name}: variant-speedups needs [report] baseline")
    _comparison(report, docs, Baseline("label", baseline), "speedup_table")
    for scenario in ("forward", "generate"):
        report.plot(throughput_bars(docs, scenario, axes=("model", "label")))


def build_devices(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    gen = [d for d in docs if d.config.scenario in ("generate", "forward")]
    _device_summary(report, gen)
    _comparison(report, gen, Baseline("device", "cpu"), "device_speedup_table")
    _batch_scaling(report, gen)
    report.plot(
        throughput_bars(
            [d for d in gen if d.config.scenario == "generate"], "generate", axes=("model", "device")
        )
    )
    report.plot(tokens_per_s_vs(gen, "batch_size"))


def _device_summary(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    """Seed 004's SUMMARY block: tokens/s per device for each model and workload, and the speedup of the
    fastest device over the CPU."""
    gen = [d for d in docs if d.config.scenario == "generate"]
    if not gen:
        report.not_drawn.append(("device summary", "no generate results"))
        return
    devices = sorted({d.config.device for d in gen}, key=lambda x: (x != "cpu", x))
    table = Table(title="Tokens per second per device", title_justify="left")
    for col in ("model", "setup", "workload", *devices, "speedup"):
        table.add_column(col, justify="right" if col in devices or col == "speedup" else "left")
    groups: dict[tuple, dict[str, ResultDocument]] = {}
    newest = newest_by(
        gen, lambda d: (d.host, d.config.model, d.config.label, workload_label(d), d.config.device)
    )
    for (*key, device), d in newest.items():
        groups.setdefault(tuple(key), {})[device] = d
    for (_host, model, label, workload), by_device in sorted(groups.items(), key=lambda kv: str(kv[0])):
        tps = {dev: metrics(d).tokens_per_s for dev, d in by_device.items()}
        others = {dev: v for dev, v in tps.items() if dev != "cpu" and v is not None}
        speed = "–"
        if others and tps.get("cpu"):
            best = max(others, key=lambda k: others[k])
            speed = f"{fmt_times(ratio(others[best], tps['cpu']))} ({best} vs cpu)"
        table.add_row(
            model, label or "–", workload, *(fmt_num(tps.get(dev), ".2f") for dev in devices), speed
        )
    caption = "tokens/s = batch × new tokens / generate time (token count forced)"
    if devices == ["cpu"]:
        caption += " — only a CPU here: no accelerator to compare (cuda and mps were not available)"
        report.headlines.append("only a CPU on this host: the device speedup needs a cuda or mps device")
    table.caption, table.caption_justify = caption, "left"
    report.table("device_summary.svg", "Tokens per second per device", caption, [table])


def _setup(d: ResultDocument) -> tuple:
    return (d.config.model, d.config.label, d.config.device)


def _batch_scaling(report: RecipeReport, docs: Sequence[ResultDocument]) -> None:
    """Throughput at each batch size relative to batch 1, same everything else."""
    gen = [d for d in docs if d.config.scenario == "generate"]
    groups: dict[tuple, dict[int, ResultDocument]] = {}
    newest = newest_by(gen, lambda d: (d.host, *_setup(d), d.config.new_tokens, d.config.batch_size))
    for (*key, batch), d in newest.items():
        groups.setdefault(tuple(key), {})[batch] = d
    batches = sorted({b for g in groups.values() for b in g})
    if len(batches) < 2:
        report.not_drawn.append(("batch scaling", "needs generate results at two or more batch sizes"))
        return
    table = Table(title="Generate throughput vs batch size (× batch 1)", title_justify="left")
    for col in ("model", "setup", "device", "new tokens", *(f"b{b}" for b in batches)):
        table.add_column(col, justify="right" if col.startswith("b") and col[1:].isdigit() else "left")
    for (_host, model, label, device, tokens), by_batch in sorted(groups.items(), key=lambda kv: str(kv[0])):
        one = metrics(by_batch[1]).tokens_per_s if 1 in by_batch else None
        cells = []
        for b in batches:
            value = metrics(by_batch[b]).tokens_per_s if b in by_batch else None
            cells.append("–" if value is None else f"{value:.1f} ({fmt_times(ratio(value, one))})")
        table.add_row(model, label or "–", device, str(tokens), *cells)
    report.table(
        "batch_scaling.svg", "Batch scaling", "tokens/s at each batch size (ratio to batch 1)", [table]
    )
