"""The seven edgebench dashboards, as code (schema: docs/influxdb-schema.md; guide: docs/dashboards.md).

``build_all()`` returns them as dicts; ``edgebench-collector grafana build`` writes them to
``deploy/grafana/dashboards/*.json`` (committed, so reviews see both the code and the JSON diff), and
``edgebench-collector grafana push`` uploads them. Every panel query is raw InfluxQL so it runs unchanged on
InfluxDB 1.x, on 2.x through a DBRP mapping, and on 3.x; tests/test_dashboards.py runs each of them
against a real InfluxDB filled by the real collector from real agent runs.
"""

from __future__ import annotations

from typing import Any

from edgebench.agent.trackers.interference import BUSY_CORES
from edgebench.collector.grafana.panels import (
    DATASOURCE,
    bar_gauge,
    dashboard,
    group_by,
    histogram,
    query_variable,
    regex_filter,
    row,
    stat,
    state_timeline,
    table,
    tag_variable,
    target,
    timeseries,
    where,
    xy_chart,
)

FILTERS = ("fleet", "device_class", "host", "model", "runtime", "precision")
"""The template variables of every fleet dashboard, in cascade order (each narrows the next)."""
CONFIG = ("host", "model", "runtime", "precision", "emulated")
"""One configuration = one row of the overview: host x model x runtime x precision. ``emulated`` ("true"
on results measured under qemu, absent on real devices) is grouped by too, so an emulated device's figures
show as such in every table and are never merged with a real device's."""
WORKLOAD = (
    "batch_size",
    "input_seconds",
    "new_tokens",
    "ctc_weight",
    "torch_mode",
    "ort_opt_level",
    "ggml_type",
    "language",
    "task",
    "stream_policy",
    "chunk_seconds",
    "stream_speed",
    "label",
)
"""Tags a sweep varies within one configuration (absent where a scenario has no such axis)."""
_LINKED = ("host", "model", "runtime", "precision", "scenario")
RUN_DETAIL_LINK = {
    "title": "Run detail of this configuration",
    "url": "/d/edgebench-run-detail?${__url_time_range}"
    + "".join(f"&var-{t}=${{__data.fields.{t}}}" for t in (*_LINKED, "run_id")),
}
"""A row of an overview table opens Run detail narrowed to that row's configuration, its run and the
time range."""
SERIES_ALIAS = "$tag_host · $tag_model · $tag_runtime · $tag_precision"
STREAMED = "\"scenario\" = 'stream'"


def filter_variables(
    measurement: str = "inference", names: tuple[str, ...] = FILTERS
) -> list[dict[str, Any]]:
    labels = {
        "fleet": "Fleet",
        "device_class": "Device class",
        "host": "Host",
        "model": "Model",
        "runtime": "Runtime",
        "precision": "Precision",
    }
    return [tag_variable(n, labels[n], measurement, depends_on=names[:i]) for i, n in enumerate(names)]


def _last(*fields: str) -> str:
    return ", ".join(f'last("{f}") AS "{alias}"' for f, alias in (_split(x) for x in fields))


def _split(field: str) -> tuple[str, str]:
    name, _, alias = field.partition(" AS ")
    return name, alias or name


# ------------------------------------------------------------------------------------------ fleet overview
def fleet_overview() -> dict[str, Any]:
    def gauge(
        title: str,
        field: str,
        unit: str,
        scenario: str | None,
        *,
        desc: bool = False,
        agg: str = "last",
        alias: str | None = None,
        extra_group: tuple[str, ...] = (),
        description: str = "",
    ) -> dict:
        alias = alias or field
        cond = (f"\"scenario\" = '{scenario}'",) if scenario else ()
        q = (
            f'SELECT {agg}("{field}") AS "{alias}" FROM "inference" {where(*FILTERS, extra=cond)} '
            f"{group_by(*CONFIG, *extra_group)}"
        )
        return bar_gauge(title, q, alias, unit=unit, desc=desc, description=description)

    columns = _last(
        "latency_p50_s AS p50_s",
        "latency_p90_s AS p90_s",
        "tokens_per_s",
        "rtf",
        "energy_joules_per_iteration AS joules_per_iteration",
        "energy_average_w AS average_w",
        "model_share_bytes",
        "peak_rss_bytes",
        "wer",
        "other_cores",
        "run_id",
    )
    # Every axis a sweep varies is a row of its own: last() over a sweep would show whichever came last.
    latest = f'SELECT {columns} FROM "inference" {where(*FILTERS)} {group_by(*CONFIG, "scenario", *WORKLOAD)}'
    panels = [
        table(
            "Latest result per configuration and scenario",
            [target(latest)],
            description="Most recent measurement of each host x model x runtime x precision x scenario "
            "x swept axis (batch, input seconds, new tokens, CTC weight, torch mode, ORT level, label) in "
            "the time range. Empty cells: the scenario does not produce that metric (e.g. WER only for "
            "trained models in transcribe) or no power source was available. emulated = true: measured "
            "under CPU emulation (qemu), not the device's speed. other_cores: how many cores other "
            "processes kept busy while it was measured — orange from 0.25, where the result is marked "
            "busy (its figures may be slow and noisy). A row opens Run detail for its run.",
            sort_by="p50_s",
            h=10,
            thresholds={
                "rtf": [(1.0, "red")],  # slower than real time: cannot keep up with live audio
                "other_cores": [(BUSY_CORES, "orange")],  # where a result is marked busy
            },
            links=[RUN_DETAIL_LINK],
            hidden=("run_id",),
            units={
                "p50_s": "s",
                "p90_s": "s",
                "tokens_per_s": "none",
                "rtf": "none",
                "joules_per_iteration": "joule",
                "average_w": "watt",
                "model_share_bytes": "bytes",
                "peak_rss_bytes": "bytes",
                "wer": "percentunit",
                "other_cores": "none",
            },
        ),
        row("Speed (best first)"),
        gauge(
            "Forward latency p50",
            "latency_p50_s",
            "s",
            "forward",
            alias="p50_s",
            extra_group=("batch_size",),
            description="Median latency of one forward pass (lower is better), per batch size.",
        ),
        gauge(
            "Forward latency p90",
            "latency_p90_s",
            "s",
            "forward",
            alias="p90_s",
            extra_group=("batch_size",),
            description="90th percentile latency of one forward pass: the tail a user feels.",
        ),
        gauge(
            "Generate throughput (tokens/s)",
            "tokens_per_s",
            "none",
            "generate",
            desc=True,
            extra_group=("new_tokens",),
            description="Generated tokens per second (higher is better).",
        ),
        gauge(
            "Transcribe real-time factor",
            "rtf",
            "none",
            "transcribe",
            description="Processing time / audio duration (below 1 = faster than real time).",
        ),
        row("Cost and accuracy (best first)"),
        gauge(
            "Energy per utterance (transcribe)",
            "energy_joules_per_iteration",
            "joule",
            "transcribe",
            alias="joules_per_utterance",
            description="Joules per transcribed utterance over the measured window (lower is better).",
        ),
        gauge(
            "Average power during measurement",
            "energy_average_w",
            "watt",
            None,
            alias="average_w",
            extra_group=("scenario",),
            description="Mean watts over the measured window, per scenario.",
        ),
        gauge(
            "Model's memory share",
            "model_share_bytes",
            "bytes",
            None,
            agg="max",
            description="Peak RSS minus the RSS before the model loaded (the harness and its imports): "
            "what running the model cost. Compare runtimes and precisions by this.",
        ),
        gauge(
            "Peak memory (RSS)",
            "peak_rss_bytes",
            "bytes",
            None,
            agg="max",
            description="Largest peak resident set size over all scenarios of a configuration: the whole "
            "agent process, harness included.",
        ),
        gauge(
            "Word error rate (transcribe)",
            "wer",
            "percentunit",
            "transcribe",
            description="WER on the dataset, only for trained models (lower is better).",
        ),
    ]
    return dashboard(
        "edgebench-fleet-overview",
        "edgebench · Fleet overview",
        "Which device / model / runtime / precision is fastest, cheapest in joules and most accurate.",
        filter_variables(),
        panels,
    )


# ------------------------------------------------------------------------------------------ compare
COMPARE_METRICS = (
    # field, alias, unit, scenario, True when lower is better (speedup = A / B) else B / A
    ("latency_p50_s", "p50_s", "s", None, True),
    ("tokens_per_s", "tokens_per_s", "none", "generate", False),
    ("rtf", "rtf", "none", "transcribe", True),
    ("energy_joules_per_iteration", "joules_per_iteration", "joule", None, True),
    ("model_share_bytes", "model_share_bytes", "bytes", None, True),
    ("peak_rss_bytes", "peak_rss_bytes", "bytes", None, True),
)


def compare_side(side: str, field: str, alias: str, scenario: str | None) -> str:
    """The query of one side (A or B) of a Compare table: latest value per model (x scenario)."""
    cond = (f"\"scenario\" = '{scenario}'",) if scenario else ()
    v = side.lower()
    sel = ("fleet", "model", *((tag, f"{tag}_{v}") for tag in ("host", "runtime", "precision")))
    return (
        f'SELECT last("{field}") AS "{v}_{alias}" FROM "inference" {where(*sel, extra=cond)} '
        f"{group_by('model', 'scenario')}"
    )


def compare() -> dict[str, Any]:
    variables = filter_variables(names=("fleet", "model"))
    for side in ("a", "b"):
        variables += [
            tag_variable(
                f"host_{side}",
                f"Host {side.upper()}",
                "inference",
                key="host",
                depends_on=("fleet", "model"),
                multi=False,
            ),
            tag_variable(
                f"runtime_{side}",
                f"Runtime {side.upper()}",
                "inference",
                key="runtime",
                depends_on=("fleet", "model", ("host", f"host_{side}")),
                multi=False,
            ),
            tag_variable(
                f"precision_{side}",
                f"Precision {side.upper()}",
                "inference",
                key="precision",
                depends_on=("fleet", "model", ("host", f"host_{side}"), ("runtime", f"runtime_{side}")),
                multi=False,
            ),
        ]
    panels = []
    titles = {
        "p50_s": "Latency p50",
        "tokens_per_s": "Generate throughput (tokens/s)",
        "rtf": "Transcribe real-time factor",
        "joules_per_iteration": "Energy per iteration / utterance",
        "model_share_bytes": "Model's memory share",
        "peak_rss_bytes": "Peak memory (RSS)",
    }
    for field, alias, unit, scenario, lower_better in COMPARE_METRICS:
        a, b = f"a_{alias}", f"b_{alias}"
        left, right = (a, b) if lower_better else (b, a)
        ratio = "B vs A (x)"
        panels.append(
            table(
                f"{titles[alias]}: A vs B",
                [
                    target(compare_side("A", field, alias, scenario), "A"),
                    target(compare_side("B", field, alias, scenario), "B"),
                ],
                description=f"Latest {field} of side A and side B per model and scenario; "
                f"'{ratio}' > 1 means B is better ("
                + ("A / B: lower is better" if lower_better else "B / A: higher is better")
                + ").",
                transformations=[
                    {"id": "merge", "options": {}},
                    {
                        "id": "calculateField",
                        "options": {
                            "mode": "binary",
                            "alias": ratio,
                            "replaceFields": False,
                            "binary": {"left": left, "operator": "/", "right": right},
                        },
                    },
                ],
                units={a: unit, b: unit, ratio: "none"},
                sort_by=ratio,
                desc=True,
                w=12,
                h=8,
            )
        )
    return dashboard(
        "edgebench-compare",
        "edgebench · Compare A vs B",
        "Two hosts, runtimes or precisions side by side, with the speedup of B over A per model and scenario",
        variables,
        panels,
    )


# ------------------------------------------------------------------------------------------ trends
TREND_METRICS = (
    ("latency_p50_s", "Latency p50", "s"),
    ("latency_p90_s", "Latency p90", "s"),
    ("tokens_per_s", "Generate throughput (tokens/s)", "none"),
    ("rtf", "Transcribe real-time factor", "none"),
    ("energy_joules_per_iteration", "Energy per iteration / utterance", "joule"),
    ("energy_average_w", "Average power", "watt"),
    ("model_share_bytes", "Model's memory share", "bytes"),
    ("peak_rss_bytes", "Peak memory (RSS)", "bytes"),
    ("wer", "Word error rate", "percentunit"),
)


def trends() -> dict[str, Any]:
    panels = []
    for field, title, unit in TREND_METRICS:
        q = (
            f'SELECT mean("{field}") FROM "inference" {where(*FILTERS)} '
            f"{group_by(*CONFIG, 'scenario', interval=True, fill='none')}"
        )
        panels.append(
            timeseries(
                f"{title} over time",
                [target(q, fmt="time_series", alias=f"{SERIES_ALIAS} · $tag_scenario")],
                unit=unit,
                description=f"{field} per configuration and scenario, averaged per interval: a step after an "
                "update is a regression (or an improvement). Compare with the software versions below.",
            )
        )
    versions = (
        'SELECT "edgebench_version", "lib_torch", "python", "kernel", "run_id" FROM "sysinfo" '
        f"{where('fleet', 'device_class', 'host')} {group_by('host')}"
    )
    panels.append(
        table(
            "Software versions per run",
            [target(versions)],
            hide_time=False,
            description="What each host ran with: a trend step that lines up with a version change here is "
            "explained by the update.",
            h=8,
        )
    )
    return dashboard(
        "edgebench-trends",
        "edgebench · Trends",
        "Every metric over time per configuration, so regressions after updates show up.",
        filter_variables(),
        panels,
        time_from="now-90d",
        annotations=[SOFTWARE_CHANGED],
    )


SOFTWARE_CHANGES = (
    'SELECT "changed", "host" FROM ('
    'SELECT difference("software_id") AS "changed" FROM "sysinfo" '
    f"{where('fleet', 'device_class', 'host')} {group_by('fleet', 'host')}"
    ') WHERE "changed" <> 0'
)
"""The runs whose software (edgebench, Python, OS, kernel, a measured library) differs from the same
host's run before: ``software_id`` is a checksum of those versions (collector/points.py)."""
SOFTWARE_CHANGED = {
    "name": "Software changed",
    "datasource": DATASOURCE,
    "enable": True,
    "iconColor": "orange",
    "query": SOFTWARE_CHANGES,
    "textColumn": "host",
    "tagsColumn": "host",
}
"""Trends' annotation: a marker on every graph where a host's software changed (the versions are in the
"Software versions per run" table), so a step in a trend can be matched to an update at a glance."""


# ------------------------------------------------------------------------------------------ run detail
def run_detail() -> dict[str, Any]:
    # run_id is a field (points.py says why): a SELECT variable, re-read when the time range changes
    runs_in_range = f'SELECT DISTINCT("run_id") FROM "inference" {where(*FILTERS, "scenario")}'
    variables = [
        *filter_variables(),
        tag_variable("scenario", "Scenario", "inference", depends_on=FILTERS),
        query_variable("run_id", "Run", runs_in_range, refresh=2),
    ]
    sel = (*FILTERS, "scenario", "run_id")
    by = group_by(*CONFIG, "scenario")
    by_stream = group_by(*CONFIG, "scenario", "stream_policy", "chunk_seconds", "stream_speed")

    def stream_series(measurement: str, field: str, label: str, ref: str = "A") -> dict[str, Any]:
        """One field of a stream's points over the stream's own time, a series per configuration."""
        query = f'SELECT "{field}" FROM "{measurement}" {where(*sel)} {by_stream}'
        alias = f"{label} · {SERIES_ALIAS} · $tag_stream_policy"
        return target(query, ref, fmt="time_series", alias=alias)

    runs = (
        'SELECT "run_id", "latency_n", "latency_p50_s", "latency_p90_s", "energy_source", "energy_kind", '
        '"energy_joules_total", "energy_average_w", "energy_peak_w" '
        f'FROM "inference" {where(*sel)} {by}'
    )
    sample_stats = (
        'SELECT count("latency_s") AS "n", min("latency_s") AS "min_s", '
        'percentile("latency_s", 50) AS "p50_s", percentile("latency_s", 90) AS "p90_s", '
        'max("latency_s") AS "max_s" '
        f'FROM "latency_sample" {where(*sel)} {by}'
    )
    thermal = (
        'SELECT "temp_max_c", "cpu_freq_mhz", "throttled", "other_cores", "busy", "warnings" '
        f'FROM "inference" {where(*sel)} {by}'
    )
    panels = [
        table(
            "Runs in the time range",
            [target(runs)],
            hide_time=False,
            h=8,
            description="One row per measured configuration; narrow the time range to one run to see only "
            "its samples below.",
            units={
                "latency_p50_s": "s",
                "latency_p90_s": "s",
                "energy_joules_total": "joule",
                "energy_average_w": "watt",
                "energy_peak_w": "watt",
            },
        ),
        histogram(
            "Latency histogram (per-iteration samples)",
            [
                target(
                    f'SELECT "latency_s" FROM "latency_sample" {where(*sel)} {by}',
                    fmt="time_series",
                    alias=f"{SERIES_ALIAS} · $tag_scenario",
                )
            ],
            unit="s",
            description="Every measured iteration / utterance (latency_sample).",
        ),
        table(
            "Latency from the samples",
            [target(sample_stats)],
            w=12,
            units={"min_s": "s", "p50_s": "s", "p90_s": "s", "max_s": "s"},
            description="Recomputed from latency_sample: should match the run's own summary.",
        ),
        timeseries(
            "Power trace",
            [
                target(
                    f'SELECT "watts" FROM "power_sample" {where(*sel)} {by}',
                    fmt="time_series",
                    alias=f"{SERIES_ALIAS} · $tag_scenario",
                )
            ],
            unit="watt",
            w=24,
            points=False,
            description="Watts sampled during the measured window (power_sample; source per run above).",
        ),
        timeseries(
            "Temperature (hottest sensor)",
            [
                target(
                    f'SELECT "temp_max_c" FROM "telemetry_sample" {where(*sel)} {by}',
                    fmt="time_series",
                    alias=f"{SERIES_ALIAS} · $tag_scenario",
                )
            ],
            unit="celsius",
            points=False,
            description="telemetry_sample.temp_max_c during the run.",
        ),
        timeseries(
            "CPU frequency",
            [
                target(
                    'SELECT "cpu_freq_mhz" * 1000000 AS "cpu_freq_hz" '
                    f'FROM "telemetry_sample" {where(*sel)} {by}',
                    fmt="time_series",
                    alias=f"{SERIES_ALIAS} · $tag_scenario",
                )
            ],
            unit="hertz",  # Grafana scales it: 1.5 GHz, 600 MHz
            points=False,
            description="Mean CPU frequency: a drop under load with a high temperature is throttling.",
        ),
        timeseries(
            "Live stream: compute per chunk and backlog",
            [
                stream_series("stream_chunk", "compute_s", "compute"),
                stream_series("stream_chunk", "backlog_s", "backlog", "B"),
            ],
            unit="s",
            w=24,
            description="--scenario stream, per chunk at the time its audio was spoken: the model's time "
            "on it, and how long it had waited for the model (the backlog). Compute above the chunk "
            "length and a backlog that keeps growing: the device cannot caption live speech.",
        ),
        timeseries(
            "Live stream per minute: finalisation latency and compute ratio",
            [
                stream_series("stream_minute", "finalisation_p50_s", "final p50"),
                stream_series("stream_minute", "compute_ratio_p90", "compute/chunk p90", "B"),
            ],
            unit="none",
            w=12,
            description="--stream-minutes: per minute of audio, the median delay from an utterance's end to "
            "its final text (s), and the 90th percentile of compute / chunk duration (above 1: behind). "
            "Rising over a long stream: the device slows down (throttling, memory).",
        ),
        table(
            "Live streams",
            [
                target(
                    'SELECT "kept_up", "fell_behind_at_s", "finalisation_p50_s", "finalisation_p90_s", '
                    '"first_partial_p50_s", "backlog_max_s", "rtf", "wer", "offline_wer" '
                    f'FROM "inference" {where(*sel, extra=(STREAMED,))} {by_stream}'
                )
            ],
            w=12,
            units={
                "fell_behind_at_s": "s",
                "finalisation_p50_s": "s",
                "finalisation_p90_s": "s",
                "first_partial_p50_s": "s",
                "backlog_max_s": "s",
                "wer": "percentunit",
                "offline_wer": "percentunit",
            },
            description="Per streamed configuration: kept up (false: 4 chunks in a row each waited more "
            "than a chunk, and not less and less), where it fell behind, finalisation and first-partial "
            "latency, WER streamed vs offline (same audio, whole utterances).",
        ),
        table(
            "Machine state per run: heat, throttling, other processes",
            [target(thermal)],
            hide_time=False,
            h=7,
            units={"temp_max_c": "celsius", "cpu_freq_mhz": "none", "other_cores": "none"},
            thresholds={
                "temp_max_c": [(70.0, "orange"), (80.0, "red")],  # a Pi 5 throttles from 80 °C
                "other_cores": [(BUSY_CORES, "orange")],
            },
            description="throttled = true when the device throttled during the measurement; other_cores: "
            "cores other processes kept busy meanwhile, busy = true from 0.25 (the result also carries a "
            "warning in both cases: its figures may be slower and noisier than on an idle device).",
        ),
    ]
    return dashboard(
        "edgebench-run-detail",
        "edgebench · Run detail",
        "Per-iteration latency histogram, power trace, temperatures, throttling and interference of the "
        "selected runs (Run: one run, or all in the time range).",
        variables,
        panels,
        time_from="now-24h",
    )


# ------------------------------------------------------------------------------------------ accuracy vs cost
def accuracy_vs_cost() -> dict[str, Any]:
    meaningful = ("\"scenario\" = 'transcribe'", '"accuracy_meaningful" = true')
    base = f'FROM "inference" {where(*FILTERS, extra=meaningful)} {group_by(*CONFIG)}'
    q_latency = f"SELECT {_last('latency_mean_s', 'wer')} {base}"
    q_energy = f"SELECT {_last('energy_joules_per_iteration AS joules_per_utterance', 'wer')} {base}"
    q_rtf = f"SELECT {_last('rtf', 'wer')} {base}"
    columns = _last(
        "wer",
        "cer",
        "latency_mean_s",
        "rtf",
        "energy_joules_per_iteration AS joules_per_utterance",
        "energy_average_w AS average_w",
        "model_share_bytes",
        "peak_rss_bytes",
    )
    q_all = f"SELECT {columns} {base}"
    panels = [
        xy_chart(
            "WER vs latency",
            q_latency,
            "latency_mean_s",
            "wer",
            x_unit="s",
            y_unit="percentunit",
            description="Each point is one configuration (latest transcribe run): down and left is better.",
        ),
        xy_chart(
            "WER vs energy per utterance",
            q_energy,
            "joules_per_utterance",
            "wer",
            x_unit="joule",
            y_unit="percentunit",
            description="Accuracy against joules per utterance: down and left is better.",
        ),
        xy_chart(
            "WER vs real-time factor",
            q_rtf,
            "rtf",
            "wer",
            x_unit="none",
            y_unit="percentunit",
            description="Accuracy against speed relative to real time.",
        ),
        table(
            "Accuracy and cost per configuration",
            [target(q_all)],
            sort_by="wer",
            w=12,
            h=10,
            units={
                "wer": "percentunit",
                "cer": "percentunit",
                "latency_mean_s": "s",
                "joules_per_utterance": "joule",
                "average_w": "watt",
                "model_share_bytes": "bytes",
                "peak_rss_bytes": "bytes",
            },
            description="Only trained models (accuracy_meaningful): random-weight models have no WER.",
        ),
    ]
    return dashboard(
        "edgebench-accuracy-cost",
        "edgebench · Accuracy vs cost",
        "Word error rate against latency, energy and real-time factor, one point per configuration.",
        filter_variables(),
        panels,
    )


# ------------------------------------------------------------------------------------------ fleet health
def fleet_health() -> dict[str, Any]:
    variables = [
        tag_variable("fleet", "Fleet", "agent_status"),
        tag_variable("host", "Host", "agent_status", depends_on=("fleet",)),
    ]
    # current state ignores the time range on purpose: an agent online for a month has an old status point
    latest_online = (
        f'SELECT last("online") AS "online" FROM "agent_status" {where("fleet", "host", time=False)} '
        f"{group_by('fleet', 'host')}"
    )
    panels = [
        stat(
            "Agents online",
            f'SELECT sum("online") AS "online" FROM ({latest_online})',
            description="Hosts whose latest status is online or running (retained status topic).",
        ),
        stat(
            "Agents offline",
            f'SELECT count("online") - sum("online") AS "offline" FROM ({latest_online})',
            description="Hosts whose latest status is offline (clean shutdown or the broker's Last Will): "
            "red from 1, as the provisioned 'Agent offline' alert (a device that runs only the timer, "
            "without the campaign daemon, is offline between runs by design).",
            thresholds=[(1.0, "red")],
        ),
        stat(
            "Dead letters in range",
            f'SELECT sum("count") AS "deadletters" FROM "deadletter" {where("fleet")}',
            description="Messages the collector rejected (malformed, wrong host, schema) in the time range.",
            thresholds=[(1.0, "orange")],
        ),
        stat(
            "Results in range",
            f'SELECT count("seq") AS "results" FROM "inference" {where("fleet", "host")}',
            description="Result documents written in the time range.",
        ),
        stat(
            "Results not yet confirmed",
            f'SELECT sum("unconfirmed") AS "unconfirmed" FROM ('
            f'SELECT last("unconfirmed") AS "unconfirmed" FROM "agent_status" '
            f"{where('fleet', 'host', time=False)} {group_by('fleet', 'host')})",
            description=(
                "Results waiting in the devices' spools for the collector's receipt, as each device last "
                "reported (queued or sent; a broker crash or queue overflow shows up here until the re-send)."
            ),
        ),
        table(
            "Agents: current state",
            [
                target(
                    'SELECT last("state") AS "state" FROM "agent_status" '
                    f"{where('fleet', 'host', time=False)} {group_by('fleet', 'host')}"
                )
            ],
            hide_time=False,
            w=12,
            h=8,
            sort_by="state",
            description="Time = when the agent entered this state.",
        ),
        table(
            "Results waiting per device",
            [
                target(
                    'SELECT last("unconfirmed") AS "unconfirmed", last("refused") AS "refused" '
                    f'FROM "agent_status" {where("fleet", "host", time=False)} {group_by("fleet", "host")}'
                )
            ],
            hide_time=False,
            w=12,
            h=8,
            sort_by="unconfirmed",
            description=(
                "Per device, from its latest status: results not yet confirmed stored, and results refused "
                "for good (`edgebench-agent publish --list-refused` on the device says why)."
            ),
        ),
        table(
            "Last result per host",
            [
                target(
                    f'SELECT last("run_id") AS "last_run_id" FROM "inference" '
                    f"{where('fleet', 'host', time=False)} {group_by('fleet', 'host')}"
                )
            ],
            hide_time=False,
            w=12,
            h=8,
            sort_by="Time",
            description="Time = when the newest result of the host was measured.",
        ),
        state_timeline(
            "Online history",
            [
                target(
                    f'SELECT last("online") FROM "agent_status" {where("fleet", "host")} '
                    f"{group_by('host', interval=True, fill='previous')}",
                    fmt="time_series",
                    alias="$tag_host",
                )
            ],
            description="1 = online/running, 0 = offline, per interval.",
        ),
        timeseries(
            "Dead letters by reason",
            [
                target(
                    f'SELECT sum("count") FROM "deadletter" {where("fleet")} '
                    f"{group_by('reason', interval=True, fill='none')}",
                    fmt="time_series",
                    alias="$tag_reason",
                )
            ],
            unit="none",
            description="Rejected messages per interval and reason.",
        ),
        table(
            "Recent dead letters",
            [
                target(
                    f'SELECT "topic", "bytes" FROM "deadletter" {where("fleet")} {group_by("reason")} '
                    "ORDER BY time DESC LIMIT 50"
                )
            ],
            hide_time=False,
            w=12,
            h=8,
            description="Newest rejected messages with the topic they came on.",
        ),
    ]
    return dashboard(
        "edgebench-fleet-health",
        "edgebench · Fleet health",
        "Agents online/offline from the status topic, last result time, dead letters.",
        variables,
        panels,
        time_from="now-24h",
        refresh="1m",
    )


# ------------------------------------------------------------------------------------------ campaigns
def campaigns() -> dict[str, Any]:
    """One fleet campaign (``edgebench-collector campaign …``): each device's job, the fleet comparison
    of its results, and the regression check against its baseline (written by ``campaign report``)."""
    variables = [
        tag_variable("campaign", "Campaign", "campaign_job", multi=False),
        tag_variable("device_class", "Device class", "campaign_job", depends_on=("campaign",)),
    ]
    jobs = "campaign_job"
    # job states ignore the time range: a campaign's state is its latest, however old
    latest_job = (
        f'SELECT last("progress") AS "progress", last("state") AS "state" FROM "{jobs}" '
        f"{where('campaign', 'device_class', time=False)} {group_by('host')}"
    )
    latest_state = (
        f'SELECT last("state") AS "state" FROM "{jobs}" '
        f"{where('campaign', 'device_class', time=False)} {group_by('host')}"
    )
    panels = [
        stat(
            "Devices with a job",
            f'SELECT count("state") AS "devices" FROM ({latest_state})',
            description="Devices that answered a job of this campaign (its state is below).",
        ),
        stat(
            "Devices done",
            f'SELECT count("state") AS "done" FROM ({latest_state}) WHERE "state" = \'done\'',
            description="Devices whose latest job of this campaign finished.",
        ),
        table(
            "Per-device progress",
            [target(latest_job)],
            hide_time=False,
            w=12,
            h=8,
            sort_by="progress",
            description=(
                "Each device's latest job: its state and progress (0-1). Devices sent a job that never "
                "answered do not appear here: `edgebench-collector campaign status NAME` lists them."
            ),
        ),
        table(
            "Jobs that did not finish",
            [
                target(
                    f'SELECT "state", "reason", "job_id" FROM "{jobs}" '
                    f"{where('campaign', 'device_class', time=False)} "
                    'AND "state" =~ /^(failed|refused|interrupted|cancelled)$/ '
                    f"{group_by('host')} ORDER BY time DESC LIMIT 100"
                )
            ],
            hide_time=False,
            w=12,
            h=8,
            description="Refused, failed, interrupted or cancelled jobs, with the reason the device gave.",
        ),
        row("Fleet comparison"),
        table(
            "Results by device and configuration",
            [
                target(
                    f"SELECT {_last('latency_p50_s AS p50_s', 'latency_p90_s AS p90_s', 'rtf')}, "
                    f"{_last('tokens_per_s', 'wer', 'energy_joules_per_iteration AS joules_per_iteration')}, "
                    f"{_last('model_share_bytes', 'peak_rss_bytes')} "
                    f'FROM "inference" {where("campaign", "device_class", time=False)} '
                    f"{group_by('device_class', *CONFIG[:-1], 'scenario', 'emulated')}"
                )
            ],
            w=24,
            h=10,
            sort_by="p50_s",
            description=(
                "Every configuration each device measured in the campaign (latest result). Rows with "
                "emulated=true were measured under qemu: not a real device's speed."
            ),
        ),
        bar_gauge(
            "Latency p50 per device",
            'SELECT last("latency_p50_s") AS "p50" FROM "inference" '
            f"{where('campaign', 'device_class', time=False)} "
            f"{group_by('host', 'model', 'runtime', 'precision', 'scenario')}",
            "p50",
            unit="s",
            description="Median latency of every configuration, per device.",
        ),
        row("Regressions against the baseline"),
        table(
            "Regression check",
            [
                target(
                    'SELECT last("verdict") AS "verdict", last("ratio") AS "ratio", '
                    'last("p_adjusted") AS "p_adjusted", last("config") AS "configuration" '
                    f'FROM "campaign_regression" {where("campaign", time=False)} '
                    f"{group_by('baseline', 'host')}"
                )
            ],
            w=24,
            h=8,
            sort_by="ratio",
            description=(
                "Written by `campaign report NAME --baseline OTHER`: Mann-Whitney U on per-iteration "
                "latencies, Holm-corrected, flagged when the median moved by at least the minimum effect. "
                "ratio = this campaign's median / the baseline's."
            ),
        ),
    ]
    return dashboard(
        "edgebench-campaigns",
        "edgebench · Campaigns",
        "One fleet campaign: per-device job progress, the fleet comparison, regressions against a baseline.",
        variables,
        panels,
        time_from="now-7d",
        refresh="30s",
    )


def build_all() -> dict[str, dict[str, Any]]:
    """File stem -> dashboard JSON model, in menu order."""
    return {
        "fleet-overview": fleet_overview(),
        "compare": compare(),
        "trends": trends(),
        "run-detail": run_detail(),
        "accuracy-vs-cost": accuracy_vs_cost(),
        "fleet-health": fleet_health(),
        "campaigns": campaigns(),
    }


__all__ = ["build_all", "query_variable", "regex_filter"]
