"""The report's headline and its plain results table: what a reader wants first.

Headline: per host, the fastest transcribe configuration whose WER is within one point of the best WER
measured on that host ("fast enough and accurate enough", the question behind seeds 000 and 001).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from edgebench.agent.report.metrics import SETUP_AXES, metrics, setup_label, varying, workload_label
from edgebench.agent.results.schema import ResultDocument

WER_MARGIN = 0.01
"""One percentage point of WER."""


def headline(docs: Sequence[ResultDocument]) -> list[str]:
    """One line per host with transcribe results that have a WER; empty without any."""
    lines = []
    scored = [d for d in docs if d.transcribe is not None and metrics(d).wer is not None]
    label_axes = [a for a in varying(scored, SETUP_AXES) if a != "host"] or ["runtime", "precision"]
    for host in sorted({d.host for d in scored}):
        mine = [d for d in scored if d.host == host]
        best = min(mine, key=lambda d: metrics(d).wer)  # type: ignore[arg-type,return-value]
        best_wer = metrics(best).wer or 0.0
        fine = [d for d in mine if (metrics(d).wer or 0.0) <= best_wer + WER_MARGIN]
        fastest = min(fine, key=lambda d: metrics(d).latency_s or float("inf"))
        m = metrics(fastest)
        rtf = f", RTF {m.rtf:.3f}" if m.rtf is not None else ""
        lines.append(
            f"{host}: fastest within +1 point WER of the best is {setup_label(fastest, label_axes)} — "
            f"{(m.latency_s or 0) * 1e3:.0f} ms per utterance{rtf}, WER {(m.wer or 0) * 100:.1f} % "
            f"(best WER {best_wer * 100:.1f} % by {setup_label(best, label_axes)})"
        )
    return lines


def result_rows(docs: Sequence[ResultDocument]) -> tuple[list[dict[str, str]], set[str]]:
    """Rows for the HTML results table (newest first) and which of its columns are text."""
    rows = []
    for d in sorted(docs, key=lambda d: d.created_ns, reverse=True):
        m = metrics(d)
        c = d.config
        when = dt.datetime.fromtimestamp(d.created_ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        rows.append(
            {
                "host": d.host,
                "model": c.model,
                "runtime": c.runtime,
                "precision": c.precision,
                "device": c.device,
                "scenario": c.scenario,
                "workload": workload_label(d),
                "latency ms": "" if m.latency_s is None else f"{m.latency_s * 1e3:.1f}",
                "± ms (95 %)": "" if m.latency_ci_half_s is None else f"{m.latency_ci_half_s * 1e3:.1f}",
                "RTF": "" if m.rtf is None else f"{m.rtf:.3f}",
                "tok/s": "" if m.tokens_per_s is None else f"{m.tokens_per_s:.1f}",
                "WER %": "" if m.wer is None else f"{m.wer * 100:.1f}",
                "model MiB": "" if m.model_share_bytes is None else f"{m.model_share_bytes / 2**20:.0f}",
                "peak MiB": "" if m.peak_rss_bytes is None else f"{m.peak_rss_bytes / 2**20:.0f}",
                "energy": "" if m.energy is None else f"{m.energy:.3g} {m.energy_unit}",
                "run": d.run_id[:8],
                "time (UTC)": when,
            }
        )
    text = {"host", "model", "runtime", "precision", "device", "scenario", "workload", "run", "time (UTC)"}
    return rows, text
