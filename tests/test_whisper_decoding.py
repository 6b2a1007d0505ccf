"""The runtime-agnostic greedy rules (numpy logits, no model): prompts, suppression, forcing, padding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.models.whisper.decoding import DecodingConfig, GreedyDecoder

EN_ONLY = {
    "decoder_start_token_id": 50257,
    "eos_token_id": 50256,
    "no_timestamps_token_id": 50362,
    "suppress_tokens": [1, 2, 7],
    "begin_suppress_tokens": [220, 50256],
    "is_multilingual": False,
    "max_length": 448,
}
MULTI = {
    "decoder_start_token_id": 50258,
    "eos_token_id": 50257,
    "no_timestamps_token_id": 50363,
    "is_multilingual": True,
    "lang_to_id": {"<|en|>": 50259, "<|de|>": 50261},
    "task_to_id": {"transcribe": 50359, "translate": 50358},
}
VOCAB = 51864


def test_prompts_follow_the_generation_config() -> None:
    assert DecodingConfig.from_generation_config(EN_ONLY).prompt == (50257, 50362)
    assert DecodingConfig.from_generation_config(MULTI).prompt == (50258, 50259, 50359, 50363)
    assert DecodingConfig.from_generation_config(MULTI, language="de", task="translate").prompt == (
        50258,
        50261,
        50358,
        50363,
    )
    with pytest.raises(EdgebenchError, match=r"--language xx: this Whisper model knows 2 languages \(de, en"):
        DecodingConfig.from_generation_config(MULTI, language="xx")
    with pytest.raises(
        EdgebenchError, match="--task summarise: this Whisper model knows transcribe, translate"
    ):
        DecodingConfig.from_generation_config(MULTI, task="summarise")


def test_language_auto_detects_only_on_multilingual_models() -> None:
    """auto is detection on a multilingual model (English holds the prompt's place, same length) and
    plain English on an English-only one, which refuses any other language or translation."""
    auto = DecodingConfig.from_generation_config(MULTI)
    assert auto.detect_language and auto.fixed_language is None and len(auto.prompt) == 4
    german = DecodingConfig.from_generation_config(MULTI, language="de")
    assert not german.detect_language and german.fixed_language == "de"
    english_only = DecodingConfig.from_generation_config(EN_ONLY, language="auto")
    assert not english_only.detect_language and english_only.fixed_language == "en"
    assert DecodingConfig.from_generation_config(EN_ONLY, language="en").prompt == english_only.prompt
    with pytest.raises(EdgebenchError, match="English-only: --language de needs a multilingual Whisper"):
        DecodingConfig.from_generation_config(EN_ONLY, language="de")
    with pytest.raises(EdgebenchError, match="English-only: it cannot --task translate"):
        DecodingConfig.from_generation_config(EN_ONLY, task="translate")


def test_detection_is_the_softmax_over_language_tokens_only() -> None:
    """Each item's language is the arg-max over the language tokens, whatever other tokens score, and
    its probability is the softmax among the language tokens (Whisper's detect_language); the prompts
    carry each item's language token and are otherwise the fixed prompt."""
    decoder = GreedyDecoder(DecodingConfig.from_generation_config(MULTI))
    logits = np.zeros((2, VOCAB), dtype=np.float32)
    logits[:, 100] = 50.0  # a text token scoring highest never counts
    logits[0, 50261], logits[0, 50259] = 3.0, 1.0  # item 0: de
    logits[1, 50259], logits[1, 50261] = 2.0, 2.0 - np.log(3.0)  # item 1: en with p = 3/4
    guesses, prompts = decoder.detect(logits)
    assert [g.language for g in guesses] == ["de", "en"]
    assert guesses[0].probability == pytest.approx(np.exp(3) / (np.exp(3) + np.exp(1)))
    assert guesses[1].probability == pytest.approx(0.75)
    assert prompts.tolist() == [[50258, 50261, 50359, 50363], [50258, 50259, 50359, 50363]]
    fixed = GreedyDecoder(DecodingConfig.from_generation_config(MULTI, language="de"))
    rows, detected = fixed.choose_prompts(3, lambda: pytest.fail("a fixed language runs no detection"))
    assert detected is None and rows.tolist() == [[50258, 50261, 50359, 50363]] * 3


def test_reads_generation_config_json(tmp_path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps(EN_ONLY))
    config = DecodingConfig.from_pretrained_dir(tmp_path)
    assert config.max_new_tokens == 446
    assert config.timestamp_begin == 50363
    with pytest.raises(EdgebenchError, match=r"no generation_config\.json"):
        DecodingConfig.from_pretrained_dir(tmp_path / "missing")


def _logits(batch: int, favourite: list[int], runner_up: int = 500) -> np.ndarray:
    """Logits whose arg-max is ``favourite[i]`` per row and whose second best is ``runner_up``."""
    logits = np.zeros((batch, VOCAB), dtype=np.float32)
    logits[:, runner_up] = 1.0
    for row, token in enumerate(favourite):
        logits[row, token] = 2.0
    return logits


def test_suppression_begin_only_at_first_step() -> None:
    decoder = GreedyDecoder(DecodingConfig.from_generation_config(EN_ONLY))
    # Blank (220) and EOS are banned at step 0 only; suppress_tokens always.
    tokens, finished = decoder.select(_logits(3, [220, 50256, 7]), step=0)
    assert tokens.tolist() == [500, 500, 500]
    assert not finished.any()
    tokens, finished = decoder.select(_logits(3, [220, 50256, 7]), step=1, finished=finished)
    assert tokens.tolist() == [220, 50256, 500]
    assert finished.tolist() == [False, True, False]


def test_finished_items_are_padded_and_force_bans_eos() -> None:
    decoder = GreedyDecoder(DecodingConfig.from_generation_config(EN_ONLY))
    finished = np.array([True, False])
    tokens, finished = decoder.select(_logits(2, [42, 43]), step=5, finished=finished)
    assert tokens.tolist() == [50256, 43]
    tokens, _ = decoder.select(_logits(2, [50256, 50256]), step=5, force=True)
    assert tokens.tolist() == [500, 500]


def test_generate_loop_stops_when_all_finished_or_forced() -> None:
    decoder = GreedyDecoder(DecodingConfig.from_generation_config(EN_ONLY))
    script = iter([[11, 50256], [50256, 12], [13, 14]])

    def step(last: np.ndarray) -> np.ndarray:
        return _logits(2, next(script))

    out = decoder.generate(_logits(2, [10, 20]), step, max_new_tokens=10)
    assert out.tolist() == [[10, 11, 50256], [20, 50256, 50256]]
    assert decoder.strip_eos(out) == [[10, 11], [20]]

    forced = decoder.generate(
        _logits(1, [10]), lambda last: _logits(1, [50256]), max_new_tokens=7, force=True
    )
    assert forced.shape == (1, 7)
    assert 50256 not in forced.tolist()[0]
    with pytest.raises(EdgebenchError, match="446"):
        decoder.generate(_logits(1, [10]), step, max_new_tokens=447)


def test_text_tokens_drop_timestamps() -> None:
    decoder = GreedyDecoder(DecodingConfig.from_generation_config(EN_ONLY))
    assert decoder.text_tokens([50363, 400, 50400, 401]) == [400, 401]


def _language_logits(batch: int, favourites: list[int]) -> np.ndarray:
    """Logits after <|startoftranscript|> favouring one language token per item (and a text token)."""
    logits = np.zeros((batch, VOCAB), dtype=np.float32)
    logits[:, 100] = 9.0  # a text token: never a language
    for row, token in enumerate(favourites):
        logits[row, token] = 5.0
    return logits


def test_onnx_prefill_detects_from_sot_alone_then_feeds_each_items_prompt_with_its_cache() -> None:
    """ONNX Runtime's prefill with --language auto: the decoder takes [SOT] on an empty cache, then each
    item's rest of the prompt (its detected language, task, notimestamps) on the cache that step filled;
    with a fixed language, one call with the whole prompt."""
    from edgebench.agent.runtimes.onnx_models import WhisperOnnx
    from edgebench.models.base import Features

    calls: list[tuple[list[list[int]], int]] = []

    def run(graph: str, feeds: dict) -> list:  # type: ignore[type-arg]
        if graph == "encoder":
            return [np.zeros((2, 3, 4), np.float32)]
        ids, past = feeds["input_ids"], feeds["past_0"]
        calls.append((ids.tolist(), past.shape[2]))
        return [_language_logits(2, [50261, 50259]), np.zeros((2, 1, past.shape[2] + ids.shape[1], 4))]

    for language, expected in (("auto", 2), ("de", 1)):
        model = WhisperOnnx.__new__(WhisperOnnx)
        model.decoding = DecodingConfig.from_generation_config(MULTI, language=language)
        model.decoder = GreedyDecoder(model.decoding)
        model.run, model.past_names, model.cross_names, model.empty_past = (
            run,
            ["past_0"],
            ["cross"],
            (1, 0, 4),
        )
        calls.clear()
        model.prefill(Features(values=np.zeros((2, 80, 3000), np.float32), lengths=np.zeros(2)))  # type: ignore[arg-type]
        assert len(calls) == expected
        if language == "auto":
            assert calls[0] == ([[50258], [50258]], 0)
            assert calls[1] == ([[50261, 50359, 50363], [50259, 50359, 50363]], 1)
            assert [g.language for g in model.detected] == ["de", "en"]
        else:
            assert calls[0] == ([[50258, 50261, 50359, 50363]] * 2, 0) and model.detected is None


def test_litert_prefill_detects_after_feeding_sot_then_feeds_each_items_language() -> None:
    """LiteRT feeds the prompt token by token per item: SOT at position 0 (its logits choose the
    language), then each item's own language, the task and notimestamps at positions 1-3."""
    from edgebench.agent.runtimes.litert_runtime import WhisperLiteRT
    from edgebench.models.base import Features

    fed: list[tuple[int, int, int]] = []  # (item, token, position)

    class Graph:
        def __init__(self) -> None:
            self.inputs: dict = {}  # type: ignore[type-arg]
            self.input_shapes = {"self_k": (1, 1, 2, 8)}

        def set(self, name: str, value: np.ndarray) -> None:
            self.inputs[name] = value

        def run(self, **kwargs: np.ndarray) -> dict:  # type: ignore[type-arg]
            return {"cross_k": np.zeros(1), "cross_v": np.full(1, len(fed))}

        def invoke(self) -> None:
            item = int(self.inputs["cross_v"][0])
            fed.append((item, int(self.inputs["token"][0, 0]), int(self.inputs["position"][0])))

        def get(self, name: str) -> np.ndarray:
            if name == "logits":
                return _language_logits(1, [[50261, 50259][fed[-1][0] % 2]])
            return np.zeros((1, 1, 2, 1), np.float32)

    model = WhisperLiteRT.__new__(WhisperLiteRT)
    model.decoding = DecodingConfig.from_generation_config(MULTI)
    model.decoder = GreedyDecoder(model.decoding)
    model.encoder = model.decoder_graph = Graph()
    model.cache_shape, model.max_positions, model._current = (1, 1, 2, 8), 448, None
    items = iter(range(2))
    model.encoder.run = lambda **kw: {"cross_k": np.zeros(1), "cross_v": np.full(1, next(items))}  # type: ignore[method-assign]
    model.prefill(Features(values=np.zeros((2, 80, 3000), np.float32), lengths=np.zeros(2)))  # type: ignore[arg-type]
    assert [g.language for g in model.detected] == ["de", "en"]
    assert [(t, p) for i, t, p in fed if i == 0] == [(50258, 0), (50261, 1), (50359, 2), (50363, 3)]
    assert [(t, p) for i, t, p in fed if i == 1] == [(50258, 0), (50259, 1), (50359, 2), (50363, 3)]
