"""``edgebench-agent recipe list|show|run|report``: the seed benchmarks, one command each."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.report.sources import Selection


def list_recipes(json_out: bool) -> None:
    from rich.console import Console

    from edgebench.agent.cli.tables import compact_table
    from edgebench.agent.recipes.spec import builtin_names, load_recipe

    recipes = [load_recipe(name) for name in builtin_names()]
    if json_out:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "title": r.title,
                        "seed": r.seed,
                        "report": r.report,
                        "steps": [s.label for s in r.steps],
                        "file": str(r.path),
                    }
                    for r in recipes
                ],
                indent=2,
            )
        )
        return
    # names are typed: never wrapped; the rest wraps between words (a word longer than its column is
    # never cut in two: the columns' minimum is their longest word)
    table = compact_table(
        "Recipes (edgebench-agent recipe run NAME [--quick])",
        caption="seed: the benchmark write-up a recipe reproduces (the documents edgebench grew from); "
        "`edgebench-agent recipe show NAME` prints a recipe whole",
    )
    table.add_column("name", no_wrap=True)
    table.add_column("reproduces", min_width=_longest_word(r.title for r in recipes))
    table.add_column("seed", no_wrap=True)
    table.add_column("steps", min_width=_longest_word(s.label for r in recipes for s in r.steps))
    for r in recipes:
        table.add_row(r.name, r.title, r.seed.split(" ", 1)[0], ", ".join(s.label for s in r.steps))
    console = Console()
    console.print(table)
    console.print(
        f"[dim]files: {recipes[0].path.parent if recipes else '-'} — copy one, edit it, and run "
        "`edgebench-agent recipe run my.toml`[/]",
        soft_wrap=True,  # a path is never broken in two
    )


def _longest_word(texts: Iterable[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=1)


def show_recipe(name: str, quick: bool, sets: list[str] | None) -> None:
    """The recipe file as written, then each step as the plain ``run`` command it amounts to."""
    from rich.console import Console
    from rich.syntax import Syntax

    from edgebench.agent.recipes.execute import available_device_kinds, command_line, plan_step
    from edgebench.agent.recipes.spec import load_recipe

    recipe = load_recipe(name, quick=quick, sets=sets)
    text = recipe.path.read_text(encoding="utf-8")
    available = available_device_kinds()
    steps = [f"# steps here{' (--quick)' if quick else ''}:"]
    for step in recipe.steps:
        options, skip = plan_step(step, available)
        steps.append(f"#   {step.label}: {f'skipped: {skip}' if skip else command_line(options)}")
    # Everything printed is TOML (the file, then comments): `recipe show NAME > my.toml` loads as is.
    # Colours only on a terminal; nothing is cut at the terminal's width either way.
    if not sys.stdout.isatty():
        sys.stdout.write(f"# {recipe.path}\n{text.rstrip()}\n\n" + "\n".join(steps) + "\n")
        return
    console = Console()
    console.print(f"[dim]# {recipe.path}[/]", soft_wrap=True, markup=True)
    console.print(Syntax(text, "toml", theme="ansi_dark", word_wrap=False))
    for line in steps:
        console.print(
            line, soft_wrap=True, highlight=False, markup=False, style="bold" if line == steps[0] else None
        )


def run_recipe_command(
    name: str,
    quick: bool,
    sets: list[str] | None,
    out: str | None,
    store: bool,
    publish: bool,
    config: str | None,
    broker: str | None,
) -> int:
    """Run every step, write the report, print its tables; exit status 1 when a step failed."""
    import time

    from rich.console import Console

    from edgebench.agent.cli.progress import RichProgress
    from edgebench.agent.publish.config import load_config
    from edgebench.agent.recipes.execute import RecipeOutput, run_recipe
    from edgebench.agent.recipes.spec import load_recipe
    from edgebench.agent.report.plots import figure_class

    recipe = load_recipe(name, quick=quick, sets=sets)
    figure_class()  # the report needs matplotlib: say so before measuring for an hour
    folder = Path(out or f"edgebench-recipe-{recipe.name}{'-quick' if quick else ''}")
    err = Console(stderr=True, log_path=False)
    started = time.perf_counter()
    output = RecipeOutput(
        load_config(config, broker), store=store, publish=publish, progress=lambda: RichProgress(err)
    )
    outcomes = run_recipe(recipe, output, err)
    docs = [d for o in outcomes for d in o.docs]
    return _finish(recipe, docs, outcomes, folder, time.perf_counter() - started)


def _finish(recipe, docs, outcomes, folder: Path, seconds: float | None) -> int:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    from edgebench.agent.recipes.reports import write_report
    from edgebench.agent.recipes.reports.common import step_line

    console = Console()
    report = None
    if docs:
        report = write_report(recipe, docs, outcomes, folder)
        for renderable in report.console:
            console.print(renderable)
        for line in report.headlines:
            console.print(f"• {line}", highlight=False, soft_wrap=True)
    if outcomes:
        steps = Table(title="steps", title_justify="left")
        for col in ("step", "status", "results", "seconds", "note"):
            steps.add_column(col, overflow="fold")
        for o in outcomes:
            style = {"done": "green", "skipped": "yellow", "failed": "red"}[o.status]
            steps.add_row(
                o.step.label,
                f"[{style}]{o.status}[/]",
                str(len(o.docs)),
                f"{o.seconds:.0f}" if o.status != "skipped" else "",
                o.reason or "",
            )
        console.print(steps)
    elapsed = f" in {seconds:.0f} s" if seconds is not None else ""
    if report is None:
        lines = "; ".join(step_line(o) for o in outcomes if o.status != "done")
        raise EdgebenchError(f"recipe {recipe.name}: no step produced results ({lines})")
    console.print(
        f"recipe {recipe.name}{' (quick)' if recipe.quick else ''}: {len(docs)} results{elapsed}; "
        f"report: {folder / 'index.html'}",
        soft_wrap=True,
        highlight=False,
    )
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def report_recipe_command(name: str, sel: Selection, out: str | None) -> None:
    """Rebuild a recipe's report from stored results or other hosts' exports (a fleet-wide report)."""
    from edgebench.agent.recipes.spec import load_recipe
    from edgebench.agent.report.sources import select

    recipe = load_recipe(name)
    loaded = select(sel)
    docs = [d for d in loaded.docs if d.config.recipe == recipe.name]
    if not docs:
        raise EdgebenchError(
            f"none of the {len(loaded.docs)} selected results comes from recipe {recipe.name} "
            f"(run `edgebench-agent recipe run {recipe.name}` first, or pass its hosts' exports with --from)"
        )
    _finish(recipe, docs, [], Path(out or f"edgebench-recipe-{recipe.name}"), None)
