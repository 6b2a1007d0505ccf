"""``hf:<model-id-or-path>``: generic Hugging Face causal LMs and Whisper-compatible speech models.

The causal LM is a tiny randomly initialised GPT-2 saved with ``save_pretrained`` (no tokenizer: prompts
are token ids); the speech model is the real Whisper tiny.en weights in Hugging Face layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.models.registry import load_torch_model, resolve
from tests.conftest import run_cli

QUIET = ["--no-store", "--power-source", "none", "--idle-seconds", "0"]
FAST = ["--min-iterations", "2", "--min-duration", "0", "--warmup", "1"]


def test_spec_is_read_from_config_without_torch(tiny_gpt2: Path) -> None:
    spec = resolve(f"hf:{tiny_gpt2}")
    assert spec.name == f"hf:{tiny_gpt2}"
    assert spec.family == "causal-lm"
    assert spec.options["hf_source"] == "local-dir"
    # exact count from the safetensors header: wte 1000x64 + wpe 64x64 + 2 blocks + ln_f (no lm_head: tied)
    block = 2 * 64 + (64 * 192 + 192) + (64 * 64 + 64) + 2 * 64 + (64 * 256 + 256) + (256 * 64 + 64)
    assert spec.approx_params == 1000 * 64 + 64 * 64 + 2 * block + 2 * 64


def test_forced_generation_gives_exactly_n_tokens_even_when_eos_wins(tiny_gpt2: Path) -> None:
    model = load_torch_model(resolve(f"hf:{tiny_gpt2}"))
    assert model.param_counts()["total"] == resolve(f"hf:{tiny_gpt2}").approx_params
    feats = model.features([None, None, None], None)  # type: ignore[list-item, arg-type]
    assert tuple(feats.values.shape) == (3, 16)
    assert bool((feats.values == feats.values[0]).all())  # same seeded prompt for every item
    free = model.decode(model.prefill(feats), 6, force=False).tokens
    assert tuple(free.shape) == (3, 7)
    # Make the token greedy decoding picks first the end-of-sequence token: forcing must avoid it.
    model.eos_ids = [int(free[0, 0])]  # type: ignore[attr-defined]
    forced = model.decode(model.prefill(feats), 6, force=True).tokens
    assert tuple(forced.shape) == (3, 7)
    assert int(free[0, 0]) not in forced.tolist()[0]
    logits = model.forward(feats)
    assert tuple(logits.shape) == (3, 16, 1000)
    with pytest.raises(EdgebenchError, match="64 positions"):
        model.decode(model.prefill(feats), 60)


def test_cli_forward_and_generate_exact_tokens(tiny_gpt2: Path) -> None:
    proc = run_cli(
        "run", "--model", f"hf:{tiny_gpt2}", "--scenario", "forward,generate", "--new-tokens", "5",
        "--batch-size", "1,2", *FAST, *QUIET, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert [(d["config"]["scenario"], d["config"]["batch_size"]) for d in docs] == [
        ("forward", 1), ("forward", 2), ("generate", 1), ("generate", 2),
    ]  # fmt: skip
    for doc in docs:
        assert doc["model"]["family"] == "causal-lm"
        assert doc["config"]["audio_seconds"] is None and doc["config"]["prompt_tokens"] == 16
    for doc in docs[2:]:
        gen = doc["generate"]
        assert gen["new_tokens"] == 5 and doc["config"]["new_tokens"] == 5
        b = doc["config"]["batch_size"]
        assert gen["tokens_per_s"] == pytest.approx(b * 5 / gen["latency_s"]["mean"], rel=1e-6)
        assert gen["decode_tokens_per_s"] == pytest.approx(b * 4 / gen["decode_s"]["mean"], rel=1e-6)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scenario", "transcribe"], "is a language model"),
        (["--scenario", "forward", "--runtime", "onnxruntime"], "runs on --runtime torch only"),
        (["--scenario", "generate", "--new-tokens", "60"], "64 positions"),
    ],
)
def test_cli_causal_lm_bad_combinations_one_line(tiny_gpt2: Path, args, needle) -> None:
    proc = run_cli("run", "-m", f"hf:{tiny_gpt2}", *args, *FAST, *QUIET)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edgebench-agent: error: ") and needle in last, proc.stderr


def test_unresolvable_names(tmp_path: Path, tiny_gpt2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(EdgebenchError, match=r"not in the Hugging Face cache .*HF_HUB_OFFLINE"):
        resolve("hf:someone/no-such-model")
    with pytest.raises(EdgebenchError, match="no such directory"):
        resolve(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(EdgebenchError, match="hf: needs a model"):
        resolve("hf:")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    shutil.copy(tiny_gpt2 / "config.json", no_weights / "config.json")
    with pytest.raises(EdgebenchError, match="missing weights"):
        resolve(f"hf:{no_weights}")
    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_gpt2, encoder)
    config = json.loads((encoder / "config.json").read_text())
    (encoder / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2Model"]}))
    with pytest.raises(EdgebenchError, match="is GPT2Model: edgebench runs causal LMs"):
        resolve(f"hf:{encoder}")


def test_hub_id_found_in_the_offline_cache(tmp_path: Path, tiny_gpt2: Path, monkeypatch) -> None:
    """A hub id resolves from the HF cache layout (refs/main -> snapshots/REV) with HF_HUB_OFFLINE=1."""
    cache = tmp_path / "hub"
    repo = cache / "models--edgebench--tiny-gpt2"
    shutil.copytree(tiny_gpt2, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    spec = resolve("hf:edgebench/tiny-gpt2")
    assert spec.family == "causal-lm" and spec.options["hf_source"] == "hf-cache"
    assert spec.hf_repo == "edgebench/tiny-gpt2"
    model = load_torch_model(spec)
    assert model.info.weights_source == "hf-cache"
    with pytest.raises(EdgebenchError, match="--weights does not apply"):
        load_torch_model(spec, weights="/x")


def test_whisper_compatible_speech_model_by_path() -> None:
    """Real Whisper tiny.en weights, named by their directory: runs as the Whisper family (transcribe)."""
    from edgebench.models.whisper.ct2_convert import ensure_converted

    directory = ensure_converted()
    spec = resolve(f"hf:{directory}")
    assert spec.family == "whisper" and spec.english_only and spec.n_mels == 80
    proc = run_cli(
        "run", "-m", f"hf:{directory}", "--scenario", "transcribe", "--limit", "4", *FAST, *QUIET, "--json"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [doc] = json.loads(proc.stdout)
    assert doc["model"]["family"] == "whisper" and doc["model"]["weights_source"] == str(directory)
    assert doc["transcribe"]["utterances"] == 4
    assert doc["transcribe"]["wer"] <= 0.35
