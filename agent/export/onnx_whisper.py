"""Whisper as two ONNX graphs: an encoder that also projects the cross-attention keys/values, and one
decoder step graph with the self-attention KV cache as explicit inputs and outputs.

Why hand-written wrappers instead of exporting Hugging Face's modules as they are: HF's decoder keeps its
cache in ``Cache`` objects whose export changes with every transformers release, and it would recompute
the cross-attention keys/values (a 1500-frame projection per layer) on every step. Here the encoder graph
emits them once per utterance, and the decoder graph takes

* ``input_ids`` ``[B, T]`` (the whole prompt at the first call, one token afterwards),
* ``past_key_i`` / ``past_value_i`` ``[B, heads, P, head_dim]`` (``P = 0`` at the first call),
* ``cross_key_i`` ``[B, heads, head_dim, 1500]`` (stored transposed: the scores ``q @ K^T`` then need no
  transpose of a 1500-frame tensor per step, which was a third of onnxruntime's int8 decoder time) and
  ``cross_value_i`` ``[B, heads, 1500, head_dim]``,

and returns the logits of the last position ``[B, vocab]`` plus ``present_key_i`` / ``present_value_i``
``[B, heads, P + T, head_dim]``, so generation costs one short step per token instead of re-running the
whole sequence. The computation is the same as HF's eager attention (same weights, same order of
operations); the tests check token-for-token agreement with the torch runtime.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[B, T, D]`` -> ``[B, H, T, D/H]``."""
    b, t, d = x.shape
    return x.reshape(b, t, n_heads, d // n_heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, Dh]`` -> ``[B, T, H*Dh]``."""
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, k_transposed: bool = False
) -> torch.Tensor:
    scores = torch.matmul(q, k if k_transposed else k.transpose(-1, -2))
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class WhisperEncoderGraph(nn.Module):
    """``input_features [B, n_mels, 3000]`` -> cross-attention ``key_i``, ``value_i`` per decoder layer."""

    def __init__(self, hf_model: Any) -> None:
        super().__init__()
        self.encoder = hf_model.model.encoder
        self.layers = hf_model.model.decoder.layers
        self.n_heads = hf_model.config.decoder_attention_heads

    def forward(self, input_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.encoder(input_features).last_hidden_state
        out: list[torch.Tensor] = []
        for layer in self.layers:
            attn = layer.encoder_attn
            key_t = _heads(attn.k_proj(hidden), self.n_heads).transpose(-1, -2).contiguous()
            out += [key_t, _heads(attn.v_proj(hidden), self.n_heads)]
        return tuple(out)


class WhisperDecoderGraph(nn.Module):
    """One incremental decoder call (see the module docstring for inputs and outputs)."""

    def __init__(self, hf_model: Any, share_embedding: bool = True) -> None:
        super().__init__()
        decoder = hf_model.model.decoder
        self.share_embedding = share_embedding
        self.decoder = decoder
        self.proj_out = hf_model.proj_out
        self.n_heads = hf_model.config.decoder_attention_heads
        self.n_layers = len(decoder.layers)
        self.scale = 1.0 / math.sqrt(hf_model.config.d_model // self.n_heads)

    def forward(self, input_ids: torch.Tensor, *cache: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.n_layers
        past, cross = cache[: 2 * n], cache[2 * n :]
        past_len = past[0].shape[2]
        steps = input_ids.shape[1]
        positions = torch.arange(steps, device=input_ids.device) + past_len
        x = self.decoder.embed_tokens(input_ids) + F.embedding(positions, self.decoder.embed_positions.weight)
        # Causal bias: new position i (absolute past_len + i) sees keys 0 .. past_len + i.
        keys = torch.arange(past_len + steps, device=input_ids.device)
        bias = torch.where(
            keys[None, :] <= positions[:, None],
            torch.zeros((), dtype=x.dtype),
            torch.full((), float("-inf"), dtype=x.dtype),
        )
        presents: list[torch.Tensor] = []
        for i, layer in enumerate(self.decoder.layers):
            attn = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = _heads(attn.q_proj(h), self.n_heads) * self.scale
            k = torch.cat([past[2 * i], _heads(attn.k_proj(h), self.n_heads)], dim=2)
            v = torch.cat([past[2 * i + 1], _heads(attn.v_proj(h), self.n_heads)], dim=2)
            presents += [k, v]
            x = x + attn.out_proj(_merge(_attend(q, k, v, bias)))

            cross_attn = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            q = _heads(cross_attn.q_proj(h), self.n_heads) * self.scale
            attended = _attend(q, cross[2 * i], cross[2 * i + 1], None, k_transposed=True)
            x = x + cross_attn.out_proj(_merge(attended))

            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        x = self.decoder.layer_norm(x)
        last = x[:, -1, :]
        if self.share_embedding:
            # A (zero) bias makes the exporter emit Gemm(transB=1) on the embedding matrix itself; a
            # bias-free linear becomes MatMul with a transposed *copy* (+80 MB for tiny).
            weight = self.proj_out.weight
            logits = F.linear(last, weight, torch.zeros(weight.shape[0], dtype=weight.dtype))
        else:
            # MatMul form: what onnxruntime's dynamic quantiser turns into int8 (it skips Gemm).
            logits = self.proj_out(last)
        return (logits, *presents)


def io_names(n_layers: int) -> dict[str, list[str]]:
    """Input/output names of both graphs (the runtime feeds and reads them by name)."""
    cross = [f"cross_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]
    past = [f"past_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]
    present = [f"present_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]
    return {
        "encoder_inputs": ["input_features"],
        "encoder_outputs": cross,
        "decoder_inputs": ["input_ids", *past, *cross],
        "decoder_outputs": ["logits", *present],
    }


def export_whisper_graphs(
    hf_model: Any, encoder_path: str, decoder_path: str, opset: int = 17, share_embedding: bool = True
) -> dict:
    """Export both graphs with the TorchScript exporter and return the facts the runtime needs.

    The TorchScript exporter (``dynamo=False``) is used because it traces these wrappers in seconds and
    keeps the data-dependent ``past_len`` symbolic; the dynamo exporter needs onnxscript and per-dimension
    ``Dim`` specifications and was slower and less predictable here for the same graphs.
    """
    import warnings

    config = hf_model.config
    n_layers = config.decoder_layers
    n_heads = config.decoder_attention_heads
    head_dim = config.d_model // n_heads
    names = io_names(n_layers)
    frames = 2 * config.max_source_positions
    features = torch.zeros(1, config.num_mel_bins, frames)
    encoder = WhisperEncoderGraph(hf_model).eval()
    decoder = WhisperDecoderGraph(hf_model, share_embedding).eval()

    batch = {0: "batch"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shape-dependent Python values
        torch.onnx.export(
            encoder,
            (features,),
            encoder_path,
            dynamo=False,
            opset_version=opset,
            input_names=names["encoder_inputs"],
            output_names=names["encoder_outputs"],
            dynamic_axes={n: batch for n in names["encoder_inputs"] + names["encoder_outputs"]},
        )
        cross = encoder(features)
        # Traced with a non-empty past and a 2-token input so that neither length is baked in as 0 or 1.
        past = [torch.zeros(1, n_heads, 3, head_dim) for _ in range(2 * n_layers)]
        ids = torch.tensor([[config.decoder_start_token_id, config.decoder_start_token_id]])
        dynamic = {"input_ids": {0: "batch", 1: "steps"}, "logits": batch}
        dynamic.update({n: {0: "batch", 2: "past"} for n in names["decoder_inputs"] if n.startswith("past")})
        dynamic.update({n: batch for n in names["decoder_inputs"] if n.startswith("cross")})
        dynamic.update({n: {0: "batch", 2: "total"} for n in names["decoder_outputs"][1:]})
        torch.onnx.export(
            decoder,
            (ids, *past, *cross),
            decoder_path,
            dynamo=False,
            opset_version=opset,
            input_names=names["decoder_inputs"],
            output_names=names["decoder_outputs"],
            dynamic_axes=dynamic,
        )
    return {
        "kind": "whisper-kv-cache",
        "n_layers": n_layers,
        "n_heads": n_heads,
        "head_dim": head_dim,
        "n_mels": config.num_mel_bins,
        "frames": frames,
        **names,
    }
