"""Load speech datasets: the built-in synthetic set or a user's folder of audio files with transcripts.

Every model is fed 16 kHz mono float32, so the loader normalises here, once, instead of each runtime
doing it (and timing it) differently: stereo is averaged to mono and other sample rates are resampled.

A user folder holds audio files (``.wav``, ``.flac``, ``.ogg``, ``.mp3``: whatever soundfile reads) and
their reference transcripts, either in a ``transcripts.tsv`` (``id<TAB>file<TAB>voice<TAB>text`` with a
header line; ``voice`` and ``id`` are optional, ``id`` defaulting to the file stem) or as sidecar
``NAME.txt`` files next to ``NAME.wav``. Every problem a user can cause (missing folder, no audio,
corrupt file, missing transcript, unsupported sample rate) is an :class:`EdgebenchError` whose one-line
message names the offending file, because the CLI prints only that line.
"""

from __future__ import annotations

import csv
import importlib.resources
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from edgebench.agent.errors import EdgebenchError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
TRANSCRIPTS_FILE = "transcripts.tsv"
BUILTIN = "builtin"


@dataclass(frozen=True, eq=False)
class Utterance:
    """One utterance: 16 kHz mono float32 audio and its reference text.

    ``eq=False`` keeps identity equality/hashing: comparing numpy arrays with ``==`` is ambiguous, and
    utterances are used as dictionary keys by nothing but identity anyway. The audio array is read-only
    because the same utterance is fed to many models and runs; a runtime that modified it in place would
    silently corrupt every later measurement.
    """

    id: str
    audio: np.ndarray
    text: str
    path: Path

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds (the denominator of real-time factors)."""
        return self.audio.shape[0] / SAMPLE_RATE


def load_dataset(source: str = BUILTIN) -> list[Utterance]:
    """Load ``"builtin"`` (the packaged synthetic set) or a directory of audio files with transcripts.

    Utterances come back sorted by file name so runs are reproducible and results line up across devices.
    """
    if source == BUILTIN:
        with _builtin_dir() as directory:
            return _load_directory(directory)
    return _load_directory(Path(source).expanduser())


@contextmanager
def _builtin_dir() -> Iterator[Path]:
    """The packaged ``builtin`` folder as a real path.

    ``importlib.resources`` rather than ``__file__`` so the lookup follows the package (editable or wheel
    installs); ``as_file`` yields the folder itself for ordinary on-disk installs.
    """
    resource = importlib.resources.files("edgebench.agent.datasets") / BUILTIN
    with importlib.resources.as_file(resource) as path:
        yield Path(path)


def _load_directory(directory: Path) -> list[Utterance]:
    if not directory.exists():
        raise EdgebenchError(
            f"Dataset directory {directory} does not exist (use 'builtin' or a folder of audio files)"
        )
    if not directory.is_dir():
        raise EdgebenchError(
            f"Dataset {directory} is not a directory (use 'builtin' or a folder of audio files)"
        )

    tsv = directory / TRANSCRIPTS_FILE
    listed = _read_transcripts_tsv(tsv) if tsv.is_file() else {}

    files = {p.resolve(): p for p in directory.iterdir() if _is_audio(p)}
    for rel in listed:
        path = directory / rel
        if not path.is_file():
            raise EdgebenchError(f"{tsv} lists {rel}, which does not exist in {directory}")
        files.setdefault(path.resolve(), path)
    if not files:
        raise EdgebenchError(
            f"Dataset directory {directory} contains no audio files ({', '.join(AUDIO_EXTENSIONS)})"
        )

    by_resolved = {(directory / rel).resolve(): entry for rel, entry in listed.items()}
    utterances: list[Utterance] = []
    seen: dict[str, Path] = {}
    for path in sorted(files.values(), key=lambda p: p.relative_to(directory).as_posix()):
        entry = by_resolved.get(path.resolve())
        if entry is not None:
            utt_id, text = entry
        else:
            utt_id, text = path.stem, _read_sidecar(path, tsv)
        if not text:
            raise EdgebenchError(f"The transcript for {path} is empty")
        if utt_id in seen:
            raise EdgebenchError(f"Duplicate utterance id {utt_id!r}: {seen[utt_id]} and {path}")
        seen[utt_id] = path
        utterances.append(Utterance(id=utt_id, audio=_read_audio(path), text=text, path=path))
    return utterances


def _is_audio(path: Path) -> bool:
    # Hidden files are skipped: macOS litters copied folders with "._name.wav" resource forks.
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def _read_transcripts_tsv(tsv: Path) -> dict[str, tuple[str, str]]:
    """Map each listed file (relative path as written) to ``(id, text)``."""
    try:
        with tsv.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            columns = reader.fieldnames or []
            missing = [c for c in ("file", "text") if c not in columns]
            if missing:
                raise EdgebenchError(
                    f"{tsv} lacks column(s) {', '.join(missing)}; "
                    "expected a header line 'id<TAB>file<TAB>voice<TAB>text'"
                )
            entries: dict[str, tuple[str, str]] = {}
            for row in reader:
                # DictReader already skips blank lines, so a row without a file name is a real mistake.
                name = (row.get("file") or "").strip()
                text = (row.get("text") or "").strip()
                if not name:
                    raise EdgebenchError(f"{tsv} line {reader.line_num} has no file name")
                if name in entries:
                    raise EdgebenchError(f"{tsv} lists {name} twice")
                utt_id = (row.get("id") or "").strip() or Path(name).stem
                entries[name] = (utt_id, text)
    except UnicodeDecodeError as exc:
        raise EdgebenchError(f"{tsv} is not UTF-8 text ({exc.reason})") from exc
    return entries


def _read_sidecar(audio: Path, tsv: Path) -> str:
    sidecar = audio.with_suffix(".txt")
    if not sidecar.is_file():
        where = f"{tsv.name} or {sidecar.name}" if tsv.is_file() else sidecar.name
        raise EdgebenchError(f"No transcript for {audio}: add it to {where}")
    try:
        return " ".join(sidecar.read_text(encoding="utf-8-sig").split())
    except UnicodeDecodeError as exc:
        raise EdgebenchError(f"Transcript {sidecar} is not UTF-8 text ({exc.reason})") from exc


def _read_audio(path: Path) -> np.ndarray:
    """Read, downmix to mono, resample to 16 kHz; return a read-only contiguous float32 array."""
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # LibsndfileError, RuntimeError, OSError …: all mean "cannot decode this file"
        raise EdgebenchError(f"Cannot read audio file {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise EdgebenchError(f"Audio file {path} contains no samples")
    audio = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        audio = _resample(audio, rate, path)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    audio.setflags(write=False)
    return audio


def _resample(audio: np.ndarray, rate: int, path: Path) -> np.ndarray:
    """Resample to 16 kHz with soxr (light, and what librosa uses by default) or librosa.

    No home-grown fallback: a naive resampler aliases, and that would show up as a WER difference that
    has nothing to do with the model or the device.
    """
    try:
        import soxr
    except ImportError:
        pass
    else:
        return soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    try:
        import librosa
    except ImportError:
        raise EdgebenchError(
            f"Audio {path} is {rate} Hz; install 'edgebench[librosa]' to resample it or convert it to "
            f"{SAMPLE_RATE} Hz (e.g. sox in.wav -r {SAMPLE_RATE} out.wav)"
        ) from None
    return librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
