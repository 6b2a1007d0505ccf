"""Every power source through its real interface on recorded data: sysfs trees laid out as the kernel ABI
documents (RAPL with a wrap-around, hwmon INA3221/INA219), ``vcgencmd`` and ``powertop`` as executables on
PATH printing captured output, a real meter command, and NVML/jtop through stand-ins that honour their
documented Python APIs (the real pynvml/jtop modules, with their hardware calls replaced)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.power.base import SourceUnavailable
from edgebench.agent.power.detect import check_spec, make_source, open_source, probe_all
from tests.conftest import needs, write_executable

DATA = Path(__file__).parent / "data" / "power"
MAX_RANGE = 262_143_328_850  # a real package domain's max_energy_range_uj


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def executable(path: Path, body: str) -> None:
    write_executable(path, f"#!{sys.executable}\n{body}")


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sys"
    root.mkdir()
    monkeypatch.setenv("EDGEBENCH_SYSFS_ROOT", str(root))
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + "/usr/bin:/bin")
    return root


# ------------------------------------------------------------------------------------------ RAPL


def rapl_tree(root: Path, package_uj: int, dram_uj: int, core_uj: int = 0) -> Path:
    base = root / "class" / "powercap"
    (base / "intel-rapl").mkdir(parents=True)  # the control type directory has no energy_uj
    for zone, name, value in (
        ("intel-rapl:0", "package-0", package_uj),
        ("intel-rapl:0:0", "core", core_uj),
        ("intel-rapl:0:1", "dram", dram_uj),
        ("intel-rapl-mmio:0", "package-0", package_uj),  # duplicate of the package on newer Intel
    ):
        write(base / zone / "name", name)
        write(base / zone / "energy_uj", str(value))
        write(base / zone / "max_energy_range_uj", str(MAX_RANGE))
    return base


def test_rapl_sums_package_and_dram_across_a_wrap(sysfs: Path) -> None:
    base = rapl_tree(sysfs, package_uj=MAX_RANGE - 2_000_000, dram_uj=1_000_000)
    src = make_source("rapl")
    src.open()
    assert src.rails == ["package-0", "dram"] and src.kind == "measured"
    first = src.read()
    write(base / "intel-rapl:0" / "energy_uj", "3000000")  # wrapped: +5 J
    write(base / "intel-rapl:0:1" / "energy_uj", "1500000")  # +0.5 J
    write(base / "intel-rapl:0:0" / "energy_uj", "4000000")  # core is inside the package: not added
    second = src.read()
    assert second.joules - first.joules == pytest.approx(5.5, abs=1e-9)
    write(base / "intel-rapl:0" / "energy_uj", "4000000")
    assert src.read().joules - first.joules == pytest.approx(6.5, abs=1e-9)


def test_rapl_missing_and_unreadable(sysfs: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no RAPL zones"):
        make_source("rapl").open()
    base = rapl_tree(sysfs, 1, 1)
    (base / "intel-rapl:0" / "energy_uj").unlink()
    (base / "intel-rapl:0" / "energy_uj").mkdir()  # unreadable as a file, whoever we are
    (base / "intel-rapl:0" / "energy_uj" / "x").write_text("")
    with pytest.raises(SourceUnavailable, match="cannot read"):
        make_source("rapl").open()


def test_auto_detection_picks_rapl_and_explains_the_rest(sysfs: Path) -> None:
    rapl_tree(sysfs, 10, 10)
    source, reason = open_source("auto")
    assert source is not None and source.name == "rapl" and reason is None
    source.close()
    probes = {p.name: p for p in probe_all()}
    assert probes["rapl"].available and probes["rapl"].rails == ["package-0", "dram"]
    assert not probes["rpi-pmic"].available and "vcgencmd not found" in probes["rpi-pmic"].detail
    assert not probes["hwmon"].available and not probes["powertop"].auto


def test_explicit_source_that_is_missing_is_an_error_auto_is_a_reason(sysfs: Path) -> None:
    with pytest.raises(EdgebenchError, match="--power-source rapl: no RAPL zones"):
        open_source("rapl")
    source, reason = open_source("auto")
    assert source is None and reason and "rapl: no RAPL zones" in reason
    assert open_source("none") == (None, "energy measurement disabled (--power-source none)")
    for bad in ("watts", "command", "replay:", "rapl:x"):
        with pytest.raises(EdgebenchError, match="--power-source"):
            check_spec(bad)


# ------------------------------------------------------------------------------------------ hwmon


def test_hwmon_ina3221_uses_the_input_rail_as_total(sysfs: Path) -> None:
    chip = sysfs / "class" / "hwmon" / "hwmon1"
    write(chip / "name", "ina3221")
    write(chip / "update_interval", "140")
    for n, (label, mv, ma) in enumerate(
        [("VDD_IN", 5080, 1200), ("VDD_CPU_GPU_CV", 5072, 400), ("VDD_SOC", 5072, 300)], start=1
    ):
        write(chip / f"in{n}_label", label)
        write(chip / f"in{n}_input", str(mv))
        write(chip / f"curr{n}_input", str(ma))
    write(sysfs / "class" / "hwmon" / "hwmon0" / "name", "cpu_thermal")  # temperatures only: skipped
    write(sysfs / "class" / "hwmon" / "hwmon0" / "temp1_input", "45000")
    src = make_source("hwmon")
    src.open()
    assert src.name == "hwmon:ina3221" and src.rails == ["VDD_IN"] and src.update_period_s == 0.14
    r = src.read()
    assert r.watts == pytest.approx(5.080 * 1.200)
    assert r.rails["VDD_SOC"] == pytest.approx(5.072 * 0.3)


def test_hwmon_power_input_microwatts_and_chip_choice(sysfs: Path) -> None:
    a = sysfs / "class" / "hwmon" / "hwmon0"
    write(a / "name", "ina219")
    write(a / "power1_input", "3250000")
    b = sysfs / "class" / "hwmon" / "hwmon1"
    write(b / "name", "ina226")
    write(b / "power1_input", "1500000")
    write(b / "power1_label", "usb")
    first = make_source("hwmon")
    first.open()
    assert first.name == "hwmon:ina219" and first.read().watts == pytest.approx(3.25)
    chosen = make_source("hwmon:ina226")
    chosen.open()
    assert chosen.rails == ["usb"] and chosen.read().watts == pytest.approx(1.5)
    with pytest.raises(SourceUnavailable, match="named 'ina9'"):
        make_source("hwmon:ina9").open()


# ------------------------------------------------------------------------------------------ Pi 5 PMIC


def fake_vcgencmd(bin_dir: Path, pmic: str | None, throttled: str = "0x0") -> None:
    pmic_out = (
        f"print(open({str(DATA / 'pmic_read_adc.txt')!r}).read(), end='')"
        if pmic
        else "print('error=1 error_msg=\"Command not registered\"')"
    )
    executable(
        bin_dir / "vcgencmd",
        "import sys\n"
        "cmd = sys.argv[1:]\n"
        f"if cmd == ['pmic_read_adc']:\n    {pmic_out}\n"
        f"elif cmd == ['get_throttled']:\n    print('throttled={throttled}')\n"
        "else:\n    sys.exit(1)\n",
    )


def test_rpi_pmic_sums_paired_rails_as_an_estimate(sysfs: Path, tmp_path: Path) -> None:
    fake_vcgencmd(tmp_path / "bin", pmic="yes")
    src = make_source("rpi-pmic")
    src.open()
    assert src.kind == "estimated" and len(src.rails) == 12
    assert "EXT5V" not in src.rails and "BATT" not in src.rails  # voltages without a current channel
    r = src.read()
    assert r.rails["VDD_CORE"] == pytest.approx(6.22421 * 0.861733)
    assert r.watts == pytest.approx(sum(r.rails.values()))
    assert 6.5 < r.watts < 8.0


def test_rpi_pmic_on_a_pi_without_the_command(sysfs: Path, tmp_path: Path) -> None:
    fake_vcgencmd(tmp_path / "bin", pmic=None)
    with pytest.raises(SourceUnavailable, match=r"not supported here .*Raspberry Pi 5"):
        make_source("rpi-pmic").open()


# ------------------------------------------------------------------------------------------ powertop


def test_powertop_csv_sections_and_watts() -> None:
    from edgebench.agent.power.powertop import parse_powertop_csv

    vm = parse_powertop_csv((DATA / "powertop_vm_nowatts.csv").read_text())
    assert vm.discharge_w is None
    assert {"System Information", "Top 10 Power Consumers", "Device Power Report"} <= set(vm.sections)
    assert vm.sections["Device Power Report"][0] == ["Usage", "Device Name"]
    battery = parse_powertop_csv((DATA / "powertop_battery.csv").read_text())
    assert battery.discharge_w == pytest.approx(7.10)
    assert battery.sections["Device Power Report"][0] == ["Usage", "Device Name", "PW Estimate"]
    assert parse_powertop_csv((DATA / "powertop_battery_mw.csv").read_text()).discharge_w == pytest.approx(
        0.82
    )


def fake_powertop(bin_dir: Path, capture: Path) -> None:
    executable(
        bin_dir / "powertop",
        "import sys, time, shutil\n"
        "args = dict(a.split('=', 1) for a in sys.argv[1:] if '=' in a)\n"
        "time.sleep(float(args['--time']))\n"
        f"shutil.copy({str(capture)!r}, args['--csv'])\n",
    )


@needs(os.geteuid() == 0, "the powertop source needs root, as powertop does")
def test_powertop_source_accumulates_reports(sysfs: Path, tmp_path: Path) -> None:
    from edgebench.agent.power.powertop import PowertopSource

    fake_powertop(tmp_path / "bin", DATA / "powertop_battery.csv")
    src = PowertopSource(report_s=0.1)
    src.open()
    try:
        first = src.read()
        deadline = time.monotonic() + 20
        while src.read().t - first.t < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        last = src.read()
    finally:
        src.close()
    assert last.t > first.t and src.rails == ["battery"]
    assert last.joules - first.joules == pytest.approx(7.10 * (last.t - first.t), rel=1e-9)


@needs(os.geteuid() == 0, "the powertop source needs root, as powertop does")
def test_powertop_without_watts_says_why(sysfs: Path, tmp_path: Path) -> None:
    from edgebench.agent.power.powertop import PowertopSource

    fake_powertop(tmp_path / "bin", DATA / "powertop_vm_nowatts.csv")
    with pytest.raises(SourceUnavailable, match="no measured watts"):
        PowertopSource(report_s=0.1).open()


# ------------------------------------------------------------------------------------------ meter command


def test_command_meter_integrates_its_own_lines() -> None:
    line = "print(f'{time.time():.3f}, 4.5 W', flush=True); time.sleep(0.02)"
    code = f"import time\nfor i in range(400):\n    {line}"
    src = make_source(f'command:{sys.executable} -c "{code}"')
    src.open()
    try:
        first = src.read()
        time.sleep(0.3)
        last = src.read()
    finally:
        src.close()
    assert first.watts == 4.5 and last.watts == 4.5 and last.t > first.t
    assert last.joules - first.joules == pytest.approx(4.5 * (last.t - first.t), rel=1e-9)
    assert 0.0 < src.update_period_s < 0.5


def test_command_meter_failures_are_reasons() -> None:
    with pytest.raises(SourceUnavailable, match="exited"):
        make_source(f"command:{sys.executable} -c 'import sys; sys.exit(3)'").open()
    with pytest.raises(SourceUnavailable, match="command:/nonexistent/meter"):
        make_source("command:/nonexistent/meter").open()


# ------------------------------------------------------------------------------------------ NVML


class FakeGpu:
    def __init__(self, watts: float, counter: bool) -> None:
        self.watts, self.counter, self.t0 = watts, counter, time.monotonic()


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The real pynvml module with its C calls replaced by two GPUs following NVML's documented
    contract: mJ from nvmlDeviceGetTotalEnergyConsumption, mW from nvmlDeviceGetPowerUsage, NVMLError
    (Not Supported) from the energy counter on pre-Volta boards."""
    import pynvml

    gpus: list[FakeGpu] = []

    def energy(h: FakeGpu) -> int:
        if not h.counter:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return int(h.watts * (time.monotonic() - h.t0) * 1000) + 1_000_000

    fake = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: len(gpus),
        "nvmlDeviceGetHandleByIndex": lambda i: gpus[i],
        "nvmlDeviceGetTotalEnergyConsumption": energy,
        "nvmlDeviceGetPowerUsage": lambda h: int(h.watts * 1000),
    }
    for name, fn in fake.items():
        monkeypatch.setattr(pynvml, name, fn)
    return gpus


def test_nvml_energy_counter(nvml) -> None:  # type: ignore[no-untyped-def]
    nvml += [FakeGpu(250.0, counter=True), FakeGpu(100.0, counter=True)]
    src = make_source("nvml")
    src.open()
    assert src.rails == ["gpu0", "gpu1"] and "total-energy counter" in src.describe()
    a = src.read()
    time.sleep(0.2)
    b = src.read()
    assert a.watts is None and b.joules > a.joules
    assert (b.joules - a.joules) / (b.t - a.t) == pytest.approx(350.0, rel=0.05)
    src.close()


def test_nvml_power_polling_fallback(nvml, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    nvml.append(FakeGpu(61.5, counter=False))
    monkeypatch.setenv("EDGEBENCH_NVML_DEVICES", "0")
    src = make_source("nvml")
    src.open()
    assert "power polling" in src.describe()
    r = src.read()
    assert r.joules is None and r.watts == pytest.approx(61.5) and r.rails == {"gpu0": 61.5}


def test_nvml_without_a_driver_is_a_reason() -> None:
    # the real library on this machine: no libnvidia-ml.so
    with pytest.raises(SourceUnavailable, match="NVML not usable"):
        make_source("nvml").open()


# ------------------------------------------------------------------------------------------ jtop


class FakeJtop:
    """jtop.jtop's documented client surface (jetson-stats 4.x+): start/close/ok, interval, power,
    nvpmodel, jetson_clocks. Power layout as jtop/core/power.py builds it (Orin NX: VDD_IN is the total)."""

    fail: str | None = None

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = 0.5
        self.nvpmodel = "15W"
        self.jetson_clocks = True
        self.power = {
            "rail": {
                "VDD_CPU_GPU_CV": {
                    "online": True,
                    "type": "INA3221",
                    "volt": 5072,
                    "curr": 840,
                    "power": 4260,
                    "avg": 4100,
                },
                "VDD_SOC": {
                    "online": True,
                    "type": "INA3221",
                    "volt": 5072,
                    "curr": 300,
                    "power": 1521,
                    "avg": 1500,
                },
            },
            "tot": {
                "online": True,
                "type": "INA3221",
                "volt": 5080,
                "curr": 1600,
                "power": 8128,
                "avg": 8000,
                "name": "VDD_IN",
            },
        }

    def start(self) -> None:
        import jtop

        if FakeJtop.fail:
            raise jtop.JtopException(FakeJtop.fail)

    def ok(self, spin: bool = False) -> bool:
        return True

    def close(self) -> None: ...


def test_jtop_module_total_and_rails(monkeypatch: pytest.MonkeyPatch) -> None:
    import jtop

    monkeypatch.setattr(jtop, "jtop", FakeJtop)
    FakeJtop.fail = None
    src = make_source("jtop")
    src.open()
    assert src.rails == ["VDD_IN"] and src.update_period_s == 0.5
    r = src.read()
    assert r.watts == pytest.approx(8.128) and r.rails["VDD_SOC"] == pytest.approx(1.521)
    assert src.jetson_state() == ("15W", True)


def test_jtop_service_missing_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import jtop

    monkeypatch.setattr(jtop, "jtop", FakeJtop)
    FakeJtop.fail = "I can't access jtop.service.\nPlease logout or reboot this board."
    try:
        with pytest.raises(SourceUnavailable, match=r"jtop: I can't access jtop\.service"):
            make_source("jtop").open()
    finally:
        FakeJtop.fail = None
