"""The timeline of one stream (one :class:`Step` per chunk, and one for the end) turned into
:class:`~edgebench.agent.results.schema.StreamResult` figures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebench.agent.results.schema import StreamMinute, Summary
from edgebench.agent.stats import summarize
from edgebench.agent.streaming.policies import Update
from edgebench.agent.streaming.stream_audio import Span

TIMELINE_MAX = 2000
"""Timeline points kept in the document (evenly spaced; every figure is computed from all chunks)."""


@dataclass(frozen=True)
class Step:
    """One chunk through the policy (``chunk`` None: the end of the stream)."""

    chunk: int | None
    audio_end_s: float
    deadline: float
    released: float
    started: float
    finished: float
    update: Update
    visible_words: int
    """Committed + tentative words on screen after this step."""

    @property
    def compute_s(self) -> float:
        return self.finished - self.started

    @property
    def backlog_s(self) -> float:
        """How long the chunk waited for the model (0 when the model was waiting for it)."""
        return max(0.0, self.started - self.deadline)


def finalisation_latencies(steps: list[Step], spans: list[Span], wall_of) -> list[float]:  # type: ignore[no-untyped-def]
    """Per utterance: the first step that made the text final past its end, minus when it ended."""
    out = []
    k = 0
    for span in spans:  # spans and final_until_s both grow along the stream
        while k < len(steps) and steps[k].update.final_until_s < span.end_s - 1e-6:
            k += 1
        if k < len(steps):
            out.append(steps[k].finished - wall_of(span.end_s))
    return out


def first_partial_latencies(steps: list[Step], spans: list[Span], wall_of) -> list[float]:  # type: ignore[no-untyped-def]
    """Per utterance: the first step after its start that put new words on screen, minus its start."""
    out = []
    for span in spans:
        before = [s.visible_words for s in steps if s.audio_end_s <= span.start_s]
        shown = before[-1] if before else 0
        first = next((s for s in steps if s.audio_end_s > span.start_s and s.visible_words > shown), None)
        if first is not None:
            out.append(first.finished - wall_of(span.start_s))
    return out


def behind(steps: list[Step], chunk_wall_s: float) -> tuple[bool, float | None]:
    """(kept up, where in the audio the backlog first exceeded one chunk)."""
    onset = next((s.audio_end_s for s in steps if s.chunk is not None and s.backlog_s > chunk_wall_s), None)
    end_lag = steps[-1].finished - steps[-1].deadline if steps else 0.0
    return onset is None and end_lag <= chunk_wall_s, onset


def per_minute(
    steps: list[Step],
    spans: list[Span],
    finals: list[float],
    chunk_s: float,
    chunk_wall_s: float,
    temps: list[tuple[float, float]] | None = None,
    watts: list[tuple[float, float]] | None = None,
) -> list[StreamMinute]:
    """Figures per minute of audio. ``temps`` / ``watts``: (audio time, value) samples, when measured."""
    chunks = [s for s in steps if s.chunk is not None]
    if not chunks:
        return []
    minutes = int((chunks[-1].audio_end_s - 1e-9) // 60) + 1
    out = []
    for m in range(minutes):
        lo, hi = 60.0 * m, 60.0 * (m + 1)
        mine = [s for s in chunks if lo < s.audio_end_s <= hi]
        if not mine:
            continue
        ratios = np.array([s.compute_s / chunk_wall_s for s in mine])
        ends = [f for f, sp in zip(finals, spans, strict=False) if lo < sp.end_s <= hi]
        audio = min(hi, mine[-1].audio_end_s) - lo
        t_in = [v for t, v in temps or [] if lo <= t < hi]
        w_in = [v for t, v in watts or [] if lo <= t < hi]
        out.append(
            StreamMinute(
                minute=m,
                audio_s=audio,
                chunks=len(mine),
                compute_ratio_p50=float(np.percentile(ratios, 50)),
                compute_ratio_p90=float(np.percentile(ratios, 90)),
                backlog_max_s=max(s.backlog_s for s in mine),
                finalisation_p50_s=float(np.median(ends)) if ends else None,
                rtf=sum(s.compute_s for s in mine) / max(audio, chunk_s * 1e-3),
                temp_max_c=max(t_in) if t_in else None,
                average_w=float(np.mean(w_in)) if w_in else None,
            )
        )
    return out


def timeline(steps: list[Step]) -> list[tuple[float, float, float]]:
    chunks = [s for s in steps if s.chunk is not None]
    stride = max(1, -(-len(chunks) // TIMELINE_MAX))
    return [(s.audio_end_s, s.compute_s, s.backlog_s) for s in chunks[::stride]]


def summary_or_none(values: list[float]) -> Summary | None:
    return summarize(values) if values else None
