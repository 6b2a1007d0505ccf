"""Load speech datasets: the built-in synthetic set or a user's folder of audio files with transcripts.

Every model is fed 16 kHz mono float32, so the loader normalises here, once, instead of each runtime
doing it (and timing it) differently: stereo is averaged to mono and other sample rates are resampled.

Three folder layouts are read (``docs/datasets.md``):

- a flat folder of audio files (``.wav``, ``.flac``, ``.ogg``, ``.mp3``: whatever soundfile reads) with a
  ``transcripts.tsv`` (header line; columns ``file`` and ``text``, optional ``id``, ``voice`` and
  ``language`` (a code such as ``de``: the spoken language, scored per language); or just ``id`` and
  ``text``, the audio file then being the one whose stem is the id);
- the same folder with sidecar ``NAME.txt`` files next to ``NAME.wav``;
- the LibriSpeech layout (``SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` with ``ID TEXT`` lines beside
  ``ID.flac``), recognised by its ``*.trans.txt`` files, so ``--dataset .../LibriSpeech/test-clean`` works.

The folder is indexed first (ids, paths, texts) and audio is decoded only for the utterances kept, so a
``limit`` (a seeded random sample, kept in dataset order) costs only what it reads: 20 utterances of
test-clean do not decode all 2620. Every problem a user can cause (missing folder, no audio, corrupt
file, missing transcript, unsupported sample rate) is an :class:`EdgebenchError` whose one-line message
names the offending file, because the CLI prints only that line.
"""

from __future__ import annotations

import csv
import importlib.resources
import logging
import random
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.results.schema import LANGUAGE_CODE

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
TRANSCRIPTS_FILE = "transcripts.tsv"
LIBRISPEECH_GLOB = "*.trans.txt"
BUILTIN = "builtin"
BUILTIN_MULTILINGUAL = "builtin-multilingual"
"""The packaged multilingual slice: a few utterances each in German, French, Spanish and English."""
BUILTINS = {BUILTIN: BUILTIN, BUILTIN_MULTILINGUAL: "builtin_multilingual"}
"""Dataset names of the packaged sets -> their folder in ``edgebench.agent.datasets``."""


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
    language: str | None = None
    """The spoken language's code where the dataset says (a ``language`` column), else None."""

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds (the denominator of real-time factors)."""
        return self.audio.shape[0] / SAMPLE_RATE


@dataclass(frozen=True)
class Entry:
    """An indexed utterance whose audio has not been decoded yet."""

    id: str
    path: Path
    text: str
    language: str | None = None


def load_dataset(
    source: str = BUILTIN, *, limit: int | None = None, seed: int = 0, transcripts: bool = True
) -> list[Utterance]:
    """Load ``"builtin"`` (the packaged synthetic English set), ``"builtin-multilingual"`` (its
    multilingual slice) or a directory in one of the documented layouts.

    ``transcripts=False`` (only timing scenarios run: forward, generate, load): a flat folder of audio
    without transcripts is fine, its utterances' text is empty; transcripts that are there are read.

    Utterances come back sorted by file path so runs are reproducible and results line up across devices.
    ``limit`` keeps a random sample of that many utterances drawn with ``seed`` (same seed and folder:
    the same utterances on every machine), still in dataset order; only those are decoded.
    """
    if limit is not None and limit < 1:
        raise EdgebenchError(f"--limit must be >= 1 (got {limit})")
    if source in BUILTINS:
        with _builtin_dir(BUILTINS[source]) as directory:
            return read_entries(sample(index_dataset(directory), limit, seed))
    return read_entries(sample(index_dataset(Path(source).expanduser(), transcripts), limit, seed))


def sample(entries: list[Entry], limit: int | None, seed: int) -> list[Entry]:
    """``limit`` entries drawn uniformly with ``random.Random(seed)``, returned in their original order.

    ``random.Random`` with an integer seed draws the same sample on every platform, which is what makes
    ``--limit 100 --seed 0`` the same 100 utterances on a Pi and on a laptop.
    """
    if limit is None or limit >= len(entries):
        return entries
    keep = sorted(random.Random(seed).sample(range(len(entries)), limit))
    return [entries[i] for i in keep]


def read_entries(entries: list[Entry]) -> list[Utterance]:
    """Decode the audio of indexed entries."""
    return [
        Utterance(id=e.id, audio=read_audio(e.path), text=e.text, path=e.path, language=e.language)
        for e in entries
    ]


@contextmanager
def _builtin_dir(folder: str = BUILTIN) -> Iterator[Path]:
    """A packaged set's folder as a real path.

    ``importlib.resources`` rather than ``__file__`` so the lookup follows the package (editable or wheel
    installs); ``as_file`` yields the folder itself for ordinary on-disk installs.
    """
    resource = importlib.resources.files("edgebench.agent.datasets") / folder
    with importlib.resources.as_file(resource) as path:
        yield Path(path)


def index_dataset(directory: Path, transcripts: bool = True) -> list[Entry]:
    """Ids, audio paths and transcripts of a dataset folder, sorted by path; no audio is decoded."""
    if not directory.exists():
        raise EdgebenchError(
            f"Dataset directory {directory} does not exist (use 'builtin' or a folder of audio files)"
        )
    if not directory.is_dir():
        raise EdgebenchError(
            f"Dataset {directory} is not a directory (use 'builtin' or a folder of audio files)"
        )
    tsv = directory / TRANSCRIPTS_FILE
    if not tsv.is_file() and next(directory.rglob(LIBRISPEECH_GLOB), None) is not None:
        return _index_librispeech(directory)
    return _index_flat(directory, tsv, transcripts)


def _index_flat(directory: Path, tsv: Path, transcripts: bool = True) -> list[Entry]:
    """A flat folder: ``transcripts.tsv`` and/or sidecar ``.txt`` files."""
    files = {p.resolve(): p for p in directory.iterdir() if _is_audio(p)}
    listed = _read_transcripts_tsv(tsv, list(files.values())) if tsv.is_file() else {}
    for rel in listed:
        path = directory / rel
        if not path.is_file():
            raise EdgebenchError(f"{tsv} lists {rel}, which does not exist in {directory}")
        files.setdefault(path.resolve(), path)
    if not files:
        raise EdgebenchError(
            f"Dataset directory {directory} contains no audio files ({', '.join(AUDIO_EXTENSIONS)}) "
            f"and no LibriSpeech {LIBRISPEECH_GLOB} transcripts"
        )

    by_resolved = {(directory / rel).resolve(): entry for rel, entry in listed.items()}
    entries: list[Entry] = []
    for path in sorted(files.values(), key=lambda p: p.relative_to(directory).as_posix()):
        listed_entry = by_resolved.get(path.resolve())
        language = None
        if listed_entry is not None:
            utt_id, text, language = listed_entry
        elif transcripts or path.with_suffix(".txt").is_file():
            utt_id, text = path.stem, _read_sidecar(path, tsv)
        else:
            utt_id, text = path.stem, ""  # timing only: nothing will be scored
        entries.append(Entry(utt_id, path, text, language))
    return _checked(entries, transcripts)


def _index_librispeech(directory: Path) -> list[Entry]:
    """LibriSpeech: every ``*.trans.txt`` holds ``ID TEXT`` lines for the ``ID.flac`` files beside it.

    Audio files in those chapter folders that no transcript lists are an error rather than skipped: a
    half-copied corpus would otherwise be measured silently as a smaller one.
    """
    entries: list[Entry] = []
    listed: set[Path] = set()
    chapters: set[Path] = set()
    for trans in sorted(directory.rglob(LIBRISPEECH_GLOB)):
        chapters.add(trans.parent)
        try:
            lines = trans.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise EdgebenchError(f"{trans} is not UTF-8 text ({exc.reason})") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            path = _audio_for_id(trans.parent, utt_id)
            if path is None:
                raise EdgebenchError(
                    f"{trans} line {number} names {utt_id}, but {trans.parent} has no {utt_id}.flac"
                )
            listed.add(path.resolve())
            entries.append(Entry(utt_id, path, " ".join(text.split())))
    for chapter in sorted(chapters):
        for path in sorted(chapter.iterdir()):
            if _is_audio(path) and path.resolve() not in listed:
                raise EdgebenchError(
                    f"No transcript for {path}: add a line '{path.stem} TEXT' to the "
                    f"{LIBRISPEECH_GLOB} file in {chapter}"
                )
    entries.sort(key=lambda e: e.path.relative_to(directory).as_posix())
    return _checked(entries)


def _audio_for_id(folder: Path, utt_id: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        path = folder / f"{utt_id}{ext}"
        if path.is_file():
            return path
    return None


def _checked(entries: list[Entry], transcripts: bool = True) -> list[Entry]:
    """Empty transcripts (where they are needed) and duplicate ids are errors whatever the layout."""
    seen: dict[str, Path] = {}
    for entry in entries:
        if transcripts and not entry.text:
            raise EdgebenchError(f"The transcript for {entry.path} is empty")
        if entry.id in seen:
            raise EdgebenchError(f"Duplicate utterance id {entry.id!r}: {seen[entry.id]} and {entry.path}")
        seen[entry.id] = entry.path
    return entries


def _is_audio(path: Path) -> bool:
    # Hidden files are skipped: macOS litters copied folders with "._name.wav" resource forks.
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def _read_transcripts_tsv(tsv: Path, audio_files: Iterable[Path]) -> dict[str, tuple[str, str, str | None]]:
    """Map each listed file (relative path as written) to ``(id, text, language)``.

    Without a ``file`` column the ``id`` names the audio file by its stem (``utt01`` -> ``utt01.flac``),
    the shortest form people write by hand.
    """
    by_stem: dict[str, Path] = {}
    for path in audio_files:
        by_stem.setdefault(path.stem, path)
    try:
        with tsv.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            columns = reader.fieldnames or []
            key = "file" if "file" in columns else "id"
            missing = [c for c in (key, "text") if c not in columns]
            if missing:
                raise EdgebenchError(
                    f"{tsv} lacks column(s) {', '.join(missing)}; expected a header line "
                    "'id<TAB>file<TAB>voice<TAB>text' or 'id<TAB>text'"
                )
            entries: dict[str, tuple[str, str, str | None]] = {}
            for row in reader:
                # DictReader already skips blank lines, so a row without a name is a real mistake.
                name = (row.get(key) or "").strip()
                text = (row.get("text") or "").strip()
                if not name:
                    raise EdgebenchError(f"{tsv} line {reader.line_num} has no {key}")
                if key == "id":
                    utt_id = name
                    if name not in by_stem:
                        raise EdgebenchError(
                            f"{tsv} line {reader.line_num}: no audio file named {name}.* in {tsv.parent}"
                        )
                    name = by_stem[name].name
                else:
                    utt_id = (row.get("id") or "").strip() or Path(name).stem
                if name in entries:
                    raise EdgebenchError(f"{tsv} lists {name} twice")
                language = (row.get("language") or "").strip().lower() or None
                if language is not None and not re.fullmatch(LANGUAGE_CODE, language):
                    raise EdgebenchError(
                        f"{tsv} line {reader.line_num}: language {language!a} is not a language code "
                        "such as en, de or haw (two or three letters)"
                    )
                entries[name] = (utt_id, text, language)
    except UnicodeDecodeError as exc:
        raise EdgebenchError(f"{tsv} is not UTF-8 text ({exc.reason})") from exc
    return entries


def _read_sidecar(audio: Path, tsv: Path) -> str:
    sidecar = audio.with_suffix(".txt")
    if not sidecar.is_file():
        where = f"{tsv.name} or {sidecar.name}" if tsv.is_file() else sidecar.name
        raise EdgebenchError(
            f"No transcript for {audio}: add it to {where} (transcribe scores WER against it; "
            "--scenario forward,generate measure timing without transcripts)"
        )
    try:
        return " ".join(sidecar.read_text(encoding="utf-8-sig").split())
    except UnicodeDecodeError as exc:
        raise EdgebenchError(f"Transcript {sidecar} is not UTF-8 text ({exc.reason})") from exc


def read_audio(path: Path) -> np.ndarray:
    """Read, downmix to mono, resample to 16 kHz; return a read-only contiguous float32 array."""
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # LibsndfileError, RuntimeError, OSError …: all mean "cannot decode this file"
        raise EdgebenchError(f"Cannot read audio file {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise EdgebenchError(f"Audio file {path} contains no samples")
    audio = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        audio = resample(audio, rate, SAMPLE_RATE, f"Audio {path} is {rate} Hz")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    audio.setflags(write=False)
    return audio


def resample(audio: np.ndarray, rate: float, target: float, what: str) -> np.ndarray:
    """Resample from ``rate`` to ``target`` Hz with soxr (light, and what librosa uses by default) or
    librosa. Rates may be fractional: speed perturbation resamples from ``16000 * factor``.

    No home-grown fallback: a naive resampler aliases, and that would show up as a WER difference that
    has nothing to do with the model or the device. ``what`` starts the error when neither is installed.
    """
    try:
        import soxr
    except ImportError:
        pass
    else:
        return soxr.resample(audio, rate, target, quality="HQ")
    try:
        import librosa
    except ImportError:
        raise EdgebenchError(
            f"{what}; install 'edgebench[librosa]' to resample it or convert it to "
            f"{SAMPLE_RATE} Hz (e.g. sox in.wav -r {SAMPLE_RATE} out.wav)"
        ) from None
    return librosa.resample(audio, orig_sr=rate, target_sr=target)
