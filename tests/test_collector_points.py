"""The collector's own line-protocol formatter against the reference, influxdb-client's ``Point``.

``points.document_to_lines`` skips ``Point`` for speed; every byte it produces must still be what
``Point(...).to_line_protocol()`` produces, or a re-delivered document could land on a different series
or field (breaking idempotence) depending on which code path wrote it. No servers needed.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from edgebench.agent.results.schema import SCHEMA_VERSION, ResultDocument
from edgebench.collector.points import (
    document_to_lines,
    document_to_lines_via_point,
    format_fields,
    format_line,
    format_tags,
)
from edgebench.collector.validate import Rejection, _validate_stepwise, parse_topic, validate
from tests.test_collector import make_doc, payload

NASTY = ["", " ", "a b", "a,b", "a=b", 'a"b', "a\\b", "a\\", "\\", "x\n\t\ry", "#hash", "é ü 日本", '=,\\ "']


def reference_line(measurement: str, tags: dict, fields: dict, ts: int) -> str:  # type: ignore[type-arg]
    p = Point(measurement)
    for k, v in tags.items():
        p.tag(k, v)
    for k, v in fields.items():
        p.field(k, v)
    return p.time(ts, WritePrecision.NS).to_line_protocol()


def fast_line(measurement: str, tags: dict, fields: dict, ts: int) -> str:  # type: ignore[type-arg]
    return format_line(measurement, format_tags(tags), format_fields(fields), ts)


@pytest.mark.parametrize("scenario", ["forward", "transcribe"])
@pytest.mark.parametrize("k", [0, 1, 7, 123, 99_999])
def test_real_documents_byte_identical(scenario: str, k: int) -> None:
    doc = make_doc(k, scenario=scenario)
    assert document_to_lines(doc) == document_to_lines_via_point(doc)
    # and after the wire round trip the collector actually sees
    again = ResultDocument.model_validate_json(payload(doc))
    assert document_to_lines(again) == document_to_lines_via_point(again)


def test_document_with_nasty_strings_and_nonfinite_samples() -> None:
    doc = make_doc(5)
    data = json.loads(payload(doc))
    data["host"] = data["sysinfo"]["hostname"] = "host 1,a=b\\"
    data["config"]["model"] = 'm"o,d el='
    data["run_id"] = 'quote " back \\ slash'
    data["sysinfo"]["libraries"] = {"lib one": 'v"1\\', "z=z": "2"}
    doc = ResultDocument.model_validate(data)
    fw = doc.forward.model_copy(update={"latency_samples_s": [float("nan"), 1.0, float("inf"), 1e-7]})
    doc = doc.model_copy(update={"forward": fw})
    assert document_to_lines(doc) == document_to_lines_via_point(doc)


FLOATS = [0.0, -0.0, 1.0, -1.0, 0.1 + 0.2, 1e16, 1e-7, 123456789.0, 2.5e-300, 1.7976931348623157e308]


@pytest.mark.parametrize("value", [*FLOATS, math.nan, math.inf, -math.inf])
def test_float_formatting(value: float) -> None:
    fields = {"v": value, "keep": 1}
    assert fast_line("m", {"t": "x"}, fields, 1) == reference_line("m", {"t": "x"}, fields, 1)


@pytest.mark.parametrize("text", NASTY)
def test_escaping(text: str) -> None:
    tags = {"t": text, text or "empty": "v", "z": None}
    fields = {"s": text, (text or "k") + "_f": 1.5, "i": 3, "b": True, "c": False, "n": None}
    assert fast_line("me as,ure" + text, tags, fields, 9) == reference_line(
        "me as,ure" + text, tags, fields, 9
    )


def test_no_field_left_gives_empty_line() -> None:
    fields = {"a": math.nan, "b": None, "c": math.inf}
    assert fast_line("m", {"t": "x"}, fields, 1) == reference_line("m", {"t": "x"}, fields, 1) == ""
    assert fast_line("m", {}, {"a": 1}, 1) == reference_line("m", {}, {"a": 1}, 1)


keys = st.text(min_size=0, max_size=8)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(
    measurement=st.text(min_size=1, max_size=8).filter(lambda m: not m.startswith("#")),
    tags=st.dictionaries(keys, st.one_of(st.none(), st.text(max_size=8)), max_size=5),
    fields=st.dictionaries(keys, values, max_size=8),
    ts=st.integers(min_value=0, max_value=2**62),
)
def test_formatter_equals_point(measurement: str, tags: dict, fields: dict, ts: int) -> None:  # type: ignore[type-arg]
    assert fast_line(measurement, tags, fields, ts) == reference_line(measurement, tags, fields, ts)


# ------------------------------------------------------------------ single-parse validation


def test_fast_validation_path_agrees_with_stepwise() -> None:
    topic = "edgebench/v1/lab/host1/result"
    for k in range(5):
        body = payload(make_doc(k))
        fast = validate(topic, body)
        slow = _validate_stepwise(body, parse_topic(topic))  # type: ignore[arg-type]
        assert isinstance(fast, ResultDocument) and fast == slow


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("schema_version"), "bad_schema_version"),  # the model has a default for it
        (lambda d: d.update(schema_version="2.0"), "unsupported_schema_version"),
        (lambda d: d.update(schema_version=1), "bad_schema_version"),
        (lambda d: d.update(seq="x"), "invalid_document"),
    ],
)
def test_fast_path_keeps_rejection_reasons(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(payload(make_doc(1)))
    mutate(data)
    got = validate("edgebench/v1/lab/host1/result", json.dumps(data).encode())
    assert isinstance(got, Rejection) and got.reason == reason, got


# ------------------------------------------------------------------ energy and telemetry (schema 1.1)


def energy_doc(k: int = 3) -> ResultDocument:
    from edgebench.agent.results.schema import EnergyResult, TelemetryResult

    doc = make_doc(k)
    start = doc.created_ns - 2_000_000_000
    energy = EnergyResult(
        source="rapl",
        kind="measured",
        rails=["package-0", "dram"],
        sample_period_s=0.05,
        samples=41,
        window_s=2.0,
        repeats=0,
        idle_w=3.5,
        joules_total=24.0,
        joules_net=17.0,
        joules_per_iteration=6.0,
        joules_net_per_iteration=4.25,
        joules_per_audio_s=0.6,
        joules_net_per_audio_s=0.425,
        average_w=12.0,
        peak_w=15.5,
        trace_start_ns=start,
        trace=[(i * 0.05, 12.0 + (i % 3)) for i in range(41)],
    )
    telemetry = TelemetryResult(
        temperatures_c={"x86_pkg_temp": 71.0},
        temp_max_c=71.0,
        cpu_freq_mhz=3100.5,
        cpu_governor="performance",
        throttled=False,
        trace_start_ns=start,
        trace=[(0.0, 70.0, 3100.0), (0.5, None, 3101.0), (1.0, 71.0, None), (1.5, None, None)],
    )
    return doc.model_copy(update={"energy": energy, "telemetry": telemetry})


def test_energy_and_telemetry_fields_and_trace_points() -> None:
    doc = energy_doc()
    again = ResultDocument.model_validate_json(payload(doc))
    assert again.schema_version == SCHEMA_VERSION
    for d in (doc, again):
        assert document_to_lines(d) == document_to_lines_via_point(d)
    lines = document_to_lines(again)
    inference = lines[0]
    assert inference.startswith("inference,")
    for field in (
        'energy_source="rapl"',
        'energy_kind="measured"',
        "energy_joules_total=24",
        "energy_joules_net=17",
        "energy_idle_w=3.5",
        "energy_joules_per_iteration=6",
        "energy_joules_net_per_iteration=4.25",
        "energy_joules_per_audio_s=0.6",
        "energy_average_w=12",
        "energy_peak_w=15.5",
        "temp_max_c=71",
        "cpu_freq_mhz=3100.5",
        "throttled=false",
    ):
        assert field in inference.split(" ")[1].split(","), field
    assert "energy_joules_per_token" not in inference and "energy_unavailable_reason" not in inference
    power = [line for line in lines if line.startswith("power_sample,")]
    assert len(power) == 41
    assert power[1].endswith(f" {doc.energy.trace_start_ns + 50_000_000}")  # type: ignore[union-attr]
    run_id = f'run_id="{doc.run_id}"'  # every sample names its run (Run detail's $run_id)
    assert f" {run_id},t_s=0.05,watts=13 " in power[1]
    tele = [line for line in lines if line.startswith("telemetry_sample,")]
    assert len(tele) == 4  # a point keeps t_s even when the sensors have nothing
    assert f" cpu_freq_mhz=3101,{run_id},t_s=0.5 " in tele[1] and f" {run_id},t_s=1.5 " in tele[3]
    latency = [line for line in lines if line.startswith("latency_sample,")]
    assert latency and all(f",{run_id} " in line for line in latency)
    assert tele[0].split(" ")[0] == power[0].split(" ")[0].replace("power_sample", "telemetry_sample")


def test_unavailable_energy_is_absent_not_zero() -> None:
    from edgebench.agent.results.schema import EnergyResult

    doc = make_doc(4).model_copy(
        update={"energy": EnergyResult(unavailable_reason="no power source found on this device (…)")}
    )
    (inference,) = [line for line in document_to_lines(doc) if line.startswith("inference,")]
    assert 'energy_unavailable_reason="no power source found on this device (…)"' in inference
    assert "energy_joules" not in inference and "energy_average_w" not in inference
    assert not [line for line in document_to_lines(doc) if line.startswith("power_sample")]
    assert document_to_lines(doc) == document_to_lines_via_point(doc)


def test_variant_tags_only_on_results_that_used_them() -> None:
    from edgebench.collector.points import inference_tags

    plain = make_doc(1, scenario="forward")
    assert not {"torch_mode", "attn_impl", "amp", "noise_snr_db", "speed"} & set(inference_tags(plain))
    varied = plain.model_copy(deep=True)
    varied.config.torch_mode, varied.config.amp, varied.config.speed = "compile", True, 1.10
    varied.config.noise_snr_db = 10.0
    tags = inference_tags(varied)
    got = (tags["torch_mode"], tags["amp"], tags["speed"], tags["noise_snr_db"])
    assert got == ("compile", "true", "1.1", "10")
    # both code paths (fast formatter and influxdb-client Point) agree on the new tags too
    assert document_to_lines(varied) == document_to_lines_via_point(varied)
    recipe = plain.model_copy(deep=True)
    recipe.config.ort_opt_level, recipe.config.label, recipe.config.recipe = "all", "auto opt+qnt", "optimum"
    tags = inference_tags(recipe)
    assert (tags["ort_opt_level"], tags["label"], tags["recipe"]) == ("all", "auto opt+qnt", "optimum")
    assert document_to_lines(recipe) == document_to_lines_via_point(recipe)  # the space is escaped alike


def test_languages_become_tags_and_per_language_fields() -> None:
    """Multilingual Whisper's language (auto or given) and translation are tags; each spoken language's
    WER/CER/detection share is a field; a language that is not a code (it would become part of a field
    name) makes the document invalid (a dead letter)."""
    from edgebench.agent.results.schema import LanguageScore
    from edgebench.collector.points import inference_fields, inference_tags

    doc = make_doc(2, scenario="transcribe")  # a model without a language token: no tag
    assert not {"language", "task"} & set(inference_tags(doc))
    doc.config.language = "auto"  # detection is other work than a given language: its own series
    assert inference_tags(doc)["language"] == "auto" and "task" not in inference_tags(doc)
    scores = [
        LanguageScore(language="de", utterances=4, audio_s=10.7, wer=0.1, cer=0.03, detected=1.0),
        LanguageScore(language="fr", utterances=3, audio_s=12.2, wer=0.4, cer=0.27, detected=None),
    ]
    doc.transcribe = doc.transcribe.model_copy(update={"languages": scores})  # type: ignore[union-attr]
    fields = inference_fields(doc)
    assert (fields["wer_de"], fields["cer_fr"], fields["language_detected_de"]) == (0.1, 0.27, 1.0)
    assert "language_detected_fr" not in {k for k, v in fields.items() if v is not None}
    doc.config.language, doc.config.task = "de", "translate"
    assert (inference_tags(doc)["language"], inference_tags(doc)["task"]) == ("de", "translate")
    assert document_to_lines(doc) == document_to_lines_via_point(doc)
    data = json.loads(payload(doc))
    data["transcribe"]["languages"][0]["language"] = 'de x="1"'
    got = validate("edgebench/v1/lab/host1/result", json.dumps(data).encode())
    assert isinstance(got, Rejection) and got.reason == "invalid_document", got
