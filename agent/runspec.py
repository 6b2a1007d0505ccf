"""The run specification: one typed, versioned, serialisable description of a benchmark.

``edgebench-agent run``, ``recipe run`` and the agent daemon's jobs all describe what to measure as a
:class:`RunSpec` and hand it to :func:`edgebench.agent.benchmark.run_benchmark`. Every check of the
options lives here (and in each runtime's own options class, ``agent/runtimes/``), so a bad value fails the
same way, with the same one line, whether it was typed, written in a recipe or received as a job.

Two forms exist:

- the **spec** itself: nested sections (sweep, dataset, measurement, engine, runtime options, power,
  output), JSON for jobs and for the record;
- the **flat options** of ``run`` (``model``, ``batch_size``, ``torch_mode`` …; comma lists for the sweep
  axes): the vocabulary of the command line, recipe files and ``--set``. :func:`from_options` and
  :func:`to_options` convert; :data:`OPTIONS` is the single table of that vocabulary, with its defaults
  taken from the spec's own.

Nothing here imports a runtime or a model library: a controller that never measures checks specs too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.results.schema import LANGUAGE_CODE
from edgebench.agent.runtimes import RuntimeOptions
from edgebench.agent.sweep import SweepSpec, distinct

RUNSPEC_VERSION = 1
"""Bumped when a field changes meaning or goes away; a daemon refuses specs of another version."""


class _Part(BaseModel):
    """Unknown keys are errors (a job with ``batchsize`` must not silently run batch 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DatasetSpec(_Part):
    name: str = "builtin"
    """'builtin', a folder of audio + transcripts, or a LibriSpeech folder (docs/datasets.md)."""
    limit: int | None = None
    """A seeded random sample of this many utterances (``engine.seed`` draws it)."""
    noise_snr_db: float | None = None
    noise: str = "white"
    """'white' or a noise recording's path (looped), mixed at ``noise_snr_db``."""
    speed: float | None = None

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if self.limit is not None and self.limit < 1:
            raise EdgebenchError(f"--limit must be >= 1 (got {self.limit})")
        self.perturbation(0)  # range checks of --noise-snr / --speed / --noise
        return self

    def perturbation(self, seed: int):  # type: ignore[no-untyped-def]
        from edgebench.agent.datasets.perturb import Perturbation

        return Perturbation(noise_snr_db=self.noise_snr_db, noise=self.noise, speed=self.speed, seed=seed)


class MeasurementSpec(_Part):
    """When to stop measuring one configuration (see :class:`edgebench.agent.stats.StoppingRule`)."""

    warmup: int = 2
    min_iterations: int = 10
    min_duration_s: float = 1.0
    max_cv_percent: float | None = None
    """Keep measuring until the coefficient of variation (%) is below this."""
    max_iterations: int = 10_000
    max_duration_s: float = 120.0
    max_rss_mb: float | None = None
    """``--max-rss``: a configuration whose process RSS goes above this many MB (2^20 bytes) is stopped
    with the budget as its reason and the sweep goes on (``agent/trackers/memory.py``)."""
    allocator: Literal["pinned", "system"] = "pinned"
    """glibc's malloc thresholds pinned (stable from one process to the next) or left dynamic
    (``agent/allocator.py``)."""

    @model_validator(mode="after")
    def _check(self) -> MeasurementSpec:
        for flag, value, low in (
            ("--min-iterations", self.min_iterations, 1),
            ("--max-iterations", self.max_iterations, 1),
            ("--warmup", self.warmup, 0),
        ):
            if value < low:
                raise EdgebenchError(f"{flag} must be >= {low} (got {value})")
        if self.min_duration_s < 0 or self.max_duration_s <= 0:
            raise EdgebenchError("--min-duration must be >= 0 and --max-duration > 0")
        if self.max_rss_mb is not None and self.max_rss_mb <= 0:
            raise EdgebenchError(f"--max-rss is in MB and must be > 0 (got {self.max_rss_mb:g})")
        if self.max_cv_percent is not None and not 0 < self.max_cv_percent < 100:
            raise EdgebenchError(f"--max-cv is a percentage between 0 and 100 (got {self.max_cv_percent:g})")
        return self

    def rule(self, allocator_in_effect: str | None = None):  # type: ignore[no-untyped-def]
        """The stopping rule (and the allocator configuration it records)."""
        from edgebench.agent.stats import StoppingRule

        cv = self.max_cv_percent
        return StoppingRule(
            allocator=allocator_in_effect,
            warmup=self.warmup,
            min_iterations=self.min_iterations,
            min_duration_s=self.min_duration_s,
            max_cv=None if cv is None else cv / 100.0,
            max_iterations=self.max_iterations,
            max_duration_s=self.max_duration_s,
        )

    @property
    def max_rss_bytes(self) -> int | None:
        return None if self.max_rss_mb is None else int(self.max_rss_mb * 2**20)

    def worst_case_s(self, points: int) -> float:
        """An upper bound of the measured time of ``points`` configurations (the caps win over every
        other criterion), without loading: what a daemon compares with its job budget."""
        return points * self.max_duration_s


class EngineSpec(_Part):
    """Options every runtime shares."""

    threads: int | None = None
    """Intra-op threads (None: the runtime's choice)."""
    frontend: str = "auto"
    weights: str | None = None
    beam_size: int = 4
    seed: int = 0
    """Random (untrained) weights, --limit sampling and --noise-snr."""
    language: str = "auto"
    """Whisper: the spoken language's code (``de``) or ``auto``, detected per utterance by multilingual
    models (English-only models take ``auto``/``en``)."""
    task: Literal["transcribe", "translate"] = "transcribe"
    """Whisper: transcribe in the spoken language or translate into English (multilingual models)."""

    @model_validator(mode="after")
    def _check(self) -> EngineSpec:
        if self.threads is not None and self.threads < 1:
            raise EdgebenchError(f"--threads must be >= 1 (got {self.threads})")
        if self.beam_size < 1:
            raise EdgebenchError(f"--beam-size must be >= 1 (got {self.beam_size})")
        backends = ("auto", "torch", "numpy", "librosa")  # models/frontend/logmel.py BACKENDS (light here)
        if self.frontend not in backends:
            raise EdgebenchError(f"--frontend must be {', '.join(backends)} (got '{self.frontend}')")
        if self.language != "auto" and not re.fullmatch(LANGUAGE_CODE, self.language):
            shown = self.language if self.language.isprintable() else ascii(self.language)
            raise EdgebenchError(
                f"--language {shown}: use auto or a language code such as en, de, fr, es (lower case)"
            )
        return self


class PowerSpec(_Part):
    source: str = "auto"
    """auto, none, a source name, command:CMD or replay:PATH (agent/power/detect.py)."""
    idle_seconds: float = 2.0
    """Idle baseline measured before the sweep (0: none, so no net energy)."""
    rate_hz: float | None = None

    @model_validator(mode="after")
    def _check(self) -> PowerSpec:
        if self.idle_seconds < 0:
            raise EdgebenchError(f"--idle-seconds must be >= 0 (got {self.idle_seconds:g})")
        if self.rate_hz is not None and not 0 < self.rate_hz <= 1000:
            raise EdgebenchError(f"--power-rate must be within (0, 1000] Hz (got {self.rate_hz:g})")
        return self


class StreamSpec(_Part):
    """The stream scenario's source (its policy and chunk length are sweep axes)."""

    speed: float = 1.0
    """Pace of the source: 1.0 real time; 2.0 releases audio twice as fast (a stress test)."""
    minutes: float | None = None
    """Loop the dataset into a stream of at least this many minutes (None: one pass)."""
    pause_s: float = 0.8
    """Silence after each utterance (a pause between sentences)."""
    align_chunks: bool = False
    """Each utterance starts a chunk (silence-padded to whole chunks): chunks then hold whole utterances,
    as a check of a policy against the offline transcription."""

    @model_validator(mode="after")
    def _check(self) -> StreamSpec:
        if not 0 < self.speed <= 100:
            raise EdgebenchError(f"--stream-speed must be within (0, 100] (got {self.speed:g})")
        if self.minutes is not None and not 0 < self.minutes <= 24 * 60:
            raise EdgebenchError(f"--stream-minutes must be within (0, 1440] (got {self.minutes:g})")
        if not 0 <= self.pause_s <= 30:
            raise EdgebenchError(f"--pause-seconds must be within [0, 30] (got {self.pause_s:g})")
        return self


class OutputSpec(_Part):
    store: bool = True
    """Save results in the local store."""
    publish: bool = True
    """Stream results to the configured MQTT broker (when one is configured)."""
    publish_timeout_s: float = 15.0


class RunSpec(_Part):
    """A whole benchmark. ``label``, ``recipe`` and ``campaign`` are recorded in every result."""

    version: Literal[1] = RUNSPEC_VERSION
    sweep: SweepSpec
    dataset: DatasetSpec = DatasetSpec()
    measurement: MeasurementSpec = MeasurementSpec()
    engine: EngineSpec = EngineSpec()
    runtime_options: RuntimeOptions = RuntimeOptions()
    power: PowerSpec = PowerSpec()
    stream: StreamSpec = StreamSpec()
    output: OutputSpec = OutputSpec()
    label: str | None = None
    recipe: str | None = None
    campaign: str | None = Field(default=None)
    """The fleet campaign this run belongs to (set by the daemon from the job)."""

    @model_validator(mode="after")
    def _check(self) -> RunSpec:
        self.runtime_options.check(self.sweep.runtimes, self.sweep.scenarios)
        from edgebench.agent.power.detect import check_syntax

        check_syntax(self.power.source)
        if self.label is not None and (
            not self.label.strip() or len(self.label) > 64 or not self.label.isprintable()
        ):
            shown = repr(self.label) if self.label.isprintable() else ascii(self.label)
            raise EdgebenchError(f"--label {shown}: use 1-64 printable characters (e.g. auto_opt+qnt)")
        return self

    # --- construction -----------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> RunSpec:
        """A spec from JSON text or a mapping; every mistake is one line naming the field."""
        try:
            if isinstance(data, (str, bytes)):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            raise EdgebenchError(f"run spec: {validation_line(exc)}") from None

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)

    # --- checks that need the registries (before anything heavy loads) ----------------------------------
    def resolved(self) -> RunSpec:
        """Model aliases resolved to their canonical names; unknown models, runtimes and combinations a
        runtime is known not to run fail here, with one line, before any model loads."""
        from edgebench.models.registry import resolve

        models = [resolve(m).name for m in self.sweep.models]
        spec = self.model_copy(update={"sweep": self.sweep.model_copy(update={"models": distinct(models)})})
        spec.check_runnable()
        return spec

    def check_runnable(self) -> None:
        """Checks against this machine: models, runtimes and power source exist here."""
        from edgebench.agent.power.detect import check_spec
        from edgebench.agent.runtimes import runtime_class
        from edgebench.models.registry import resolve

        check_spec(self.power.source)
        sweep = self.sweep
        for name in sweep.models:
            _check_family(resolve(name), sweep, self.engine)
        for runtime in sweep.runtimes:
            session_class = runtime_class(runtime)  # unknown runtime / missing extra
            for name in sweep.models:
                spec = resolve(name)
                for point in sweep.points(spec.family == "hybrid"):
                    # a stream is transcribed chunk by chunk: what transcribes, streams
                    scenario = "transcribe" if point.scenario == "stream" else point.scenario
                    reason = session_class.unsupported(spec, scenario, point.ctc_weight)
                    if reason:
                        raise EdgebenchError(reason)
        for runtime, precision, device in sorted({s[1:] for s in sweep.sessions()}):
            runtime_class(runtime).check_setup(precision, device)  # fp16 on cpu, cuda without CUDA
        if "stream" in sweep.scenarios and "vad" in sweep.stream_policies:
            from edgebench.agent.streaming.vad import check_available

            check_available()

    def stream_point_count(self) -> int:
        """How many of the configurations are live streams (each lasts its audio's duration)."""
        from edgebench.models.registry import resolve

        return sum(
            1
            for model, *_ in self.sweep.sessions()
            for p in self.sweep.points(resolve(model).family == "hybrid")
            if p.scenario == "stream"
        )

    def point_count(self) -> int:
        """How many configurations (result documents) the sweep measures."""
        from edgebench.models.registry import resolve

        total = 0
        for model, *_ in self.sweep.sessions():
            total += len(self.sweep.points(resolve(model).family == "hybrid"))
        return total


def _check_family(spec, sweep: SweepSpec, engine: EngineSpec) -> None:  # type: ignore[no-untyped-def]
    """Options a model family cannot take."""
    language, task = engine.language, engine.task
    if spec.family == "whisper":
        if spec.english_only:
            from edgebench.models.whisper.decoding import check_english_only

            check_english_only(language, task, spec.name)
        if sweep.ctc_weights:
            raise EdgebenchError(f"--ctc-weight applies only to hybrid CTC/attention models, not {spec.name}")
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
    elif language not in ("auto", "en") or task != "transcribe":
        # other families have no language prompt; 'en' is accepted so that a sweep mixing them with a
        # multilingual Whisper can fix English for all
        raise EdgebenchError(
            f"--language and --task choose Whisper's prompt; {spec.name} has none (leave them at "
            "auto or en, and transcribe)"
        )
    if spec.family == "causal-lm":  # hf:<causal LM>: token ids in, no audio, torch only
        if {"transcribe", "stream"} & set(sweep.scenarios):
            raise EdgebenchError(
                f"{spec.name} is a language model: use --scenario load,forward,generate (not transcribe "
                "or stream)"
            )
        if sweep.ctc_weights:
            raise EdgebenchError(f"--ctc-weight applies only to hybrid CTC/attention models, not {spec.name}")
        if set(sweep.runtimes) - {"torch"}:
            raise EdgebenchError(f"{spec.name} (an hf: language model) runs on --runtime torch only")


def validation_line(exc: ValidationError, shown: int = 3) -> str:
    """The errors of a pydantic ValidationError as ``where: what; where: what`` on one line (a typo
    in a key is two errors: the unknown key and the missing one; both help)."""
    flags = {o.path: "--" + name.replace("_", "-") for name, o in OPTIONS.items()}
    parts = []
    for err in exc.errors()[:shown]:
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        flag = next((f for path, f in flags.items() if where == path or where.endswith("." + path)), None)
        where = f"{where} ({flag})" if flag else where
        parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    more = exc.error_count() - shown
    return "; ".join(parts) + (f" ({more} more)" if more > 0 else "")


# --- the flat vocabulary of `run`, recipes and --set ----------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One ``run`` option: where it lives in the spec and how its value is written."""

    path: str
    """Dotted path in the spec (``sweep.batch_sizes``)."""
    kind: Literal["list[str]", "list[int]", "list[float]", "str", "int", "float", "bool"]
    optional: bool = False
    """None is a valid value (``--threads`` unset)."""

    @property
    def annotation(self) -> str:
        """The option's type as the command line writes it (comma lists are text)."""
        base = "str" if self.kind.startswith("list") else self.kind
        return f"{base} | None" if self.optional else base


OPTIONS: dict[str, Option] = {
    "model": Option("sweep.models", "list[str]"),
    "runtime": Option("sweep.runtimes", "list[str]"),
    "precision": Option("sweep.precisions", "list[str]"),
    "device": Option("sweep.devices", "list[str]"),
    "scenario": Option("sweep.scenarios", "list[str]"),
    "batch_size": Option("sweep.batch_sizes", "list[int]"),
    "audio_seconds": Option("sweep.audio_seconds", "list[float]", optional=True),
    "new_tokens": Option("sweep.new_tokens", "list[int]"),
    "ctc_weight": Option("sweep.ctc_weights", "list[float]", optional=True),
    "stream_policy": Option("sweep.stream_policies", "list[str]"),
    "chunk_seconds": Option("sweep.chunk_seconds", "list[float]"),
    "stream_speed": Option("stream.speed", "float"),
    "stream_minutes": Option("stream.minutes", "float", optional=True),
    "pause_seconds": Option("stream.pause_s", "float"),
    "align_chunks": Option("stream.align_chunks", "bool"),
    "dataset": Option("dataset.name", "str"),
    "limit": Option("dataset.limit", "int", optional=True),
    "noise_snr": Option("dataset.noise_snr_db", "float", optional=True),
    "noise": Option("dataset.noise", "str"),
    "speed": Option("dataset.speed", "float", optional=True),
    "threads": Option("engine.threads", "int", optional=True),
    "ort_opt_level": Option("runtime_options.onnxruntime.ort_opt_level", "str"),
    "ggml_quant": Option("runtime_options.whispercpp.ggml_quant", "str"),
    "torch_mode": Option("runtime_options.torch.torch_mode", "str"),
    "attn_impl": Option("runtime_options.torch.attn_impl", "str", optional=True),
    "amp": Option("runtime_options.torch.amp", "bool"),
    "label": Option("label", "str", optional=True),
    "warmup": Option("measurement.warmup", "int"),
    "min_iterations": Option("measurement.min_iterations", "int"),
    "min_duration": Option("measurement.min_duration_s", "float"),
    "max_cv": Option("measurement.max_cv_percent", "float", optional=True),
    "max_iterations": Option("measurement.max_iterations", "int"),
    "max_duration": Option("measurement.max_duration_s", "float"),
    "malloc": Option("measurement.allocator", "str"),
    "max_rss": Option("measurement.max_rss_mb", "float", optional=True),
    "frontend": Option("engine.frontend", "str"),
    "weights": Option("engine.weights", "str", optional=True),
    "beam_size": Option("engine.beam_size", "int"),
    "seed": Option("engine.seed", "int"),
    "language": Option("engine.language", "str"),
    "task": Option("engine.task", "str"),
    "store": Option("output.store", "bool"),
    "publish": Option("output.publish", "bool"),
    "publish_timeout": Option("output.publish_timeout_s", "float"),
    "power_source": Option("power.source", "str"),
    "idle_seconds": Option("power.idle_seconds", "float"),
    "power_rate": Option("power.rate_hz", "float", optional=True),
    "recipe": Option("recipe", "str", optional=True),
    "campaign": Option("campaign", "str", optional=True),
}
"""Every ``run`` option by its flat name (``--batch-size`` is ``batch_size``). ``run``'s typer signature
lists the same names with these defaults (a test holds them equal)."""


def _split(name: str, value: Any, convert: type) -> list[Any]:
    """``"1,8"`` or ``[1, 8]`` -> ``[1, 8]``, each item converted; errors name the flag."""
    flag = "--" + name.replace("_", "-")
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for raw in items:
        text = raw.strip() if isinstance(raw, str) else raw
        if text == "":
            raise EdgebenchError(f"{flag}: empty item in '{value}' (use a comma-separated list like 1,8)")
        try:
            out.append(convert(text))
        except (TypeError, ValueError):
            raise EdgebenchError(
                f"{flag}: '{text}' is not a valid {convert.__name__} (in '{value}')"
            ) from None
    return out


def from_options(options: Mapping[str, Any]) -> RunSpec:
    """A spec from flat ``run`` options (missing ones take their defaults); unknown names are errors."""
    nested: dict[str, Any] = {}
    for name, value in options.items():
        opt = OPTIONS.get(name)
        if opt is None:
            raise EdgebenchError(f"unknown run option '{name}'")
        if value is None:
            if opt.kind.startswith("list"):
                value = []
            elif not opt.optional:
                continue  # the default
        elif opt.kind.startswith("list"):
            value = _split(name, value, {"list[str]": str, "list[int]": int, "list[float]": float}[opt.kind])
        *parents, leaf = opt.path.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return RunSpec.parse(nested)


def to_options(spec: RunSpec) -> dict[str, Any]:
    """The flat options of ``spec`` (comma lists as text, like the command line)."""
    data = spec.model_dump()
    out: dict[str, Any] = {}
    for name, opt in OPTIONS.items():
        value: Any = data
        for part in opt.path.split("."):
            value = value[part]
        if opt.kind.startswith("list"):
            value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if value else None
        out[name] = value
    return out


def option_defaults() -> dict[str, Any]:
    """Every flat option's default (``model`` has none: it is required)."""
    defaults = to_options(RunSpec(sweep=SweepSpec(models=["-"])))
    del defaults["model"]
    return defaults
