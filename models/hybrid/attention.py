"""Attention modules: plain and relative-position multi-head attention, and location-aware attention.

Structure and parameter names follow ESPnet (``MultiHeadedAttention``, ``RelPositionMultiHeadedAttention``
with ``rel_pos_type=latest``, ``AttLoc``) so that ESPnet state dicts map onto these modules key for key.

Two rules keep the modules usable by every runtime edgebench measures:

* masked scores are filled with ``finfo(dtype).min`` rather than a float32 constant, so float16 works;
* Linear layers are only ever *called*, never read through ``.weight``, so
  ``torch.ao.quantization.quantize_dynamic`` can swap them for int8 versions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadedAttention(nn.Module):
    """Scaled dot-product multi-head attention with q/k/v/out projections (all with bias)."""

    def __init__(self, n_head: int, n_feat: int) -> None:
        super().__init__()
        if n_feat % n_head:
            raise ValueError(f"attention dim {n_feat} is not divisible by {n_head} heads")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)

    def forward_qkv(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project and split heads: each ``[B, h, T, d_k]``."""
        b = query.size(0)
        q = self.linear_q(query).view(b, -1, self.h, self.d_k).transpose(1, 2)
        k = self.linear_k(key).view(b, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(value).view(b, -1, self.h, self.d_k).transpose(1, 2)
        return q, k, v

    def forward_attention(
        self, value: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Softmax over keys (masked keys get exactly zero weight), weighted sum, output projection.

        ``mask``: bool ``[B, 1 or T1, T2]``, True = valid key.
        """
        if mask is not None:
            pad = ~mask.unsqueeze(1)  # [B, 1, *, T2]
            scores = scores.masked_fill(pad, torch.finfo(scores.dtype).min)
            attn = torch.softmax(scores, dim=-1).masked_fill(pad, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        x = torch.matmul(attn, value)  # [B, h, T1, d_k]
        x = x.transpose(1, 2).reshape(value.size(0), -1, self.h * self.d_k)
        return self.linear_out(x)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        q, k, v = self.forward_qkv(query, key, value)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        return self.forward_attention(v, scores, mask)


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """Turn scores against the ``2T-1`` relative positions into ``[.., T, T]`` scores (Transformer-XL trick).

    Input column ``k`` of query row ``i`` is relative position ``T-1-k``; output ``[i, j]`` holds the score
    of relative position ``i - j``. Done with a pad-and-reshape instead of a gather, as in ESPnet.
    """
    b, h, t1, n = x.shape
    zero_pad = x.new_zeros(b, h, t1, 1)
    x_padded = torch.cat([zero_pad, x], dim=-1).view(b, h, n + 1, t1)
    return x_padded[:, :, 1:].reshape(b, h, t1, n)[:, :, :, : n // 2 + 1]


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    """Self-attention with relative positional encoding (Conformer; Dai et al. 2019, ESPnet "latest")."""

    def __init__(self, n_head: int, n_feat: int) -> None:
        super().__init__(n_head, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        # Learned content/position biases u and v of Transformer-XL, one per head.
        self.pos_bias_u = nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        pos_emb: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """``pos_emb``: ``[1, 2T-1, d]`` from :class:`RelPositionalEncoding`."""
        q, k, v = self.forward_qkv(query, key, value)
        q = q.transpose(1, 2)  # [B, T, h, d_k]
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        matrix_ac = torch.matmul(q_u, k.transpose(-2, -1))
        matrix_bd = rel_shift(torch.matmul(q_v, p.transpose(-2, -1)))
        scores = (matrix_ac + matrix_bd) / math.sqrt(self.d_k)
        return self.forward_attention(v, scores, mask)


class LocationAttention(nn.Module):
    """ESPnet ``AttLoc``: content attention plus a convolution over the previous attention weights.

    The location term is what lets an LSTM decoder move monotonically through long utterances; ``scaling``
    (2.0, ESPnet's default) sharpens the softmax.
    """

    def __init__(
        self, eprojs: int, dunits: int, att_dim: int, aconv_chans: int, aconv_filts: int, scaling: float = 2.0
    ) -> None:
        super().__init__()
        self.mlp_enc = nn.Linear(eprojs, att_dim)
        self.mlp_dec = nn.Linear(dunits, att_dim, bias=False)
        self.mlp_att = nn.Linear(aconv_chans, att_dim, bias=False)
        self.loc_conv = nn.Conv2d(
            1, aconv_chans, (1, 2 * aconv_filts + 1), padding=(0, aconv_filts), bias=False
        )
        self.gvec = nn.Linear(att_dim, 1)
        self.scaling = scaling

    def precompute(self, enc: torch.Tensor) -> torch.Tensor:
        """``mlp_enc(enc)``: constant over decoding steps, so computed once per utterance."""
        return self.mlp_enc(enc)

    @staticmethod
    def initial_weights(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Uniform weights over the valid frames (ESPnet's ``att_prev`` at step 0). ``mask``: ``[B, T]``."""
        w = mask.to(dtype)
        return w / w.sum(dim=1, keepdim=True)

    def forward(
        self,
        enc: torch.Tensor,
        pre_enc: torch.Tensor,
        mask: torch.Tensor,
        dec_z: torch.Tensor,
        att_prev: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One attention step -> (context ``[B, eprojs]``, weights ``[B, T]``).

        ``enc``: ``[B, T, eprojs]``; ``pre_enc``: ``[B, T, att_dim]``; ``mask``: bool ``[B, T]`` (True =
        valid); ``dec_z``: decoder state ``[B, dunits]``; ``att_prev``: previous weights ``[B, T]``.
        """
        b, t = att_prev.shape
        att_conv = self.loc_conv(att_prev.view(b, 1, 1, t)).squeeze(2).transpose(1, 2)  # [B, T, C]
        att_conv = self.mlp_att(att_conv)
        dec_tiled = self.mlp_dec(dec_z).unsqueeze(1)
        e = self.gvec(torch.tanh(att_conv + pre_enc + dec_tiled)).squeeze(2)
        e = e.masked_fill(~mask, torch.finfo(e.dtype).min)
        w = F.softmax(self.scaling * e, dim=1)
        context = torch.sum(enc * w.unsqueeze(2), dim=1)
        return context, w
