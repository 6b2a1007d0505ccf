"""The stream a ``--scenario stream`` run feeds: the dataset's utterances one after the other, each
followed by a pause, looped until the stream is long enough.

The pauses are digital silence (zeros), which is also what Whisper pads its 30 s window with: a chunk
holding one whole utterance and silence gives the very features the offline transcription of that
utterance gives, so streamed and offline WER can be compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.agent.scenarios.base import SAMPLE_RATE


@dataclass(frozen=True)
class Span:
    """One utterance's place in the stream (seconds of audio from the stream's start)."""

    index: int
    """Position in the dataset (the same utterance recurs in a looped stream)."""
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class StreamAudio:
    audio: np.ndarray
    spans: list[Span]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def build_stream(
    utterances: list, pause_s: float, minutes: float | None = None, align_chunk_s: float | None = None
) -> StreamAudio:
    """``utterances`` (each with ``audio`` at 16 kHz and ``text``) joined, a ``pause_s`` silence after
    each; looped until at least ``minutes`` of audio when given (else one pass), ending with the
    utterance that reaches it.

    ``align_chunk_s``: each utterance starts at a chunk boundary instead, padded with silence to a whole
    number of chunks (at least ``pause_s`` of it): chunks then hold whole utterances."""
    if not utterances:
        raise ValueError("a stream needs at least one utterance")
    need = None if minutes is None else minutes * 60.0
    pieces: list[np.ndarray] = []
    spans: list[Span] = []
    at = 0  # samples
    pause = round(pause_s * SAMPLE_RATE)
    while True:
        for i, utt in enumerate(utterances):
            audio = np.asarray(utt.audio, dtype=np.float32)
            length = len(audio) + pause
            if align_chunk_s is not None:
                chunk = round(align_chunk_s * SAMPLE_RATE)
                length = -(-length // chunk) * chunk
            pieces += [audio, np.zeros(length - len(audio), dtype=np.float32)]
            spans.append(Span(i, at / SAMPLE_RATE, (at + len(audio)) / SAMPLE_RATE, utt.text))
            at += length
            if need is not None and at / SAMPLE_RATE >= need:
                break
        if need is None or at / SAMPLE_RATE >= need:
            break
    return StreamAudio(np.concatenate(pieces), spans)
