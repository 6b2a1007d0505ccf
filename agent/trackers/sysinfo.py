"""Where a measurement ran: board, CPU, OS, governor and library versions (:class:`SysInfo`).

Everything is read from files and ``importlib.metadata`` — no library is imported to ask its version,
because importing torch just to print ``torch.__version__`` would cost seconds and hundreds of MB on a Pi.
All file paths hang off a ``root`` so tests can feed a fake filesystem tree with the real file formats
of a Raspberry Pi or a Jetson.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
from collections.abc import Iterable
from pathlib import Path

from edgebench.agent.results.schema import DeviceClass, SysInfo

DEFAULT_LIBRARIES: tuple[str, ...] = (
    "torch",
    "transformers",
    "numpy",
    "onnxruntime",
    "ctranslate2",
    "ai_edge_litert",
    "librosa",
)

# Import name → distribution names to try, in order. Several runtimes ship under more than one
# distribution name depending on the platform build (onnxruntime-gpu on Jetson, tflite-runtime on Pi).
_DIST_NAMES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
    "ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
    "tflite_runtime": ("tflite-runtime",),
    "faster_whisper": ("faster-whisper",),
    "ctranslate2": ("ctranslate2",),
    "sklearn": ("scikit-learn",),
    "cv2": ("opencv-python", "opencv-python-headless"),
}

# ARM CPU part numbers (implementer 0x41 = Arm Ltd) → core names. arm64 kernels print no "model name"
# worth reading on these boards (Jetson says "ARMv8 Processor rev 1 (v8l)", a Pi 5 says nothing), so the
# part number is the reliable way to name the core.
_ARM_PARTS: dict[str, str] = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2",
    "0xd4b": "Cortex-A78C",
    "0xd4d": "Cortex-A715",
    "0xd4f": "Neoverse-V2",
    "0xd80": "Cortex-A520",
    "0xd81": "Cortex-A720",
}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def read_device_model(root: Path = Path("/")) -> str | None:
    """Board name from the device tree (ARM boards), without the trailing NUL the kernel stores.
    ``/proc/device-tree`` is a link to the firmware's device tree in sysfs, read directly when the
    link is missing (containers and chroots that bring their own /proc)."""
    text = _read(root / "proc/device-tree/model")
    if text is None:
        text = _read(root / "sys/firmware/devicetree/base/model")
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def detect_device_class(device_model: str | None, arch: str, root: Path = Path("/")) -> DeviceClass:
    """Classify the host: 'jetson', 'rpi', 'x86' or 'other' (board files first, architecture last)."""
    model = device_model or ""
    if (root / "etc/nv_tegra_release").exists() or "NVIDIA Jetson" in model or "Orin" in model:
        return "jetson"
    if "Raspberry Pi" in model:
        return "rpi"
    if arch.lower() in ("x86_64", "amd64", "i686", "i386", "x86"):
        return "x86"
    return "other"


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """First value of every 'key : value' line of /proc/cpuinfo (keys as printed, e.g. 'model name')."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def read_cpu_model(root: Path = Path("/")) -> str | None:
    """CPU name: x86 'model name', else the Arm core from its part number, else Hardware/Model lines."""
    text = _read(root / "proc/cpuinfo")
    fields = _cpuinfo_fields(text) if text else {}
    name = fields.get("model name")
    if name and not name.startswith("ARMv"):
        return name
    implementer, part = fields.get("CPU implementer", "").lower(), fields.get("CPU part", "").lower()
    if implementer == "0x41" and part in _ARM_PARTS:
        return f"Arm {_ARM_PARTS[part]}"
    for key in ("Hardware", "Model"):
        if fields.get(key):
            return fields[key]
    return name or platform.processor() or None


def read_os_name(root: Path = Path("/")) -> str:
    """PRETTY_NAME from os-release, plus the L4T release on a Jetson (what JetPack is installed)."""
    name = None
    text = _read(root / "etc/os-release")
    if text:
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "PRETTY_NAME":
                name = value.strip().strip("\"'")
                break
    if not name:
        name = f"{platform.system()} {platform.release()}".strip()
    l4t = _read_l4t(root)
    return f"{name} (L4T {l4t})" if l4t else name


def _read_l4t(root: Path) -> str | None:
    """'R35.4.1' from '# R35 (release), REVISION: 4.1, GCID: ...' in /etc/nv_tegra_release."""
    text = _read(root / "etc/nv_tegra_release")
    if not text:
        return None
    head = text.splitlines()[0].lstrip("# ").strip() if text.strip() else ""
    major = head.split(" ", 1)[0]
    revision = None
    for part in head.split(","):
        key, _, value = part.partition(":")
        if key.strip() == "REVISION":
            revision = value.strip()
    if not major.startswith("R"):
        return None
    return f"{major}.{revision}" if revision else major


def read_governor(root: Path = Path("/")) -> str | None:
    """cpufreq governor of cpu0 ('performance', 'ondemand', 'schedutil'…), None without cpufreq (VMs)."""
    text = _read(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if text is None:
        return None
    return text.strip() or None


_KERNEL_ARCH_FAMILY = {"x86": "x86_64", "x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
# 32-bit userlands a 64-bit kernel runs natively (compat mode, `linux32`): not emulation.
_NATIVE_COMPAT = {
    "x86_64": {"i386", "i486", "i586", "i686", "x86"},
    "aarch64": {"armv6l", "armv7l", "armv8l", "arm"},
}


def read_kernel_arch(root: Path = Path("/")) -> str | None:
    """The architecture of the running *kernel*, from places a user-mode emulator does not rewrite:
    ``/proc/sys/kernel/arch`` (Linux 6.1+) or the CPU modalias in sysfs (``cpu:type:x86,…``,
    ``cpu:type:aarch64:…``). qemu-user answers ``uname`` with the guest's architecture, not these."""
    text = _read(root / "proc/sys/kernel/arch")
    if text and text.strip():
        return _KERNEL_ARCH_FAMILY.get(text.strip(), text.strip())
    modalias = _read(root / "sys/devices/system/cpu/modalias")
    if modalias and modalias.startswith("cpu:type:"):
        kind = modalias[len("cpu:type:") :].split(",", 1)[0].split(":", 1)[0]
        return _KERNEL_ARCH_FAMILY.get(kind, kind)
    return None


def detect_emulation(arch: str, root: Path = Path("/"), environ: dict[str, str] | None = None) -> str | None:
    """How the CPU is emulated, or None on real hardware.

    ``EDGEBENCH_EMULATED`` decides when set (a harness that knows: any text marks the results, ``0``/
    ``false``/``no`` clears the mark). Otherwise an architecture mismatch between this process
    (``uname -m``, which qemu-user fakes) and the kernel gives user-mode emulation away. Full-system
    emulation (qemu-system) cannot be told from inside; set the variable there.
    """
    env = os.environ if environ is None else environ
    forced = env.get("EDGEBENCH_EMULATED", "").strip()
    if forced:
        if forced.lower() in ("0", "false", "no", "off"):
            return None
        return "declared by EDGEBENCH_EMULATED" if forced.lower() in ("1", "true", "yes", "on") else forced
    kernel = read_kernel_arch(root)
    user = _KERNEL_ARCH_FAMILY.get(arch.lower(), arch.lower())
    if kernel and kernel != user and user not in _NATIVE_COMPAT.get(kernel, set()):
        return f"qemu-user {user} on {kernel}"
    return None


def library_versions(libraries: Iterable[str] = DEFAULT_LIBRARIES) -> dict[str, str]:
    """Installed versions by import name, from package metadata only; missing libraries are skipped."""
    versions: dict[str, str] = {}
    for lib in libraries:
        candidates = _DIST_NAMES.get(lib, (lib, lib.replace("_", "-")))
        for dist in candidates:
            try:
                versions[lib] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def collect_sysinfo(
    accelerator: str | None = None,
    libraries: Iterable[str] = DEFAULT_LIBRARIES,
    root: Path = Path("/"),
) -> SysInfo:
    """Describe this host. ``accelerator`` is the GPU name when the run uses one (the runtime knows it)."""
    import psutil

    arch = platform.machine()
    device_model = read_device_model(root)
    return SysInfo(
        hostname=socket.gethostname(),
        device_model=device_model,
        device_class=detect_device_class(device_model, arch, root),
        cpu_model=read_cpu_model(root),
        arch=arch,
        cpu_cores_logical=psutil.cpu_count(logical=True) or 1,
        cpu_cores_physical=psutil.cpu_count(logical=False),
        ram_bytes=int(psutil.virtual_memory().total),
        os=read_os_name(root),
        kernel=platform.release(),
        python=platform.python_version(),
        cpu_governor=read_governor(root),
        accelerator=accelerator,
        libraries=library_versions(libraries),
        emulated=detect_emulation(arch, root),
    )
