"""``hf:<model-id-or-path>`` -> :class:`ModelSpec`, torch-free.

The name is resolved locally, because edge devices are often offline: a directory (anything that exists
on disk, or starts with ``/``, ``.`` or ``~``) is used as is; otherwise the name is a hub repository id,
looked up in the Hugging Face cache, and downloaded only when ``HF_HUB_OFFLINE`` is not set. What the
model *is* comes from its ``config.json``:

- ``architectures`` ending in ``ForCausalLM`` / ``LMHeadModel`` -> family ``causal-lm`` (forward and
  generate with forced token counts on random prompt ids, :mod:`edgebench.models.hf.causal_lm`);
- ``WhisperForConditionalGeneration`` (or ``model_type`` ``whisper``) -> family ``whisper``, so it runs
  exactly like the zoo's Whisper models (same front end, decoding rules and 30 s window).

Anything else is refused with a one-line error naming the architecture.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

from edgebench.agent.errors import EdgebenchError
from edgebench.models.spec import ModelSpec
from edgebench.models.whisper.weights import WEIGHT_FILES, hf_hub_cache_dir, hub_offline

logger = logging.getLogger(__name__)

PREFIX = "hf:"
CAUSAL_LM = "causal-lm"
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
WHISPER_ARCHITECTURE = "WhisperForConditionalGeneration"
DEFAULT_PROMPT_TOKENS = 16
"""Prompt length for causal LMs (optimum-benchmark's default sequence_length): generate measures
prefill over this many tokens, then the forced new tokens."""


def is_hf_name(name: str) -> bool:
    return name.strip().startswith(PREFIX)


def hf_spec(name: str) -> ModelSpec:
    """Resolve ``hf:...`` (see the module docstring); every failure is one line naming what to do."""
    target = name.strip()[len(PREFIX) :].strip()
    if not target:
        raise EdgebenchError("hf: needs a model: hf:<hub-id> (e.g. hf:gpt2) or hf:<directory>")
    directory, source = locate(target)
    config = _read_config(directory)
    architectures = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type", ""))
    common = {
        "name": f"{PREFIX}{target}",
        "approx_params": _approx_params(directory),
        "hf_repo": None if source == "local-dir" else target,
    }
    options: dict[str, object] = {"hf_path": str(directory), "hf_source": source}
    if WHISPER_ARCHITECTURE in architectures or (not architectures and model_type == "whisper"):
        return ModelSpec(
            family="whisper",
            description=f"Hugging Face Whisper-compatible speech model ({target})",
            n_mels=int(config.get("num_mel_bins", 80)),
            english_only=_english_only(config),
            options={**options, "window_s": 30.0},
            **common,  # type: ignore[arg-type]
        )
    if any(a.endswith(CAUSAL_SUFFIXES) for a in architectures):
        return ModelSpec(
            family=CAUSAL_LM,
            description=f"Hugging Face causal language model {architectures[0]} ({target})",
            n_mels=80,  # unused: a causal LM takes token ids, not log-mel features
            options={**options, "prompt_tokens": DEFAULT_PROMPT_TOKENS},
            **common,  # type: ignore[arg-type]
        )
    what = ", ".join(architectures) or f"model_type '{model_type or '?'}' without 'architectures'"
    raise EdgebenchError(
        f"hf:{target} is {what}: edgebench runs causal LMs (*ForCausalLM, *LMHeadModel) and "
        f"{WHISPER_ARCHITECTURE}-compatible speech models (save the model with save_pretrained)"
    )


def locate(target: str) -> tuple[Path, str]:
    """The directory holding ``target``'s files and where it came from: 'local-dir', 'hf-cache', 'hub'."""
    path = Path(target).expanduser()
    if path.exists() or target.startswith(("/", ".", "~")):
        if not path.is_dir():
            raise EdgebenchError(f"hf:{target}: no such directory")
        _check_complete(path, f"hf:{target}")
        return path, "local-dir"
    cached = _cached_snapshot(target)
    if cached is not None:
        return cached, "hf-cache"
    if hub_offline():
        raise EdgebenchError(
            f"hf:{target} is not a local directory and not in the Hugging Face cache ({hf_hub_cache_dir()}), "
            f"and HF_HUB_OFFLINE is set: run `hf download {target}` on a machine with internet and copy "
            "the cache, or pass hf:<directory>"
        )
    return _download(target), "hub"


def _check_complete(directory: Path, what: str) -> None:
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if missing:
        raise EdgebenchError(
            f"{what} ({directory}) is not a Hugging Face model directory: missing {' and '.join(missing)}"
        )


def _cached_snapshot(repo: str) -> Path | None:
    """The cache's snapshot for ``repo`` (``models--ORG--NAME/refs/main`` names it), read directly so
    that resolving a name needs no huggingface_hub import."""
    repo_dir = hf_hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    try:
        revision = (repo_dir / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = repo_dir / "snapshots" / revision
    try:
        _check_complete(snapshot, f"hf:{repo}")
    except EdgebenchError:
        return None
    return snapshot


def _download(repo: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        path = Path(
            snapshot_download(
                repo,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"],
                cache_dir=hf_hub_cache_dir(),
            )
        )
    except Exception as exc:  # offline, 404, gated, rate limit: all mean "not available here"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EdgebenchError(f"hf:{repo}: not found locally and the hub download failed ({reason})") from exc
    _check_complete(path, f"hf:{repo}")
    return path


def _read_config(directory: Path) -> dict[str, object]:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EdgebenchError(f"{directory / 'config.json'} is not readable JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise EdgebenchError(f"{directory / 'config.json'} is not a JSON object")
    return config


def _english_only(config: dict[str, object]) -> bool:
    # Whisper's English-only checkpoints have the smaller 51864-token vocabulary.
    return config.get("vocab_size") == 51864


def _approx_params(directory: Path) -> int:
    """Parameter count from the safetensors headers (exact, no tensor is read), else bytes / 4."""
    total = 0
    files = sorted(directory.glob("*.safetensors"))
    for file in files:
        try:
            with file.open("rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(length))
        except (OSError, ValueError, struct.error) as exc:
            logger.debug("cannot read safetensors header of %s: %s", file, exc)
            return 0
        for key, tensor in header.items():
            if key != "__metadata__":
                count = 1
                for dim in tensor.get("shape", []):
                    count *= int(dim)
                total += count
    if files:
        return total
    bins = [f for f in directory.glob("*.bin") if f.is_file()]
    return sum(os.path.getsize(f) for f in bins) // 4
