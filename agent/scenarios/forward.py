"""Forward scenario: one full forward pass per iteration (latency, iterations/s)."""

from __future__ import annotations

from edgebench.agent.results.schema import ForwardResult
from edgebench.agent.scenarios.base import (
    ScenarioContext,
    ScenarioOutput,
    batch_of,
    speech_of_length,
    window_note,
)
from edgebench.agent.stats import summarize
from edgebench.agent.sweep import Point
from edgebench.agent.trackers.latency import measure


def run_forward(ctx: ScenarioContext, point: Point) -> ScenarioOutput:
    session = ctx.session
    audio = speech_of_length(ctx.dataset, point.audio_seconds or 10.0)
    notes = window_note(ctx, point)
    feats = session.features(batch_of(audio, point.batch_size))  # front end outside the timed window
    m = measure(
        lambda: session.forward(feats), ctx.rule, sync=session.synchronize, on_iteration=ctx.on_iteration
    )
    summary = summarize(m.samples_s)
    its = 1.0 / summary.mean
    result = ForwardResult(
        latency_s=summary,
        iterations_per_s=its,
        samples_per_s=its * point.batch_size,
        latency_samples_s=m.samples_s,
    )
    return ScenarioOutput({"forward": result, "policy": ctx.rule.to_policy(m.stopped_because)}, notes)
