"""Trackers: latency loop, memory peak sampling (separate poller process), system info on fake trees."""

from __future__ import annotations

import mmap
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from edgebench.agent.stats import StoppingRule, summarize
from edgebench.agent.trackers import latency as latency_mod
from edgebench.agent.trackers import memory as memory_mod
from edgebench.agent.trackers.latency import Measurement, Timer, measure
from edgebench.agent.trackers.memory import MemoryBudgetExceeded, MemoryTracker, model_size_bytes
from edgebench.agent.trackers.sysinfo import (
    collect_sysinfo,
    detect_device_class,
    library_versions,
    read_cpu_model,
)

MB = 1024 * 1024

# --- latency ---------------------------------------------------------------------------------------


def test_measure_sleep_5ms():
    rule = StoppingRule(warmup=2, min_iterations=20, min_duration_s=0.0)
    m = measure(lambda: time.sleep(0.005), rule)
    assert isinstance(m, Measurement)
    assert m.n >= rule.min_iterations
    assert len(m.warmup_s) == 2
    assert m.stopped_because == "min iterations and min duration reached"
    s = m.summary()
    assert 0.0048 < s.p50 < 0.015  # sleep never returns early; a loaded CI box may oversleep a bit
    assert min(m.samples_s) >= 0.0049
    assert m.elapsed_s >= sum(m.samples_s)


def test_measure_min_duration_drives_iteration_count(clock):
    def fn() -> None:
        clock.t += 2**-8  # ~3.9 ms; powers of two keep the fake clock's sums exact

    rule = StoppingRule(warmup=0, min_iterations=2, min_duration_s=2**-4)
    m = measure(fn, rule)
    assert m.n == 16
    assert m.stopped_because == "min iterations and min duration reached"


class FakeClock:
    """Stands in for perf_counter inside the latency module: only the workload advances time.

    Makes the stopping tests deterministic on a loaded CI machine, where real sleeps get preempted and
    their cv is anyone's guess.
    """

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(latency_mod, "perf_counter", fake)
    return fake


def test_measure_max_iterations_cap_and_cv_reason(clock):
    durations = iter([0.001, 0.003] * 50)  # cv ~ 50 %: only the cap can stop it

    def fn() -> None:
        clock.t += next(durations)

    rule = StoppingRule(warmup=0, min_iterations=5, min_duration_s=0.0, max_cv=0.01, max_iterations=30)
    m = measure(fn, rule)
    assert m.n == 30
    cv = m.summary().cv
    assert m.stopped_because == f"max iterations (cv {cv:.1%} still above 1.0%)"


def test_measure_stops_on_cv_target(clock):
    # Noisy for the first 20 calls, then steady: the running cv falls below 5 % at some point.
    durations = iter([0.01, 0.02] * 10 + [0.01] * 10_000)

    def fn() -> None:
        clock.t += next(durations)

    rule = StoppingRule(warmup=0, min_iterations=10, min_duration_s=0.0, max_cv=0.05, max_iterations=10_000)
    m = measure(fn, rule)
    assert m.stopped_because.startswith("cv ") and m.stopped_because.endswith("<= 5.0%")
    assert 20 < m.n < 10_000
    s = m.summary()
    assert s.cv <= 0.05
    assert summarize(m.samples_s[:-1]).cv > 0.05  # it stopped at the first sample that met the target


def test_measure_max_duration_cap(clock):
    def fn() -> None:
        clock.t += 2**-8

    rule = StoppingRule(warmup=1, min_iterations=1000, min_duration_s=0.0, max_duration_s=10 * 2**-8)
    m = measure(fn, rule)
    assert m.stopped_because == "max duration (only 10 of min 1000 iterations)"
    assert m.n == 10
    assert m.elapsed_s == 10 * 2**-8
    assert m.warmup_s == [2**-8]


def test_measure_sync_progress_and_results():
    calls: list[str] = []
    progress: list[int] = []
    counter = iter(range(1000))

    def fn() -> tuple[float, float]:
        calls.append("fn")
        i = next(counter)
        return (i * 0.1, i * 0.2)  # e.g. the generate scenario's (prefill_s, decode_s)

    rule = StoppingRule(warmup=3, min_iterations=5, min_duration_s=0.0, max_iterations=5)
    m = measure(fn, rule, sync=lambda: calls.append("sync"), on_iteration=progress.append, keep_results=True)
    assert calls == ["fn", "sync"] * 8  # sync after every call, warm-up included
    assert progress == [1, 2, 3, 4, 5]
    assert m.results == [(i * 0.1, i * 0.2) for i in range(3, 8)]  # warm-up results excluded


def test_timer():
    synced: list[int] = []
    with Timer() as t:
        time.sleep(0.01)
    assert 0.0099 < t.elapsed_s < 0.1
    with Timer(sync=lambda: synced.append(1)) as t2:
        pass
    assert synced == [1, 1]
    assert 0 <= t2.elapsed_s < 0.01


# --- memory ----------------------------------------------------------------------------------------


def _transient_200mb() -> None:
    """200 MB of new resident pages, then gone. A private anonymous mapping, not np.ones: after the rest of
    the suite ran in this process, malloc may hand out memory that is already resident (no RSS change)."""
    buf = mmap.mmap(-1, 200 * MB)
    pages = np.frombuffer(buf, dtype=np.uint8)
    pages[:: mmap.PAGESIZE] = 1  # one write per page makes every page resident
    time.sleep(0.2)  # many poller periods, so even a starved poller on a loaded box gets to run
    del pages
    buf.close()


def test_poller_alone_catches_a_transient_peak(monkeypatch):
    """With the kernel high-water mark disabled, the 10 ms sampling by itself must see the spike."""
    monkeypatch.setattr(memory_mod, "_reset_hwm", lambda: False)
    with MemoryTracker() as mt:
        _transient_200mb()
    r = mt.result
    assert mt.warning is None
    assert mt.poller_samples >= 2
    assert r.peak_rss_bytes - r.baseline_rss_bytes >= 180 * MB
    # The array is gone at exit: the exit reading alone would have missed the peak.
    assert psutil.Process().memory_info().rss < r.peak_rss_bytes - 150 * MB
    assert r.sampling_interval_s == 0.01
    assert r.cuda_peak_allocated_bytes is None


def test_memory_tracker_default_sources():
    with MemoryTracker() as mt:
        _transient_200mb()
    assert mt.result.peak_rss_bytes - mt.result.baseline_rss_bytes >= 180 * MB


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_poller_process_is_gone_after_exit():
    with MemoryTracker() as mt:
        pid = mt.poller_pid
        assert pid is not None and psutil.pid_exists(pid)
        assert psutil.Process(pid).ppid() == os.getpid()
    assert _gone(pid)
    assert pid not in [c.pid for c in psutil.Process().children()]


def test_poller_runs_at_low_priority():
    with MemoryTracker() as mt:
        poller_nice = psutil.Process(mt.poller_pid).nice()
    assert poller_nice == min(19, psutil.Process().nice() + 19)  # nice is relative to the parent's


def test_poller_dying_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(memory_mod, "_reset_hwm", lambda: False)
    with MemoryTracker() as mt:
        psutil.Process(mt.poller_pid).kill()
        time.sleep(0.05)
    assert mt.warning is not None and "died" in mt.warning and "exit" in mt.warning
    assert mt.result.peak_rss_bytes >= mt.result.baseline_rss_bytes > 0
    assert _gone(mt.poller_pid)


def test_poller_failing_to_start_falls_back(monkeypatch):
    monkeypatch.setattr(memory_mod.sys, "executable", "/nonexistent/python")
    with MemoryTracker() as mt:
        pass
    assert mt.warning is not None and "could not start" in mt.warning
    assert mt.result.peak_rss_bytes > 0


def test_pss_and_uss_are_sampled_and_ordered():
    """USS (private pages) <= PSS (shared pages split) <= RSS (shared pages counted whole)."""
    with MemoryTracker() as mt:
        _transient_200mb()
    r = mt.result
    assert r.peak_uss_bytes is not None and r.peak_pss_bytes is not None
    assert 0 < r.peak_uss_bytes <= r.peak_pss_bytes <= r.peak_rss_bytes
    assert r.budget_bytes is None and r.budget_exceeded_at_bytes is None


def _grow_until(limit_bytes: int) -> list[np.ndarray]:
    """Allocate 10 MB at a time (written, so resident) up to ``limit_bytes``."""
    held: list[np.ndarray] = []
    while sum(b.nbytes for b in held) < limit_bytes:
        held.append(np.ones(10 * MB, dtype=np.uint8))
        time.sleep(0.02)
    return held


def test_budget_interrupts_the_window_and_the_result_says_where():
    budget = psutil.Process().memory_info().rss + 100 * MB
    mt = MemoryTracker(budget_bytes=budget)
    held: list[np.ndarray] = []
    with pytest.raises(MemoryBudgetExceeded), mt:
        held = _grow_until(600 * MB)  # never finishes: stopped past +100 MB
    assert not held, "the allocation loop ran to its end: the budget did not interrupt it"
    r = mt.result
    assert r.budget_bytes == budget
    assert r.budget_exceeded_at_bytes is not None and r.budget_exceeded_at_bytes > budget
    assert r.peak_rss_bytes < budget + 300 * MB
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handler restored
    assert _gone(mt.poller_pid)


def test_budget_already_exceeded_raises_on_entry_with_a_result():
    mt = MemoryTracker(budget_bytes=1 * MB)
    with pytest.raises(MemoryBudgetExceeded), mt:
        time.sleep(2)  # the poller's first sample is above 1 MB: the window must not run
    assert mt.result.budget_exceeded_at_bytes is not None
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_generous_budget_changes_nothing():
    with MemoryTracker(budget_bytes=10**12) as mt:
        _transient_200mb()
    assert mt.result.budget_exceeded_at_bytes is None and mt.result.budget_bytes == 10**12


def test_result_before_exit_raises():
    with MemoryTracker() as mt, pytest.raises(RuntimeError):
        _ = mt.result


def test_poller_cli_protocol():
    """The poller prints 'ready', then one JSON report once a line arrives on stdin."""
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "edgebench.agent.trackers._rss_poller", str(target.pid), "0.005"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        out, _ = p.communicate("stop\n", timeout=5)
    finally:
        target.kill()
        target.wait()
    import json

    report = json.loads(out)
    assert report["peak_rss_bytes"] > 1 * MB
    assert report["samples"] >= 3
    assert report["target_exited"] is False


def test_model_size_bytes():
    import torch

    lin = torch.nn.Linear(10, 20)  # 200 weights + 20 bias, fp32
    bn = torch.nn.BatchNorm1d(20)  # 40 params; buffers: 2x20 fp32 + num_batches_tracked int64
    model = torch.nn.Sequential(lin, bn)
    assert model_size_bytes(model) == (220 + 40 + 40) * 4 + 8
    tied = torch.nn.Sequential(lin, lin)  # shared parameters count once
    assert model_size_bytes(tied) == 220 * 4
    assert model_size_bytes(lin.half()) == 220 * 2


# --- sysinfo ---------------------------------------------------------------------------------------

RPI5_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 108.00
CPU implementer\t: 0x41
CPU part\t: 0xd0b

Revision\t: d04170
Serial\t\t: 3c1e4b2a9f0d8e7c
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""

RPI_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
"""

JETSON_CPUINFO = """\
processor\t: 0
model name\t: ARMv8 Processor rev 1 (v8l)
BogoMIPS\t: 62.50
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd42
CPU revision\t: 1
"""

NV_TEGRA_RELEASE = (
    "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
    "DATE: Tue Aug  1 19:57:35 UTC 2023\n"
    "# KERNEL_VARIANT: oot\n"
)

UBUNTU_OS_RELEASE = 'NAME="Ubuntu"\nVERSION="20.04.6 LTS (Focal Fossa)"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n'


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def test_sysinfo_raspberry_pi_tree(tmp_path):
    root = _tree(
        tmp_path,
        {
            "proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\x00",
            "proc/cpuinfo": RPI5_CPUINFO,
            "etc/os-release": RPI_OS_RELEASE,
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "ondemand\n",
        },
    )
    info = collect_sysinfo(root=root, libraries=())
    assert info.device_model == "Raspberry Pi 5 Model B Rev 1.0"
    assert info.device_class == "rpi"
    assert info.cpu_model == "Arm Cortex-A76"
    assert info.os == "Debian GNU/Linux 12 (bookworm)"
    assert info.cpu_governor == "ondemand"
    assert info.libraries == {}


def test_cpu_model_falls_back_to_model_line(tmp_path):
    # 32-bit Raspberry Pi OS on a Pi 3: no part table hit, "Hardware" then "Model" lines.
    root = _tree(tmp_path, {"proc/cpuinfo": "processor\t: 0\nHardware\t: BCM2835\nModel\t: Raspberry Pi 3\n"})
    assert read_cpu_model(root) == "BCM2835"
    root2 = _tree(tmp_path / "b", {"proc/cpuinfo": "processor\t: 0\nModel\t: Raspberry Pi 3 Model B\n"})
    assert read_cpu_model(root2) == "Raspberry Pi 3 Model B"


def test_sysinfo_jetson_tree(tmp_path):
    root = _tree(
        tmp_path,
        {
            "etc/nv_tegra_release": NV_TEGRA_RELEASE,
            "proc/device-tree/model": b"NVIDIA Orin Nano Developer Kit\x00",
            "proc/cpuinfo": JETSON_CPUINFO,
            "etc/os-release": UBUNTU_OS_RELEASE,
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "schedutil\n",
        },
    )
    info = collect_sysinfo(accelerator="NVIDIA Orin (nvgpu)", root=root, libraries=())
    assert info.device_class == "jetson"
    assert info.device_model == "NVIDIA Orin Nano Developer Kit"
    assert info.cpu_model == "Arm Cortex-A78AE"
    assert info.os == "Ubuntu 20.04.6 LTS (L4T R35.4.1)"
    assert info.cpu_governor == "schedutil"
    assert info.accelerator == "NVIDIA Orin (nvgpu)"


def test_jetson_detected_by_tegra_release_alone(tmp_path):
    root = _tree(tmp_path, {"etc/nv_tegra_release": NV_TEGRA_RELEASE})
    assert detect_device_class(None, "aarch64", root) == "jetson"


@pytest.mark.parametrize(
    ("model", "arch", "expected"),
    [
        ("NVIDIA Jetson AGX Xavier", "aarch64", "jetson"),
        ("Jetson AGX Orin", "aarch64", "jetson"),
        ("Raspberry Pi 4 Model B Rev 1.4", "aarch64", "rpi"),
        (None, "x86_64", "x86"),
        (None, "AMD64", "x86"),
        (None, "i686", "x86"),
        ("Rockchip RK3588", "aarch64", "other"),
        (None, "arm64", "other"),
    ],
)
def test_detect_device_class(tmp_path, model, arch, expected):
    assert detect_device_class(model, arch, tmp_path) == expected


def test_sysinfo_this_machine():
    info = collect_sysinfo()
    assert info.hostname
    assert info.arch == platform.machine()
    if platform.machine() in ("x86_64", "AMD64", "i686"):
        assert info.device_class == "x86"
    assert info.cpu_cores_logical >= 1
    assert info.ram_bytes > 256 * MB
    assert info.python == platform.python_version()
    assert info.kernel == platform.release()
    assert info.cpu_governor is None or info.cpu_governor.isidentifier()
    assert info.libraries["numpy"] == np.__version__


def test_library_versions_do_not_import(monkeypatch):
    before = set(sys.modules)
    versions = library_versions(["numpy", "surely_not_installed_pkg", "ai_edge_litert", "psutil"])
    assert versions["psutil"] == psutil.__version__
    assert "surely_not_installed_pkg" not in versions
    assert not {"torch", "transformers", "ai_edge_litert"} & (set(sys.modules) - before)


def test_device_model_from_sysfs_device_tree(tmp_path):
    """/proc/device-tree is a link into sysfs; a chroot or container may only have the sysfs one."""
    root = _tree(tmp_path, {"sys/firmware/devicetree/base/model": b"Raspberry Pi 5 Model B Rev 1.0\x00"})
    info = collect_sysinfo(root=root, libraries=())
    assert info.device_model == "Raspberry Pi 5 Model B Rev 1.0" and info.device_class == "rpi"


def test_emulation_is_detected_from_the_kernel_not_uname(tmp_path):
    from edgebench.agent.trackers.sysinfo import detect_emulation

    x86_kernel = _tree(tmp_path / "a", {"proc/sys/kernel/arch": "x86_64\n"})
    assert detect_emulation("aarch64", x86_kernel, environ={}) == "qemu-user aarch64 on x86_64"
    assert detect_emulation("x86_64", x86_kernel, environ={}) is None
    # Older kernels without /proc/sys/kernel/arch: the CPU modalias (qemu-user leaves sysfs alone).
    x86_alias = "cpu:type:x86,ven0000fam0006:feature:,0000\n"
    modalias = _tree(tmp_path / "b", {"sys/devices/system/cpu/modalias": x86_alias})
    assert detect_emulation("aarch64", modalias, environ={}) == "qemu-user aarch64 on x86_64"
    arm = _tree(tmp_path / "c", {"sys/devices/system/cpu/modalias": "cpu:type:aarch64:feature:,0000,0001\n"})
    assert detect_emulation("aarch64", arm, environ={}) is None
    assert detect_emulation("aarch64", tmp_path / "nothing", environ={}) is None  # unknown: not marked
    # The harness that knows decides: any text marks, 0/false clears.
    assert detect_emulation("aarch64", arm, environ={"EDGEBENCH_EMULATED": "qemu-system"}) == "qemu-system"
    assert detect_emulation("aarch64", x86_kernel, environ={"EDGEBENCH_EMULATED": "0"}) is None
    assert (
        detect_emulation("aarch64", arm, environ={"EDGEBENCH_EMULATED": "1"})
        == "declared by EDGEBENCH_EMULATED"
    )
    # 32-bit userlands on a 64-bit kernel run natively (armhf on a Pi's arm64 kernel, i686 on x86_64).
    arm_kernel = _tree(tmp_path / "d", {"proc/sys/kernel/arch": "aarch64\n"})
    assert detect_emulation("armv7l", arm_kernel, environ={}) is None
    assert detect_emulation("i686", x86_kernel, environ={}) is None
    assert detect_emulation("x86_64", arm_kernel, environ={}) == "qemu-user x86_64 on aarch64"
