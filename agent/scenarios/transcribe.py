"""Transcribe scenario: end to end per utterance (front end + encoder + decoding) on a speech set.

Reports per-utterance latency statistics, the real-time factor and corpus WER/CER. The front end is inside
the timed window here because a user pays for it. WER/CER of untrained (random) weights are meaningless,
so they are reported as None with ``accuracy_meaningful=False``.
"""

from __future__ import annotations

import time

from edgebench.agent.accuracy import NORMALIZER_NAME, wer_cer
from edgebench.agent.results.schema import LanguageScore, TranscribeResult, UtteranceResult
from edgebench.agent.runtimes.base import decoded_language
from edgebench.agent.scenarios.base import ScenarioContext, ScenarioOutput
from edgebench.agent.stats import summarize
from edgebench.agent.sweep import Point


def run_transcribe(ctx: ScenarioContext, point: Point) -> ScenarioOutput:
    session, rule = ctx.session, ctx.rule
    utts = ctx.dataset
    batches = [utts[i : i + point.batch_size] for i in range(0, len(utts), point.batch_size)]

    def transcribe(batch) -> tuple[list[str], float]:
        t0 = time.perf_counter()
        texts = session.transcribe(session.features([u.audio for u in batch]), point.ctc_weight)
        session.synchronize()
        return texts, time.perf_counter() - t0

    fixed_language = decoded_language(session.spec, session.options.language)  # None: detected, or none

    for _ in range(rule.warmup):
        transcribe(batches[0])
    window = ctx.monitor.window() if ctx.monitor is not None else None

    latencies: list[float] = []  # one per batch
    hypotheses: list[str] = []
    per_utt: list[UtteranceResult] = []
    started = time.perf_counter()
    passes = 0
    while True:
        for batch in batches:
            texts, dt = transcribe(batch)
            latencies.append(dt)
            if ctx.on_iteration:
                ctx.on_iteration(len(latencies))
            if passes == 0:
                hypotheses += texts
                guesses = session.detected_languages() or [None] * len(batch)
                per_utt += [
                    UtteranceResult(
                        id=u.id,
                        audio_s=u.duration_s,
                        latency_s=dt,
                        reference=u.text,
                        hypothesis=t,
                        reference_language=u.language,
                        language=g.language if g is not None else fixed_language,
                        language_probability=g.probability if g is not None else None,
                    )
                    for u, t, g in zip(batch, texts, guesses, strict=True)
                ]
        passes += 1
        reason = rule.should_stop(latencies, time.perf_counter() - started)
        if reason:
            break
    extra: dict = {}
    energy_warnings: list[str] = []
    if window is not None and ctx.monitor is not None:
        extra, energy_warnings = _finish_energy(ctx, window, batches, transcribe, len(latencies), passes)

    audio_total = sum(u.duration_s for u in utts)
    trained = session.model_report().trained
    translated = session.options.task == "translate" and session.spec.family == "whisper"
    scored = trained and not translated
    wer = cer = None
    if scored:
        wer, cer = wer_cer([u.text for u in utts], hypotheses)
    result = TranscribeResult(
        utterances=len(utts),
        audio_s_total=audio_total,
        latency_s=summarize(latencies),
        rtf=sum(latencies) / (audio_total * passes),
        wer=wer,
        cer=cer,
        accuracy_meaningful=scored,
        normalizer=NORMALIZER_NAME,
        per_utterance=per_utt,
        languages=language_scores(per_utt) if scored else [],
    )
    warnings = []
    if not trained:
        warnings.append("untrained (random) weights: WER/CER not meaningful, not reported")
    elif translated:
        warnings.append(
            "--task translate: the references are transcripts in the spoken language, so WER/CER of the "
            "English translation are not reported (edgebench has no translation metric such as BLEU)"
        )
    return ScenarioOutput(
        {"transcribe": result, "policy": rule.to_policy(f"{passes} pass(es): {reason}"), **extra},
        warnings + energy_warnings,
    )


def _finish_energy(ctx, window, batches, transcribe, calls: int, passes: int):  # type: ignore[no-untyped-def]
    """Repeat batches (untimed) until the energy window is long enough, then close it. Energy per
    iteration is per transcribe call (a batch), per audio second over every call in the window."""
    from edgebench.agent.power.meter import Units

    audio_per_pass = sum(u.duration_s for u in ctx.dataset)
    audio_s = audio_per_pass * passes
    repeats = 0
    while not window.long_enough():
        batch = batches[repeats % len(batches)]
        transcribe(batch)
        audio_s += sum(u.duration_s for u in batch)
        repeats += 1
    units = Units(iterations=calls + repeats, audio_s=audio_s, repeats=repeats)
    energy, telemetry, warnings = ctx.monitor.finish(window, units)
    return {"energy": energy, "telemetry": telemetry}, warnings


def language_scores(utterances: list[UtteranceResult]) -> list[LanguageScore]:
    """WER/CER per spoken language, and how often it was detected, for a dataset that names the
    language of its utterances (none: an empty list). A corpus WER over several languages mixes very
    different difficulties, so each language gets its own line."""
    by_language: dict[str, list[UtteranceResult]] = {}
    for u in utterances:
        if u.reference_language is not None:
            by_language.setdefault(u.reference_language, []).append(u)
    scores = []
    for language, group in sorted(by_language.items()):
        wer, cer = wer_cer([u.reference for u in group], [u.hypothesis for u in group])
        detected = [u.language == language for u in group if u.language_probability is not None]
        scores.append(
            LanguageScore(
                language=language,
                utterances=len(group),
                audio_s=sum(u.audio_s for u in group),
                wer=wer,
                cer=cer,
                detected=sum(detected) / len(detected) if detected else None,
            )
        )
    return scores
