"""One entry point for every export target, cached: what ``export`` and the runtimes call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.export.cache import cached_export

if TYPE_CHECKING:
    from edgebench.agent.export.base import ExportArtifact, ExportOptions, ExportTarget
    from edgebench.models.spec import ModelSpec

TARGETS: tuple[ExportTarget, ...] = ("onnx", "tflite", "ctranslate2", "ggml")


def export_model(spec: ModelSpec, options: ExportOptions) -> ExportArtifact:
    """The exported files for ``spec`` under ``options``: from the cache, or exported now (and cached)."""
    if options.target == "onnx":
        from edgebench.agent.export.onnx import check_options, export_onnx

        check_options(options)  # before hashing weights or loading anything
        return cached_export(spec, options, export_onnx)
    if options.target == "tflite":
        from edgebench.agent.export.tflite import export_tflite

        return cached_export(spec, options, export_tflite)
    if options.target == "ctranslate2":
        from edgebench.agent.export.ctranslate2 import check_options, export_ctranslate2

        check_options(options)
        return cached_export(spec, options, export_ctranslate2)
    if options.target == "ggml":
        from edgebench.agent.export.ggml import export_ggml, normalised

        return cached_export(spec, normalised(options), export_ggml)
    raise EdgebenchError(f"unknown export target '{options.target}': use {' or '.join(TARGETS)}")
