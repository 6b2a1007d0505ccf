"""Whisper-compatible log-mel front end, shared by every model family.

The computation is exactly OpenAI Whisper's ``whisper/audio.py::log_mel_spectrogram`` (and therefore
Hugging Face's ``WhisperFeatureExtractor``): a periodic 400-point Hann window, a centred, reflect-padded
STFT with hop 160, the power of all frames but the last, Slaney mel filters, ``log10`` clamped at 1e-10,
a dynamic-range floor of 8 decades below the maximum and the ``(x + 4) / 4`` rescale. Any deviation shows
up as a WER change that would be wrongly blamed on the device, which is why a test pins this front end to
``WhisperFeatureExtractor``.

Three interchangeable backends compute it:

* ``torch`` — ``torch.stft``; fast, and the natural choice when the model runs in PyTorch anyway.
* ``numpy`` — the same STFT written with ``numpy.fft.rfft`` over strided frames: no dependency beyond
  numpy, so it is what a device without torch (a Raspberry Pi agent) uses. ``auto`` picks it whenever
  torch is missing or its ``stft`` is broken (some ARM builds without MKL raise), and the runner asks
  for it outright for every runtime but torch (``agent/runner.py frontend_backend``): importing torch
  for the features alone would put ~300 MB that is not the model's into an ONNX Runtime, CTranslate2
  or LiteRT measurement.
* ``librosa`` — ``librosa.stft`` + numpy, only when asked for: librosa brings scipy, scikit-learn and
  numba (hundreds of MB), which a device install should not need.

The three agree to ~1e-5 (a test pins each to the torch backend within 1e-4). Neither torch nor librosa
is imported at module load: both are optional extras, and importing librosa costs seconds on a
Raspberry Pi. For the same reason the mel filters are not computed with librosa at run
time but loaded from ``mel_filters.npz`` (generated once by ``make_mel_filters.py``), as Whisper does.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.agent.errors import EdgebenchError, require

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_SAMPLES_30S = 30 * SAMPLE_RATE  # 480000: the fixed Whisper input length
N_FRAMES_30S = N_SAMPLES_30S // HOP_LENGTH  # 3000

BACKENDS = ("auto", "torch", "numpy", "librosa")
MEL_SIZES = (80, 128)
_MIN_SAMPLES = N_FFT // 2 + 1  # reflect padding of n_fft // 2 needs strictly more samples than that


def _torch_stft_works() -> bool:
    """Whether torch imports *and* ``torch.stft`` actually runs.

    Importability alone is not enough: ARM builds without MKL import fine and only raise once ``stft`` is
    called, so a tiny probe transform is run. Any exception (ImportError, OSError from a broken shared
    library, RuntimeError from the stft kernel) means "do not use torch for the front end".
    """
    try:
        import torch

        probe = torch.zeros(N_FFT, dtype=torch.float32)
        torch.stft(
            probe,
            N_FFT,
            HOP_LENGTH,
            window=torch.hann_window(N_FFT),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
    except Exception as exc:
        logger.debug("torch log-mel backend unavailable: %s", exc)
        return False
    return True


def select_backend(requested: str) -> str:
    """Resolve a requested backend (``auto``/``torch``/``numpy``/``librosa``) to the one that will be used.

    An explicit request is honoured or fails loudly (the user asked for it, silently using another one
    would make comparisons lie); ``auto`` prefers torch when its ``stft`` works and otherwise uses numpy,
    which is always there.
    """
    if requested == "torch":
        require("torch", "torch", "The torch log-mel front end")
        return "torch"
    if requested == "librosa":
        require("librosa", "librosa", "The librosa log-mel front end")
        return "librosa"
    if requested == "numpy":
        return "numpy"
    if requested == "auto":
        return "torch" if _torch_stft_works() else "numpy"
    raise EdgebenchError(f"Unknown log-mel backend {requested!r}; choose one of: {', '.join(BACKENDS)}")


@functools.lru_cache(maxsize=len(MEL_SIZES))
def mel_filters(n_mels: int) -> np.ndarray:
    """The ``[n_mels, 201]`` float32 Slaney mel filterbank shipped in ``mel_filters.npz``.

    Cached because every front end instance (one per model) needs the same read-only array.
    """
    if n_mels not in MEL_SIZES:
        raise EdgebenchError(
            f"Unsupported number of mel bins {n_mels}; the Whisper front end ships filters for "
            f"{' and '.join(map(str, MEL_SIZES))}"
        )
    resource = importlib.resources.files("edgebench.models.frontend") / "mel_filters.npz"
    with resource.open("rb") as fh, np.load(fh) as data:
        filters = np.ascontiguousarray(data[f"mel_{n_mels}"], dtype=np.float32)
    filters.setflags(write=False)
    return filters


@functools.lru_cache(maxsize=1)
def _periodic_hann() -> np.ndarray:
    """``torch.hann_window(400)``: periodic, i.e. the first N points of an N+1-point symmetric window."""
    window = np.hanning(N_FFT + 1)[:-1]
    window.setflags(write=False)
    return window


def _log_compress(mel: np.ndarray) -> np.ndarray:
    """Whisper's log10 / 8-decade floor / rescale, shared by the numpy and librosa paths."""
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32, copy=False)


class LogMelFrontend:
    """Callable that turns 16 kHz mono audio into Whisper log-mel features.

    ``backend`` holds the backend actually in use (``"torch"``, ``"numpy"`` or ``"librosa"``). In ``auto``
    mode a torch ``stft`` that fails at call time (rather than in the construction probe) switches this
    instance to numpy for good, so one broken kernel does not abort a whole benchmark run.
    """

    def __init__(self, n_mels: int = 80, backend: str = "auto") -> None:
        self.n_mels = n_mels
        self.requested_backend = backend
        self.backend: str = select_backend(backend)
        self.filters = mel_filters(n_mels)
        # torch objects are built on first use so a numpy- or librosa-backed instance never touches torch.
        self._torch_window: torch.Tensor | None = None
        self._torch_filters: torch.Tensor | None = None

    def __repr__(self) -> str:
        return f"LogMelFrontend(n_mels={self.n_mels}, backend={self.backend!r})"

    def __call__(self, audio: np.ndarray, pad_to_samples: int | None = None) -> np.ndarray:
        """Compute ``[n_mels, frames]`` float32 log-mel features, ``frames = samples // 160``.

        ``pad_to_samples`` zero-pads (or trims) the audio to that length *before* the STFT, as Hugging
        Face's Whisper feature extractor does (480000 samples -> exactly 3000 frames). ``None`` keeps the
        natural length, for models that accept variable-length input.
        """
        audio = self._prepare(audio, pad_to_samples)
        if self.backend == "torch":
            try:
                return self._torch_logmel(audio)
            except RuntimeError as exc:
                if self.requested_backend != "auto":
                    raise EdgebenchError(
                        f"torch.stft failed in the log-mel front end ({exc}); use --frontend numpy instead"
                    ) from exc
                logger.warning("torch.stft failed (%s); falling back to the numpy log-mel front end", exc)
                self.backend = "numpy"
        if self.backend == "librosa":
            return self._librosa_logmel(audio)
        return self._numpy_logmel(audio)

    @staticmethod
    def _prepare(audio: np.ndarray, pad_to_samples: int | None) -> np.ndarray:
        """Validate, cast to contiguous float32 and pad/trim, so both backends see identical input."""
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ValueError(f"LogMelFrontend expects 1-D mono audio, got shape {audio.shape}")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if pad_to_samples is not None:
            if pad_to_samples < 0:
                raise ValueError(f"pad_to_samples must be >= 0, got {pad_to_samples}")
            if audio.shape[0] >= pad_to_samples:
                audio = audio[:pad_to_samples]
            else:
                audio = np.pad(audio, (0, pad_to_samples - audio.shape[0]))
        if audio.shape[0] < _MIN_SAMPLES:
            raise EdgebenchError(
                f"Audio of {audio.shape[0]} samples is too short for the log-mel front end "
                f"(needs at least {_MIN_SAMPLES} samples at {SAMPLE_RATE} Hz)"
            )
        return audio

    def _torch_logmel(self, audio: np.ndarray) -> np.ndarray:
        """OpenAI ``log_mel_spectrogram`` line for line."""
        import torch

        if not audio.flags.writeable:
            # Dataset audio is read-only by design; torch.from_numpy warns on such arrays even though
            # stft never writes, and a copy of at most 30 s (2 MB) costs nothing next to the STFT.
            audio = audio.copy()
        if self._torch_window is None or self._torch_filters is None:
            self._torch_window = torch.hann_window(N_FFT)
            self._torch_filters = torch.from_numpy(np.array(self.filters))  # writable copy for torch
        with torch.inference_mode():
            stft = torch.stft(
                torch.from_numpy(audio),
                N_FFT,
                HOP_LENGTH,
                window=self._torch_window,
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
            magnitudes = stft[..., :-1].abs() ** 2
            mel_spec = self._torch_filters @ magnitudes
            log_spec = torch.clamp(mel_spec, min=1e-10).log10()
            log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
            log_spec = (log_spec + 4.0) / 4.0
        return log_spec.numpy().astype(np.float32, copy=False)

    def _numpy_logmel(self, audio: np.ndarray) -> np.ndarray:
        """The same transform with numpy alone: reflect padding, strided frames, a periodic Hann window
        (``torch.hann_window``'s default) and a real FFT per frame."""
        padded = np.pad(audio, N_FFT // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
        spectrum = np.fft.rfft(frames * _periodic_hann(), axis=-1)  # [frames, n_fft // 2 + 1]
        power = (np.abs(spectrum[:-1]) ** 2).T  # Whisper drops the last frame
        return _log_compress(self.filters @ power.astype(np.float32, copy=False))

    def _librosa_logmel(self, audio: np.ndarray) -> np.ndarray:
        """The same transform with ``librosa.stft``; ``pad_mode="reflect"`` matters (librosa's default
        ``"constant"`` changes the edge frames)."""
        librosa: Any = require("librosa", "librosa", "The librosa log-mel front end")
        stft = librosa.stft(
            audio, n_fft=N_FFT, hop_length=HOP_LENGTH, window="hann", center=True, pad_mode="reflect"
        )
        power = np.abs(stft[:, :-1]) ** 2
        return _log_compress(self.filters @ power)
