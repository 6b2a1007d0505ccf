"""The log-mel front end: all three backends agree, and the torch one is exactly Whisper's.

A silent front-end difference would show up as a WER change blamed on a device or runtime, so agreement
is checked on real speech (the built-in set), unpadded and padded to Whisper's 30 s window.
"""

from __future__ import annotations

import sys

import librosa
import numpy as np
import pytest
import torch

from edgebench.agent.datasets.loader import Utterance, load_dataset
from edgebench.agent.errors import EdgebenchError
from edgebench.models.frontend import logmel
from edgebench.models.frontend.logmel import (
    HOP_LENGTH,
    N_FRAMES_30S,
    N_SAMPLES_30S,
    LogMelFrontend,
    select_backend,
)

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def utterances() -> list[Utterance]:
    return load_dataset("builtin")


@pytest.fixture(scope="module")
def torch_frontend() -> LogMelFrontend:
    return LogMelFrontend(n_mels=80, backend="torch")


@pytest.fixture(scope="module")
def librosa_frontend() -> LogMelFrontend:
    return LogMelFrontend(n_mels=80, backend="librosa")


def test_constants() -> None:
    assert N_SAMPLES_30S == 480000
    assert N_FRAMES_30S == 3000
    assert N_SAMPLES_30S // HOP_LENGTH == N_FRAMES_30S


@pytest.mark.parametrize("pad", [None, N_SAMPLES_30S], ids=["unpadded", "padded30s"])
@pytest.mark.parametrize("other", ["librosa", "numpy"])
def test_every_backend_agrees_with_torch_on_builtin_set(
    utterances: list[Utterance], torch_frontend: LogMelFrontend, other: str, pad
) -> None:
    """The numpy backend is what a torch-less device (a Pi agent) runs: it must give torch's features."""
    assert torch_frontend.backend == "torch"
    frontend = LogMelFrontend(n_mels=80, backend=other)
    assert frontend.backend == other
    for utt in utterances:
        a = torch_frontend(utt.audio, pad_to_samples=pad)
        b = frontend(utt.audio, pad_to_samples=pad)
        assert a.shape == b.shape, utt.id
        assert a.dtype == b.dtype == np.float32, utt.id
        diff = float(np.abs(a - b).max())
        assert diff <= TOLERANCE, f"{utt.id}: max abs diff {diff}"


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("backend", ["torch", "numpy", "librosa"])
def test_shapes(utterances: list[Utterance], n_mels: int, backend: str) -> None:
    frontend = LogMelFrontend(n_mels=n_mels, backend=backend)
    audio = utterances[0].audio
    padded = frontend(audio, pad_to_samples=N_SAMPLES_30S)
    assert padded.shape == (n_mels, N_FRAMES_30S)
    assert padded.dtype == np.float32
    unpadded = frontend(audio)
    assert unpadded.shape == (n_mels, audio.shape[0] // HOP_LENGTH)


def test_pad_trims_longer_audio(torch_frontend: LogMelFrontend) -> None:
    audio = np.random.default_rng(0).standard_normal(N_SAMPLES_30S + 12345).astype(np.float32) * 0.1
    out = torch_frontend(audio, pad_to_samples=N_SAMPLES_30S)
    assert out.shape == (80, N_FRAMES_30S)
    np.testing.assert_array_equal(out, torch_frontend(audio[:N_SAMPLES_30S], pad_to_samples=N_SAMPLES_30S))


def test_matches_transformers_whisper_feature_extractor(
    utterances: list[Utterance], torch_frontend: LogMelFrontend
) -> None:
    import transformers

    extractor = transformers.WhisperFeatureExtractor(feature_size=80)
    utt = max(utterances, key=lambda u: u.duration_s)
    expected = extractor(utt.audio, sampling_rate=16000, return_tensors="np").input_features[0]
    ours = torch_frontend(utt.audio, pad_to_samples=N_SAMPLES_30S)
    assert ours.shape == expected.shape == (80, N_FRAMES_30S)
    assert float(np.abs(ours - expected).max()) <= TOLERANCE


def test_explicit_librosa_selection() -> None:
    assert select_backend("librosa") == "librosa"
    assert LogMelFrontend(backend="librosa").backend == "librosa"


def test_auto_prefers_torch_when_stft_works() -> None:
    assert select_backend("auto") == "torch"
    assert LogMelFrontend().backend == "torch"


def _broken_stft(*args, **kwargs):
    # Stands for ARM PyTorch builds without MKL, whose stft raises (hardware we cannot test on).
    raise RuntimeError("stft: MKL FFT is not available")


def test_auto_falls_back_to_numpy_when_torch_stft_is_broken(
    monkeypatch: pytest.MonkeyPatch, utterances: list[Utterance]
) -> None:
    monkeypatch.setattr(torch, "stft", _broken_stft)
    frontend = LogMelFrontend(backend="auto")
    assert frontend.backend == "numpy"
    audio = utterances[0].audio
    np.testing.assert_array_equal(frontend(audio), LogMelFrontend(backend="numpy")(audio))


def test_auto_without_torch_is_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert select_backend("auto") == "numpy"


def test_auto_falls_back_at_call_time(
    monkeypatch: pytest.MonkeyPatch,
    utterances: list[Utterance],
    caplog: pytest.LogCaptureFixture,
) -> None:
    frontend = LogMelFrontend(backend="auto")
    assert frontend.backend == "torch"
    monkeypatch.setattr(torch, "stft", _broken_stft)
    audio = utterances[0].audio
    with caplog.at_level("WARNING", logger=logmel.__name__):
        out = frontend(audio, pad_to_samples=N_SAMPLES_30S)
    assert frontend.backend == "numpy"  # permanently, for this instance
    assert "falling back" in caplog.text
    numpy_frontend = LogMelFrontend(backend="numpy")
    np.testing.assert_array_equal(out, numpy_frontend(audio, pad_to_samples=N_SAMPLES_30S))


def test_explicit_torch_with_broken_stft_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, utterances: list[Utterance]
) -> None:
    frontend = LogMelFrontend(backend="torch")
    monkeypatch.setattr(torch, "stft", _broken_stft)
    with pytest.raises(EdgebenchError, match="--frontend numpy"):
        frontend(utterances[0].audio)
    assert frontend.backend == "torch"  # an explicit choice is never silently swapped


def test_unknown_backend_raises() -> None:
    with pytest.raises(EdgebenchError, match="onnx"):
        select_backend("onnx")
    with pytest.raises(EdgebenchError):
        LogMelFrontend(backend="onnx")


def test_unsupported_n_mels_raises() -> None:
    with pytest.raises(EdgebenchError, match="64"):
        LogMelFrontend(n_mels=64)


def test_missing_librosa_is_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from edgebench.agent.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "librosa", None)  # makes `import librosa` raise ImportError
    with pytest.raises(MissingExtraError, match=r"edgebench\[librosa\]"):
        select_backend("librosa")


def test_too_short_audio_is_a_clear_error(torch_frontend: LogMelFrontend) -> None:
    with pytest.raises(EdgebenchError, match="too short"):
        torch_frontend(np.zeros(100, dtype=np.float32))


def test_module_import_does_not_import_torch_or_librosa() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import edgebench.models.frontend.logmel as m; m.mel_filters(80); m.mel_filters(128); "
        "print('torch' in sys.modules, 'librosa' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_shipped_mel_filters_match_librosa() -> None:
    # The npz is generated once by make_mel_filters.py; this guards against a stale or hand-edited file.

    for n in (80, 128):
        filters = logmel.mel_filters(n)
        assert filters.shape == (n, 201)
        assert filters.dtype == np.float32
        expected = librosa.filters.mel(sr=16000, n_fft=400, n_mels=n)
        np.testing.assert_allclose(filters, expected, rtol=0, atol=1e-7)
