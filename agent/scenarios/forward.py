"""Forward scenario: one full forward pass per iteration (latency, iterations/s)."""

from __future__ import annotations

from edgebench.agent.results.schema import ForwardResult
from edgebench.agent.scenarios.base import (
    ScenarioContext,
    ScenarioOutput,
    batch_of,
    measure_with_energy,
    speech_of_length,
    window_note,
)
from edgebench.agent.stats import summarize
from edgebench.agent.sweep import Point


def run_forward(ctx: ScenarioContext, point: Point) -> ScenarioOutput:
    session = ctx.session
    audio = speech_of_length(ctx.dataset, point.audio_seconds or 10.0)
    notes = window_note(ctx, point)
    feats = session.forward_inputs(batch_of(audio, point.batch_size))  # front end outside the timing
    seconds = point.audio_seconds or 10.0
    m, extra, warnings = measure_with_energy(
        ctx,
        lambda: session.forward(feats),
        sync=session.synchronize,
        audio_s_per_call=seconds * point.batch_size,
    )
    summary = summarize(m.samples_s)
    its = 1.0 / summary.mean
    result = ForwardResult(
        latency_s=summary,
        iterations_per_s=its,
        samples_per_s=its * point.batch_size,
        latency_samples_s=m.samples_s,
    )
    fields = {"forward": result, "policy": ctx.rule.to_policy(m.stopped_because), **extra}
    return ScenarioOutput(fields, notes + warnings)
