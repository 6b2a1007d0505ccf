"""What each model family does on top of its exported ONNX graphs (numpy only: no torch at run time).

* :class:`WhisperOnnx`: encoder graph (cross-attention keys/values) + decoder step graph with the KV cache,
  driven by the same :class:`~edgebench.models.whisper.decoding.GreedyDecoder` as the torch runtime, so
  the two runtimes can differ only in arithmetic, never in decoding rules.
* :class:`HybridCtcOnnx`: encoder + CTC head graph, CTC best-path decoding (``ctc_weight=1``).

Both take a ``run(graph, feeds) -> outputs`` callable so that the ONNX Runtime specifics (sessions,
providers) stay in :mod:`edgebench.agent.runtimes.onnx_runtime`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.runtimes.exported_whisper import ExportedWhisperDecoding
from edgebench.models.base import DecodeState, Features
from edgebench.models.whisper.tokenizer_file import load_tokenizer_file

Run = Callable[[str, dict[str, np.ndarray]], list[np.ndarray]]
"""``run(graph name, feeds) -> outputs in the graph's output order``."""

WHISPER_SAMPLES = 480_000


class WhisperOnnx(ExportedWhisperDecoding):
    """Whisper over ``encoder`` + ``decoder`` graphs (see :mod:`edgebench.agent.export.onnx_whisper`)."""

    def __init__(
        self, meta: dict[str, Any], files: dict[str, Path], run: Run, language: str, task: str
    ) -> None:
        from edgebench.models.whisper.decoding import DecodingConfig, GreedyDecoder

        self.meta = meta
        self.run = run
        self.decoding = DecodingConfig.from_pretrained_dir(
            Path(files["generation_config"]).parent, language=language, task=task
        )
        self.decoder = GreedyDecoder(self.decoding)
        self.tokenizer = load_tokenizer_file(Path(files["tokenizer"]), "onnxruntime")
        self.n_layers = int(meta["n_layers"])
        self.empty_past = (int(meta["n_heads"]), 0, int(meta["head_dim"]))
        self.past_names = [n for n in meta["decoder_inputs"] if n.startswith("past_")]
        self.cross_names = list(meta["encoder_outputs"])

    def features(self, audio: list[np.ndarray], frontend: Any) -> Features:
        if not audio:
            raise EdgebenchError("no audio to compute features for")
        shape = (int(self.meta["n_mels"]), int(self.meta["frames"]))
        mels = [np.asarray(frontend(a, pad_to_samples=WHISPER_SAMPLES), dtype=np.float32) for a in audio]
        for mel in mels:
            if mel.shape != shape:
                raise EdgebenchError(f"Whisper needs log-mel features of shape {shape}, got {mel.shape}")
        values = np.ascontiguousarray(np.stack(mels))
        return Features(values=values, lengths=np.full(len(mels), shape[1], dtype=np.int64))  # type: ignore[arg-type]

    def _encode(self, feats: Features) -> dict[str, np.ndarray]:
        outputs = self.run("encoder", {"input_features": feats.values})  # type: ignore[dict-item]
        return dict(zip(self.cross_names, outputs, strict=True))

    def _step(self, ids: np.ndarray, past: dict[str, np.ndarray], cross: dict[str, np.ndarray]) -> np.ndarray:
        """One decoder call; replaces ``past`` with the presents and returns last-position logits."""
        outputs = self.run("decoder", {"input_ids": ids, **past, **cross})
        for name, value in zip(self.past_names, outputs[1:], strict=True):
            past[name] = value
        return outputs[0]

    def _prompt(self, batch: int) -> np.ndarray:
        return np.tile(np.asarray(self.decoding.prompt, dtype=np.int64), (batch, 1))

    def forward(self, feats: Features) -> np.ndarray:
        """Encoder + decoder over the prompt: last-position logits ``[B, V]`` (with ``--language auto``
        English holds the language's place, as on torch: detection is part of :meth:`prefill`)."""
        state = self._start(feats)
        return self._step(self._prompt(state["batch"]), state["past"], state["cross"])

    def _start(self, feats: Features) -> dict[str, Any]:
        batch = feats.values.shape[0]
        empty = np.zeros((batch, *self.empty_past), dtype=np.float32)
        return {"batch": batch, "cross": self._encode(feats), "past": {n: empty for n in self.past_names}}

    def prefill(self, feats: Features) -> DecodeState:
        """Encoder, the prompt, the first token. With ``--language auto`` the decoder first takes
        ``<|startoftranscript|>`` alone, whose logits choose each item's language, then the rest of the
        prompt with the cache that step filled (as on torch)."""
        data = self._start(feats)
        sot = self._prompt(data["batch"])[:, :1]
        rows, self.detected = self.decoder.choose_prompts(
            data["batch"], lambda: self._step(sot, data["past"], data["cross"])
        )
        rest = rows[:, 1:] if self.detected is not None else rows
        logits = self._step(rest, data["past"], data["cross"])
        tokens, data["finished"] = self.decoder.select(logits, step=0)
        return DecodeState(tokens=tokens[:, None], data=data)  # type: ignore[arg-type]

    def _next_logits(self, data: dict[str, Any], tokens: np.ndarray) -> np.ndarray:
        return self._step(tokens[:, None].astype(np.int64), data["past"], data["cross"])


class HybridCtcOnnx:
    """Hybrid CTC/attention model exported as encoder + CTC head (CTC-only decoding)."""

    def __init__(self, meta: dict[str, Any], run: Run, model_name: str) -> None:
        from edgebench.models.hybrid.vocab import Vocabulary

        self.meta = meta
        self.run = run
        self.name = model_name
        self.vocab = Vocabulary(meta["tokens"])
        self.min_frames = int(meta["min_frames"])

    def _unsupported(self, what: str) -> EdgebenchError:
        return EdgebenchError(
            f"{self.name} on onnxruntime exports the encoder + CTC head only: {what} needs the attention "
            "decoder, which runs on the torch runtime (use --runtime torch, or --ctc-weight 1 and "
            "--scenario forward,transcribe on onnxruntime)"
        )

    def features(self, audio: list[np.ndarray], frontend: Any) -> Features:
        if not audio:
            raise EdgebenchError("No audio given: the batch is empty")
        mats = [np.asarray(frontend(a), dtype=np.float32) for a in audio]
        n_mels = int(self.meta["n_mels"])
        lengths = [m.shape[1] for m in mats]
        if min(lengths) < self.min_frames:
            raise EdgebenchError(
                f"{self.name} needs at least {self.min_frames} feature frames; got an item with "
                f"{min(lengths)}"
            )
        values = np.zeros((len(mats), n_mels, max(lengths)), dtype=np.float32)
        for i, m in enumerate(mats):
            values[i, :, : m.shape[1]] = m
        return Features(values=values, lengths=np.asarray(lengths, dtype=np.int64))  # type: ignore[arg-type]

    def _encode(self, feats: Features) -> tuple[np.ndarray, np.ndarray]:
        log_probs, lengths = self.run("encoder_ctc", {"features": feats.values, "lengths": feats.lengths})  # type: ignore[dict-item]
        return log_probs, lengths

    def forward(self, feats: Features) -> np.ndarray:
        """Encoder + CTC head (the attention decoder is not part of the export)."""
        return self._encode(feats)[0]

    def prefill(self, feats: Features) -> DecodeState:
        raise self._unsupported("the generate scenario")

    def decode(self, state: DecodeState, n_tokens: int, force: bool = True) -> DecodeState:
        raise self._unsupported("the generate scenario")

    def transcribe(self, feats: Features, ctc_weight: float | None) -> list[str]:
        weight = float(self.meta["default_ctc_weight"]) if ctc_weight is None else float(ctc_weight)
        if weight != 1.0:
            raise self._unsupported(f"ctc_weight {weight:g} (joint or attention decoding)")
        log_probs, lengths = self._encode(feats)
        best = log_probs.argmax(-1)
        texts = []
        blank = self.vocab.blank
        for row, n in zip(best, lengths.tolist(), strict=True):
            ids, prev = [], None
            for tok in row[:n].tolist():
                if tok != prev and tok != blank:
                    ids.append(tok)
                prev = tok
            texts.append(self.vocab.ids_to_text(ids))
        return texts
