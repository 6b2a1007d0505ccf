"""What an export produces, shared by every exporter (ONNX, TFLite) and the runtimes that load it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ExportTarget = Literal["onnx", "tflite", "ctranslate2", "ggml"]


@dataclass(frozen=True)
class ExportOptions:
    """Everything that changes the exported files (and therefore the cache key)."""

    target: ExportTarget
    precision: str = "fp32"
    """fp32 or fp16 (weights stored in half precision)."""
    quantize: str | None = None
    """None or 'int8' (dynamic-range quantisation of the weights); whisper.cpp files: 'q8_0' or 'q5_1'."""
    weights: str | None = None
    """The --weights the torch model was loaded from (None: the model's default source)."""
    seed: int = 0
    """Seed of untrained (random) hybrid weights: a different seed is a different model."""


@dataclass
class ExportArtifact:
    """Files of one exported model, by component name ('encoder', 'decoder', 'ctc_head', ...)."""

    model: str
    options: ExportOptions
    directory: Path
    files: dict[str, Path]
    reused: bool = False
    """True when the artifact came from the cache instead of being exported now."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Exporter-specific facts the runtime needs (input/output names, KV-cache layout, ...)."""
    weights_identity: str | None = None
    """What the export was made from: a content hash of the weights (``whisper:…``, ``state-dict:…``) or
    ``random(seed=N)``, as recorded in the manifest."""
    created: str = ""
    """When the export was made (its manifest's ``created``, ISO 8601): copies keep it, file times don't."""
    verified: bool = True
    """False when this machine took ``weights_identity`` on trust from the manifest instead of hashing
    the weights itself: a device without torch or the weights runs a copied export (see
    :func:`edgebench.agent.export.cache.find_copied_export`), and results say so."""

    def describe_source(self) -> str:
        """Where the weights came from and which export runs them, for ``ModelReport.weights_source``."""
        origin = self.meta.get("weights_source", "?")
        return f"{origin} -> {self.options.target} ({self.directory.name})"

    def trust_note(self) -> str:
        """What a result says when the export's weights identity was taken from its manifest."""
        identity = self.weights_identity or "not recorded"
        return (
            f"{self.directory.name} is a copied export: its weights identity ({identity}) is taken from "
            "its manifest, not verified on this machine"
        )

    @property
    def size_bytes(self) -> int:
        """Size on disk of every file of the artifact (what a device has to store)."""
        return sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())
