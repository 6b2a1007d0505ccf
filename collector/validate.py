"""Turn (topic, payload bytes) into a :class:`ResultDocument` or a :class:`Rejection` — never an exception.

The collector sits on a broker that any fleet device can publish to; one malformed or hostile payload must
end up in the dead-letter topic with a reason, not crash the process or poison a batch. Size and topic are
checked first; then a valid document is accepted after a single ``model_validate_json`` (the hot path,
one parse), while anything that fails it is re-checked step by step (UTF-8, JSON, object, version,
model) so the rejection names the first failing check — the reasons are the same as if the steps had
always run.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from edgebench.agent.publish.status import StatusPayload
from edgebench.agent.results.schema import SUPPORTED_MAJOR, SUPPORTED_MINOR, ResultDocument

DEFAULT_MAX_PAYLOAD = 1024 * 1024
MAX_CREATED_NS = 2**62
"""Year 2116: InfluxDB stores int64 ns (up to 2262); the margin leaves room for created_ns + i of samples."""
# Segments of a result topic: no wildcards, no empty parts, no slashes.
_TOPIC = re.compile(r"^edgebench/v1/([^/+#]+)/([^/+#]+)/result$")
_STATUS_TOPIC = re.compile(r"^edgebench/v1/([^/+#]+)/([^/+#]+)/status$")
_JOB_STATE_TOPIC = re.compile(r"^edgebench/v1/([^/+#]+)/([^/+#]+)/jobs/([^/+#]+)/([^/+#]+)$")


def is_job_state_topic(topic: str) -> bool:
    """A campaign job's state (``agent/daemon/jobs.py``): checked before :func:`is_status_topic`, since
    a job id may itself be 'status'."""
    return _JOB_STATE_TOPIC.match(topic) is not None


@dataclass(frozen=True)
class Rejection:
    """Why a payload was refused; ``reason`` is a short stable code, ``detail`` one human line."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def parse_topic(topic: str) -> tuple[str, str] | None:
    """(fleet, host) of a result topic, or None when it is not one."""
    m = _TOPIC.match(topic)
    return (m.group(1), m.group(2)) if m else None


def is_status_topic(topic: str) -> bool:
    """Cheap dispatch: status messages and results share one connection (and one ack pipeline)."""
    return topic.endswith("/status")


def fleet_of(topic: str) -> str:
    """The fleet a dead-letter belongs to: the topic's fleet segment, or ``_unknown``."""
    parts = topic.split("/")
    if len(parts) >= 3 and parts[0] == "edgebench" and parts[1] == "v1" and parts[2] and "+" not in parts[2]:
        fleet = parts[2]
        if "#" not in fleet:
            return fleet
    return "_unknown"


def _summarise(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def minor_of(version: str) -> int | None:
    """The minor number of ``MAJOR.MINOR[...]`` (None when there is none)."""
    parts = version.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def strip_unknown(model: type[BaseModel], data: Any, path: str = "") -> list[str]:
    """Remove, in place, every key of ``data`` that ``model`` (recursively) does not declare; return their
    dotted paths (list indices left out, so one unknown field of 300 samples counts once).

    Why: a newer agent's minor version only *adds* optional fields; an older collector must store what it
    knows rather than dead-letter the whole document (the schema itself stays strict for everything else).
    """
    dropped: list[str] = []
    _strip(model, data, path, dropped)
    return sorted(set(dropped))


def _strip(annotation: Any, value: Any, path: str, dropped: list[str]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(value, dict):
            return
        fields = annotation.model_fields
        for key in list(value):
            where = f"{path}.{key}" if path else str(key)
            if key not in fields:
                del value[key]
                dropped.append(where)
            else:
                _strip(fields[key].annotation, value[key], where, dropped)
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel) and isinstance(value, dict):
                _strip(arg, value, path, dropped)
                return
        for arg in args:
            if typing.get_origin(arg) in (list, dict):
                _strip(arg, value, path, dropped)
    elif origin is list and args and isinstance(value, list):
        for item in value:
            _strip(args[0], item, path, dropped)
    elif origin is dict and len(args) == 2 and isinstance(value, dict):
        for item in value.values():
            _strip(args[1], item, path, dropped)


def validate(
    topic: str,
    payload: bytes,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
    unknown_fields: list[str] | None = None,
) -> ResultDocument | Rejection:
    """Check one MQTT message against the contract (design.md §2). Total: never raises.

    ``unknown_fields``: receives the fields a newer minor version added that this collector ignored."""
    try:
        return _validate(topic, payload, max_payload_bytes, unknown_fields)
    except Exception as exc:  # last line of defence: any surprise is a rejection, not a crash
        return Rejection("internal", f"{type(exc).__name__}: {exc}"[:300])


def _validate(
    topic: str, payload: bytes, max_payload_bytes: int, unknown_fields: list[str] | None
) -> ResultDocument | Rejection:
    if len(payload) > max_payload_bytes:
        return Rejection("too_large", f"payload is {len(payload)} bytes, limit {max_payload_bytes}")
    where = parse_topic(topic)
    if where is None:
        return Rejection("bad_topic", f"topic {topic!r} is not edgebench/v1/{{fleet}}/{{host}}/result")
    # Fast path: one parse (pydantic-core reads the bytes directly). It only decides *acceptance*, and
    # only when the version check below agrees; any failure or doubt takes the step-by-step path, which
    # names the reason. A document without schema_version would get the model's default, hence the
    # fields_set check.
    try:
        doc = ResultDocument.model_validate_json(payload)
    except Exception:  # ValidationError, RecursionError, ...: the stepwise path says which check failed
        pass
    else:
        version = doc.schema_version
        major = version.split(".", 1)[0]
        if "schema_version" in doc.model_fields_set and major.isdigit() and int(major) == SUPPORTED_MAJOR:
            return _check_document(doc, where)
    return _validate_stepwise(payload, where, unknown_fields)


def _validate_stepwise(
    payload: bytes, where: tuple[str, str], unknown_fields: list[str] | None = None
) -> ResultDocument | Rejection:
    """The checks one at a time, cheapest first, so a rejection says which one failed."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", str(exc)[:200])
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Rejection("bad_json", str(exc)[:200])
    if not isinstance(data, dict):
        return Rejection("bad_json", f"top level is {type(data).__name__}, expected an object")
    version = data.get("schema_version")
    if not isinstance(version, str):
        return Rejection("bad_schema_version", f"schema_version missing or not a string: {version!r}"[:200])
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) != SUPPORTED_MAJOR:
        return Rejection(
            "unsupported_schema_version",
            f"schema_version {version!r}"[:100] + f": this collector reads major {SUPPORTED_MAJOR}",
        )
    minor = minor_of(version)
    if minor is not None and minor > SUPPORTED_MINOR:  # a newer agent: read what we know
        dropped = strip_unknown(ResultDocument, data)
        if unknown_fields is not None:
            unknown_fields.extend(dropped)
    try:
        doc = ResultDocument.model_validate(data)
    except ValidationError as exc:
        return Rejection("invalid_document", _summarise(exc)[:500])
    return _check_document(doc, where)


def _check_document(doc: ResultDocument, where: tuple[str, str]) -> ResultDocument | Rejection:
    if not 0 <= doc.created_ns <= MAX_CREATED_NS:
        return Rejection("bad_timestamp", f"created_ns {doc.created_ns} outside 0..{MAX_CREATED_NS}")
    fleet, host = where
    if doc.fleet != fleet or doc.host != host:
        return Rejection(
            "topic_mismatch",
            f"payload fleet/host {doc.fleet!r}/{doc.host!r} differ from topic's {fleet!r}/{host!r}"[:300],
        )
    return doc


def validate_status(
    topic: str, payload: bytes, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD
) -> StatusPayload | Rejection | None:
    """Check one agent status message (``agent/publish/status.py``'s :class:`StatusPayload`). Never raises.

    ``None`` means "nothing to write": an empty payload is how MQTT clears a retained message (an
    operator retiring a device), not an error.
    """
    try:
        return _validate_status(topic, payload, max_payload_bytes)
    except Exception as exc:
        return Rejection("internal", f"{type(exc).__name__}: {exc}"[:300])


def _validate_status(topic: str, payload: bytes, max_payload_bytes: int) -> StatusPayload | Rejection | None:
    if len(payload) > max_payload_bytes:
        return Rejection("too_large", f"payload is {len(payload)} bytes, limit {max_payload_bytes}")
    m = _STATUS_TOPIC.match(topic)
    if m is None:
        return Rejection("bad_topic", f"topic {topic!r} is not edgebench/v1/{{fleet}}/{{host}}/status")
    if not payload:
        return None
    try:
        status = StatusPayload.model_validate_json(payload)
    except Exception:  # name the failing step, as for results
        try:
            data = json.loads(payload.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return Rejection("not_utf8", str(exc)[:200])
        except (ValueError, RecursionError) as exc:
            return Rejection("bad_json", str(exc)[:200])
        if not isinstance(data, dict):
            return Rejection("bad_json", f"top level is {type(data).__name__}, expected an object")
        try:
            status = StatusPayload.model_validate(data)
        except ValidationError as exc:
            return Rejection("invalid_status", _summarise(exc)[:500])
    fleet, host = m.group(1), m.group(2)
    if status.fleet != fleet or status.host != host:
        detail = f"payload fleet/host {status.fleet!r}/{status.host!r} differ from topic's {fleet!r}/{host!r}"
        return Rejection("topic_mismatch", detail[:300])
    return status


def validate_job_state(topic: str, payload: bytes, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD):  # type: ignore[no-untyped-def]
    """A daemon's job state (:class:`~edgebench.agent.daemon.jobs.JobState`), its fleet, host, campaign
    and job id matching the topic; None for an emptied retained message. Never raises."""
    from edgebench.agent.daemon.jobs import JobState

    try:
        if len(payload) > max_payload_bytes:
            return Rejection("too_large", f"payload is {len(payload)} bytes, limit {max_payload_bytes}")
        m = _JOB_STATE_TOPIC.match(topic)
        if m is None:
            return Rejection("bad_topic", f"topic {topic[:200]!r} is not a job state topic")
        if not payload:
            return None
        try:
            state = JobState.model_validate_json(payload)
        except ValidationError as exc:
            return Rejection("invalid_job_state", _summarise(exc)[:500])
        if (state.fleet, state.host, state.campaign, state.job_id) != m.groups():
            return Rejection("topic_mismatch", "payload fleet/host/campaign/job id differ from the topic's")
        return state
    except Exception as exc:
        return Rejection("internal", f"{type(exc).__name__}: {exc}"[:300])
