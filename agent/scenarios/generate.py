"""Generate scenario: exactly N new tokens per sequence (min = max), prefill and decode timed apart.

Forcing the count (end-of-sequence suppressed) makes tokens/s comparable across models and runtimes:
a model that stops early would otherwise look faster. The count is verified on every iteration.
"""

from __future__ import annotations

import time

from edgebench.agent.results.schema import GenerateResult
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


class TokenCountError(RuntimeError):
    """The runtime produced a different number of tokens than forced: the measurement is invalid."""


def run_generate(ctx: ScenarioContext, point: Point) -> ScenarioOutput:
    session = ctx.session
    n = point.new_tokens or 1
    audio = speech_of_length(ctx.dataset, point.audio_seconds or 10.0)
    notes = window_note(ctx, point)
    feats = session.features(batch_of(audio, point.batch_size))
    prefill_s: list[float] = []
    decode_s: list[float] = []

    def once() -> None:
        t0 = time.perf_counter()
        state = session.prefill(feats)
        session.synchronize()
        t1 = time.perf_counter()
        if n > 1:
            state = session.decode(state, n - 1)
            session.synchronize()
        t2 = time.perf_counter()
        shape = tuple(state.tokens.shape)
        if shape != (point.batch_size, n):
            raise TokenCountError(f"asked for {n} new tokens x batch {point.batch_size}, got {shape}")
        prefill_s.append(t1 - t0)
        decode_s.append(t2 - t1)

    m, extra, warnings = measure_with_energy(
        ctx,
        once,
        tokens_per_call=n * point.batch_size,
        audio_s_per_call=(point.audio_seconds or 10.0) * point.batch_size,
    )
    # `once` also ran for the warm-up iterations (before) and energy-window repeats (after): keep only
    # the measured ones.
    k, w = len(m.samples_s), ctx.rule.warmup
    prefill_s, decode_s = prefill_s[w : w + k], decode_s[w : w + k]
    total = summarize(m.samples_s)
    decode = summarize(decode_s)
    result = GenerateResult(
        new_tokens=n,
        latency_s=total,
        prefill_s=summarize(prefill_s),
        decode_s=decode,
        tokens_per_s=point.batch_size * n / total.mean,
        decode_tokens_per_s=(point.batch_size * (n - 1) / decode.mean) if n > 1 and decode.mean > 0 else None,
        latency_samples_s=m.samples_s,
    )
    fields = {"generate": result, "policy": ctx.rule.to_policy(m.stopped_because), **extra}
    return ScenarioOutput(fields, notes + warnings)
