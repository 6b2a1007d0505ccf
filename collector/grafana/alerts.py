"""Grafana alert rules as code: an agent gone offline, a transcription slower than real time, a
campaign regression. ``edgebench-collector grafana build`` writes them to
``deploy/grafana/provisioning/alerting/edgebench-alerts.yaml`` (Grafana's file provisioning; JSON is YAML),
which the playbook installs with the other provisioning files.

Each rule is Grafana's usual three steps: an InfluxQL query over a fixed relative window (A), reduced to
one number per series (B: its last value), compared with a threshold (C, the condition). Every series is
an alert instance labelled with its tags, so "agent offline" fires once per host. :func:`evaluate` runs
the same three steps against an InfluxDB (``grafana check`` and tests/test_dashboards.py use it), so the
rules are checked against real data although no Grafana server runs here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgebench.collector.grafana.dashboards import build_all
from edgebench.collector.grafana.interpolate import time_filter
from edgebench.collector.grafana.panels import DATASOURCE, DATASOURCE_UID

FOLDER = "edgebench alerts"
"""A folder *title* (alert provisioning has no folder uid): not the dashboards' "edgebench" (uid
edgebench), so a Grafana that provisions alerts before dashboards does not end up with two folders
titled edgebench."""
GROUP = "edgebench"
EXPRESSIONS = {"type": "__expr__", "uid": "__expr__"}
_DAY = 86_400


@dataclass(frozen=True)
class Rule:
    """One alert: ``query`` (InfluxQL, ``$timeFilter`` = the last ``window_s`` seconds), the last value of
    each series compared with ``threshold`` by ``op`` ("gt" or "lt"), firing after ``pending``."""

    uid: str
    title: str
    query: str
    op: str
    threshold: float
    window_s: int
    pending: str
    summary: str
    description: str
    dashboard_uid: str
    panel_title: str
    """The panel the alert links to (Grafana needs the dashboard and the panel, or neither)."""
    severity: str = "warning"

    def fires(self, value: float) -> bool:
        return value > self.threshold if self.op == "gt" else value < self.threshold


def rules() -> list[Rule]:
    # GROUP BY *: one alert instance per series, i.e. per configuration (every tag kept apart: device,
    # variants, workload axes), as the dashboards' tables show them
    return [
        Rule(
            uid="edgebench-agent-offline",
            title="Agent offline",
            query='SELECT last("online") AS "online" FROM "agent_status" WHERE $timeFilter '
            'GROUP BY "fleet", "host"',
            op="lt",
            threshold=1,
            window_s=7 * _DAY,
            pending="15m",
            summary="{{ $labels.host }} ({{ $labels.fleet }}) is offline",
            description="The agent's latest retained status is offline for 15 minutes: the device, its "
            "network or its campaign daemon is down (a clean shutdown and the broker's Last Will look the "
            "same). A device without the daemon (timer runs only) is offline between runs by design: "
            "silence it. Devices silent for over 7 days drop out of this rule.",
            dashboard_uid="edgebench-fleet-health",
            panel_title="Agents offline",
        ),
        Rule(
            uid="edgebench-rtf-above-1",
            title="Transcription slower than real time",
            query='SELECT last("rtf") AS "rtf" FROM "inference" WHERE "scenario" = \'transcribe\' '
            "AND \"emulated\" != 'true' AND $timeFilter GROUP BY *",
            op="gt",
            threshold=1.0,
            window_s=_DAY,
            pending="0s",
            summary="{{ $labels.host }}: {{ $labels.model }} on {{ $labels.runtime }} "
            "{{ $labels.precision }} transcribes slower than real time",
            description="The latest transcribe result of this configuration has a real-time factor above 1: "
            "this device cannot keep up with live audio in it. Results measured under emulation (qemu) are "
            "left out: they say nothing about a device's speed.",
            dashboard_uid="edgebench-fleet-overview",
            panel_title="Latest result per configuration and scenario",
        ),
        Rule(
            uid="edgebench-campaign-regression",
            title="Campaign regression",
            query='SELECT last("ratio") AS "ratio" FROM "campaign_regression" '
            "WHERE \"verdict\" = 'regression' AND $timeFilter GROUP BY *",
            op="gt",
            threshold=0.0,
            window_s=2 * _DAY,
            pending="0s",
            summary="{{ $labels.campaign }}: {{ $labels.host }} {{ $labels.model }} {{ $labels.runtime }} "
            "{{ $labels.precision }} {{ $labels.scenario }} is slower than in {{ $labels.baseline }}",
            description="`edgebench-collector campaign report CAMPAIGN --baseline BASELINE` found a "
            "latency regression (Mann-Whitney U, Holm-corrected, at least the minimum effect) in a campaign "
            "of the last two days; the Campaigns dashboard lists it with its ratio.",
            dashboard_uid="edgebench-campaigns",
            panel_title="Regression check",
            severity="critical",
        ),
    ]


def rule_body(rule: Rule) -> dict[str, Any]:
    """The rule in Grafana's provisioning format (query A, reduce B, threshold C)."""
    query = {
        "refId": "A",
        "datasource": DATASOURCE,
        "rawQuery": True,
        "query": rule.query,
        "resultFormat": "time_series",
        "intervalMs": 1000,
        "maxDataPoints": 43200,
    }
    reduce = {
        "refId": "B",
        "datasource": EXPRESSIONS,
        "type": "reduce",
        "expression": "A",
        "reducer": "last",
        "settings": {"mode": "dropNN"},
    }
    threshold = {
        "refId": "C",
        "datasource": EXPRESSIONS,
        "type": "threshold",
        "expression": "B",
        "conditions": [{"evaluator": {"type": rule.op, "params": [rule.threshold]}}],
    }
    window = {"from": rule.window_s, "to": 0}
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": [
            {"refId": "A", "relativeTimeRange": window, "datasourceUid": DATASOURCE_UID, "model": query},
            {"refId": "B", "relativeTimeRange": window, "datasourceUid": "__expr__", "model": reduce},
            {"refId": "C", "relativeTimeRange": window, "datasourceUid": "__expr__", "model": threshold},
        ],
        "noDataState": "OK",  # no data = nothing measured in the window, not an outage
        "execErrState": "Error",
        "for": rule.pending,
        "annotations": {
            "summary": rule.summary,
            "description": rule.description,
            "__dashboardUid__": rule.dashboard_uid,
            "__panelId__": str(panel_id(rule.dashboard_uid, rule.panel_title)),
        },
        "labels": {"severity": rule.severity, "source": "edgebench"},
        "isPaused": False,
    }


@functools.cache
def _panel_ids() -> dict[tuple[str, str], int]:
    """(dashboard uid, panel title) -> the id the dashboards' layout gave it (built once)."""
    return {(d["uid"], p["title"]): int(p["id"]) for d in build_all().values() for p in d["panels"]}


def panel_id(dashboard_uid: str, title: str) -> int:
    """The id of the panel an alert links to (collector/grafana/panels.py ``layout`` numbers them)."""
    return _panel_ids()[(dashboard_uid, title)]


def provisioning() -> dict[str, Any]:
    """The whole provisioning file: one rule group evaluated every minute in the dashboards' folder."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER,
                "interval": "1m",
                "rules": [rule_body(r) for r in rules()],
            }
        ],
    }


@dataclass(frozen=True)
class Instance:
    """One alert instance: its labels (the series' tags), the reduced value, and whether it fires."""

    rule: str
    labels: dict[str, str]
    value: float
    firing: bool


def evaluate(rule: Rule, run: Callable[[str], Mapping[str, Any]]) -> list[Instance]:
    """Grafana's evaluation of ``rule`` now, minus its pending period: the query over the rule's window,
    the last non-null value of each series (reduce, mode dropNN), the threshold. Series without a value
    give no instance (Grafana's dropNN likewise)."""
    sent = rule.query.replace("$timeFilter", time_filter(f"now-{rule.window_s}s"))
    series = run(sent)["results"][0].get("series", []) or []
    out = []
    for s in series:
        values = [row[1] for row in s["values"] if row[1] is not None and not _nan(row[1])]
        if values:
            value = float(values[-1])
            out.append(Instance(rule.uid, dict(s.get("tags", {})), value, rule.fires(value)))
    return out


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
