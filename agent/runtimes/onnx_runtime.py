"""ONNX Runtime: the model exported once (cached), run with a chosen graph optimisation level, thread
count and execution provider.

``--precision`` picks the export: fp32 as exported, int8 = ``quantize_dynamic`` (int8 weights, activations
quantised per call), fp16 = float16 weights and compute. fp16 runs on the CPU provider too, but that
provider has float16 kernels for few operators and casts around the others, so on cpu it is slower than
fp32 (a warning says so); it is meant for GPU providers. ``--device`` picks the execution provider: cpu, cuda
(CUDA EP), tensorrt (TensorRT EP, CUDA and CPU as fallbacks), coreml/mps (CoreML EP), auto = the first of
CUDA, CoreML that this onnxruntime build has, else CPU.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from edgebench.agent.errors import EdgebenchError, require
from edgebench.agent.results.schema import ModelReport
from edgebench.agent.runtimes.base import RuntimeSession, SessionOptions
from edgebench.agent.runtimes.onnx_options import OPT_LEVELS

if TYPE_CHECKING:
    import numpy as np

    from edgebench.agent.export.base import ExportArtifact
    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.spec import ModelSpec

PRECISIONS = ("fp32", "fp16", "int8")
CPU = "CPUExecutionProvider"

# --device -> (resolved device name, providers in priority order); CPU is always appended as fallback.
_DEVICE_PROVIDERS: dict[str, tuple[str, list[str]]] = {
    "cuda": ("cuda", ["CUDAExecutionProvider"]),
    "tensorrt": ("tensorrt", ["TensorrtExecutionProvider", "CUDAExecutionProvider"]),
    "coreml": ("coreml", ["CoreMLExecutionProvider"]),
    "mps": ("coreml", ["CoreMLExecutionProvider"]),
}


def _ort() -> Any:
    return require("onnxruntime", "onnx", "The onnxruntime runtime")


def opt_level(name: str) -> Any:
    """``--ort-opt-level`` name -> ``onnxruntime.GraphOptimizationLevel``."""
    ort = _ort()
    levels = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if name not in levels:
        raise EdgebenchError(f"--ort-opt-level {name}: use one of {', '.join(OPT_LEVELS)}")
    return levels[name]


def resolve_providers(requested: str, available: list[str]) -> tuple[str, list[Any]]:
    """(device name for results, providers for ``InferenceSession``) for a ``--device`` value."""
    req = requested.strip().lower()
    if req == "auto":
        for device in ("cuda", "coreml"):
            name, providers = _DEVICE_PROVIDERS[device]
            if providers[0] in available:
                return name, [*providers, CPU]
        return "cpu", [CPU]
    if req == "cpu":
        return "cpu", [CPU]
    base, _, index = req.partition(":")
    if base not in _DEVICE_PROVIDERS:
        raise EdgebenchError(
            f"unknown device '{requested}' for onnxruntime: use auto, cpu, cuda, cuda:N, tensorrt or coreml"
        )
    name, providers = _DEVICE_PROVIDERS[base]
    if providers[0] not in available:
        hint = "pip install onnxruntime-gpu" if base in ("cuda", "tensorrt") else "use macOS with onnxruntime"
        raise EdgebenchError(
            f"device '{requested}' needs onnxruntime's {providers[0]}, but this onnxruntime build has only "
            f"{', '.join(available)}: {hint}, or use --device cpu"
        )
    if index:
        if not index.isdigit():
            raise EdgebenchError(f"device '{requested}': the index after ':' must be a number")
        return f"{name}:{index}", [(p, {"device_id": int(index)}) for p in providers] + [CPU]
    return name, [*providers, CPU]


class OnnxRuntimeSession(RuntimeSession):
    """A model exported to ONNX (cached) and run by ``onnxruntime.InferenceSession`` (one per graph)."""

    name = "onnxruntime"

    @classmethod
    def unsupported(cls, spec: ModelSpec, scenario: str, ctc_weight: float | None) -> str | None:
        if spec.family != "hybrid":
            return None
        if scenario == "generate" or (scenario == "transcribe" and ctc_weight != 1.0):
            what = "generate" if scenario == "generate" else f"transcribe with --ctc-weight {ctc_weight:g}"
            return (
                f"{spec.name} on onnxruntime is exported as encoder + CTC head only: {what} needs the "
                "attention decoder (use --runtime torch for it, or --ctc-weight 1 on onnxruntime)"
            )
        return None

    def __init__(self, spec: ModelSpec, options: SessionOptions, frontend: LogMelFrontend) -> None:
        super().__init__(spec, options, frontend)
        ort = _ort()
        if options.precision not in PRECISIONS:
            raise EdgebenchError(
                f"unknown precision '{options.precision}': use one of {', '.join(PRECISIONS)}"
            )
        self._opt_level = opt_level(options.runtime_options.onnxruntime.ort_opt_level)
        self._device, self._providers = resolve_providers(options.device, ort.get_available_providers())
        if options.precision == "fp16" and self._device == "cpu":
            # It runs (tokens verified), but the CPU provider has float16 kernels for few operators and
            # casts around the rest: several times slower than fp32. Measured, so reported, not refused.
            self.warnings.append(
                "fp16 on onnxruntime's CPU provider falls back to casts around most operators (slower "
                "than fp32): fp16 pays off with a GPU provider (--device cuda/tensorrt)"
            )
        if options.threads is not None and options.threads < 1:
            raise EdgebenchError(f"--threads must be >= 1 (got {options.threads})")
        self.artifact: ExportArtifact | None = None
        self._sessions: dict[str, Any] = {}
        self._model: Any = None

    @property
    def device(self) -> str:
        return self._device

    @property
    def threads(self) -> int:
        if self.options.threads:
            return self.options.threads
        import psutil

        # onnxruntime's default intra-op pool has one thread per physical core.
        return psutil.cpu_count(logical=False) or os.cpu_count() or 1

    def export_options(self) -> Any:
        from edgebench.agent.export.base import ExportOptions

        precision = self.options.precision
        return ExportOptions(
            target="onnx",
            precision="fp16" if precision == "fp16" else "fp32",
            quantize="int8" if precision == "int8" else None,
            weights=self.options.weights,
            seed=self.options.seed,
        )

    def prepare(self) -> None:
        from edgebench.agent.export.cache import export_in_child
        from edgebench.agent.runtimes.base import import_if_installed

        export_in_child(self.spec.name, self.export_options())
        import_if_installed("onnxruntime", *(("tokenizers",) if self.spec.family == "whisper" else ()))

    def load(self) -> None:
        from edgebench.agent.export.pipeline import export_model

        artifact = export_model(self.spec, self.export_options())
        self.artifact = artifact
        if not artifact.verified:
            self.warnings.append(artifact.trust_note())
        graphs = [n for n in ("encoder", "decoder", "encoder_ctc") if n in artifact.files]
        self._sessions = {name: self._session(artifact.files[name]) for name in graphs}
        if self.spec.family == "whisper":
            from edgebench.agent.runtimes.onnx_models import WhisperOnnx

            self._model = WhisperOnnx(
                artifact.meta, artifact.files, self._run, self.options.language, self.options.task
            )
        else:
            from edgebench.agent.runtimes.onnx_models import HybridCtcOnnx

            self._model = HybridCtcOnnx(artifact.meta, self._run, self.spec.name)

    def _session(self, path: Any) -> Any:
        ort = _ort()
        so = ort.SessionOptions()
        so.graph_optimization_level = self._opt_level
        so.intra_op_num_threads = self.options.threads or 0
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # errors only: provider fallbacks are reported by us, not as log spam
        try:
            return ort.InferenceSession(str(path), sess_options=so, providers=self._providers)
        except Exception as exc:  # InvalidProtobuf, Fail, NoSuchFile …: all mean "this file is unusable"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgebenchError(
                f"cannot load ONNX model {path}: {first[:300]}. The file is corrupt or incomplete: "
                f"delete {path.parent} to export it again"
            ) from None

    def _run(self, graph: str, feeds: dict[str, Any]) -> list[Any]:
        return self._sessions[graph].run(None, feeds)

    def _require(self) -> Any:
        if self._model is None:
            raise RuntimeError("session not loaded")
        return self._model

    def model_report(self) -> ModelReport:
        if self.artifact is None:
            raise RuntimeError("session not loaded")
        meta = self.artifact.meta
        return ModelReport(
            name=self.spec.name,
            family=self.spec.family,
            trained=bool(meta["trained"]),
            weights_source=self.artifact.describe_source(),
            params={k: int(v) for k, v in meta["params"].items()},
            size_on_disk_bytes=self.artifact.size_bytes,
            weights_identity=self.artifact.weights_identity,
            weights_verified=self.artifact.verified,
        )

    def features(self, audio: list[np.ndarray]) -> Any:
        return self._require().features(audio, self.frontend)

    def forward(self, feats: Any) -> Any:
        return self._require().forward(feats)

    def prefill(self, feats: Any) -> Any:
        return self._require().prefill(feats)

    def decode(self, state: Any, n_tokens: int) -> Any:
        return self._require().decode(state, n_tokens, force=True)

    def transcribe(self, feats: Any, ctc_weight: float | None) -> list[str]:
        return self._require().transcribe(feats, ctc_weight)

    def detected_languages(self) -> Any:
        return getattr(self._model, "detected", None)

    def transcribe_tokens(self, feats: Any) -> list[list[int]]:
        """Whisper only: greedy token ids per item (what the cross-runtime equivalence test compares)."""
        model = self._require()
        if not hasattr(model, "transcribe_tokens"):
            raise EdgebenchError(f"{self.spec.name} has no token-level transcription on onnxruntime")
        return model.transcribe_tokens(feats)

    def close(self) -> None:
        self._sessions = {}
        self._model = None
