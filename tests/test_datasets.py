"""Dataset loading: the packaged built-in set, user folders, and one-line errors that name the file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgebench.agent.datasets.loader import SAMPLE_RATE, Utterance, load_dataset
from edgebench.agent.errors import EdgebenchError


def _write_wav(path: Path, seconds: float = 0.5, rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    sf.write(path, data, rate, subtype="PCM_16")
    return mono


@pytest.fixture(scope="module")
def builtin() -> list[Utterance]:
    return load_dataset("builtin")


def test_builtin_set(builtin: list[Utterance]) -> None:
    assert 18 <= len(builtin) <= 25
    assert [u.id for u in builtin] == sorted(u.id for u in builtin)
    assert len({u.id for u in builtin}) == len(builtin)
    for utt in builtin:
        assert utt.audio.dtype == np.float32
        assert utt.audio.ndim == 1
        assert utt.text.strip() and utt.text == utt.text.strip()
        assert utt.path.is_file() and utt.path.suffix == ".flac"
        assert sf.info(utt.path).samplerate == SAMPLE_RATE
        assert sf.info(utt.path).channels == 1
        assert 0.5 < float(np.abs(utt.audio).max()) <= 1.0  # normalised gain, not silence
        assert not utt.audio.flags.writeable
    durations = [u.duration_s for u in builtin]
    assert min(durations) < 2.5  # short utterances …
    assert max(durations) > 10.0  # … and long multi-sentence ones …
    assert min(durations) > 1.0 and max(durations) < 30.0  # … all inside one Whisper window
    assert sum(1 for d in durations if d > 5.0) >= 3


def test_builtin_is_default_and_small(builtin: list[Utterance]) -> None:
    assert [u.id for u in load_dataset()] == [u.id for u in builtin]
    folder = builtin[0].path.parent
    total = sum(p.stat().st_size for p in folder.glob("*.flac"))
    assert total < 5 * 1024 * 1024


def test_builtin_transcripts_match_tsv(builtin: list[Utterance]) -> None:
    tsv = builtin[0].path.parent / "transcripts.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["id", "file", "voice", "text"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == [u.id for u in builtin]
    assert [r[3] for r in rows] == [u.text for u in builtin]
    assert len({r[2] for r in rows}) >= 5  # varied voices


def test_directory_with_sidecar_txt(tmp_path: Path) -> None:
    expected = _write_wav(tmp_path / "hello.wav", seconds=0.75)
    (tmp_path / "hello.txt").write_text("  Hello\nworld.  \n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    [utt] = load_dataset(str(tmp_path))
    assert utt.id == "hello"
    assert utt.text == "Hello world."
    assert utt.path == tmp_path / "hello.wav"
    assert utt.duration_s == pytest.approx(0.75)
    np.testing.assert_allclose(utt.audio, expected, atol=1e-4)


def test_directory_with_transcripts_tsv(tmp_path: Path) -> None:
    _write_wav(tmp_path / "b.flac")
    _write_wav(tmp_path / "a.wav")
    (tmp_path / "transcripts.tsv").write_text(
        "id\tfile\ttext\nfirst\ta.wav\tThe first one.\nsecond\tb.flac\tThe second one.\n", encoding="utf-8"
    )
    utts = load_dataset(str(tmp_path))
    assert [(u.id, u.text) for u in utts] == [("first", "The first one."), ("second", "The second one.")]


def test_stereo_44k_is_downmixed_and_resampled(tmp_path: Path) -> None:
    _write_wav(tmp_path / "s.wav", seconds=1.0, rate=44100, channels=2)
    (tmp_path / "s.txt").write_text("stereo", encoding="utf-8")
    [utt] = load_dataset(str(tmp_path))
    assert utt.audio.ndim == 1
    assert utt.audio.dtype == np.float32
    assert abs(utt.audio.shape[0] - SAMPLE_RATE) <= 1
    assert float(np.abs(utt.audio).max()) == pytest.approx(0.3, abs=0.02)


def test_resampling_without_soxr_or_librosa_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_wav(tmp_path / "cd.wav", rate=44100)
    (tmp_path / "cd.txt").write_text("x", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "soxr", None)  # `import soxr` now raises ImportError
    monkeypatch.setitem(sys.modules, "librosa", None)
    with pytest.raises(EdgebenchError, match=r"cd\.wav.*44100 Hz.*edgebench\[librosa\]"):
        load_dataset(str(tmp_path))


def _one_line(exc: pytest.ExceptionInfo[EdgebenchError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(missing))
    assert "nope" in _one_line(exc)


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no audio here", encoding="utf-8")
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(tmp_path))
    assert str(tmp_path) in _one_line(exc)
    assert "no audio" in str(exc.value)


def test_corrupt_audio(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "x.txt").write_text("garbage", encoding="utf-8")
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(tmp_path))
    assert "x.wav" in _one_line(exc)


def test_missing_transcript(tmp_path: Path) -> None:
    _write_wav(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("has one", encoding="utf-8")
    _write_wav(tmp_path / "orphan.wav")
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(tmp_path))
    assert "orphan.wav" in _one_line(exc)


def test_missing_transcript_with_tsv(tmp_path: Path) -> None:
    _write_wav(tmp_path / "a.wav")
    _write_wav(tmp_path / "orphan.wav")
    (tmp_path / "transcripts.tsv").write_text("id\tfile\tvoice\ttext\na\ta.wav\t\tHi.\n", encoding="utf-8")
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(tmp_path))
    assert "orphan.wav" in _one_line(exc)


def test_tsv_listing_a_missing_file(tmp_path: Path) -> None:
    _write_wav(tmp_path / "a.wav")
    (tmp_path / "transcripts.tsv").write_text(
        "id\tfile\ttext\na\ta.wav\tHi.\nb\tghost.wav\tBoo.\n", encoding="utf-8"
    )
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(tmp_path))
    assert "ghost.wav" in _one_line(exc)


def test_empty_transcript(tmp_path: Path) -> None:
    _write_wav(tmp_path / "quiet.wav")
    (tmp_path / "quiet.txt").write_text("   \n", encoding="utf-8")
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(tmp_path))
    assert "quiet.wav" in _one_line(exc)


def test_path_that_is_a_file(tmp_path: Path) -> None:
    wav = tmp_path / "single.wav"
    _write_wav(wav)
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(wav))
    assert "single.wav" in _one_line(exc)
