"""Which power source to use: parse ``--power-source``, auto-detect, and probe every source.

Auto-detection tries the sources that measure the most of the device first (a Jetson's module input via
jtop, a Pi 5's PMIC, the CPU package via RAPL, hwmon sensors, then NVIDIA GPUs) and takes the first that
opens. powertop is never auto-selected: each of its reports takes seconds and root, and where it has watts
a direct source usually exists too.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.power.base import PowerSource, SourceUnavailable

# name -> "module:Class"; modules are imported only when that source is tried.
SOURCES: dict[str, str] = {
    "jtop": "edgebench.agent.power.jtop_source:JtopSource",
    "rpi-pmic": "edgebench.agent.power.rpi_pmic:RpiPmicSource",
    "rapl": "edgebench.agent.power.rapl:RaplSource",
    "hwmon": "edgebench.agent.power.hwmon:HwmonSource",
    "nvml": "edgebench.agent.power.nvml:NvmlSource",
    "powertop": "edgebench.agent.power.powertop:PowertopSource",
}
AUTO_ORDER = ("jtop", "rpi-pmic", "rapl", "hwmon", "nvml")
WITH_ARGUMENT = {
    "command": "edgebench.agent.power.command:CommandSource",
    "replay": "edgebench.agent.power.replay:ReplaySource",
    "hwmon": "edgebench.agent.power.hwmon:HwmonSource",
}
CHOICES = "auto|none|rapl|nvml|jtop|hwmon[:CHIP]|rpi-pmic|powertop|command:CMD|replay:PATH"


def is_jetson() -> bool:
    """L4T marks Jetson boards with /etc/nv_tegra_release; the device tree names the module too."""
    from edgebench.agent.power.paths import proc_root, read_text

    model = read_text(proc_root() / "device-tree" / "model") or ""
    return Path("/etc/nv_tegra_release").exists() or "jetson" in model.lower()


def _load(ref: str, arg: str | None) -> PowerSource:
    module, cls = ref.split(":")
    source_cls = getattr(importlib.import_module(module), cls)
    return source_cls(arg) if arg is not None else source_cls()


def check_syntax(spec: str) -> None:
    """A --power-source value is well formed (a known name, or command:/replay: with an argument),
    checked without touching this machine: a controller checks job specs for devices it is not."""
    name, sep, arg = spec.strip().partition(":")
    if name in ("auto", "none") and not sep:
        return
    if sep and (name not in WITH_ARGUMENT or not arg):
        raise EdgebenchError(f"--power-source: '{spec}' is not one of {CHOICES}")
    if not sep and name in ("command", "replay"):
        raise EdgebenchError(
            f"--power-source {name} needs an argument: {name}:{'CMD' if name == 'command' else 'PATH'}"
        )
    if not sep and name not in SOURCES:
        raise EdgebenchError(f"--power-source: '{spec}' is not one of {CHOICES}")


def make_source(spec: str) -> PowerSource:
    """The source a (non-auto) spec names, not opened yet. Unknown specs are a one-line error."""
    name, sep, arg = spec.partition(":")
    if sep:
        if name not in WITH_ARGUMENT or not arg:
            raise EdgebenchError(f"--power-source: '{spec}' is not one of {CHOICES}")
        return _load(WITH_ARGUMENT[name], arg)
    if name in ("command", "replay"):
        raise EdgebenchError(
            f"--power-source {name} needs an argument: {name}:{'CMD' if name == 'command' else 'PATH'}"
        )
    if name not in SOURCES:
        raise EdgebenchError(f"--power-source: '{spec}' is not one of {CHOICES}")
    return _load(SOURCES[name], None)


def open_source(spec: str) -> tuple[PowerSource | None, str | None]:
    """Open the source for ``spec``: (source, None) or (None, why not).

    ``none`` and an auto-detection that finds nothing give a reason; an explicitly named source that
    cannot be opened is an error (the user asked for it, silently measuring nothing would mislead).
    """
    spec = spec.strip()
    if spec == "none":
        return None, "energy measurement disabled (--power-source none)"
    if spec == "auto":
        reasons = []
        for name in AUTO_ORDER:
            if name == "jtop" and not is_jetson():
                reasons.append("jtop: not a Jetson")
                continue
            source = make_source(name)
            try:
                source.open()
                source.read()
                return source, None
            except SourceUnavailable as e:
                reasons.append(f"{name}: {e}")
        return None, "no power source found on this device (" + "; ".join(reasons) + ")"
    source = make_source(spec)
    try:
        source.open()
        source.read()
    except SourceUnavailable as e:
        raise EdgebenchError(f"--power-source {spec}: {e}") from e
    return source, None


@dataclass
class Probe:
    name: str
    available: bool
    kind: str | None = None
    rails: list[str] = field(default_factory=list)
    update_period_s: float | None = None
    watts: float | None = None
    detail: str = ""
    auto: bool = True


def probe_all(extra: list[str] | None = None) -> list[Probe]:
    """Try every source (and any extra specs such as replay:PATH) once; say why each is not usable."""
    out: list[Probe] = []
    for spec in [*SOURCES, *(extra or [])]:
        auto = spec in AUTO_ORDER
        try:
            source = make_source(spec)
        except EdgebenchError as e:
            out.append(Probe(spec, False, detail=str(e), auto=auto))
            continue
        try:
            source.open()
            first = source.read()
            reading = source.read()
            watts = reading.watts
            if watts is None and first.joules is not None and reading.joules is not None:
                dt = reading.t - first.t
                watts = (reading.joules - first.joules) / dt if dt > 0 else None
            out.append(
                Probe(
                    source.name,
                    True,
                    kind=source.kind,
                    rails=list(source.rails),
                    update_period_s=source.update_period_s,
                    watts=watts,
                    detail=source.describe(),
                    auto=auto,
                )
            )
        except SourceUnavailable as e:
            out.append(Probe(spec, False, detail=str(e), auto=auto))
        finally:
            with contextlib.suppress(Exception):
                source.close()
    return out


def check_spec(spec: str) -> None:
    """Validate a --power-source value without opening anything (fail before loading models)."""
    if spec.strip() in ("auto", "none"):
        return
    make_source(spec.strip())
