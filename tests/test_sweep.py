"""The run specification: the sweep grid, the flat options of `run`/recipes and the spec's JSON form."""

from __future__ import annotations

import inspect

import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.runspec import OPTIONS, RunSpec, from_options, option_defaults, to_options
from edgebench.agent.sweep import Point, SweepSpec


def test_comma_lists_convert_dedupe_and_keep_order() -> None:
    spec = from_options({"model": "m", "batch_size": "8,1,8", "ctc_weight": "0, 0.3 ,1"})
    assert spec.sweep.batch_sizes == [8, 1]
    assert spec.sweep.ctc_weights == [0.0, 0.3, 1.0]
    assert from_options({"model": "m", "audio_seconds": None}).sweep.audio_seconds == []


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"batch_size": "1,x"}, "--batch-size: 'x' is not a valid int"),
        ({"batch_size": "1,,2"}, "empty item"),
        ({"batch_size": "0"}, "--batch-size: 0 must be > 0"),
        ({"ctc_weight": "1.5"}, "between 0 and 1"),
        ({"precision": "fp8"}, "--precision: fp8 is not one of fp32, fp16, int8"),
        ({"min_iterations": 0}, "--min-iterations must be >= 1"),
        ({"runtime": "onnxruntime", "torch_mode": "compile"}, "apply to the torch runtime only"),
        ({"label": "a\nb"}, "--label"),
        ({"bogus": 1}, "unknown run option 'bogus'"),
    ],
)
def test_bad_options_are_one_line(options, needle) -> None:
    with pytest.raises(EdgebenchError) as err:
        from_options({"model": "m", **options})
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_json_round_trip_and_strict_parsing() -> None:
    spec = from_options({"model": "whisper-tiny.en", "runtime": "torch", "torch_mode": "compile", "limit": 3})
    assert RunSpec.parse(spec.to_json()) == spec
    assert to_options(RunSpec.parse(spec.to_json()))["torch_mode"] == "compile"
    with pytest.raises(EdgebenchError, match=r"run spec: sweep.batchsize: Extra inputs are not permitted"):
        RunSpec.parse({"sweep": {"models": ["m"], "batchsize": [8]}})
    with pytest.raises(EdgebenchError, match=r"run spec: version"):
        RunSpec.parse({"version": 2, "sweep": {"models": ["m"]}})
    with pytest.raises(EdgebenchError, match="run spec: "):
        RunSpec.parse("{not json")


def test_run_command_defaults_are_the_specs() -> None:
    """`run`'s typer signature restates the option names for --help; its defaults must be the spec's."""
    from edgebench.agent.cli.main import run

    params = inspect.signature(run).parameters
    defaults = option_defaults()
    not_run_options = {"recipe", "campaign"}  # set by recipes and jobs, never typed
    for name in OPTIONS:
        if name in not_run_options or name == "model":
            continue
        assert name in params, name
        assert params[name].default == defaults[name], name
    cli_only = set(params) - set(OPTIONS)
    assert cli_only == {"json_out", "config", "broker", "fleet"}  # where results go, not what is measured


def _sweep(**kw) -> SweepSpec:
    base = dict(
        models=["m"],
        runtimes=["torch"],
        precisions=["fp32"],
        devices=["cpu"],
        scenarios=["transcribe", "generate", "forward", "load"],
    )
    base.update(kw)
    return SweepSpec(**base)


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
