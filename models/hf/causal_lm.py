"""A Hugging Face causal LM behind :class:`TorchAsrModel`, measured like seed 004 measures gpt2.

A language model takes token ids, not audio, so :meth:`HfCausalLM.features` ignores the waveforms the
scenarios hand it and returns ``batch x prompt_tokens`` token ids drawn from the vocabulary with a seeded
generator: the same prompt on every device and run, no tokenizer needed (a tiny random config works),
and an exact prompt length (tokenising a text gives a length that depends on the tokenizer).

As for Whisper, decoding is a plain greedy loop over the model's own forward with its KV cache, not
``model.generate``: prefill (prompt + first token) and each further token are separately timed calls,
and with ``force`` the end-of-sequence token is masked so exactly N tokens come out
(min_new_tokens == max_new_tokens, the mistake seed 000 warns about).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from edgebench.agent.errors import EdgebenchError
from edgebench.models.base import DecodeState, Features, ModelInfo, TorchAsrModel
from edgebench.models.spec import ModelSpec

if TYPE_CHECKING:
    from edgebench.models.frontend.logmel import LogMelFrontend


class HfCausalLM(TorchAsrModel):
    """A loaded ``AutoModelForCausalLM`` with seeded prompt ids and forced-length greedy decoding."""

    def __init__(self, spec: ModelSpec, module: nn.Module, info: ModelInfo, prompt_tokens: int, seed: int):
        self.spec = spec
        self.module = module
        self.info = info
        self.prompt_tokens = prompt_tokens
        config = module.config
        self.vocab_size = int(config.vocab_size)
        self.max_positions = _max_positions(config)
        if self.max_positions is not None and prompt_tokens >= self.max_positions:
            raise EdgebenchError(
                f"{spec.name} has {self.max_positions} positions: a {prompt_tokens}-token prompt leaves none"
            )
        # Ids outside the vocabulary (a tiny test config keeping GPT-2's 50256) cannot be emitted anyway.
        self.eos_ids = [i for i in _eos_ids(module) if 0 <= i < self.vocab_size]
        generator = torch.Generator().manual_seed(seed)
        self._prompt = torch.randint(0, self.vocab_size, (prompt_tokens,), generator=generator)
        self._param_counts = self._count_params()

    def _count_params(self) -> dict[str, int]:
        # Unique tensors: GPT-2's lm_head shares the token embedding and must be counted once.
        seen: set[int] = set()
        total = embeddings = 0
        embedding = self.module.get_input_embeddings()
        for param in self.module.parameters():
            if id(param) in seen:
                continue
            seen.add(id(param))
            total += param.numel()
        if embedding is not None:
            embeddings = sum(p.numel() for p in embedding.parameters())
        return {"embeddings": embeddings, "transformer": total - embeddings, "total": total}

    def param_counts(self) -> dict[str, int]:
        """``embeddings`` (token embedding, shared with a tied output head), ``transformer`` (the rest,
        an untied output head included) and ``total``."""
        return dict(self._param_counts)

    def features(self, audio: list[np.ndarray], frontend: LogMelFrontend) -> Features:
        """``[len(audio), prompt_tokens]`` prompt ids (int64, CPU); the audio itself is not used."""
        if not audio:
            raise EdgebenchError("empty batch")
        ids = self._prompt.unsqueeze(0).repeat(len(audio), 1)
        return Features(values=ids, lengths=torch.full((len(audio),), self.prompt_tokens, dtype=torch.long))

    def _device(self) -> torch.device:
        return self.module.get_input_embeddings().weight.device

    @torch.inference_mode()
    def forward(self, feats: Features) -> torch.Tensor:
        """One full forward pass over the prompt without cache: logits ``[B, prompt_tokens, vocab]``."""
        out = self.module(input_ids=feats.values.to(self._device()), use_cache=False)
        return out.logits

    def _pick(self, logits: torch.Tensor, force: bool) -> torch.Tensor:
        if force and self.eos_ids:
            logits = logits.clone()
            logits[:, self.eos_ids] = -float("inf")
        return logits.argmax(dim=-1)

    @torch.inference_mode()
    def prefill(self, feats: Features) -> DecodeState:
        """The prompt through the model (filling the KV cache) and the first new token (EOS masked)."""
        ids = feats.values.to(self._device())
        out = self.module(input_ids=ids, use_cache=True)
        tokens = self._pick(out.logits[:, -1, :], force=True)
        return DecodeState(tokens=tokens[:, None], data={"past_key_values": out.past_key_values})

    @torch.inference_mode()
    def decode(self, state: DecodeState, n_tokens: int, force: bool = True) -> DecodeState:
        """``n_tokens`` more greedy tokens with the cache; exactly that many (an error past the model's
        positions). Without ``force`` EOS may be chosen but decoding still runs ``n_tokens`` steps, so
        the batch stays rectangular."""
        used = self.prompt_tokens + state.tokens.shape[1]
        if self.max_positions is not None and used + n_tokens > self.max_positions:
            raise EdgebenchError(
                f"cannot generate {n_tokens} more tokens: {self.spec.name} has {self.max_positions} "
                f"positions and {used} are used (prompt {self.prompt_tokens} + {state.tokens.shape[1]})"
            )
        past = state.data["past_key_values"]
        last = state.tokens[:, -1:]
        new: list[torch.Tensor] = []
        for _ in range(n_tokens):
            out = self.module(input_ids=last, past_key_values=past, use_cache=True)
            past = out.past_key_values
            last = self._pick(out.logits[:, -1, :], force)[:, None]
            new.append(last)
        state.data["past_key_values"] = past
        if new:
            state.tokens = torch.cat([state.tokens, *new], dim=1)
        return state

    def transcribe(self, feats: Features, ctc_weight: float | None = None) -> list[str]:
        raise EdgebenchError(f"{self.spec.name} is a language model: it has no transcribe scenario")


def _max_positions(config: Any) -> int | None:
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _eos_ids(module: nn.Module) -> list[int]:
    ids: Any = None
    generation = getattr(module, "generation_config", None)
    if generation is not None:
        ids = generation.eos_token_id
    if ids is None:
        ids = getattr(module.config, "eos_token_id", None)
    if ids is None:
        return []
    return [int(i) for i in (ids if isinstance(ids, list | tuple) else [ids])]
