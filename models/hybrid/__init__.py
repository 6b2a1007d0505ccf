"""Hybrid CTC/attention ASR models (ESPnet-style Conformer and BLSTMP encoders).

Importing this package must not import torch: the registry reads :mod:`.configs` to list models on
machines without the ``torch`` extra. :func:`load_hybrid` imports the torch code on first call and turns a
missing torch into an actionable :class:`~edgebench.agent.errors.MissingExtraError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgebench.agent.errors import require

if TYPE_CHECKING:
    from edgebench.models.hybrid.model import HybridTorchModel


def load_hybrid(*args: Any, **kwargs: Any) -> HybridTorchModel:
    """Lazy front for :func:`edgebench.models.hybrid.model.load_hybrid` (same signature)."""
    require("torch", "torch", "The hybrid CTC/attention models")
    from edgebench.models.hybrid.model import load_hybrid as _load

    return _load(*args, **kwargs)
