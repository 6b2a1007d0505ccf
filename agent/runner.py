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
from edgebench.agent.errors import EdgebenchError
from edgebench.agent.results.schema import (
    LoadResult,
    MemoryResult,
    ModelReport,
    ResultDocument,
    RunConfig,
    SysInfo,
)
from edgebench.agent.runtimes import runtime_class
from edgebench.agent.runtimes.base import RuntimeSession, SessionOptions, requested_language
from edgebench.agent.scenarios.base import (
    ScenarioContext,
    ScenarioOutput,
    scenario_function,
    speech_of_length,
)
from edgebench.agent.sweep import Point
from edgebench.agent.trackers.interference import InterferenceTracker, stability_warnings
from edgebench.agent.trackers.latency import Timer
from edgebench.agent.trackers.memory import MemoryBudgetExceeded, MemoryTracker, rss_now
from edgebench.models.frontend.logmel import LogMelFrontend
from edgebench.models.registry import resolve

if TYPE_CHECKING:
    from edgebench.agent.power.monitor import RunMonitor
    from edgebench.agent.runspec import RunSpec
    from edgebench.models.spec import ModelSpec


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
    check_languages(spec, dataset)
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


def check_languages(spec: RunSpec, dataset: list) -> None:
    """An English-only Whisper is not run on utterances its dataset says are in another language: its
    "WER" there would measure the wrong model choice, not the device."""
    spoken = sorted({u.language for u in dataset if u.language not in (None, "en")})
    if not spoken or not {"transcribe", "stream"} & set(spec.sweep.scenarios):
        return
    for name in spec.sweep.models:
        model = resolve(name)
        if model.family == "whisper" and model.english_only:
            raise EdgebenchError(
                f"{model.name} is English-only and {spec.dataset.name} has {', '.join(spoken)} "
                "utterances: use a multilingual Whisper (whisper-base runs offline) or an English dataset"
            )


def _run_sweep(
    spec: RunSpec,
    identity: RunIdentity,
    dataset: list,
    sysinfo_factory: Callable[[str | None], SysInfo],
    progress: Progress,
    monitor: RunMonitor,
) -> Iterator[ResultDocument]:
    frontend_cache: dict[tuple[int, str], LogMelFrontend] = {}
    from edgebench.agent import allocator

    rule = spec.measurement.rule(allocator.apply(spec.measurement.allocator))  # before any model loads
    budget = spec.measurement.max_rss_bytes
    engine = spec.engine
    seq = 0
    for model_name, runtime, precision, device in spec.sweep.sessions():
        model = resolve(model_name)
        backend = frontend_backend(engine.frontend, runtime)
        frontend = frontend_cache.get((model.n_mels, backend)) or LogMelFrontend(model.n_mels, backend)
        frontend_cache[(model.n_mels, backend)] = frontend
        options = SessionOptions(
            precision=precision,
            device=device,
            threads=engine.threads,
            weights=engine.weights,
            seed=engine.seed,
            beam_size=engine.beam_size,
            language=engine.language,
            task=engine.task,
            runtime_options=spec.runtime_options,
        )
        session = runtime_class(runtime)(model, options, frontend)
        progress.status(f"preparing {model.name} for {runtime}/{precision}")
        session.prepare()  # in a child process: its imports and peak are not this run's memory
        progress.status(f"loading {model.name} on {runtime}/{precision}/{device}")
        points = spec.sweep.points(model.family == "hybrid", _default_seconds(model))
        load = LoadMemory(before=rss_now())
        load_tracker = MemoryTracker(budget_bytes=budget)  # bound before entering: it may raise there
        try:
            with Timer() as load_timer, load_tracker:
                session.load()
        except MemoryBudgetExceeded:
            load.finish(load_tracker.result)
            sysinfo = sysinfo_factory(None)
            try:
                for point in points:  # each configuration says why it has no figures; the sweep goes on
                    memory = load.window(load_tracker.result)
                    output = _over_budget(memory, "while loading the model")
                    yield _document(spec, identity, session, model.name, point, output, memory, sysinfo, seq)
                    seq += 1
            finally:
                session.close()
            continue
        load.finish(load_tracker.result)
        sysinfo = sysinfo_factory(session.device if session.device != "cpu" else None)
        try:
            for point in points:
                label = _label(model.name, runtime, precision, session.device, point)
                expected = None if point.scenario in ("load", "stream") else rule.min_iterations
                progress.point_started(label, expected)
                if point.scenario == "load":
                    window = monitor.window()
                    output = _measure_load(session, dataset, load_timer.elapsed_s)
                    memory = load.window(load_tracker.result)  # the load's own peak and share
                    energy, telemetry, monitor_warnings = monitor.finish(window, None)
                    output.fields.update(energy=energy, telemetry=telemetry)
                    output.warnings.extend(monitor_warnings)
                else:
                    run = scenario_function(point.scenario)
                    ctx = ScenarioContext(
                        session,
                        rule,
                        dataset,
                        on_iteration=progress.iteration,
                        monitor=monitor,
                        stream=spec.stream,
                    )
                    session.memory_peak_reset()
                    exceeded = False
                    tracker = MemoryTracker(budget_bytes=budget)
                    others = InterferenceTracker()
                    try:
                        with tracker, others:
                            output = run(ctx, point)
                    except MemoryBudgetExceeded:
                        exceeded = True
                    memory = load.window(tracker.result)
                    if exceeded:
                        output = _over_budget(memory, "during the measurement")
                    elif memory.budget_exceeded_at_bytes is not None:
                        output.warnings.append(_budget_line(memory, "(seen after it finished)"))
                    if tracker.warning:
                        output.warnings.append(f"memory: {tracker.warning}")
                    if memory.cuda_peak_allocated_bytes is None:
                        memory.cuda_peak_allocated_bytes = session.device_peak_memory()
                    if not exceeded:
                        output.fields["interference"] = others.result
                        output.warnings.extend(stability_warnings(output, others.result))
                progress.point_finished()
                yield _document(spec, identity, session, model.name, point, output, memory, sysinfo, seq)
                seq += 1
        finally:
            session.close()


def frontend_backend(requested: str, runtime: str) -> str:
    """``auto`` means torch only for the torch runtime (which has torch loaded anyway); every other
    runtime gets the numpy front end, so a device running ONNX Runtime, CTranslate2 or LiteRT never
    imports torch for its features (about 300 MB of RSS that is not the model's)."""
    if requested == "auto" and runtime != "torch":
        return "numpy"
    return requested


def _default_seconds(model: ModelSpec) -> float:
    window = model.options.get("window_s")
    return window if isinstance(window, float) else 10.0


@dataclass
class LoadMemory:
    """RSS around one session's model load, shared by the documents of its configurations."""

    before: int
    after: int | None = None
    load_peak: int | None = None

    def finish(self, tracker_result: MemoryResult) -> None:
        self.after = rss_now()
        # the poller samples every few ms and may miss the load's last bytes: the end is part of the load
        self.load_peak = max(tracker_result.peak_rss_bytes, self.after)

    def window(self, measured: MemoryResult) -> MemoryResult:
        """``measured`` (one configuration's window, or the load itself) with the load figures and the
        model's share: the most the process held above what it held before the model loaded."""
        peak = max(measured.peak_rss_bytes, self.load_peak or 0)
        return measured.model_copy(
            update={
                "before_load_rss_bytes": self.before,
                "after_load_rss_bytes": self.after,
                "load_peak_rss_bytes": self.load_peak,
                "model_share_bytes": max(peak - self.before, 0),
            }
        )


def _model_report(session: RuntimeSession) -> ModelReport:
    """The session's model report; for a model that never finished loading (``--max-rss``), what is
    known without it."""
    try:
        return session.model_report()
    except Exception:
        return ModelReport(
            name=session.spec.name,
            family=session.spec.family,
            trained=False,
            weights_source="not loaded (memory budget exceeded)",
            params={},
        )


def _budget_line(memory: MemoryResult, when: str) -> str:
    at = (memory.budget_exceeded_at_bytes or memory.peak_rss_bytes) / 2**20
    return f"exceeded budget at {at:.0f} MB (--max-rss {(memory.budget_bytes or 0) / 2**20:.0f}) {when}"


def _over_budget(memory: MemoryResult, when: str) -> ScenarioOutput:
    """A configuration stopped by ``--max-rss``: no figures, the memory it reached and why."""
    from edgebench.agent.results.schema import MeasurementPolicy

    line = _budget_line(memory, when)
    policy = MeasurementPolicy(
        warmup=0,
        min_iterations=0,
        min_duration_s=0.0,
        max_iterations=0,
        max_duration_s=0.0,
        stopped_because=line,
    )
    return ScenarioOutput({"policy": policy}, [line])


def _measure_load(session: RuntimeSession, dataset: list, load_s: float) -> ScenarioOutput:
    """Cold first inference right after loading, then a warm one: what a user waits for on startup."""
    feats = session.forward_inputs([speech_of_length(dataset, 5.0)])
    with Timer(sync=session.synchronize) as first:
        session.forward(feats)
    with Timer(sync=session.synchronize) as warm:
        session.forward(feats)
    result = LoadResult(load_s=load_s, first_inference_s=first.elapsed_s, warm_inference_s=warm.elapsed_s)
    return ScenarioOutput({"load": result})


def _label(model: str, runtime: str, precision: str, device: str, p: Point) -> str:
    parts = [model, runtime, precision, device, p.scenario]
    if p.scenario not in ("load", "stream"):
        parts.append(f"b{p.batch_size}")
    if p.audio_seconds is not None and p.scenario in ("forward", "generate"):
        parts.append(f"{p.audio_seconds:g}s")
    if p.new_tokens is not None and p.scenario == "generate":
        parts.append(f"{p.new_tokens}tok")
    if p.stream_policy is not None:
        parts.append(f"{p.stream_policy} {p.chunk_s:g}s")
    if p.ctc_weight is not None:
        parts.append(f"ctc{p.ctc_weight:g}")
    return " ".join(parts)


def _variant_config(session: RuntimeSession) -> dict[str, object]:
    """The runtime's own knobs: torch_mode / attn_impl / amp for torch, the graph optimisation level for
    onnxruntime (None elsewhere: not applicable)."""
    return session.result_config()


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
        frontend=session.frontend_name(scenario),
        dataset=spec.dataset.name,
        **_dataset_config(spec),
        **_variant_config(session),
        label=spec.label,
        recipe=spec.recipe,
        campaign=spec.campaign,
        language=requested_language(session.spec, session.options.language),
        task=session.options.task if session.spec.family == "whisper" else None,  # type: ignore[arg-type]
        stream_policy=point.stream_policy,
        chunk_seconds=point.chunk_s,
        stream_speed=spec.stream.speed if scenario == "stream" else None,
    )
    warnings = [*session.warnings, *session.scenario_notes(scenario), *output.warnings]
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
        model=_model_report(session),
        sysinfo=sysinfo,
        memory=memory,
        warnings=warnings,
        **output.fields,
    )
