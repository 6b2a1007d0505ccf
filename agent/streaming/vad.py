"""Voice activity of the ``vad`` policy: WebRTC's detector (``webrtcvad-wheels``: ~100 kB of C, wheels
for x86_64 and aarch64, no model file), frame by frame, turned into utterances by a small hysteresis.

Silero's detector (a neural network through onnxruntime) is more robust in noise, but its package
needs torch, which a device install never has; WebRTC's fits any board.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.scenarios.base import SAMPLE_RATE

FRAME_S = 0.03
"""webrtcvad takes 10, 20 or 30 ms frames."""
AGGRESSIVENESS = 2
"""0 (keeps most audio as speech) to 3 (drops most non-speech)."""
START_FRAMES = 4
"""Speech starts after this many speech frames among the last :data:`PRE_ROLL_FRAMES` (robust to a click)."""
PRE_ROLL_FRAMES = 10
"""300 ms before the detected start belong to the utterance (its onset is quieter than its body)."""
END_SILENCE_S = 0.5
"""An utterance ends after this much non-speech: a pause between sentences, not between words."""
MAX_UTTERANCE_S = 25.0
"""Longer speech is cut here: Whisper's window holds 30 s."""


MISSING = "--stream-policy vad needs webrtcvad (pip install 'edgebench[stream]', or webrtcvad-wheels)"


def check_available() -> None:
    """Before anything loads: the detector's module is installed (found, not imported)."""
    import importlib.util

    if importlib.util.find_spec("webrtcvad") is None:
        raise EdgebenchError(MISSING)


def load_vad():  # type: ignore[no-untyped-def]
    try:
        import webrtcvad
    except ImportError:
        raise EdgebenchError(MISSING) from None
    return webrtcvad.Vad(AGGRESSIVENESS)


class VoiceActivity:
    """Frames pushed in order; closed utterances (start_s, end_s) come out as soon as they end."""

    def __init__(self) -> None:
        self._vad = load_vad()
        self._frame = round(FRAME_S * SAMPLE_RATE)
        self._rest = np.zeros(0, dtype=np.float32)
        self._at = 0  # samples consumed into frames
        self._recent: deque[bool] = deque(maxlen=PRE_ROLL_FRAMES)
        self.start_s: float | None = None
        """Start of the utterance in progress (None: silence)."""
        self._silent_frames = 0

    def push(self, audio: np.ndarray) -> list[tuple[float, float]]:
        closed: list[tuple[float, float]] = []
        data = np.concatenate([self._rest, audio])
        n = self._frame
        whole = len(data) // n * n
        pcm = (np.clip(data[:whole], -1.0, 1.0) * 32767).astype("<i2")
        for k in range(whole // n):
            speech = self._vad.is_speech(pcm[k * n : (k + 1) * n].tobytes(), SAMPLE_RATE)
            self._at += n
            end_s = self._at / SAMPLE_RATE
            self._recent.append(speech)
            if self.start_s is None:
                if sum(self._recent) >= START_FRAMES:
                    self.start_s = max(0.0, end_s - len(self._recent) * FRAME_S)
                    self._silent_frames = 0
                continue
            self._silent_frames = 0 if speech else self._silent_frames + 1
            if self._silent_frames * FRAME_S >= END_SILENCE_S or end_s - self.start_s >= MAX_UTTERANCE_S:
                closed.append((self.start_s, end_s))
                self.start_s = None
                self._recent.clear()
        self._rest = data[whole:]
        return closed

    def flush(self, end_s: float) -> list[tuple[float, float]]:
        """At the end of the stream: the utterance in progress, if any, ends there."""
        if self.start_s is None:
            return []
        closed = [(self.start_s, end_s)]
        self.start_s = None
        return closed


def undecided_s(vad: VoiceActivity) -> float:
    """Seconds before the audio pushed so far that a start not yet detected could still claim: the
    pre-roll window and the frame not yet seen whole."""
    return PRE_ROLL_FRAMES * FRAME_S + len(vad._rest) / SAMPLE_RATE
