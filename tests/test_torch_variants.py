"""torch variants the seeds compared: torch.compile, TorchScript trace, attention implementation, AMP.

Real models throughout (a tiny random GPT-2 saved with save_pretrained, lstm-ctc:tiny, real Whisper
tiny.en); this machine has no GPU, so flash attention and AMP are tested for their refusal on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.runtimes import RuntimeOptions
from edgebench.agent.runtimes.base import SessionOptions
from edgebench.agent.runtimes.torch_runtime import TorchSession
from edgebench.agent.runtimes.torch_variants import (
    TorchOptions,
    TracedForward,
    compile_blocks,
    repeated_blocks,
)
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import load_torch_model, resolve
from tests.conftest import run_cli

QUIET = ["--no-store", "--power-source", "none", "--idle-seconds", "0"]
FAST = ["--min-iterations", "2", "--min-duration", "0", "--warmup", "1"]


def _session(name: str, **options) -> TorchSession:
    spec = resolve(name)
    own = RuntimeOptions(torch=TorchOptions(**options))
    options_ = SessionOptions(device="cpu", runtime_options=own)
    session = TorchSession(spec, options_, LogMelFrontend(spec.n_mels))
    session.load()
    return session


def test_attention_implementations_agree(tiny_gpt2: Path) -> None:
    sdpa = _session(f"hf:{tiny_gpt2}", attn_impl="sdpa")
    eager = _session(f"hf:{tiny_gpt2}", attn_impl="eager")
    assert sdpa.model.module.config._attn_implementation == "sdpa"  # type: ignore[union-attr]
    assert eager.model.module.config._attn_implementation == "eager"  # type: ignore[union-attr]
    feats = sdpa.features([None] * 2)  # type: ignore[list-item]
    torch.testing.assert_close(sdpa.forward(feats), eager.forward(feats), rtol=1e-4, atol=1e-5)
    a = sdpa.decode(sdpa.prefill(feats), 5).tokens
    b = eager.decode(eager.prefill(feats), 5).tokens
    assert a.shape == (2, 6) and torch.equal(a, b)


def test_script_traces_forward_once_per_shape_and_matches_eager() -> None:
    eager = _session("lstm-ctc:tiny")
    scripted = _session("lstm-ctc:tiny", torch_mode="script")
    audio = [torch.randn(16000).numpy() * 0.1]
    feats = scripted.features(audio)
    traced = scripted._traced
    assert isinstance(traced, TracedForward) and len(traced._traces) == 1
    scripted.features(audio)  # same shape: no new trace
    assert len(traced._traces) == 1
    scripted.features(audio * 2)  # batch 2: a new trace
    assert len(traced._traces) == 2
    torch.testing.assert_close(scripted.forward(feats), eager.forward(eager.features(audio)))


def test_compile_regional_blocks_match_eager(tiny_gpt2: Path) -> None:  # ~30 s: inductor compiles C++
    model = load_torch_model(resolve(f"hf:{tiny_gpt2}"))
    assert len(repeated_blocks(model.module)) == 2  # the two GPT2Blocks
    feats = model.features([None, None], None)  # type: ignore[list-item, arg-type]
    expected = model.forward(feats)
    assert compile_blocks(model) == 2
    torch.testing.assert_close(model.forward(feats), expected, rtol=1e-4, atol=1e-5)


def test_cli_records_variants(tiny_gpt2: Path) -> None:
    proc = run_cli(
        "run", "-m", f"hf:{tiny_gpt2},lstm-ctc:tiny", "--scenario", "forward", "--audio-seconds", "1",
        "--torch-mode", "script", *FAST, *QUIET, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert [d["config"]["model"] for d in docs] == [f"hf:{tiny_gpt2}", "lstm-ctc:tiny"]
    for doc in docs:
        assert doc["config"]["torch_mode"] == "script" and doc["config"]["amp"] is False
        assert doc["forward"]["iterations_per_s"] > 0
    proc = run_cli(
        "run", "-m", f"hf:{tiny_gpt2}", "--scenario", "generate", "--new-tokens", "3", "--attn-impl", "eager",
        *FAST, *QUIET, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [doc] = json.loads(proc.stdout)
    assert doc["config"]["attn_impl"] == "eager" and doc["config"]["torch_mode"] == "eager"
    assert doc["generate"]["new_tokens"] == 3


def test_whisper_forward_traces() -> None:  # ~40 s: real Whisper tiny.en traced and run
    proc = run_cli(
        "run", "-m", "whisper-tiny.en", "--scenario", "forward", "--torch-mode", "script",
        "--attn-impl", "eager", *FAST, *QUIET, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [doc] = json.loads(proc.stdout)
    assert doc["config"]["torch_mode"] == "script" and doc["config"]["attn_impl"] == "eager"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--torch-mode", "jit"], "--torch-mode must be one of eager, compile, script"),
        (["--attn-impl", "xformers"], "--attn-impl must be one of eager, sdpa, flash"),
        (["--torch-mode", "script", "--scenario", "transcribe"], "traces the forward pass only"),
        (["--torch-mode", "compile", "--runtime", "onnxruntime"], "apply to the torch runtime only"),
        (["--amp"], "--amp (fp16 autocast) needs a CUDA GPU, not cpu"),
        (["--attn-impl", "flash"], "needs a CUDA GPU, not cpu"),
        (["--attn-impl", "sdpa", "-m", "lstm-ctc:tiny"], "applies to Hugging Face models"),
    ],
)
def test_bad_variants_one_line(args, needle) -> None:
    model = [] if "-m" in args else ["-m", "whisper-tiny.en"]
    scenario = [] if "--scenario" in args else ["--scenario", "forward"]
    proc = run_cli("run", *model, *scenario, *args, *FAST, *QUIET, "--device", "cpu")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edgebench-agent: error: ") and needle in last, proc.stderr


def test_session_checks_before_loading() -> None:
    spec = resolve("whisper-tiny.en")
    frontend = LogMelFrontend(spec.n_mels, "auto")
    with pytest.raises(EdgebenchError, match="--amp autocasts fp32 weights"):
        TorchSession(
            spec,
            SessionOptions(
                device="cpu", precision="int8", runtime_options=RuntimeOptions(torch=TorchOptions(amp=True))
            ),
            frontend,
        )
