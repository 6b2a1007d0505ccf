"""Runtime registry: name -> session class, imported lazily so unused runtimes cost nothing."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.runtimes.onnx_options import OrtOptions
from edgebench.agent.runtimes.torch_variants import TorchOptions
from edgebench.agent.runtimes.whispercpp_options import WhisperCppOptions

if TYPE_CHECKING:
    from edgebench.agent.runtimes.base import RuntimeSession

# name -> (module, class, pip extra that provides the runtime)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "torch": ("edgebench.agent.runtimes.torch_runtime", "TorchSession", "torch"),
    "onnxruntime": ("edgebench.agent.runtimes.onnx_runtime", "OnnxRuntimeSession", "onnx"),
    "ctranslate2": ("edgebench.agent.runtimes.ctranslate2_runtime", "CTranslate2Session", "ctranslate2"),
    "litert": ("edgebench.agent.runtimes.litert_runtime", "LiteRTSession", "litert"),
    "whispercpp": ("edgebench.agent.runtimes.whispercpp_runtime", "WhisperCppSession", "whispercpp"),
}


class RuntimeOptions(BaseModel):
    """Each runtime's own options, owned by the runtime (its options class lives next to it); a runtime
    without options has no entry. A session sees only its own (``RuntimeOptions.for_runtime``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    torch: TorchOptions = TorchOptions()
    onnxruntime: OrtOptions = OrtOptions()
    whispercpp: WhisperCppOptions = WhisperCppOptions()

    def check(self, runtimes: list[str], scenarios: list[str]) -> None:
        for name in type(self).model_fields:
            getattr(self, name).check(runtimes, scenarios)

    def result_config(self, runtime: str) -> dict[str, object]:
        """The RunConfig fields a result of ``runtime`` records (its own options, nobody else's)."""
        own = getattr(self, runtime, None)
        return own.result_config() if own is not None else {}


def runtime_class(name: str) -> type[RuntimeSession]:
    """The session class for a runtime name, with a clear error for unknown names."""
    try:
        module, cls, _extra = RUNTIMES[name]
    except KeyError:
        raise EdgebenchError(
            f"unknown runtime '{name}': available runtimes are {', '.join(RUNTIMES)}"
        ) from None
    return getattr(importlib.import_module(module), cls)
