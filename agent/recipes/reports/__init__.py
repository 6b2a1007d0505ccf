"""One report per seed document, chosen by the recipe's ``[report] kind``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from edgebench.agent.recipes.execute import StepOutcome
from edgebench.agent.recipes.reports.common import RecipeReport
from edgebench.agent.recipes.spec import Recipe
from edgebench.agent.results.schema import ResultDocument


def _builders() -> dict[str, Callable[[RecipeReport, Sequence[ResultDocument]], None]]:
    from edgebench.agent.recipes.reports import lab_benchmark, precision_table, speedups, throughput_cells

    return {
        "throughput-cells": throughput_cells.build,
        "precision-table": precision_table.build,
        "lab-benchmark": lab_benchmark.build,
        "variant-speedups": speedups.build_variants,
        "device-speedup": speedups.build_devices,
    }


def write_report(
    recipe: Recipe, docs: Sequence[ResultDocument], outcomes: Sequence[StepOutcome], out: Path
) -> RecipeReport:
    """Build the recipe's report into ``out`` (tables, figures, results.json, index.html)."""
    report = RecipeReport(recipe, out)
    _builders()[recipe.report](report, docs)
    report.finish(docs, outcomes)
    return report
