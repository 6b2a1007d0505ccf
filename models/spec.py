"""What a model name means: family, size configuration and where its weights come from.

A :class:`ModelSpec` is pure data (no torch import) so that ``edgebench-agent models`` and ``--help`` stay
fast; the heavy loading happens in the family packages (``models.whisper``, ``models.hybrid``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Family = Literal["whisper", "hybrid", "causal-lm"]


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model name."""

    name: str
    """Canonical name, e.g. ``whisper-tiny.en`` or ``conformer-hybrid:small``."""
    family: Family
    description: str
    n_mels: int
    """Log-mel bins the model expects from the shared front end (80 or 128)."""
    approx_params: int
    """Parameter count of the whole model, for listings (exact counts come from the loaded model)."""
    hf_repo: str | None = None
    """Hugging Face repository id for Whisper models."""
    english_only: bool = False
    variant: str | None = None
    """Size variant for the hybrid models (``libri``, ``small``, …)."""
    options: dict[str, object] = field(default_factory=dict)
    """Family-specific configuration (encoder type, layer sizes, …)."""
