"""The ggml writer without whisper.cpp: names, element types, ggml's reference quantisers bit for bit on
crafted blocks (rounding ties, the 5th-bit layout), and the header check that stands between a damaged
file and whisper.cpp (which aborts the process on some). Fast: no model."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.models.whisper import ggml


def test_hugging_face_names_map_to_whisper_cpp_names() -> None:
    cases = {
        "model.encoder.layers.0.self_attn.k_proj.weight": "encoder.blocks.0.attn.key.weight",
        "model.decoder.layers.3.encoder_attn.k_proj.weight": "decoder.blocks.3.cross_attn.key.weight",
        "model.decoder.layers.1.encoder_attn_layer_norm.bias": "decoder.blocks.1.cross_attn_ln.bias",
        "model.encoder.layers.2.fc2.weight": "encoder.blocks.2.mlp.2.weight",
        "model.encoder.conv1.weight": "encoder.conv1.weight",
        "model.encoder.layer_norm.weight": "encoder.ln_post.weight",
        "model.decoder.embed_tokens.weight": "decoder.token_embedding.weight",
        "model.decoder.embed_positions.weight": "decoder.positional_embedding",
    }
    assert {k: ggml.ggml_name(k) for k in cases} == cases
    assert ggml.ggml_name("proj_out.weight") is None  # tied to the token embedding: not written
    with pytest.raises(EdgebenchError, match="not a Whisper layer tensor"):
        ggml.ggml_name("model.encoder.layers.0.adapter.weight")


def test_element_types_follow_whisper_cpp_loader() -> None:
    assert ggml.element_type("encoder.blocks.0.attn.query.weight", 2, "q5_1") == "q5_1"
    assert ggml.element_type("decoder.token_embedding.weight", 2, "q8_0") == "q8_0"
    assert ggml.element_type("encoder.conv1.weight", 3, "q8_0") == "f16"  # kernels are never quantised
    assert ggml.element_type("encoder.conv1.weight", 3, "f32") == "f32"
    assert ggml.element_type("encoder.conv1.bias", 2, "f16") == "f32"  # reshaped (d, 1), still f32
    assert ggml.element_type("decoder.positional_embedding", 2, "f16") == "f32"
    assert ggml.element_type("encoder.blocks.0.attn_ln.weight", 1, "q8_0") == "f32"


def test_q8_0_is_ggml_reference_rounding() -> None:
    """Scale max|x|/127 in f16; values rounded half away from zero (C's roundf), with the float32 scale."""
    block = np.zeros(32, dtype=np.float32)
    block[:4] = [127.0, -63.5, 0.5, -0.5]  # scale 1: .5 ties go away from zero (numpy would go to even)
    data = np.frombuffer(ggml.quantize_q8_0(block[None]), ggml.Q8_0)
    assert data["d"][0] == np.float16(1.0)
    assert data["qs"][0][:4].tolist() == [127, -64, 1, -1]
    zeros = np.frombuffer(ggml.quantize_q8_0(np.zeros((1, 32), np.float32)), ggml.Q8_0)
    assert zeros["d"][0] == 0 and not zeros["qs"].any()
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 64)).astype(np.float32)
    back = ggml.dequantize(ggml.quantize_q8_0(weights), "q8_0", weights.shape)
    step = np.abs(weights).reshape(-1, 32).max(axis=1) / 127
    assert (np.abs(back - weights).reshape(-1, 32) <= step[:, None] * 0.5 + 1e-3).all()


def test_q5_1_packs_nibbles_and_fifth_bits_as_ggml() -> None:
    """Values 0..31 of a block with min 0, max 31: element j's low nibble in qs[j] (j < 16), element
    j + 16's in its high nibble, and the fifth bits at bits j and j + 16 of qh."""
    values = np.arange(32, dtype=np.float32)[::-1].copy()  # 31, 30, … 0: every 5-bit value once
    data = np.frombuffer(ggml.quantize_q5_1(values[None]), ggml.Q5_1)[0]
    assert (data["d"], data["m"]) == (np.float16(1.0), np.float16(0.0))
    for j in range(16):
        assert data["qs"][j] & 0xF == int(values[j]) & 0xF
        assert data["qs"][j] >> 4 == int(values[j + 16]) & 0xF
        assert (int(data["qh"]) >> j) & 1 == int(values[j]) >> 4
        assert (int(data["qh"]) >> (j + 16)) & 1 == int(values[j + 16]) >> 4
    assert ggml.dequantize(data.tobytes(), "q5_1", (1, 32)).tolist() == [values.tolist()]


def _tiny_file(path: Path, cut: int = 0) -> Path:
    """A syntactically whole ggml file with one 1-D tensor (not a usable model)."""
    body = struct.pack("<I", ggml.MAGIC) + struct.pack("<11i", 10, 1, 4, 1, 0, 1, 4, 1, 0, 2, 1)
    body += struct.pack("<ii", 2, 3) + np.zeros(6, np.float32).tobytes() + struct.pack("<i", 0)
    name = b"encoder.ln_post.weight"
    body += (
        struct.pack("<iii", 1, len(name), 0) + struct.pack("<i", 4) + name + np.ones(4, np.float32).tobytes()
    )
    path.write_bytes(body[: len(body) - cut])
    return path


def test_header_check_refuses_what_whisper_cpp_would_abort_on(tmp_path: Path) -> None:
    with pytest.raises(EdgebenchError, match="holds 1 tensors, a Whisper of its size has 11"):
        ggml.read_header(_tiny_file(tmp_path / "a.bin"))
    with pytest.raises(
        EdgebenchError, match=r"not a whole whisper\.cpp model file: the last tensor is cut short"
    ):
        ggml.read_header(_tiny_file(tmp_path / "b.bin", cut=3))
    (tmp_path / "c.bin").write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(EdgebenchError, match="magic 0x46554747 is not ggml's 0x67676d6c"):
        ggml.read_header(tmp_path / "c.bin")


def test_type_numbers_are_whisper_cpps_own() -> None:
    """Literal ggml numbers (not the tables read back): a tensor's type uses ggml_type (q5_1 7, q8_0 8),
    the header's file type ggml_ftype (q8_0 7, q5_1 9) plus 2 x 1000 for quantisation version 2."""
    assert (ggml.TENSOR_TYPE["f32"], ggml.TENSOR_TYPE["f16"]) == (0, 1)
    assert (ggml.TENSOR_TYPE["q5_1"], ggml.TENSOR_TYPE["q8_0"]) == (7, 8)
    stored = {t: ggml.FILE_TYPE[t] + (2000 if t in ggml.QUANTISED else 0) for t in ggml.FILE_TYPE}
    assert stored == {"f32": 0, "f16": 1, "q8_0": 2007, "q5_1": 2009}
    assert (ggml.Q8_0.itemsize, ggml.Q5_1.itemsize) == (34, 24)  # bytes per 32 values


def test_the_runtime_keeps_the_last_detection_however_long_the_log() -> None:
    """whisper.cpp's log is captured (the last lines only) and the language it detects is read from it:
    still after thousands of lines, and never a stale one (the session clears it before each call)."""
    from edgebench.agent.runtimes.whispercpp_runtime import _Log

    log = _Log()
    for i in range(5000):
        log(2, f"whisper_full: line {i}\n")
    log(2, "whisper_full_with_state: auto-detected language: de (p = 0.561234)\n")
    log(4, "whisper_model_load: ERROR not all tensors loaded from model file\n")
    assert log.detected == ("de", 0.561234) and log.errors == 1 and len(log.lines) <= 50
