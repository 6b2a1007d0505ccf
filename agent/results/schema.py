"""The result document: the one contract between agent, local store, MQTT and collector.

Everything that leaves the agent is a :class:`ResultDocument`. The collector validates incoming payloads
with this same module, so no field is declared twice anywhere. Change a field → bump
:data:`SCHEMA_VERSION` (major for breaking changes; the collector rejects unknown majors).

Units are in the field names (``_s``, ``_bytes``, ``_j``, ``_w``); times are seconds, timestamps UTC
nanoseconds since the epoch.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

SCHEMA_VERSION = "1.9"
SUPPORTED_MAJOR = 1
SUPPORTED_MINOR = int(SCHEMA_VERSION.split(".")[1])
"""Documents of a *newer* minor version (same major) are read with their unknown fields ignored and
counted (``collector/validate.py``): a minor bump only adds optional fields, so an older collector keeps
storing everything it knows. A newer major is refused."""

LANGUAGE_CODE = r"^[a-z]{2,3}$"
"""A spoken language as Whisper names it (ISO 639-1, or 639-3 for the few without: ``haw``, ``yue``): it
becomes part of field names in InfluxDB (``wer_de``), so nothing else is accepted."""

DeviceClass = Literal["rpi", "jetson", "x86", "other"]
Scenario = Literal["forward", "generate", "transcribe", "load", "stream"]


class _Doc(BaseModel):
    """Strict base: unknown fields are errors, so typos in producers or consumers surface at once."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Summary(_Doc):
    """Statistics of a series of measurements (seconds unless stated). Percentiles are nearest-rank."""

    n: int
    mean: float
    std: float
    """Sample standard deviation (n-1); 0 for n == 1."""
    cv: float
    """Coefficient of variation std/mean (a fraction, not %)."""
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    ci95_low: float
    """95 % confidence interval of the mean (Student t)."""
    ci95_high: float


class SysInfo(_Doc):
    """Where the measurement ran."""

    hostname: str
    device_model: str | None = None
    """``/proc/device-tree/model`` on ARM boards (e.g. 'Raspberry Pi 5 Model B Rev 1.0')."""
    device_class: DeviceClass
    cpu_model: str | None = None
    arch: str
    cpu_cores_logical: int
    cpu_cores_physical: int | None = None
    ram_bytes: int
    os: str
    kernel: str
    python: str
    cpu_governor: str | None = None
    accelerator: str | None = None
    """GPU name when one is used (e.g. 'NVIDIA Orin (nvgpu)', 'Apple M2')."""
    libraries: dict[str, str] = Field(default_factory=dict)
    """Versions of the libraries that matter for the result (torch, transformers, numpy, …)."""
    emulated: str | None = None
    """Set when the CPU was emulated (e.g. 'qemu-user aarch64 on x86_64'): timings then say nothing about
    the device named above. Detected, or set with EDGEBENCH_EMULATED (see trackers/sysinfo.py)."""


class RunConfig(_Doc):
    """One point of the sweep grid: what was measured."""

    model: str
    runtime: str
    precision: Literal["fp32", "fp16", "int8"]
    device: str
    """Resolved device: 'cpu', 'cuda', 'cuda:1', 'mps'."""
    scenario: Scenario
    batch_size: int = 1
    audio_seconds: float | None = None
    """Input length for forward/generate (transcribe uses the dataset's own lengths: None)."""
    new_tokens: int | None = None
    ctc_weight: float | None = None
    threads: int
    frontend: str
    """'torch' or 'librosa' — the backend actually used for log-mel."""
    dataset: str | None = None
    dataset_limit: int | None = None
    """--limit: a seeded random sample of this many utterances (``dataset_seed`` drew it)."""
    dataset_seed: int | None = None
    """Seed of the --limit sample and of the --noise-snr noise (None when neither is used)."""
    noise_snr_db: float | None = None
    """Robustness runs: noise added at this SNR (dB)."""
    noise: str | None = None
    """'white' or the noise file's path, when noise_snr_db is set."""
    speed: float | None = None
    """Robustness runs: speed perturbation factor (1.1 = 10 % faster)."""
    prompt_tokens: int | None = None
    """hf: causal LMs: prompt length in tokens (their forward/generate input instead of audio)."""
    torch_mode: str | None = None
    """torch runtime: 'eager', 'compile' (regional torch.compile) or 'script' (TorchScript trace)."""
    attn_impl: str | None = None
    """torch runtime, Hugging Face models: 'eager', 'sdpa', 'flash' (None: the model's default)."""
    amp: bool | None = None
    """torch runtime: fp16 autocast on CUDA."""
    ort_opt_level: str | None = None
    """onnxruntime: graph optimisation level (disabled, basic, extended, all)."""
    ggml_type: str | None = None
    """whispercpp: the ggml file's type, f16, q8_0 or q5_1 (schema 1.8)."""
    stream_policy: str | None = None
    """stream: chunk, local-agreement or vad (schema 1.9)."""
    chunk_seconds: float | None = None
    """stream: seconds of audio per chunk the source releases."""
    stream_speed: float | None = None
    """stream: pace of the source (1.0 = real time)."""

    @model_validator(mode="after")
    def _stream_axes(self) -> RunConfig:
        if self.scenario == "stream" and (self.stream_policy is None or self.chunk_seconds is None):
            raise ValueError("a stream result names its stream_policy and chunk_seconds")
        return self

    label: str | None = None
    """A name for the setup, given by ``run --label`` or a recipe step ('auto_opt+qnt', 'baseline'): what
    reports call the configuration, and the axis ``compare --baseline label=NAME`` compares against."""
    recipe: str | None = None
    """The recipe whose step produced the result (``recipe run NAME``), so a fleet's results of one recipe
    can be found again and reported together."""
    language: str | None = Field(default=None, pattern=r"^(auto|[a-z]{2,3})$")
    """Multilingual Whisper: the language asked for (a code, or 'auto': detected per utterance, see
    ``UtteranceResult.language``). None for models without a language token: English-only Whisper (its
    utterances record 'en') and other families (1.8)."""
    task: Literal["transcribe", "translate"] | None = None
    """Whisper: transcribe, or translate into English (1.8)."""
    campaign: str | None = None
    """The fleet campaign (``edgebench-collector campaign start NAME``) whose job produced the result:
    ``campaign report NAME`` reads a campaign's results back by it (schema 1.5)."""


class ModelReport(_Doc):
    name: str
    family: str
    trained: bool
    """False: seeded random weights; WER/CER are not meaningful."""
    weights_source: str
    params: dict[str, int]
    """Per component: total, encoder, ctc_head, attention_decoder / decoder."""
    size_on_disk_bytes: int | None = None
    weights_identity: str | None = None
    """Exported models: the content hash of the weights the export was made from (from its manifest)."""
    weights_verified: bool | None = None
    """Exported models: True when this machine hashed the weights itself; False when it ran an export
    copied from another machine (a device without torch) and took the identity from the manifest."""


class MeasurementPolicy(_Doc):
    """How long we measured and why we stopped — needed to judge a result."""

    warmup: int
    min_iterations: int
    min_duration_s: float
    max_cv: float | None = None
    max_iterations: int
    max_duration_s: float
    stopped_because: str
    allocator: str | None = None
    """malloc configuration in effect (``agent/allocator.py``): 'glibc pinned (…)' or 'system'
    (schema 1.5)."""


class ForwardResult(_Doc):
    latency_s: Summary
    iterations_per_s: float
    """Forward passes per second (batch items count once per pass)."""
    samples_per_s: float
    """iterations_per_s x batch size."""
    latency_samples_s: list[float] = Field(default_factory=list)
    """Every measured iteration, in order (for histograms and re-analysis)."""


class GenerateResult(_Doc):
    new_tokens: int
    """Exact number of tokens generated per sequence (verified by counting)."""
    latency_s: Summary
    """Whole generate call: prefill + decode."""
    prefill_s: Summary
    """Encoder + prompt + first token (time to first token)."""
    decode_s: Summary
    """The remaining new_tokens-1 tokens."""
    tokens_per_s: float
    """batch_size x new_tokens / mean generate latency."""
    decode_tokens_per_s: float | None = None
    """batch_size x (new_tokens-1) / mean decode time (None when new_tokens == 1)."""
    latency_samples_s: list[float] = Field(default_factory=list)


class UtteranceResult(_Doc):
    id: str
    audio_s: float
    latency_s: float
    reference: str
    hypothesis: str
    reference_language: str | None = Field(default=None, pattern=LANGUAGE_CODE)
    """The language the dataset says was spoken (a ``language`` column; 1.8)."""
    language: str | None = Field(default=None, pattern=LANGUAGE_CODE)
    """The language the model decoded in: the one asked for, or the one it detected (1.8)."""
    language_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    """Detected languages only: the model's probability of ``language`` among its languages (1.8)."""


class LanguageScore(_Doc):
    """Accuracy on the utterances of one spoken language (a dataset with a ``language`` column)."""

    language: str = Field(pattern=LANGUAGE_CODE)
    utterances: int
    audio_s: float
    wer: float | None
    cer: float | None
    detected: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of these utterances whose language the model detected correctly (None: not detected)."""


class TranscribeResult(_Doc):
    utterances: int
    audio_s_total: float
    latency_s: Summary
    """Per-utterance end-to-end latency (front end + encoder + decoding)."""
    rtf: float
    """Real-time factor: total processing time / total audio duration (lower is faster)."""
    wer: float | None
    cer: float | None
    accuracy_meaningful: bool
    """False for untrained (random) weights and for translations (``--task translate``: the references
    are in the spoken language): WER/CER are then reported as None."""
    normalizer: str
    per_utterance: list[UtteranceResult] = Field(default_factory=list)
    languages: list[LanguageScore] = Field(default_factory=list, max_length=128)
    """Per spoken language, where the dataset names them (1.8): WER/CER of each language's utterances
    and how often its language was detected. At most 128 (Whisper knows 100): each becomes InfluxDB
    fields, so a hostile document cannot add fields without bound."""


class StreamMinute(_Doc):
    """One minute of a stream's audio (``--stream-minutes``): what the dashboards plot over time."""

    minute: int
    audio_s: float
    chunks: int
    compute_ratio_p50: float
    compute_ratio_p90: float
    backlog_max_s: float
    finalisation_p50_s: float | None = None
    """Of the utterances ending in this minute (None: none ends in it)."""
    rtf: float
    temp_max_c: float | None = None
    average_w: float | None = None
    """Mean power over this minute's wall time (None: no power source)."""


class StreamResult(_Doc):
    """``--scenario stream`` (1.9): the dataset as one continuous stream at real-time pace, chunk by
    chunk, through a streaming policy (``agent/streaming/``, docs/streaming.md). Latencies are wall
    seconds; times *in* the stream (``fell_behind_at_s``, the timeline) are seconds of audio."""

    policy: Literal["chunk", "local-agreement", "vad"]
    chunk_s: float
    speed: float
    """Pace of the source: 1.0 real time, 2.0 twice as fast (a stress test)."""
    audio_s: float
    utterances: int
    chunks: int
    compute_s: Summary
    """Model time per chunk (policy included: re-transcription, detection)."""
    compute_ratio: Summary
    """Compute time / the chunk's wall duration: above 1 the device falls behind while it lasts."""
    kept_up: bool
    """False when 4 chunks in a row each waited more than one chunk for the model (none half a chunk
    less than the one before), or the stream's end waited more than 4 chunks
    (``agent/streaming/metrics.py`` ``behind``): a single long transcription that drains is not falling
    behind."""
    fell_behind_at_s: float | None = None
    """Where in the stream the first chunk of that run ended (None: kept up)."""
    backlog_max_s: float
    """Most audio waiting (wall seconds) when the model took the next chunk."""
    backlog_end_s: float
    """How long after the stream's end its last text was final."""
    finalisation_latency_s: Summary | None = None
    """From the end of each utterance in the audio to when its text was final."""
    first_partial_latency_s: Summary | None = None
    """From the start of each utterance to its first tentative text (policies that show partials)."""
    rtf: float
    """Sustained real-time factor: total compute / stream duration."""
    transcribed_ratio: float
    """Audio the model transcribed / stream duration (local-agreement re-transcribes its buffer)."""
    forced_commits: int = 0
    """local-agreement: buffers committed whole at their length limit, without two hypotheses agreeing."""
    pacing_error_s: Summary
    """How late the source released each chunk after its deadline: the bound of every latency here."""
    wer: float | None = None
    cer: float | None = None
    offline_wer: float | None = None
    """The same utterances transcribed whole, one by one (the transcribe scenario's way)."""
    offline_cer: float | None = None
    accuracy_meaningful: bool
    normalizer: str
    transcript: str = Field(default="", max_length=200_000)
    per_minute: list[StreamMinute] = Field(default_factory=list, max_length=1500)
    """``--stream-minutes`` is at most 1440; the stream ends with the utterance that reaches it."""
    start_ns: int
    """Wall-clock ns when the stream's first sample was "spoken": audio time t is at
    ``start_ns + t / speed`` (the collector stamps the timeline with it)."""
    timeline: list[tuple[float, float, float]] = Field(default_factory=list)
    """Per chunk: (end of the chunk in the stream [s], compute [s], backlog when it was taken [s]); at
    most 2000, evenly spaced (every figure above is computed from all chunks)."""


class LoadResult(_Doc):
    load_s: float
    """Wall time to load the model into memory on the device (weights conversion excluded when cached)."""
    first_inference_s: float
    """Cold first forward pass right after loading."""
    warm_inference_s: float
    """A second forward pass, for comparison."""


class MemoryResult(_Doc):
    """Memory of the agent process: what the model (runtime included) needed, apart from what the
    harness had before it loaded. RSS counts shared libraries and mapped weight files in full; PSS
    shares them out between the processes mapping them, USS counts only this process's private pages
    (Linux; see docs/memory.md)."""

    peak_rss_bytes: int
    """Peak resident set size of the agent process during the measured window (sampled every ~10 ms,
    plus the kernel's exact high-water mark)."""
    baseline_rss_bytes: int
    """RSS just before the measured window (the model loaded)."""
    cuda_peak_allocated_bytes: int | None = None
    sampling_interval_s: float
    before_load_rss_bytes: int | None = None
    """RSS before the model loaded: the harness, its imports and the dataset (schema 1.6)."""
    after_load_rss_bytes: int | None = None
    """RSS right after the model loaded (schema 1.6)."""
    load_peak_rss_bytes: int | None = None
    """Peak RSS while loading (a conversion or a file read whole may peak above what runs after)."""
    model_share_bytes: int | None = None
    """``max(peak during loading, peak_rss_bytes) - before_load_rss_bytes``: what running this model
    cost on top of the harness — the figure to compare runtimes and precisions by (schema 1.6)."""
    peak_pss_bytes: int | None = None
    """Peak proportional set size during the window (sampled every ~100 ms; Linux)."""
    peak_uss_bytes: int | None = None
    """Peak unique set size (private pages) during the window (sampled every ~100 ms; Linux)."""
    budget_bytes: int | None = None
    """``--max-rss``: the budget this configuration ran under."""
    budget_exceeded_at_bytes: int | None = None
    """The RSS at which the budget was found exceeded (the configuration was stopped there)."""


class EnergyResult(_Doc):
    """Energy over the measured window (``docs/energy.md``). None = unavailable, with the reason in
    ``unavailable_reason`` — never 0, which would read as a (wrong) measurement."""

    source: str | None = None
    """'rapl', 'nvml', 'jtop', 'hwmon:ina3221', 'rpi-pmic', 'powertop', 'command', 'replay'."""
    kind: Literal["measured", "estimated"] | None = None
    """'estimated' when the figure is a model or a partial sum (e.g. Pi 5 PMIC rails), not a meter."""
    rails: list[str] = Field(default_factory=list)
    """Rails summed into the total (e.g. ['package-0', 'dram'])."""
    sample_period_s: float | None = None
    """Achieved mean sampling period inside the window."""
    samples: int | None = None
    window_s: float | None = None
    """Measured window length, after repeating short workloads."""
    repeats: int | None = None
    """Extra workload executions appended after the timed loop to make the window long enough for the
    source's update period (0 when the timed loop alone was long enough)."""
    idle_w: float | None = None
    """Idle baseline power measured before the run."""
    joules_total: float | None = None
    """Gross energy over the window."""
    joules_net: float | None = None
    """joules_total - idle_w x window_s."""
    joules_per_iteration: float | None = None
    joules_net_per_iteration: float | None = None
    joules_per_token: float | None = None
    joules_net_per_token: float | None = None
    joules_per_audio_s: float | None = None
    """Per second of input audio processed."""
    joules_net_per_audio_s: float | None = None
    average_w: float | None = None
    peak_w: float | None = None
    trace_start_ns: int | None = None
    """Wall-clock ns of trace t=0 (the window start)."""
    trace: list[tuple[float, float]] = Field(default_factory=list)
    """(t_s since trace_start, watts), downsampled to <= 500 points."""
    unavailable_reason: str | None = None


class TelemetryResult(_Doc):
    """Device state during the measurement: a throttled device measures a different machine."""

    temperatures_c: dict[str, float] = Field(default_factory=dict)
    """Maximum per sensor during the measurement."""
    temp_max_c: float | None = None
    cpu_freq_mhz: float | None = None
    """Mean CPU frequency during the measurement (mean over cores, then over samples)."""
    cpu_governor: str | None = None
    throttled: bool | None = None
    """True when the device throttled during the measurement; None when this device cannot tell."""
    throttle_flags: list[str] = Field(default_factory=list)
    nvpmodel: str | None = None
    jetson_clocks: bool | None = None
    trace_start_ns: int | None = None
    trace: list[tuple[float, float | None, float | None]] = Field(default_factory=list)
    """(t_s, temp_max_c, cpu_freq_mhz), <= 500 points."""


class Decimation(_Doc):
    """A list shortened so that the document fits in one MQTT message (``agent/publish/trim.py``).

    Items ``0, stride, 2*stride, ...`` of the original ``total`` are kept, so a kept item's original index
    is ``i * stride``; the summaries (``latency_s`` etc.) were computed from the full list before. The
    local results store always holds the full document."""

    path: str
    """Dotted path of the list, e.g. ``forward.latency_samples_s`` or ``energy.trace``."""
    total: int = Field(ge=0)
    kept: int = Field(ge=0)
    stride: int = Field(ge=1)


class Interference(_Doc):
    """Other processes' CPU use during the measured window (agent/trackers/interference.py): the
    kernel's CPU accounting at both ends, minus this agent and its children. Schema 1.7."""

    window_s: float
    other_cpu_s: float
    """CPU seconds other processes (and a hypervisor's steal) used during the window, all CPUs summed,
    beyond the kernel accounting's resolution (a few 10 ms ticks)."""
    other_cores: float
    """``other_cpu_s / window_s``: how many cores were kept busy by others, on average."""
    steal_s: float
    """Of which stolen by the hypervisor (VMs; 0 on bare metal)."""
    cpus: int
    busy: bool
    """``other_cores`` >= 0.25 over a window of at least 0.5 s: the figures may be slower and noisier
    than on an idle device."""


class ResultDocument(_Doc):
    """One configuration measured on one host."""

    schema_version: str = SCHEMA_VERSION
    run_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    seq: int = 0
    """Index of this document within its run (0-based)."""
    created_ns: int = Field(default_factory=time.time_ns)
    host: str
    fleet: str = "default"
    device_class: DeviceClass
    edgebench_version: str
    config: RunConfig
    model: ModelReport
    sysinfo: SysInfo
    policy: MeasurementPolicy | None = None
    forward: ForwardResult | None = None
    generate: GenerateResult | None = None
    transcribe: TranscribeResult | None = None
    stream: StreamResult | None = None
    load: LoadResult | None = None
    memory: MemoryResult | None = None
    energy: EnergyResult | None = None
    telemetry: TelemetryResult | None = None
    interference: Interference | None = None
    warnings: list[str] = Field(default_factory=list)
    decimated: list[Decimation] = Field(default_factory=list)
    """Lists shortened for transport (empty in the local store: only a published copy is ever trimmed)."""

    @model_serializer(mode="wrap")
    def _omit_empty_decimation(self, handler):  # type: ignore[no-untyped-def]
        """``decimated`` is written only when something was thinned: a collector older than schema 1.4
        (strict, ``extra="forbid"``) keeps reading every whole document during a rolling upgrade, and a
        document stored by an older agent serialises to the same bytes (the spool's identity)."""
        data = handler(self)
        if not self.decimated and isinstance(data, dict):
            data.pop("decimated", None)
        return data

    def stride_of(self, path: str) -> int:
        """The decimation stride of one list (1 when it was sent whole)."""
        return next((d.stride for d in self.decimated if d.path == path), 1)
