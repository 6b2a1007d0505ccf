"""The one small interface every runtime implements.

A session owns one loaded model on one device at one precision. Scenarios (forward / generate /
transcribe / load) only call these methods, so adding a runtime is one new module plus one entry in
:data:`edgebench.agent.runtimes.RUNTIMES`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from edgebench.agent.results.schema import ModelReport
    from edgebench.agent.runtimes import RuntimeOptions
    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.spec import ModelSpec
    from edgebench.models.whisper.decoding import LanguageGuess


@dataclass(frozen=True)
class SessionOptions:
    """Everything that selects *how* a model runs (one point on the runtime axes of a sweep)."""

    precision: str = "fp32"
    device: str = "auto"
    threads: int | None = None
    weights: str | None = None
    seed: int = 0
    beam_size: int = 4
    language: str = "auto"
    """Whisper's prompt: a language code or ``auto`` (detected per item by multilingual models)."""
    task: str = "transcribe"
    runtime_options: RuntimeOptions = field(default_factory=lambda: _default_runtime_options())
    """Each runtime's own options (torch's mode/attention/AMP, onnxruntime's optimisation level)."""


def _default_runtime_options() -> RuntimeOptions:
    from edgebench.agent.runtimes import RuntimeOptions

    return RuntimeOptions()


class RuntimeSession(ABC):
    """A model loaded on one runtime; the methods scenarios time."""

    name: str = "?"

    def __init__(self, spec: ModelSpec, options: SessionOptions, frontend: LogMelFrontend) -> None:
        self.spec = spec
        self.options = options
        self.frontend = frontend
        self.warnings: list[str] = []

    @classmethod
    def unsupported(cls, spec: ModelSpec, scenario: str, ctc_weight: float | None) -> str | None:
        """Why this runtime cannot run ``scenario`` for ``spec`` (None: it can). Checked for the whole
        sweep before anything loads, so a long sweep never dies half-way on a combination known to fail."""
        return None

    @property
    @abstractmethod
    def device(self) -> str:
        """The resolved device ('cpu', 'cuda', 'mps', …)."""

    @property
    @abstractmethod
    def threads(self) -> int:
        """Intra-op threads in use."""

    @classmethod
    def check_setup(cls, precision: str, device: str) -> None:
        """Raise EdgebenchError for a precision/device this runtime cannot run here (fp16 on a CPU, a
        CUDA device without CUDA): called for the whole sweep before the idle baseline and any load, so
        a sweep never fails half-way on what was knowable at the start. Default: nothing to check."""
        return None

    def prepare(self) -> None:
        """Make the files ``load`` reads exist (an export, a conversion) and import the libraries it
        uses, loading no weights, *before* the RSS the model's share is counted from is taken: a bare
        script imports its engine first too, so the share is what this model costs on top of its
        runtime's libraries. Default: nothing to prepare."""
        return None

    @abstractmethod
    def load(self) -> None:
        """Load weights onto the device at the requested precision (timed by the load scenario)."""

    @abstractmethod
    def model_report(self) -> ModelReport: ...

    @abstractmethod
    def features(self, audio: list[np.ndarray]) -> Any:
        """Front end for a batch of waveforms, returned in the runtime's input form, on the device."""

    def forward_inputs(self, audio: list[np.ndarray]) -> Any:
        """What :meth:`forward` takes, computed outside its timed window. Default: :meth:`features`; a
        runtime whose transcribe takes the waveforms (whisper.cpp computes its own log-mel) gives the
        encoder's log-mel here."""
        return self.features(audio)

    @abstractmethod
    def forward(self, feats: Any) -> Any: ...

    @abstractmethod
    def prefill(self, feats: Any) -> Any:
        """Encoder + prompt + first token; returns a decode state with ``.tokens`` [batch, 1]."""

    @abstractmethod
    def decode(self, state: Any, n_tokens: int) -> Any:
        """Exactly ``n_tokens`` more tokens (end-of-sequence suppressed)."""

    @abstractmethod
    def transcribe(self, feats: Any, ctc_weight: float | None) -> list[str]: ...

    def result_config(self) -> dict[str, object]:
        """The RunConfig fields of this runtime's own knobs (torch_mode, ort_opt_level, ggml_type …)."""
        return self.options.runtime_options.result_config(self.name)

    def scenario_notes(self, scenario: str) -> list[str]:
        """Warnings every result of ``scenario`` on this runtime carries (what it measures differently
        from the other runtimes). Default: none."""
        return []

    def frontend_name(self, scenario: str) -> str:
        """The log-mel front end a scenario's results record (default: edgebench's, the backend in use)."""
        return self.frontend.backend

    def detected_languages(self) -> list[LanguageGuess] | None:
        """The language detected for each item of the last transcribe (or prefill) call: multilingual
        Whisper with ``--language auto``. None where nothing was detected (a fixed language, an
        English-only model, another family). Default: None."""
        return None

    def synchronize(self) -> None:
        """Wait for queued device work so that timings include it (no-op on synchronous runtimes)."""
        return None

    def memory_peak_reset(self) -> None:
        """Reset the device's peak-memory counter before a measured window."""
        return None

    def device_peak_memory(self) -> int | None:
        """Peak device memory allocated since the last reset, where the runtime can tell."""
        return None

    def close(self) -> None:
        """Release the model (sessions of a sweep are loaded one after another)."""
        return None


def whisper_only(runtime: str, spec: ModelSpec) -> str | None:
    """Why a runtime that runs Whisper only cannot run ``spec`` (None: it is a Whisper)."""
    if spec.family == "whisper":
        return None
    return f"the {runtime} runtime runs Whisper models only, not {spec.name}"


def requested_language(spec: ModelSpec, language: str) -> str | None:
    """What a result records as the language asked for: the option ('auto' or a code) for multilingual
    Whisper; None for models without a language token (English-only Whisper, other families)."""
    return language if spec.family == "whisper" and not spec.english_only else None


def decoded_language(spec: ModelSpec, language: str) -> str | None:
    """The language every utterance is decoded in, where it is fixed: the option's code for multilingual
    Whisper, 'en' for English-only Whisper; None while it is detected (auto) or for other families."""
    if spec.family != "whisper":
        return None
    if spec.english_only:
        return "en"
    return None if language == "auto" else language


def import_if_installed(*modules: str) -> None:
    """Import ``modules`` for :meth:`RuntimeSession.prepare`; one that is missing is left to ``load``,
    which says which extra to install."""
    import importlib

    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
