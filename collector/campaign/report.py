"""``campaign report NAME [--baseline OTHER]``: the fleet side by side, read back from InfluxDB.

One row per device and configuration of the campaign (latest result when a configuration was measured
twice), the figures a fleet comparison needs: latency p50/p90, RTF, tokens/s, WER, joules per utterance
and peak memory. With a baseline campaign, every configuration measured in both is put through the
regression check (``regression.py``) on its per-iteration latency samples.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgebench.agent.errors import EdgebenchError
from edgebench.collector.campaign.regression import ALPHA, MIN_EFFECT, Verdict, compare
from edgebench.collector.config import CollectorConfig

KEY_TAGS = (
    "host",
    "fleet",
    "model",
    "runtime",
    "precision",
    "device",
    "scenario",
    "batch_size",
    "input_seconds",
    "new_tokens",
    "ctc_weight",
    "torch_mode",
    "attn_impl",
    "amp",
    "ort_opt_level",
    "ggml_type",
    "language",
    "task",
    "stream_policy",
    "chunk_seconds",
    "stream_speed",
    "label",
    "noise_snr_db",
    "speed",
    "emulated",
)
"""What makes two results the same configuration on the same device. Threads are not in it: a device
that got slower because it runs with fewer threads is exactly what the check must catch."""


@dataclass
class ReportRow:
    key: tuple[str, ...]
    host: str
    device_class: str
    config: str
    """model runtime/precision scenario (and shape), as the table shows it."""
    p50_ms: float | None
    p90_ms: float | None
    rtf: float | None
    tokens_per_s: float | None
    wer: float | None
    j_per_utt: float | None
    peak_mb: float | None
    emulated: bool
    share_mb: float | None = None
    """The model's share of the memory (peak minus the RSS before it loaded; schema 1.6)."""
    time_ms: int = 0
    """When the result was measured (epoch ms)."""


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _runner(cfg: CollectorConfig):  # type: ignore[no-untyped-def]
    from edgebench.collector.influxql import influxql_runner

    i = cfg.influx
    return influxql_runner(
        i.url, i.database, username=i.username, password=i.password, token=i.resolved_token()
    )


def _series(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for r in doc.get("results", []) for s in r.get("series", []) or []]


def _config_label(tags: dict[str, str]) -> str:
    parts = [
        tags.get("model", "?"),
        f"{tags.get('runtime', '?')}/{tags.get('precision', '?')}",
        tags.get("scenario", "?"),
    ]
    if tags.get("batch_size", "1") != "1":
        parts.append(f"b{tags['batch_size']}")
    for tag, fmt in (("input_seconds", "{}s"), ("new_tokens", "{}tok"), ("ctc_weight", "ctc{}")):
        if tags.get(tag):
            parts.append(fmt.format(tags[tag]))
    for tag in ("torch_mode", "attn_impl", "ort_opt_level", "label"):
        if tags.get(tag) and tags[tag] not in ("eager", "all"):
            parts.append(tags[tag])
    if tags.get("amp"):
        parts.append("amp")
    if tags.get("device") not in (None, "cpu"):
        parts.append(tags["device"])
    return " ".join(parts)


def _key(tags: dict[str, str]) -> tuple[str, ...]:
    return tuple(tags.get(t) or "" for t in KEY_TAGS)


def rows(cfg: CollectorConfig, campaign: str) -> list[ReportRow]:
    run = _runner(cfg)
    fields = (
        '"latency_p50_s","latency_p90_s","rtf","tokens_per_s","wer","energy_joules_per_iteration",'
        '"peak_rss_bytes","model_share_bytes"'
    )
    q = f"SELECT {fields} FROM inference WHERE campaign = {_quote(campaign)} GROUP BY *"
    try:
        doc = run(q)
    except RuntimeError as exc:
        raise EdgebenchError(f"InfluxDB refused the campaign query: {exc}") from None
    latest: dict[tuple[str, ...], ReportRow] = {}
    for s in _series(doc):
        tags = s.get("tags", {})
        cols = s["columns"]
        last = dict(zip(cols, s["values"][-1], strict=True))  # newest result of this series
        ms = lambda v: None if v is None else v * 1000  # noqa: E731
        row = ReportRow(
            key=_key(tags),
            host=tags.get("host", "?"),
            device_class=tags.get("device_class", "?"),
            config=_config_label(tags),
            p50_ms=ms(last.get("latency_p50_s")),
            p90_ms=ms(last.get("latency_p90_s")),
            rtf=last.get("rtf"),
            tokens_per_s=last.get("tokens_per_s"),
            wer=last.get("wer"),
            j_per_utt=last.get("energy_joules_per_iteration")
            if tags.get("scenario") in ("transcribe", "stream")
            else None,
            peak_mb=None if last.get("peak_rss_bytes") is None else last["peak_rss_bytes"] / 2**20,
            share_mb=None if last.get("model_share_bytes") is None else last["model_share_bytes"] / 2**20,
            emulated=tags.get("emulated") == "true",
            time_ms=int(last.get("time") or 0),
        )
        if row.key not in latest or row.time_ms >= latest[row.key].time_ms:
            latest[row.key] = row  # series differing only in tags outside the key: the newest wins
    return sorted(latest.values(), key=lambda r: (r.device_class, r.host, r.config))


def samples(cfg: CollectorConfig, campaign: str) -> dict[tuple[str, ...], list[float]]:
    """Per-iteration latencies of every configuration of the campaign (all its runs pooled)."""
    run = _runner(cfg)
    try:
        doc = run(f'SELECT "latency_s" FROM latency_sample WHERE campaign = {_quote(campaign)} GROUP BY *')
    except RuntimeError as exc:
        raise EdgebenchError(f"InfluxDB refused the samples query: {exc}") from None
    out: dict[tuple[str, ...], list[float]] = {}
    for s in _series(doc):
        idx = s["columns"].index("latency_s")
        out.setdefault(_key(s.get("tags", {})), []).extend(v[idx] for v in s["values"] if v[idx] is not None)
    return out


def regression(
    cfg: CollectorConfig, campaign: str, baseline: str, alpha: float = ALPHA, min_effect: float = MIN_EFFECT
) -> list[Verdict]:
    base, cur = samples(cfg, baseline), samples(cfg, campaign)
    if not base:
        raise EdgebenchError(f"baseline campaign {baseline} has no latency samples in InfluxDB")
    if cur and not set(base) & set(cur):
        raise EdgebenchError(
            f"campaigns {campaign} and {baseline} have no configuration in common (same host, model, "
            "runtime, precision, scenario, shape and options): nothing to compare"
        )
    return compare(base, cur, alpha, min_effect)


def write_verdicts(
    cfg: CollectorConfig, campaign: str, baseline: str, verdicts: list[Verdict], at_ns: int | None = None
) -> None:
    """``campaign_regression`` points (one per configuration) for the Campaigns dashboard, stamped with
    the campaign's newest result (``at_ns``): running the report again overwrites them."""
    from edgebench.collector.points import format_fields, format_line, format_tags
    from edgebench.collector.sinks.detect import make_sink

    now = at_ns or time.time_ns()
    lines = []
    for v in verdicts:
        tags = dict(zip(KEY_TAGS, v.key, strict=True))
        tags = {k: t for k, t in tags.items() if t} | {"campaign": campaign, "baseline": baseline}
        fields = {
            "verdict": v.verdict,
            "ratio": float(v.ratio),
            "baseline_median_s": float(v.baseline_median_s),
            "current_median_s": float(v.current_median_s),
            "p_value": v.p_value,
            "p_adjusted": v.p_adjusted,
            "config": _config_label(tags),
        }
        lines.append(format_line("campaign_regression", format_tags(tags), format_fields(fields), now))
    if lines:
        sink = make_sink(cfg.influx)
        try:
            sink.write(lines)
        finally:
            sink.close()


def to_json(
    campaign: str, report_rows: list[ReportRow], verdicts: list[Verdict] | None, baseline: str | None
) -> str:
    return json.dumps(
        {
            "campaign": campaign,
            "rows": [asdict(r) for r in report_rows],
            "baseline": baseline,
            "regression_check": None
            if verdicts is None
            else {
                "test": "Mann-Whitney U, two-sided, Holm-corrected",
                "verdicts": [asdict(v) for v in verdicts],
            },
        },
        indent=2,
    )


def plot(report_rows: list[ReportRow], campaign: str, folder: Path) -> Path:
    """p50 latency per configuration, one bar per device: ``<folder>/campaign-NAME.png``."""
    from edgebench.agent.errors import require

    require("matplotlib", "report", "campaign report --plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = sorted({r.config for r in report_rows})
    hosts = sorted({r.host for r in report_rows})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(configs) * len(hosts) ** 0.5), 4))
    width = 0.8 / max(len(hosts), 1)
    for i, host in enumerate(hosts):
        by = {r.config: r.p50_ms for r in report_rows if r.host == host}
        xs = [c + i * width for c in range(len(configs))]
        ax.bar(xs, [by.get(c) or 0 for c in configs], width, label=host)
    ax.set_xticks([c + width * (len(hosts) - 1) / 2 for c in range(len(configs))])
    ax.set_xticklabels(configs, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("latency p50 (ms)")
    ax.set_title(f"campaign {campaign}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"campaign-{campaign}.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
