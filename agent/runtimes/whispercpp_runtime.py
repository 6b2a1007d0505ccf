"""whisper.cpp through pywhispercpp's bindings: the engine most Raspberry Pi users run Whisper with.

* **Weights**: a ggml file written by edgebench from the Hugging Face layout
  (:mod:`edgebench.models.whisper.ggml`), cached as an export (``export --to ggml``): ``--precision fp16``
  runs whisper.cpp's f16 file, ``int8`` its q8_0 file (``--ggml-quant q5_1`` for the 5-bit one). There is
  no fp32: whisper.cpp 1.8.5 aborts on f32 files on the CPU (:data:`edgebench.agent.export.ggml.NO_F32`).
* **transcribe** is ``whisper_full`` with whisper.cpp's own front end (its log-mel of the PCM: results
  record the front end as ``whisper.cpp``), greedy, and set to decode by the rules every other runtime
  follows (:mod:`edgebench.models.whisper.decoding`): no timestamps (the prompt ends with
  ``<|notimestamps|>``), no temperature fallback, no window dropped as "no speech", non-speech tokens
  suppressed, no context carried between utterances. whisper.cpp still cuts a window at 220 tokens
  and computes with f16 keys/values and its tanh GELU, so its tokens can differ from torch fp32's.
* **forward** is the encoder alone (``whisper_set_mel`` + ``whisper_encode``), what whisper.cpp's
  ``bench`` reports as "encode time"; the log-mel comes from edgebench's front end, outside the timed
  window as on every runtime. (Other runtimes' forward also runs the decoder over the prompt, a few
  percent of the encoder's cost.)
* **generate** is not available: pywhispercpp's ``whisper_decode`` binding takes no token array and its
  ``whisper_get_logits`` returns one float, so the decoder cannot be stepped from Python.
* **Language**: ``--language auto`` is whisper.cpp's own detection inside ``whisper_full`` (an extra
  encoder pass, as ``whisper-cli -l auto`` does); its probability is read from whisper.cpp's log line.
  Everything whisper.cpp logs goes to edgebench's log callback, not the terminal.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.agent.errors import EdgebenchError, require
from edgebench.agent.results.schema import ModelReport
from edgebench.agent.runtimes.base import RuntimeSession, SessionOptions, whisper_only
from edgebench.models.whisper.decoding import LanguageGuess

if TYPE_CHECKING:
    from edgebench.agent.export.base import ExportArtifact, ExportOptions
    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.spec import ModelSpec

N_SAMPLES = 480_000
N_FRAMES = 3000
NO_DECODER_STEP = (
    "whisper.cpp has no generate scenario here: pywhispercpp's whisper_decode binding takes no token array "
    "and whisper_get_logits returns one float, so the decoder cannot be stepped from Python (use "
    "--scenario load,forward,transcribe; forward is the encoder, as whisper.cpp's bench times it)"
)
_DETECTED = re.compile(r"auto-detected language: (\w+) \(p = ([0-9.]+)\)")


@dataclass
class AudioBatch:
    """What whisper.cpp's transcribe takes: the waveforms themselves (it computes its own log-mel)."""

    audio: list[np.ndarray]


class _Log:
    """whisper.cpp's log lines, kept instead of printed (its load and per-call chatter would garble the
    progress display): the last ones are quoted when something fails, errors are counted (a failed load
    is only visible there) and the last language detection is kept with its probability."""

    ERROR = 4
    """ggml_log_level's GGML_LOG_LEVEL_ERROR."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.errors = 0
        self.detected: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def __call__(self, level: int, text: str) -> None:
        found = _DETECTED.search(text)
        with self._lock:
            self.lines.append(text)
            del self.lines[:-50]
            if level == self.ERROR:
                self.errors += 1
            if found:
                self.detected = (found.group(1), float(found.group(2)))


def _pw() -> Any:
    return require("_pywhispercpp", "whispercpp", "the whispercpp runtime")


_OPEN: list[_Log] = []
"""The logs of the sessions alive now (sweeps load one at a time; a benchmark may hold several)."""


def _capture_log(log: _Log) -> None:
    """Send whisper.cpp's log to ``log``, and back to stderr before the interpreter shuts down: a
    context freed then still logs, and a Python callback called without the GIL is a fatal error."""
    pw = _pw()
    pw.whisper_log_set(log)
    _OPEN.append(log)
    if not getattr(_capture_log, "registered", False):
        atexit.register(pw.whisper_log_set, None)
        _capture_log.registered = True  # type: ignore[attr-defined]


def _release_log(log: _Log) -> None:
    """Give the log back to the session opened before, or to stderr when none is left."""
    if log in _OPEN:
        _OPEN.remove(log)
    _pw().whisper_log_set(_OPEN[-1] if _OPEN else None)


class WhisperCppSession(RuntimeSession):
    """A Whisper model in a whisper.cpp context (see the module docstring)."""

    name = "whispercpp"

    @classmethod
    def unsupported(cls, spec: ModelSpec, scenario: str, ctc_weight: float | None) -> str | None:
        reason = whisper_only(cls.name, spec)
        if reason:
            return reason
        if scenario == "generate":
            return NO_DECODER_STEP
        return None

    @classmethod
    def check_setup(cls, precision: str, device: str) -> None:
        from edgebench.agent.runtimes.whispercpp_options import WhisperCppOptions

        if device not in ("auto", "cpu"):
            raise EdgebenchError(
                f"--device {device}: pywhispercpp's wheels are CPU builds of whisper.cpp (use cpu)"
            )
        WhisperCppOptions().ggml_type(precision)  # fp32 has no whisper.cpp file that runs
        _pw()  # the extra is missing: say so before the idle baseline and any load

    def __init__(self, spec: ModelSpec, options: SessionOptions, frontend: LogMelFrontend) -> None:
        super().__init__(spec, options, frontend)
        reason = whisper_only(self.name, spec)
        if reason:
            raise EdgebenchError(reason)
        self.check_setup(options.precision, options.device)
        self.ggml_type = options.runtime_options.whispercpp.ggml_type(options.precision)
        self._pw = _pw()
        self._log = _Log()
        self._ctx: Any = None
        self.artifact: ExportArtifact | None = None
        self._detected: list[LanguageGuess] | None = None
        self._tokens: list[list[int]] = []

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def threads(self) -> int:
        # whisper.cpp's own default (whisper_full_default_params): 4 threads, at most the machine's cores
        return self.options.threads or min(4, os.cpu_count() or 1)

    def export_options(self) -> ExportOptions:
        from edgebench.agent.export.base import ExportOptions

        quantize = None if self.ggml_type == "f16" else self.ggml_type
        return ExportOptions(target="ggml", precision="fp16", quantize=quantize, weights=self.options.weights)

    def prepare(self) -> None:
        """The ggml file is written by a separate process (it reads every weight as float32 and may
        convert the packaged model first, with transformers): none of that is this session's memory."""
        from edgebench.agent.export.cache import export_in_child

        export_in_child(self.spec.name, self.export_options())

    def load(self) -> None:
        from edgebench.agent.export.ggml import NO_F32
        from edgebench.agent.export.pipeline import export_model
        from edgebench.models.whisper.ggml import read_header

        self.artifact = export_model(self.spec, self.export_options())  # cached by prepare()
        if not self.artifact.verified:
            self.warnings.append(self.artifact.trust_note())
        path = Path(self.artifact.files["model"])
        self._header = read_header(path)  # a damaged file is refused here: whisper.cpp would abort on it
        if self._header.file_type == "f32":  # --weights naming an f32 file: whisper.cpp aborts on it
            raise EdgebenchError(NO_F32)
        pw = self._pw
        _capture_log(self._log)
        params = pw.whisper_context_default_params()
        params.use_gpu = False
        errors = self._log.errors
        ctx = pw.whisper_init_from_file_with_params(str(path), params)
        # pywhispercpp wraps a NULL context without saying so, and touching it crashes the process: a
        # failed load shows only as error lines in whisper.cpp's log
        if self._log.errors > errors:
            tail = " / ".join(line.strip() for line in self._log.lines[-3:])
            _release_log(self._log)
            raise EdgebenchError(f"whisper.cpp could not load {path}: {tail}")
        self._ctx = ctx
        self._params = self._full_params()

    def _full_params(self) -> Any:
        """``whisper_full`` parameters for edgebench's greedy rules (see the module docstring)."""
        pw = self._pw
        p = pw.whisper_full_default_params(pw.whisper_sampling_strategy.WHISPER_SAMPLING_GREEDY)
        p.n_threads = self.threads
        p.print_progress = False
        p.print_realtime = False
        p.print_timestamps = False
        p.no_timestamps = True
        p.single_segment = True
        p.no_context = True
        p.temperature = 0.0
        p.temperature_inc = 0.0
        p.no_speech_thold = 1.0
        p.suppress_blank = True
        p.suppress_nst = True
        # "auto" is whisper.cpp's own spelling of detection; an English-only model is told English
        p.language = "en" if self.spec.english_only else self.options.language
        p.translate = self.options.task == "translate"
        return p

    def _require(self) -> Any:
        if self._ctx is None:
            raise RuntimeError("session not loaded")
        return self._ctx

    def model_report(self) -> ModelReport:
        assert self.artifact is not None
        header = self._header
        return ModelReport(
            name=self.spec.name,
            family=self.spec.family,
            trained=True,
            weights_source=self.artifact.describe_source(),
            params=header.param_counts(),
            size_on_disk_bytes=self.artifact.size_bytes,
            weights_identity=self.artifact.weights_identity,
            weights_verified=self.artifact.verified,
        )

    def result_config(self) -> dict[str, object]:
        return {"ggml_type": self.ggml_type}

    def scenario_notes(self, scenario: str) -> list[str]:
        if scenario in ("forward", "load"):
            return [
                "whispercpp: forward (and load's inferences) time the encoder alone, as whisper.cpp's "
                "bench; other runtimes' forward also runs the decoder over the prompt"
            ]
        return []

    def frontend_name(self, scenario: str) -> str:
        return "whisper.cpp" if scenario in ("transcribe", "stream") else self.frontend.backend

    # -- scenarios -------------------------------------------------------------------------------------
    def features(self, audio: list[np.ndarray]) -> AudioBatch:
        if not audio:
            raise EdgebenchError("no audio to compute features for")
        return AudioBatch([np.ascontiguousarray(a, dtype=np.float32) for a in audio])

    def forward_inputs(self, audio: list[np.ndarray]) -> np.ndarray:
        """The log-mel ``[batch, n_mels, 3000]`` the encoder is timed on (edgebench's front end)."""
        if not audio:
            raise EdgebenchError("no audio to compute features for")
        mels = [self.frontend(a, pad_to_samples=N_SAMPLES) for a in audio]
        return np.ascontiguousarray(np.stack(mels), dtype=np.float32)

    def forward(self, feats: Any) -> int:
        """The encoder on each item's log-mel (``whisper_encode``), as whisper.cpp's bench times it."""
        ctx, pw = self._require(), self._pw
        mels = feats if isinstance(feats, np.ndarray) else self.forward_inputs(feats.audio)
        for mel in mels:
            if pw.whisper_set_mel(ctx, np.ascontiguousarray(mel), mel.shape[1], mel.shape[0]) != 0:
                raise EdgebenchError(f"whisper.cpp refused a log-mel of shape {mel.shape}")
            if pw.whisper_encode(ctx, 0, self.threads) != 0:
                raise EdgebenchError("whisper.cpp's encoder failed (whisper_encode returned an error)")
        return len(mels)

    def prefill(self, feats: Any) -> Any:
        raise EdgebenchError(NO_DECODER_STEP)

    def decode(self, state: Any, n_tokens: int) -> Any:
        raise EdgebenchError(NO_DECODER_STEP)

    def transcribe(self, feats: AudioBatch, ctc_weight: float | None) -> list[str]:
        if ctc_weight is not None:
            raise EdgebenchError("ctc_weight applies only to hybrid CTC/attention models")
        ctx, pw = self._require(), self._pw
        texts: list[str] = []
        tokens: list[list[int]] = []
        guesses: list[LanguageGuess] = []
        detect = self.options.language == "auto" and not self.spec.english_only
        eot = pw.whisper_token_eot(ctx)
        for audio in feats.audio:
            self._log.detected = None
            if pw.whisper_full(ctx, self._params, audio, len(audio)) != 0:
                raise EdgebenchError("whisper.cpp's whisper_full failed on an utterance")
            pieces, ids = [], []
            for segment in range(pw.whisper_full_n_segments(ctx)):
                text = pw.whisper_full_get_segment_text(ctx, segment)
                pieces.append(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
                n = pw.whisper_full_n_tokens(ctx, segment)
                ids += [pw.whisper_full_get_token_id(ctx, segment, j) for j in range(n)]
            texts.append("".join(pieces).strip())
            tokens.append([i for i in ids if i < eot])
            if detect:
                guesses.append(self._guess(pw.whisper_lang_str(pw.whisper_full_lang_id(ctx))))
        self._tokens = tokens
        self._detected = guesses if detect else None
        return texts

    def _guess(self, language: str) -> LanguageGuess:
        """The language whisper.cpp detected, with the probability it logged for it."""
        if language == "yue" and self._header.n_vocab < 51866:
            # whisper.cpp ranks its 100 names on every model; on a 99-language one "yue" is <|translate|>
            raise EdgebenchError("whisper.cpp detected yue, a language this model does not have")
        logged = self._log.detected
        if logged is None or logged[0] != language:
            raise EdgebenchError(f"whisper.cpp detected {language} but logged no probability for it")
        return LanguageGuess(language, logged[1])

    def transcribe_tokens(self, feats: AudioBatch) -> list[list[int]]:
        """Token ids per item (end-of-text excluded) of :meth:`transcribe`, for equivalence checks."""
        self.transcribe(feats, None)
        return self._tokens

    def detected_languages(self) -> list[LanguageGuess] | None:
        return self._detected

    def close(self) -> None:
        if self._ctx is not None:
            self._pw.whisper_free(self._ctx)
            self._ctx = None
        _release_log(self._log)
