"""LSTM attention decoder with location-aware attention (ESPnet1 ``Decoder``/``RNNDecoder``, 1 layer).

Per step: attend with the previous decoder state and previous attention weights, feed
``[embed(y_prev); context]`` to an ``LSTMCell``, project the new state to the vocabulary. The state carried
between steps is (h, c, attention weights, precomputed ``mlp_enc(memory)``); unlike the Transformer decoder
each step costs the same regardless of the output length so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgebench.models.hybrid.attention import LocationAttention
from edgebench.models.hybrid.configs import LstmHybridConfig


@dataclass
class RnnDecoderState:
    """Batch-first decoder state; every tensor's first dimension is the hypothesis/batch index."""

    h: torch.Tensor
    c: torch.Tensor
    att_w: torch.Tensor
    pre_enc: torch.Tensor

    def index_select(self, index: torch.Tensor) -> RnnDecoderState:
        return RnnDecoderState(
            *(t.index_select(0, index) for t in (self.h, self.c, self.att_w, self.pre_enc))
        )


class RnnDecoder(nn.Module):
    """Embedding(V, dunits), LSTMCell(dunits + eprojs, dunits), Linear(dunits, V), ``AttLoc``."""

    def __init__(self, config: LstmHybridConfig) -> None:
        super().__init__()
        self.dunits = config.dec_units
        self.embed = nn.Embedding(config.vocab_size, config.dec_units)
        # A ModuleList (ESPnet's ``decoder.0``) so more layers could be added without renaming keys.
        self.decoder = nn.ModuleList([nn.LSTMCell(config.dec_units + config.proj, config.dec_units)])
        self.output = nn.Linear(config.dec_units, config.vocab_size)
        self.att = LocationAttention(
            config.proj, config.dec_units, config.att_dim, config.aconv_chans, config.aconv_filts
        )

    def init_state(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> RnnDecoderState:
        """Zero (h, c), uniform attention over valid frames; ``memory_mask``: bool ``[B, 1, T]``."""
        b = memory.size(0)
        zeros = memory.new_zeros(b, self.dunits)
        return RnnDecoderState(
            h=zeros,
            c=zeros.clone(),
            att_w=LocationAttention.initial_weights(memory_mask[:, 0, :], memory.dtype),
            pre_enc=self.att.precompute(memory),
        )

    def step(
        self, ys: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor, state: RnnDecoderState
    ) -> tuple[torch.Tensor, RnnDecoderState]:
        """Logits ``[B, V]`` for the token after ``ys [B, L]`` (only ``ys[:, -1]`` is read)."""
        context, att_w = self.att(memory, state.pre_enc, memory_mask[:, 0, :], state.h, state.att_w)
        x = torch.cat([self.embed(ys[:, -1]), context], dim=1)
        h, c = self.decoder[0](x, (state.h, state.c))
        return self.output(h), RnnDecoderState(h=h, c=c, att_w=att_w, pre_enc=state.pre_enc)

    def forward(self, ys_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass: ``ys_in [B, L]`` -> logits ``[B, L, V]`` (one step per position)."""
        state = self.init_state(memory, memory_mask)
        logits = []
        for i in range(ys_in.size(1)):
            out, state = self.step(ys_in[:, : i + 1], memory, memory_mask, state)
            logits.append(out)
        return torch.stack(logits, dim=1)

    @staticmethod
    def select_state(state: RnnDecoderState, index: torch.Tensor) -> RnnDecoderState:
        return state.index_select(index)
