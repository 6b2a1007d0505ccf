"""whisper.cpp model files as cached, copyable exports (``export --to ggml``).

The file is written from the Hugging Face layout edgebench already has for a Whisper model (``--weights
DIR``, the local Hugging Face cache, or the conversion of a packaged CTranslate2 model) by
:mod:`edgebench.models.whisper.ggml`, with numpy and safetensors only. Its type follows the run's
precision: fp16 is whisper.cpp's f16 file, int8 its q8_0 (or q5_1) file, quantised as whisper.cpp's own
``quantize`` tool would. There is no fp32 variant: whisper.cpp 1.8.5 (the one pywhispercpp 1.5.1 ships)
aborts the process on an f32 file on the CPU (``GGML_ASSERT(src0->type == GGML_TYPE_F16)`` in its
convolution), measured here; its reference float format is f16.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.export.base import ExportArtifact, ExportOptions

if TYPE_CHECKING:
    from edgebench.models.spec import ModelSpec

FILE = "model.bin"
QUANTISATIONS = ("q8_0", "q5_1")
NO_F32 = (
    "whisper.cpp 1.8.5 (pywhispercpp 1.5.1) cannot run f32 ggml files on the CPU (its convolution asserts "
    "f16 kernels and aborts): use --precision fp16 (whisper.cpp's reference format) or int8 (q8_0, q5_1)"
)


def normalised(options: ExportOptions) -> ExportOptions:
    """The one spelling of each variant: f16 as ``precision fp16``, a quantised file as ``quantize q8_0``
    (or q5_1) on the f16 file it is quantised from, so that ``run`` and ``export`` share the cache."""
    if options.quantize is not None:
        if options.quantize not in QUANTISATIONS:
            kinds = " or ".join(QUANTISATIONS)
            raise EdgebenchError(f"--quantize {options.quantize}: whisper.cpp files are quantised as {kinds}")
        return dataclasses.replace(options, precision="fp16")
    if options.precision != "fp16":
        raise EdgebenchError(NO_F32)
    return options


def ggml_type(options: ExportOptions) -> str:
    """The ggml file type of (normalised) ``options``: f16, q8_0 or q5_1."""
    return options.quantize or "f16"


def export_ggml(spec: ModelSpec, options: ExportOptions, out_dir: Path) -> ExportArtifact:
    """Write ``out_dir/model.bin`` (see the module docstring)."""
    from edgebench.agent.errors import require
    from edgebench.models.whisper.ggml import write_ggml
    from edgebench.models.whisper.weights import resolve_whisper_weights

    if spec.family != "whisper":
        raise EdgebenchError(f"whisper.cpp runs Whisper models only, not {spec.name}")
    require("safetensors", "export", f"writing {spec.name} as a whisper.cpp file")
    source = resolve_whisper_weights(spec, options.weights)
    facts = write_ggml(source.path, out_dir / FILE, ggml_type(options))
    label = str(source.path) if source.source == "local-dir" else source.source
    return ExportArtifact(
        model=spec.name,
        options=options,
        directory=out_dir,
        files={"model": out_dir / FILE},
        meta={"weights_source": label, "trained": True, **facts},
    )
