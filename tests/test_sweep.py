"""Sweep parsing and grid expansion."""

from __future__ import annotations

import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.sweep import Point, Sweep, parse_list, positive, unit_interval


def test_parse_list_converts_dedupes_and_keeps_order() -> None:
    assert parse_list("8,1,8", int, "--batch-size") == [8, 1]
    assert parse_list("0, 0.3 ,1", float, "--ctc-weight", unit_interval) == [0.0, 0.3, 1.0]
    assert parse_list(None, int, "--x") == []


@pytest.mark.parametrize(
    ("value", "convert", "check", "needle"),
    [
        ("1,x", int, positive, "'x' is not a valid int"),
        ("1,,2", int, positive, "empty item"),
        ("0", int, positive, "must be > 0"),
        ("1.5", float, unit_interval, "between 0 and 1"),
    ],
)
def test_parse_list_errors_are_one_line(value, convert, check, needle) -> None:
    with pytest.raises(EdgebenchError) as err:
        parse_list(value, convert, "--opt", check)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def _sweep(**kw) -> Sweep:
    base = dict(
        models=["m"],
        runtimes=["torch"],
        precisions=["fp32"],
        devices=["cpu"],
        scenarios=["transcribe", "generate", "forward", "load"],
    )
    base.update(kw)
    return Sweep(**base)


def test_each_scenario_varies_only_its_own_axes() -> None:
    sweep = _sweep(
        batch_sizes=[1, 8], audio_seconds=[5.0, 10.0], new_tokens=[10, 100], ctc_weights=[0.0, 1.0]
    )
    pts = sweep.points(hybrid=True)
    assert pts[0] == Point("load")  # load first: it must see a freshly loaded model
    by = {s: [p for p in pts if p.scenario == s] for s in ("forward", "generate", "transcribe")}
    assert len(by["forward"]) == 4  # batch x seconds
    assert len(by["generate"]) == 8  # batch x seconds x tokens
    assert len(by["transcribe"]) == 4  # batch x ctc weight
    assert all(p.new_tokens is None for p in by["forward"])
    assert all(p.audio_seconds is None for p in by["transcribe"])


def test_whisper_gets_no_ctc_weight_and_hybrid_defaults_to_joint() -> None:
    sweep = _sweep(scenarios=["transcribe"])
    assert [p.ctc_weight for p in sweep.points(hybrid=False)] == [None]
    assert [p.ctc_weight for p in sweep.points(hybrid=True)] == [0.3]


def test_sessions_are_the_runtime_cross_product() -> None:
    sweep = _sweep(models=["a", "b"], precisions=["fp32", "int8"])
    assert len(list(sweep.sessions())) == 4


def test_input_length_defaults_per_model() -> None:
    sweep = _sweep(scenarios=["forward"])
    assert [p.audio_seconds for p in sweep.points(hybrid=False, default_seconds=30.0)] == [30.0]
    explicit = _sweep(scenarios=["forward"], audio_seconds=[5.0])
    assert [p.audio_seconds for p in explicit.points(hybrid=False, default_seconds=30.0)] == [5.0]
