"""Map one :class:`ResultDocument` onto InfluxDB points (schema: ``docs/influxdb-schema.md``).

Determinism is the whole idempotence story: the same document always yields the same measurement, tag
set and timestamp for every point, so a re-delivered MQTT message overwrites what is already stored
instead of adding to it. Nothing here may depend on arrival time, dict order or randomness.

``run_id`` is a *field*: a tag would create a new series per run and grow series cardinality without
bound on a fleet that benchmarks nightly. Timestamps (``created_ns``, distinct per document) already
separate runs within a series.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import TYPE_CHECKING, Any

from edgebench.agent.results.schema import ResultDocument, Summary

if TYPE_CHECKING:  # keep importing this module cheap for the CLI's --help
    from influxdb_client import Point

INFERENCE = "inference"
LATENCY_SAMPLE = "latency_sample"
SYSINFO = "sysinfo"
POWER_SAMPLE = "power_sample"
TELEMETRY_SAMPLE = "telemetry_sample"
STREAM_CHUNK = "stream_chunk"
STREAM_MINUTE = "stream_minute"


def fmt_number(value: float | int) -> str:
    """Tag text of a number, stable across producers: 10, 10.0 and 1e1 all become '10'."""
    return f"{float(value):g}"


def inference_tags(doc: ResultDocument, with_absent: bool = False) -> dict[str, str]:
    """The low-cardinality dimensions dashboards group by (absent ones are left out, not empty).

    ``with_absent``: absent ones as "" — a delete predicate must say "no such tag", or it would also
    match series that carry one (another label, an emulated host)."""
    c = doc.config
    tags: dict[str, str | None] = {
        "fleet": doc.fleet,
        "host": doc.host,
        "device_class": doc.device_class,
        "model": c.model,
        "runtime": c.runtime,
        "precision": c.precision,
        "device": c.device,
        "scenario": c.scenario,
        "batch_size": str(c.batch_size),
        "input_seconds": fmt_number(c.audio_seconds) if c.audio_seconds is not None else None,
        "new_tokens": str(c.new_tokens) if c.new_tokens is not None else None,
        "ctc_weight": fmt_number(c.ctc_weight) if c.ctc_weight is not None else None,
        # the stream scenario's policy, chunk length and pace (stream results only)
        "stream_policy": c.stream_policy,
        "chunk_seconds": fmt_number(c.chunk_seconds) if c.chunk_seconds is not None else None,
        "stream_speed": fmt_number(c.stream_speed) if c.stream_speed is not None else None,
        # variants and robustness settings: only on results that used them, so other series keep their keys
        "torch_mode": c.torch_mode,
        "attn_impl": c.attn_impl,
        "amp": "true" if c.amp else None,
        "ort_opt_level": c.ort_opt_level,
        "ggml_type": c.ggml_type,
        "label": c.label,
        "recipe": c.recipe,
        "campaign": c.campaign,
        "noise_snr_db": fmt_number(c.noise_snr_db) if c.noise_snr_db is not None else None,
        "speed": fmt_number(c.speed) if c.speed is not None else None,
        # Multilingual Whisper's language (auto: detected per utterance, or the one given) and translation:
        # auto and a given language are different work (detection is a decoder call) and may transcribe
        # differently, so they are different series; models without a language token have no tag
        "language": c.language,
        "task": c.task if c.task == "translate" else None,
        # Emulated CPUs (qemu): a tag, so that no dashboard query can average them with real devices
        "emulated": "true" if doc.sysinfo.emulated else None,
    }
    if with_absent:
        return {k: v or "" for k, v in tags.items()}
    return {k: v for k, v in tags.items() if v not in (None, "")}


def _summary_fields(prefix: str, s: Summary) -> dict[str, Any]:
    return {
        f"{prefix}_n": int(s.n),
        f"{prefix}_mean_s": float(s.mean),
        f"{prefix}_std_s": float(s.std),
        f"{prefix}_cv": float(s.cv),
        f"{prefix}_min_s": float(s.min),
        f"{prefix}_max_s": float(s.max),
        f"{prefix}_p50_s": float(s.p50),
        f"{prefix}_p90_s": float(s.p90),
        f"{prefix}_p95_s": float(s.p95),
        f"{prefix}_p99_s": float(s.p99),
        f"{prefix}_ci95_low_s": float(s.ci95_low),
        f"{prefix}_ci95_high_s": float(s.ci95_high),
    }


def _f(value: float | None) -> float | None:
    """Floats stay floats on the wire (InfluxDB fixes a field's type per shard: 1 vs 1i would clash)."""
    return None if value is None else float(value)


def inference_fields(doc: ResultDocument) -> dict[str, Any]:
    """Every scalar result of the document; None values are simply not written."""
    c, m = doc.config, doc.model
    fields: dict[str, Any] = {
        "run_id": doc.run_id,
        "seq": int(doc.seq),
        "schema_version": doc.schema_version,
        "edgebench_version": doc.edgebench_version,
        "threads": int(c.threads),
        "frontend": c.frontend,
        "dataset": c.dataset,
        "model_family": m.family,
        "weights_source": m.weights_source,
        "trained": bool(m.trained),
        "size_on_disk_bytes": m.size_on_disk_bytes,
        "warnings": len(doc.warnings),
    }
    for component, count in sorted(m.params.items()):
        fields[f"params_{component}"] = int(count)
    if doc.policy is not None:
        fields["stopped_because"] = doc.policy.stopped_because
        if doc.policy.allocator:
            fields["allocator"] = doc.policy.allocator
    if doc.decimated:  # a published copy thinned to fit one MQTT message: say which lists, how much
        fields["decimated"] = ",".join(f"{d.path}:{d.total}->{d.kept}" for d in doc.decimated)
    if doc.forward is not None:
        fw = doc.forward
        fields |= _summary_fields("latency", fw.latency_s)
        fields["iterations_per_s"] = _f(fw.iterations_per_s)
        fields["samples_per_s"] = _f(fw.samples_per_s)
    if doc.generate is not None:
        g = doc.generate
        fields |= _summary_fields("latency", g.latency_s)
        fields["prefill_mean_s"] = _f(g.prefill_s.mean)
        fields["prefill_p50_s"] = _f(g.prefill_s.p50)
        fields["decode_mean_s"] = _f(g.decode_s.mean)
        fields["decode_p50_s"] = _f(g.decode_s.p50)
        fields["tokens_per_s"] = _f(g.tokens_per_s)
        fields["decode_tokens_per_s"] = _f(g.decode_tokens_per_s)
        fields["generated_tokens"] = int(g.new_tokens)
    if doc.transcribe is not None:
        t = doc.transcribe
        fields |= _summary_fields("latency", t.latency_s)
        fields["rtf"] = _f(t.rtf)
        fields["wer"] = _f(t.wer)
        fields["cer"] = _f(t.cer)
        fields["utterances"] = int(t.utterances)
        fields["audio_s_total"] = _f(t.audio_s_total)
        fields["accuracy_meaningful"] = bool(t.accuracy_meaningful)
        # a dataset naming its languages: one field set per language (the schema bounds how many)
        for score in t.languages:
            fields[f"wer_{score.language}"] = _f(score.wer)
            fields[f"cer_{score.language}"] = _f(score.cer)
            fields[f"language_detected_{score.language}"] = _f(score.detected)
    if doc.stream is not None:
        fields |= stream_fields(doc)
    if doc.load is not None:
        fields["load_s"] = _f(doc.load.load_s)
        fields["first_inference_s"] = _f(doc.load.first_inference_s)
        fields["warm_inference_s"] = _f(doc.load.warm_inference_s)
    if doc.memory is not None:
        mem = doc.memory
        fields["peak_rss_bytes"] = int(mem.peak_rss_bytes)
        fields["baseline_rss_bytes"] = int(mem.baseline_rss_bytes)
        for name in (
            "cuda_peak_allocated_bytes",
            "before_load_rss_bytes",
            "after_load_rss_bytes",
            "load_peak_rss_bytes",
            "model_share_bytes",
            "peak_pss_bytes",
            "peak_uss_bytes",
            "budget_bytes",
            "budget_exceeded_at_bytes",
        ):
            value = getattr(mem, name)
            if value is not None:
                fields[name] = int(value)
    if doc.interference is not None:
        fields["other_cores"] = _f(doc.interference.other_cores)
        fields["busy"] = bool(doc.interference.busy)
    if doc.energy is not None:
        e = doc.energy
        fields["energy_source"] = e.source
        fields["energy_kind"] = e.kind
        fields["energy_joules_total"] = _f(e.joules_total)
        fields["energy_joules_net"] = _f(e.joules_net)
        fields["energy_idle_w"] = _f(e.idle_w)
        fields["energy_joules_per_iteration"] = _f(e.joules_per_iteration)
        fields["energy_joules_net_per_iteration"] = _f(e.joules_net_per_iteration)
        fields["energy_joules_per_token"] = _f(e.joules_per_token)
        fields["energy_joules_net_per_token"] = _f(e.joules_net_per_token)
        fields["energy_joules_per_audio_s"] = _f(e.joules_per_audio_s)
        fields["energy_joules_net_per_audio_s"] = _f(e.joules_net_per_audio_s)
        fields["energy_average_w"] = _f(e.average_w)
        fields["energy_peak_w"] = _f(e.peak_w)
        fields["energy_window_s"] = _f(e.window_s)
        fields["energy_unavailable_reason"] = e.unavailable_reason
    if doc.telemetry is not None:
        tm = doc.telemetry
        fields["temp_max_c"] = _f(tm.temp_max_c)
        fields["cpu_freq_mhz"] = _f(tm.cpu_freq_mhz)
        fields["throttled"] = tm.throttled
        fields["nvpmodel"] = tm.nvpmodel
    return {k: v for k, v in fields.items() if v is not None}


def stream_fields(doc: ResultDocument) -> dict[str, Any]:
    """A stream's figures: compute per chunk as ``latency_*`` (what every latency panel reads), the rest
    under their own names."""
    st = doc.stream
    assert st is not None
    fields: dict[str, Any] = _summary_fields("latency", st.compute_s)
    fields |= {
        "rtf": _f(st.rtf),
        "wer": _f(st.wer),
        "cer": _f(st.cer),
        "offline_wer": _f(st.offline_wer),
        "offline_cer": _f(st.offline_cer),
        "accuracy_meaningful": bool(st.accuracy_meaningful),
        "utterances": int(st.utterances),
        "audio_s_total": _f(st.audio_s),
        "chunks": int(st.chunks),
        "kept_up": bool(st.kept_up),
        "fell_behind_at_s": _f(st.fell_behind_at_s),
        "backlog_max_s": _f(st.backlog_max_s),
        "backlog_end_s": _f(st.backlog_end_s),
        "compute_ratio_p50": _f(st.compute_ratio.p50),
        "compute_ratio_p90": _f(st.compute_ratio.p90),
        "compute_ratio_p99": _f(st.compute_ratio.p99),
        "transcribed_ratio": _f(st.transcribed_ratio),
        "forced_commits": int(st.forced_commits),
        "pacing_error_max_s": _f(st.pacing_error_s.max),
    }
    for name, summary in (
        ("finalisation", st.finalisation_latency_s),
        ("first_partial", st.first_partial_latency_s),
    ):
        if summary is not None:
            fields[f"{name}_mean_s"] = _f(summary.mean)
            fields[f"{name}_p50_s"] = _f(summary.p50)
            fields[f"{name}_p90_s"] = _f(summary.p90)
            fields[f"{name}_max_s"] = _f(summary.max)
    return fields


def stream_samples(doc: ResultDocument) -> list[tuple[str, int, dict[str, Any]]]:
    """(measurement, timestamp ns, fields) of a stream's timeline (``stream_chunk``: compute and backlog
    per chunk) and minutes (``stream_minute``), stamped when that audio was spoken
    (``start_ns + t / speed``): a pure function of the document, so idempotent, and plotted where the
    stream really happened."""
    st = doc.stream
    if st is None:
        return []
    out: list[tuple[str, int, dict[str, Any]]] = []
    for i, (t, compute, backlog) in enumerate(st.timeline):
        stamp = _trace_stamp(st.start_ns, t / st.speed, "stream.timeline", i)
        out.append(
            (STREAM_CHUNK, stamp, {"audio_t_s": _f(t), "compute_s": _f(compute), "backlog_s": _f(backlog)})
        )
    for i, m in enumerate(st.per_minute):
        # at the minute's last chunk: within the stream's own time range
        stamp = _trace_stamp(st.start_ns, (60.0 * m.minute + m.audio_s) / st.speed, "stream.per_minute", i)
        fields = {k: _f(v) for k, v in m.model_dump().items() if k not in ("minute", "chunks")}
        out.append((STREAM_MINUTE, stamp, {**fields, "minute": int(m.minute), "chunks": int(m.chunks)}))
    return out


MIN_TS = -9223372036854775806
MAX_TS = 9223372036854775806
"""InfluxDB's representable timestamps (ns): a point outside is refused on its own, leaving the rest of
its document written — so every stamp is checked here, before anything is sent."""
MIN_INT, MAX_INT = -(2**63), 2**63 - 1


def _check_ts(ts: int, what: str) -> int:
    if not MIN_TS <= ts <= MAX_TS:
        raise ValueError(f"{what} timestamp {ts} is outside InfluxDB's range")
    return ts


def latency_samples(doc: ResultDocument) -> tuple[list[float], int]:
    """Per-iteration latencies in measurement order (forward/generate iterations, transcribe utterances),
    and the stride between them (> 1 when the published copy was decimated, ``agent/publish/trim.py``)."""
    if doc.forward is not None:
        return list(doc.forward.latency_samples_s), doc.stride_of("forward.latency_samples_s")
    if doc.generate is not None:
        return list(doc.generate.latency_samples_s), doc.stride_of("generate.latency_samples_s")
    if doc.transcribe is not None:
        utterances = doc.transcribe.per_utterance
        return [u.latency_s for u in utterances], doc.stride_of("transcribe.per_utterance")
    return [], 1


def _trace_stamp(start: int, t: float, where: str, i: int) -> int:
    if not math.isfinite(t):
        raise ValueError(f"{where}[{i}] time {t} is not a finite number")
    return _check_ts(start + round(t * 1e9), f"{where}[{i}]")


def power_samples(doc: ResultDocument) -> list[tuple[int, dict[str, Any]]]:
    """(timestamp ns, fields) of each ``power_sample`` point: the energy trace, stamped
    ``trace_start_ns + round(t_s * 1e9)`` — a pure function of the document, so idempotent."""
    e = doc.energy
    if e is None or e.trace_start_ns is None:
        return []
    start = int(e.trace_start_ns)
    return [
        (_trace_stamp(start, t, "energy.trace", i), {"watts": float(w), "t_s": float(t)})
        for i, (t, w) in enumerate(e.trace)
    ]


def telemetry_samples(doc: ResultDocument) -> list[tuple[int, dict[str, Any]]]:
    """(timestamp ns, fields) of each ``telemetry_sample`` point (None values are not written)."""
    tm = doc.telemetry
    if tm is None or tm.trace_start_ns is None:
        return []
    start = int(tm.trace_start_ns)
    return [
        (
            _trace_stamp(start, t, "telemetry.trace", i),
            {"temp_max_c": _f(temp), "cpu_freq_mhz": _f(freq), "t_s": float(t)},
        )
        for i, (t, temp, freq) in enumerate(tm.trace)
    ]


def sysinfo_fields(doc: ResultDocument) -> dict[str, Any]:
    s = doc.sysinfo
    fields: dict[str, Any] = {
        "hostname": s.hostname,
        "device_model": s.device_model,
        "cpu_model": s.cpu_model,
        "arch": s.arch,
        "cores_logical": int(s.cpu_cores_logical),
        "cores_physical": None if s.cpu_cores_physical is None else int(s.cpu_cores_physical),
        "ram_bytes": int(s.ram_bytes),
        "os": s.os,
        "kernel": s.kernel,
        "python": s.python,
        "cpu_governor": s.cpu_governor,
        "accelerator": s.accelerator,
        "emulated": s.emulated,
        "edgebench_version": doc.edgebench_version,
        "run_id": doc.run_id,
    }
    for lib, version in sorted(s.libraries.items()):
        fields[f"lib_{lib}"] = str(version)
    fields["software_id"] = software_id(doc)
    return {k: v for k, v in fields.items() if v is not None}


def software_id(doc: ResultDocument) -> int:
    """A number that changes when the host's software does (edgebench, Python, OS, kernel, the measured
    libraries): Trends annotates the runs where ``difference(software_id)`` is not 0 — InfluxQL cannot
    compare strings between points, and a stateless collector cannot remember the previous run."""
    s = doc.sysinfo
    parts = [f"edgebench={doc.edgebench_version}", f"python={s.python}", f"os={s.os}", f"kernel={s.kernel}"]
    parts += [f"{lib}={version}" for lib, version in sorted(s.libraries.items())]
    return zlib.crc32("\n".join(parts).encode())


def document_to_points(doc: ResultDocument) -> list[Point]:
    """All points for one document: 1 ``inference``, 1 ``sysinfo``, one ``latency_sample`` per iteration,
    one ``power_sample`` per energy trace point and one ``telemetry_sample`` per telemetry trace point.

    ``latency_sample`` point *i* is stamped ``created_ns + i``: distinct within the series (InfluxDB would
    otherwise keep only the last) yet identical on every re-delivery. In a decimated copy, kept sample *j*
    is iteration ``j * stride``, stamped as the full document would have stamped it.
    """
    from influxdb_client import Point, WritePrecision

    ts = int(doc.created_ns)
    tags = inference_tags(doc)
    points: list[Point] = []

    inference = Point(INFERENCE)
    for k, v in tags.items():
        inference.tag(k, v)
    for k, v in inference_fields(doc).items():
        inference.field(k, v)
    points.append(inference.time(ts, WritePrecision.NS))

    samples, stride = latency_samples(doc)
    for i, latency in enumerate(samples):
        p = Point(LATENCY_SAMPLE)
        for k, v in tags.items():
            p.tag(k, v)
        p.field("latency_s", float(latency)).field("iteration", i * stride).field("run_id", doc.run_id)
        points.append(p.time(ts + i * stride, WritePrecision.NS))

    traces = [
        *((POWER_SAMPLE, stamp, fields) for stamp, fields in power_samples(doc)),
        *((TELEMETRY_SAMPLE, stamp, fields) for stamp, fields in telemetry_samples(doc)),
        *stream_samples(doc),
    ]
    for measurement, stamp, fields in traces:
        p = Point(measurement)
        for k, v in tags.items():
            p.tag(k, v)
        for k, v in fields.items():
            if v is not None:
                p.field(k, v)
        p.field("run_id", doc.run_id)
        points.append(p.time(stamp, WritePrecision.NS))

    info = Point(SYSINFO).tag("fleet", doc.fleet).tag("host", doc.host).tag("device_class", doc.device_class)
    for k, v in sysinfo_fields(doc).items():
        info.field(k, v)
    points.append(info.time(ts, WritePrecision.NS))
    return points


# ---------------------------------------------------------------------------------------------------
# Fast line protocol. ``influxdb_client.Point`` costs ~30 µs per point (plus a ~0.5 s import on first
# use); the collector formats every point itself. The output is byte-identical to
# ``Point(...).to_line_protocol()`` — tests/test_collector_points.py holds it to that, with Point as the
# reference — so the rules below mirror influxdb-client 1.x exactly: tags and fields sorted by key,
# keys/tag values escaped (``,`` ``=`` space, ``\n`` ``\t`` ``\r``), a tag value ending in a backslash
# gets a trailing space, empty tags and None fields skipped, floats as ``str()`` without a trailing
# ``.0``, non-finite floats skipped, ints with ``i``, bools ``true``/``false``, strings quoted with
# ``"`` and ``\`` escaped, a point without fields is dropped.

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})
_INF = float("inf")
_NEEDS_STRING_ESCAPE = re.compile(r'["\\]').search
_KEYS: dict[str, str] = {}
"""Escaped keys and tag values by raw text: both come from a small set (field names, fleet/host/model
names — low cardinality is the schema's rule for tags), and ``str.translate`` is the costliest step."""
_KEYS_MAX = 100_000


def _escape_key(text: Any) -> str:
    try:
        return _KEYS[text]
    except (KeyError, TypeError):
        escaped = str(text).translate(_ESCAPE_KEY)
        if type(text) is str:
            if len(_KEYS) >= _KEYS_MAX:
                _KEYS.clear()
            _KEYS[text] = escaped
        return escaped


def format_tags(tags: dict[str, Any]) -> str:
    """``,k=v,k2=v2 `` (sorted, escaped) or a single space when there is no tag: measurement follows."""
    parts = []
    for key, value in sorted(tags.items()):
        if value is None:
            continue
        k = _escape_key(key)
        v = _escape_key(value)
        if v.endswith("\\"):
            v += " "
        if k and v:
            parts.append(f"{k}={v}")
    return ("," + ",".join(parts) + " ") if parts else " "


def format_fields(fields: dict[str, Any]) -> str:
    """``k=v,k2=v2`` (sorted); empty when no field survives (None, NaN, inf).

    The hot loop of the collector (~60 fields per document): exact-type dispatch, floats first (most
    fields), keys escaped through the cache."""
    parts = []
    append = parts.append
    keys = _KEYS
    for key, value in sorted(fields.items()):
        kind = type(value)
        k = keys.get(key)
        if k is None:
            k = _escape_key(key)
        if kind is float:
            if value != value or value == _INF or value == -_INF:
                continue
            text = repr(value)
            append(f"{k}={text[:-2]}" if text.endswith(".0") else f"{k}={text}")
        elif kind is str:
            if _NEEDS_STRING_ESCAPE(value):
                value = value.translate(_ESCAPE_STRING)
            append(f'{k}="{value}"')
        elif kind is int:
            if not MIN_INT <= value <= MAX_INT:
                raise ValueError(f"field {key}={value} is outside InfluxDB's 64-bit integer range")
            append(f"{k}={value}i")
        elif kind is bool:
            append(f"{k}=true" if value else f"{k}=false")
        elif value is None:
            continue
        else:  # subclasses (an IntEnum, a str subclass): the general rules
            parts.extend(_format_other(key, k, value))
    return ",".join(parts)


def _format_other(key: str, k: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [f"{k}={str(value).lower()}"]
    if isinstance(value, float):
        return [] if not math.isfinite(value) else [format_fields({key: float(value)})]
    if isinstance(value, int):
        return [format_fields({key: int(value)})]
    if isinstance(value, str):
        return [format_fields({key: str(value)})]
    raise ValueError(f'Type: "{type(value)}" of field: "{key}" is not supported.')


def format_line(measurement: str, tags: str, fields: str, ts: int) -> str:
    """One line from pre-formatted parts (``tags`` from :func:`format_tags`); "" when no field."""
    if not fields:
        return ""
    return f"{measurement.translate(_ESCAPE_MEASUREMENT)}{tags}{fields} {_check_ts(int(ts), measurement)}"


def document_to_lines(doc: ResultDocument) -> list[str]:
    """Line protocol of :func:`document_to_points` (byte-identical), built without ``Point``.

    Points that lost every field (all NaN) are dropped, as ``Point.to_line_protocol()`` returns "".
    Raises ValueError for a value InfluxDB cannot store (an integer beyond 64 bits, a timestamp outside
    its range, a trace time that is not a number): the collector refuses such a document whole.
    """
    ts = int(doc.created_ns)
    tags = format_tags(inference_tags(doc))
    lines = [format_line(INFERENCE, tags, format_fields(inference_fields(doc)), ts)]
    samples, stride = latency_samples(doc)
    _check_ts(ts + len(samples) * stride, LATENCY_SAMPLE)
    run_id = format_fields({"run_id": doc.run_id})  # every sample names its run (Run detail's $run_id)
    for j, latency in enumerate(samples):
        # same as format_fields({"latency_s": …, "iteration": i, "run_id": …}), inlined: the hot loop
        i = j * stride
        latency = float(latency)
        if latency != latency or latency == _INF or latency == -_INF:
            fields = f"iteration={i}i,{run_id}"
        else:
            s = str(latency)
            fields = f"iteration={i}i,latency_s={s[:-2] if s.endswith('.0') else s},{run_id}"
        lines.append(f"{LATENCY_SAMPLE}{tags}{fields} {ts + i}")
    traces = [
        *((POWER_SAMPLE, stamp, fields) for stamp, fields in power_samples(doc)),
        *((TELEMETRY_SAMPLE, stamp, fields) for stamp, fields in telemetry_samples(doc)),
        *stream_samples(doc),
    ]
    for measurement, stamp, fields in traces:
        lines.append(format_line(measurement, tags, format_fields({**fields, "run_id": doc.run_id}), stamp))
    info_tags = format_tags({"fleet": doc.fleet, "host": doc.host, "device_class": doc.device_class})
    lines.append(format_line(SYSINFO, info_tags, format_fields(sysinfo_fields(doc)), ts))
    return [line for line in lines if line]


def document_footprint(doc: ResultDocument) -> list[tuple[str, dict[str, str], int, int]]:
    """(measurement, tags, first ns, last ns) of every series the document writes: what a rollback of a
    partly stored document deletes (only this document's points lie in those series and time ranges —
    points of one host and configuration are measured one after another)."""
    ts = int(doc.created_ns)
    tags = inference_tags(doc, with_absent=True)
    out = [(INFERENCE, tags, ts, ts)]
    samples, stride = latency_samples(doc)
    if samples:
        out.append((LATENCY_SAMPLE, tags, ts, ts + (len(samples) - 1) * stride))
    streamed = stream_samples(doc)
    for measurement, stamps in (
        (POWER_SAMPLE, [s for s, _ in power_samples(doc)]),
        (TELEMETRY_SAMPLE, [s for s, _ in telemetry_samples(doc)]),
        (STREAM_CHUNK, [s for m, s, _ in streamed if m == STREAM_CHUNK]),
        (STREAM_MINUTE, [s for m, s, _ in streamed if m == STREAM_MINUTE]),
    ):
        if stamps:
            out.append((measurement, tags, min(stamps), max(stamps)))
    out.append((SYSINFO, {"fleet": doc.fleet, "host": doc.host, "device_class": doc.device_class}, ts, ts))
    return out


def document_to_lines_via_point(doc: ResultDocument) -> list[str]:
    """The reference implementation (influxdb-client's ``Point``), kept for tests and comparison."""
    return [line for line in (p.to_line_protocol() for p in document_to_points(doc)) if line]
