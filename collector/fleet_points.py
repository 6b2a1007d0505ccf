"""Fleet-health points: ``agent_status`` (is each agent alive / busy?) and ``deadletter`` (what was refused).

Why in InfluxDB and not only on MQTT: dashboards read InfluxDB; a retained status topic says what an agent
is doing *now*, the points say when it went offline and for how long, and the dead-letter counts by reason
make a misconfigured device (wrong host in its config, old agent version) visible without an MQTT client.

Timestamps (contract C in the coordinator's notes, see ``docs/influxdb-schema.md``):

- ``agent_status``: the status payload's own ``ts_ns`` when present, so a redelivered or re-sent retained
  status overwrites the same point; otherwise the receive time.
- ``deadletter``: the receive time. :func:`receive_ns` never returns the same value twice in a process,
  so two rejects of one fleet and reason in the same nanosecond tick stay two points.

The line formatting reuses ``points.py``'s encoder (byte-identical to influxdb-client's ``Point``).
"""

from __future__ import annotations

import threading
import time

from edgebench.agent.publish.status import StatusPayload
from edgebench.collector.points import format_fields, format_line, format_tags

AGENT_STATUS = "agent_status"
CAMPAIGN_JOB = "campaign_job"
DEADLETTER = "deadletter"
TOPIC_FIELD_LIMIT = 256
"""The ``topic`` field of a dead letter is cut here: a hostile topic may be 64 KiB."""

_clock_lock = threading.Lock()
_last_ns = 0


def receive_ns() -> int:
    """Wall-clock ns, strictly increasing within this process (distinct point timestamps)."""
    global _last_ns
    with _clock_lock:
        now = time.time_ns()
        _last_ns = now if now > _last_ns else _last_ns + 1
        return _last_ns


def job_state_line(state, received_ns: int) -> str:  # type: ignore[no-untyped-def]
    """One ``campaign_job`` point per job state message: tags fleet, host, device_class, campaign; fields
    job_id, state, progress, run_id, results, reason. Stamped with the state's own time, so a retained
    state received again overwrites its point."""
    tags = format_tags(
        {
            "fleet": state.fleet,
            "host": state.host,
            "device_class": state.device_class,
            "campaign": state.campaign,
        }
    )
    fields = format_fields(
        {
            "job_id": state.job_id,
            "state": state.state,
            "progress": float(state.progress) if state.progress is not None else None,
            "run_id": state.run_id,
            "results": state.results,
            "reason": state.reason,
            "detail": state.detail,
        }
    )
    return format_line(CAMPAIGN_JOB, tags, fields, state.ts_ns or received_ns)


def agent_status_line(status: StatusPayload, received_ns: int) -> str:
    """One ``agent_status`` point: tags fleet, host; fields state, online, run_id, reason, and the device's
    results not yet confirmed stored (``unconfirmed``) and refused for good (``refused``)."""
    tags = format_tags({"fleet": status.fleet, "host": status.host})
    fields = format_fields(
        {
            "state": status.state,
            "online": 1 if status.online else 0,
            "run_id": status.run_id,
            "reason": status.reason,
            "unconfirmed": status.unconfirmed,
            "refused": status.refused,
        }
    )
    ts = status.ts_ns if status.ts_ns is not None else received_ns
    return format_line(AGENT_STATUS, tags, fields, ts)


def _printable(text: str) -> str:
    """Control characters out of a string field (a topic may contain newlines; line protocol may not)."""
    return "".join(c if c.isprintable() else "?" for c in text[:TOPIC_FIELD_LIMIT])


def deadletter_line(fleet: str, reason: str, topic: str, payload_bytes: int, received_ns: int) -> str:
    """One ``deadletter`` point: tags fleet, reason; fields count (always 1), topic, bytes."""
    tags = format_tags({"fleet": _printable(fleet) or "_unknown", "reason": reason})
    fields = format_fields({"count": 1, "topic": _printable(topic), "bytes": int(payload_bytes)})
    return format_line(DEADLETTER, tags, fields, received_ns)
