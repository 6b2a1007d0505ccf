"""What every recipe report shares: a folder of SVG tables and PNG + SVG figures, the result documents,
and an index.html that also lists the recipe's steps (what ran, what was skipped and why).

Tables are rich tables (printed on the terminal too, as the seed documents show them) saved with rich's
SVG exporter; figures are :class:`~edgebench.agent.report.plots.Plot` objects, so the report and the
recipes draw with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebench.agent.recipes.execute import StepOutcome
from edgebench.agent.recipes.spec import Recipe
from edgebench.agent.report.build import prepare_folder, save_plot, save_svg
from edgebench.agent.report.html import Entry, write_index
from edgebench.agent.report.metrics import fmt_axis
from edgebench.agent.report.plots import Plot, figure_class
from edgebench.agent.results.schema import ResultDocument


@dataclass
class RecipeReport:
    """Collects a report's pieces as they are written; :meth:`finish` writes the index."""

    recipe: Recipe
    out: Path
    files: list[Path] = field(default_factory=list)
    tables: list[Entry] = field(default_factory=list)
    figures: list[Entry] = field(default_factory=list)
    not_drawn: list[tuple[str, str]] = field(default_factory=list)
    console: list[Any] = field(default_factory=list)
    """Renderables to print on the terminal after the run (the report's main tables)."""
    headlines: list[str] = field(default_factory=list)
    """One-line findings (speedups, the fastest setup), printed and put on the index page."""

    def __post_init__(self) -> None:
        figure_class()  # the missing 'report' extra is reported before anything is written
        prepare_folder(self.out)

    def _path(self, relative: str) -> Path:
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def table(
        self, relative: str, title: str, caption: str, renderables: list[Any], show: bool = True
    ) -> None:
        """Save rich renderables as ``relative`` (an .svg path inside the report)."""
        path = self._path(relative)
        save_svg(renderables, path, f"{self.recipe.name}: {title}")
        self.files.append(path)
        self.tables.append(Entry(title, caption, [relative]))
        if show:
            self.console += renderables

    def plot(self, plot: Plot, stem: str | None = None) -> None:
        """Save a figure as ``stem``.svg/.png (``stem`` may contain a sub-folder), or note why not."""
        if plot.figure is None:
            self.not_drawn.append((plot.title, plot.skipped or "no data"))
            return
        relative = stem or plot.name
        paths = save_plot(plot, self._path(relative).parent, Path(relative).name)
        self.files += paths
        prefix = str(Path(relative).parent)
        names = [p.name if prefix == "." else f"{prefix}/{p.name}" for p in paths]
        self.figures.append(Entry(plot.title, plot.caption, names))

    def finish(self, docs: Sequence[ResultDocument], outcomes: Sequence[StepOutcome]) -> Path:
        """Write results.json and index.html; return the index."""
        from edgebench.agent.results.store import to_json

        data = self.out / "results.json"
        data.write_text(to_json(list(docs)), encoding="utf-8")
        self.files.append(data)
        hosts = sorted({d.host for d in docs})
        meta = [
            f"recipe {self.recipe.name} ({self.recipe.path})" + (" — quick run" if self.recipe.quick else ""),
            f"seed: {self.recipe.seed}" if self.recipe.seed else "",
            f"{len(docs)} results on {len(hosts)} host(s): {', '.join(hosts)}",
            *self.headlines,
        ]
        steps = [step_line(o) for o in outcomes]
        commands = [o.command for o in outcomes if o.status != "skipped"]
        index = write_index(
            self.out,
            self.recipe.title,
            [m for m in meta if m],
            self.tables,
            self.figures,
            self.not_drawn,
            data.name,
            sections=[("Steps", steps), ("Commands (each step as a plain run)", commands)],
        )
        self.files.append(index)
        return index


def step_line(o: StepOutcome) -> str:
    if o.status == "done":
        return f"{o.step.label}: {len(o.docs)} results in {o.seconds:.0f} s"
    return f"{o.step.label}: {o.status} — {o.reason}"


def cell_name(*parts: object) -> str:
    """A folder name like seed 000's ``cpu_1_10`` (device, batch, tokens); safe on every filesystem."""
    text = "_".join(fmt_axis(p) for p in parts if p is not None)
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)


def by_label(docs: Sequence[ResultDocument], recipe: Recipe) -> list[str]:
    """Step labels present in ``docs``, in the recipe's order (unknown labels last, sorted)."""
    order = [s.label for s in recipe.steps]
    present = {d.config.label or "" for d in docs}
    return [x for x in order if x in present] + sorted(present - set(order))
