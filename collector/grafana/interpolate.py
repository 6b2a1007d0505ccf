"""Grafana's substitution of template variables and InfluxQL macros, for running panel queries outside it.

No Grafana server runs where the dashboards are tested (or where ``grafana check`` runs), so this module
turns a panel's raw InfluxQL into the exact text the InfluxDB data source sends, following Grafana's
InfluxDB plugin (``public/app/plugins/datasource/influxdb/datasource.ts``):

- ``$timeFilter`` -> ``time >= now() - 7d and time <= now()`` for relative ranges, ``time >= 1700000000000ms
  and time <= 1700003600000ms`` for absolute ones (``getTimeFilter``/``getInfluxTime``);
- ``$__interval`` / ``$interval`` -> the range divided by the panel's data points, rounded to Grafana's
  "nice" steps (``rangeutil.roundInterval``), never below the data source's minimum;
- template variables in raw queries are regex-formatted: each value escaped with ``escapeRegex``, several
  values joined as ``(a|b)``, "All" replaced by the variable's ``allValue`` (``.*``) when it has one.
  The dashboards wrap every use in ``/^( ... )$/`` so newer plugin versions that join without the
  parentheses give the same match.

Names follow Grafana's syntax: ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

ALL = "$__all"
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_RELATIVE = re.compile(r"^now-(\d+)([dhms])$")

# rangeutil.roundInterval: (upper bound in ms, interval in ms)
_STEPS_MS = [
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
    (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
    (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
    (2700000, 1800000), (5400000, 3600000), (9000000, 7200000), (16200000, 10800000),
    (32400000, 21600000), (86400000, 43200000), (604800000, 86400000), (1814400000, 604800000),
    (3628800000, 2592000000),
]  # fmt: skip
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def escape_regex(value: str) -> str:
    """@grafana/data ``escapeRegex``: backslash before every regex metacharacter (and ``/``)."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def format_values(values: Sequence[str] | str, variable: Mapping[str, Any]) -> str:
    """The 'regex' format of one variable's current value(s), as raw InfluxQL queries get it."""
    vals = [values] if isinstance(values, str) else list(values)
    if ALL in vals:
        if variable.get("allValue"):
            return str(variable["allValue"])
        vals = [str(o["value"]) for o in variable.get("options", []) if o.get("value") != ALL]
    escaped = [escape_regex(v) for v in vals]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def influx_time(raw: str | int, round_up: bool = False) -> str:
    """``getInfluxTime``: 'now' -> now(), 'now-7d' -> now() - 7d, epoch ms -> '<ms>ms'."""
    if isinstance(raw, int):
        return f"{raw}ms"
    if raw == "now":
        return "now()"
    m = _RELATIVE.match(raw)
    if m:
        return f"now() - {int(m.group(1))}{m.group(2)}"
    raise ValueError(f"unsupported time {raw!r}: use 'now', 'now-<N><d|h|m|s>' or epoch milliseconds")


def time_filter(time_from: str | int, time_to: str | int = "now") -> str:
    return f"time >= {influx_time(time_from)} and time <= {influx_time(time_to, True)}"


def range_ms(time_from: str | int, time_to: str | int, now_ms: int) -> int:
    def to_ms(t: str | int) -> int:
        if isinstance(t, int):
            return t
        if t == "now":
            return now_ms
        m = _RELATIVE.match(t)
        if not m:
            raise ValueError(f"unsupported time {t!r}")
        return now_ms - int(m.group(1)) * _UNITS_MS[m.group(2)]

    return max(1, to_ms(time_to) - to_ms(time_from))


def format_interval(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def interval_ms(span_ms: int, max_data_points: int = 1000, min_ms: int = 1000) -> int:
    """``calculateInterval``: span / data points, rounded to a nice step, at least the minimum."""
    raw = span_ms / max(1, max_data_points)
    for bound, step in _STEPS_MS:
        if raw < bound:
            return max(step, min_ms)
    return max(31_536_000_000, min_ms)


def interpolate(
    query: str,
    variables: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Sequence[str] | str],
    *,
    time_from: str | int = "now-30d",
    time_to: str | int = "now",
    now_ms: int = 0,
    max_data_points: int = 1000,
) -> str:
    """The query text Grafana would send: macros and variables replaced; unknown names are left as they
    are (as Grafana does), so a typo shows up as an InfluxQL error rather than silently matching all."""
    iv = format_interval(interval_ms(range_ms(time_from, time_to, now_ms), max_data_points))
    builtins = {
        "timeFilter": time_filter(time_from, time_to),
        "__interval": iv,
        "interval": iv,
        "__interval_ms": str(interval_ms(range_ms(time_from, time_to, now_ms), max_data_points)),
    }

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        if name in builtins:
            return builtins[name]
        if name in variables and name in current:
            return format_values(current[name], variables[name])
        return m.group(0)

    return _VARIABLE.sub(sub, query)


def variable_names(text: str) -> set[str]:
    """Every ``$name`` / ``${name}`` / ``[[name]]`` referenced in a text (builtins included)."""
    return {m.group(1) or m.group(2) or m.group(4) for m in _VARIABLE.finditer(text)}


def parse_variable_values(response: Mapping[str, Any]) -> list[str]:
    """Grafana's ``ResponseParser.parse`` for variable queries: the second column of each row (tag value
    of SHOW TAG VALUES, value of a SELECT after its time), else the first; unique, in order."""
    out: list[str] = []
    for result in response.get("results", []):
        for series in result.get("series", []) or []:
            for row in series.get("values", []):
                value = row[1] if len(row) > 1 else row[0]
                if value is not None and str(value) not in out:
                    out.append(str(value))
    return out
