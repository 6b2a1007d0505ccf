"""Runtime registry: name -> session class, imported lazily so unused runtimes cost nothing."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from edgebench.agent.errors import EdgebenchError

if TYPE_CHECKING:
    from edgebench.agent.runtimes.base import RuntimeSession

# name -> (module, class, pip extra that provides the runtime)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "torch": ("edgebench.agent.runtimes.torch_runtime", "TorchSession", "torch"),
    "onnxruntime": ("edgebench.agent.runtimes.onnx_runtime", "OnnxRuntimeSession", "onnx"),
    "ctranslate2": ("edgebench.agent.runtimes.ctranslate2_runtime", "CTranslate2Session", "ctranslate2"),
    "litert": ("edgebench.agent.runtimes.litert_runtime", "LiteRTSession", "litert"),
}


def runtime_class(name: str) -> type[RuntimeSession]:
    """The session class for a runtime name, with a clear error for unknown names."""
    try:
        module, cls, _extra = RUNTIMES[name]
    except KeyError:
        raise EdgebenchError(
            f"unknown runtime '{name}': available runtimes are {', '.join(RUNTIMES)}"
        ) from None
    return getattr(importlib.import_module(module), cls)
