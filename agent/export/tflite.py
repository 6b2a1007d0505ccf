"""torch -> .tflite (LiteRT) export with litert-torch, optionally int8 (dynamic range), in or out of process.

What is exported (the graphs are in :mod:`edgebench.agent.export.tflite_modules`):

* Whisper: ``encoder.tflite`` (encoder + cross-attention K/V) and ``decoder.tflite`` (one token per call, KV
  cache of Whisper's 448 positions as explicit inputs, the new position's K/V as outputs), plus the
  tokenizer and generation config so the LiteRT session needs neither torch nor transformers.
* Conformer hybrid CTC/attention models: ``encoder_ctc.tflite`` = encoder + CTC head over a fixed 30 s
  window of frames (LiteRT graphs have static shapes; the true length is an input and padding is masked),
  enough for CTC-only transcription. The attention decoder's beam search is not exported, nor are BiLSTM
  encoders (:data:`LSTM_REASON`).

int8 is ai-edge-quantizer's ``dynamic_wi8_afp32`` recipe applied to the converted fp32 flatbuffer: int8
per-channel weights, activations quantised on the fly — TFLite's "dynamic range" quantisation, the same
kind of int8 as torch's and ONNX Runtime's dynamic quantisation.

**Where the conversion runs.** litert-torch is an optional ~1 GB install (jax, torchao, the LiteRT
converter) whose pins can clash with the rest of an environment (litert-torch 0.10 pins
``typing-extensions<4.13`` through xdsl, which forces pydantic back to 2.11). So it runs in this process
when ``litert_torch`` is importable, otherwise in a *converter* Python named by the environment variable
``EDGEBENCH_LITERT_PYTHON`` (any environment with litert-torch and edgebench installed), as
``python -m edgebench.agent.export.tflite --model NAME --out DIR ...``. The device that benchmarks needs only
``ai-edge-litert`` (or ``tflite-runtime``); see docs/litert.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.export.base import ExportArtifact, ExportOptions

if TYPE_CHECKING:
    from edgebench.models.spec import ModelSpec

CONVERTER_ENV = "EDGEBENCH_LITERT_PYTHON"
"""Path of a Python interpreter that has litert-torch (used when this process has not)."""

RESULT_FILE = "tflite-export.json"
"""What a converter subprocess hands back: component files (relative) and meta."""

WHISPER_FRAMES = 3000
HYBRID_WINDOW_FRAMES = 3000
"""Hybrid models are exported over a fixed 30 s window (100 frames/s): longer inputs are refused."""

LSTM_REASON = (
    "BiLSTM encoders are not exported to .tflite: litert-torch unrolls the recurrence into ~16 ops per "
    "frame, so a 30 s window becomes a ~48,000-op graph (its conversion had not finished after 15 minutes); "
    "use --runtime torch or onnxruntime"
)

LAYOUT = 1
"""Version of the graphs' I/O contract, checked by the runtime when it loads a prebuilt export."""

INSTALL_HINT = (
    "pip install 'edgebench[convert]' (litert-torch, ~1 GB) in this environment, or set "
    f"{CONVERTER_ENV} to a Python that has it, or pass an exported directory / .tflite with --weights"
)


def check_options(options: ExportOptions) -> None:
    """Refuse option combinations before any model is loaded."""
    if options.target != "tflite":
        raise EdgebenchError(f"the TFLite exporter cannot produce --to {options.target}")
    if options.quantize not in (None, "int8"):
        raise EdgebenchError(f"--quantize {options.quantize}: only int8 (dynamic range) is supported")
    if options.precision != "fp32":
        raise EdgebenchError(
            f"--precision {options.precision} is not available for --to tflite: LiteRT on CPU computes in "
            "fp32; use fp32, or --quantize int8 for int8 weights"
        )


def litert_torch_importable() -> bool:
    return importlib.util.find_spec("litert_torch") is not None


def converter_python() -> str | None:
    """The converter Python from ``EDGEBENCH_LITERT_PYTHON``, checked to exist."""
    value = os.environ.get(CONVERTER_ENV, "").strip()
    if not value:
        return None
    path = shutil.which(value) or value
    if not Path(path).is_file():
        raise EdgebenchError(f"{CONVERTER_ENV}={value} does not name a Python interpreter")
    return path


def export_tflite(spec: ModelSpec, options: ExportOptions, out_dir: Path) -> ExportArtifact:
    """Export ``spec`` into the empty directory ``out_dir`` (in process, or through the converter Python)."""
    check_options(options)
    if spec.options.get("encoder") == "lstm":
        raise EdgebenchError(f"{spec.name}: {LSTM_REASON}")
    if litert_torch_importable():
        files, meta = convert(spec, options, out_dir)
    else:
        python = converter_python()
        if python is None:
            raise EdgebenchError(f"converting {spec.name} to .tflite needs litert-torch: {INSTALL_HINT}")
        files, meta = _convert_in_subprocess(python, spec, options, out_dir)
    return ExportArtifact(
        model=spec.name,
        options=options,
        directory=out_dir,
        files={name: out_dir / rel for name, rel in files.items()},
        meta=meta,
    )


def _convert_in_subprocess(
    python: str, spec: ModelSpec, options: ExportOptions, out_dir: Path
) -> tuple[dict[str, str], dict[str, Any]]:
    cmd = [python, "-m", "edgebench.agent.export.tflite", "--model", spec.name, "--out", str(out_dir)]
    cmd += ["--seed", str(options.seed)]
    if options.quantize:
        cmd += ["--quantize", options.quantize]
    if options.weights:
        cmd += ["--weights", str(Path(options.weights).expanduser().resolve())]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    result = out_dir / RESULT_FILE
    if proc.returncode != 0 or not result.is_file():
        lines = [ln for ln in (proc.stderr + proc.stdout).strip().splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise EdgebenchError(f"the LiteRT converter ({python}) failed on {spec.name}: {last[:400]}")
    data = json.loads(result.read_text())
    result.unlink()
    return data["files"], data["meta"]


# -- the conversion itself (runs where litert-torch is installed) ------------------------------------------


def convert(spec: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Convert ``spec`` into ``out_dir``: component -> file name (relative), and the runtime's meta."""
    check_options(options)
    import litert_torch
    import torch

    from edgebench.models.registry import load_torch_model

    started = time.perf_counter()
    model = load_torch_model(spec, options.weights, seed=options.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if spec.family == "whisper":
            graphs, meta = _whisper_graphs(model)
        else:
            graphs, meta = _hybrid_graphs(model)
        files: dict[str, str] = {}
        timings: dict[str, float] = {}
        for name, (module, sample) in graphs.items():
            t0 = time.perf_counter()
            path = out_dir / f"{name}.tflite"
            litert_torch.convert(module.eval(), sample_kwargs=sample).export(str(path))
            if options.quantize == "int8":
                quantize_int8(path)
            timings[name] = round(time.perf_counter() - t0, 1)
            files[name] = path.name
    if spec.family == "whisper":
        source = Path(model.weights_path)
        for extra in ("tokenizer.json", "generation_config.json"):
            if not (source / extra).is_file():
                raise EdgebenchError(f"{source} has no {extra}: the LiteRT export needs it for decoding")
            shutil.copyfile(source / extra, out_dir / extra)
            files[extra.split(".")[0]] = extra
    meta.update(
        {
            "layout": LAYOUT,
            "family": spec.family,
            "params": model.param_counts(),
            "trained": model.info.trained,
            "weights_source": model.info.weights_source,
            "quantization": "dynamic_wi8_afp32" if options.quantize == "int8" else None,
            "converter": f"litert-torch {_version('litert-torch')}",
            "convert_s": timings,
            "total_s": round(time.perf_counter() - started, 1),
        }
    )
    return files, meta


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _whisper_graphs(model: Any) -> tuple[dict[str, tuple[Any, dict[str, Any]]], dict[str, Any]]:
    import torch

    from edgebench.agent.export.tflite_modules import WhisperDecoderStep, WhisperEncoderCross

    hf = model.module.eval()
    config = hf.config
    layers, heads = config.decoder_layers, config.decoder_attention_heads
    head_dim = config.d_model // heads
    positions, source = config.max_target_positions, config.max_source_positions

    def sample(*shape: int) -> Any:
        # A fresh tensor per input: inputs given the *same* sample tensor are merged into one graph input
        # by the export (self_v would silently read self_k).
        return torch.randn(*shape)

    graphs = {
        "encoder": (
            WhisperEncoderCross(hf),
            {"input_features": sample(1, config.num_mel_bins, WHISPER_FRAMES)},
        ),
        "decoder": (
            WhisperDecoderStep(hf),
            {
                "token": torch.zeros(1, 1, dtype=torch.int32),
                "position": torch.zeros(1, dtype=torch.int32),
                "self_k": sample(layers, 1, heads, positions, head_dim),
                "self_v": sample(layers, 1, heads, positions, head_dim),
                "cross_k": sample(layers, 1, heads, source, head_dim),
                "cross_v": sample(layers, 1, heads, source, head_dim),
            },
        ),
    }
    meta = {
        "kind": "whisper-kv-static",
        "n_mels": int(config.num_mel_bins),
        "frames": WHISPER_FRAMES,
        "n_layers": int(layers),
        "n_heads": int(heads),
        "head_dim": int(head_dim),
        "max_positions": int(positions),
        "source_positions": int(source),
        "vocab_size": int(config.vocab_size),
        "outputs": {"encoder": ["cross_k", "cross_v"], "decoder": ["logits", "new_k", "new_v"]},
    }
    return graphs, meta


def _hybrid_graphs(model: Any) -> tuple[dict[str, tuple[Any, dict[str, Any]]], dict[str, Any]]:
    import torch

    from edgebench.agent.export.tflite_modules import HybridEncoderCtc

    if model.spec.options.get("encoder") == "lstm":
        raise EdgebenchError(f"{model.spec.name}: {LSTM_REASON}")
    n_mels = model.config.n_mels
    graphs = {
        "encoder_ctc": (
            HybridEncoderCtc(model.module.eval()),
            {
                "features": torch.zeros(1, n_mels, HYBRID_WINDOW_FRAMES),
                "lengths": torch.full((1,), HYBRID_WINDOW_FRAMES, dtype=torch.int32),
            },
        )
    }
    meta = {
        "kind": "hybrid-encoder-ctc-window",
        "n_mels": int(n_mels),
        "window_frames": HYBRID_WINDOW_FRAMES,
        "min_frames": int(model.module.encoder.min_frames),
        "tokens": list(model.vocab.tokens),
        "default_ctc_weight": float(model.config.ctc_weight),
        "outputs": {"encoder_ctc": ["ctc_log_probs", "out_lengths"]},
    }
    return graphs, meta


def quantize_int8(path: Path) -> None:
    """Replace the fp32 flatbuffer at ``path`` with its dynamic-range int8 version (ai-edge-quantizer)."""
    from ai_edge_quantizer import quantizer, recipe

    result = quantizer.Quantizer(path, recipe.dynamic_wi8_afp32()).quantize(enable_progress_report=False)
    if not result.quantized_model:
        raise EdgebenchError(f"ai-edge-quantizer produced no model for {path.name}")
    path.write_bytes(bytes(result.quantized_model))


# -- converter subprocess entry point --------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m edgebench.agent.export.tflite``: the converter side of an out-of-process export."""
    parser = argparse.ArgumentParser(prog="edgebench.agent.export.tflite", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quantize", choices=["int8"], default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from edgebench.models.registry import resolve

    try:
        if not litert_torch_importable():
            raise EdgebenchError(f"litert-torch is not installed in {sys.executable}")
        options = ExportOptions(target="tflite", quantize=args.quantize, weights=args.weights, seed=args.seed)
        files, meta = convert(resolve(args.model), options, args.out)
    except EdgebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    (args.out / RESULT_FILE).write_text(json.dumps({"files": files, "meta": meta}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
