"""Run a recipe's steps one after the other, each exactly as ``edgebench-agent run`` would.

A step that cannot run on this device (``only_on``) is skipped with the reason; a step that fails (a
model without weights, a missing extra) is recorded with its one-line error and the recipe goes on, so
one missing piece never throws away the other steps' measurements. Every result is stored and streamed
like any other run's (``config.recipe`` and ``config.label`` say where it came from).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.recipes.spec import Recipe, Step, run_defaults

if TYPE_CHECKING:
    from edgebench.agent.publish.config import PublishConfig
    from edgebench.agent.runner import Progress


@dataclass
class StepOutcome:
    step: Step
    status: Literal["done", "skipped", "failed"]
    reason: str | None = None
    docs: list = field(default_factory=list)
    seconds: float = 0.0
    command: str = ""
    """The equivalent ``edgebench-agent run`` command line."""


@dataclass
class RecipeOutput:
    """Where a recipe's results go besides the report (the same switches as ``run``)."""

    agent: PublishConfig
    """The agent configuration (host, fleet, broker) every step's results carry and go to."""
    store: bool = True
    publish: bool = True
    publish_timeout: float = 15.0
    progress: Callable[[], AbstractContextManager[Progress]] | None = None
    """A fresh progress display per step (the CLI's rich bar); None: none."""


def available_device_kinds() -> list[str]:
    """cpu, plus cuda and mps where this machine's torch sees them (cpu only without torch)."""
    kinds = ["cpu"]
    try:
        import torch
    except ImportError:
        return kinds
    if torch.cuda.is_available():
        kinds.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        kinds.append("mps")
    return kinds


def _kind(device: str, available: list[str]) -> str:
    """The device kind a ``--device`` value lands on: auto picks like the runtimes do (cuda, mps, cpu);
    onnxruntime's tensorrt runs on a GPU and coreml on Apple silicon."""
    d = device.strip().lower()
    if d == "auto":
        return next((k for k in ("cuda", "mps") if k in available), "cpu")
    base = d.partition(":")[0]
    return {"tensorrt": "cuda", "coreml": "mps"}.get(base, base)


def plan_step(step: Step, available: list[str]) -> tuple[dict[str, Any], str | None]:
    """The step's options for this device, or the reason it is skipped here."""
    options = dict(step.options)
    devices = [d.strip() for d in str(options["device"]).split(",") if d.strip()]
    if devices == ["available"]:
        devices = list(available)
    elif "available" in devices:
        raise EdgebenchError(f"step '{step.label}': device 'available' cannot be combined with other devices")
    if step.only_on:
        kept = [d for d in devices if _kind(d, available) in step.only_on]
        if not kept:
            here = ", ".join(sorted({_kind(d, available) for d in devices}))
            return options, f"needs {' or '.join(step.only_on)} (this run: {here})"
        devices = kept
    options["device"] = ",".join(devices)
    return options, None


def command_line(options: dict[str, Any]) -> str:
    """The ``edgebench-agent run`` command that measures the same thing (options left at their
    defaults are omitted)."""
    defaults = run_defaults()
    parts = ["edgebench-agent", "run", "--model", str(options["model"])]
    for key, value in options.items():
        if key == "model" or value == defaults.get(key) or key == "recipe":
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts)


def run_recipe(
    recipe: Recipe,
    output: RecipeOutput,
    err: Any,
    on_step: Callable[[int, StepOutcome], None] | None = None,
) -> list[StepOutcome]:
    """Run every step (``err``: the rich console for progress). KeyboardInterrupt stops the recipe;
    what was measured up to then is already stored."""
    from edgebench.agent.benchmark import run_benchmark
    from edgebench.agent.runspec import from_options

    available = available_device_kinds()
    outcomes: list[StepOutcome] = []
    for i, step in enumerate(recipe.steps, 1):
        options, skip = plan_step(step, available)
        outcome = StepOutcome(step, "skipped", skip, command=command_line(options))
        if skip is None:
            err.rule(f"[bold]{recipe.name}[/] step {i}/{len(recipe.steps)}: {step.label}", style="dim")
            err.print(f"[dim]{outcome.command}[/]", soft_wrap=True, highlight=False)
            started = time.perf_counter()
            try:
                spec = from_options(
                    {
                        **options,
                        "store": output.store,
                        "publish": output.publish,
                        "publish_timeout": output.publish_timeout,
                    }
                )
                with output.progress() if output.progress else nullcontext(None) as progress:
                    measured = run_benchmark(spec, output.agent, progress, warn=_warner(err))
                outcome.status, outcome.docs = "done", measured.docs
                if measured.publish_line:
                    err.print(measured.publish_line, highlight=False, markup=False)
            except EdgebenchError as exc:
                outcome.status, outcome.reason = "failed", str(exc)
                err.print(f"[red]step {step.label} failed:[/] {exc}", soft_wrap=True, highlight=False)
            outcome.seconds = time.perf_counter() - started
        else:
            err.print(f"[yellow]skipped step {step.label}:[/] {skip}", soft_wrap=True, highlight=False)
        outcomes.append(outcome)
        if on_step:
            on_step(i, outcome)
    return outcomes


def _warner(err: Any) -> Callable[[str], None]:
    from rich.markup import escape

    return lambda m: err.print(f"[yellow]warning:[/] {escape(m)}", soft_wrap=True)
