"""Size configurations of the hybrid CTC/attention models, and their parameter counts without torch.

This module must stay torch-free: the model registry imports it to list models (``edgebench-agent models``)
on devices where torch may not even be installed, and ``approx_params`` must work there too.

How the ``libri`` variants were derived
=======================================

The seed document reports the parameter counts of two ESPnet LibriSpeech models. Each count decomposes
exactly into the standard ESPnet building blocks with the hyper-parameters below (``approx_params`` does the
arithmetic, and a test checks it against the real ``nn.Module``):

=================  ===========  ==========  ============  ===========
model              encoder      CTC head    att. decoder  total
=================  ===========  ==========  ============  ===========
conformer-hybrid   83,231,744   2,565,000   30,350,216    116,146,960
lstm-ctc (hybrid)   6,780,160       8,667    1,459,318      8,248,145
=================  ===========  ==========  ============  ===========

* conformer-hybrid — ESPnet2 LibriSpeech ``conformer`` recipe: Conv2dSubsampling (4x), 12 blocks, d=512,
  8 heads, FF 2048, macaron FF, rel-pos self-attention (``rel_pos_type: latest``), conv kernel 31;
  ``transformer`` decoder with 6 layers, 8 heads, FF 2048; BPE vocabulary 5000 (CTC head Linear(512, 5000)).
* lstm-ctc — ESPnet1 LibriSpeech-style ``blstmp`` (RNNP) encoder: 4 bidirectional LSTM layers of 320 cells,
  Linear(640, 320) projection after each, subsample ``1_2_2_1_1``; ``RNNDecoder`` with one LSTMCell of 320
  units and location attention (``adim`` 320, ``aconv-chans`` 10, ``aconv-filts`` 100); character
  vocabulary 27 (CTC head Linear(320, 27)).

Conformer per-block detail (d=512): two macaron FF modules 2 x 2,099,712; rel-pos MHA 1,313,792 (q/k/v/out
with bias, ``linear_pos`` without bias, ``pos_bias_u``/``pos_bias_v`` [8, 64]); convolution module 805,376
(pointwise 512->1024 + GLU, depthwise k=31, BatchNorm, pointwise 512->512); 5 LayerNorms 5,120 — 6,323,712
per block. Subsampling 7,346,176 (two 3x3 stride-2 convs, Linear(512*19, 512)), ``after_norm`` 1,024.

BLSTMP detail: layer 0 = 2 x LSTM(80, 320) 1,029,120 + projection 205,120; layers 1-3 = 2 x LSTM(320, 320)
1,643,520 + projection 205,120 each (PyTorch LSTMs carry two bias vectors). Decoder: embedding 8,640,
LSTMCell(640, 320) 1,231,360, output 8,667, AttLoc 210,651 (mlp_enc 102,720, mlp_dec 102,400, mlp_att 3,200,
loc_conv 2,010, gvec 321).

The ``small`` and ``tiny`` variants are not published models: they keep the same architectures at sizes that
run on small devices (``small``) and in unit tests (``tiny``, a few hundred thousand parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONFORMER_VARIANTS",
    "LSTM_VARIANTS",
    "ConformerHybridConfig",
    "LstmHybridConfig",
    "approx_param_breakdown",
    "approx_params",
    "config_for",
]

DEFAULT_CTC_WEIGHT = 0.3
"""ESPnet2's LibriSpeech decoding config uses ``ctc_weight: 0.3``; used when ``transcribe`` gets ``None``."""


@dataclass(frozen=True)
class ConformerHybridConfig:
    """Conformer encoder + CTC head + Transformer decoder (ESPnet2 ``conformer``/``transformer``)."""

    d_model: int
    """Attention dimension of encoder *and* decoder (ESPnet's src-attention needs them equal)."""
    n_heads: int
    ff_dim: int
    n_blocks: int
    conv_kernel: int
    dec_layers: int
    dec_heads: int
    dec_ff_dim: int
    vocab_size: int
    n_mels: int = 80
    ctc_weight: float = DEFAULT_CTC_WEIGHT
    """Default joint-decoding weight when ``transcribe`` is called with ``ctc_weight=None``."""

    encoder: str = "conformer"


@dataclass(frozen=True)
class LstmHybridConfig:
    """BLSTMP encoder + CTC head + location-aware LSTM decoder (ESPnet1 ``blstmp``/``RNNDecoder``)."""

    layers: int
    cells: int
    """LSTM cells per direction."""
    proj: int
    """Projection size after every layer (= encoder output size, ``eprojs``)."""
    subsample: tuple[int, ...]
    """Frame subsampling after each layer (ESPnet's ``subsample`` without the leading input entry)."""
    dec_units: int
    att_dim: int
    aconv_chans: int
    aconv_filts: int
    vocab_size: int
    n_mels: int = 80
    ctc_weight: float = DEFAULT_CTC_WEIGHT

    encoder: str = "lstm"

    def __post_init__(self) -> None:
        # Caught at import time: a mismatched tuple would silently mis-subsample the last layers.
        if len(self.subsample) != self.layers:
            raise ValueError(f"subsample needs one entry per layer ({self.layers}), got {self.subsample}")


CONFORMER_VARIANTS: dict[str, ConformerHybridConfig] = {
    "libri": ConformerHybridConfig(
        d_model=512,
        n_heads=8,
        ff_dim=2048,
        n_blocks=12,
        conv_kernel=31,
        dec_layers=6,
        dec_heads=8,
        dec_ff_dim=2048,
        vocab_size=5000,
    ),
    "small": ConformerHybridConfig(
        d_model=144,
        n_heads=4,
        ff_dim=576,
        n_blocks=8,
        conv_kernel=31,
        dec_layers=2,
        dec_heads=4,
        dec_ff_dim=576,
        vocab_size=256,
    ),
    "tiny": ConformerHybridConfig(
        d_model=64,
        n_heads=4,
        ff_dim=128,
        n_blocks=2,
        conv_kernel=15,
        dec_layers=1,
        dec_heads=4,
        dec_ff_dim=128,
        vocab_size=32,
    ),
}

LSTM_VARIANTS: dict[str, LstmHybridConfig] = {
    "libri": LstmHybridConfig(
        layers=4,
        cells=320,
        proj=320,
        subsample=(2, 2, 1, 1),
        dec_units=320,
        att_dim=320,
        aconv_chans=10,
        aconv_filts=100,
        vocab_size=27,
    ),
    "small": LstmHybridConfig(
        layers=2,
        cells=128,
        proj=128,
        subsample=(2, 2),
        dec_units=128,
        att_dim=128,
        aconv_chans=10,
        aconv_filts=100,
        vocab_size=27,
    ),
    "tiny": LstmHybridConfig(
        layers=2,
        cells=64,
        proj=64,
        subsample=(2, 2),
        dec_units=64,
        att_dim=64,
        aconv_chans=10,
        aconv_filts=25,
        vocab_size=27,
    ),
}


def config_for(encoder: str, variant: str) -> ConformerHybridConfig | LstmHybridConfig:
    """Look up a variant by encoder type (``conformer``/``lstm``) and name; KeyError lists the choices."""
    table: dict[str, ConformerHybridConfig] | dict[str, LstmHybridConfig]
    if encoder == "conformer":
        table = CONFORMER_VARIANTS
    elif encoder == "lstm":
        table = LSTM_VARIANTS
    else:
        raise KeyError(f"unknown hybrid encoder {encoder!r}; choose 'conformer' or 'lstm'")
    if variant not in table:
        raise KeyError(f"unknown {encoder} variant {variant!r}; choose one of: {', '.join(table)}")
    return table[variant]


# --- parameter arithmetic (mirrors the nn.Modules one-to-one) -------------------------------------------


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _layer_norm(d: int) -> int:
    return 2 * d


def _mha(d: int) -> int:
    """ESPnet ``MultiHeadedAttention``: q, k, v, out projections with bias."""
    return 4 * _linear(d, d)


def _ff(d: int, ff: int) -> int:
    return _linear(d, ff) + _linear(ff, d)


def _lstm_direction(n_in: int, hidden: int) -> int:
    """One direction of ``nn.LSTM``/an ``nn.LSTMCell``: PyTorch keeps two bias vectors (b_ih and b_hh)."""
    return 4 * hidden * (n_in + hidden) + 2 * 4 * hidden


def _conformer_breakdown(c: ConformerHybridConfig) -> dict[str, int]:
    d = c.d_model
    freq = ((c.n_mels - 1) // 2 - 1) // 2
    subsampling = (9 * d + d) + (9 * d * d + d) + _linear(d * freq, d)
    rel_mha = _mha(d) + d * d + 2 * d  # + linear_pos (no bias) + pos_bias_u/v [heads, d/heads]
    conv = _linear(d, 2 * d) + (c.conv_kernel * d + d) + 2 * d + _linear(d, d)  # pw1, depthwise, BN, pw2
    block = 2 * _ff(d, c.ff_dim) + rel_mha + conv + 5 * _layer_norm(d)
    encoder = subsampling + c.n_blocks * block + _layer_norm(d)
    dec_layer = 2 * _mha(d) + _ff(d, c.dec_ff_dim) + 3 * _layer_norm(d)
    decoder = c.vocab_size * d + c.dec_layers * dec_layer + _layer_norm(d) + _linear(d, c.vocab_size)
    return {"encoder": encoder, "ctc_head": _linear(d, c.vocab_size), "attention_decoder": decoder}


def _lstm_breakdown(c: LstmHybridConfig) -> dict[str, int]:
    encoder = 0
    n_in = c.n_mels
    for _ in range(c.layers):
        encoder += 2 * _lstm_direction(n_in, c.cells) + _linear(2 * c.cells, c.proj)
        n_in = c.proj
    att = (
        _linear(c.proj, c.att_dim)  # mlp_enc
        + _linear(c.dec_units, c.att_dim, bias=False)  # mlp_dec
        + _linear(c.aconv_chans, c.att_dim, bias=False)  # mlp_att
        + c.aconv_chans * (2 * c.aconv_filts + 1)  # loc_conv, no bias
        + _linear(c.att_dim, 1)  # gvec
    )
    decoder = (
        c.vocab_size * c.dec_units  # embedding
        + _lstm_direction(c.dec_units + c.proj, c.dec_units)  # LSTMCell(embed + context)
        + _linear(c.dec_units, c.vocab_size)  # output
        + att
    )
    return {"encoder": encoder, "ctc_head": _linear(c.proj, c.vocab_size), "attention_decoder": decoder}


def approx_param_breakdown(config: ConformerHybridConfig | LstmHybridConfig) -> dict[str, int]:
    """Parameters per component (``encoder``, ``ctc_head``, ``attention_decoder``, ``total``), torch-free.

    Called "approx" for symmetry with ``ModelSpec.approx_params``, but it is exact: a test compares it with
    the built module for every variant.
    """
    if isinstance(config, ConformerHybridConfig):
        parts = _conformer_breakdown(config)
    elif isinstance(config, LstmHybridConfig):
        parts = _lstm_breakdown(config)
    else:
        raise TypeError(f"not a hybrid config: {config!r}")
    parts["total"] = sum(parts.values())
    return parts


def approx_params(config: ConformerHybridConfig | LstmHybridConfig) -> int:
    """Total parameter count of a variant, computed arithmetically (equals the real module's count)."""
    return approx_param_breakdown(config)["total"]
