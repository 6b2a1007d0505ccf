"""Dataset layouts beyond the built-in set (LibriSpeech, id<TAB>text TSV), seeded sampling, perturbation.

The LibriSpeech-layout folder is built from the built-in clips, so the test knows exactly which audio and
text every id must come back with.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgebench.agent.datasets.loader import SAMPLE_RATE, Utterance, index_dataset, load_dataset
from edgebench.agent.datasets.perturb import Perturbation, add_noise, change_speed, perturb
from edgebench.agent.errors import EdgebenchError
from tests.conftest import run_cli

QUIET = ["--no-store", "--power-source", "none", "--idle-seconds", "0"]
FAST = ["--min-iterations", "2", "--min-duration", "0", "--warmup", "0"]


@pytest.fixture(scope="module")
def builtin() -> list[Utterance]:
    return load_dataset("builtin")


def make_librispeech(root: Path, builtin: list[Utterance], first: int = 0) -> dict[str, Utterance]:
    """``root/SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` + ``SPEAKER-CHAPTER.trans.txt`` (upper case, as
    LibriSpeech writes it). Speakers 121 and 1089 so that string order differs from numeric order.
    Returns id -> the built-in utterance copied there."""
    chapters = [("1089", "134686"), ("1089", "134691"), ("121", "121726"), ("121", "123852")]
    expected: dict[str, Utterance] = {}
    for i, utt in enumerate(builtin):
        speaker, chapter = chapters[i % len(chapters)]
        folder = root / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        utt_id = f"{speaker}-{chapter}-{first + i:04d}"  # ids are unique across LibriSpeech subsets
        shutil.copy(utt.path, folder / f"{utt_id}.flac")
        with (folder / f"{speaker}-{chapter}.trans.txt").open("a", encoding="utf-8") as fh:
            fh.write(f"{utt_id} {utt.text.upper()}\n")
        expected[utt_id] = utt
    return expected


@pytest.fixture
def librispeech(tmp_path: Path, builtin: list[Utterance]) -> tuple[Path, dict[str, Utterance]]:
    root = tmp_path / "LibriSpeech" / "test-clean"
    return root, make_librispeech(root, builtin)


def test_librispeech_layout_ids_texts_audio_and_order(librispeech, builtin) -> None:
    root, expected = librispeech
    utts = load_dataset(str(root))
    assert [u.id for u in utts] == sorted(expected)  # path order: speaker folder, chapter, id
    assert utts[0].id.startswith("1089-")  # string order of folders, not numeric
    for u in utts:
        source = expected[u.id]
        assert u.text == source.text.upper()
        assert u.path.parent.name == u.id.split("-")[1]
        np.testing.assert_array_equal(u.audio, source.audio)
    assert len(utts) == len(builtin)


def test_librispeech_parent_folder_holds_every_subset(tmp_path: Path, builtin) -> None:
    make_librispeech(tmp_path / "LibriSpeech" / "test-clean", builtin[:4])
    make_librispeech(tmp_path / "LibriSpeech" / "dev-clean", builtin[4:6], first=100)
    utts = load_dataset(str(tmp_path / "LibriSpeech"))
    assert len(utts) == 6
    assert [u.path.parts[-4] for u in utts] == ["dev-clean"] * 2 + ["test-clean"] * 4


def test_limit_with_seed_is_a_deterministic_sample_in_dataset_order(librispeech) -> None:
    root, _ = librispeech
    every = [e.id for e in index_dataset(root)]
    a = [u.id for u in load_dataset(str(root), limit=5, seed=0)]
    b = [u.id for u in load_dataset(str(root), limit=5, seed=0)]
    c = [u.id for u in load_dataset(str(root), limit=5, seed=1)]
    assert a == b
    assert len(a) == 5 and len(set(a)) == 5
    assert a != c
    assert a == [i for i in every if i in set(a)]  # kept in dataset order
    assert a != every[:5]  # a sample, not the first five
    assert [u.id for u in load_dataset(str(root), limit=1000, seed=3)] == every
    with pytest.raises(EdgebenchError, match="--limit must be >= 1"):
        load_dataset(str(root), limit=0)


def test_librispeech_audio_without_transcript(librispeech) -> None:
    root, _ = librispeech
    stray = root / "121" / "121726" / "121-121726-9999.flac"
    shutil.copy(next(root.rglob("*.flac")), stray)
    with pytest.raises(EdgebenchError) as exc:
        load_dataset(str(root))
    message = str(exc.value)
    assert "\n" not in message
    assert "121-121726-9999.flac" in message and "trans.txt" in message


def test_librispeech_transcript_naming_missing_audio(librispeech) -> None:
    root, _ = librispeech
    trans = root / "1089" / "134686" / "1089-134686.trans.txt"
    trans.write_text(trans.read_text() + "1089-134686-7777 A LINE WITHOUT AUDIO\n")
    with pytest.raises(EdgebenchError, match=r"1089-134686\.trans\.txt line \d+ names 1089-134686-7777"):
        load_dataset(str(root))


def test_corrupt_librispeech_flac_is_found_only_when_read(librispeech) -> None:
    root, _ = librispeech
    victim = sorted(root.rglob("*.flac"))[-1]
    victim.write_bytes(os.urandom(3000))
    with pytest.raises(EdgebenchError, match=f"Cannot read audio file .*{victim.name}"):
        load_dataset(str(root))
    # A sample that does not include the corrupt file never decodes it.
    ids = [e.id for e in index_dataset(root)]
    for seed in range(50):
        utts = load_dataset(str(root), limit=2, seed=seed)
        if victim.stem not in {u.id for u in utts}:
            assert len(utts) == 2 and len(ids) > 2
            break
    else:
        pytest.fail("no seed avoided the corrupt file")


def test_tsv_with_only_id_and_text(tmp_path: Path, builtin) -> None:
    for utt in builtin[:3]:
        shutil.copy(utt.path, tmp_path / utt.path.name)
    lines = ["id\ttext", *(f"{u.id}\t{u.text}" for u in builtin[:3])]
    (tmp_path / "transcripts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    utts = load_dataset(str(tmp_path))
    assert [(u.id, u.text) for u in utts] == [(u.id, u.text) for u in builtin[:3]]
    (tmp_path / "transcripts.tsv").write_text("id\ttext\nnosuch\thello\n", encoding="utf-8")
    with pytest.raises(EdgebenchError, match="no audio file named nosuch"):
        load_dataset(str(tmp_path))


# --- perturbation -------------------------------------------------------------------------------------


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2)))


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_white_noise_hits_the_requested_snr(builtin, snr: float) -> None:
    clean = np.asarray(builtin[0].audio)
    noisy = add_noise(clean, snr, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert _snr_db(clean, noisy) == pytest.approx(snr, abs=0.01)


def test_noise_file_is_looped_at_a_random_offset(builtin, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    hum = (0.1 * np.sin(2 * np.pi * 50 * np.arange(SAMPLE_RATE // 3) / SAMPLE_RATE)).astype(np.float32)
    hum += (0.01 * rng.standard_normal(hum.shape[0])).astype(np.float32)  # not periodic in 1/3 s
    sf.write(tmp_path / "hum.wav", hum, SAMPLE_RATE, subtype="FLOAT")
    p = Perturbation(noise_snr_db=5.0, noise=str(tmp_path / "hum.wav"), seed=0)
    [a, b] = perturb(builtin[:2], p)
    for clean, noisy in ((builtin[0], a), (builtin[1], b)):
        assert clean.audio.shape[0] > hum.shape[0]  # longer than the noise: it must loop
        assert _snr_db(np.asarray(clean.audio), np.asarray(noisy.audio)) == pytest.approx(5.0, abs=0.01)
    # the added noise is the recording (scaled), starting somewhere in it
    added = np.asarray(a.audio, dtype=np.float64) - builtin[0].audio
    corr = np.correlate(np.tile(hum, 2).astype(np.float64), added[: hum.shape[0]], mode="valid")
    assert np.max(corr) / (np.linalg.norm(added[: hum.shape[0]]) * np.linalg.norm(hum)) > 0.99


def test_perturbation_is_seeded_per_utterance(builtin) -> None:
    p0 = Perturbation(noise_snr_db=10.0, seed=0)
    a = perturb(builtin[:3], p0)
    b = perturb(builtin[:3], p0)
    c = perturb(builtin[:3], Perturbation(noise_snr_db=10.0, seed=1))
    alone = perturb(builtin[1:2], p0)  # same utterance in a different sample: same noise
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.audio, y.audio)
    assert not np.array_equal(a[0].audio, c[0].audio)
    np.testing.assert_array_equal(a[1].audio, alone[0].audio)
    assert not a[0].audio.flags.writeable
    assert perturb(builtin, Perturbation()) is builtin  # nothing asked: nothing copied


def test_speed_changes_length_and_pitch() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    fast = change_speed(tone, 1.25)
    assert fast.shape[0] == pytest.approx(SAMPLE_RATE / 1.25, abs=2)
    spectrum = np.abs(np.fft.rfft(fast * np.hanning(fast.shape[0])))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / fast.shape[0]
    assert peak_hz == pytest.approx(550, abs=3)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"speed": 3.0}, "--speed must be between 0.5 and 2"),
        ({"noise_snr_db": 500.0}, "--noise-snr must be between"),
        ({"noise": "/x/hum.wav"}, "--noise FILE needs --noise-snr"),
    ],
)
def test_bad_perturbation_options(kwargs, needle) -> None:
    with pytest.raises(EdgebenchError, match=needle):
        Perturbation(**kwargs)


def test_missing_noise_file(builtin) -> None:
    with pytest.raises(EdgebenchError, match=r"Noise file /nonexistent/n\.wav does not exist"):
        perturb(builtin[:1], Perturbation(noise_snr_db=5.0, noise="/nonexistent/n.wav"))


# --- through the CLI ----------------------------------------------------------------------------------


def test_cli_librispeech_limit_seed_and_perturbation_recorded(librispeech) -> None:
    root, expected = librispeech
    args = ["run", "-m", "lstm-ctc:tiny", "--scenario", "transcribe,forward", "--audio-seconds", "2"]
    proc = run_cli(
        *args, *FAST, *QUIET, "--dataset", str(root), "--limit", "3", "--seed", "4",
        "--noise-snr", "20", "--speed", "1.1", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert [d["config"]["scenario"] for d in docs] == ["forward", "transcribe"]
    for doc in docs:
        config = doc["config"]
        assert config["dataset"] == str(root)
        assert config["dataset_limit"] == 3 and config["dataset_seed"] == 4
        assert config["noise_snr_db"] == 20.0 and config["noise"] == "white" and config["speed"] == 1.1
    transcribe = docs[1]["transcribe"]
    assert transcribe["utterances"] == 3
    sampled = [u.id for u in load_dataset(str(root), limit=3, seed=4)]
    seconds = sum(expected[i].duration_s for i in sampled) / 1.1
    assert transcribe["audio_s_total"] == pytest.approx(seconds, rel=1e-3)
    assert [u["id"] for u in transcribe["per_utterance"]] == sampled
    assert [u["reference"] for u in transcribe["per_utterance"]] == [
        expected[i].text.upper() for i in sampled
    ]


def test_cli_plain_run_records_no_sampling_fields() -> None:
    proc = run_cli("run", "-m", "lstm-ctc:tiny", "--scenario", "forward", "--audio-seconds", "1",
                   *FAST, *QUIET, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [doc] = json.loads(proc.stdout)
    for key in ("dataset_limit", "dataset_seed", "noise_snr_db", "noise", "speed"):
        assert doc["config"][key] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--limit", "0"], "--limit must be >= 1"),
        (["--speed", "5"], "--speed must be between"),
        (["--noise", "/nonexistent/n.wav", "--noise-snr", "5"], "/nonexistent/n.wav"),
    ],
)
def test_cli_bad_dataset_options_one_line(args, needle) -> None:
    proc = run_cli("run", "-m", "lstm-ctc:tiny", "--scenario", "forward", *args, *FAST, *QUIET)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edgebench-agent: error: ") and needle in last


def test_cli_librispeech_with_missing_transcript_one_line(librispeech) -> None:
    root, _ = librispeech
    shutil.copy(next(root.rglob("*.flac")), root / "121" / "123852" / "121-123852-5555.flac")
    proc = run_cli("run", "-m", "lstm-ctc:tiny", "--dataset", str(root), *FAST, *QUIET)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "121-123852-5555.flac" in last and "trans.txt" in last
