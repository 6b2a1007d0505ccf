"""The agent status message: one model shared by the publisher that writes it and the collector that reads it.

Retained on ``edgebench/v1/{fleet}/{host}/status`` (the Last Will carries the ``offline`` variant), so a
dashboard or a collector connecting later still learns whether each agent is online, busy or gone. Kept
here, next to the publisher, for the same reason the result document has one schema module: the collector
validates incoming status payloads with this very class, so the two sides cannot drift apart.

No paho import: the collector and ``--help`` import this module cheaply.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AgentState = Literal["online", "running", "offline"]
STATES: tuple[str, ...] = ("online", "running", "offline")


class StatusPayload(BaseModel):
    """JSON body of a status message. ``extra="ignore"``: a newer agent may add keys; old collectors
    must keep reading the state rather than dead-letter a whole fleet's heartbeats."""

    model_config = ConfigDict(extra="ignore")

    state: AgentState
    host: str = Field(min_length=1)
    fleet: str = Field(min_length=1)
    ts_ns: int | None = Field(default=None, ge=0, le=2**62)
    """Wall-clock UTC ns when the agent entered this state. Absent in the Last Will: its text is fixed
    at connect time, long before the broker sends it, so the collector stamps it on receipt."""
    edgebench_version: str | None = None
    run_id: str | None = None
    """Only while ``running``."""
    reason: str | None = None
    """Why offline: 'agent stopped' (clean exit) or 'connection lost' (the Last Will)."""
    unconfirmed: int | None = Field(default=None, ge=0)
    """Results in the device's spool not yet confirmed stored by the collector (queued or sent)."""
    refused: int | None = Field(default=None, ge=0)
    """Results refused for good (``edgebench-agent publish --list-refused`` on the device)."""
    device_class: str | None = None
    """rpi | jetson | x86 | other: what ``campaign start --device-class`` selects on."""
    jobs: bool | None = None
    """True when ``edgebench-agent serve`` runs here: the device takes campaign jobs (it keeps a
    persistent session, so jobs sent while it is offline wait for it at the broker)."""

    @property
    def online(self) -> bool:
        return self.state != "offline"


def status_payload(
    state: str,
    host: str,
    fleet: str,
    version: str,
    run_id: str | None = None,
    reason: str | None = None,
    *,
    stamped: bool = True,
    unconfirmed: int | None = None,
    refused: int | None = None,
    device_class: str | None = None,
    jobs: bool | None = None,
) -> bytes:
    """Serialise a status message (``run_id`` only while running; absent keys are left out).

    ``stamped=False`` for the Last Will (see :attr:`StatusPayload.ts_ns`)."""
    body = StatusPayload(
        state=state,  # type: ignore[arg-type]
        host=host,
        fleet=fleet,
        ts_ns=time.time_ns() if stamped else None,
        edgebench_version=version,
        run_id=run_id if state == "running" else None,
        reason=reason,
        unconfirmed=unconfirmed,
        refused=refused,
        device_class=device_class,
        jobs=jobs,
    )
    return body.model_dump_json(exclude_none=True).encode()
