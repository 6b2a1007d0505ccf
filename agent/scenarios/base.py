"""What every scenario gets and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgebench.agent.datasets.loader import Utterance
    from edgebench.agent.power.monitor import RunMonitor
    from edgebench.agent.runspec import StreamSpec
    from edgebench.agent.runtimes.base import RuntimeSession
    from edgebench.agent.stats import StoppingRule
    from edgebench.agent.sweep import Point
    from edgebench.agent.trackers.latency import Measurement

SAMPLE_RATE = 16000


@dataclass
class ScenarioContext:
    session: RuntimeSession
    rule: StoppingRule
    dataset: list[Utterance]
    on_iteration: Callable[[int], None] | None = None
    monitor: RunMonitor | None = None
    """Energy + telemetry of the run (None: not measured, e.g. in unit tests)."""
    stream: StreamSpec | None = None
    """The stream scenario's source options (pace, length, pauses)."""


@dataclass
class ScenarioOutput:
    """The parts of a result document a scenario fills in (names match ResultDocument fields)."""

    fields: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def speech_of_length(dataset: list[Utterance], seconds: float) -> np.ndarray:
    """Real speech of exactly ``seconds``: the dataset's utterances joined (0.25 s gaps), cycled, cropped.

    Synthetic noise would make decoders behave unlike real use (e.g. emit end-of-sequence at once), so
    fixed-length inputs are cut from the speech set.
    """
    need = round(seconds * SAMPLE_RATE)
    gap = np.zeros(SAMPLE_RATE // 4, dtype=np.float32)
    parts: list[np.ndarray] = []
    have = 0
    while have < need:
        for utt in dataset:
            parts += [utt.audio.astype(np.float32, copy=False), gap]
            have += len(utt.audio) + len(gap)
            if have >= need:
                break
    return np.concatenate(parts)[:need]


def window_note(ctx: ScenarioContext, point: Point) -> list[str]:
    """A warning when the model pads every input to a fixed window, so shorter inputs cost the same."""
    window = ctx.session.spec.options.get("window_s")
    seconds = point.audio_seconds
    if isinstance(window, float) and seconds is not None and seconds < window:
        return [
            f"{ctx.session.spec.name} pads every input to a {window:g} s window: "
            f"--audio-seconds {seconds:g} costs the same encoder time as {window:g} s"
        ]
    return []


def batch_of(audio: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [audio] * batch_size


def measure_with_energy(
    ctx: ScenarioContext,
    fn: Callable[[], object],
    sync: Callable[[], None] | None = None,
    tokens_per_call: int | None = None,
    audio_s_per_call: float | None = None,
) -> tuple[Measurement, dict[str, Any], list[str]]:
    """The timed loop of :func:`~edgebench.agent.trackers.latency.measure` inside an energy window.

    Warm-up runs before the window opens. When the timed loop is shorter than the power source needs
    (a few of its update periods), ``fn`` is repeated after it — outside the latency samples — until the
    window is long enough, and the energy is divided over every call in the window. Order of ``fn``
    calls is therefore: warm-up, measured, repeats. Returns the measurement, the document fields
    (``energy``, ``telemetry``) and warnings.
    """
    from dataclasses import replace

    from edgebench.agent.trackers.latency import measure

    rule = ctx.rule
    if ctx.monitor is None:
        return measure(fn, rule, sync=sync, on_iteration=ctx.on_iteration), {}, []
    for _ in range(rule.warmup):
        fn()
        if sync is not None:
            sync()
    window = ctx.monitor.window()
    m = measure(fn, replace(rule, warmup=0), sync=sync, on_iteration=ctx.on_iteration)
    repeats = 0
    while not window.long_enough():
        fn()
        if sync is not None:
            sync()
        repeats += 1
    calls = m.n + repeats
    units = _units(calls, repeats, tokens_per_call, audio_s_per_call)
    energy, telemetry, warnings = ctx.monitor.finish(window, units)
    return m, {"energy": energy, "telemetry": telemetry}, warnings


def _units(calls: int, repeats: int, tokens_per_call: int | None, audio_s_per_call: float | None):  # type: ignore[no-untyped-def]
    from edgebench.agent.power.meter import Units

    return Units(
        iterations=calls,
        tokens=None if tokens_per_call is None else tokens_per_call * calls,
        audio_s=None if audio_s_per_call is None else audio_s_per_call * calls,
        repeats=repeats,
    )


def scenario_function(scenario: str) -> Callable[[ScenarioContext, Point], ScenarioOutput]:
    """The scenario's entry point, imported lazily (each pulls only what it needs). The runner calls
    this *before* the measured window opens, so the import is never counted as the model's memory."""
    if scenario == "forward":
        from edgebench.agent.scenarios.forward import run_forward as run
    elif scenario == "generate":
        from edgebench.agent.scenarios.generate import run_generate as run
    elif scenario in ("transcribe", "stream"):
        import jiwer  # noqa: F401  (WER is computed inside the window; its import is not the model's)

        if scenario == "transcribe":
            from edgebench.agent.scenarios.transcribe import run_transcribe as run
        else:
            from edgebench.agent.scenarios.stream import run_stream as run
    else:
        raise ValueError(f"scenario {scenario} is run by the runner at load time")
    return run


def run_point(ctx: ScenarioContext, point: Point) -> ScenarioOutput:
    return scenario_function(point.scenario)(ctx, point)
