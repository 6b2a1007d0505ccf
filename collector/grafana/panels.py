"""Small builders for Grafana dashboard JSON (plain dicts), shared by every edgebench dashboard.

Why plain Python rather than a dashboard SDK: grafanalib (0.7) lags Grafana's panel model by years (no
XY chart, no bar-gauge sorting options, old datasource references) and the grafana-foundation-sdk is not
published on PyPI. The JSON model itself is documented and stable, so a few dozen lines of helpers give
reviewable dashboards-as-code with no extra dependency: `edgebench-collector grafana build` renders them.

Conventions every helper enforces (the structural test checks them):
- one datasource, referenced by uid (``DATASOURCE``), on every panel and every target;
- every tag filter is a regex match ``"tag" =~ /^($var)$/``: Grafana regex-escapes template values in raw
  InfluxQL, joins multi-values with ``|`` (with or without surrounding parentheses depending on the
  version), and "All" becomes ``.*``; the explicit group keeps ``^`` and ``$`` anchoring every alternative.
"""

from __future__ import annotations

from typing import Any

DATASOURCE_UID = "edgebench-influxdb"
DATASOURCE_NAME = "edgebench InfluxDB"
DATASOURCE: dict[str, str] = {"type": "influxdb", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39  # Grafana 10.4/11.x dashboard schema

Panel = dict[str, Any]


# --------------------------------------------------------------------------------------- InfluxQL pieces
def regex_filter(tag: str, var: str | None = None) -> str:
    """``"tag" =~ /^($var)$/`` (see the module docstring for why the group)."""
    return f'"{tag}" =~ /^(${var or tag})$/'


def where(*tags: str | tuple[str, str], extra: tuple[str, ...] = (), time: bool = True) -> str:
    """WHERE clause: one regex filter per template variable (a name, or a (tag, variable) pair), fixed
    conditions, then ``$timeFilter``."""
    parts = [regex_filter(t) if isinstance(t, str) else regex_filter(*t) for t in tags] + list(extra)
    if time:
        parts.append("$timeFilter")
    return "WHERE " + " AND ".join(parts)


def group_by(*tags: str, interval: bool = False, fill: str | None = None) -> str:
    keys = (["time($__interval)"] if interval else []) + [f'"{t}"' for t in tags]
    out = "GROUP BY " + ", ".join(keys) if keys else ""
    return f"{out} fill({fill})" if fill else out


def target(query: str, ref: str = "A", *, fmt: str = "table", alias: str | None = None) -> dict[str, Any]:
    """A raw InfluxQL target (``rawQuery``), ``fmt`` = ``table`` or ``time_series``."""
    t: dict[str, Any] = {
        "datasource": DATASOURCE,
        "refId": ref,
        "rawQuery": True,
        "query": " ".join(query.split()),
        "resultFormat": fmt,
    }
    if alias:
        t["alias"] = alias
    return t


# --------------------------------------------------------------------------------------- variables
def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool = True,
    refresh: int = 1,
) -> dict[str, Any]:
    """A query variable. Multi-valued ones include "All" (= ``.*``: one cheap regex instead of a long
    alternation); single-valued ones (Compare's A/B pickers) start on the first value."""
    v: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": refresh,  # 1 = on dashboard load, 2 = on time range change
        "multi": multi,
        "includeAll": multi,
        "sort": 1,
        "regex": "",
        "hide": 0,
        "options": [],
    }
    if multi:
        v["allValue"] = ".*"
        v["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    else:
        v["current"] = {}
    return v


def tag_variable(
    name: str,
    label: str,
    measurement: str,
    *,
    key: str | None = None,
    depends_on: tuple[str | tuple[str, str], ...] = (),
    multi: bool = True,
) -> dict[str, Any]:
    """``SHOW TAG VALUES`` of one tag (``key``, default ``name``), narrowed by the variables chosen before
    it (cascading pickers). ``depends_on`` items are variable names equal to their tag, or (tag, var)."""
    q = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key or name}"'
    conds = [regex_filter(d) if isinstance(d, str) else regex_filter(*d) for d in depends_on]
    if conds:
        q += " WHERE " + " AND ".join(conds)
    return query_variable(name, label, q, multi=multi)


# --------------------------------------------------------------------------------------- panels
def _base(kind: str, title: str, targets: list[dict[str, Any]], description: str, w: int, h: int) -> Panel:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "gridPos": {"x": 0, "y": 0, "w": w, "h": h},
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }


def _hide_time() -> dict[str, Any]:
    """InfluxQL tables carry a ``Time`` column (the last point's time, or the range start): hide it."""
    return {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {}}}


def table(
    title: str,
    targets: list[dict[str, Any]],
    *,
    description: str = "",
    sort_by: str | None = None,
    desc: bool = False,
    unit: str | None = None,
    hide_time: bool = True,
    w: int = 24,
    h: int = 9,
    units: dict[str, str] | None = None,
    transformations: list[dict[str, Any]] | None = None,
    thresholds: dict[str, list[tuple[float, str]]] | None = None,
    links: list[dict[str, str]] | None = None,
    hidden: tuple[str, ...] = (),
) -> Panel:
    """``thresholds``: field -> [(from value, colour)] colouring that column's text (green below the
    first); ``links``: data links on every cell (``${__data.fields.NAME}`` is the row's NAME, hidden
    columns included); ``hidden``: columns queried for the links only."""
    p = _base("table", title, targets, description, w, h)
    tf = list(transformations or [])
    if hide_time:
        tf.insert(0, _hide_time())
    if sort_by:
        tf.append({"id": "sortBy", "options": {"sort": [{"field": sort_by, "desc": desc}]}})
    p["transformations"] = tf
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    for field, u in (units or {}).items():
        p["fieldConfig"]["overrides"].append(
            {"matcher": {"id": "byName", "options": field}, "properties": [{"id": "unit", "value": u}]}
        )
    for field, steps in (thresholds or {}).items():
        p["fieldConfig"]["overrides"].append(
            {
                "matcher": {"id": "byName", "options": field},
                "properties": [
                    {
                        "id": "thresholds",
                        "value": {
                            "mode": "absolute",
                            "steps": [{"color": "green", "value": None}]
                            + [{"color": color, "value": value} for value, color in steps],
                        },
                    },
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ],
            }
        )
    for field in hidden:
        p["fieldConfig"]["overrides"].append(
            {
                "matcher": {"id": "byName", "options": field},
                "properties": [{"id": "custom.hidden", "value": True}],
            }
        )
    if links:
        p["fieldConfig"]["defaults"]["links"] = links
    p["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    return p


def bar_gauge(
    title: str,
    query: str,
    value_field: str,
    *,
    unit: str,
    desc: bool = False,
    description: str = "",
    w: int = 12,
    h: int = 9,
) -> Panel:
    """One bar per row of a table query, sorted best first (``desc`` for higher-is-better metrics).
    ``reduceOptions.values`` shows every row; the bar's name is built from the row's tag columns."""
    p = _base("bargauge", title, [target(query)], description, w, h)
    p["transformations"] = [
        _hide_time(),
        {"id": "sortBy", "options": {"sort": [{"field": value_field, "desc": desc}]}},
    ]
    p["fieldConfig"]["defaults"] = {"unit": unit, "min": 0, "color": {"mode": "continuous-GrYlRd"}}
    if desc:  # higher is better: reverse the colour scale
        p["fieldConfig"]["defaults"]["color"] = {"mode": "continuous-RdYlGr"}
    p["options"] = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "left",
        "reduceOptions": {"values": True, "calcs": [], "fields": f"/^{value_field}$/", "limit": 200},
    }
    return p


def timeseries(
    title: str,
    targets: list[dict[str, Any]],
    *,
    unit: str,
    description: str = "",
    w: int = 12,
    h: int = 8,
    points: bool = True,
) -> Panel:
    p = _base("timeseries", title, targets, description, w, h)
    p["fieldConfig"]["defaults"] = {
        "unit": unit,
        "custom": {"drawStyle": "line", "showPoints": "always" if points else "never", "spanNulls": True},
    }
    p["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]}}
    return p


def histogram(
    title: str, targets: list[dict[str, Any]], *, unit: str, description: str = "", w: int = 12
) -> Panel:
    p = _base("histogram", title, targets, description, w, 9)
    p["fieldConfig"]["defaults"] = {"unit": unit}
    p["options"] = {"combine": False, "legend": {"displayMode": "list", "placement": "bottom"}}
    return p


def xy_chart(
    title: str, query: str, x: str, y: str, *, x_unit: str, y_unit: str, description: str = ""
) -> Panel:
    """Scatter of one row per configuration (Grafana 10+ XY chart, manual series mapping)."""
    p = _base("xychart", title, [target(query)], description, 12, 10)
    p["transformations"] = [_hide_time()]
    p["fieldConfig"]["defaults"] = {"custom": {"show": "points", "pointSize": {"fixed": 9}}}
    p["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": x}, "properties": [{"id": "unit", "value": x_unit}]},
        {"matcher": {"id": "byName", "options": y}, "properties": [{"id": "unit", "value": y_unit}]},
    ]
    p["options"] = {
        "seriesMapping": "manual",
        "series": [{"name": f"{y} vs {x}", "x": x, "y": y}],
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi"},
    }
    return p


def stat(
    title: str,
    query: str,
    *,
    unit: str = "none",
    description: str = "",
    w: int = 6,
    h: int = 5,
    thresholds: list[tuple[float, str]] | None = None,
) -> Panel:
    """One number; ``thresholds`` = [(from value, colour)] over green (e.g. offline agents: red from 1)."""
    p = _base("stat", title, [target(query)], description, w, h)
    p["fieldConfig"]["defaults"] = {"unit": unit}
    if thresholds:
        p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
        p["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in thresholds],
        }
    p["options"] = {
        "reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""},
        "colorMode": "value",
    }
    return p


def state_timeline(title: str, targets: list[dict[str, Any]], *, description: str = "") -> Panel:
    p = _base("state-timeline", title, targets, description, 24, 7)
    p["fieldConfig"]["defaults"] = {
        "mappings": [
            {
                "type": "value",
                "options": {
                    "0": {"text": "offline", "color": "red"},
                    "1": {"text": "online", "color": "green"},
                },
            }
        ],
        "color": {"mode": "thresholds"},
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
        },
    }
    p["options"] = {"showValue": "never", "mergeValues": True}
    return p


def row(title: str) -> Panel:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
    }


# --------------------------------------------------------------------------------------- dashboard
def layout(panels: list[Panel]) -> list[Panel]:
    """Assign ids (1, 2, …) and flow panels left to right, top to bottom on Grafana's 24-column grid."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        g = p["gridPos"]
        if x + g["w"] > 24 or p["type"] == "row":
            x, y = 0, y + row_h
            row_h = 0
        g["x"], g["y"] = x, y
        x += g["w"]
        row_h = max(row_h, g["h"])
        if p["type"] == "row":
            x, y, row_h = 0, y + g["h"], 0
    return panels


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[dict[str, Any]],
    panels: list[Panel],
    *,
    time_from: str = "now-30d",
    tags: tuple[str, ...] = ("edgebench",),
    refresh: str = "",
    annotations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": list(tags),
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "refresh": refresh,
        "templating": {"list": variables},
        "annotations": {"list": annotations or []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["edgebench"],
                "asDropdown": True,
                "title": "edgebench",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": layout(panels),
    }
