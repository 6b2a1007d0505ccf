"""Telemetry readers on fake sysfs/proc trees (kernel ABI layout) and a fake ``vcgencmd`` on PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from edgebench.agent.telemetry import cpufreq, rpi, thermal
from edgebench.agent.telemetry.monitor import TelemetryMonitor, throttle_warning
from tests.conftest import write_executable


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    sysfs, proc = tmp_path / "sys", tmp_path / "proc"
    sysfs.mkdir()
    proc.mkdir()
    monkeypatch.setenv("EDGEBENCH_SYSFS_ROOT", str(sysfs))
    monkeypatch.setenv("EDGEBENCH_PROC_ROOT", str(proc))
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + "/usr/bin:/bin")
    return sysfs, proc


def jetson_zones(sysfs: Path) -> None:
    for n, (kind, milli) in enumerate([("CPU-therm", 51500), ("GPU-therm", 49000), ("CPU-therm", 52000)]):
        zone = sysfs / "class" / "thermal" / f"thermal_zone{n}"
        write(zone / "type", kind)
        write(zone / "temp", str(milli))
    zone0 = sysfs / "class" / "thermal" / "thermal_zone0"
    write(zone0 / "trip_point_0_type", "critical")
    write(zone0 / "trip_point_0_temp", "105000")
    write(zone0 / "trip_point_1_type", "passive")
    write(zone0 / "trip_point_1_temp", "95500")


def test_thermal_zones_names_and_trips(roots: tuple[Path, Path]) -> None:
    jetson_zones(roots[0])
    zones = thermal.thermal_zones()
    assert [z.name for z in zones] == ["CPU-therm", "GPU-therm", "CPU-therm.1"]
    assert zones[0].passive_trip_c == 95.5 and zones[1].passive_trip_c is None
    assert thermal.read_temperatures(zones) == {"CPU-therm": 51.5, "GPU-therm": 49.0, "CPU-therm.1": 52.0}


def test_cpufreq_governor_and_cpuinfo_fallback(roots: tuple[Path, Path]) -> None:
    sysfs, proc = roots
    write(
        proc / "cpuinfo", "processor\t: 0\ncpu MHz\t\t: 2400.000\n\nprocessor\t: 1\ncpu MHz\t\t: 2600.500\n"
    )
    assert cpufreq.cpu_freq_mhz() == pytest.approx(2500.25)  # a VM: no cpufreq
    assert cpufreq.cpu_governor() is None and cpufreq.thermal_throttle_counts() is None
    for n, khz in enumerate([1_500_000, 2_400_000]):
        cpu = sysfs / "devices" / "system" / "cpu" / f"cpu{n}"
        write(cpu / "cpufreq" / "scaling_cur_freq", str(khz))
        write(cpu / "cpufreq" / "scaling_governor", "schedutil")
        write(cpu / "thermal_throttle" / "core_throttle_count", str(3 + n))
        write(cpu / "thermal_throttle" / "package_throttle_count", "7")
    write(sysfs / "devices" / "system" / "cpu" / "cpufreq" / "policy0", "")  # not a cpuN directory
    assert cpufreq.cpu_freq_mhz() == pytest.approx(1950.0)
    assert cpufreq.cpu_governor() == "schedutil"
    assert cpufreq.thermal_throttle_counts() == {"core": 7, "package": 14}


def test_pi_throttled_flags() -> None:
    assert rpi.decode(0x50005) == [
        "under-voltage",
        "throttled",
        "under-voltage-occurred",
        "throttled-occurred",
    ]
    # occurred-bits already set before the window do not count; a 'now' bit in any sample does
    assert rpi.window_flags([0x50000, 0x50000]) == []
    assert rpi.window_flags([0x0, 0x4, 0x40000]) == ["throttled", "throttled-occurred"]
    assert rpi.window_flags([0x0, 0x80000]) == ["soft-temperature-limit-occurred"]


def fake_vcgencmd(bin_dir: Path, value_file: Path) -> None:
    write_executable(
        bin_dir / "vcgencmd",
        f"#!{sys.executable}\nimport sys\n"
        "if sys.argv[1:] == ['get_throttled']:\n"
        f"    print('throttled=' + open({str(value_file)!r}).read().strip())\n",
    )


def test_monitor_flags_pi_throttling_during_the_window(roots: tuple[Path, Path], tmp_path: Path) -> None:
    sysfs, _ = roots
    write(sysfs / "class" / "thermal" / "thermal_zone0" / "type", "cpu-thermal")
    write(sysfs / "class" / "thermal" / "thermal_zone0" / "temp", "61000")
    value = tmp_path / "throttled"
    value.write_text("0x0")
    fake_vcgencmd(tmp_path / "bin", value)
    mon = TelemetryMonitor()
    calm = mon.begin()
    result = mon.summarize(calm)
    assert result.throttled is False and result.throttle_flags == [] and throttle_warning(result) is None
    window = mon.begin()
    value.write_text("0x80008")  # soft temperature limit active now (and recorded as occurred)
    write(sysfs / "class" / "thermal" / "thermal_zone0" / "temp", "82500")
    mon.sample_now(force=True)  # a tick that polls vcgencmd (every PI_FLAGS_EVERY-th does)
    value.write_text("0x80000")
    result = mon.summarize(window)
    assert result.throttled is True
    assert result.throttle_flags == ["soft-temperature-limit", "soft-temperature-limit-occurred"]
    assert result.temperatures_c == {"cpu-thermal": 82.5} and result.temp_max_c == 82.5
    assert [p[1] for p in result.trace] == [61.0, 82.5, 82.5]
    warning = throttle_warning(result)
    assert warning and "soft-temperature-limit" in warning and "82 °C" in warning


def test_monitor_x86_throttle_counter_and_no_sensors(roots: tuple[Path, Path]) -> None:
    sysfs, _ = roots
    mon = TelemetryMonitor()
    w = mon.begin()
    nothing = mon.summarize(w)
    assert nothing.throttled is None and nothing.temperatures_c == {} and nothing.cpu_freq_mhz is None
    counter = sysfs / "devices" / "system" / "cpu" / "cpu0" / "thermal_throttle" / "package_throttle_count"
    write(counter, "2")
    mon = TelemetryMonitor()
    w = mon.begin()
    write(counter, "5")
    result = mon.summarize(w)
    assert result.throttled is True and result.throttle_flags == ["package-thermal-throttle"]


def test_monitor_jetson_state(roots: tuple[Path, Path], tmp_path: Path) -> None:
    write_executable(tmp_path / "bin" / "nvpmodel", f"#!{sys.executable}\nprint('NV Power Mode: MAXN\\n0')\n")
    mon = TelemetryMonitor()
    assert mon.summarize(mon.begin()).nvpmodel == "MAXN"
    mon = TelemetryMonitor(jetson_state=lambda: ("15W", False))
    result = mon.summarize(mon.begin())
    assert (result.nvpmodel, result.jetson_clocks) == ("15W", False)
