"""Robustness perturbations applied to a loaded dataset: additive noise at a given SNR and speed change.

Both are applied once, after loading and before any model sees the audio, so every runtime and every
scenario (forward/generate cut their fixed-length inputs from the same speech) measures the same
perturbed signal. Both are deterministic: the noise for an utterance is drawn from a generator seeded
with ``(seed, crc32(utterance id))``, so the same utterance gets the same noise whatever ``--limit``
sample it is part of and on whichever machine it runs.

Speed follows Kaldi/sox ``speed`` perturbation: the waveform is resampled as if it had been recorded at
``16000 * factor`` Hz, so ``factor`` 1.1 is 10 % faster (and higher pitched). Noise is added after the
speed change, at the requested SNR relative to the (changed) utterance's own power.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgebench.agent.datasets.loader import SAMPLE_RATE, Utterance, read_audio, resample
from edgebench.agent.errors import EdgebenchError

WHITE = "white"
SPEED_RANGE = (0.5, 2.0)
"""Beyond this the result is no longer speech a benchmark should be judged on (and soxr's quality
promises are for moderate ratios)."""


@dataclass(frozen=True)
class Perturbation:
    """What ``--noise-snr`` / ``--noise`` / ``--speed`` asked for (all None/white: no perturbation)."""

    noise_snr_db: float | None = None
    noise: str = WHITE
    """'white' (Gaussian) or the path of a noise recording (read like dataset audio: 16 kHz mono)."""
    speed: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.speed is not None and not SPEED_RANGE[0] <= self.speed <= SPEED_RANGE[1]:
            raise EdgebenchError(
                f"--speed must be between {SPEED_RANGE[0]:g} and {SPEED_RANGE[1]:g} (got {self.speed:g})"
            )
        if self.noise_snr_db is not None and not -20.0 <= self.noise_snr_db <= 100.0:
            raise EdgebenchError(f"--noise-snr must be between -20 and 100 dB (got {self.noise_snr_db:g})")
        if self.noise != WHITE and self.noise_snr_db is None:
            raise EdgebenchError("--noise FILE needs --noise-snr DB (the level to mix it at)")

    @property
    def active(self) -> bool:
        return self.noise_snr_db is not None or (self.speed is not None and self.speed != 1.0)


def perturb(utterances: list[Utterance], p: Perturbation) -> list[Utterance]:
    """The utterances with ``p`` applied (new read-only arrays; the inputs are untouched)."""
    if not p.active:
        return utterances
    noise_bank = None if p.noise == WHITE or p.noise_snr_db is None else _noise_recording(p.noise)
    out: list[Utterance] = []
    for utt in utterances:
        audio = np.asarray(utt.audio, dtype=np.float32)
        if p.speed is not None and p.speed != 1.0:
            audio = change_speed(audio, p.speed)
        if p.noise_snr_db is not None:
            rng = np.random.default_rng([p.seed, zlib.crc32(utt.id.encode("utf-8"))])
            audio = add_noise(audio, p.noise_snr_db, rng, noise_bank)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        audio.setflags(write=False)
        out.append(replace(utt, audio=audio))
    return out


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster: resample from ``16000 * factor`` to 16000 Hz (length / factor)."""
    return resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE, f"--speed {factor:g} needs a resampler")


def add_noise(
    audio: np.ndarray, snr_db: float, rng: np.random.Generator, noise: np.ndarray | None = None
) -> np.ndarray:
    """``audio`` plus noise scaled so that 10·log10(P_signal / P_noise) = ``snr_db``.

    White noise is Gaussian; a recording is tiled to cover the utterance and starts at a random offset,
    so different utterances hear different parts of it. Silent audio stays silent (no SNR is defined).
    """
    if noise is None:
        segment = rng.standard_normal(audio.shape[0]).astype(np.float32)
    else:
        start = int(rng.integers(0, noise.shape[0]))
        reps = -(-(start + audio.shape[0]) // noise.shape[0])
        segment = np.tile(noise, reps)[start : start + audio.shape[0]]
    p_signal = float(np.mean(np.square(audio, dtype=np.float64)))
    p_noise = float(np.mean(np.square(segment, dtype=np.float64)))
    if p_signal == 0.0 or p_noise == 0.0:
        return audio.copy()
    scale = np.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (audio + scale * segment).astype(np.float32)


def _noise_recording(path: str) -> np.ndarray:
    file = Path(path).expanduser()
    if not file.is_file():
        raise EdgebenchError(f"Noise file {file} does not exist (use --noise white or an audio file)")
    noise = read_audio(file)
    if float(np.max(np.abs(noise))) == 0.0:
        raise EdgebenchError(f"Noise file {file} is silent: it cannot set a signal-to-noise ratio")
    return noise
