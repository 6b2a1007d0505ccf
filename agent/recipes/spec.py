"""A recipe file: one seed benchmark as a plain TOML file a user can copy and edit.

A recipe is a list of named **steps**; each step is one ``edgebench-agent run`` (the same option names,
``-`` or ``_``), so everything a recipe does can also be typed by hand. Options are layered, last wins::

    run's defaults < [run] < the step < [quick] (--quick) < --set KEY=VALUE < --set STEP.KEY=VALUE

Three keys of a step are the recipe's own: ``label`` (the step's name: it is recorded in every result
as ``config.label`` and is what the report calls the setup), ``only_on`` (device kinds — cpu, cuda, mps —
on which the step makes sense; elsewhere it is skipped with a note, e.g. AMP without a GPU) and
``quick`` (options only --quick applies, after the global [quick]: e.g. a smaller size of that step's
model). ``device = "available"`` expands to every device kind present (seed 004 compares them all).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgebench.agent.errors import EdgebenchError

REPORT_KINDS = ("throughput-cells", "precision-table", "lab-benchmark", "variant-speedups", "device-speedup")
DEVICE_KINDS = ("cpu", "cuda", "mps")
STEP_KEYS = ("label", "only_on", "quick")
# RunRequest fields a recipe may not set: the recipe sets them itself, or `recipe run` has the option.
_NOT_STEP_OPTIONS = {"label", "recipe", "campaign", "store", "publish", "publish_timeout"}


@dataclass(frozen=True)
class Step:
    label: str
    options: dict[str, Any]
    """Complete ``run`` options (every flat RunSpec option, ``agent/runspec.py``) after layering."""
    only_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    seed: str
    """Which seed document it reproduces, and how its setups map onto edgebench's."""
    description: str
    report: str
    """One of :data:`REPORT_KINDS`."""
    baseline: str | None
    """The step label every speedup is relative to (None: the report's own choice, e.g. device=cpu)."""
    steps: list[Step]
    path: Path
    quick: bool
    report_options: dict[str, Any] = field(default_factory=dict)


def builtin_dir() -> Path:
    """The folder of the recipes that ship with edgebench (one per seed document)."""
    return Path(str(resources.files("edgebench.agent.recipes") / "builtin"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def locate(name_or_path: str) -> Path:
    """A built-in recipe name (``optimum-whisper``) or the path of a recipe file (a copy being edited)."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise EdgebenchError(f"recipe file {path}: no such file")
        return path
    builtin = builtin_dir() / f"{name_or_path}.toml"
    if builtin.is_file():
        return builtin
    names = builtin_names()
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise EdgebenchError(
        f"unknown recipe '{name_or_path}'{hint}: built-in recipes are {', '.join(names)}, "
        "or give a .toml file"
    )


def run_defaults() -> dict[str, Any]:
    """Every ``run`` option with its default (the RunSpec's own, which ``run`` also uses)."""
    from edgebench.agent.runspec import option_defaults

    return option_defaults()


def _run_fields() -> dict[str, str]:
    """Run option -> its annotation text as the command line writes it ('str', 'int | None', …)."""
    from edgebench.agent.runspec import OPTIONS

    return {name: opt.annotation for name, opt in OPTIONS.items()}


def _convert(where: str, key: str, value: Any, kind: str) -> Any:
    """A TOML value (or a --set string) as the run option wants it: comma lists for the sweep axes
    (``[1, 8]`` -> ``"1,8"``), numbers and booleans checked."""
    optional = kind.endswith("| None")
    base = kind.removesuffix(" | None").strip()
    if value is None or (optional and value == "none"):
        if optional:
            return None
        raise EdgebenchError(f"{where}: '{key}' cannot be empty")
    if base == "str":
        if isinstance(value, list):
            if not value:
                raise EdgebenchError(f"{where}: '{key}' is an empty list")
            return ",".join(_scalar_text(v) for v in value)
        return _scalar_text(value)
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise EdgebenchError(f"{where}: '{key}' must be true or false (got {value!r})")
    if base in ("int", "float"):
        if isinstance(value, bool):
            raise EdgebenchError(f"{where}: '{key}' must be a number (got {value!r})")
        try:
            return int(value) if base == "int" else float(value)
        except (TypeError, ValueError):
            raise EdgebenchError(
                f"{where}: '{key}' must be {'an integer' if base == 'int' else 'a number'} (got {value!r})"
            ) from None
    raise AssertionError(f"unhandled run option type {kind}")  # a new field type needs a case here


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _options(where: str, table: dict[str, Any], fields: dict[str, str], recipe_keys: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """Check and convert one table of run options (keys may use '-' like the command line)."""
    out: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key in recipe_keys:
            continue
        if key not in fields or key in _NOT_STEP_OPTIONS:
            allowed = sorted(k for k in fields if k not in _NOT_STEP_OPTIONS)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else " (see `edgebench-agent run --help`)"
            raise EdgebenchError(f"{where}: unknown option '{raw_key}'{hint}")
        out[key] = _convert(where, raw_key, value, fields[key])
    return out


def parse_sets(items: list[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``--set KEY=VALUE`` (every step) and ``--set STEP.KEY=VALUE`` (one step), as typed."""
    everywhere: dict[str, str] = {}
    per_step: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise EdgebenchError(
                f"--set '{item}': expected KEY=VALUE or STEP.KEY=VALUE (e.g. batch-size=1,8)"
            )
        step, dot, option = key.rpartition(".")
        if dot:
            per_step.setdefault(step, {})[option] = value.strip()
        else:
            everywhere[key] = value.strip()
    return everywhere, per_step


def load_recipe(name_or_path: str, quick: bool = False, sets: list[str] | None = None) -> Recipe:
    """Read, validate and layer a recipe; every mistake is one line naming the file and the key."""
    path = locate(name_or_path)
    where = f"recipe {path.name}"
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgebenchError(f"{where}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise EdgebenchError(f"{where}: not valid TOML ({exc})") from None
    known = {"name", "title", "seed", "description", "report", "run", "quick", "step"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise EdgebenchError(f"{where}: unknown key '{unknown[0]}' (a recipe has {', '.join(sorted(known))})")
    report = data.get("report") or {}
    if not isinstance(report, dict) or report.get("kind") not in REPORT_KINDS:
        raise EdgebenchError(f"{where}: [report] kind must be one of {', '.join(REPORT_KINDS)}")
    steps_data = data.get("step") or []
    if not isinstance(steps_data, list) or not steps_data:
        raise EdgebenchError(f"{where}: no [[step]] (a recipe runs at least one step)")

    fields = _run_fields()
    defaults = {k: v for k, v in run_defaults().items() if k not in _NOT_STEP_OPTIONS}
    layers = [defaults, _options(f"{where} [run]", data.get("run") or {}, fields)]
    quick_layer = _options(f"{where} [quick]", data.get("quick") or {}, fields) if quick else {}
    everywhere, per_step = parse_sets(sets or [])
    set_layer = _options("--set", everywhere, fields)

    steps: list[Step] = []
    for i, table in enumerate(steps_data, 1):
        if not isinstance(table, dict):
            raise EdgebenchError(f"{where}: step {i} is not a table")
        label = table.get("label")
        if not isinstance(label, str) or not label.strip():
            raise EdgebenchError(f'{where}: step {i} has no label (label = "baseline")')
        if label in (s.label for s in steps):
            raise EdgebenchError(f"{where}: two steps are labelled '{label}'")
        only_on = table.get("only_on", [])
        only_on = [only_on] if isinstance(only_on, str) else only_on
        bad = [d for d in only_on if d not in DEVICE_KINDS]
        if bad:
            raise EdgebenchError(f"{where}: step '{label}': only_on '{bad[0]}' is not one of cpu, cuda, mps")
        options: dict[str, Any] = {}
        for layer in layers:
            options.update(layer)
        options.update(_options(f"{where} step '{label}'", table, fields, STEP_KEYS))
        options.update(quick_layer)
        step_quick = table.get("quick") or {}
        if not isinstance(step_quick, dict):
            raise EdgebenchError(
                f"{where}: step '{label}': quick must be a table (quick = {{ model = ... }})"
            )
        step_quick = _options(f"{where} step '{label}' quick", step_quick, fields)  # checked even unused
        if quick:
            options.update(step_quick)
        options.update(set_layer)
        options.update(_options(f"--set {label}.", per_step.pop(label, {}), fields))
        if not options.get("model"):
            raise EdgebenchError(f"{where}: step '{label}' has no model (set model in [run] or the step)")
        options.update(label=label, recipe=str(data.get("name") or path.stem))
        steps.append(Step(label, options, tuple(only_on)))
    if per_step:
        raise EdgebenchError(
            f"--set {next(iter(per_step))}.…: no step is labelled '{next(iter(per_step))}' "
            f"(steps: {', '.join(s.label for s in steps)})"
        )
    baseline = report.get("baseline")
    if baseline is not None and baseline not in (s.label for s in steps):
        raise EdgebenchError(f"{where}: [report] baseline '{baseline}' is not a step label")
    return Recipe(
        name=str(data.get("name") or path.stem),
        title=str(data.get("title") or path.stem),
        seed=str(data.get("seed") or ""),
        description=str(data.get("description") or "").strip(),
        report=report["kind"],
        baseline=baseline,
        steps=steps,
        path=path,
        quick=quick,
        report_options={k: v for k, v in report.items() if k not in ("kind", "baseline")},
    )
