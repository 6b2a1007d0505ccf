"""Campaign jobs on the wire: the messages a controller sends, the states a daemon reports, and what a
device admits.

Topics (``edgebench/v1/…``; host names never start with '_', so ``_campaign`` cannot collide):

- ``{fleet}/{host}/job`` and ``{fleet}/job`` (controller -> device, QoS 1): a :class:`JobMessage` (run this
  spec for that campaign) or a :class:`CancelMessage`. The broker's ACL lets only the controller's
  identity publish there;
- ``{fleet}/{host}/jobs/{campaign}/{job_id}`` (device -> everyone, retained): the job's :class:`JobState`,
  with every state it passed through;
- ``{fleet}/_campaign/{campaign}`` (controller, retained): the campaign's manifest (which hosts, which spec).

A job carries a :class:`~edgebench.agent.runspec.RunSpec` and nothing executable: :func:`admit` refuses
commands (``--power-source command:``), paths outside the device's configured dataset folders, weights
paths, Hugging Face folders or hub ids (``hf:``), unpublished runs and anything whose worst-case measured
duration exceeds the device's budget, each with the reason, which the state message carries back to the
controller. What the worst case cannot bound (warm-up iterations, model loading) is bounded by the
daemon's watchdog: a job still running after the budget plus a start-up grace is stopped and failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.publish.config import IDENTIFIER, TOPIC_PREFIX, DaemonSection
from edgebench.agent.runspec import RunSpec, validation_line

JobStateName = Literal["queued", "running", "done", "failed", "cancelled", "refused", "interrupted"]
FINAL: tuple[str, ...] = ("done", "failed", "cancelled", "refused", "interrupted")


def job_topic(fleet: str, host: str | None = None) -> str:
    """Where a controller sends jobs: one host, or every daemon of a fleet."""
    return f"{TOPIC_PREFIX}/{fleet}/{host}/job" if host else f"{TOPIC_PREFIX}/{fleet}/job"


def state_topic(fleet: str, host: str, campaign: str, job_id: str) -> str:
    return f"{TOPIC_PREFIX}/{fleet}/{host}/jobs/{campaign}/{job_id}"


def campaign_topic(fleet: str, campaign: str) -> str:
    return f"{TOPIC_PREFIX}/{fleet}/_campaign/{campaign}"


def name_problem(kind: str, value: str) -> str | None:
    """Campaign names and job ids become topic levels and InfluxDB tags: the fleet/host rule."""
    if IDENTIFIER.fullmatch(value):
        return None
    shown = ascii(value) if not value.isprintable() else repr(value)
    return f"{kind} {shown}: use 1-64 letters, digits, '.', '_' or '-' (first a letter or digit)"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobMessage(_Message):
    kind: Literal["job"] = "job"
    job_id: str
    campaign: str
    spec: RunSpec
    issued_ns: int = Field(default_factory=time.time_ns)


class CancelMessage(_Message):
    kind: Literal["cancel"]
    job_id: str | None = None
    """One job; None: every queued or running job of ``campaign``."""
    campaign: str


class Transition(BaseModel):
    state: JobStateName
    ts_ns: int


class JobState(BaseModel):
    """The retained state of one job (``extra="ignore"``: newer daemons may add keys)."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    campaign: str
    fleet: str
    host: str
    device_class: str | None = None
    state: JobStateName
    progress: float | None = None
    """0..1 while running (configurations measured, plus the share of the current one)."""
    detail: str | None = None
    """What runs now (the configuration's label)."""
    run_id: str | None = None
    results: int | None = None
    reason: str | None = None
    """Why failed / refused / interrupted / cancelled."""
    history: list[Transition] = []
    ts_ns: int


def parse_message(payload: bytes, limits: DaemonSection) -> JobMessage | CancelMessage:
    """A job or cancel message, schema-checked; anything else raises EdgebenchError with the reason."""
    if len(payload) > limits.max_job_bytes:
        raise EdgebenchError(f"job message of {len(payload)} bytes exceeds {limits.max_job_bytes} bytes")
    import json

    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EdgebenchError(f"job message is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EdgebenchError("job message is not a JSON object")
    kind = data.get("kind", "job")
    model = CancelMessage if kind == "cancel" else JobMessage
    try:
        msg = model.model_validate(data)
    except ValidationError as exc:
        raise EdgebenchError(f"job message: {validation_line(exc)}") from None
    for what, value in (("campaign", msg.campaign), ("job id", msg.job_id)):
        problem = value is not None and name_problem(what, value)
        if problem:
            raise EdgebenchError(problem)
    return msg


def _inside(path: str, folders: list[str]) -> bool:
    real = Path(path).expanduser().resolve()
    return any(real == Path(f).resolve() or Path(f).resolve() in real.parents for f in folders)


def admit(job: JobMessage, limits: DaemonSection) -> RunSpec:
    """The spec this device will run for ``job`` (campaign recorded, models resolved), or EdgebenchError
    with why it is refused. Checked before queueing, so a refusal is immediate."""
    spec = job.spec
    source = spec.power.source.strip()
    if source.startswith("command:"):
        raise EdgebenchError("a job cannot run commands (--power-source command:…); use a named source")
    if source.startswith("replay:"):
        raise EdgebenchError("a job cannot read files (--power-source replay:…); use a named source")
    hub = [m for m in spec.sweep.models if m.startswith("hf:")]
    if hub:
        raise EdgebenchError(
            f"a job cannot name a Hugging Face folder or hub id ({hub[0]}): use a model registered here"
        )
    if spec.engine.weights is not None:
        raise EdgebenchError("a job cannot name a weights path: devices run the weights installed on them")
    from edgebench.agent.datasets.loader import BUILTINS

    allowed = limits.dataset_dirs
    for what, path in (("dataset", spec.dataset.name), ("noise", spec.dataset.noise)):
        if path in (*BUILTINS, "white"):  # the packaged sets
            continue
        if not allowed:
            raise EdgebenchError(f"{what} '{path}': this device admits only the builtin datasets")
        if not _inside(path, allowed):
            raise EdgebenchError(
                f"{what} '{path}' is outside the folders this device allows ({', '.join(allowed)})"
            )
    if not spec.output.publish:
        raise EdgebenchError("a job's results must be published (publish = false would lose them)")
    spec = spec.model_copy(update={"campaign": job.campaign}).resolved()  # models/runtimes exist here
    worst = spec.measurement.worst_case_s(spec.point_count()) + spec.power.idle_seconds
    streams = spec.stream_point_count()
    if streams and spec.stream.minutes is None:
        raise EdgebenchError(
            "a job's stream must say how long it lasts (--stream-minutes): the device budgets a job "
            "before it reads any audio"
        )
    live = streams * spec.stream.minutes * 60 / spec.stream.speed if spec.stream.minutes else 0.0
    worst += live  # a stream lasts as long as its audio, whatever --max-duration says
    if worst > limits.max_job_seconds:
        also = f" + {streams} stream(s) of {live / max(streams, 1):.0f} s" if live else ""
        raise EdgebenchError(
            f"over budget: up to {worst:.0f} s ({spec.point_count()} configurations x "
            f"{spec.measurement.max_duration_s:g} s max-duration{also} + {spec.power.idle_seconds:g} s "
            f"idle) > this device's {limits.max_job_seconds:g} s"
        )
    return spec
