"""Comma-list sweep parsing and grid expansion.

``--batch-size 1,8 --new-tokens 10,100`` becomes the cross product of configurations. Each scenario only
varies along the axes that mean something for it (forward ignores new_tokens, transcribe ignores
audio_seconds, …) so a sweep never measures the same thing twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from edgebench.agent.errors import EdgebenchError

T = TypeVar("T")

SCENARIOS = ("load", "forward", "generate", "transcribe")


def parse_list(
    value: str | None,
    convert: Callable[[str], T],
    option: str,
    check: Callable[[T], str | None] | None = None,
) -> list[T]:
    """Parse ``"1,8"`` into ``[1, 8]``; duplicates are dropped, order kept. ``check`` returns an error
    text for a bad item."""
    if value is None:
        return []
    items: list[T] = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            raise EdgebenchError(f"{option}: empty item in '{value}' (use a comma-separated list like 1,8)")
        try:
            item = convert(raw)
        except ValueError:
            raise EdgebenchError(
                f"{option}: '{raw}' is not a valid {convert.__name__} (in '{value}')"
            ) from None
        problem = check(item) if check else None
        if problem:
            raise EdgebenchError(f"{option}: {raw} {problem}")
        if item not in items:
            items.append(item)
    return items


def positive(x: float) -> str | None:
    return None if x > 0 else "must be > 0"


def unit_interval(x: float) -> str | None:
    return None if 0.0 <= x <= 1.0 else "must be between 0 and 1 (0 = attention only, 1 = CTC only)"


def one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(x: str) -> str | None:
        return None if x in choices else f"is not one of {', '.join(choices)}"

    return check


@dataclass(frozen=True)
class Point:
    """One scenario configuration (the runtime axes are fixed by the session it runs in)."""

    scenario: str
    batch_size: int = 1
    audio_seconds: float | None = None
    new_tokens: int | None = None
    ctc_weight: float | None = None


@dataclass
class Sweep:
    """The full grid requested on the command line."""

    models: list[str]
    runtimes: list[str]
    precisions: list[str]
    devices: list[str]
    scenarios: list[str]
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    audio_seconds: list[float] = field(default_factory=list)
    """Empty: each model's own default (its fixed window if it has one, else 10 s)."""
    new_tokens: list[int] = field(default_factory=lambda: [32])
    ctc_weights: list[float] = field(default_factory=list)

    def sessions(self) -> Iterator[tuple[str, str, str, str]]:
        """(model, runtime, precision, device): each loads a model once."""
        yield from itertools.product(self.models, self.runtimes, self.precisions, self.devices)

    def points(self, hybrid: bool, default_seconds: float = 10.0) -> list[Point]:
        """Scenario points for one session; ``load`` first because it must see a freshly loaded model."""
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
        return out
