"""``edgebench-agent report`` on real runs: every file it links exists and is a valid PNG / SVG / HTML,
plots without data are skipped with a note (never drawn empty), text from results is escaped.

Uses the session fixture ``report_runs`` (tests/conftest.py; slow, > 20 s, shared with test_compare.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.conftest import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALL_PLOTS = (
    "forward_throughput",
    "generate_throughput",
    "latency_vs_input_length",
    "generate_tokens_per_s_vs_batch",
    "generate_tokens_per_s_vs_new_tokens",
    "wer_vs_latency",
    "rtf",
)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_index(out: Path) -> _Links:
    parser = _Links()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    return parser


def assert_valid_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    assert len(data) > 10_000, (path, len(data))  # a real chart, not an empty canvas


def assert_valid_svg(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg"), (path, root.tag)
    assert path.stat().st_size > 5_000, path
    return root


def svg_text(root: ET.Element) -> str:
    return " ".join("".join(el.itertext()) for el in root.iter()).replace("\xa0", " ")


def one_line_error(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgebench-agent: error: "), proc.stderr
    return lines[0]


def test_full_report_across_runs_and_hosts(report_runs, tmp_path: Path) -> None:
    env = report_runs["env"]
    out = tmp_path / "report"
    proc = run_cli(
        "report",
        "--run", report_runs["sweep"][:8], "--run", report_runs["whisper"][:8],
        "--from", str(report_runs["pi5_json"]),
        "--baseline", "precision=fp32",
        "--out", str(out),
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ALL_PLOTS:
        assert_valid_png(out / f"{name}.png")
        assert_valid_svg(out / f"{name}.svg")
        assert f"{name}.png" in proc.stdout
    table = svg_text(assert_valid_svg(out / "results_table.svg"))
    for needle in ("pi5", "lstm-ctc:tiny", "whisper-tiny.en", "int8", "b2 2s 4 tok", "WER/CER"):
        assert needle in table, needle
    speedup = svg_text(assert_valid_svg(out / "speedup_table.svg"))
    assert "speedup vs precision=fp32" in speedup and "summary vs precision=fp32" in speedup
    docs = json.loads((out / "results.json").read_text())
    assert len(docs) == 32 + 2 + 6
    hosts = {d["host"] for d in docs}
    assert len(hosts) == 2 and "pi5" in hosts

    index = parse_index(out)
    links = set(index.links)
    for link in links:
        parsed = urlparse(link)
        assert not parsed.scheme and not parsed.netloc and not link.startswith("/"), link  # relative
        assert (out / unquote(parsed.path)).is_file(), link
    for name in ALL_PLOTS:
        assert {f"{name}.png", f"{name}.svg"} <= links
    assert {"results_table.svg", "speedup_table.svg", "results.json"} <= links
    text = " ".join(index.text)
    assert "Forward energy vs input length" in text and "no forward result carries energy" in text
    assert "40 results from 3 runs on 2 hosts" in text
    assert not (out / "energy_vs_input_length.png").exists()
    # what a reader wants first: the headline, then every result in a plain table (run id, time)
    whisper = [d for d in docs if d["config"]["model"] == "whisper-tiny.en"]
    best = min(d["transcribe"]["wer"] for d in whisper)
    fine = [d for d in whisper if d["transcribe"]["wer"] <= best + 0.01]
    fastest = min(fine, key=lambda d: d["transcribe"]["latency_s"]["mean"])
    line = next(t for t in index.text if "fastest within +1 point WER" in t)
    assert line.startswith(f"{fastest['host']}: ") and f"is {fastest['config']['precision']} " in line, line
    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.count("<tr>") == len(docs) + 1  # a header row and one row per result
    for d in docs:
        assert d["run_id"][:8] in html


def test_plots_without_data_are_skipped_with_a_note(report_runs, tmp_path: Path) -> None:
    out = tmp_path / "pi5-only"
    proc = run_cli("report", "--from", str(report_runs["pi5_json"]), "-o", str(out), env=report_runs["env"])
    assert proc.returncode == 0, proc.stderr
    drawn = ("forward_throughput", "generate_throughput", "latency_vs_input_length",
             "generate_tokens_per_s_vs_new_tokens")  # fmt: skip
    for name in drawn:
        assert_valid_png(out / f"{name}.png")
    for name in ("generate_tokens_per_s_vs_batch", "wer_vs_latency"):  # batch 1 only; untrained model
        assert not (out / f"{name}.png").exists() and not (out / f"{name}.svg").exists()
    text = " ".join(parse_index(out).text)
    assert "needs generate results at two or more batch size" in text
    assert "no transcribe result with a meaningful WER" in text
    assert "local store" not in text  # --from alone: only the file's results
    assert "6 results from 1 runs on 1 hosts: pi5" in text
    assert "skipped WER vs latency" in proc.stdout


def test_text_from_results_is_escaped(report_runs, tmp_path: Path) -> None:
    docs = json.loads(report_runs["pi5_json"].read_text())
    for d in docs:
        d["host"] = '<script>alert("x")</script>&co'
    evil = tmp_path / "evil & <file>.json"
    evil.write_text(json.dumps(docs))
    out = tmp_path / "out"
    proc = run_cli("report", "--from", str(evil), "--out", str(out), "--title", "A <b>title</b>",
                   env=report_runs["env"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    html = (out / "index.html").read_text()
    assert (
        html.count("<script>") == 1 and "<script>alert" not in html and "<b>title</b>" not in html
    )  # ours only
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co" in html
    assert "evil &amp; &lt;file&gt;.json" in html
    assert '<script>alert("x")</script>&co' in " ".join(parse_index(out).text)  # round-trips
    assert '<script>alert("x")</script>&co' in svg_text(assert_valid_svg(out / "results_table.svg"))


def test_missing_matplotlib_names_the_extra(report_runs, tmp_path: Path) -> None:
    out = tmp_path / "never"
    code = "import sys; sys.modules['matplotlib'] = None; from edgebench.agent.cli.main import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "report", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **report_runs["env"]},
    )
    assert "pip install 'edgebench[report]'" in one_line_error(proc)
    assert not out.exists()


def test_bad_input(report_runs, tmp_path: Path) -> None:
    env = report_runs["env"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    malformed = tmp_path / "m.json"
    malformed.write_text("{oops")
    assert "is not a folder" in one_line_error(run_cli("report", "--out", str(a_file), env=env))
    assert "not valid JSON" in one_line_error(
        run_cli("report", "--from", str(malformed), "--out", str(tmp_path / "r"), env=env)
    )
    assert "no run with id" in one_line_error(
        run_cli("report", "--run", "nope", "--out", str(tmp_path / "r"), env=env)
    )
    assert "no selected result has runtime 'nope'" in one_line_error(
        run_cli("report", "--baseline", "runtime=nope", "--out", str(tmp_path / "r"), env=env)
    )
    empty = {"EDGEBENCH_DATA_DIR": str(tmp_path / "empty-store")}
    assert "is empty" in one_line_error(run_cli("report", "--out", str(tmp_path / "r"), env=empty))
    assert not (tmp_path / "r").exists()


def test_help_does_not_import_matplotlib() -> None:
    code = (
        "import sys; from edgebench.agent.cli import main, compare_command, report_command; "
        "print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False"], proc.stderr
    helped = run_cli("--help")
    assert "compare" in helped.stdout and "report" in helped.stdout


# --- energy (schema 1.1 fields), measured with the replay power source -------------------------------


@pytest.fixture(scope="module")
def energy_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real run whose power comes from the replay source (a recorded trace played back while the
    workload runs: the documented way to measure energy on a host without a power sensor)."""
    base = tmp_path_factory.mktemp("energy")
    trace = base / "trace.csv"
    trace.write_text("t_s,watts\n0,4.0\n0.05,6.5\n0.1,5.0\n0.15,7.0\n0.2,4.5\n")
    env = {"EDGEBENCH_DATA_DIR": str(base / "store")}
    proc = run_cli(
        "run", "-m", "lstm-ctc:tiny", "--scenario", "forward,generate", "--precision", "fp32,int8",
        "--audio-seconds", "1,2", "--new-tokens", "2", "--power-source", f"replay:{trace}",
        "--idle-seconds", "0.2", "--min-iterations", "2", "--min-duration", "0", "--warmup", "1",
        "--threads", "1", "--no-publish", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return env


def test_energy_columns_ratios_and_plot(energy_store: dict[str, str], tmp_path: Path) -> None:
    docs = json.loads(run_cli("results", "export", env=energy_store).stdout)
    by_id = {(d["run_id"], d["seq"]): d for d in docs}
    out = json.loads(run_cli("compare", "-b", "precision=fp32", "--json", env=energy_store).stdout)
    rows = [r for r in out["rows"] if not r["is_baseline"]]
    assert len(rows) == 4
    for r in rows:
        doc, base = by_id[(r["run_id"], r["seq"])], by_id[(r["baseline_run_id"], r["baseline_seq"])]
        field = "joules_per_token" if doc["config"]["scenario"] == "generate" else "joules_per_iteration"
        assert r["energy"] == doc["energy"][field] and r["baseline_energy"] == base["energy"][field]
        assert r["energy_ratio"] == pytest.approx(doc["energy"][field] / base["energy"][field], rel=1e-12)
        assert r["energy_unit"] == ("J/tok" if field == "joules_per_token" else "J/iter")
    table = run_cli("compare", "-b", "precision=fp32", env=energy_store).stdout
    assert "energy ×" in table and "J/tok" in table and "J/iter" in table

    report = tmp_path / "r"
    proc = run_cli("report", "--out", str(report), env=energy_store)
    assert proc.returncode == 0, proc.stderr
    assert_valid_png(report / "energy_vs_input_length.png")
    assert_valid_svg(report / "energy_vs_input_length.svg")
    assert "avg W" in svg_text(assert_valid_svg(report / "results_table.svg"))
    assert "energy_vs_input_length.svg" in parse_index(report).links


def test_pareto_front_keeps_only_non_dominated_points() -> None:
    from edgebench.agent.report.plots import pareto_front

    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (0.5, 9.0), (2.0, 3.0), (4.0, 1.0)]
    # (3, 4) is beaten by (2, 3) on both; the two (2, 3) tie and neither dominates the other
    assert pareto_front(points) == [0, 1, 3, 4, 5]
    assert pareto_front([]) == [] and pareto_front([(1.0, 1.0)]) == [0]


def test_report_renders_in_headless_chromium(report_runs, tmp_path: Path) -> None:
    """The page a person opens: Debian's chromium renders index.html from disk (a screenshot, kept in
    $EDGEBENCH_TEST_SCREENSHOTS when set) and its DOM holds the results table; every picture loaded in
    the browser (the page marks one that did not, which a copy without one picture proves) and every
    link the page names resolves to a file of the folder."""
    import os
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium is not None, (
        "chromium is not installed (tests/run.sh installs it: apt-get install chromium)"
    )
    out = tmp_path / "report"
    proc = run_cli(
        "report", "--run", report_runs["whisper"][:8], "--run", report_runs["sweep"][:8],
        "--out", str(out), env=report_runs["env"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shot = tmp_path / "report.png"
    browser = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1280,2400", f"--screenshot={shot}", (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert browser.returncode == 0, browser.stderr[-2000:]
    assert_valid_png(shot)
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0 and '<table class="results">' in dom.stdout, dom.stderr[-2000:]
    # every picture loaded in the browser (the page marks one that did not: data-missing)
    assert "<img " in dom.stdout and 'data-missing="true"' not in dom.stdout, dom.stdout[-3000:]
    index = parse_index(out)
    for link in index.links:
        assert (out / unquote(urlparse(link).path)).is_file(), link
    # ... and the mark is real: the same report copied without one of its pictures shows it missing
    copy = tmp_path / "copied"
    shutil.copytree(out, copy)
    src = re.search(r'<img src="([^"]+)"', (copy / "index.html").read_text())[1]  # type: ignore[index]
    (copy / unquote(src)).unlink()
    page = (copy / "index.html").as_uri()
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.stdout.count('data-missing="true"') == 1, dom.stdout[-3000:]
    assert f"missing picture: {src}" in dom.stdout
    keep = os.environ.get("EDGEBENCH_TEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
