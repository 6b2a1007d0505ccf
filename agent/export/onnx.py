"""torch -> ONNX export for every model family, then optional int8 / fp16 conversion of the graphs.

* Whisper: ``encoder.onnx`` + ``decoder.onnx`` with an explicit KV cache (:mod:`.onnx_whisper`), plus the
  tokenizer and generation config so that the ONNX Runtime session needs neither torch nor transformers.
* Hybrid CTC/attention models: ``encoder_ctc.onnx`` = encoder + CTC head (features, lengths -> CTC
  log-probabilities, output lengths), enough for CTC-only transcription (``ctc_weight=1``). The attention
  decoder's beam search runs in Python over torch modules and is not exported.

Quantisation uses ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations quantised at run
time): the same kind of int8 as the torch runtime's dynamic quantisation. fp16 uses onnxruntime's own
float16 converter with float32 inputs/outputs kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebench.agent.errors import EdgebenchError, require
from edgebench.agent.export.base import ExportArtifact, ExportOptions

if TYPE_CHECKING:
    from edgebench.models.spec import ModelSpec

OPSET = 17


def check_options(options: ExportOptions) -> None:
    """Refuse option combinations before spending minutes on an export."""
    if options.target != "onnx":
        raise EdgebenchError(f"the ONNX exporter cannot produce --to {options.target}")
    if options.quantize not in (None, "int8"):
        raise EdgebenchError(f"--quantize {options.quantize}: only int8 is supported")
    if options.precision not in ("fp32", "fp16"):
        raise EdgebenchError(f"--precision {options.precision}: ONNX export supports fp32 or fp16")
    if options.quantize and options.precision == "fp16":
        raise EdgebenchError("--quantize int8 and --precision fp16 exclude each other: choose one")


def export_onnx(spec: ModelSpec, options: ExportOptions, out_dir: Path) -> ExportArtifact:
    """Export ``spec`` into the empty directory ``out_dir`` (see the module docstring)."""
    check_options(options)
    require("torch", "export", "exporting models to ONNX")
    require("onnx", "export", "exporting models to ONNX")
    require("onnxruntime", "export", "exporting models to ONNX")  # its quantiser and fp16 converter
    from edgebench.models.registry import load_torch_model

    model = load_torch_model(spec, options.weights, seed=options.seed)
    raw = out_dir / "fp32"
    raw.mkdir()
    if spec.family == "whisper":
        files, meta = _export_whisper(model, raw, out_dir, share_embedding=options.quantize != "int8")
    else:
        files, meta = _export_hybrid(model, raw)
    meta.update(
        {
            "params": model.param_counts(),
            "trained": model.info.trained,
            "weights_source": model.info.weights_source,
            "family": spec.family,
            "opset": OPSET,
        }
    )
    final: dict[str, Path] = {}
    for name, path in files.items():
        target = out_dir / path.name
        if options.quantize == "int8":
            quantize_int8(path, target)
        elif options.precision == "fp16":
            convert_fp16(path, target)
        else:
            shutil.move(path, target)
        final[name] = target
    shutil.rmtree(raw)
    for name, path in meta.pop("extra_files", {}).items():
        final[name] = path
    return ExportArtifact(model=spec.name, options=options, directory=out_dir, files=final, meta=meta)


def _export_whisper(
    model: Any, raw: Path, out_dir: Path, share_embedding: bool
) -> tuple[dict[str, Path], dict]:
    from edgebench.agent.export.onnx_whisper import export_whisper_graphs

    encoder, decoder = raw / "encoder.onnx", raw / "decoder.onnx"
    meta = export_whisper_graphs(model.module, str(encoder), str(decoder), OPSET, share_embedding)
    source = Path(model.weights_path)
    extra: dict[str, Path] = {}
    for name in ("tokenizer.json", "generation_config.json"):
        if not (source / name).is_file():
            raise EdgebenchError(f"{source} has no {name}: the ONNX export needs it for decoding")
        shutil.copyfile(source / name, out_dir / name)
        extra[name.split(".")[0]] = out_dir / name
    meta["extra_files"] = extra
    return {"encoder": encoder, "decoder": decoder}, meta


class _EncoderCtc:
    """Factory for the hybrid encoder + CTC head wrapper (a class only so torch is imported lazily)."""

    @staticmethod
    def build(module: Any) -> Any:
        import torch

        class EncoderCtc(torch.nn.Module):
            """``features [B, n_mels, T]``, ``lengths [B]`` -> CTC log-probs ``[B, T', V]``, lengths."""

            def __init__(self) -> None:
                super().__init__()
                self.mod = module

            def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
                enc, enc_lens, _ = self.mod.encode(features.transpose(1, 2), lengths)
                return self.mod.ctc(enc), enc_lens

        return EncoderCtc().eval()


def _export_hybrid(model: Any, raw: Path) -> tuple[dict[str, Path], dict]:
    import warnings

    import torch

    wrapper = _EncoderCtc.build(model.module)
    n_mels = model.config.n_mels
    frames = max(64, 4 * model.module.encoder.min_frames)
    # Two items of different lengths: the padding/packing path is traced, not a single-length shortcut.
    features = torch.randn(2, n_mels, frames)
    lengths = torch.tensor([frames, frames - 13])
    path = raw / "encoder_ctc.onnx"
    with torch.no_grad(), warnings.catch_warnings(), _quiet_native_stderr():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (features, lengths),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["features", "lengths"],
            output_names=["ctc_log_probs", "out_lengths"],
            dynamic_axes={
                "features": {0: "batch", 2: "frames"},
                "lengths": {0: "batch"},
                "ctc_log_probs": {0: "batch", 1: "out_frames"},
                "out_lengths": {0: "batch"},
            },
        )
    meta = {
        "kind": "hybrid-encoder-ctc",
        "n_mels": n_mels,
        "min_frames": int(model.module.encoder.min_frames),
        "tokens": list(model.vocab.tokens),
        "default_ctc_weight": float(model.config.ctc_weight),
    }
    return {"encoder_ctc": path}, meta


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence C++-level warnings torch's exporter prints straight to file descriptor 2 (e.g. "shape
    inference of prim::PackPadded is missing", harmless: the tests compare outputs with torch).
    Python exceptions are unaffected: their message travels with the exception."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of MatMul/Gemm/LSTM weights (activations quantised at run time)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantiser logs advice through the root logger ("consider pre-processing"); a temporary
    # handler keeps logging.warning() from installing a permanent stderr handler, disable() mutes it.
    root = logging.getLogger()
    quiet = logging.NullHandler()
    root.addHandler(quiet)
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            # The token embedding (Gather) stays float: int8 lookups save disk, not time.
            op_types_to_quantize=["MatMul", "LSTM", "Attention"],
        )
    finally:
        logging.disable(logging.NOTSET)
        root.removeHandler(quiet)


def convert_fp16(source: Path, target: Path) -> None:
    """Weights and compute in float16, float32 inputs/outputs (``keep_io_types``)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(target))
