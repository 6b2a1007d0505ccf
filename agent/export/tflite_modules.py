"""The torch modules that are converted to .tflite: static shapes, explicit state, no Python control flow.

LiteRT runs graphs with fixed tensor shapes, so the models are re-expressed around that (reusing the loaded
weights, nothing is copied or retrained):

* :class:`WhisperEncoderCross` — the Whisper encoder plus every decoder layer's cross-attention key and value
  projections, so the decoder never recomputes them: ``input_features [1, n_mels, 3000]`` ->
  ``cross_k``, ``cross_v`` ``[layers, 1, heads, 1500, head_dim]``.
* :class:`WhisperDecoderStep` — one token through the decoder with the self-attention KV cache as explicit
  inputs of a fixed size (Whisper's 448 positions) and the new position's keys/values as outputs. The caller
  writes those into its cache, so each step costs the same: generation is linear in the tokens produced,
  not quadratic. Cache slots at and after ``position`` are masked out, the current token attends to itself
  through a separate score, so no scatter into the cache happens inside the graph.
* :class:`HybridEncoderCtc` — a Conformer hybrid model's encoder + CTC head over a fixed window of frames
  with the true length as an input (padded frames are masked by the Conformer itself). BiLSTM encoders are
  not exported: litert-torch unrolls the recurrence into ~16 ops per frame (319 ops for 20 frames, 639 for
  40), so a 30 s window had not finished converting after 15 minutes
  (:data:`edgebench.agent.export.tflite.LSTM_REASON`).

Everything is exported at batch 1; the runtime runs a batch item by item.
This module imports torch at the top: only the converter (:mod:`edgebench.agent.export.tflite`) imports it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, T, D]`` -> ``[B, heads, T, D / heads]``."""
    b, t, d = x.shape
    return x.view(b, t, heads, d // heads).transpose(1, 2)


class WhisperEncoderCross(nn.Module):
    """Encoder + cross-attention K/V of every decoder layer (see the module docstring)."""

    def __init__(self, hf_model: Any) -> None:
        super().__init__()
        self.encoder = hf_model.model.encoder
        self.cross = nn.ModuleList(layer.encoder_attn for layer in hf_model.model.decoder.layers)
        self.heads = hf_model.model.decoder.layers[0].encoder_attn.num_heads

    def forward(self, input_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_features).last_hidden_state
        keys = torch.stack([_split_heads(attn.k_proj(hidden), self.heads) for attn in self.cross])
        values = torch.stack([_split_heads(attn.v_proj(hidden), self.heads) for attn in self.cross])
        return keys, values


class WhisperDecoderStep(nn.Module):
    """One decoder step with a fixed-size KV cache (see the module docstring).

    Inputs: ``token [1, 1]`` int32, ``position [1]`` int32 (tokens already in the cache), ``self_k`` /
    ``self_v`` ``[layers, 1, heads, max_positions, head_dim]``, ``cross_k`` / ``cross_v`` from
    :class:`WhisperEncoderCross`. Outputs: ``logits [1, vocab]``, ``new_k`` / ``new_v``
    ``[layers, 1, heads, 1, head_dim]`` (the keys/values of ``position``).
    """

    def __init__(self, hf_model: Any) -> None:
        super().__init__()
        decoder = hf_model.model.decoder
        self.decoder = decoder
        self.proj_out = hf_model.proj_out
        self.heads = decoder.layers[0].self_attn.num_heads
        self.max_positions = decoder.embed_positions.weight.shape[0]

    def forward(
        self,
        token: torch.Tensor,
        position: torch.Tensor,
        self_k: torch.Tensor,
        self_v: torch.Tensor,
        cross_k: torch.Tensor,
        cross_v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = self.decoder
        batch = token.shape[0]
        x = d.embed_tokens(token) + d.embed_positions.weight[position].unsqueeze(0)
        filled = torch.arange(self.max_positions).unsqueeze(0) < position.unsqueeze(1)
        cache_bias = torch.where(filled, 0.0, float("-inf")).view(1, 1, 1, self.max_positions)
        new_k, new_v = [], []
        for i, layer in enumerate(d.layers):
            attn = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = _split_heads(attn.q_proj(h) * attn.scaling, self.heads)
            k = _split_heads(attn.k_proj(h), self.heads)
            v = _split_heads(attn.v_proj(h), self.heads)
            new_k.append(k)
            new_v.append(v)
            cached = torch.matmul(q, self_k[i].transpose(-1, -2)) + cache_bias
            weights = torch.softmax(torch.cat([cached, torch.matmul(q, k.transpose(-1, -2))], -1), -1)
            out = torch.matmul(weights[..., : self.max_positions], self_v[i])
            out = out + weights[..., self.max_positions :] * v
            x = x + attn.out_proj(out.transpose(1, 2).reshape(batch, 1, -1))

            cross = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            q = _split_heads(cross.q_proj(h) * cross.scaling, self.heads)
            weights = torch.softmax(torch.matmul(q, cross_k[i].transpose(-1, -2)), -1)
            out = torch.matmul(weights, cross_v[i])
            x = x + cross.out_proj(out.transpose(1, 2).reshape(batch, 1, -1))

            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        x = d.layer_norm(x)
        return self.proj_out(x[:, 0]), torch.stack(new_k), torch.stack(new_v)


class HybridEncoderCtc(nn.Module):
    """``features [1, n_mels, window]``, ``lengths [1]`` int32 -> CTC log-probs ``[1, T', V]``, lengths.

    Conformer encoders only: the Conformer masks padded frames itself, so a fixed window with the true
    length as an input gives the same outputs on the valid frames as the unpadded input.
    """

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc, out_lengths, _ = self.module.encode(features.transpose(1, 2), lengths)
        return self.module.ctc(enc), out_lengths
