"""The PyTorch execution variants the seed benchmarks compared, applied to a loaded :class:`TorchAsrModel`.

- ``--torch-mode compile``: ``torch.compile`` of the repeated layer blocks (every child of a
  ``ModuleList`` of identical layers: Transformer/Conformer blocks, LSTM layers), compiled in place with
  ``Module.compile()``. This is PyTorch's *regional compilation* recipe: the blocks are where the time
  goes, one compiled graph serves every block of a class, and the family code, which calls encoder,
  decoder and heads directly rather than one top-level ``forward``, keeps working unchanged. Compilation
  happens lazily at the first call of each shape, i.e. in the warm-up iterations.
- ``--torch-mode script``: a TorchScript *trace* of the forward pass, made per input shape when the
  features are prepared (outside the timed loop) and checked against eager output. Only ``forward`` (and
  ``load``) can use it: greedy decoding with a growing KV cache does not trace into a fixed graph.
- ``--attn-impl eager|sdpa|flash``: transformers' ``attn_implementation`` for Hugging Face models
  (Whisper, ``hf:``); ``flash`` is FlashAttention 2 and needs CUDA, fp16 and the ``flash-attn`` package.
- ``--amp``: fp16 autocast (automatic mixed precision) on CUDA with fp32 weights.

Every combination that cannot work is refused before loading with one line that says why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

from edgebench.agent.errors import EdgebenchError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgebench.models.base import Features, TorchAsrModel
    from edgebench.models.spec import ModelSpec

TORCH_MODES = ("eager", "compile", "script")
ATTN_IMPLS = ("eager", "sdpa", "flash")
HF_ATTN = {"eager": "eager", "sdpa": "sdpa", "flash": "flash_attention_2"}
SCRIPT_SCENARIOS = ("load", "forward")
HF_FAMILIES = ("whisper", "causal-lm")


class TorchOptions(BaseModel):
    """The torch runtime's own options (a RunSpec's ``runtime_options.torch``), checked on construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    torch_mode: str = "eager"
    """eager, compile (regional torch.compile) or script (TorchScript trace of forward)."""
    attn_impl: str | None = None
    """Hugging Face models: eager, sdpa or flash (None: the model's default)."""
    amp: bool = False
    """fp16 autocast on CUDA."""

    @model_validator(mode="after")
    def _known(self) -> TorchOptions:
        if self.torch_mode not in TORCH_MODES:
            raise EdgebenchError(
                f"--torch-mode must be one of {', '.join(TORCH_MODES)} (got '{self.torch_mode}')"
            )
        if self.attn_impl is not None and self.attn_impl not in ATTN_IMPLS:
            raise EdgebenchError(
                f"--attn-impl must be one of {', '.join(ATTN_IMPLS)} (got '{self.attn_impl}')"
            )
        return self

    @property
    def chosen(self) -> list[str]:
        """The flags set away from their defaults (they make sense on torch only)."""
        pairs = (
            ("--torch-mode", self.torch_mode != "eager"),
            ("--attn-impl", self.attn_impl),
            ("--amp", self.amp),
        )
        return [flag for flag, on in pairs if on]

    def check(self, runtimes: list[str], scenarios: list[str]) -> None:
        """Sweep-level checks: torch options with other runtimes, script with token-by-token scenarios."""
        others = [r for r in runtimes if r != "torch"]
        if self.chosen and others:
            raise EdgebenchError(
                f"{', '.join(self.chosen)} apply to the torch runtime only, not {', '.join(others)}"
            )
        if self.torch_mode == "script":
            bad = [s for s in scenarios if s not in SCRIPT_SCENARIOS]
            if bad:
                raise EdgebenchError(
                    f"--torch-mode script traces the forward pass only; {', '.join(bad)} decode token by "
                    "token with a growing KV cache, which does not trace: use --scenario load,forward"
                )

    def result_config(self) -> dict[str, object]:
        """What every torch result records of these options (RunConfig fields)."""
        return self.model_dump()


def check_session(spec: ModelSpec, device: str, precision: str, attn_impl: str | None, amp: bool) -> None:
    """Checks that need the model and the resolved device (before the model loads)."""
    if attn_impl is not None:
        if spec.family not in HF_FAMILIES:
            raise EdgebenchError(
                f"--attn-impl applies to Hugging Face models (Whisper, hf:), not {spec.name}, whose "
                "attention is edgebench's own"
            )
        if attn_impl == "flash":
            if not device.startswith("cuda"):
                raise EdgebenchError(
                    f"--attn-impl flash (FlashAttention 2) needs a CUDA GPU, not {device}: "
                    "use --attn-impl sdpa or eager"
                )
            if precision != "fp16":
                raise EdgebenchError("--attn-impl flash runs in half precision only: add --precision fp16")
    if amp:
        if precision != "fp32":
            raise EdgebenchError(
                f"--amp autocasts fp32 weights; with --precision {precision} use one or the other"
            )
        if not device.startswith("cuda"):
            raise EdgebenchError(
                f"--amp (fp16 autocast) needs a CUDA GPU, not {device}: on CPU there are no fast fp16 "
                "kernels, so it would measure slower emulation"
            )


def set_attention(model: TorchAsrModel, attn_impl: str) -> None:
    """Switch a loaded transformers model's attention implementation (``set_attn_implementation``)."""
    module: Any = model.module
    target = HF_ATTN[attn_impl]
    try:
        module.set_attn_implementation(target)
    except (ImportError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = " (pip install flash-attn)" if attn_impl == "flash" else ""
        raise EdgebenchError(f"--attn-impl {attn_impl} for {model.spec.name}: {reason}{hint}") from exc


def repeated_blocks(module: nn.Module) -> list[nn.Module]:
    """Children of ``ModuleList``s of at least two identical layer types (outermost lists only)."""
    from torch import nn

    blocks: list[nn.Module] = []
    taken: list[str] = []
    for name, sub in module.named_modules():
        if any(name.startswith(prefix + ".") for prefix in taken):
            continue
        if isinstance(sub, nn.ModuleList) and len(sub) >= 2 and len({type(c) for c in sub}) == 1:
            blocks.extend(sub)
            taken.append(name)
    return blocks


def compile_blocks(model: TorchAsrModel) -> int:
    """Regional ``torch.compile`` (see the module docstring); returns how many blocks were compiled."""
    blocks = repeated_blocks(model.module)
    if not blocks:
        raise EdgebenchError(
            f"--torch-mode compile: {model.spec.name} has no repeated layer blocks to compile"
        )
    for block in blocks:
        block.compile()
    return len(blocks)


class TracedForward:
    """TorchScript traces of ``model.forward``, one per input shape and dtype, verified against eager."""

    def __init__(self, model: TorchAsrModel) -> None:
        self.model = model
        self._traces: dict[tuple[Any, ...], Callable[..., torch.Tensor]] = {}

    def _key(self, feats: Features) -> tuple[Any, ...]:
        return (tuple(feats.values.shape), feats.values.dtype, str(feats.values.device))

    def prepare(self, feats: Features) -> None:
        """Trace for this input shape (called where features are made: outside the timed loop)."""
        key = self._key(feats)
        if key in self._traces:
            return
        import warnings

        import torch

        wrapper = _forward_module(self.model).eval()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarnings about Python control flow: checked below
                traced = torch.jit.trace(
                    wrapper, (feats.values, feats.lengths), check_trace=False, strict=False
                )
                expected = self.model.forward(feats)
                got = traced(feats.values, feats.lengths)
        except Exception as exc:  # trace failures come as RuntimeError, TypeError, TracingCheckError …
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgebenchError(
                f"--torch-mode script: {self.model.spec.name} does not trace ({reason})"
            ) from exc
        if not torch.allclose(got.float(), expected.float(), rtol=1e-3, atol=1e-3):
            raise EdgebenchError(
                f"--torch-mode script: the trace of {self.model.spec.name} differs from eager output "
                "(data-dependent control flow was frozen): use --torch-mode eager or compile"
            )
        self._traces[key] = traced

    def __call__(self, feats: Features) -> torch.Tensor:
        self.prepare(feats)
        return self._traces[self._key(feats)](feats.values, feats.lengths)


def _forward_module(model: TorchAsrModel) -> nn.Module:
    """An ``nn.Module`` around ``model.forward`` so the trace sees the weights as parameters."""
    from torch import nn

    from edgebench.models.base import Features

    class ForwardModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model.module

        def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return model.forward(Features(values=values, lengths=lengths))

    return ForwardModule()


@contextlib.contextmanager
def autocast(device: str, enabled: bool) -> Iterator[None]:
    """fp16 autocast on CUDA when ``enabled`` (checked by :func:`check_session`), else nothing."""
    if not enabled:
        yield
        return
    import torch

    with torch.autocast(device_type="cuda", dtype=torch.float16):
        yield
