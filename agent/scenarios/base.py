"""What every scenario gets and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgebench.agent.datasets.loader import Utterance
    from edgebench.agent.runtimes.base import RuntimeSession
    from edgebench.agent.stats import StoppingRule
    from edgebench.agent.sweep import Point

SAMPLE_RATE = 16000


@dataclass
class ScenarioContext:
    session: RuntimeSession
    rule: StoppingRule
    dataset: list[Utterance]
    on_iteration: Callable[[int], None] | None = None


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


def run_point(ctx: ScenarioContext, point: Point) -> ScenarioOutput:
    """Dispatch to the scenario module (imported lazily: each pulls only what it needs)."""
    if point.scenario == "forward":
        from edgebench.agent.scenarios.forward import run_forward as run
    elif point.scenario == "generate":
        from edgebench.agent.scenarios.generate import run_generate as run
    elif point.scenario == "transcribe":
        from edgebench.agent.scenarios.transcribe import run_transcribe as run
    else:
        raise ValueError(f"scenario {point.scenario} is run by the runner at load time")
    return run(ctx, point)
