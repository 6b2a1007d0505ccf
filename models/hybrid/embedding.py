"""Sinusoidal positional encodings (ESPnet ``PositionalEncoding`` and ``RelPositionalEncoding``).

They hold no parameters and no buffers: the tables are computed for the actual length on every call, in
float32 (``sin`` of large positions is inaccurate in half precision) and then cast to the input's dtype.
Not registering buffers keeps the state dict identical to ESPnet's and lets ``module.to(float16)`` work
without special cases; the cost (``O(T·d)`` per call) is negligible next to the layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoid_table(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """``[len(positions), d_model]`` table: sin on even, cos on odd channels (Vaswani et al.)."""
    div = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device)
        * -(math.log(10000.0) / d_model)
    )
    angles = positions.to(torch.float32).unsqueeze(1) * div
    table = torch.zeros(positions.numel(), d_model, dtype=torch.float32, device=positions.device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


class PositionalEncoding(nn.Module):
    """Absolute encoding of the Transformer decoder: ``x * sqrt(d) + pe[:L]``."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, L, d]``."""
        pos = torch.arange(x.size(1), device=x.device)
        return x * self.xscale + sinusoid_table(pos, self.d_model).to(x.dtype).unsqueeze(0)


class RelPositionalEncoding(nn.Module):
    """ESPnet's "latest" relative encoding: scales ``x`` and returns embeddings of the ``2T-1`` relative
    positions ``T-1, …, 0, …, -(T-1)`` for :class:`RelPositionMultiHeadedAttention`."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``[B, T, d]`` -> (``x * sqrt(d)``, ``pos_emb [1, 2T-1, d]``)."""
        t = x.size(1)
        pos = torch.arange(t - 1, -t, -1, device=x.device)
        return x * self.xscale, sinusoid_table(pos, self.d_model).to(x.dtype).unsqueeze(0)
