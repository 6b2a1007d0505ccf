"""The counts behind benchmarks/ figures: a GFLOP/s figure is only as good as its FLOP count.

benchmarks/runtimes.py divides a forward pass's FLOPs, counted from the model's shapes, by its time and
compares that with the machine's GEMM peak. Here the count is checked against torch's own FLOP counter on
the real tiny.en model (eager attention: the counter does not see the CPU's fused attention kernel).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType

import pytest
import torch

from tests.conftest import ROOT


def _runtimes_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_runtimes", ROOT / "benchmarks" / "runtimes.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_forward_flops_equal_torchs_flop_counter() -> None:
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import WhisperForConditionalGeneration

    from edgebench.models.whisper import ct2_convert

    bench = _runtimes_benchmark()
    path = ct2_convert.ensure_converted()
    config = json.loads((path / "config.json").read_text())
    model = WhisperForConditionalGeneration.from_pretrained(path, attn_implementation="eager").eval()
    features = torch.zeros(1, config["num_mel_bins"], 2 * config["max_source_positions"])
    prompt = torch.tensor([[50257, 50362, 50362, 50362]])  # 4 tokens, as the English-only prompt's length
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(input_features=features, decoder_input_ids=prompt, use_cache=False)
    # this call projects all 4 positions to the vocabulary; the forward scenario's pass only the last
    extra_logits = 3 * 2 * config["d_model"] * config["vocab_size"]
    assert bench.forward_flops(config, prompt_len=4) + extra_logits == pytest.approx(
        counter.get_total_flops(), rel=1e-9
    )
    assert 40e9 < counter.get_total_flops() < 42e9  # tiny.en: ~40.7 GFLOP per 30 s window


def test_pareto_front_keeps_the_configurations_nothing_beats_on_both() -> None:
    bench = _runtimes_benchmark()
    points = {"a": (0.2, 0.05), "b": (0.3, 0.03), "c": (0.3, 0.06), "d": (0.2, 0.05), "e": (0.5, 0.03)}
    # c is beaten by a on both; e by b (as accurate, faster); a and d tie, neither beats the other
    assert bench.pareto(points) == {"a", "b", "d"}
