"""Transformer attention decoder (ESPnet ``TransformerDecoder``), with incremental decoding.

Incremental decoding follows ESPnet's ``forward_one_step``: the cache of layer ``i`` holds that layer's
*outputs* for all previous positions; a step computes only the newest position in every layer (its
self-attention still reads keys/values of all positions from the layer input). This is the behaviour
whose per-token cost edgebench measures, so it deliberately mirrors ESPnet rather than a K/V cache.
"""

from __future__ import annotations

import torch
from torch import nn

from edgebench.models.hybrid.attention import MultiHeadedAttention
from edgebench.models.hybrid.configs import ConformerHybridConfig
from edgebench.models.hybrid.conformer import FeedForward
from edgebench.models.hybrid.embedding import PositionalEncoding

DecoderCache = list[torch.Tensor] | None
"""Per-layer outputs for the positions decoded so far; ``None`` before the first step."""


def _causal_mask(length: int, device: torch.device) -> torch.Tensor:
    """``[1, L, L]`` lower-triangular bool mask: position ``i`` sees positions ``<= i``."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril().unsqueeze(0)


class DecoderLayer(nn.Module):
    """Pre-norm self-attention, source attention and feed-forward, each with a residual."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(n_heads, d_model)
        self.src_attn = MultiHeadedAttention(n_heads, d_model)
        self.feed_forward = FeedForward(d_model, ff_dim, nn.ReLU())
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: torch.Tensor,
        tgt_mask: torch.Tensor | None,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        cache: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``tgt``: ``[B, L, d]``; with ``cache`` (``[B, L-1, d]``) only the last position is computed and
        appended to it. ``tgt_mask``: bool ``[B, L, L]`` (causal) or None; ``memory_mask``: ``[B, 1, T]``."""
        residual = tgt
        h = self.norm1(tgt)
        if cache is None:
            q = h
        else:
            q = h[:, -1:, :]
            residual = residual[:, -1:, :]
            tgt_mask = None  # the newest position may attend to every earlier one
        x = residual + self.self_attn(q, h, h, tgt_mask)
        x = x + self.src_attn(self.norm2(x), memory, memory, memory_mask)
        x = x + self.feed_forward(self.norm3(x))
        if cache is not None:
            x = torch.cat([cache, x], dim=1)
        return x


class TransformerDecoder(nn.Module):
    """Token embedding + absolute positions, N decoder layers, final LayerNorm, output projection."""

    def __init__(self, config: ConformerHybridConfig) -> None:
        super().__init__()
        d = config.d_model
        self.embed = nn.Sequential(nn.Embedding(config.vocab_size, d))  # key ``embed.0.weight`` as ESPnet
        self.pos_enc = PositionalEncoding(d)
        self.decoders = nn.ModuleList(
            DecoderLayer(d, config.dec_heads, config.dec_ff_dim) for _ in range(config.dec_layers)
        )
        self.after_norm = nn.LayerNorm(d)
        self.output_layer = nn.Linear(d, config.vocab_size)

    def forward(self, ys_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass: ``ys_in [B, L]`` -> logits ``[B, L, V]`` (causal self-attention)."""
        x = self.pos_enc(self.embed(ys_in))
        causal = _causal_mask(ys_in.size(1), ys_in.device)
        for layer in self.decoders:
            x = layer(x, causal, memory, memory_mask)
        return self.output_layer(self.after_norm(x))

    def init_state(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> DecoderCache:
        return None

    def step(
        self, ys: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor, state: DecoderCache
    ) -> tuple[torch.Tensor, DecoderCache]:
        """Logits ``[B, V]`` for the token after ``ys [B, L]`` (``<sos>`` first), and the updated cache."""
        x = self.pos_enc(self.embed(ys))
        # Without a cache every position is computed, so the prompt needs the causal mask.
        causal = _causal_mask(ys.size(1), ys.device) if state is None else None
        new_cache: list[torch.Tensor] = []
        for i, layer in enumerate(self.decoders):
            x = layer(x, causal, memory, memory_mask, None if state is None else state[i])
            new_cache.append(x)
        return self.output_layer(self.after_norm(x[:, -1])), new_cache

    @staticmethod
    def select_state(state: DecoderCache, index: torch.Tensor) -> DecoderCache:
        """Reorder/duplicate hypotheses (beam search) along the batch dimension."""
        return None if state is None else [c.index_select(0, index) for c in state]
