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


def finalisation_latencies(steps: list[Step], spans: list[Span], wall_of) -> list[tuple[Span, float]]:  # type: ignore[no-untyped-def]
    """Per utterance: the first step that made the text final past its end, minus when it ended."""
    out = []
    k = 0
    for span in spans:  # spans and final_until_s both grow along the stream
        while k < len(steps) and steps[k].update.final_until_s < span.end_s - 1e-6:
            k += 1
        if k < len(steps):
            out.append((span, steps[k].finished - wall_of(span.end_s)))
    return out


def first_partial_latencies(steps: list[Step], spans: list[Span], wall_of) -> list[float]:  # type: ignore[no-untyped-def]
    """Per utterance: the first step after its start that put more words on screen than there were
    before it started, minus its start (one pass: spans and steps both run along the stream)."""
    out = []
    k = 0
    shown = 0  # words on screen after the last step that ended before the utterance started
    for span in spans:
        while k < len(steps) and steps[k].audio_end_s <= span.start_s:
            shown = steps[k].visible_words
            k += 1
        first = next((steps[i] for i in range(k, len(steps)) if steps[i].visible_words > shown), None)
        if first is not None:
            out.append(first.finished - wall_of(span.start_s))
    return out


SUSTAINED = 4
"""Chunks in a row that must each wait more than one chunk for the model, and not less than the chunk
before by half a chunk or more, before a stream counts as fallen behind: after one long transcription
(vad at the end of a long utterance, local-agreement on a long buffer) the queued chunks wait less and
less as it drains; on a device that cannot keep up every chunk waits as long or longer."""


def behind(steps: list[Step], chunk_wall_s: float) -> tuple[bool, float | None]:
    """(kept up, where in the audio the device fell behind): the first of :data:`SUSTAINED` chunks in a
    row that each waited more than one chunk; or, when the stream ends within such a run, the end itself
    waiting more than :data:`SUSTAINED` chunks (the final flush aside: its wait, not its compute)."""
    run_start: Step | None = None
    run = 0
    previous = 0.0
    for s in steps:
        if s.chunk is None:
            continue
        # a queue that drains (its wait shrinking by more than half a chunk a chunk) is catching up
        if s.backlog_s > chunk_wall_s and s.backlog_s > previous - chunk_wall_s / 2:
            run_start, run = (run_start or s), run + 1
            if run >= SUSTAINED:
                return False, run_start.audio_end_s
        else:
            run_start, run = None, 0
        previous = s.backlog_s
    if steps and steps[-1].backlog_s > SUSTAINED * chunk_wall_s:
        return False, (run_start or steps[-1]).audio_end_s
    return True, None


def per_minute(
    steps: list[Step],
    finals: list[tuple[Span, float]],
    chunk_wall_s: float,
    temps: list[tuple[float, float]] | None = None,
    watts: list[tuple[float, float]] | None = None,
) -> list[StreamMinute]:
    """Figures per minute of audio. ``temps`` / ``watts``: (audio time, value) samples, when measured."""

    def minute(t: float) -> int:
        return int(max(t - 1e-9, 0.0) // 60)

    chunks: dict[int, list[Step]] = {}
    for s in steps:
        if s.chunk is not None:
            chunks.setdefault(minute(s.audio_end_s), []).append(s)
    ends: dict[int, list[float]] = {}
    for span, latency in finals:
        ends.setdefault(minute(span.end_s), []).append(latency)
    temp_by: dict[int, list[float]] = {}
    for t, v in temps or []:
        temp_by.setdefault(int(t // 60), []).append(v)
    watt_by: dict[int, list[float]] = {}
    for t, v in watts or []:
        watt_by.setdefault(int(t // 60), []).append(v)
    out = []
    for m, mine in sorted(chunks.items()):
        ratios = np.array([s.compute_s / chunk_wall_s for s in mine])
        audio = mine[-1].audio_end_s - 60.0 * m
        out.append(
            StreamMinute(
                minute=m,
                audio_s=audio,
                chunks=len(mine),
                compute_ratio_p50=float(np.percentile(ratios, 50)),
                compute_ratio_p90=float(np.percentile(ratios, 90)),
                backlog_max_s=max(s.backlog_s for s in mine),
                finalisation_p50_s=float(np.median(ends[m])) if m in ends else None,
                rtf=sum(s.compute_s for s in mine) / audio if audio > 0 else 0.0,
                temp_max_c=max(temp_by[m]) if m in temp_by else None,
                average_w=float(np.mean(watt_by[m])) if m in watt_by else None,
            )
        )
    return out


def timeline(steps: list[Step]) -> list[tuple[float, float, float]]:
    chunks = [s for s in steps if s.chunk is not None]
    stride = max(1, -(-len(chunks) // TIMELINE_MAX))
    return [(s.audio_end_s, s.compute_s, s.backlog_s) for s in chunks[::stride]]


def summary_or_none(values: list[float]) -> Summary | None:
    return summarize(values) if values else None
