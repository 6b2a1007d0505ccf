"""The sweep grid: which sessions (model x runtime x precision x device) load, and which scenario points
each measures.

``--batch-size 1,8 --new-tokens 10,100`` becomes the cross product of configurations. Each scenario only
varies along the axes that mean something for it (forward ignores new_tokens, transcribe ignores
audio_seconds, …) so a sweep never measures the same thing twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from edgebench.agent.errors import EdgebenchError

SCENARIOS = ("load", "forward", "generate", "transcribe", "stream")
STREAM_POLICIES = ("chunk", "local-agreement", "vad")  # agent/streaming/policies.py POLICIES
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Point:
    """One scenario configuration (the runtime axes are fixed by the session it runs in)."""

    scenario: str
    batch_size: int = 1
    audio_seconds: float | None = None
    new_tokens: int | None = None
    ctc_weight: float | None = None
    stream_policy: str | None = None
    chunk_s: float | None = None


def _positive(flag: str, values: list[float] | list[int]) -> None:
    bad = [v for v in values if v <= 0]
    if bad:
        raise EdgebenchError(f"{flag}: {bad[0]:g} must be > 0")


def distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


class SweepSpec(BaseModel):
    """The grid: every combination of the session axes, and per session every scenario point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[str]
    runtimes: list[str] = ["torch"]
    precisions: list[str] = ["fp32"]
    devices: list[str] = ["auto"]
    scenarios: list[str] = ["forward", "generate", "transcribe"]
    batch_sizes: list[int] = [1]
    audio_seconds: list[float] = []
    """Empty: each model's own default (its fixed window if it has one, else 10 s)."""
    new_tokens: list[int] = [32]
    ctc_weights: list[float] = []
    """Hybrid models only; empty: 0.3."""
    stream_policies: list[str] = ["local-agreement"]
    """stream scenario: chunk, local-agreement, vad."""
    chunk_seconds: list[float] = [1.0]
    """stream scenario: seconds of audio per chunk."""

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        for flag, values in (
            ("--model", self.models),
            ("--runtime", self.runtimes),
            ("--precision", self.precisions),
            ("--device", self.devices),
            ("--scenario", self.scenarios),
            ("--batch-size", self.batch_sizes),
            ("--new-tokens", self.new_tokens),
            ("--stream-policy", self.stream_policies),
            ("--chunk-seconds", self.chunk_seconds),
        ):
            if not values:
                raise EdgebenchError(f"{flag}: give at least one value")
            if any(isinstance(v, str) and not v.strip() for v in values):
                raise EdgebenchError(f"{flag}: empty item")
        for flag, values, allowed in (
            ("--precision", self.precisions, PRECISIONS),
            ("--scenario", self.scenarios, SCENARIOS),
            ("--stream-policy", self.stream_policies, STREAM_POLICIES),
        ):
            bad = [v for v in values if v not in allowed]
            if bad:
                raise EdgebenchError(f"{flag}: {bad[0]} is not one of {', '.join(allowed)}")
        _positive("--batch-size", self.batch_sizes)
        _positive("--audio-seconds", self.audio_seconds)
        _positive("--new-tokens", self.new_tokens)
        _positive("--chunk-seconds", self.chunk_seconds)
        if max(self.chunk_seconds) > 30:
            longest = max(self.chunk_seconds)
            raise EdgebenchError(f"--chunk-seconds {longest:g}: at most 30 (Whisper's window)")
        if "local-agreement" in self.stream_policies and max(self.chunk_seconds) > 10:
            raise EdgebenchError(
                f"--chunk-seconds {max(self.chunk_seconds):g}: local-agreement takes at most 10 (its buffer "
                "of up to 20 s and one more chunk must fit Whisper's 30 s window)"
            )
        bad_w = [w for w in self.ctc_weights if not 0.0 <= w <= 1.0]
        if bad_w:
            raise EdgebenchError(
                f"--ctc-weight: {bad_w[0]:g} must be between 0 and 1 (0 = attention only, 1 = CTC only)"
            )
        for name in type(self).model_fields:  # duplicates would measure the same point twice
            object.__setattr__(self, name, distinct(getattr(self, name)))
        return self

    def sessions(self) -> Iterator[tuple[str, str, str, str]]:
        """(model, runtime, precision, device): each loads a model once."""
        yield from itertools.product(self.models, self.runtimes, self.precisions, self.devices)

    def points(self, hybrid: bool, default_seconds: float = 10.0) -> list[Point]:
        """Scenario points for one session; ``load`` first because it must see a freshly loaded model.
        Each scenario varies only along the axes that mean something for it (forward ignores
        new_tokens, transcribe ignores audio_seconds, …) so a sweep never measures the same thing
        twice."""
        out: list[Point] = []
        seconds = self.audio_seconds or [default_seconds]
        weights: list[float | None] = list(self.ctc_weights) if hybrid else [None]
        if hybrid and not weights:
            weights = [0.3]
        for scenario in sorted(self.scenarios, key=SCENARIOS.index):
            if scenario == "load":
                out.append(Point("load"))
            elif scenario == "forward":
                out += [Point("forward", b, s) for b in self.batch_sizes for s in seconds]
            elif scenario == "generate":
                out += [
                    Point("generate", b, s, n)
                    for b in self.batch_sizes
                    for s in seconds
                    for n in self.new_tokens
                ]
            elif scenario == "transcribe":
                out += [Point("transcribe", b, ctc_weight=w) for b in self.batch_sizes for w in weights]
            elif scenario == "stream":  # one live stream: batch 1 by nature
                out += [
                    Point("stream", ctc_weight=w, stream_policy=p, chunk_s=c)
                    for p in self.stream_policies
                    for c in self.chunk_seconds
                    for w in weights
                ]
        return out
