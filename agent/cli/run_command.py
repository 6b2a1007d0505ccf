"""``edgebench-agent run``: parse the sweep, measure, show progress, store and print results."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass

from edgebench.agent.errors import EdgebenchError


@dataclass
class RunRequest:
    """The options of ``run`` exactly as typed (strings for comma lists)."""

    model: str
    runtime: str
    precision: str
    device: str
    scenario: str
    batch_size: str
    audio_seconds: str | None
    new_tokens: str
    ctc_weight: str | None
    dataset: str
    threads: int | None
    warmup: int
    min_iterations: int
    min_duration: float
    max_cv: float | None
    max_iterations: int
    max_duration: float
    frontend: str
    weights: str | None
    beam_size: int
    seed: int
    fleet: str | None
    json_out: bool
    store: bool
    config: str | None = None
    broker: str | None = None
    publish: bool = True
    publish_timeout: float = 15.0
    ort_opt_level: str = "all"
    power_source: str = "auto"
    idle_seconds: float = 2.0
    power_rate: float | None = None
    limit: int | None = None
    noise_snr: float | None = None
    noise: str = "white"
    speed: float | None = None
    torch_mode: str = "eager"
    attn_impl: str | None = None
    amp: bool = False
    label: str | None = None
    recipe: str | None = None


@dataclass
class Measured:
    """What one ``run`` produced: its documents, where they were stored, what publishing said."""

    docs: list
    store_path: str | None
    publish_line: str | None


def load_publish_config(req: RunRequest):
    """The agent config (host/fleet for every document, broker, spool). Read even with --no-publish:
    the configured host/fleet identify this machine's results wherever they end up."""
    from edgebench.agent.publish.config import load_config

    return load_config(req.config, req.broker, req.fleet)


def build_settings(req: RunRequest, host: str | None = None, fleet: str | None = None):
    """Validate every option into RunSettings; bad values fail here with one line, before loading."""
    from edgebench.agent.runner import RunSettings
    from edgebench.agent.stats import StoppingRule
    from edgebench.agent.sweep import SCENARIOS, Sweep, one_of, parse_list, positive, unit_interval
    from edgebench.models.registry import resolve

    models = [resolve(m).name for m in parse_list(req.model, str, "--model")]
    sweep = Sweep(
        models=models,
        runtimes=parse_list(req.runtime, str, "--runtime"),
        precisions=parse_list(req.precision, str, "--precision", one_of(("fp32", "fp16", "int8"))),
        devices=parse_list(req.device, str, "--device"),
        scenarios=parse_list(req.scenario, str, "--scenario", one_of(SCENARIOS)),
        batch_sizes=parse_list(req.batch_size, int, "--batch-size", positive),
        audio_seconds=parse_list(req.audio_seconds, float, "--audio-seconds", positive),
        new_tokens=parse_list(req.new_tokens, int, "--new-tokens", positive),
        ctc_weights=parse_list(req.ctc_weight, float, "--ctc-weight", unit_interval),
    )
    for flag, value, low in [
        ("--min-iterations", req.min_iterations, 1),
        ("--max-iterations", req.max_iterations, 1),
        ("--warmup", req.warmup, 0),
        ("--beam-size", req.beam_size, 1),
    ]:
        if value < low:
            raise EdgebenchError(f"{flag} must be >= {low} (got {value})")
    if req.threads is not None and req.threads < 1:
        raise EdgebenchError(f"--threads must be >= 1 (got {req.threads})")
    if req.min_duration < 0 or req.max_duration <= 0:
        raise EdgebenchError("--min-duration must be >= 0 and --max-duration > 0")
    if req.max_cv is not None and not 0 < req.max_cv < 100:
        raise EdgebenchError(f"--max-cv is a percentage between 0 and 100 (got {req.max_cv})")
    from edgebench.models.frontend.logmel import BACKENDS

    if req.frontend not in BACKENDS:
        raise EdgebenchError(f"--frontend must be {', '.join(BACKENDS)} (got '{req.frontend}')")
    if req.idle_seconds < 0:
        raise EdgebenchError(f"--idle-seconds must be >= 0 (got {req.idle_seconds:g})")
    if req.power_rate is not None and not 0 < req.power_rate <= 1000:
        raise EdgebenchError(f"--power-rate must be within (0, 1000] Hz (got {req.power_rate:g})")
    from edgebench.agent.power.detect import check_spec
    from edgebench.agent.runtimes.torch_variants import check_cli

    check_cli(req.torch_mode, req.attn_impl, req.amp, sweep.runtimes, sweep.scenarios)

    check_spec(req.power_source)
    _check_label(req.label)
    rule = StoppingRule(
        warmup=req.warmup,
        min_iterations=req.min_iterations,
        min_duration_s=req.min_duration,
        max_cv=None if req.max_cv is None else req.max_cv / 100.0,
        max_iterations=req.max_iterations,
        max_duration_s=req.max_duration,
    )
    return RunSettings(
        sweep=sweep,
        rule=rule,
        dataset_name=req.dataset,
        dataset_limit=req.limit,
        perturbation=_perturbation(req),
        torch_mode=req.torch_mode,
        attn_impl=req.attn_impl,
        amp=req.amp,
        label=req.label,
        recipe=req.recipe,
        threads=req.threads,
        ort_opt_level=_ort_opt_level(req.ort_opt_level),
        frontend=req.frontend,
        weights=req.weights,
        seed=req.seed,
        beam_size=req.beam_size,
        fleet=fleet or req.fleet or "default",
        host=host,
        power_source=req.power_source,
        idle_seconds=req.idle_seconds,
        power_rate_hz=req.power_rate,
    )


def _perturbation(req: RunRequest):  # type: ignore[no-untyped-def]
    """--noise-snr / --noise / --speed, validated (before any model loads)."""
    from edgebench.agent.datasets.perturb import Perturbation

    if req.limit is not None and req.limit < 1:
        raise EdgebenchError(f"--limit must be >= 1 (got {req.limit})")
    return Perturbation(noise_snr_db=req.noise_snr, noise=req.noise, speed=req.speed, seed=req.seed)


def _check_label(label: str | None) -> None:
    """A label becomes an InfluxDB tag and a table heading: short, printable, one line."""
    if label is None:
        return
    if not label.strip() or len(label) > 64 or not label.isprintable():
        raise EdgebenchError(f"--label '{label}': use 1-64 printable characters (e.g. auto_opt+qnt)")


def _ort_opt_level(value: str) -> str:
    levels = ("disabled", "basic", "extended", "all")
    if value not in levels:
        raise EdgebenchError(f"--ort-opt-level must be one of {', '.join(levels)} (got '{value}')")
    return value


def measure(req: RunRequest, err) -> Measured:  # type: ignore[no-untyped-def]
    """Run the sweep of ``req`` with a progress bar on ``err``: every document is stored and spooled for
    MQTT as soon as it is measured, so an interrupted sweep keeps what it has. ``recipe run`` calls this
    once per step."""
    from edgebench.agent.cli.progress import RichProgress
    from edgebench.agent.datasets.loader import load_dataset
    from edgebench.agent.results.store import ResultStore
    from edgebench.agent.runner import run_sweep
    from edgebench.agent.trackers.sysinfo import collect_sysinfo

    pub_config = load_publish_config(req)
    settings = build_settings(req, host=pub_config.host, fleet=pub_config.fleet)
    settings.run_id = str(uuid.uuid4())
    dataset = load_dataset(req.dataset, limit=req.limit, seed=req.seed)
    if settings.perturbation.active:
        from edgebench.agent.datasets.perturb import perturb

        dataset = perturb(dataset, settings.perturbation)
    publishing = None
    if req.publish and pub_config.enabled:
        from rich.markup import escape

        from edgebench.agent.publish.command import RunPublishing

        publishing = RunPublishing(
            pub_config, warn=lambda m: err.print(f"[yellow]warning:[/] {escape(m)}", soft_wrap=True)
        )
        publishing.begin(settings.run_id)
    store = ResultStore() if req.store else None
    docs = []
    publish_line = None
    completed = False
    try:
        with RichProgress(err) as progress:
            for doc in run_sweep(settings, dataset, lambda acc: collect_sysinfo(accelerator=acc), progress):
                if store:
                    store.add(doc)  # saved as soon as measured: an interrupted sweep keeps what it has
                if publishing:  # spooled durably, then sent: between measured points
                    publishing.on_document(doc, stored=store is not None)
                docs.append(doc)
        completed = True
    finally:
        if store:
            store.close()
        if publishing:  # interrupted or failed: don't make the user wait; the spool keeps the rest
            publish_line = publishing.finish(
                req.publish_timeout if completed else min(req.publish_timeout, 2)
            )
    return Measured(docs, str(store.path) if store else None, publish_line)


def execute(req: RunRequest) -> None:
    from rich.console import Console
    from rich.markup import escape

    from edgebench.agent.cli.tables import models_params_table, results_table

    err = Console(stderr=True)
    measured = measure(req, err)
    docs, publish_line = measured.docs, measured.publish_line
    if req.json_out:
        sys.stdout.write(json.dumps([d.model_dump(mode="json") for d in docs], indent=2) + "\n")
        if publish_line:
            err.print(publish_line, highlight=False, markup=False)  # wrapped at words
        return
    out = Console()
    out.print(results_table(docs))
    out.print(models_params_table(docs))
    warnings = sorted({w for d in docs for w in d.warnings})
    for w in warnings:
        out.print(f"[yellow]warning:[/] {w}")
    if docs:
        s = docs[0].sysinfo
        where = f"stored in {measured.store_path}" if measured.store_path else "not stored (--no-store)"
        emulated = f", EMULATED: {escape(s.emulated)}" if s.emulated else ""
        out.print(
            f"[dim]{s.hostname} ({s.device_class}, {s.cpu_model or s.arch}, {s.cpu_cores_logical} cores"
            f"{emulated}) · run {docs[0].run_id} · {where}[/]"
        )
    if publish_line:
        out.print(publish_line, highlight=False, markup=False)  # wrapped at words
