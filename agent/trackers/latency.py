"""Latency measurement: the timed loop every scenario goes through, and a one-off :class:`Timer`.

The loop is deliberately bare — ``perf_counter(); fn(); sync(); perf_counter()`` and an append — because
anything inside the timed window is attributed to the model, and anything outside it but inside the loop
slows the run down (benchmarks/harness_overhead.py checks the harness costs <= 1 % on a 5–20 ms workload).
Stopping-rule bookkeeping happens after the second ``perf_counter`` and is O(1) per iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from types import TracebackType

from edgebench.agent.results.schema import Summary
from edgebench.agent.stats import RunningStats, StoppingRule, summarize


@dataclass
class Measurement:
    """Raw outcome of :func:`measure`.

    ``results`` holds the return values of the *measured* calls (warm-up excluded) when ``measure`` was
    asked to keep them; it is the easy way for a scenario to record a per-iteration breakdown, e.g. the
    generate scenario's ``fn`` returns ``(prefill_s, decode_s)`` and the pairs line up with ``samples_s``.
    """

    samples_s: list[float]
    warmup_s: list[float]
    stopped_because: str
    elapsed_s: float
    """Wall time of the measured loop (warm-up excluded), including the loop's own bookkeeping."""
    results: list[object] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.samples_s)

    def summary(self) -> Summary:
        return summarize(self.samples_s)


def measure(
    fn: Callable[[], object],
    rule: StoppingRule,
    sync: Callable[[], None] | None = None,
    on_iteration: Callable[[int], None] | None = None,
    keep_results: bool = False,
) -> Measurement:
    """Time ``fn`` repeatedly until ``rule`` says stop.

    ``rule.warmup`` calls run first and are timed but not counted (their times are returned separately,
    useful to spot a slow first call). Each measured iteration times ``fn()`` followed by ``sync()`` when
    given — pass ``torch.cuda.synchronize`` on a GPU so asynchronous kernels finish inside the window
    instead of leaking into the next sample.

    ``fn`` may return anything; with ``keep_results=True`` the return values of the measured calls are
    collected in ``Measurement.results`` (one per sample, same order). ``on_iteration(count)`` is called
    after every measured iteration, outside the timed window, for a progress bar — keep it cheap.
    """
    warmup_s: list[float] = []
    for _ in range(rule.warmup):
        t0 = perf_counter()
        fn()
        if sync is not None:
            sync()
        warmup_s.append(perf_counter() - t0)

    samples: list[float] = []
    results: list[object] = []
    append = samples.append
    keep = results.append if keep_results else None
    # Only pay for the running cv when there is a cv target.
    running = RunningStats() if rule.max_cv is not None else None
    should_stop = rule.should_stop
    # Cheap pre-check: the rule cannot stop before min_iterations unless a cap is hit, so skip calling
    # it while both caps are clearly out of reach.
    first_check = min(rule.min_iterations, rule.max_iterations)
    max_duration = rule.max_duration_s
    reason: str | None = None
    start = perf_counter()
    n = 0
    while reason is None:
        t0 = perf_counter()
        if keep is None:
            # Not bound to a name: the result is freed inside the window, exactly as in a bare loop.
            # Holding it until the next call forces a fresh allocation per iteration (measured: +5 %
            # on a 8 ms matmul chain, 1 MB results) and would bill that to the model.
            fn()
        else:
            keep(fn())
        if sync is not None:
            sync()
        t1 = perf_counter()
        dt = t1 - t0
        append(dt)
        n += 1
        if running is not None:
            running.add(dt)
        if on_iteration is not None:
            on_iteration(n)
        elapsed = t1 - start
        if n >= first_check or elapsed >= max_duration:
            reason = should_stop(samples, elapsed, running.cv if running is not None else None)
    return Measurement(
        samples_s=samples,
        warmup_s=warmup_s,
        stopped_because=reason,
        elapsed_s=perf_counter() - start,
        results=results,
    )


class Timer:
    """Context manager timing one block (model load, first inference).

    ``with Timer(sync=torch.cuda.synchronize) as t: ...`` then ``t.elapsed_s``. ``sync`` runs on entry
    too, so GPU work queued *before* the block is not billed to it.
    """

    __slots__ = ("_sync", "_t0", "elapsed_s")

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self._sync = sync
        self._t0 = 0.0
        self.elapsed_s: float = 0.0

    def __enter__(self) -> Timer:
        if self._sync is not None:
            self._sync()
        self._t0 = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sync is not None:
            self._sync()
        self.elapsed_s = perf_counter() - self._t0
