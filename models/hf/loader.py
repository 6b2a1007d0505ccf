"""Load ``hf:`` models in PyTorch (imports torch and transformers: only the torch runtime calls this)."""

from __future__ import annotations

from pathlib import Path

from edgebench.agent.errors import EdgebenchError, require
from edgebench.models.base import ModelInfo, TorchAsrModel
from edgebench.models.hf.spec import CAUSAL_LM, DEFAULT_PROMPT_TOKENS
from edgebench.models.spec import ModelSpec


def load_hf(
    spec: ModelSpec,
    weights: str | Path | None = None,
    *,
    seed: int = 0,
    language: str = "auto",
    task: str = "transcribe",
) -> TorchAsrModel:
    """An ``hf:`` spec as a :class:`TorchAsrModel`: causal LMs as :class:`HfCausalLM`, Whisper-compatible
    models through the zoo's Whisper loader (same decoding rules and front end). The attention
    implementation is transformers' default; ``--attn-impl`` switches it after loading (torch_variants)."""
    if weights is not None:
        raise EdgebenchError(f"--weights does not apply to {spec.name}: the model's location is in its name")
    require("transformers", "whisper", f"{spec.name} on the torch runtime")
    path = Path(str(spec.options["hf_path"]))
    if spec.family == "whisper":
        from edgebench.models.whisper.torch_model import load_whisper

        return load_whisper(spec, weights_dir=path, language=language, task=task)
    if spec.family != CAUSAL_LM:
        raise EdgebenchError(f"{spec.name}: unsupported family {spec.family}")

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from edgebench.models.hf.causal_lm import HfCausalLM

    hf_logging.disable_progress_bar()
    try:
        module = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgebenchError(f"cannot load {spec.name} from {path}: {reason}") from exc
    module.eval()
    source = str(path) if spec.options.get("hf_source") == "local-dir" else str(spec.options["hf_source"])
    info = ModelInfo(trained=True, weights_source=source, size_on_disk_bytes=_size_on_disk(path))

    prompt = int(spec.options.get("prompt_tokens", DEFAULT_PROMPT_TOKENS))  # type: ignore[call-overload]
    return HfCausalLM(spec, module, info, prompt_tokens=prompt, seed=seed)


def _size_on_disk(directory: Path) -> int:
    """Bytes of the model's files (following the HF cache's symlinks to blobs)."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
