"""Conformer encoder (Gulati et al. 2020) as in ESPnet2's ``ConformerEncoder``.

Each block is "macaron" style: half-step feed-forward, relative-position self-attention, convolution
module, half-step feed-forward, final LayerNorm (pre-norm residuals throughout). Names match ESPnet.

Padding: attention masks padded keys, and the convolution module zeroes padded frames before its
depthwise convolution, so a batched utterance gets the same valid outputs as when encoded alone.
BatchNorm runs in eval mode (running statistics), so it does not mix batch items either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.models.hybrid.attention import RelPositionMultiHeadedAttention
from edgebench.models.hybrid.configs import ConformerHybridConfig
from edgebench.models.hybrid.embedding import RelPositionalEncoding
from edgebench.models.hybrid.subsampling import Conv2dSubsampling


class FeedForward(nn.Module):
    """Position-wise feed-forward ``w_2(act(w_1(x)))`` (Swish in the Conformer, ReLU in the decoder)."""

    def __init__(self, d_model: int, hidden: int, activation: nn.Module) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, hidden)
        self.w_2 = nn.Linear(hidden, d_model)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.activation(self.w_1(x)))


class ConvolutionModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv, BatchNorm, Swish, pointwise conv."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv kernel must be odd to keep the length, got {kernel_size}")
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = nn.Conv1d(
            channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels
        )
        self.norm = nn.BatchNorm1d(channels)
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, T, C]``; ``valid``: bool ``[B, T]``."""
        x = F.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)
        x = x.masked_fill(~valid.unsqueeze(1), 0.0)  # padding must not leak into valid frames
        x = F.silu(self.norm(self.depthwise_conv(x)))
        return self.pointwise_conv2(x).transpose(1, 2)


class ConformerBlock(nn.Module):
    """One Conformer block (ESPnet ``EncoderLayer`` with macaron FF and ``normalize_before``)."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int, conv_kernel: int) -> None:
        super().__init__()
        self.self_attn = RelPositionMultiHeadedAttention(n_heads, d_model)
        self.feed_forward = FeedForward(d_model, ff_dim, nn.SiLU())
        self.feed_forward_macaron = FeedForward(d_model, ff_dim, nn.SiLU())
        self.conv_module = ConvolutionModule(d_model, conv_kernel)
        self.norm_ff = nn.LayerNorm(d_model)
        self.norm_mha = nn.LayerNorm(d_model)
        self.norm_ff_macaron = nn.LayerNorm(d_model)
        self.norm_conv = nn.LayerNorm(d_model)
        self.norm_final = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask``: bool ``[B, 1, T]`` (True = valid)."""
        x = x + 0.5 * self.feed_forward_macaron(self.norm_ff_macaron(x))
        h = self.norm_mha(x)
        x = x + self.self_attn(h, h, h, pos_emb, mask)
        x = x + self.conv_module(self.norm_conv(x), mask[:, 0, :])
        x = x + 0.5 * self.feed_forward(self.norm_ff(x))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    """Subsampling + relative positional encoding + N Conformer blocks + final LayerNorm."""

    min_frames = 7
    """Shortest input that yields one output frame through the 4x subsampling."""

    def __init__(self, config: ConformerHybridConfig) -> None:
        super().__init__()
        d = config.d_model
        self.embed = Conv2dSubsampling(config.n_mels, d)
        self.pos_enc = RelPositionalEncoding(d)
        self.encoders = nn.ModuleList(
            ConformerBlock(d, config.n_heads, config.ff_dim, config.conv_kernel)
            for _ in range(config.n_blocks)
        )
        self.after_norm = nn.LayerNorm(d)
        self.output_size = d

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``[B, T, n_mels]`` -> (``[B, T', d]``, output lengths ``[B]``)."""
        x, lengths = self.embed(x, lengths)
        x, pos_emb = self.pos_enc(x)
        mask = (torch.arange(x.size(1), device=x.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1)
        for block in self.encoders:
            x = block(x, pos_emb, mask)
        return self.after_norm(x), lengths
