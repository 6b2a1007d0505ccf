"""Run every variable, panel and annotation query of the dashboards against an InfluxDB, as Grafana would.

Used by ``edgebench-collector grafana check`` (does my database feed every panel?) and by
tests/test_dashboards.py (proof against real data). Per dashboard: each variable's query is interpolated
with the values chosen so far and run (Grafana's cascade), then every panel target is interpolated
(collector/grafana/interpolate.py) and run, and its answer is checked: non-empty, exactly the columns the
query selects (``time`` first), each column non-null somewhere, every GROUP BY tag on every series, and
for the Compare tables, A and B rows that the merge transformation can join with a computable ratio.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgebench.collector.grafana import interpolate as gi

QueryFn = Callable[[str], Mapping[str, Any]]
"""Runs one InfluxQL statement, returns InfluxDB's JSON answer; raises on HTTP/statement errors."""


@dataclass
class QueryCheck:
    dashboard: str
    panel: str
    ref: str
    sent: str
    series: int = 0
    problems: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """The series InfluxDB returned (name, tags, columns, values)."""
    ran: bool = False
    """InfluxDB answered (with data or without)."""

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} ({self.ref})"


@dataclass
class DashboardCheck:
    uid: str
    variables: dict[str, list[str]] = field(default_factory=dict)
    """Values each variable's own query returned."""
    queries: list[QueryCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Variable-level problems (a variable query that returned nothing or failed)."""


def select_columns(query: str) -> list[str]:
    """Output columns of the outermost SELECT: aliases, bare field names, or the function's name."""
    start = i = len("SELECT ")
    depth, items, quote = 0, [], None
    while i < len(query):
        c = query[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and c == ",":
            items.append(query[start:i])
            start = i + 1
        elif depth == 0 and query.startswith(" FROM ", i):
            items.append(query[start:i])
            break
        i += 1
    out = []
    for item in (x.strip() for x in items):
        m = re.search(r' AS "([^"]+)"$', item)
        if m:
            out.append(m.group(1))
        elif item.startswith('"'):
            out.append(item.strip('"'))
        else:
            out.append(item.split("(", 1)[0])
    return out


def group_tags(query: str) -> list[str]:
    """Tags of the outermost GROUP BY (a subquery's do not reach the result)."""
    outer = query
    while (start := outer.find("(SELECT ")) >= 0:  # cut the subquery: its balanced parentheses
        depth, end = 0, start
        for end in range(start, len(outer)):
            depth += {"(": 1, ")": -1}.get(outer[end], 0)
            if depth == 0:
                break
        outer = outer[:start] + outer[end + 1 :]
    m = re.search(r"GROUP BY (.*?)(?: fill\(| ORDER | LIMIT |$)", outer)
    return re.findall(r'"([^"]+)"', m.group(1)) if m else []


def check_series(query: str, series: list[dict[str, Any]]) -> list[str]:
    if not series:
        return ["no data"]
    cols = ["time", *select_columns(query)]
    out = []
    for s in series:
        if s["columns"] != cols:
            out.append(f"columns {s['columns']} != {cols}")
        missing = set(group_tags(query)) - set(s.get("tags", {}))
        if missing:
            out.append(f"series lacks GROUP BY tag(s) {sorted(missing)}")
    for i, col in enumerate(cols[1:], start=1):
        if not any(i < len(row) and row[i] is not None for s in series for row in s["values"]):
            out.append(f"column {col} is null everywhere")
    return out


def check_ratio(
    panel: Mapping[str, Any], frames: list[tuple[Mapping[str, Any], list[dict[str, Any]]]]
) -> list[str]:
    """A merge + calculateField(binary) table: both queries must share their GROUP BY keys (the merge
    joins on them) and the ratio's operands must be the two value columns, giving positive ratios."""
    calc = next((t for t in panel.get("transformations", []) if t["id"] == "calculateField"), None)
    if calc is None or len(frames) != 2 or not all(s for _, s in frames):
        return []
    (ta, sa), (tb, sb) = frames

    def rows(series: list[dict[str, Any]]) -> dict[tuple[str, ...], Any]:
        return {tuple(sorted(s.get("tags", {}).items())): s["values"][0][1] for s in series}

    a, b = rows(sa), rows(sb)
    common = set(a) & set(b)
    if not common:
        return [f"A {sorted(a)} and B {sorted(b)} share no row to merge"]
    binary = calc["options"]["binary"]
    names = [select_columns(ta["query"])[0], select_columns(tb["query"])[0]]
    if {binary["left"], binary["right"]} != set(names):
        return [f"ratio uses {binary['left']}/{binary['right']}, the columns are {names}"]
    left, right = (a, b) if binary["left"] == names[0] else (b, a)
    return [
        f"no positive ratio for {k}"
        for k in sorted(common)
        if not (left[k] and right[k] and left[k] / right[k] > 0)
    ]


def verify_dashboard(
    dash: Mapping[str, Any],
    run: QueryFn,
    *,
    time_from: str | int = "now-30d",
    time_to: str | int = "now",
    now_ms: int = 0,
    explicit: bool = False,
    choose: Mapping[str, str] | None = None,
) -> DashboardCheck:
    """Check one dashboard. Multi-valued variables get "All" (or, with ``explicit``, every value they
    returned, listed: the ``(a|b)`` path); single-valued ones ``choose[name]`` or their first value."""
    result = DashboardCheck(dash["uid"])
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    current: dict[str, Any] = {}
    span = {"time_from": time_from, "time_to": time_to, "now_ms": now_ms}
    for name, v in variables.items():
        q = gi.interpolate(v["query"], variables, current, **span)
        try:
            values = gi.parse_variable_values(run(q))
        except Exception as exc:  # an InfluxQL or HTTP error: report, keep checking the rest
            result.problems.append(f"variable {name}: {exc}")
            values = []
        result.variables[name] = values
        if not values:
            result.problems.append(f"variable {name}: no values ({q})")
        if v.get("multi"):
            current[name] = values if explicit and values else [gi.ALL]
        else:
            want = (choose or {}).get(name)
            if want is not None and want not in values:
                result.problems.append(f"variable {name}: {want!r} not among {values}")
            current[name] = want or (values[0] if values else "")
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        frames = []
        for t in panel["targets"]:
            sent = gi.interpolate(t["query"], variables, current, **span)
            check = _run_check(QueryCheck(dash["uid"], panel["title"], t["refId"], sent), t["query"], run)
            result.queries.append(check)
            if check.ran:
                frames.append((t, check.data))
        if len(frames) == len(panel["targets"]):
            result.queries[-1].problems += check_ratio(panel, frames)
    for annotation in dash.get("annotations", {}).get("list", []):
        sent = gi.interpolate(annotation["query"], variables, current, **span)
        name = f"annotation {annotation['name']}"
        check = _run_check(QueryCheck(dash["uid"], name, "-", sent), annotation["query"], run)
        result.queries.append(check)
        if check.data:  # the columns Grafana takes the annotation's text and tags from
            columns = {annotation.get("textColumn"), annotation.get("tagsColumn")} - {None, ""}
            have = {c for s in check.data for c in s["columns"]}
            check.problems += [f"no column {c} for the annotation" for c in sorted(columns - have)]
    return result


def _run_check(check: QueryCheck, query: str, run: QueryFn) -> QueryCheck:
    """Send ``check.sent`` (the interpolated ``query``) and record InfluxDB's answer and its problems."""
    if "$" in check.sent.replace("$/", ""):
        check.problems.append("unsubstituted variable")
        return check
    try:
        series = run(check.sent)["results"][0].get("series", []) or []
    except Exception as exc:  # an InfluxQL or HTTP error: report, keep checking the rest
        check.problems.append(f"query failed: {exc}")
        return check
    check.ran, check.series, check.data = True, len(series), series
    check.problems += check_series(query, series)
    return check


def query_count(dash: Mapping[str, Any]) -> int:
    """Queries :func:`verify_dashboard` runs besides the variables': every panel target and annotation."""
    targets = sum(len(p["targets"]) for p in dash["panels"] if p["type"] != "row")
    return targets + len(dash.get("annotations", {}).get("list", []))
