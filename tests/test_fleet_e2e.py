"""The whole data path with real components: a real agent run on a real model publishes over TLS to a real
mosquitto, the real collector writes to a real InfluxDB 1.6.7, and InfluxQL finds exactly those results."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import run_cli
from tests.test_collector import start_collector, wait_counts
from tests.test_publish import write_config


def test_agent_run_reaches_influxdb_exactly(tmp_path, mosquitto, influxdb, collectors) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "collector").mkdir()
    collector, db = start_collector(collectors, tmp_path / "collector", mosquitto, influxdb)
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    config = write_config(agent_dir / "agent.toml", mosquitto)
    proc = run_cli(
        "run",
        "-m",
        "lstm-ctc:tiny",
        "--scenario",
        "forward,generate,transcribe",
        "--new-tokens",
        "4",
        "--ctc-weight",
        "0,1",
        "--min-iterations",
        "3",
        "--min-duration",
        "0",
        "--warmup",
        "0",
        "--config",
        str(config),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert "published 4 results" in proc.stderr, proc.stderr
    docs = json.loads(proc.stdout)
    assert len(docs) == 4 and {d["host"] for d in docs} == {"host1"} and {d["fleet"] for d in docs} == {"lab"}

    samples = sum(
        len((d["forward"] or d["generate"] or {}).get("latency_samples_s", []))
        or len(d["transcribe"]["per_utterance"])
        for d in docs
    )
    wait_counts(influxdb, db, docs=len(docs), samples=samples)

    rows = influxdb.points(
        'SELECT "latency_mean_s", "run_id", "seq", "scenario", "ctc_weight", "host", "fleet" '
        'FROM "inference"',
        db,
    )
    by_seq = {r["seq"]: r for r in rows}
    for d in docs:
        row = by_seq[d["seq"]]
        result = d[d["config"]["scenario"]]
        assert row["latency_mean_s"] == pytest.approx(result["latency_s"]["mean"], rel=1e-12)
        assert row["run_id"] == d["run_id"]
        assert (row["host"], row["fleet"], row["scenario"]) == ("host1", "lab", d["config"]["scenario"])
    weights = sorted(r["ctc_weight"] for r in rows if r["scenario"] == "transcribe")
    assert weights == ["0", "1"]
    time.sleep(0.5)
    assert collector.alive()
