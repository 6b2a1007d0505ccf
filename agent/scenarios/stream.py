"""Stream scenario: can this device caption live speech, and how late? (docs/streaming.md)

The dataset becomes one continuous stream (``agent/streaming/stream_audio.py``), released chunk by chunk
at real-time pace by a paced source, and transcribed by a streaming policy as the chunks arrive. Every
chunk's compute time, how long it waited (the backlog), and when each utterance's text became final
are recorded; after the stream, the same utterances are transcribed whole, so the streamed WER stands
next to the offline one. The energy window covers the stream only.
"""

from __future__ import annotations

import time

from edgebench.agent.accuracy import NORMALIZER_NAME, wer_cer
from edgebench.agent.results.schema import StreamResult
from edgebench.agent.scenarios.base import SAMPLE_RATE, ScenarioContext, ScenarioOutput
from edgebench.agent.stats import summarize
from edgebench.agent.streaming import metrics
from edgebench.agent.streaming.paced_source import PacedSource
from edgebench.agent.streaming.policies import make_policy
from edgebench.agent.streaming.stream_audio import build_stream
from edgebench.agent.sweep import Point


def run_stream(ctx: ScenarioContext, point: Point) -> ScenarioOutput:
    session, rule, options = ctx.session, ctx.rule, ctx.stream
    assert options is not None and point.stream_policy is not None and point.chunk_s is not None
    chunk_s, speed = point.chunk_s, options.speed
    align = chunk_s if options.align_chunks else None
    stream = build_stream(ctx.dataset, options.pause_s, options.minutes, align)

    def transcribe(audio) -> str:  # type: ignore[no-untyped-def]
        text = session.transcribe(session.features([audio]), point.ctc_weight)[0]
        session.synchronize()
        return text

    for _ in range(rule.warmup):  # a live captioner loads and warms its model before the first word
        transcribe(stream.audio[: round(chunk_s * SAMPLE_RATE)])
    policy = make_policy(point.stream_policy, transcribe)
    window = ctx.monitor.window() if ctx.monitor is not None else None
    source = PacedSource(stream.audio, chunk_s, speed)
    source.start()
    wall_start_ns = source.t0_ns
    steps: list[metrics.Step] = []
    committed: list[str] = []
    try:
        while (chunk := source.get()) is not None:
            started = time.monotonic()
            update = policy.feed(chunk)
            finished = time.monotonic()
            committed += update.committed
            visible = len(committed) + len(update.partial)
            step = metrics.Step(chunk.index, chunk.end_s, chunk.deadline, chunk.released, started, finished,
                                update, visible)  # fmt: skip
            steps.append(step)
            if ctx.on_iteration:
                ctx.on_iteration(len(steps))
        end_s = stream.duration_s
        started = time.monotonic()
        update = policy.finish(end_s)
        finished = time.monotonic()
        committed += update.committed
        end_wall = source.wall_time(end_s)
        steps.append(metrics.Step(None, end_s, end_wall, end_wall, started, finished, update, len(committed)))
    finally:
        source.stop()
    extra: dict = {}
    energy_warnings: list[str] = []
    if window is not None and ctx.monitor is not None:
        from edgebench.agent.power.meter import Units

        energy, telemetry, energy_warnings = ctx.monitor.finish(
            window, Units(iterations=source.chunks, audio_s=stream.duration_s)
        )
        extra = {"energy": energy, "telemetry": telemetry}

    # the same utterances whole, one by one (outside the energy window)
    offline = {}
    for span in stream.spans:
        if span.index not in offline:
            offline[span.index] = transcribe(ctx.dataset[span.index].audio)

    trained = session.model_report().trained
    translated = session.options.task == "translate" and session.spec.family == "whisper"
    scored = trained and not translated
    reference = " ".join(span.text for span in stream.spans)
    wer = cer = offline_wer = offline_cer = None
    if scored:
        wer, cer = wer_cer([reference], [" ".join(committed)])
        offline_wer, offline_cer = wer_cer([reference], [" ".join(offline[s.index] for s in stream.spans)])

    chunk_wall = chunk_s / speed
    chunk_steps = [s for s in steps if s.chunk is not None]
    finals = metrics.finalisation_latencies(steps, stream.spans, source.wall_time)
    partials = []
    if policy.gives_partials:
        partials = metrics.first_partial_latencies(steps, stream.spans, source.wall_time)
    kept_up, onset = metrics.behind(steps, chunk_wall)
    compute = [s.compute_s for s in chunk_steps]

    def audio_time(trace_start_ns: int | None, t: float) -> float:
        return ((trace_start_ns or wall_start_ns) + t * 1e9 - wall_start_ns) / 1e9 * speed

    telemetry_result, energy_result = extra.get("telemetry"), extra.get("energy")
    temps = None
    if telemetry_result is not None:
        start = telemetry_result.trace_start_ns
        temps = [(audio_time(start, t), temp) for t, temp, _ in telemetry_result.trace if temp is not None]
    watts = (
        [(audio_time(energy_result.trace_start_ns, t), w) for t, w in energy_result.trace]
        if energy_result is not None
        else None
    )
    result = StreamResult(
        policy=point.stream_policy,  # type: ignore[arg-type]
        chunk_s=chunk_s,
        speed=speed,
        audio_s=stream.duration_s,
        utterances=len(stream.spans),
        chunks=len(chunk_steps),
        compute_s=summarize(compute),
        compute_ratio=summarize([c / chunk_wall for c in compute]),
        kept_up=kept_up,
        fell_behind_at_s=onset,
        backlog_max_s=max(s.backlog_s for s in chunk_steps),
        backlog_end_s=max(0.0, steps[-1].finished - steps[-1].deadline),
        finalisation_latency_s=metrics.summary_or_none([latency for _, latency in finals]),
        first_partial_latency_s=metrics.summary_or_none(partials),
        rtf=sum(s.compute_s for s in steps) / stream.duration_s,
        transcribed_ratio=sum(s.update.transcribed_s for s in steps) / stream.duration_s,
        forced_commits=policy.forced_commits,
        pacing_error_s=summarize([max(0.0, s.released - s.deadline) for s in chunk_steps]),
        wer=wer,
        cer=cer,
        offline_wer=offline_wer,
        offline_cer=offline_cer,
        accuracy_meaningful=scored,
        normalizer=NORMALIZER_NAME,
        transcript=" ".join(committed)[:200_000],
        per_minute=metrics.per_minute(steps, finals, chunk_wall, temps, watts),
        start_ns=wall_start_ns,
        timeline=metrics.timeline(steps),
    )
    warnings = stream_warnings(result, trained, translated)
    reason = f"one stream of {stream.duration_s:.1f} s ({len(chunk_steps)} chunks)"
    fields = {"stream": result, "policy": rule.to_policy(reason), **extra}
    return ScenarioOutput(fields, warnings + energy_warnings)


def stream_warnings(result: StreamResult, trained: bool, translated: bool) -> list[str]:
    warnings = []
    if not result.kept_up:
        at = "" if result.fell_behind_at_s is None else f" from {result.fell_behind_at_s:.1f} s of audio on"
        warnings.append(
            f"fell behind the live audio{at}: backlog up to {result.backlog_max_s:.2f} s, the last text "
            f"final {result.backlog_end_s:.2f} s after the stream ended"
        )
    if result.forced_commits:
        warnings.append(
            f"local-agreement committed {result.forced_commits} buffer(s) at their length limit without "
            "two hypotheses agreeing (no pause long enough to trim at)"
        )
    if not trained:
        warnings.append("untrained (random) weights: WER/CER not meaningful, not reported")
    elif translated:
        warnings.append("--task translate: WER/CER against the spoken language's references are not reported")
    return warnings
