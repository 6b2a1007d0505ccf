"""The one interface every power source implements, and what a reading is.

A source either reports instantaneous **watts** (hwmon, PMIC, jtop, NVML power, a meter command, a replayed
trace) or a cumulative **energy counter** in joules (RAPL ``energy_uj``, NVML's total-energy counter,
powertop's per-report energy). Both are carried by :class:`Reading`; the sampler turns watts into a
cumulative counter by trapezoidal integration so that a window's energy is always ``J(end) - J(start)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from edgebench.agent.errors import EdgebenchError

Kind = Literal["measured", "estimated"]


class SourceUnavailable(EdgebenchError):
    """This source cannot be used here; the message says why and what to do about it."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample. ``t`` is the monotonic time (s) the values refer to — the read time for polled sources,
    the sensor's own update time for sources that push values (a meter command, powertop reports)."""

    t: float
    watts: float | None = None
    """Total instantaneous power (sum of :attr:`PowerSource.rails`)."""
    joules: float | None = None
    """Cumulative energy counter (never decreasing: the source handles wrap-around)."""
    rails: dict[str, float] = field(default_factory=dict)
    """Per-rail watts when the source knows them (for ``power watch``)."""


class PowerSource(ABC):
    """A device's power meter. ``open()`` raises :class:`SourceUnavailable` with a reason."""

    name: str = "?"
    kind: Kind = "measured"
    rails: list[str]
    """Rails summed into the total."""
    update_period_s: float = 0.1
    """How often the underlying sensor produces a new value (native period)."""
    min_poll_period_s: float = 0.01
    """Polling faster than this costs more than it tells (e.g. a subprocess per read)."""

    def __init__(self) -> None:
        self.rails = []

    @abstractmethod
    def open(self) -> None:
        """Find the sensor and check it can be read (raise SourceUnavailable otherwise)."""

    @abstractmethod
    def read(self) -> Reading:
        """One sample, now. Called from the sampler thread only (never concurrently)."""

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release what :meth:`open` acquired."""

    def describe(self) -> str:
        rails = ", ".join(self.rails) if self.rails else "total"
        return f"{self.name} ({self.kind}; rails: {rails}; updates every {self.update_period_s:g} s)"

    def __enter__(self) -> PowerSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
