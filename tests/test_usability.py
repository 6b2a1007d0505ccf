"""What a new user runs into first (issue 17): broker addresses, recipe files, messages, fail-fast
checks, recordings without transcripts. Every test runs the real entry points in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import tomllib

from tests.conftest import run_cli

CHEAP = ["--model", "lstm-ctc:tiny", "--min-iterations", "2", "--min-duration", "0", "--warmup", "0"]
CHEAP += ["--no-store", "--no-publish", "--idle-seconds", "0", "--threads", "1"]


def one_line(proc: subprocess.CompletedProcess, prog: str = "edgebench-agent") -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("broker.local", ("broker.local", None, None)),
        ("broker.local:1884", ("broker.local", 1884, None)),
        ("mqtt://10.0.0.5:1883", ("10.0.0.5", 1883, False)),
        ("mqtts://broker.example.org", ("broker.example.org", None, True)),
        ("MQTTS://broker:8883/", ("broker", 8883, True)),
        ("[::1]:1883", ("::1", 1883, None)),
    ],
)
def test_broker_forms_people_type(typed: str, expected: tuple) -> None:
    from edgebench.agent.publish.config import parse_broker

    assert parse_broker(typed) == expected


@pytest.mark.parametrize(
    "typed",
    ["bad host", "http://broker", "mqtt://", "broker:99999", "broker:abc", "mqtt://u:p@broker", "-x", "a/b"],
)
def test_bad_broker_is_refused_before_anything_loads(typed: str) -> None:
    proc = run_cli("run", *CHEAP, "--broker", typed)
    line = one_line(proc)
    assert "--broker" in line, line
    assert "loading" not in proc.stderr


def test_mqtts_scheme_turns_tls_on() -> None:
    from edgebench.agent.publish.config import load_config

    cfg = load_config(None, broker="mqtts://broker.example.org", environ={})
    assert (cfg.broker_host, cfg.port, cfg.tls) == ("broker.example.org", 8883, True)
    cfg = load_config(None, broker="mqtt://broker.example.org", environ={})
    assert (cfg.port, cfg.tls) == (1883, False)


def test_recipe_show_round_trips_through_tomllib() -> None:
    from edgebench.agent.recipes.spec import load_recipe

    proc = run_cli("recipe", "show", "espnet-lab2")  # stdout is a pipe here, as with `> my.toml`
    assert proc.returncode == 0, proc.stderr
    shown = tomllib.loads(proc.stdout)
    original = tomllib.loads(load_recipe("espnet-lab2").path.read_text(encoding="utf-8"))
    assert shown == original
    assert "# steps here" in proc.stdout and "edgebench-agent run" in proc.stdout
    helptext = run_cli("recipe", "run", "--help", env={"COLUMNS": "120"})
    assert "[quick]" in helptext.stdout, helptext.stdout


def test_no_power_source_is_one_short_line() -> None:
    proc = run_cli("run", *CHEAP, "--scenario", "forward", "--power-source", "auto")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    caption = text[text.index("energy: not measured") :].split("models")[0]
    assert "power probe" in caption and "jtop" not in caption and "rapl" not in caption, proc.stdout
    probe = run_cli("power", "probe")
    assert probe.returncode == 0, probe.stderr
    assert "on x86 use" not in probe.stdout  # powertop no longer points at rapl when rapl is absent


def test_timing_runs_need_no_transcripts(tmp_path: Path) -> None:
    from edgebench.agent.datasets.loader import load_dataset

    for i, utt in enumerate(load_dataset("builtin", limit=2)):
        sf.write(tmp_path / f"rec{i}.wav", utt.audio, 16000)  # recordings only, no .txt, no .tsv
    proc = run_cli("run", *CHEAP, "--scenario", "forward", "--audio-seconds", "1", "--dataset", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", *CHEAP, "--scenario", "transcribe", "--dataset", str(tmp_path), "--ctc-weight", "1")
    line = one_line(proc)
    assert "No transcript for" in line and "forward" in line, line


def test_fail_fast_before_the_idle_baseline(tmp_path: Path) -> None:
    trace = tmp_path / "power.csv"
    trace.write_text("t_s,watts\n" + "".join(f"{i * 0.1:.1f},5\n" for i in range(50)))
    power = ["--power-source", f"replay:{trace}", "--idle-seconds", "30"]
    for bad, words in ((["--precision", "fp16"], "fp16"), (["--device", "cuda"], "CUDA")):
        proc = run_cli("run", *CHEAP[:-4], *power, "--scenario", "forward", *bad)
        line = one_line(proc)
        assert words in line, line
        assert "idle baseline" not in proc.stderr and "loading" not in proc.stderr, proc.stderr


def test_suggestions_are_listed_once() -> None:
    line = one_line(run_cli("run", "--model", "whisper-tiny.e", "--no-store", "--no-publish"))
    names = line.split("did you mean ")[1].rstrip("?").split(", ")
    assert names and len(names) == len(set(names)), line


def test_bad_integer_is_one_line_like_every_other_error() -> None:
    line = one_line(run_cli("run", "--model", "lstm-ctc:tiny", "--threads", "many"))
    assert "--threads" in line and "integer" in line and "edgebench-agent run --help" in line, line
    proc = run_cli("recipe")  # no arguments: the help, as before
    assert "Usage" in proc.stdout + proc.stderr


def test_collector_run_without_configuration_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEBENCH_COLLECTOR_")}
    proc = subprocess.run(
        [sys.executable, "-c", "from edgebench.collector.cli import main; main()", "run"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    line = one_line(proc, "edgebench-collector")
    assert "--config" in line, line


def test_whisper_on_torch_prints_no_library_noise() -> None:
    proc = run_cli(
        "run", "--model", "whisper-tiny.en", "--scenario", "generate", "--new-tokens", "2",
        "--audio-seconds", "5", "--min-iterations", "3", "--min-duration", "0", "--warmup", "1",
        "--precision", "fp32,int8", "--no-store", "--no-publish", "--power-source", "none",
        "--idle-seconds", "0", "--threads", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for noise in ("Warning", "deprecated", "progress.py:", "run_command.py:"):
        assert noise not in proc.stderr, proc.stderr


def test_a_cpu_burning_neighbour_is_detected_and_recorded() -> None:
    """Interference: a child process spinning on a CPU during the measured window (not the agent's own:
    started from here, outside the agent's process tree) shows up in the document and the table."""
    burn = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        proc = run_cli("run", *CHEAP[:-4], "--power-source", "none", "--idle-seconds", "0", "--threads", "1",
                       "--scenario", "forward", "--min-duration", "3", "--json")  # fmt: skip
    finally:
        burn.kill()
        burn.wait()
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[0]
    other = doc["interference"]
    assert other["busy"] is True and other["other_cores"] >= 0.5, other  # one core spun the whole time
    assert other["other_cpu_s"] >= 0.5 * other["window_s"], other
    assert any(w.startswith("busy machine") for w in doc["warnings"]), doc["warnings"]
    quiet = run_cli("run", *CHEAP, "--power-source", "none", "--scenario", "forward", "--json")
    assert quiet.returncode == 0, quiet.stderr
    calm = json.loads(quiet.stdout)[0]["interference"]  # no assertion on its size: this VM is shared
    assert calm["window_s"] > 0 and calm["busy"] == (calm["other_cores"] >= 0.25), calm


def test_tables_read_well_at_80_columns(tmp_path: Path) -> None:
    """The run table and compare at 80 columns: nothing wider, nothing cut (no …), names one types
    whole, and every figure whole (a number split over two lines reads as two numbers)."""
    env = {"EDGEBENCH_DATA_DIR": str(tmp_path / "store"), "COLUMNS": "80"}
    args = ["--model", "lstm-ctc:tiny", "--runtime", "torch,onnxruntime", "--precision", "fp32,int8"]
    args += ["--scenario", "forward,transcribe", "--ctc-weight", "1", "--min-iterations", "2"]
    args += ["--min-duration", "0", "--warmup", "0", "--power-source", "none", "--idle-seconds", "0"]
    args += ["--no-publish", "--threads", "1", "--limit", "2"]
    proc = run_cli("run", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(run_cli("results", "show", "last", "--json", env=env).stdout)
    compared = run_cli("compare", "--baseline", "runtime=torch", env=env)
    assert compared.returncode == 0, compared.stderr
    for text in (proc.stdout, compared.stdout):
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= 80, text
        assert "…" not in text, text
        assert "lstm-ctc:tiny" in text and "onnxruntime" in text, text
    for d in docs:
        stats = (d["forward"] or d["transcribe"])["latency_s"]
        half = (stats["ci95_high"] - stats["ci95_low"]) / 2
        assert f"{stats['mean'] * 1e3:.1f}±{half * 1e3:.1f}" in proc.stdout, proc.stdout  # whole
        assert f"{stats['mean'] * 1e3:.1f}" in compared.stdout, compared.stdout


def test_models_listing_keeps_every_name_whole_at_80_columns() -> None:
    from edgebench.models.registry import all_specs

    proc = run_cli("models", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in proc.stdout, proc.stdout
    names = {line.split()[0] for line in lines if line.strip()}
    assert {s.name for s in all_specs()} <= names, proc.stdout  # each name whole, at a row's start


def test_recipe_list_keeps_names_and_words_whole_at_80_columns() -> None:
    """The recipe table wraps only between words (it once printed `Transformer-hybri|d`)."""
    from edgebench.agent.recipes.spec import builtin_names, load_recipe

    proc = run_cli("recipe", "list", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    recipes = [load_recipe(name) for name in builtin_names()]
    table = proc.stdout[proc.stdout.index(" name ") : proc.stdout.index("seed: the benchmark")]
    lines = table.splitlines()  # (the files line after the caption is a path: never broken, may be longer)
    assert max(len(line.rstrip()) for line in lines) <= 80 and "…" not in proc.stdout, proc.stdout
    whole = {
        w for r in recipes for w in [r.name, *r.title.split(), *", ".join(s.label for s in r.steps).split()]
    }
    whole |= {r.seed.split()[0] for r in recipes} | {"name", "reproduces", "seed", "steps"}
    # every word of the rows is a whole word of a name, title, seed or step (a split word is not)
    words = {w for w in table.split() if set(w) != {"─"}}
    assert words <= whole, words - whole
    for recipe in recipes:
        assert any(line.split()[:1] == [recipe.name] for line in lines), recipe.name
