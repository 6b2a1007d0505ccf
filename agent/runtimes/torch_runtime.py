"""PyTorch runtime: fp32, fp16 (cuda/mps), int8 dynamic quantization (CPU), with device synchronisation."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from edgebench.agent.errors import EdgebenchError, require
from edgebench.agent.results.schema import ModelReport
from edgebench.agent.runtimes.base import RuntimeSession, SessionOptions

if TYPE_CHECKING:
    import numpy as np

    from edgebench.models.base import Features, TorchAsrModel
    from edgebench.models.frontend.logmel import LogMelFrontend
    from edgebench.models.spec import ModelSpec

PRECISIONS = ("fp32", "fp16", "int8")


def resolve_device(requested: str) -> str:
    """'auto' -> cuda, else mps, else cpu; explicit devices are checked so errors come before loading."""
    import torch

    req = requested.strip().lower()
    if req == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if req == "cpu":
        return "cpu"
    if req.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EdgebenchError(
                f"device '{requested}' requested but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch"
            )
        return req
    if req == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise EdgebenchError(
                "device 'mps' requested but Metal (MPS) is not available here; use --device cpu"
            )
        return "mps"
    raise EdgebenchError(f"unknown device '{requested}': use auto, cpu, cuda, cuda:N or mps")


def check_precision(precision: str, device: str) -> None:
    """Refuse combinations the torch runtime cannot run well, before any loading happens."""
    if precision not in PRECISIONS:
        raise EdgebenchError(f"unknown precision '{precision}': use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device == "cpu":
        raise EdgebenchError(
            "fp16 is not supported on cpu by the torch runtime (no fast half-precision kernels): "
            "use --precision fp32 or int8 on cpu, or fp16 with --device cuda/mps"
        )
    if precision == "int8" and device != "cpu":
        raise EdgebenchError(
            f"int8 on the torch runtime is dynamic quantization, which runs on cpu only (not {device}): "
            "use --device cpu or --precision fp16"
        )


class TorchSession(RuntimeSession):
    """A :class:`TorchAsrModel` on a torch device."""

    name = "torch"

    @classmethod
    def check_setup(cls, precision: str, device: str) -> None:
        require("torch", "torch", "the torch runtime")
        check_precision(precision, resolve_device(device))

    def __init__(self, spec: ModelSpec, options: SessionOptions, frontend: LogMelFrontend) -> None:
        super().__init__(spec, options, frontend)
        self._torch = require("torch", "torch", "the torch runtime")
        self._device = resolve_device(options.device)
        check_precision(options.precision, self._device)
        from edgebench.agent.runtimes import torch_variants

        own = options.runtime_options.torch
        torch_variants.check_session(spec, self._device, options.precision, own.attn_impl, own.amp)
        self._traced: torch_variants.TracedForward | None = None
        if options.threads:
            self._torch.set_num_threads(options.threads)
        self.model: TorchAsrModel | None = None

    @property
    def device(self) -> str:
        return self._device

    @property
    def threads(self) -> int:
        return self._torch.get_num_threads()

    def prepare(self) -> None:
        from edgebench.models.registry import prepare_torch_model

        prepare_torch_model(self.spec, self.options.weights)

    def load(self) -> None:
        from edgebench.models.registry import load_torch_model

        torch = self._torch
        model = load_torch_model(
            self.spec,
            self.options.weights,
            seed=self.options.seed,
            beam_size=self.options.beam_size,
            language=self.options.language,
            task=self.options.task,
        )
        # Counts are taken before quantization: packed int8 weights are no longer nn.Parameters.
        self._params = model.param_counts()
        module = model.module.eval()
        if self.options.precision == "int8":
            with warnings.catch_warnings():
                # Deprecated in favour of torchao, but still the one int8 path that needs no extra
                # package and runs on every CPU torch build (x86 fbgemm, ARM qnnpack).
                warnings.simplefilter("ignore", DeprecationWarning)
                # torch >= 2.10 also announces the quantized tensor API's end as a UserWarning
                warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
                module = torch.ao.quantization.quantize_dynamic(
                    module, _quantizable(model), dtype=torch.qint8
                )
            model.module = module
        elif self.options.precision == "fp16":
            module = module.half()
        model.module = module.to(self._device)
        self.model = model
        self._apply_variants(model)
        self._dtype = torch.float16 if self.options.precision == "fp16" else torch.float32
        self.synchronize()

    def _apply_variants(self, model: TorchAsrModel) -> None:
        """--attn-impl, --torch-mode (agent/runtimes/torch_variants.py); --amp acts per call."""
        from edgebench.agent.runtimes import torch_variants

        opts = self.options.runtime_options.torch
        if opts.attn_impl is not None:
            torch_variants.set_attention(model, opts.attn_impl)
        if opts.torch_mode == "compile":
            n = torch_variants.compile_blocks(model)
            self.warnings.append(
                f"torch.compile: {n} layer blocks compiled in place; compilation runs in the warm-up "
                "iterations (use --warmup >= 2 so that recompilations are not timed)"
            )
        elif opts.torch_mode == "script":
            self._traced = torch_variants.TracedForward(model)

    def _autocast(self):  # type: ignore[no-untyped-def]
        from edgebench.agent.runtimes.torch_variants import autocast

        return autocast(self._device, self.options.runtime_options.torch.amp)

    def _require_model(self) -> TorchAsrModel:
        if self.model is None:
            raise RuntimeError("session not loaded")
        return self.model

    def model_report(self) -> ModelReport:
        model = self._require_model()
        return ModelReport(
            name=self.spec.name,
            family=self.spec.family,
            trained=model.info.trained,
            weights_source=model.info.weights_source,
            params=self._params,
            size_on_disk_bytes=model.info.size_on_disk_bytes,
        )

    def features(self, audio: list[np.ndarray]) -> Features:
        feats = self._require_model().features(audio, self.frontend)
        # Token ids (hf: causal LMs) keep their integer dtype; only float features follow the precision.
        if feats.values.is_floating_point():
            feats.values = feats.values.to(self._device, self._dtype)
        else:
            feats.values = feats.values.to(self._device)
        feats.lengths = feats.lengths.to(self._device)
        if self._traced is not None:  # trace this shape now, outside the timed loop
            self._traced.prepare(feats)
        return feats

    def forward(self, feats: Features) -> Any:
        if self._traced is not None:
            with self._torch.no_grad():  # TorchScript graphs run under no_grad, not inference_mode
                return self._traced(feats)
        with self._torch.inference_mode(), self._autocast():
            return self._require_model().forward(feats)

    def prefill(self, feats: Features) -> Any:
        with self._torch.inference_mode(), self._autocast():
            return self._require_model().prefill(feats)

    def decode(self, state: Any, n_tokens: int) -> Any:
        with self._torch.inference_mode(), self._autocast():
            return self._require_model().decode(state, n_tokens, force=True)

    def transcribe(self, feats: Features, ctc_weight: float | None) -> list[str]:
        with self._torch.inference_mode(), self._autocast():
            return self._require_model().transcribe(feats, ctc_weight)

    def detected_languages(self) -> Any:
        return getattr(self.model, "detected", None)

    def synchronize(self) -> None:
        torch = self._torch
        if self._device.startswith("cuda"):
            torch.cuda.synchronize(self._device)
        elif self._device == "mps":
            torch.mps.synchronize()

    def memory_peak_reset(self) -> None:
        if self._device.startswith("cuda"):
            self._torch.cuda.reset_peak_memory_stats(self._device)

    def device_peak_memory(self) -> int | None:
        if self._device.startswith("cuda"):
            return int(self._torch.cuda.max_memory_allocated(self._device))
        return None

    def close(self) -> None:
        self.model = None
        if self._device.startswith("cuda"):
            self._torch.cuda.empty_cache()


def _quantizable(model: TorchAsrModel) -> set[type]:
    """Module types to quantize dynamically; a family may narrow or widen the default (Linear)."""
    import torch

    if model.spec.family == "hybrid":
        from edgebench.models.hybrid.model import QUANTIZABLE

        return set(QUANTIZABLE)
    return {torch.nn.Linear}
