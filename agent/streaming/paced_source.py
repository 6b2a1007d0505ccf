"""Audio released in chunks at the pace it would be spoken, as a microphone driver delivers it.

A thread sleeps until each chunk's *absolute* deadline ``t0 + end_of_chunk / speed`` on the monotonic
clock (never "sleep one chunk" after the previous one: errors would add up over a long stream) and puts
the chunk on a queue. The consumer (the policy and the model) takes chunks as fast as it can; when it is
slower than the audio, chunks wait in the queue: that wait is the backlog. How late each release was
against its deadline is recorded, so the pacing error bounds every latency figure.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from edgebench.agent.scenarios.base import SAMPLE_RATE


@dataclass(frozen=True)
class Chunk:
    index: int
    audio: np.ndarray
    start_s: float
    """Audio time (seconds of stream) where the chunk starts."""
    end_s: float
    deadline: float
    """Monotonic time at which the chunk's last sample has been "spoken"."""
    released: float
    """Monotonic time the source actually put it on the queue (>= deadline)."""


class PacedSource:
    """Chunks of ``chunk_s`` seconds of ``audio`` at ``speed`` times real time (2.0: twice as fast)."""

    def __init__(self, audio: np.ndarray, chunk_s: float, speed: float = 1.0) -> None:
        if chunk_s <= 0 or speed <= 0:
            raise ValueError("chunk length and speed must be > 0")
        self.audio = audio
        self.chunk_samples = max(1, round(chunk_s * SAMPLE_RATE))
        self.speed = speed
        self.t0: float | None = None
        self.t0_ns = 0
        self._queue: queue.Queue[Chunk | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgebench-paced-source", daemon=True)

    @property
    def chunks(self) -> int:
        return -(-len(self.audio) // self.chunk_samples)

    def wall_time(self, audio_s: float) -> float:
        """When the stream's ``audio_s`` was spoken, on the monotonic clock."""
        assert self.t0 is not None, "not started"
        return self.t0 + audio_s / self.speed

    def start(self) -> None:
        self.t0_ns = time.time_ns()  # the same instant on the wall clock, for the record
        self.t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def get(self) -> Chunk | None:
        """The next chunk, waiting for it if need be; None after the last one."""
        return self._queue.get()

    def _run(self) -> None:
        assert self.t0 is not None
        n = self.chunk_samples
        for k in range(self.chunks):
            lo, hi = k * n, min((k + 1) * n, len(self.audio))
            deadline = self.wall_time(hi / SAMPLE_RATE)
            while (left := deadline - time.monotonic()) > 0:
                if self._stop.wait(min(left, 0.05)):
                    return
            released = time.monotonic()
            start_s, end_s = lo / SAMPLE_RATE, hi / SAMPLE_RATE
            self._queue.put(Chunk(k, self.audio[lo:hi], start_s, end_s, deadline, released))
        self._queue.put(None)
