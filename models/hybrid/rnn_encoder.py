"""BLSTMP encoder (ESPnet1 ``RNNP``, ``etype=blstmp``): bidirectional LSTM layers, each followed by a
linear projection, with frame subsampling between layers.

Every layer is its own one-layer ``nn.LSTM`` because the projection and the subsampling sit between
layers. Sequences are packed so the backward direction of each item starts at its own last frame: a
padded batch then produces exactly the per-item outputs (and the dynamic-int8 LSTM accepts packed input).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from edgebench.models.hybrid.configs import LstmHybridConfig


class BlstmpEncoder(nn.Module):
    """``layers`` x (BiLSTM -> optional subsampling -> Linear(2*cells, proj) [-> tanh, except last])."""

    min_frames = 1

    def __init__(self, config: LstmHybridConfig) -> None:
        super().__init__()
        self.birnn = nn.ModuleList()
        self.bt = nn.ModuleList()
        n_in = config.n_mels
        for _ in range(config.layers):
            self.birnn.append(nn.LSTM(n_in, config.cells, 1, batch_first=True, bidirectional=True))
            self.bt.append(nn.Linear(2 * config.cells, config.proj))
            n_in = config.proj
        self.subsample = config.subsample
        self.output_size = config.proj

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``[B, T, n_mels]`` -> (``[B, T', proj]``, output lengths ``[B]``)."""
        last = len(self.birnn) - 1
        for i, (rnn, proj) in enumerate(zip(self.birnn, self.bt, strict=True)):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            ys, _ = rnn(packed)
            ys, _ = pad_packed_sequence(ys, batch_first=True, total_length=x.size(1))
            sub = self.subsample[i]
            if sub > 1:
                ys = ys[:, ::sub]
                lengths = (lengths + 1) // sub
            x = proj(ys)
            if i < last:
                x = torch.tanh(x)
        return x, lengths
