"""Whisper in whisper.cpp's ggml model file, written from the Hugging Face layout with numpy only.

whisper.cpp (and so ``pywhispercpp``) loads the legacy ggml format that its ``convert-h5-to-ggml.py``
writes and its ``quantize`` tool rewrites; this module writes the same thing from the weights edgebench
already has (a Hugging Face Whisper directory, e.g. the conversion of a packaged CTranslate2 model), so no
model hub and no whisper.cpp checkout are needed. The format, as whisper.cpp v1.8's ``whisper_model_load``
reads it (little-endian, no padding anywhere):

* magic ``0x67676d6c``, then eleven int32 hyper-parameters (vocabulary, audio context/state/heads/layers,
  text context/state/heads/layers, mel bins, file type);
* the mel filterbank (``n_mels`` x 201 float32): the same Slaney filters the shared front end uses;
* the vocabulary: count, then each token's bytes (GPT-2's byte-to-unicode map undone) in id order; the
  special tokens are not written (the loader derives them from the vocabulary size);
* every tensor, in any order: dimensions, name length, element type, the shape reversed, the name, the
  data. The loader refuses unknown, missing or mis-shaped tensors, and it decides each tensor's type
  itself, so the types here follow its rules exactly: positional embeddings, biases, layer norms and the
  two convolution biases (reshaped to ``(d, 1)``) are f32; convolution weights are f32 in an f32 file and
  f16 otherwise; the linear weights and the token embedding are of the file's type. Keys have no bias and
  the output projection is the token embedding (neither is written).

Quantised files (q8_0, q5_1) are what whisper.cpp's ``quantize`` makes from the f16 file: the same
tensors quantised row by row in 32-value blocks from their f16-rounded values, with ggml's reference
rounding, and the file type stored as ``2 * 1000 + type`` (ggml's quantisation version 2).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edgebench.agent.errors import EdgebenchError

MAGIC = 0x67676D6C
QNT_VERSION = 2
QNT_VERSION_FACTOR = 1000
BLOCK = 32
"""Values per quantisation block (QK8_0 = QK5_1 = 32)."""

TENSOR_TYPE = {"f32": 0, "f16": 1, "q5_1": 7, "q8_0": 8}
"""ggml_type of each element type (what a tensor's header says)."""
FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "q5_1": 9}
"""ggml_ftype of each file type (the header's last hyper-parameter)."""
GGML_TYPES = tuple(FILE_TYPE)
QUANTISED = ("q8_0", "q5_1")

Q8_0 = np.dtype([("d", "<f2"), ("qs", "i1", BLOCK)])
Q5_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", BLOCK // 2)])

_LAYER_PARTS = {
    "self_attn.k_proj": "attn.key",
    "self_attn.q_proj": "attn.query",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}
_TOP_LEVEL = {
    "encoder.layer_norm.weight": "encoder.ln_post.weight",
    "encoder.layer_norm.bias": "encoder.ln_post.bias",
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "decoder.layer_norm.weight": "decoder.ln.weight",
    "decoder.layer_norm.bias": "decoder.ln.bias",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.embed_tokens.weight": "decoder.token_embedding.weight",
}
_ALWAYS_F32 = (
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
)


def ggml_name(hf_name: str) -> str | None:
    """whisper.cpp's name for a Hugging Face Whisper tensor (None: not written, the tied ``proj_out``)."""
    if hf_name == "proj_out.weight":
        return None
    parts = hf_name.removeprefix("model.").split(".")
    if len(parts) > 3 and parts[1] == "layers":  # encoder.layers.3.self_attn.k_proj.weight
        stack, _layers, index, *middle, leaf = parts
        mapped = _LAYER_PARTS.get(".".join(middle))
        if mapped is None:
            raise EdgebenchError(f"{hf_name}: not a Whisper layer tensor whisper.cpp knows")
        return f"{stack}.blocks.{index}.{mapped}.{leaf}"
    short = ".".join(parts)
    return _TOP_LEVEL.get(short, short)


def element_type(name: str, ndim: int, file_type: str) -> str:
    """The element type whisper.cpp's loader allocates for tensor ``name`` in a file of ``file_type``."""
    if ndim < 2 or name in _ALWAYS_F32:
        return "f32"
    if ndim == 3:  # the convolutions' kernels: never quantised
        return "f32" if file_type == "f32" else "f16"
    return file_type


# ------------------------------------------------------------------------------------------ quantisers
def _round_half_away(values: np.ndarray) -> np.ndarray:
    """C's ``roundf`` (half away from zero), not numpy's half-to-even."""
    return np.sign(values) * np.floor(np.abs(values).astype(np.float64) + 0.5)


def quantize_q8_0(matrix: np.ndarray) -> bytes:
    """ggml's ``quantize_row_q8_0_ref`` over every row: per 32 values an f16 scale ``max|x| / 127`` and
    32 int8 ``roundf(x / scale)`` (computed with the float32 scale, as in C)."""
    x = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1, BLOCK)
    scale = (np.abs(x).max(axis=1) / np.float32(127)).astype(np.float32)
    inverse = np.divide(np.float32(1), scale, out=np.zeros_like(scale), where=scale != 0)
    blocks = np.empty(len(x), Q8_0)
    blocks["d"] = scale.astype(np.float16)
    blocks["qs"] = _round_half_away(x * inverse[:, None]).astype(np.int8)
    return blocks.tobytes()


def quantize_q5_1(matrix: np.ndarray) -> bytes:
    """ggml's ``quantize_row_q5_1_ref``: per 32 values an f16 step ``(max - min) / 31`` and minimum, and
    5-bit ``(x - min) / step + 0.5`` truncated; element j's low four bits in the low nibble of ``qs[j]``,
    element j + 16's in its high nibble, and each fifth bit at bit j (j + 16) of the 32-bit ``qh``."""
    x = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1, BLOCK)
    low, high = x.min(axis=1), x.max(axis=1)
    step = ((high - low) / np.float32(31)).astype(np.float32)
    inverse = np.divide(np.float32(1), step, out=np.zeros_like(step), where=step != 0)
    q = np.floor((x - low[:, None]) * inverse[:, None] + np.float32(0.5)).astype(np.uint32)
    first, second = q[:, : BLOCK // 2], q[:, BLOCK // 2 :]
    bits = np.arange(BLOCK // 2, dtype=np.uint32)
    qh = (((first >> 4) & 1) << bits).sum(axis=1) | (((second >> 4) & 1) << (bits + BLOCK // 2)).sum(axis=1)
    blocks = np.empty(len(x), Q5_1)
    blocks["d"] = step.astype(np.float16)
    blocks["m"] = low.astype(np.float16)
    blocks["qh"] = qh.astype(np.uint32)
    blocks["qs"] = ((first & 0xF) | ((second & 0xF) << 4)).astype(np.uint8)
    return blocks.tobytes()


def dequantize(data: bytes, file_type: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 values a quantised tensor stands for (ggml's dequantisers): for checks and tests."""
    if file_type == "q8_0":
        blocks = np.frombuffer(data, Q8_0)
        values = blocks["qs"].astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    elif file_type == "q5_1":
        blocks = np.frombuffer(data, Q5_1)
        bits = np.arange(BLOCK // 2, dtype=np.uint32)
        qh = blocks["qh"][:, None]
        first = (blocks["qs"] & 0xF) | (((qh >> bits) & 1) << 4).astype(np.uint8)
        second = (blocks["qs"] >> 4) | (((qh >> (bits + BLOCK // 2)) & 1) << 4).astype(np.uint8)
        q = np.concatenate([first, second], axis=1).astype(np.float32)
        values = q * blocks["d"].astype(np.float32)[:, None] + blocks["m"].astype(np.float32)[:, None]
    else:
        raise EdgebenchError(f"{file_type} is not a quantised ggml type")
    return values.reshape(shape)


# ------------------------------------------------------------------------------------------ the reader
@dataclass(frozen=True)
class GgmlHeader:
    """What a ggml Whisper file says about itself, read without loading it."""

    n_vocab: int
    n_audio_layer: int
    n_text_layer: int
    file_type: str
    tensors: dict[str, tuple[int, ...]]
    """Name -> numpy shape of every tensor."""

    def param_counts(self) -> dict[str, int]:
        """Encoder/decoder/total parameters (the output projection is the token embedding: once)."""
        counts = {"encoder": 0, "decoder": 0}
        for name, shape in self.tensors.items():
            counts[name.split(".", 1)[0]] += int(np.prod(shape))
        counts["total"] = counts["encoder"] + counts["decoder"]
        return counts


def _walk(
    path: Path, with_data: bool
) -> tuple[tuple[int, ...], dict[str, tuple[str, tuple[int, ...], bytes]]]:
    """The hyper-parameters and every tensor's (type, numpy shape, data or b"") of a ggml Whisper file,
    checked to be whole: each tensor's size is known from its type and shape, up to the end of the file."""
    names = {code: kind for kind, code in TENSOR_TYPE.items()}
    unit = {"f32": (4, 1), "f16": (2, 1), "q8_0": (Q8_0.itemsize, BLOCK), "q5_1": (Q5_1.itemsize, BLOCK)}
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (magic,) = struct.unpack("<I", f.read(4))
            if magic != MAGIC:
                raise ValueError(f"magic {magic:#x} is not ggml's {MAGIC:#x}")
            hp = struct.unpack("<11i", f.read(44))
            if hp[10] % QNT_VERSION_FACTOR not in FILE_TYPE.values():
                raise ValueError(f"file type {hp[10]} is none of {', '.join(FILE_TYPE)}")
            n_mel, n_fft = struct.unpack("<ii", f.read(8))
            f.seek(4 * n_mel * n_fft, os.SEEK_CUR)
            (n_tokens,) = struct.unpack("<i", f.read(4))
            for _ in range(n_tokens):
                (length,) = struct.unpack("<I", f.read(4))
                f.seek(length, os.SEEK_CUR)
            tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
            while f.tell() < size:
                ndim, name_length, code = struct.unpack("<iii", f.read(12))
                shape = tuple(reversed(struct.unpack(f"<{ndim}i", f.read(4 * ndim))))
                name = f.read(name_length).decode()
                kind = names[code]
                nbytes = int(np.prod(shape)) // unit[kind][1] * unit[kind][0]
                data = f.read(nbytes) if with_data else b""
                if not with_data:
                    f.seek(nbytes, os.SEEK_CUR)
                tensors[name] = (kind, shape, data)
            if f.tell() != size:
                raise ValueError("the last tensor is cut short")
    except (struct.error, ValueError, KeyError, UnicodeDecodeError, OSError) as exc:
        raise EdgebenchError(f"{path} is not a whole whisper.cpp model file: {exc}") from None
    return hp, tensors


def read_header(path: Path) -> GgmlHeader:
    """Check ``path`` is a whole ggml Whisper file (magic, hyper-parameters, every tensor's size up to
    the end of the file, the tensor count of its size) and describe it. whisper.cpp aborts the process on
    some damaged files instead of returning an error, so a runtime checks here first."""
    hp, tensors = _walk(path, with_data=False)
    expected = 11 + 15 * hp[4] + 24 * hp[8]
    if len(tensors) != expected:
        raise EdgebenchError(f"{path} holds {len(tensors)} tensors, a Whisper of its size has {expected}")
    file_type = next(k for k, v in FILE_TYPE.items() if v == hp[10] % QNT_VERSION_FACTOR)
    return GgmlHeader(
        hp[0], hp[4], hp[8], file_type, {name: shape for name, (_, shape, _) in tensors.items()}
    )


def read_tensors(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Every tensor of a ggml file as (element type, float32 values; quantised ones dequantised)."""
    _, tensors = _walk(path, with_data=True)
    out = {}
    for name, (kind, shape, data) in tensors.items():
        if kind in QUANTISED:
            values = dequantize(data, kind, shape)
        else:
            values = np.frombuffer(data, np.float16 if kind == "f16" else np.float32).reshape(shape)
        out[name] = (kind, values.astype(np.float32))
    return out


# ------------------------------------------------------------------------------------------ the writer
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-character stand-ins for bytes, inverted (how byte-level BPE tokens are written)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    stand_ins = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            stand_ins.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, stand_ins, strict=True)}


def vocabulary_bytes(tokenizer_json: Path) -> list[bytes]:
    """The byte string of every ordinary token, in id order (``tokenizer.json``'s BPE vocabulary: the
    special tokens are added tokens there, and whisper.cpp derives them itself)."""
    vocab: dict[str, int] = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    decoder = _byte_decoder()
    ordered = sorted(vocab.items(), key=lambda item: item[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise EdgebenchError(f"{tokenizer_json}: the BPE vocabulary's ids are not 0..{len(ordered) - 1}")
    try:
        return [bytes(decoder[c] for c in token) for token, _ in ordered]
    except KeyError as exc:
        raise EdgebenchError(
            f"{tokenizer_json}: token with a character outside GPT-2's byte map ({exc})"
        ) from None


def _tensors(hf_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, float32 array) of every tensor in the directory's safetensors files."""
    from safetensors import safe_open

    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise EdgebenchError(f"{hf_dir} has no .safetensors weights to write a ggml file from")
    for file in files:
        with safe_open(str(file), framework="numpy") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield key, np.asarray(handle.get_tensor(key), dtype=np.float32)


def _write_tensor(out: BinaryIO, name: str, data: np.ndarray, file_type: str) -> str:
    kind = element_type(name, data.ndim, file_type)
    if kind in QUANTISED:
        if data.shape[-1] % BLOCK:
            raise EdgebenchError(
                f"{name}: rows of {data.shape[-1]} values cannot be cut in blocks of {BLOCK}"
            )
        rounded = data.astype(np.float16).astype(np.float32)  # what `quantize` reads from the f16 file
        payload = quantize_q8_0(rounded) if kind == "q8_0" else quantize_q5_1(rounded)
    else:
        payload = np.ascontiguousarray(data, dtype=np.float16 if kind == "f16" else np.float32).tobytes()
    encoded = name.encode()
    out.write(struct.pack("<iii", data.ndim, len(encoded), TENSOR_TYPE[kind]))
    out.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
    out.write(encoded)
    out.write(payload)
    return kind


def write_ggml(hf_dir: Path, out_file: Path, file_type: str) -> dict[str, object]:
    """Write ``hf_dir`` (config.json, tokenizer.json, safetensors) as a whisper.cpp model of
    ``file_type`` (f32, f16, q8_0, q5_1) to ``out_file``; returns facts for the export manifest."""
    from edgebench.models.frontend.logmel import mel_filters

    if file_type not in FILE_TYPE:
        raise EdgebenchError(f"ggml type {file_type!r}: choose one of {', '.join(GGML_TYPES)}")
    missing = [name for name in ("config.json", "tokenizer.json") if not (hf_dir / name).is_file()]
    if missing:
        raise EdgebenchError(f"{hf_dir} lacks {' and '.join(missing)}: a whisper.cpp file needs both")
    config = json.loads((hf_dir / "config.json").read_text())
    vocabulary = vocabulary_bytes(hf_dir / "tokenizer.json")
    if len(vocabulary) > config["vocab_size"]:
        raise EdgebenchError(
            f"{hf_dir}: {len(vocabulary)} BPE tokens but a vocabulary of {config['vocab_size']}"
        )
    stored = FILE_TYPE[file_type] + (QNT_VERSION * QNT_VERSION_FACTOR if file_type in QUANTISED else 0)
    hparams = (
        config["vocab_size"],
        config["max_source_positions"],
        config["d_model"],
        config["encoder_attention_heads"],
        config["encoder_layers"],
        config["max_target_positions"],  # not max_length: the positional table's size is what is checked
        config["d_model"],
        config["decoder_attention_heads"],
        config["decoder_layers"],
        config["num_mel_bins"],
        stored,
    )
    filters = mel_filters(int(config["num_mel_bins"]))
    counts: dict[str, int] = {}
    tmp = out_file.with_name(f".{out_file.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as out:
            out.write(struct.pack("<I", MAGIC))
            out.write(struct.pack("<11i", *hparams))
            out.write(struct.pack("<ii", *filters.shape))
            out.write(np.ascontiguousarray(filters, dtype=np.float32).tobytes())
            out.write(struct.pack("<i", len(vocabulary)))
            for token in vocabulary:
                out.write(struct.pack("<I", len(token)))
                out.write(token)
            for hf_name, data in _tensors(hf_dir):
                name = ggml_name(hf_name)
                if name is None:
                    continue
                if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                    data = data.reshape(-1, 1)
                kind = _write_tensor(out, name, data, file_type)
                counts[kind] = counts.get(kind, 0) + 1
        os.replace(tmp, out_file)
    finally:
        tmp.unlink(missing_ok=True)
    layers = config["encoder_layers"], config["decoder_layers"]
    expected = 11 + 15 * layers[0] + 24 * layers[1]  # what the loader will insist on
    if sum(counts.values()) != expected:
        out_file.unlink(missing_ok=True)
        raise EdgebenchError(
            f"{hf_dir}: wrote {sum(counts.values())} tensors, whisper.cpp expects {expected}"
        )
    return {"ggml_type": file_type, "tensor_types": counts, "vocabulary": len(vocabulary)}
