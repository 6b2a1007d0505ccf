"""``campaign start`` / ``status`` / ``cancel``: jobs out to the daemons, their states back.

Devices are selected from the fleet's retained status messages: a device whose daemon ever ran
(``jobs: true``) can be given a job, online or not, because its persistent session keeps the job at the
broker until it reconnects. The campaign's manifest (retained on ``edgebench/v1/{fleet}/_campaign/NAME``)
lists the hosts and their job ids, so ``status`` knows which devices have not answered yet.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from edgebench.agent.daemon.jobs import (
    FINAL,
    CancelMessage,
    JobMessage,
    JobState,
    campaign_topic,
    job_topic,
    name_problem,
)
from edgebench.agent.errors import EdgebenchError
from edgebench.agent.publish.config import TOPIC_PREFIX
from edgebench.agent.publish.status import StatusPayload
from edgebench.agent.runspec import RunSpec
from edgebench.collector.campaign.link import ControllerLink
from edgebench.collector.config import CollectorConfig

NOT_JOB_OPTIONS = ("json_out", "config", "broker", "fleet")
"""``run`` options that describe the machine typing them, not the measurement: refused in a job."""


class Manifest(BaseModel):
    campaign: str
    fleet: str
    created_ns: int
    jobs: dict[str, str]
    """host -> job id."""
    specs: dict[str, str] = {}
    """job id -> the RunSpec JSON it was given."""


def spec_from_run_args(args: list[str]) -> RunSpec:
    """``run``'s own options, parsed by ``run``'s own parser (same names, defaults and checks)."""
    import click
    import typer.main

    from edgebench.agent.cli.main import app as agent_app
    from edgebench.agent.runspec import from_options

    command = typer.main.get_command(agent_app).commands["run"]  # type: ignore[attr-defined]
    try:
        ctx = command.make_context("run", list(args), resilient_parsing=False)
    except click.exceptions.Exit:
        raise EdgebenchError("give the run options after '--', e.g. -- --model whisper-tiny.en") from None
    except click.ClickException as exc:
        raise EdgebenchError(f"run options: {exc.format_message()}") from None
    params = dict(ctx.params)
    for name in NOT_JOB_OPTIONS:
        value = params.pop(name)
        if value not in (None, False):
            raise EdgebenchError(f"--{name.replace('_', '-')} is the device's own setting, not part of a job")
    return from_options(params)


@dataclass
class Device:
    fleet: str
    host: str
    status: StatusPayload


def devices(messages: dict[str, bytes]) -> list[Device]:
    """Devices with a daemon, from retained status messages."""
    out = []
    for topic, payload in messages.items():
        if not topic.endswith("/status") or not payload:
            continue
        try:
            status = StatusPayload.model_validate_json(payload)
        except ValidationError:
            continue
        if status.jobs:
            out.append(Device(status.fleet, status.host, status))
    return sorted(out, key=lambda d: (d.fleet, d.host))


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def select(found: list[Device], fleet: str | None, classes: str | None, hosts: str | None) -> list[Device]:
    chosen = [d for d in found if fleet is None or d.fleet == fleet]
    wanted_classes = _csv(classes)
    if wanted_classes:
        chosen = [d for d in chosen if d.status.device_class in wanted_classes]
    wanted_hosts = _csv(hosts)
    if wanted_hosts:
        missing = [h for h in wanted_hosts if h not in {d.host for d in chosen}]
        if missing:
            raise EdgebenchError(
                f"no daemon seen for host {missing[0]}"
                + (f" in fleet {fleet}" if fleet else "")
                + " (it must have run `edgebench-agent serve` once, so that its session exists)"
            )
        chosen = [d for d in chosen if d.host in wanted_hosts]
    return chosen


def start(
    cfg: CollectorConfig,
    name: str,
    spec: RunSpec,
    fleet: str | None,
    classes: str | None,
    hosts: str | None,
    add: bool,
    echo: Any = print,
) -> dict[str, str]:
    """Publish one job per selected device; returns host -> job id. ``add``: add devices to an existing
    campaign (hosts already in it are skipped)."""
    problem = name_problem("campaign", name)
    if problem:
        raise EdgebenchError(problem)
    spec = spec.model_copy(update={"campaign": name})
    with ControllerLink(cfg) as link:
        retained = link.snapshot([f"{TOPIC_PREFIX}/+/+/status", f"{TOPIC_PREFIX}/+/_campaign/{name}"])
        chosen = select(devices(retained), fleet, classes, hosts)
        if not chosen:
            raise EdgebenchError(
                "no device selected: none with a daemon (edgebench-agent serve) matches "
                f"fleet={fleet or 'any'} device-class={classes or 'any'} hosts={hosts or 'any'}"
            )
        manifests = _manifests(retained)
        if manifests and not add:
            raise EdgebenchError(f"campaign {name} exists already (use --add to add devices to it)")
        sent: dict[str, str] = {}
        for fleet_name in sorted({d.fleet for d in chosen}):
            manifest = manifests.get(fleet_name) or Manifest(
                campaign=name, fleet=fleet_name, created_ns=time.time_ns(), jobs={}
            )
            targets = [d for d in chosen if d.fleet == fleet_name and d.host not in manifest.jobs]
            jobs = {d.host: JobMessage(job_id=uuid.uuid4().hex, campaign=name, spec=spec) for d in targets}
            for host, job in jobs.items():
                manifest.jobs[host] = job.job_id
                manifest.specs[job.job_id] = spec.to_json()
            # The manifest first: a controller that dies between the two leaves jobs that status knows
            # about (shown as not answered), never jobs running that no status lists.
            _publish_manifest(link, manifest)
            for d in targets:
                job = jobs[d.host]
                refused = link.publish(job_topic(d.fleet, d.host), job.model_dump_json().encode())
                if refused:
                    for host in [h for h in jobs if h not in sent]:
                        manifest.specs.pop(manifest.jobs.pop(host), None)
                    _publish_manifest(link, manifest)
                    raise EdgebenchError(
                        f"the broker refused the job for {d.host}: {refused} (is [controller] username the "
                        "controller identity the ACL lets publish jobs?)"
                    )
                sent[d.host] = job.job_id
                state = "online" if d.status.online else "offline: the job waits at the broker"
                echo(f"job {job.job_id[:8]} -> {d.fleet}/{d.host} ({d.status.device_class or '?'}, {state})")
    if not sent:
        raise EdgebenchError(f"every selected device has a job in campaign {name} already")
    return sent


def _publish_manifest(link: ControllerLink, manifest: Manifest) -> None:
    topic = campaign_topic(manifest.fleet, manifest.campaign)
    refused = link.publish(topic, manifest.model_dump_json().encode(), retain=True)
    if refused:
        raise EdgebenchError(f"the broker refused the campaign manifest: {refused}")


def _manifests(messages: dict[str, bytes]) -> dict[str, Manifest]:
    out = {}
    for topic, payload in messages.items():
        if "/_campaign/" in topic and payload:
            try:
                m = Manifest.model_validate_json(payload)
            except ValidationError:
                continue
            out[m.fleet] = m
    return out


@dataclass
class Row:
    fleet: str
    host: str
    device_class: str
    state: str
    """A job state, or 'sent' (not acknowledged by the daemon yet) / 'offline' (its device is)."""
    progress: float | None = None
    detail: str = ""
    path: list[str] = field(default_factory=list)
    """Every state the job passed through."""
    run_id: str | None = None


@dataclass
class CampaignView:
    name: str
    rows: list[Row]

    @property
    def finished(self) -> bool:
        return bool(self.rows) and all(r.state in FINAL for r in self.rows)

    @property
    def exit_code(self) -> int:
        """0: every job done; 1: finished, some not done (failed, refused, cancelled, interrupted);
        3: still in progress."""
        if not self.finished:
            return 3
        return 0 if all(r.state == "done" for r in self.rows) else 1

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.state] = out.get(r.state, 0) + 1
        return out


def view(name: str, messages: dict[str, bytes]) -> CampaignView:
    manifests = _manifests({t: p for t, p in messages.items() if t.endswith(f"/_campaign/{name}")})
    states: dict[str, JobState] = {}
    statuses: dict[tuple[str, str], StatusPayload] = {}
    for topic, payload in messages.items():
        if not payload:
            continue
        if f"/jobs/{name}/" in topic:
            try:
                s = JobState.model_validate_json(payload)
            except ValidationError:
                continue
            states[s.job_id] = s
        elif topic.endswith("/status"):
            try:
                st = StatusPayload.model_validate_json(payload)
            except ValidationError:
                continue
            statuses[(st.fleet, st.host)] = st
    rows = []
    for fleet, manifest in sorted(manifests.items()):
        for host, job_id in sorted(manifest.jobs.items()):
            status = statuses.get((fleet, host))
            cls = status.device_class if status and status.device_class else "?"
            s = states.get(job_id)
            if s is None:
                offline = status is not None and not status.online
                rows.append(Row(fleet, host, cls, "offline" if offline else "sent"))
                continue
            detail = s.reason or s.detail or (f"run {s.run_id[:8]}, {s.results} results" if s.run_id else "")
            state = s.state
            if state in ("queued", "running") and status is not None and not status.online:
                detail = f"device offline while {state}" + (f"; {detail}" if detail else "")
            rows.append(
                Row(
                    fleet,
                    host,
                    s.device_class or cls,
                    state,
                    s.progress,
                    detail,
                    [t.state for t in s.history],
                    s.run_id,
                )
            )
    return CampaignView(name, rows)


def watch_topics(name: str) -> list[str]:
    return [
        f"{TOPIC_PREFIX}/+/_campaign/{name}",
        f"{TOPIC_PREFIX}/+/+/jobs/{name}/+",
        f"{TOPIC_PREFIX}/+/+/status",
    ]


def status(cfg: CollectorConfig, name: str, wait_s: float | None, on_change: Any) -> CampaignView:
    """The campaign now, or (``wait_s``) when it finished or the wait ran out; ``on_change(view)`` is
    called for every new view."""
    problem = name_problem("campaign", name)
    if problem:
        raise EdgebenchError(problem)
    with ControllerLink(cfg) as link:
        messages = link.snapshot(watch_topics(name))
        current = view(name, messages)
        if not current.rows:
            raise EdgebenchError(f"no campaign named {name} (no manifest on the broker)")
        on_change(current)
        deadline = time.monotonic() + (wait_s or 0)
        while wait_s and not current.finished and time.monotonic() < deadline:
            link.changed.wait(min(1.0, max(deadline - time.monotonic(), 0.01)))
            link.changed.clear()
            new = view(name, link.current())
            if [vars(r) for r in new.rows] != [vars(r) for r in current.rows]:
                current = new
                on_change(current)
        return current


def cancel(cfg: CollectorConfig, name: str, hosts: str | None, echo: Any = print) -> int:
    """Send a cancel for the campaign's jobs (all, or those of ``hosts``); returns how many."""
    wanted = _csv(hosts)
    with ControllerLink(cfg) as link:
        manifests = _manifests(link.snapshot([f"{TOPIC_PREFIX}/+/_campaign/{name}"]))
        if not manifests:
            raise EdgebenchError(f"no campaign named {name} (no manifest on the broker)")
        n = 0
        for fleet, manifest in manifests.items():
            for host, job_id in manifest.jobs.items():
                if wanted and host not in wanted:
                    continue
                body = CancelMessage(kind="cancel", job_id=job_id, campaign=name).model_dump_json()
                refused = link.publish(job_topic(fleet, host), body.encode())
                if refused:
                    raise EdgebenchError(f"the broker refused the cancel for {host}: {refused}")
                echo(f"cancel sent to {fleet}/{host} (job {job_id[:8]})")
                n += 1
        if n == 0:
            raise EdgebenchError(f"campaign {name} has no job on {hosts}")
        return n


def view_json(v: CampaignView) -> str:
    return json.dumps(
        {
            "campaign": v.name,
            "finished": v.finished,
            "counts": v.counts(),
            "devices": [vars(r) for r in v.rows],
        },
        indent=2,
    )
