"""Runtime-agnostic greedy decoding for Whisper.

The decode loop is the part of Whisper that every runtime (PyTorch, ONNX Runtime, …) must do *identically*,
otherwise a speed or WER difference between runtimes could come from decoding rules rather than from the
runtime. So the rules live here once, working on logits from any array library: numpy arrays or torch
tensors (duck-typed: ``argmax``, boolean-mask assignment and fancy indexing are spelled the same in both;
torch is never imported by this module).

The rules are exactly CTranslate2's ``Whisper.generate`` with ``beam_size=1`` and its defaults
``suppress_blank=True`` and ``suppress_tokens=[-1]``:

* the prompt is ``<|startoftranscript|><|notimestamps|>`` for English-only models and
  ``<|startoftranscript|><|LANG|><|TASK|><|notimestamps|>`` for multilingual ones (no timestamp rules
  apply, because the prompt ends with ``<|notimestamps|>``);
* a multilingual model told ``language="auto"`` chooses ``<|LANG|>`` per item as Whisper and CTranslate2
  do (``detect_language``): the decoder's logits after ``<|startoftranscript|>`` alone, softmax over the
  language tokens only, arg-max; the probability is recorded. Every item's prompt has the same length, so
  a batch stays rectangular;
* ``suppress_tokens`` (CTranslate2's ``suppress_ids``) are masked at every step;
* ``begin_suppress_tokens`` (the blank ``" "`` and end-of-text) are masked at the first generated step;
* the token is the arg-max; an item that emitted end-of-text is finished and from then on gets
  end-of-text as padding, so that a batch keeps a rectangular shape;
* at most ``max_length`` (448, the decoder's positional table) tokens including the prompt.

``force=True`` additionally masks end-of-text at every step, so that exactly ``n`` tokens are produced:
this is how the generate scenario measures decode speed for a fixed token count.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.agent.errors import EdgebenchError

MAX_LENGTH = 448
"""Whisper's decoder has 448 positions: prompt + generated tokens never exceed this."""

StepFn = Callable[[Any], Any]
"""``step(last_tokens [B]) -> logits [B, vocab]``: one incremental decoder step of some runtime (the
callable owns the KV cache)."""


def _get(config: Any, key: str, default: Any = None) -> Any:
    """Read a field from a ``GenerationConfig`` object or a plain mapping (``generation_config.json``)."""
    if isinstance(config, Mapping):
        return config.get(key, default)
    value = getattr(config, key, default)
    return default if value is None else value


def _is_torch(array: Any) -> bool:
    return type(array).__module__.startswith("torch")


@dataclass(frozen=True)
class DecodingConfig:
    """Everything the greedy loop needs, as plain ints (no tokenizer, no framework)."""

    prompt: tuple[int, ...]
    eos_token_id: int
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()
    max_length: int = MAX_LENGTH
    timestamp_begin: int | None = None
    """First timestamp token id (``<|notimestamps|>`` + 1): text decoding drops ids from here on."""
    languages: tuple[tuple[str, int], ...] = ()
    """Multilingual models: ``(code, token id)`` of every language token (``("de", 50261)``)."""
    detect_language: bool = False
    """``prompt[1]`` is a placeholder chosen per item by :meth:`GreedyDecoder.detect` (``--language
    auto``); the prompt's length, and so every position count, is the same as with a fixed language."""

    @property
    def max_new_tokens(self) -> int:
        """How many tokens can be generated after the prompt."""
        return self.max_length - len(self.prompt)

    @classmethod
    def from_generation_config(
        cls,
        generation_config: Any,
        *,
        language: str = "auto",
        task: str = "transcribe",
        max_length: int | None = None,
    ) -> DecodingConfig:
        """Build from a ``transformers.GenerationConfig`` or the dict of a ``generation_config.json``.

        ``language`` is a code (``de``), a token (``<|de|>``) or ``auto`` (detected per item); ``task``
        is ``transcribe`` or ``translate`` (into English). Multilingual models (``is_multilingual``) read
        the ``lang_to_id``/``task_to_id`` tables every Whisper generation config carries; an English-only
        model takes ``auto``/``en`` and ``transcribe`` only (it has no language or task tokens).
        """
        sot = _get(generation_config, "decoder_start_token_id")
        eos = _get(generation_config, "eos_token_id")
        no_timestamps = _get(generation_config, "no_timestamps_token_id")
        if isinstance(eos, list):
            eos = eos[0]
        if sot is None or eos is None or no_timestamps is None:
            raise EdgebenchError(
                "Whisper generation config lacks decoder_start_token_id, eos_token_id or "
                "no_timestamps_token_id: use a complete Hugging Face Whisper directory"
            )
        prompt = [int(sot)]
        code = language.removeprefix("<|").removesuffix("|>")
        languages: tuple[tuple[str, int], ...] = ()
        if _get(generation_config, "is_multilingual", False):
            lang_to_id = _get(generation_config, "lang_to_id") or {}
            task_to_id = _get(generation_config, "task_to_id") or {}
            languages = tuple(
                (token.removeprefix("<|").removesuffix("|>"), int(i)) for token, i in lang_to_id.items()
            )
            ids = dict(languages)
            if not ids or (code != "auto" and code not in ids):
                shown = ", ".join(sorted(ids)[:12])
                raise EdgebenchError(
                    f"--language {code}: this Whisper model knows {len(ids)} languages ({shown}, …) or auto"
                )
            if task not in task_to_id:
                raise EdgebenchError(f"--task {task}: this Whisper model knows {', '.join(task_to_id)}")
            # Detection fills prompt[1] per item; English holds the place (same length, same positions).
            placeholder = "en" if "en" in ids else next(iter(ids))  # a fine-tune may lack English
            prompt += [ids[placeholder if code == "auto" else code], int(task_to_id[task])]
        else:
            check_english_only(code, task, "this Whisper model")
        prompt.append(int(no_timestamps))
        return cls(
            prompt=tuple(prompt),
            eos_token_id=int(eos),
            suppress_tokens=tuple(int(i) for i in _get(generation_config, "suppress_tokens", []) or []),
            begin_suppress_tokens=tuple(
                int(i) for i in _get(generation_config, "begin_suppress_tokens", []) or []
            ),
            max_length=int(max_length or _get(generation_config, "max_length", MAX_LENGTH) or MAX_LENGTH),
            timestamp_begin=int(no_timestamps) + 1,
            languages=languages,
            detect_language=bool(languages) and code == "auto",
        )

    def language_of(self, token: int) -> str | None:
        """The language code of a language token id (None: not one, or an English-only model)."""
        return next((code for code, i in self.languages if i == token), None)

    @property
    def fixed_language(self) -> str | None:
        """The language every item is decoded in (None while it is detected per item)."""
        if self.detect_language:
            return None
        return self.language_of(self.prompt[1]) if self.languages else "en"

    @classmethod
    def from_pretrained_dir(cls, path: str | Path, **kwargs: Any) -> DecodingConfig:
        """Read ``generation_config.json`` from a Hugging Face Whisper directory (no transformers needed,
        so an ONNX Runtime deployment can use it too)."""
        file = Path(path) / "generation_config.json"
        if not file.is_file():
            raise EdgebenchError(
                f"{path} has no generation_config.json (needed for Whisper's prompt and suppressed tokens): "
                "use a complete Hugging Face Whisper directory"
            )
        return cls.from_generation_config(json.loads(file.read_text()), **kwargs)


def check_english_only(language: str, task: str, model: str) -> None:
    """An English-only model (``.en``) has no language or task tokens: it transcribes English only."""
    if language not in ("auto", "en"):
        raise EdgebenchError(
            f"{model} is English-only: --language {language} needs a multilingual Whisper "
            "(whisper-tiny, whisper-base, …; whisper-base runs offline)"
        )
    if task != "transcribe":
        raise EdgebenchError(
            f"{model} is English-only: it cannot --task {task} (a multilingual Whisper translates into "
            "English)"
        )


@dataclass(frozen=True)
class LanguageGuess:
    """The language detected for one item and its probability among the language tokens."""

    language: str
    probability: float


class GreedyDecoder:
    """Chooses tokens from logits under :class:`DecodingConfig`'s rules, for numpy or torch logits.

    Stateless apart from cached index arrays: the per-batch progress (``finished``) is passed in and
    returned, so a caller can split decoding into prefill and decode calls (as the benchmark does).
    """

    def __init__(self, config: DecodingConfig) -> None:
        self.config = config
        self._suppress = np.asarray(config.suppress_tokens, dtype=np.int64)
        self._suppress_begin = np.asarray(config.begin_suppress_tokens, dtype=np.int64)
        self._eos = np.asarray([config.eos_token_id], dtype=np.int64)
        self._torch_index: dict[tuple[str, Any], Any] = {}

    def _index(self, ids: np.ndarray, like: Any, key: str) -> Any:
        """``ids`` as an index for ``like``'s library and device (cached: no host->device copy per step)."""
        if not _is_torch(like):
            return ids
        cache_key = (key, like.device)
        if cache_key not in self._torch_index:
            import torch

            self._torch_index[cache_key] = torch.as_tensor(ids, device=like.device)
        return self._torch_index[cache_key]

    def new_finished(self, like: Any) -> Any:
        """An all-False ``[batch]`` mask in the library (and device) of ``like`` (logits or tokens)."""
        if _is_torch(like):
            import torch

            return torch.zeros(like.shape[0], dtype=torch.bool, device=like.device)
        return np.zeros(like.shape[0], dtype=bool)

    def detect(self, logits: Any) -> tuple[list[LanguageGuess], np.ndarray]:
        """Each item's language from the logits ``[batch, vocab]`` after ``<|startoftranscript|>``: the
        arg-max over the language tokens and its softmax probability among them (Whisper's
        ``detect_language``). Returns the guesses and the per-item prompts ``[batch, len(prompt)]``."""
        codes = [code for code, _ in self.config.languages]
        ids = np.asarray([i for _, i in self.config.languages], dtype=np.int64)
        if _is_torch(logits):
            logits = logits.float().cpu().numpy()
        scores = np.asarray(logits, dtype=np.float64)[:, ids]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs = scores / scores.sum(axis=1, keepdims=True)
        best = probs.argmax(axis=1)
        guesses = [LanguageGuess(codes[b], float(p[b])) for b, p in zip(best, probs, strict=True)]
        return guesses, self.prompts([int(ids[b]) for b in best])

    def choose_prompts(
        self, batch: int, sot_logits: Callable[[], Any]
    ) -> tuple[np.ndarray, list[LanguageGuess] | None]:
        """Each item's prompt ``[batch, len(prompt)]``: the fixed one, or with the language detected from
        ``sot_logits()`` (the decoder's logits after ``<|startoftranscript|>``, called only when the
        language is detected). Returns the guesses too (None: the language was not detected)."""
        if not self.config.detect_language:
            return np.tile(np.asarray(self.config.prompt, dtype=np.int64), (batch, 1)), None
        guesses, rows = self.detect(sot_logits())
        return rows, guesses

    def prompts(self, language_tokens: list[int]) -> np.ndarray:
        """The prompt of each item with its language token ``[batch, len(prompt)]`` (int64)."""
        rows = np.tile(np.asarray(self.config.prompt, dtype=np.int64), (len(language_tokens), 1))
        rows[:, 1] = language_tokens
        return rows

    def select(self, logits: Any, step: int, finished: Any = None, force: bool = False) -> tuple[Any, Any]:
        """Next tokens ``[batch]`` and the updated ``finished`` mask.

        ``logits`` is ``[batch, vocab]`` for the position being generated and is modified in place
        (suppressed ids set to -inf). ``step`` counts generated tokens: 0 is the first one, where the
        begin-suppression applies. Finished items get end-of-text.
        """
        inf = float("-inf")
        if len(self._suppress):
            logits[:, self._index(self._suppress, logits, "suppress")] = inf
        if step == 0 and len(self._suppress_begin):
            logits[:, self._index(self._suppress_begin, logits, "begin")] = inf
        if force:
            logits[:, self._index(self._eos, logits, "eos")] = inf
        tokens = logits.argmax(-1)
        if finished is None:
            finished = self.new_finished(logits)
        eos = self.config.eos_token_id
        tokens[finished] = eos
        finished = finished | (tokens == eos)
        return tokens, finished

    def generate(
        self,
        first_logits: Any,
        step_fn: StepFn,
        max_new_tokens: int | None = None,
        force: bool = False,
    ) -> Any:
        """Run the whole greedy loop: ``first_logits`` (``[batch, vocab]``, from the prompt) chooses the
        first token, ``step_fn(tokens)`` gives the logits after each further token.

        Returns ``[batch, n]`` tokens in the logits' library; without ``force`` the loop stops as soon as
        every item is finished, so ``n`` can be smaller than ``max_new_tokens`` and rows are padded with
        end-of-text. See :func:`strip_eos` to get per-item token lists.
        """
        limit = self.config.max_new_tokens if max_new_tokens is None else max_new_tokens
        if limit > self.config.max_new_tokens:
            raise EdgebenchError(
                f"cannot generate {limit} tokens: Whisper allows {self.config.max_new_tokens} "
                "after the prompt"
            )
        tokens, finished = self.select(first_logits, 0, None, force)
        out = [tokens]
        while len(out) < limit and (force or not bool(finished.all())):
            tokens, finished = self.select(step_fn(tokens), len(out), finished, force)
            out.append(tokens)
        if _is_torch(tokens):
            import torch

            return torch.stack(out, dim=1)
        return np.stack(out, axis=1)

    def strip_eos(self, tokens: Any) -> list[list[int]]:
        """Per-item token ids up to (excluding) the first end-of-text, as CTranslate2 returns them."""
        rows = tokens.tolist()
        eos = self.config.eos_token_id
        return [row[: row.index(eos)] if eos in row else row for row in rows]

    def text_tokens(self, ids: list[int]) -> list[int]:
        """Ids worth detokenizing: timestamp tokens are dropped (the tokenizer may not know them)."""
        begin = self.config.timestamp_begin
        return ids if begin is None else [i for i in ids if i < begin]
