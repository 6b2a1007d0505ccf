"""``edgebench-agent compare`` on real runs: speedups equal the ratios of the stored documents, across
precisions, runs and hosts, and every bad input gets one clear line.

The runs come from the session fixture ``report_runs`` (tests/conftest.py; slow, > 20 s, shared with
test_report.py): a real lstm-ctc:tiny sweep, real whisper-tiny.en transcriptions and a second sweep
exported as another host's JSON file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import run_cli

AXES = ("model", "scenario", "batch_size", "audio_seconds", "new_tokens", "ctc_weight")


def one_line_error(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgebench-agent: error: "), proc.stderr
    return lines[0]


def cli_json(env: dict, *args: str):
    proc = run_cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def stored(env: dict, *runs: str) -> dict[tuple[str, str, int], dict]:
    """The stored documents, read back with `results export` (not through the code under test)."""
    docs = []
    for r in runs:
        docs += cli_json(env, "results", "export", "--format", "json", "--run", r)
    return {(d["host"], d["run_id"], d["seq"]): d for d in docs}


def latency(doc: dict) -> float:
    section = doc["forward"] or doc["generate"] or doc["transcribe"]
    return section["latency_s"]["mean"]


def check_row(row: dict, docs: dict, axis: str) -> None:
    """One comparison row against the documents it names."""
    doc = docs[(row["host"], row["run_id"], row["seq"])]
    base = docs[(row["baseline_host"], row["baseline_run_id"], row["baseline_seq"])]
    for a in AXES:  # matched on every other axis
        assert doc["config"][a] == base["config"][a], (a, row)
    if doc["config"]["scenario"] == "transcribe":  # the dataset matters only where it is transcribed
        assert doc["config"]["dataset"] == base["config"]["dataset"]
    value = doc["host"] if axis == "host" else doc["config"][axis]
    base_value = base["host"] if axis == "host" else base["config"][axis]
    assert row["value"] == value and base_value != value
    assert row["speedup"] == pytest.approx(latency(base) / latency(doc), rel=1e-12)
    assert row["latency_s"] == latency(doc) and row["baseline_latency_s"] == latency(base)
    share, base_share = doc["memory"]["model_share_bytes"], base["memory"]["model_share_bytes"]
    assert share is not None and base_share is not None  # every 1.6 document has the model's share
    assert row["memory_ratio"] == pytest.approx(share / base_share, rel=1e-12)  # the harness cancels out
    assert row["model_share_bytes"] == share and row["baseline_model_share_bytes"] == base_share
    scenario = doc["config"]["scenario"]
    if scenario == "generate":
        tps = doc["generate"]["tokens_per_s"] / base["generate"]["tokens_per_s"]
        assert row["tokens_per_s_ratio"] == pytest.approx(tps, rel=1e-12)
        assert row["throughput_ratio"] == pytest.approx(tps, rel=1e-12)
    elif scenario == "forward":
        its = doc["forward"]["iterations_per_s"] / base["forward"]["iterations_per_s"]
        assert row["throughput_ratio"] == pytest.approx(its, rel=1e-12)
        assert row["tokens_per_s_ratio"] is None
    elif scenario == "transcribe":
        assert row["throughput_ratio"] == pytest.approx(base["transcribe"]["rtf"] / doc["transcribe"]["rtf"])


def test_precision_speedups_equal_stored_ratios(report_runs) -> None:
    env, sweep = report_runs["env"], report_runs["sweep"]
    out = cli_json(env, "compare", "--run", sweep[:8], "--baseline", "precision=fp32", "--json")
    docs = stored(env, sweep)
    assert out["baseline"] == {"axis": "precision", "value": "fp32"}
    candidates = [r for r in out["rows"] if not r["is_baseline"]]
    baselines = [r for r in out["rows"] if r["is_baseline"]]
    # forward 2 batches x 2 lengths + generate 2 x 2 x 2 tokens + transcribe 2 batches x 2 ctc weights
    assert len(candidates) == len(baselines) == 16
    assert {r["value"] for r in candidates} == {"int8"} and {r["value"] for r in baselines} == {"fp32"}
    assert out["unmatched"] == [] and out["superseded"] == 0
    for row in candidates:
        check_row(row, docs, "precision")
    for row in baselines:
        assert row["speedup"] == 1.0 and (row["run_id"], row["seq"]) == (
            row["baseline_run_id"],
            row["baseline_seq"],
        )
    speedups = [r["speedup"] for r in candidates]
    [summary] = out["summary"]
    geo = math.exp(sum(math.log(x) for x in speedups) / len(speedups))
    assert summary["value"] == "int8" and summary["configurations"] == 16
    assert summary["geomean_speedup"] == pytest.approx(geo, rel=1e-9)
    assert summary["min_speedup"] == min(speedups) and summary["max_speedup"] == max(speedups)
    keys = {(r["key"]["scenario"], r["key"]["batch_size"], r["key"]["audio_seconds"], r["key"]["new_tokens"],
             r["key"]["ctc_weight"]) for r in candidates}  # fmt: skip
    assert ("generate", 2, 2.0, 4, None) in keys and ("transcribe", 1, None, None, 1.0) in keys


def test_table_has_a_section_per_configuration(report_runs) -> None:
    env, sweep = report_runs["env"], report_runs["sweep"]
    proc = run_cli("compare", "--run", sweep, "-b", "precision=fp32", env=env)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "speedup vs precision=fp32" in text and "summary vs precision=fp32" in text
    for label in ("b1 1s", "b2 2s", "b1 1s 2 tok", "b2 2s 4 tok", "b1 ctc 0", "b2 ctc 1"):
        assert label in text, label
    lines = text.splitlines()
    assert sum(" fp32 " in line and " baseline " in line for line in lines) == 16
    assert sum(" int8 " in line and "×" in line for line in lines) == 16 + 1  # + the summary row
    assert "WER" not in text.split("summary")[0]  # untrained: no WER column
    assert "energy" not in text  # no power source here: no energy column


def test_cross_host_compare_from_exported_file(report_runs) -> None:
    env, sweep, pi5 = report_runs["env"], report_runs["sweep"], report_runs["pi5_json"]
    out = cli_json(env, "compare", "--run", sweep, "--from", str(pi5), "--baseline", "host=pi5", "--json")
    docs = stored(env, sweep)
    docs.update({(d["host"], d["run_id"], d["seq"]): d for d in json.loads(pi5.read_text())})
    candidates = [r for r in out["rows"] if not r["is_baseline"]]
    # pi5 measured fp32 batch 1: forward at 2 lengths + generate at 2 lengths x 2 token counts
    assert len(candidates) == 6
    local = {r["value"] for r in candidates}
    assert len(local) == 1 and "pi5" not in local
    for row in candidates:
        assert row["baseline_host"] == "pi5" and row["key"]["precision"] == "fp32"
        check_row(row, docs, "host")
    assert len(out["unmatched"]) == 32 - 6  # the rest of the sweep has no pi5 counterpart
    assert set(out["sources"]["hosts"]) == {"pi5", *local}
    assert out["sources"]["files"] == [str(pi5)]


def test_wer_delta_from_the_last_runs(report_runs) -> None:
    env, whisper = report_runs["env"], report_runs["whisper"]
    out = cli_json(
        env, "compare", "--last", "2", "--model", "whisper-tiny.en", "-b", "precision=fp32", "--json"
    )
    [row] = [r for r in out["rows"] if not r["is_baseline"]]
    docs = stored(env, whisper)
    check_row(row, docs, "precision")
    doc = docs[(row["host"], row["run_id"], row["seq"])]
    base = docs[(row["baseline_host"], row["baseline_run_id"], row["baseline_seq"])]
    assert doc["transcribe"]["accuracy_meaningful"] and base["transcribe"]["wer"] is not None
    assert row["wer_delta"] == pytest.approx(doc["transcribe"]["wer"] - base["transcribe"]["wer"], abs=1e-12)
    table = run_cli("compare", "--run", whisper, "-b", "precision=fp32", env=env)
    assert "ΔWER" in table.stdout and " pt" in table.stdout


def test_automatic_baseline_and_newest_measurement_wins(report_runs, tmp_path: Path) -> None:
    env, sweep = report_runs["env"], report_runs["sweep"]
    proc = run_cli("compare", "--run", sweep, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "baseline: precision=fp32 (chosen automatically" in proc.stdout
    # the same sweep once more as a later run (as re-measuring gives): its results supersede the first
    again = json.loads(run_cli("results", "export", "--run", sweep, env=env).stdout)
    for d in again:
        d["run_id"] = "feedbeef-0000-4000-8000-000000000000"
        d["created_ns"] += 10**9
    later = tmp_path / "later.json"
    later.write_text(json.dumps(again))
    out = cli_json(env, "compare", "--run", sweep, "--from", str(later), "-b", "precision=fp32", "--json")
    assert out["superseded"] == 32
    assert {r["run_id"] for r in out["rows"]} == {"feedbeef-0000-4000-8000-000000000000"}


def test_compare_in_process_matches_cli(report_runs, monkeypatch) -> None:
    """The library API gives the same numbers as the command (no hidden CLI-only logic)."""
    from edgebench.agent.report.compare import Baseline, compare
    from edgebench.agent.report.sources import Selection, select

    env, sweep = report_runs["env"], report_runs["sweep"]
    monkeypatch.setenv("EDGEBENCH_DATA_DIR", env["EDGEBENCH_DATA_DIR"])
    loaded = select(Selection(runs=[sweep], scenarios=["generate"]))
    result = compare(loaded.docs, Baseline("precision", "fp32"))
    cli = cli_json(env, "compare", "--run", sweep, "--scenario", "generate", "-b", "precision=fp32", "--json")
    assert [r.speedup for r in result.rows] == [r["speedup"] for r in cli["rows"]]
    assert len(result.candidates) == 8


# --- bad input -----------------------------------------------------------------------------------------


def test_bad_input_gets_one_clear_line(report_runs, tmp_path: Path) -> None:
    env, sweep, whisper = report_runs["env"], report_runs["sweep"], report_runs["whisper"]
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"run_id": "x",')
    not_docs = tmp_path / "not-docs.json"
    not_docs.write_text('[{"host": "pi5", "config": {}}]')
    scalar = tmp_path / "scalar.json"
    scalar.write_text("42")
    future = tmp_path / "future.json"
    doc = json.loads(report_runs["pi5_json"].read_text())[0]
    future.write_text(json.dumps([{**doc, "schema_version": "2.0"}]))
    cases = [
        (["--run", "zzzzzz"], "no run with id 'zzzzzz'"),
        (["--from", str(bad_json)], "bad.json: not valid JSON"),
        (["--from", str(not_docs)], "not-docs.json: result #0 is not an edgebench result document"),
        (["--from", str(scalar)], "expected a JSON array of result documents"),
        (["--from", str(future)], "schema version 2.0"),
        (["--from", str(tmp_path / "missing.json")], "missing.json: no such file"),
        (["--run", sweep, "-b", "runtime=onnxruntime"], "no selected result has runtime 'onnxruntime'"),
        (["--run", sweep, "-b", "runtime"], "expected AXIS=VALUE"),
        (["--run", sweep, "-b", "colour=red"], "unknown axis 'colour'"),
        (["--run", whisper, "-b", "runtime=torch"], "nothing to compare against runtime=torch"),
        (["--run", whisper, "--run", sweep, "-b", "model=whisper-tiny.en"], "nothing to compare"),
        (["--run", sweep, "--model", "whisper-base"], "no selected result is for that model"),
        (["--last", "0"], "--last must be at least 1"),
    ]
    for args, needle in cases:
        assert needle in one_line_error(run_cli("compare", *args, env=env)), args


def test_empty_store_is_a_clear_error(tmp_path: Path) -> None:
    env = {"EDGEBENCH_DATA_DIR": str(tmp_path / "empty")}
    assert "is empty" in one_line_error(run_cli("compare", "-b", "precision=fp32", env=env))
    assert "is empty" in one_line_error(run_cli("compare", "--last", "3", env=env))


def test_runtimes_compare_although_their_own_settings_differ(tmp_path: Path) -> None:
    """The README's sweep over runtimes: torch results carry torch_mode/amp, ONNX Runtime ones
    ort_opt_level; only settings both sides share must match, and each side's own are labelled."""
    env = {"EDGEBENCH_DATA_DIR": str(tmp_path / "store")}
    common = [
        "--model",
        "lstm-ctc:tiny",
        "--scenario",
        "forward",
        "--ctc-weight",
        "1",
        "--audio-seconds",
        "1",
    ]
    common += ["--threads", "1", "--min-iterations", "2", "--min-duration", "0", "--warmup", "0"]
    common += ["--power-source", "none", "--no-publish", "--idle-seconds", "0"]
    proc = run_cli("run", *common, "--runtime", "torch,onnxruntime", "--precision", "fp32,int8", env=env)
    assert proc.returncode == 0, proc.stderr
    scripted = run_cli("run", *common, "--runtime", "torch", "--torch-mode", "script", env=env)
    assert scripted.returncode == 0, scripted.stderr
    for cmd in (["compare"], ["compare", "--baseline", "runtime=torch"]):
        proc = run_cli(*cmd, env=env)
        assert proc.returncode == 0, proc.stderr
    rows = cli_json(env, "compare", "--baseline", "runtime=torch", "--json")["rows"]
    values = sorted((r["value"], r["key"]["precision"]) for r in rows if not r["is_baseline"])
    assert values == [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch torch_mode=script", "fp32")]
    everything = cli_json(env, "results", "export", "--format", "json")
    docs = {(d["host"], d["run_id"], d["seq"]): d for d in everything}
    for r in rows:
        doc = docs[(r["host"], r["run_id"], r["seq"])]
        base = docs[(r["baseline_host"], r["baseline_run_id"], r["baseline_seq"])]
        assert base["config"]["runtime"] == "torch" and base["config"]["torch_mode"] == "eager"
        assert r["is_baseline"] == (doc is base or r["value"] == "torch")
        assert doc["config"]["precision"] == base["config"]["precision"]
        assert r["speedup"] == pytest.approx(latency(base) / latency(doc), rel=1e-12)
