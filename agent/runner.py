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
from edgebench.agent.sweep import Point
from edgebench.agent.trackers.latency import Timer
from edgebench.agent.trackers.memory import MemoryTracker
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import resolve

if TYPE_CHECKING:
    from edgebench.agent.power.monitor import RunMonitor
    from edgebench.agent.runspec import RunSpec


@dataclass(frozen=True)
class RunIdentity:
    """Who measures: written into every result document (the agent config's host and fleet, which must
    match the host's MQTT username/ACL: the collector rejects documents whose host differs from the
    topic), and the run id announced (MQTT status) before the first result exists."""

    run_id: str
    fleet: str = "default"
    host: str | None = None
    """None: this machine's hostname."""


class Progress:
    """Callbacks the CLI hooks a progress bar into (no-ops by default)."""

    def point_started(self, label: str, expected_iterations: int | None) -> None: ...
    def iteration(self, count: int) -> None: ...
    def point_finished(self) -> None: ...
    def status(self, text: str) -> None: ...


def run_sweep(
    spec: RunSpec,
    identity: RunIdentity,
    dataset: list,
    sysinfo_factory: Callable[[str | None], SysInfo],
    progress: Progress | None = None,
) -> Iterator[ResultDocument]:
    """Yield one result document per measured point, in order. ``seq`` numbers them within the run.

    Energy and telemetry are sampled for the whole sweep by one :class:`RunMonitor`, opened (idle
    baseline included) before any model is loaded and closed however the sweep ends."""
    from edgebench.agent.power.monitor import RunMonitor

    spec.check_runnable()
    progress = progress or Progress()
    power = spec.power
    monitor = RunMonitor(power.source, power.idle_seconds, power.rate_hz)
    if power.source != "none":
        progress.status(f"power source: {power.source}, idle baseline")
    monitor.start()
    try:
        yield from _run_sweep(spec, identity, dataset, sysinfo_factory, progress, monitor)
    finally:
        monitor.close()


def _run_sweep(
    spec: RunSpec,
    identity: RunIdentity,
    dataset: list,
    sysinfo_factory: Callable[[str | None], SysInfo],
    progress: Progress,
    monitor: RunMonitor,
) -> Iterator[ResultDocument]:
    frontend_cache: dict[int, LogMelFrontend] = {}
    from edgebench.agent import allocator

    rule = spec.measurement.rule(allocator.apply(spec.measurement.allocator))  # before any model loads
    engine = spec.engine
    seq = 0
    for model_name, runtime, precision, device in spec.sweep.sessions():
        model = resolve(model_name)
        frontend = frontend_cache.setdefault(model.n_mels, LogMelFrontend(model.n_mels, engine.frontend))
        options = SessionOptions(
            precision=precision,
            device=device,
            threads=engine.threads,
            weights=engine.weights,
            seed=engine.seed,
            beam_size=engine.beam_size,
            runtime_options=spec.runtime_options,
        )
        progress.status(f"loading {model.name} on {runtime}/{precision}/{device}")
        session = runtime_class(runtime)(model, options, frontend)
        with Timer() as load_timer:
            session.load()
        sysinfo = sysinfo_factory(session.device if session.device != "cpu" else None)
        try:
            window = model.options.get("window_s")
            default_seconds = window if isinstance(window, float) else 10.0
            for point in spec.sweep.points(model.family == "hybrid", default_seconds):
                label = _label(model.name, runtime, precision, session.device, point)
                progress.point_started(label, None if point.scenario == "load" else rule.min_iterations)
                if point.scenario == "load":
                    window = monitor.window()
                    output, memory = _measure_load(session, dataset, load_timer.elapsed_s)
                    energy, telemetry, monitor_warnings = monitor.finish(window, None)
                    output.fields.update(energy=energy, telemetry=telemetry)
                    output.warnings.extend(monitor_warnings)
                else:
                    ctx = ScenarioContext(
                        session, rule, dataset, on_iteration=progress.iteration, monitor=monitor
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
                yield _document(spec, identity, session, model.name, point, output, memory, sysinfo, seq)
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
    return session.options.runtime_options.result_config(session.name)


def _dataset_config(spec: RunSpec) -> dict[str, object]:
    """Sampling and perturbation fields of RunConfig; the seed only where it changed the data."""
    p = spec.dataset.perturbation(spec.engine.seed)
    fields: dict[str, object] = {"dataset_limit": spec.dataset.limit}
    if p.active:
        fields.update(
            noise_snr_db=p.noise_snr_db,
            noise=p.noise if p.noise_snr_db is not None else None,
            speed=p.speed if p.speed != 1.0 else None,
        )
    if spec.dataset.limit is not None or p.noise_snr_db is not None:
        fields["dataset_seed"] = spec.engine.seed
    return fields


def _document(
    spec: RunSpec,
    identity: RunIdentity,
    session: RuntimeSession,
    model_name: str,
    point: Point,
    output: ScenarioOutput,
    memory: MemoryResult | None,
    sysinfo: SysInfo,
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
        dataset=spec.dataset.name,
        **_dataset_config(spec),
        **_variant_config(session),
        label=spec.label,
        recipe=spec.recipe,
        campaign=spec.campaign,
    )
    warnings = [*session.warnings, *output.warnings]
    if sysinfo.emulated:
        warnings.append(
            f"measured on an emulated CPU ({sysinfo.emulated}): the timings, throughput and energy are not "
            f"those of a real {sysinfo.device_model or sysinfo.device_class}"
        )
    return ResultDocument(
        run_id=identity.run_id,
        seq=seq,
        host=identity.host or sysinfo.hostname or socket.gethostname(),
        fleet=identity.fleet,
        device_class=sysinfo.device_class,
        edgebench_version=_agent.__version__,
        config=config,
        model=session.model_report(),
        sysinfo=sysinfo,
        memory=memory,
        warnings=warnings,
        **output.fields,
    )
