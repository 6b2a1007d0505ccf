"""``edgebench-agent``: the command line of the agent.

Only typer is imported at start-up; every command imports what it needs inside its body so that
``--help`` stays fast and never imports torch.
"""

from __future__ import annotations

from typing import Annotated

import typer

from edgebench.agent.errors import run_cli

app = typer.Typer(
    name="edgebench-agent",
    help="Benchmark speech models on this device: latency, throughput, memory, WER/CER.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
results_app = typer.Typer(help="Browse and export results from the local store.", no_args_is_help=True)
app.add_typer(results_app, name="results")
power_app = typer.Typer(
    help="Power sources on this device: what is available, live watts.", no_args_is_help=True
)
app.add_typer(power_app, name="power")
recipe_app = typer.Typer(
    help="The seed benchmarks as one command each: list, show, run (--quick), report.", no_args_is_help=True
)
app.add_typer(recipe_app, name="recipe")

PROG = "edgebench-agent"


@app.command()
def run(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model name(s), comma-separated (see `models`).")
    ],
    runtime: Annotated[
        str,
        typer.Option(help="Runtime(s), comma list: torch, onnxruntime, litert, ctranslate2, whispercpp."),
    ] = "torch",
    precision: Annotated[str, typer.Option(help="fp32, fp16 (cuda/mps), int8 (cpu), comma list.")] = "fp32",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps (comma list).")] = "auto",
    scenario: Annotated[
        str, typer.Option(help="Scenarios: load, forward, generate, transcribe, stream (comma list).")
    ] = "forward,generate,transcribe",
    batch_size: Annotated[str, typer.Option(help="Batch size(s), e.g. 1,8.")] = "1",
    audio_seconds: Annotated[
        str | None,
        typer.Option(help="Input seconds for forward/generate (default: Whisper 30, others 10)."),
    ] = None,
    new_tokens: Annotated[str, typer.Option(help="Exact new tokens for generate, e.g. 10,100.")] = "32",
    ctc_weight: Annotated[
        str | None, typer.Option(help="Hybrid models: 0 = attention, 1 = CTC, e.g. 0,0.3,1 (default 0.3).")
    ] = None,
    stream_policy: Annotated[
        str,
        typer.Option(
            help="stream: chunk (each chunk alone), local-agreement (LocalAgreement-2 on a growing "
            "buffer), vad (utterances cut at pauses); comma list."
        ),
    ] = "local-agreement",
    chunk_seconds: Annotated[
        str, typer.Option(help="stream: seconds of audio per chunk, e.g. 0.5,1,2.")
    ] = "1",
    stream_speed: Annotated[
        float, typer.Option(help="stream: pace of the source, 1 = real time, 2 = twice as fast.")
    ] = 1.0,
    stream_minutes: Annotated[
        float | None,
        typer.Option(help="stream: loop the dataset for at least this many minutes (default: one pass)."),
    ] = None,
    pause_seconds: Annotated[
        float, typer.Option(help="stream: silence after each utterance in the stream.")
    ] = 0.8,
    align_chunks: Annotated[
        bool,
        typer.Option(
            "--align-chunks", help="stream: each utterance starts a chunk (a check against offline WER)."
        ),
    ] = False,
    dataset: Annotated[
        str,
        typer.Option(
            help="'builtin', 'builtin-multilingual' (de/es/fr/en), a folder of audio + transcripts.tsv / "
            ".txt files, or a LibriSpeech folder (see docs/datasets.md)."
        ),
    ] = "builtin",
    limit: Annotated[
        int | None, typer.Option(help="Use a random sample of N utterances (drawn with --seed).")
    ] = None,
    noise_snr: Annotated[
        float | None, typer.Option(help="Robustness: add noise at this SNR in dB (seeded by --seed).")
    ] = None,
    noise: Annotated[
        str, typer.Option(help="Noise for --noise-snr: 'white' or an audio file (looped).")
    ] = "white",
    speed: Annotated[
        float | None, typer.Option(help="Robustness: speed factor 0.5-2.0 (resampled, like sox speed).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads (default: runtime's choice).")] = None,
    ort_opt_level: Annotated[
        str, typer.Option(help="onnxruntime graph optimisation: disabled, basic, extended, all.")
    ] = "all",
    ggml_quant: Annotated[
        str, typer.Option(help="whispercpp: the ggml type --precision int8 runs: q8_0 or q5_1.")
    ] = "q8_0",
    torch_mode: Annotated[
        str, typer.Option(help="torch: eager, compile (torch.compile), script (TorchScript trace, forward).")
    ] = "eager",
    attn_impl: Annotated[
        str | None, typer.Option(help="torch, HF models: attention eager, sdpa or flash (CUDA + fp16).")
    ] = None,
    amp: Annotated[bool, typer.Option("--amp", help="torch: fp16 autocast (mixed precision, CUDA).")] = False,
    label: Annotated[
        str | None, typer.Option(help="A name for this setup, kept in every result (e.g. auto_opt+qnt).")
    ] = None,
    warmup: Annotated[int, typer.Option(help="Warm-up iterations before measuring.")] = 2,
    min_iterations: Annotated[int, typer.Option(help="Measure at least this many iterations.")] = 10,
    min_duration: Annotated[float, typer.Option(help="…and for at least this many seconds.")] = 1.0,
    max_cv: Annotated[
        float | None,
        typer.Option(help="Keep measuring until the coefficient of variation (%) is below this."),
    ] = None,
    max_iterations: Annotated[int, typer.Option(help="Cap on iterations per configuration.")] = 10_000,
    max_duration: Annotated[float, typer.Option(help="Cap on seconds per configuration.")] = 120.0,
    max_rss: Annotated[
        float | None,
        typer.Option(
            metavar="MB",
            help="Memory budget: a configuration above this RSS is stopped with the budget as its "
            "reason and the sweep goes on (instead of the OOM killer stopping everything).",
        ),
    ] = None,
    malloc: Annotated[
        str,
        typer.Option(
            help="pinned: glibc's malloc thresholds fixed, so separate processes measure alike; system: "
            "glibc's dynamic thresholds (what an untuned deployed process does)."
        ),
    ] = "pinned",
    frontend: Annotated[
        str,
        typer.Option(
            help="Log-mel front end: auto (torch for the torch runtime, numpy for the others), torch, "
            "numpy, librosa."
        ),
    ] = "auto",
    weights: Annotated[
        str | None,
        typer.Option(
            help="Whisper: a Hugging Face model directory (ctranslate2: a CTranslate2 one); hybrid: a "
            "state-dict file; onnxruntime/litert/ctranslate2: also an `export` directory or a file in it."
        ),
    ] = None,
    beam_size: Annotated[int, typer.Option(help="Beam size for hybrid attention/joint decoding.")] = 4,
    seed: Annotated[
        int, typer.Option(help="Seed for random (untrained) weights, --limit sampling and --noise-snr.")
    ] = 0,
    language: Annotated[
        str,
        typer.Option(
            help="Whisper: spoken language code (en, de, fr, es, …) or auto (multilingual models detect "
            "it per utterance and record it)."
        ),
    ] = "auto",
    task: Annotated[
        str, typer.Option(help="Whisper: transcribe, or translate into English (multilingual models).")
    ] = "transcribe",
    fleet: Annotated[
        str | None, typer.Option(help="Fleet name recorded in results (default: config, else 'default').")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print result documents as JSON on stdout.")
    ] = False,
    store: Annotated[bool, typer.Option(help="Save results in the local store.")] = True,
    config: Annotated[
        str | None,
        typer.Option("--config", help="Agent config TOML (default /etc/edgebench/agent.toml if present)."),
    ] = None,
    broker: Annotated[
        str | None, typer.Option("--broker", help="MQTT broker HOST[:PORT] (overrides the config).")
    ] = None,
    publish: Annotated[
        bool, typer.Option(help="Stream results to the configured MQTT broker (when one is configured).")
    ] = True,
    publish_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the broker's acknowledgements after the sweep.")
    ] = 15.0,
    power_source: Annotated[
        str,
        typer.Option(
            help="Energy: auto, none, rapl, nvml, jtop, hwmon[:CHIP], rpi-pmic, powertop, command:CMD, "
            "replay:PATH (see `power probe`)."
        ),
    ] = "auto",
    idle_seconds: Annotated[
        float, typer.Option(help="Idle power baseline measured before the run (0 = none, no net energy).")
    ] = 2.0,
    power_rate: Annotated[
        float | None, typer.Option(help="Power sampling rate in Hz (default: the source's, at least 10).")
    ] = None,
) -> None:
    """Measure models on this device and print a table (and store the results locally).

    With a broker configured, every result is also spooled on disk and streamed over MQTT; an unreachable
    broker never fails the run (results wait in the spool)."""
    options = dict(locals())  # first statement: exactly the options above
    from edgebench.agent.cli.run_command import execute

    execute(options)


@app.command("publish")
def publish_cmd(
    config: Annotated[
        str | None,
        typer.Option("--config", help="Agent config TOML (default /etc/edgebench/agent.toml if present)."),
    ] = None,
    broker: Annotated[str | None, typer.Option("--broker", help="MQTT broker HOST[:PORT].")] = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run", help="Re-queue this stored run first (id, unique prefix or 'last')."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for acknowledgements.")] = 30.0,
    list_refused: Annotated[
        bool, typer.Option("--list-refused", help="List results the broker or collector refused, and why.")
    ] = False,
    retry_refused: Annotated[
        bool, typer.Option("--retry-refused", help="Queue refused results again (after fixing the cause).")
    ] = False,
    drop_refused: Annotated[
        bool, typer.Option("--drop-refused", help="Delete refused results from the spool (not the store).")
    ] = False,
) -> None:
    """Send results waiting in the MQTT spool (exit 1 if some remain unsent or refused)."""
    from edgebench.agent.publish.command import publish_command
    from edgebench.agent.publish.config import load_config

    code = publish_command(
        load_config(config, broker),
        run_id,
        timeout,
        show_refused=list_refused,
        retry_refused=retry_refused,
        drop_refused=drop_refused,
    )
    raise typer.Exit(code)


@app.command()
def serve(
    config: Annotated[
        str | None,
        typer.Option("--config", help="Agent config TOML (default /etc/edgebench/agent.toml if present)."),
    ] = None,
) -> None:
    """Take campaign jobs from the MQTT broker and run them one at a time (the edgebench-agent-serve
    service). Jobs wait at the broker while the device is off; states are published per job."""
    from edgebench.agent.daemon.serve import serve as serve_jobs
    from edgebench.agent.publish.config import load_config

    serve_jobs(load_config(config), config)


@app.command()
def models(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the models edgebench knows, their sizes and whether weights are available here."""
    from edgebench.agent.cli.info_commands import list_models

    list_models(json_out)


@app.command()
def sysinfo(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show what this device is (recorded with every result)."""
    from edgebench.agent.cli.info_commands import show_sysinfo

    show_sysinfo(json_out)


@results_app.command("list")
def results_list(limit: Annotated[int, typer.Option(help="How many runs.")] = 20) -> None:
    """Recent runs in the local store."""
    from edgebench.agent.cli.results_commands import list_runs

    list_runs(limit)


@results_app.command("show")
def results_show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough) or 'last'.")] = "last",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result documents as JSON.")] = False,
) -> None:
    """Show one run as a table (or JSON)."""
    from edgebench.agent.cli.results_commands import show_run

    show_run(run_id, json_out)


@results_app.command("export")
def results_export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="json or csv.")] = "json",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run (prefix or 'last').")] = None,
) -> None:
    """Export results (all, or one run) as JSON or CSV."""
    from edgebench.agent.cli.results_commands import export

    export(fmt, output, run_id)


# --- compare / report (agent/report): shared selection options -----------------------------------------
RunsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--run", metavar="ID", help="Local run id / unique prefix / 'last' (repeatable, comma lists ok)."
    ),
]
LastOpt = Annotated[int | None, typer.Option("--last", metavar="N", help="The N most recent local runs.")]
FromOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--from", metavar="FILE", help="Another host's `results export --format json` file (repeatable)."
    ),
]
ModelFilterOpt = Annotated[
    list[str] | None, typer.Option("--model", "-m", metavar="NAME", help="Only these models.")
]
ScenarioFilterOpt = Annotated[
    list[str] | None, typer.Option("--scenario", metavar="NAME", help="Only these scenarios.")
]


@app.command()
def compare(
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            "-b",
            help="AXIS=VALUE: runtime=torch, precision=fp32, device=cpu, host=pi5 (default: automatic).",
        ),
    ] = None,
    run_ids: RunsOpt = None,
    last: LastOpt = None,
    from_files: FromOpt = None,
    model: ModelFilterOpt = None,
    scenario: ScenarioFilterOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Speedup tables against a baseline, matching every other axis (across runs and hosts).

    Without --run/--last the whole local store is used, unless --from files are given (then only them)."""
    from edgebench.agent.cli.compare_command import compare_command, selection

    compare_command(selection(run_ids, last, from_files, model, scenario), baseline, json_out)


@app.command()
def report(
    out: Annotated[str, typer.Option("--out", "-o", help="Report folder (created).")] = "edgebench-report",
    run_ids: RunsOpt = None,
    last: LastOpt = None,
    from_files: FromOpt = None,
    model: ModelFilterOpt = None,
    scenario: ScenarioFilterOpt = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", "-b", help="Also add a speedup table (AXIS=VALUE).")
    ] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "edgebench report",
) -> None:
    """Plots (PNG + SVG), the results table as SVG and an index.html linking them, in one folder.

    Same selection as `compare`. Needs matplotlib (the edgebench extra named 'report')."""
    from edgebench.agent.cli.compare_command import selection
    from edgebench.agent.cli.report_command import report_command

    report_command(selection(run_ids, last, from_files, model, scenario), out, baseline, title)


@power_app.command("probe")
def power_probe(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every power source: available here (kind, rails, update period, watts now) or why not."""
    from edgebench.agent.cli.power_commands import probe

    probe(json_out)


@power_app.command("watch")
def power_watch(
    source: Annotated[str, typer.Option("--source", help="Same choices as `run --power-source`.")] = "auto",
    rate: Annotated[float | None, typer.Option(help="Samples per second (default: the source's).")] = None,
    seconds: Annotated[float | None, typer.Option(help="Stop after this long (default: Ctrl-C).")] = None,
) -> None:
    """Show live watts (total and per rail) until Ctrl-C."""
    from edgebench.agent.cli.power_commands import watch

    watch(source, rate, seconds)


@app.command("export")
def export_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name (see `models`).")],
    to: Annotated[
        str,
        typer.Option("--to", help="Target format: onnx, tflite, ctranslate2 (a copy) or ggml (whisper.cpp)."),
    ],
    quantize: Annotated[
        str | None,
        typer.Option(
            help="int8: dynamic-range int8 weights (activations quantised per call); --to ggml: q8_0 or q5_1."
        ),
    ] = None,
    precision: Annotated[str, typer.Option(help="fp32, or fp16 (half-precision weights).")] = "fp32",
    weights: Annotated[
        str | None,
        typer.Option(
            help="Whisper: a Hugging Face directory (--to ctranslate2: a CTranslate2 one); hybrid: a "
            "state-dict file."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for untrained (random) hybrid weights.")] = 0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON line (directory, reused).")
    ] = False,
) -> None:
    """Export a model to ONNX, TFLite or a CTranslate2 copy (cached; `run` does this) and show where.

    Copy the printed directory into a device's cache (<cache>/exports/) and a device without torch runs it."""
    from edgebench.agent.cli.export_command import export_command

    export_command(model, to, quantize, precision, weights, seed, json_out)


# --- recipes (agent/recipes) ---------------------------------------------------------------------------
RecipeArg = Annotated[
    str, typer.Argument(metavar="NAME", help="A built-in recipe (see `recipe list`) or a .toml file.")
]
QuickOpt = Annotated[
    bool, typer.Option("--quick", help="Smoke run: the recipe's \\[quick] grid and iterations (minutes).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="[STEP.]KEY=VALUE",
        help="Override a run option in every step (model=whisper-base) or one step (amp.device=cuda:1).",
    ),
]


@recipe_app.command("list")
def recipe_list(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The built-in recipes: which seed each reproduces, its steps and its report."""
    from edgebench.agent.cli.recipe_command import list_recipes

    list_recipes(json_out)


@recipe_app.command("show")
def recipe_show(name: RecipeArg, quick: QuickOpt = False, sets: SetOpt = None) -> None:
    """Print the recipe file (to copy and edit) and each step as the plain `run` command it amounts to."""
    from edgebench.agent.cli.recipe_command import show_recipe

    show_recipe(name, quick, sets)


@recipe_app.command("run")
def recipe_run(
    name: RecipeArg,
    quick: QuickOpt = False,
    sets: SetOpt = None,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Report folder (default ./edgebench-recipe-NAME).")
    ] = None,
    store: Annotated[bool, typer.Option(help="Save results in the local store.")] = True,
    publish: Annotated[bool, typer.Option(help="Stream results to the configured MQTT broker.")] = True,
    config: Annotated[str | None, typer.Option("--config", help="Agent config TOML (as for `run`).")] = None,
    broker: Annotated[str | None, typer.Option("--broker", help="MQTT broker HOST[:PORT].")] = None,
) -> None:
    """Run every step of a recipe, then write the seed's tables and plots (exit 1 if a step failed)."""
    from edgebench.agent.cli.recipe_command import run_recipe_command

    raise typer.Exit(run_recipe_command(name, quick, sets, out, store, publish, config, broker))


@recipe_app.command("report")
def recipe_report(
    name: RecipeArg,
    run_ids: RunsOpt = None,
    last: LastOpt = None,
    from_files: FromOpt = None,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Report folder (default ./edgebench-recipe-NAME).")
    ] = None,
) -> None:
    """Rebuild a recipe's report from stored runs or other hosts' `results export` files (fleet view)."""
    from edgebench.agent.cli.compare_command import selection
    from edgebench.agent.cli.recipe_command import report_recipe_command

    report_recipe_command(name, selection(run_ids, last, from_files, None, None), out)


def main() -> None:
    """Console-script entry point (one-line errors, see :func:`run_cli`)."""
    run_cli(app, PROG)


if __name__ == "__main__":
    main()
