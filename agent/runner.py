"""Runs a sweep: loads each (model, runtime, precision, device) once, measures every scenario point,
and turns each into a :class:`ResultDocument`.

The data path is: session (runtime) -> scenario -> trackers (latency, memory) -> result document. The
runner itself measures nothing; it only wires these together and reports progress.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import edgebench.agent as _agent
from edgebench.agent.results.schema import LoadResult, MemoryResult, ResultDocument, RunConfig, SysInfo
from edgebench.agent.runtimes import runtime_class
from edgebench.agent.runtimes.base import RuntimeSession, SessionOptions
from edgebench.agent.scenarios.base import ScenarioContext, ScenarioOutput, run_point, speech_of_length
from edgebench.agent.stats import StoppingRule
from edgebench.agent.sweep import Point, Sweep
from edgebench.agent.trackers.latency import Timer
from edgebench.agent.trackers.memory import MemoryTracker
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import resolve

if TYPE_CHECKING:
    from edgebench.agent.datasets.perturb import Perturbation
    from edgebench.agent.power.monitor import RunMonitor


@dataclass
class RunSettings:
    sweep: Sweep
    rule: StoppingRule
    dataset_name: str
    threads: int | None = None
    ort_opt_level: str = "all"
    """onnxruntime graph optimisation level (disabled/basic/extended/all); other runtimes ignore it."""
    frontend: str = "auto"
    weights: str | None = None
    seed: int = 0
    beam_size: int = 4
    fleet: str = "default"
    host: str | None = None
    """Overrides the hostname in result documents: the agent config's [agent] host, which must match the
    host's MQTT username/ACL (the collector rejects documents whose host differs from the topic)."""
    run_id: str | None = None
    """Set by callers that announce the run (MQTT status) before the first result exists."""
    power_source: str = "none"
    """--power-source: auto, none, a source name, command:CMD or replay:PATH (agent/power/detect.py).
    The CLI defaults to auto; programmatic callers opt in."""
    idle_seconds: float = 2.0
    """Idle baseline measured before the sweep (0: none, so no net energy)."""
    power_rate_hz: float | None = None
    """Power sampling rate (default: the source's native rate, at least 10 Hz)."""
    dataset_limit: int | None = None
    """--limit: the dataset is a seeded sample of this many utterances (``seed`` draws it)."""
    perturbation: Perturbation | None = None
    """--noise-snr / --speed applied to the dataset by the caller; recorded in every result's config."""
    torch_mode: str = "eager"
    attn_impl: str | None = None
    amp: bool = False
    """torch variants (agent/runtimes/torch_variants.py); other runtimes refuse them (checked by the CLI)."""
    label: str | None = None
    """``run --label`` / a recipe step's name, recorded in every result's config."""
    recipe: str | None = None
    """The recipe this run is a step of (``recipe run``)."""


class Progress:
    """Callbacks the CLI hooks a progress bar into (no-ops by default)."""

    def point_started(self, label: str, expected_iterations: int | None) -> None: ...
    def iteration(self, count: int) -> None: ...
    def point_finished(self) -> None: ...
    def status(self, text: str) -> None: ...


def _validate(settings: RunSettings) -> None:
    """Fail on the first bad combination before anything heavy is loaded."""
    from edgebench.agent.errors import EdgebenchError

    sweep = settings.sweep
    for name in sweep.models:
        spec = resolve(name)
        if spec.family == "whisper":
            if sweep.ctc_weights:
                raise EdgebenchError(
                    f"--ctc-weight applies only to hybrid CTC/attention models, not {spec.name}"
                )
            too_long = [s for s in sweep.audio_seconds if s > 30]
            if too_long and {"forward", "generate"} & set(sweep.scenarios):
                raise EdgebenchError(
                    f"{spec.name} takes at most 30 s of audio per window; "
                    f"--audio-seconds {too_long[0]:g} is longer"
                )
            if "generate" in sweep.scenarios and max(sweep.new_tokens) > 440:
                raise EdgebenchError(
                    f"{spec.name} generates at most 448 tokens including the prompt; "
                    f"--new-tokens {max(sweep.new_tokens)} is too many"
                )
        elif spec.family == "causal-lm":  # hf:<causal LM>: token ids in, no audio, torch only
            if "transcribe" in sweep.scenarios:
                raise EdgebenchError(
                    f"{spec.name} is a language model: use --scenario load,forward,generate (not transcribe)"
                )
            if sweep.ctc_weights:
                raise EdgebenchError(
                    f"--ctc-weight applies only to hybrid CTC/attention models, not {spec.name}"
                )
            if set(sweep.runtimes) - {"torch"}:
                raise EdgebenchError(f"{spec.name} (an hf: language model) runs on --runtime torch only")
    for runtime in sweep.runtimes:
        session_class = runtime_class(runtime)  # unknown runtime / missing extra
        for name in sweep.models:  # combinations a runtime is known not to run, before any loading
            spec = resolve(name)
            for point in sweep.points(spec.family == "hybrid"):
                reason = session_class.unsupported(spec, point.scenario, point.ctc_weight)
                if reason:
                    raise EdgebenchError(reason)


def run_sweep(
    settings: RunSettings,
    dataset: list,
    sysinfo_factory: Callable[[str | None], SysInfo],
    progress: Progress | None = None,
) -> Iterator[ResultDocument]:
    """Yield one result document per measured point, in order. ``seq`` numbers them within the run.

    Energy and telemetry are sampled for the whole sweep by one :class:`RunMonitor`, opened (idle
    baseline included) before any model is loaded and closed however the sweep ends."""
    from edgebench.agent.power.monitor import RunMonitor

    _validate(settings)
    progress = progress or Progress()
    monitor = RunMonitor(settings.power_source, settings.idle_seconds, settings.power_rate_hz)
    if settings.power_source != "none":
        progress.status(f"power source: {settings.power_source}, idle baseline")
    monitor.start()
    try:
        yield from _run_sweep(settings, dataset, sysinfo_factory, progress, monitor)
    finally:
        monitor.close()


def _run_sweep(
    settings: RunSettings,
    dataset: list,
    sysinfo_factory: Callable[[str | None], SysInfo],
    progress: Progress,
    monitor: RunMonitor,
) -> Iterator[ResultDocument]:
    import uuid

    run_id = settings.run_id or str(uuid.uuid4())
    frontend_cache: dict[int, LogMelFrontend] = {}
    seq = 0
    for model_name, runtime, precision, device in settings.sweep.sessions():
        spec = resolve(model_name)
        frontend = frontend_cache.setdefault(spec.n_mels, LogMelFrontend(spec.n_mels, settings.frontend))
        options = SessionOptions(
            precision=precision,
            device=device,
            threads=settings.threads,
            weights=settings.weights,
            seed=settings.seed,
            beam_size=settings.beam_size,
            ort_opt_level=settings.ort_opt_level,
            torch_mode=settings.torch_mode,
            attn_impl=settings.attn_impl,
            amp=settings.amp,
        )
        progress.status(f"loading {spec.name} on {runtime}/{precision}/{device}")
        session = runtime_class(runtime)(spec, options, frontend)
        with Timer() as load_timer:
            session.load()
        sysinfo = sysinfo_factory(session.device if session.device != "cpu" else None)
        try:
            window = spec.options.get("window_s")
            default_seconds = window if isinstance(window, float) else 10.0
            for point in settings.sweep.points(spec.family == "hybrid", default_seconds):
                label = _label(spec.name, runtime, precision, session.device, point)
                progress.point_started(
                    label, None if point.scenario == "load" else settings.rule.min_iterations
                )
                if point.scenario == "load":
                    window = monitor.window()
                    output, memory = _measure_load(session, dataset, load_timer.elapsed_s)
                    energy, telemetry, monitor_warnings = monitor.finish(window, None)
                    output.fields.update(energy=energy, telemetry=telemetry)
                    output.warnings.extend(monitor_warnings)
                else:
                    ctx = ScenarioContext(
                        session, settings.rule, dataset, on_iteration=progress.iteration, monitor=monitor
                    )
                    session.memory_peak_reset()
                    with MemoryTracker() as tracker:
                        output = run_point(ctx, point)
                    memory = tracker.result
                    if tracker.warning:
                        output.warnings.append(f"memory: {tracker.warning}")
                    if memory.cuda_peak_allocated_bytes is None:
                        memory.cuda_peak_allocated_bytes = session.device_peak_memory()
                progress.point_finished()
                yield _document(settings, session, spec.name, point, output, memory, sysinfo, run_id, seq)
                seq += 1
        finally:
            session.close()


def _measure_load(
    session: RuntimeSession, dataset: list, load_s: float
) -> tuple[ScenarioOutput, MemoryResult | None]:
    """Cold first inference right after loading, then a warm one: what a user waits for on startup."""
    feats = session.features([speech_of_length(dataset, 5.0)])
    with Timer(sync=session.synchronize) as first:
        session.forward(feats)
    with Timer(sync=session.synchronize) as warm:
        session.forward(feats)
    result = LoadResult(load_s=load_s, first_inference_s=first.elapsed_s, warm_inference_s=warm.elapsed_s)
    return ScenarioOutput({"load": result}), None


def _label(model: str, runtime: str, precision: str, device: str, p: Point) -> str:
    parts = [model, runtime, precision, device, p.scenario]
    if p.scenario != "load":
        parts.append(f"b{p.batch_size}")
    if p.audio_seconds is not None and p.scenario in ("forward", "generate"):
        parts.append(f"{p.audio_seconds:g}s")
    if p.new_tokens is not None and p.scenario == "generate":
        parts.append(f"{p.new_tokens}tok")
    if p.ctc_weight is not None:
        parts.append(f"ctc{p.ctc_weight:g}")
    return " ".join(parts)


def _variant_config(session: RuntimeSession) -> dict[str, object]:
    """The runtime's own knobs: torch_mode / attn_impl / amp for torch, the graph optimisation level for
    onnxruntime (None elsewhere: not applicable)."""
    o = session.options
    if session.name == "torch":
        return {"torch_mode": o.torch_mode, "attn_impl": o.attn_impl, "amp": o.amp}
    if session.name == "onnxruntime":
        return {"ort_opt_level": o.ort_opt_level}
    return {}


def _dataset_config(settings: RunSettings) -> dict[str, object]:
    """Sampling and perturbation fields of RunConfig; the seed only where it changed the data."""
    p = settings.perturbation
    fields: dict[str, object] = {"dataset_limit": settings.dataset_limit}
    if p is not None and p.active:
        fields.update(
            noise_snr_db=p.noise_snr_db,
            noise=p.noise if p.noise_snr_db is not None else None,
            speed=p.speed if p.speed != 1.0 else None,
        )
    if settings.dataset_limit is not None or (p is not None and p.noise_snr_db is not None):
        fields["dataset_seed"] = settings.seed
    return fields


def _document(
    settings: RunSettings,
    session: RuntimeSession,
    model_name: str,
    point: Point,
    output: ScenarioOutput,
    memory: MemoryResult | None,
    sysinfo: SysInfo,
    run_id: str,
    seq: int,
) -> ResultDocument:
    scenario = point.scenario
    lm = session.spec.family == "causal-lm"  # hf: language model: a prompt of token ids, no audio
    config = RunConfig(
        model=model_name,
        runtime=session.name,
        precision=session.options.precision,  # type: ignore[arg-type]
        device=session.device,
        scenario=scenario,  # type: ignore[arg-type]
        batch_size=point.batch_size,
        audio_seconds=point.audio_seconds if scenario in ("forward", "generate") and not lm else None,
        prompt_tokens=session.spec.options.get("prompt_tokens") if lm and scenario != "load" else None,
        new_tokens=point.new_tokens if scenario == "generate" else None,
        ctc_weight=point.ctc_weight,
        threads=session.threads,
        frontend=session.frontend.backend,
        dataset=settings.dataset_name,
        **_dataset_config(settings),
        **_variant_config(session),
        label=settings.label,
        recipe=settings.recipe,
    )
    warnings = [*session.warnings, *output.warnings]
    if sysinfo.emulated:
        warnings.append(
            f"measured on an emulated CPU ({sysinfo.emulated}): the timings, throughput and energy are not "
            f"those of a real {sysinfo.device_model or sysinfo.device_class}"
        )
    return ResultDocument(
        run_id=run_id,
        seq=seq,
        host=settings.host or sysinfo.hostname or socket.gethostname(),
        fleet=settings.fleet,
        device_class=sysinfo.device_class,
        edgebench_version=_agent.__version__,
        config=config,
        model=session.model_report(),
        sysinfo=sysinfo,
        memory=memory,
        warnings=warnings,
        **output.fields,
    )
