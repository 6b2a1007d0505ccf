"""ESPnet ``Conv2dSubsampling``: two 3x3 stride-2 convolutions that cut the frame rate by 4 (10 ms -> 40 ms).

The 4x reduction is what makes self-attention over a whole utterance affordable, and it sets the maximum
output length of decoding (one token per 40 ms frame at most).
"""

from __future__ import annotations

import torch
from torch import nn


class Conv2dSubsampling(nn.Module):
    """Conv2d(1, d, 3, 2) + ReLU, Conv2d(d, d, 3, 2) + ReLU, Linear(d * F', d); no padding (as ESPnet)."""

    def __init__(self, idim: int, odim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, odim, 3, 2),
            nn.ReLU(),
            nn.Conv2d(odim, odim, 3, 2),
            nn.ReLU(),
        )
        # A Sequential so the key is ``out.0.weight`` like ESPnet (whose ``out`` also holds the pos. enc.).
        self.out = nn.Sequential(nn.Linear(odim * (((idim - 1) // 2 - 1) // 2), odim))

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames for ``lengths`` input frames. Unpadded valid inputs never feed a padded
        output: output frame ``j`` reads inputs ``2j … 2j+2``, all inside the valid range."""
        return ((lengths - 1) // 2 - 1) // 2

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``[B, T, idim]`` -> (``[B, T', odim]``, lengths ``[B]``)."""
        x = self.conv(x.unsqueeze(1))  # [B, C, T', F']
        b, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * f))
        return x, self.output_lengths(lengths)
