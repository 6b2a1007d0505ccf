"""End to end: the real ``edgebench-agent run`` on a real model with the replay power source and a fake
sysfs tree (a hot thermal zone past its passive trip point), then the InfluxDB points of the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebench.agent.results.schema import SCHEMA_VERSION, ResultDocument
from edgebench.collector.points import document_to_lines, document_to_lines_via_point
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data" / "power"
FAST = ["--min-iterations", "3", "--min-duration", "0", "--warmup", "1", "--no-publish"]


def hot_sysfs(root: Path) -> Path:
    """A thermal zone at 86 °C with a passive trip at 80 °C, and a cpufreq at 1.5 GHz (kernel ABI)."""
    zone = root / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("86000\n")
    (zone / "trip_point_0_type").write_text("passive\n")
    (zone / "trip_point_0_temp").write_text("80000\n")
    for cpu in ("cpu0", "cpu1"):
        freq = root / "devices" / "system" / "cpu" / cpu / "cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_cur_freq").write_text("1500000\n")
        (freq / "scaling_governor").write_text("ondemand\n")
    return root


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory: pytest.TempPathFactory) -> list[ResultDocument]:
    sysfs = hot_sysfs(tmp_path_factory.mktemp("sysfs"))
    proc = run_cli(
        "run",
        "--model",
        "lstm-ctc:tiny",
        "--scenario",
        "load,forward,generate",
        "--new-tokens",
        "4",
        "--power-source",
        f"replay:{DATA / 'constant_5w.csv'}",
        "--idle-seconds",
        "0.5",
        "--json",
        *FAST,
        env={"EDGEBENCH_SYSFS_ROOT": str(sysfs)},
    )
    assert proc.returncode == 0, proc.stderr
    return [ResultDocument.model_validate(d) for d in json.loads(proc.stdout)]


def test_energy_filled_from_replay(replay_run: list[ResultDocument]) -> None:
    by = {d.config.scenario: d for d in replay_run}
    assert by["forward"].schema_version == SCHEMA_VERSION
    for scenario in ("forward", "generate"):
        e = by[scenario].energy
        assert e is not None and e.unavailable_reason is None, e
        assert e.source == "replay" and e.kind == "measured" and e.rails == ["cpu", "ddr"]
        assert e.window_s is not None and e.window_s >= 0.5  # the replay's minimum window
        assert e.joules_total == pytest.approx(5.0 * e.window_s, rel=1e-9)  # constant 5 W
        assert e.idle_w == pytest.approx(5.0) and e.joules_net == pytest.approx(0.0, abs=1e-9)
        assert e.average_w == pytest.approx(5.0) and e.peak_w == pytest.approx(5.0)
        calls = (
            len(
                by[scenario].forward.latency_samples_s
                if scenario == "forward"
                else by[scenario].generate.latency_samples_s
            )
            + e.repeats
        )  # type: ignore[union-attr]
        assert e.joules_per_iteration == pytest.approx(e.joules_total / calls)
        assert e.joules_per_audio_s == pytest.approx(e.joules_total / (calls * 10.0))
        assert 2 <= len(e.trace) <= 500 and e.trace_start_ns and e.samples
    assert by["generate"].energy.joules_per_token == pytest.approx(  # type: ignore[union-attr]
        by["generate"].energy.joules_per_iteration / 4  # type: ignore[union-attr,operator]
    )
    load = by["load"].energy
    assert load is not None and load.joules_total is None and load.unavailable_reason


def test_telemetry_and_throttling_warning(replay_run: list[ResultDocument]) -> None:
    for d in replay_run:
        t = d.telemetry
        assert t is not None
        assert t.temperatures_c == {"cpu-thermal": 86.0} and t.temp_max_c == 86.0
        assert t.cpu_freq_mhz == pytest.approx(1500.0) and t.cpu_governor == "ondemand"
        assert t.throttled is True and t.throttle_flags == ["cpu-thermal-passive-trip"]
        assert any("throttled" in w for w in d.warnings)
        assert t.trace and all(p[1] == 86.0 for p in t.trace)


def test_published_fields_and_points(replay_run: list[ResultDocument]) -> None:
    doc = next(d for d in replay_run if d.config.scenario == "generate")
    lines = document_to_lines(doc)
    assert lines == document_to_lines_via_point(doc)
    inference = next(line for line in lines if line.startswith("inference,"))
    for field in (
        'energy_source="replay"',
        'energy_kind="measured"',
        "energy_joules_total=",
        "energy_joules_net=",
        "energy_idle_w=5",
        "energy_joules_per_iteration=",
        "energy_joules_net_per_iteration=",
        "energy_joules_per_token=",
        "energy_joules_per_audio_s=",
        "energy_average_w=5",
        "energy_peak_w=5",
        "temp_max_c=86",
        "cpu_freq_mhz=1500",
        "throttled=true",
    ):
        assert field in inference, field
    power = [line for line in lines if line.startswith("power_sample,")]
    assert len(power) == len(doc.energy.trace)  # type: ignore[union-attr]
    start = doc.energy.trace_start_ns  # type: ignore[union-attr]
    stamps = [int(line.rsplit(" ", 1)[1]) for line in power]
    assert stamps == [start + round(t * 1e9) for t, _ in doc.energy.trace]  # type: ignore[union-attr,operator]
    assert all(",model=lstm-ctc:tiny," in line and "watts=5" in line for line in power)
    telemetry = [line for line in lines if line.startswith("telemetry_sample,")]
    assert len(telemetry) == len(doc.telemetry.trace) and "temp_max_c=86" in telemetry[0]  # type: ignore[union-attr]
    assert document_to_lines(doc) == lines  # deterministic: a re-delivery writes the same points


def test_table_shows_energy_and_throttling(tmp_path: Path) -> None:
    proc = run_cli(
        "run",
        "--model",
        "lstm-ctc:tiny",
        "--scenario",
        "forward",
        "--power-source",
        f"replay:{DATA / 'constant_5w.csv'}",
        "--idle-seconds",
        "0",
        "--no-store",
        *FAST,
        env={"EDGEBENCH_SYSFS_ROOT": str(hot_sysfs(tmp_path))},
    )
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # the caption wraps
    assert "J/it" in text and "THROTTLED" in text
    assert "energy: J per iteration gross (net of idle) and mean W from replay (measured)" in text
    assert "warning: device throttled during the measurement (cpu-thermal-passive-trip" in text


def test_no_source_gives_null_energy_with_reason(tmp_path: Path) -> None:
    proc = run_cli(
        "run",
        "--model",
        "lstm-ctc:tiny",
        "--scenario",
        "forward",
        "--json",
        *FAST,
        env={"EDGEBENCH_SYSFS_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    e = doc["energy"]
    assert e["joules_total"] is None and e["joules_per_iteration"] is None and e["average_w"] is None
    assert e["unavailable_reason"].startswith("no power source found on this device (")
    assert "rapl: no RAPL zones" in e["unavailable_reason"]
    assert doc["telemetry"]["throttled"] is None  # nothing here can tell


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--power-source", "watts"], "--power-source: 'watts' is not one of auto|none|rapl"),
        (["--power-source", "rapl"], "--power-source rapl: no RAPL zones under"),
        (["--power-source", "replay:/nonexistent.csv"], "replay trace /nonexistent.csv"),
        (["--idle-seconds", "-1"], "--idle-seconds must be >= 0"),
        (["--power-rate", "0"], "--power-rate must be within (0, 1000] Hz"),
    ],
)
def test_bad_power_options_are_one_line_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = run_cli(
        "run",
        "--model",
        "lstm-ctc:tiny",
        "--scenario",
        "forward",
        "--no-store",
        *FAST,
        *args,
        env={"EDGEBENCH_SYSFS_ROOT": str(tmp_path)},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edgebench-agent: error: ") and needle in last, last


def test_power_probe_and_watch(tmp_path: Path) -> None:
    base = tmp_path / "class" / "hwmon" / "hwmon0"
    base.mkdir(parents=True)
    (base / "name").write_text("ina219\n")
    (base / "power1_input").write_text("2750000\n")
    env = {"EDGEBENCH_SYSFS_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = run_cli("power", "probe", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    probes = {p["name"]: p for p in json.loads(proc.stdout)}
    assert probes["hwmon:ina219"]["available"] and probes["hwmon:ina219"]["watts"] == pytest.approx(2.75)
    assert not probes["rapl"]["available"] and "no RAPL zones" in probes["rapl"]["detail"]
    assert not probes["nvml"]["available"] and not probes["jtop"]["available"]
    proc = run_cli("power", "probe", env=env)
    assert proc.returncode == 0 and "--power-source auto uses: hwmon:ina219" in proc.stdout, proc.stderr
    proc = run_cli("power", "watch", "--source", "hwmon", "--seconds", "1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "2.750" in proc.stdout and "(hwmon:ina219, measured)" in proc.stdout


def test_transcribe_energy_per_audio_second(tmp_path: Path) -> None:
    """One short utterance: the timed pass is shorter than the replay's 0.5 s minimum window, so batches
    are repeated (untimed) to fill it and energy is spread over every transcribed second."""
    import shutil

    import soundfile as sf

    from edgebench.agent.datasets import loader

    builtin = Path(loader.__file__).parent / "builtin"
    data = tmp_path / "one"
    data.mkdir()
    shutil.copy(builtin / "utt01.flac", data / "utt01.flac")
    header, first = (builtin / "transcripts.tsv").read_text().splitlines()[:2]
    (data / "transcripts.tsv").write_text(f"{header}\n{first}\n")
    seconds = sf.info(str(data / "utt01.flac")).duration
    proc = run_cli(
        "run", "--model", "lstm-ctc:tiny", "--scenario", "transcribe", "--dataset", str(data),
        "--min-iterations", "1", "--min-duration", "0", "--warmup", "0", "--no-publish", "--json",
        "--power-source", f"replay:{DATA / 'constant_5w.csv'}", "--idle-seconds", "0",
        env={"EDGEBENCH_SYSFS_ROOT": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    e = doc["energy"]
    calls = doc["transcribe"]["latency_s"]["n"] + e["repeats"]
    assert e["window_s"] >= 0.5 and e["joules_total"] == pytest.approx(5.0 * e["window_s"], rel=1e-9)
    assert e["joules_per_iteration"] == pytest.approx(e["joules_total"] / calls)
    assert e["joules_per_audio_s"] == pytest.approx(e["joules_total"] / (calls * seconds), rel=1e-6)
    assert e["joules_net"] is None and e["idle_w"] is None  # --idle-seconds 0
