"""NVIDIA GPUs through NVML (``nvidia-ml-py``, imported as ``pynvml``; extra ``edgebench[nvidia]``).

Volta and newer expose ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded): a counter,
integrated exactly by differences. Older GPUs raise NVMLError (Not Supported) there; they are polled with
``nvmlDeviceGetPowerUsage`` (mW), whose value the driver refreshes about every 20-100 ms (and averages over
up to 1 s on some boards), so it is integrated by the trapezoid rule. All GPUs of the machine are summed
(one rail per GPU); ``EDGEBENCH_NVML_DEVICES=0,2`` restricts them.
"""

from __future__ import annotations

import contextlib
import os
import time

from edgebench.agent.errors import MissingExtraError, require
from edgebench.agent.power.base import PowerSource, Reading, SourceUnavailable


class NvmlSource(PowerSource):
    name = "nvml"
    kind = "measured"
    update_period_s = 0.1
    min_poll_period_s = 0.01

    def __init__(self) -> None:
        super().__init__()
        self.nvml = None
        self.handles: list = []
        self.counter = False

    def open(self) -> None:
        try:
            nvml = require("pynvml", "nvidia", "The NVML power source")
        except MissingExtraError as e:
            raise SourceUnavailable(str(e)) from None
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise SourceUnavailable(f"NVML not usable (no NVIDIA driver/GPU?): {e}") from None
        self.nvml = nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            wanted = os.environ.get("EDGEBENCH_NVML_DEVICES")
            indices = [int(i) for i in wanted.split(",")] if wanted else list(range(count))
            if not indices:
                raise SourceUnavailable("NVML sees no GPU")
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
            self.rails = [f"gpu{i}" for i in indices]
            try:
                for h in self.handles:
                    nvml.nvmlDeviceGetTotalEnergyConsumption(h)
                self.counter = True
            except nvml.NVMLError:
                self.counter = False
                for h in self.handles:
                    nvml.nvmlDeviceGetPowerUsage(h)
        except nvml.NVMLError as e:
            self.close()
            raise SourceUnavailable(f"NVML cannot read GPU power: {e}") from None
        except ValueError:
            self.close()
            raise SourceUnavailable("EDGEBENCH_NVML_DEVICES must be GPU indices, e.g. 0,1") from None

    def read(self) -> Reading:
        nvml = self.nvml
        assert nvml is not None
        t = time.monotonic()
        if self.counter:
            mj = [nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]
            return Reading(t=t, joules=sum(mj) / 1e3)
        mw = [nvml.nvmlDeviceGetPowerUsage(h) for h in self.handles]
        rails = {name: w / 1e3 for name, w in zip(self.rails, mw, strict=True)}
        return Reading(t=t, watts=sum(mw) / 1e3, rails=rails)

    def describe(self) -> str:
        how = "total-energy counter" if self.counter else "power polling"
        return super().describe() + f"; {how}"

    def close(self) -> None:
        if self.nvml is not None:
            with contextlib.suppress(self.nvml.NVMLError):
                self.nvml.nvmlShutdown()
            self.nvml = None
