"""Model names -> :class:`ModelSpec`.

Names are what users type (``whisper-tiny.en``, ``conformer-hybrid:small``). Resolution is torch-free so
listing and validating models is instant; loading happens in :func:`load_torch_model`.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from edgebench.agent.errors import EdgebenchError
from edgebench.models.spec import ModelSpec

if TYPE_CHECKING:
    from pathlib import Path

    from edgebench.models.base import TorchAsrModel

# name -> (hf repo, approx params, n_mels, english only). Counts are OpenAI's published sizes.
_WHISPER: dict[str, tuple[str, int, int, bool]] = {
    "whisper-tiny": ("openai/whisper-tiny", 39_000_000, 80, False),
    "whisper-tiny.en": ("openai/whisper-tiny.en", 39_000_000, 80, True),
    "whisper-base": ("openai/whisper-base", 74_000_000, 80, False),
    "whisper-base.en": ("openai/whisper-base.en", 74_000_000, 80, True),
    "whisper-small": ("openai/whisper-small", 244_000_000, 80, False),
    "whisper-small.en": ("openai/whisper-small.en", 244_000_000, 80, True),
    "whisper-medium": ("openai/whisper-medium", 769_000_000, 80, False),
    "whisper-medium.en": ("openai/whisper-medium.en", 769_000_000, 80, True),
    "whisper-large-v3": ("openai/whisper-large-v3", 1_550_000_000, 128, False),
    "whisper-large-v3-turbo": ("openai/whisper-large-v3-turbo", 809_000_000, 128, False),
}

# Hybrid CTC/attention families: base name -> (encoder kind, default variant).
_HYBRID: dict[str, tuple[str, str]] = {
    "conformer-hybrid": ("conformer", "libri"),
    "lstm-ctc": ("lstm", "libri"),
}


def _hybrid_variants(encoder: str) -> dict[str, object]:
    from edgebench.models.hybrid import configs

    return dict(configs.CONFORMER_VARIANTS if encoder == "conformer" else configs.LSTM_VARIANTS)


def _whisper_spec(name: str) -> ModelSpec:
    repo, params, n_mels, english = _WHISPER[name]
    return ModelSpec(
        name=name,
        family="whisper",
        description=f"OpenAI Whisper {name.removeprefix('whisper-')} (encoder-decoder Transformer)",
        n_mels=n_mels,
        approx_params=params,
        hf_repo=repo,
        english_only=english,
        # HF's Whisper encoder insists on 3000 frames: every input is padded to a 30 s window.
        options={"window_s": 30.0},
    )


def _hybrid_spec(base: str, variant: str) -> ModelSpec:
    from edgebench.models.hybrid.configs import approx_params

    encoder, _default = _HYBRID[base]
    variants = _hybrid_variants(encoder)
    if variant not in variants:
        raise EdgebenchError(
            f"unknown size '{variant}' for {base}: choose one of {', '.join(sorted(variants))} "
            f"(e.g. {base}:{sorted(variants)[0]})"
        )
    config = variants[variant]
    label = "Conformer" if encoder == "conformer" else "BiLSTM (RNNP)"
    return ModelSpec(
        name=f"{base}:{variant}",
        family="hybrid",
        description=f"{label} encoder + CTC/attention hybrid decoder, {variant} size",
        n_mels=config.n_mels,  # type: ignore[attr-defined]
        approx_params=approx_params(config),  # type: ignore[arg-type]
        variant=variant,
        options={"encoder": encoder},
    )


def model_names() -> list[str]:
    """Every canonical name the registry knows (hybrid names with each size variant)."""
    names = list(_WHISPER)
    for base, (encoder, _default) in _HYBRID.items():
        names.extend(f"{base}:{v}" for v in _hybrid_variants(encoder))
    return names


def resolve(name: str) -> ModelSpec:
    """Resolve a user-typed model name; unknown names get a one-line error with close suggestions."""
    from edgebench.models.hf.spec import hf_spec, is_hf_name

    if is_hf_name(name):  # hf:<hub-id-or-path>: case-sensitive, resolved from disk (models/hf/spec.py)
        return hf_spec(name)
    key = name.strip().lower()
    if key in _WHISPER:
        return _whisper_spec(key)
    base, _, variant = key.partition(":")
    if base in _HYBRID:
        return _hybrid_spec(base, variant or _HYBRID[base][1])
    names = list(dict.fromkeys([*_WHISPER, *_HYBRID, *model_names()]))  # once each, in this order
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f" — did you mean {', '.join(close)}?" if close else ""
    raise EdgebenchError(f"unknown model '{name}'{hint} (see `edgebench-agent models`)")


def all_specs() -> list[ModelSpec]:
    return [resolve(n) for n in model_names()]


def prepare_torch_model(spec: ModelSpec, weights: str | Path | None = None) -> None:
    """Import what :func:`load_torch_model` will import and make its files exist (a Whisper converted from
    CTranslate2 is written once to disk), loading no weights: the libraries are the engine's own cost,
    measured before the model loads, as a bare script's imports would be."""
    if "hf_path" in spec.options or spec.family == "whisper":
        from edgebench.agent.errors import require

        require("transformers", "whisper", f"{spec.name} on the torch runtime")
        import transformers.models.whisper.modeling_whisper  # noqa: F401

        if "hf_path" in spec.options:
            import edgebench.models.hf.loader
        else:
            from edgebench.models.whisper.weights import resolve_whisper_weights

            if weights is None:
                _convert_in_child(spec)
            resolve_whisper_weights(spec, weights)  # finds the conversion; a problem shows before the load
        return
    import edgebench.models.hybrid.model  # noqa: F401


def _convert_in_child(spec: ModelSpec) -> None:
    """A Whisper converted from CTranslate2 on first use is converted by a child process: the
    conversion's buffers would otherwise stay in this process and hide the model's share of memory."""
    import subprocess
    import sys

    from edgebench.models.whisper.ct2_convert import converted_dir_for, is_complete
    from edgebench.models.whisper.packaged import packaged
    from edgebench.models.whisper.weights import weights_available

    package = packaged(spec.name)
    if package is None or weights_available(spec) != package.label:
        return
    package_dir = package.directory()  # joined first where the package ships parts (no buffers kept)
    if is_complete(converted_dir_for(package_dir, spec.name)):
        return
    code = (
        "from edgebench.models.registry import resolve\n"
        "from edgebench.models.whisper.weights import resolve_whisper_weights\n"
        f"resolve_whisper_weights(resolve({spec.name!r}))\n"
    )
    # A failure is left to the conversion in this process that follows, which says what went wrong.
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def load_torch_model(
    spec: ModelSpec,
    weights: str | Path | None = None,
    *,
    seed: int = 0,
    beam_size: int = 4,
    language: str = "auto",
    task: str = "transcribe",
) -> TorchAsrModel:
    """Load ``spec`` as a PyTorch model (imports torch and the family's libraries lazily).
    ``language``/``task`` are Whisper's (the runner refuses them for other families)."""
    if "hf_path" in spec.options:  # an hf: name
        from edgebench.models.hf.loader import load_hf

        return load_hf(spec, weights, seed=seed, language=language, task=task)
    if spec.family == "whisper":
        from edgebench.agent.errors import require

        require("transformers", "whisper", f"{spec.name} on the torch runtime")
        from edgebench.models.whisper.torch_model import load_whisper

        return load_whisper(spec, weights_dir=weights, language=language, task=task)
    from edgebench.models.hybrid.model import load_hybrid

    return load_hybrid(spec, state_dict_path=weights, seed=seed, beam_size=beam_size)
