"""Greedy decoding of an exported Whisper (ONNX, TFLite), shared by the runtimes that run one.

The exported graphs differ (ONNX feeds a growing KV cache, TFLite a fixed-size one per item); the token
loop, the exact-count forcing and the text decoding do not. A runtime's model class provides
``_next_logits`` (one decoder step for the whole batch) and the ``decoding`` / ``decoder`` /
``tokenizer`` attributes; everything else lives here once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebench.agent.errors import EdgebenchError
from edgebench.models.base import DecodeState, Features


class ExportedWhisperDecoding:
    """``decode`` / ``transcribe_tokens`` / ``transcribe`` over a runtime-specific decoder step."""

    decoding: Any
    """:class:`edgebench.models.whisper.decoding.DecodingConfig` (prompt, max_length, …)."""
    decoder: Any
    """:class:`edgebench.models.whisper.decoding.GreedyDecoder`."""
    tokenizer: Any
    detected: Any = None
    """The language guess of each item of the last prefill (``--language auto``), else None."""

    def _next_logits(self, data: dict[str, Any], tokens: np.ndarray) -> np.ndarray:
        """Logits [batch, vocab] for the next position, given the last token per item; updates caches."""
        raise NotImplementedError

    def prefill(self, feats: Features) -> DecodeState:
        raise NotImplementedError

    def decode(self, state: DecodeState, n_tokens: int, force: bool = True) -> DecodeState:
        generated = state.tokens.shape[1]
        room = self.decoding.max_new_tokens - generated
        if force and n_tokens > room:
            raise EdgebenchError(
                f"cannot decode {n_tokens} more tokens: Whisper's decoder has {self.decoding.max_length} "
                f"positions, {len(self.decoding.prompt)} prompt + {generated} generated are used"
            )
        data = state.data
        finished = data["finished"]
        tokens = np.asarray(state.tokens[:, -1])
        new: list[np.ndarray] = []
        for _ in range(min(n_tokens, room)):
            if not force and bool(finished.all()):
                break
            logits = self._next_logits(data, tokens)
            tokens, finished = self.decoder.select(logits, generated + len(new), finished, force)
            new.append(tokens)
        if new:
            state.tokens = np.concatenate([state.tokens, np.stack(new, axis=1)], axis=1)  # type: ignore[assignment]
        data["finished"] = finished
        return state

    def transcribe_tokens(self, feats: Features) -> list[list[int]]:
        """Greedy token ids per item until end-of-text (excluded)."""
        state = self.decode(self.prefill(feats), self.decoding.max_new_tokens, force=False)
        return self.decoder.strip_eos(state.tokens)

    def transcribe(self, feats: Features, ctc_weight: float | None) -> list[str]:
        if ctc_weight is not None:
            raise EdgebenchError("ctc_weight applies only to hybrid CTC/attention models")
        return [
            self.tokenizer.decode(self.decoder.text_tokens(ids), skip_special_tokens=True).strip()
            for ids in self.transcribe_tokens(feats)
        ]
