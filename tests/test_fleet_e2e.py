"""The whole data path with real components: a real agent run on a real model publishes over TLS to a real
mosquitto, the real collector writes to a real InfluxDB 1.6.7, and InfluxQL finds exactly those results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import run_cli
from tests.test_collector import count, start_collector, wait_counts
from tests.test_publish import spool_count, write_config

BROKER_OUTAGE_S = 30  # as the issue asks


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
    # fleet health: the run's status sequence became agent_status points (retained "offline" last)
    states = influxdb.points(
        'SELECT "state", "online", "run_id" FROM "agent_status" WHERE "host" = \'host1\'', db
    )
    ours = [i for i, r in enumerate(states) if r["state"] == "running" and r["run_id"] == docs[0]["run_id"]]
    assert len(ours) == 1 and states[ours[0]]["online"] == 1, states
    later = [(r["state"], r["online"]) for r in states[ours[0] + 1 :]]  # InfluxQL returns time order
    assert later == [("online", 1), ("offline", 0)], states
    time.sleep(0.5)
    assert collector.alive()


def _latency_samples(docs: list[dict]) -> int:
    return sum(
        len((d["forward"] or d["generate"] or {}).get("latency_samples_s", []))
        or len(d["transcribe"]["per_utterance"])
        for d in docs
    )


# ~60 s: the sweep must outlast the 30 s outage so that the agent reconnects in the middle of it.
def test_broker_down_30s_during_agent_sweep_every_result_once(  # type: ignore[no-untyped-def]
    tmp_path, mosquitto_fresh, influxdb, collectors
) -> None:
    """A real `edgebench-agent run` of 9 configurations (>= 5 s each, one thread) publishes through the
    collector; after the first result is in InfluxDB the broker is stopped for 30 s and started again
    while the sweep goes on. Every result lands in InfluxDB exactly once; the agent's spool ends empty."""
    broker = mosquitto_fresh
    (tmp_path / "collector").mkdir()
    collector, db = start_collector(collectors, tmp_path / "collector", broker, influxdb)
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    config = write_config(agent_dir / "agent.toml", broker)
    batch_sizes = ",".join(str(b) for b in range(1, 10))
    argv = [
        "run", "-m", "lstm-ctc:tiny", "--scenario", "forward", "--batch-size", batch_sizes,
        "--threads", "1", "--warmup", "0", "--min-iterations", "2", "--min-duration", "5",
        "--max-duration", "5", "--power-source", "none", "--publish-timeout", "60",
        "--config", str(config), "--json",
    ]  # fmt: skip
    agent = subprocess.Popen(
        [sys.executable, "-c", "from edgebench.agent.cli.main import main; main()", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 120
        while count(influxdb, db, "inference", "seq") < 1:
            assert agent.poll() is None, agent.communicate()
            assert time.monotonic() < deadline, "no first result in InfluxDB"
            time.sleep(0.2)
        broker.stop()
        down_at = time.monotonic()
        before = count(influxdb, db, "inference", "seq")
        time.sleep(BROKER_OUTAGE_S)
        broker.start()
        outage = time.monotonic() - down_at
        sweep_still_running = agent.poll() is None
        stdout, stderr = agent.communicate(timeout=180)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert outage >= BROKER_OUTAGE_S and sweep_still_running, "the sweep ended before the broker came back"
    assert agent.returncode == 0, stderr
    assert "connection lost" in stderr and "published 9 results" in stderr, stderr
    docs = json.loads(stdout)
    assert sorted(d["config"]["batch_size"] for d in docs) == list(range(1, 10))
    assert before < len(docs)  # some results were measured while the broker was down
    wait_counts(influxdb, db, docs=len(docs), samples=_latency_samples(docs), timeout=60)
    rows = influxdb.points('SELECT "seq", "run_id", "batch_size" FROM "inference"', db)
    assert sorted(r["seq"] for r in rows) == sorted(d["seq"] for d in docs)
    assert {r["run_id"] for r in rows} == {docs[0]["run_id"]}
    assert spool_count(agent_dir / "spool.sqlite") == 0
    assert collector.alive()
