"""The sink contract: write line-protocol lines or say *why* not, in one of two ways.

The consumer's behaviour hinges on the difference: :class:`SinkUnavailable` (server down, 5xx, timeout,
auth/database misconfiguration) means "hold the acks and retry later — nothing is lost", while
:class:`SinkRejected` (4xx about the data itself) means "this batch contains a bad document: isolate it
and dead-letter it", because retrying bad data forever would stall the whole fleet's stream.
"""

from __future__ import annotations

from typing import Protocol


class SinkError(Exception):
    """Base of sink failures; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SinkUnavailable(SinkError):
    """Retryable: connection refused, timeout, 5xx, 401/403/404 (fix the server, keep the data)."""


class SinkRejected(SinkError):
    """Not retryable as is: the server refused the data (400, 413, 422)."""


class Sink(Protocol):
    """Write line protocol (nanosecond precision). Lines: ``points.document_to_lines``."""

    kind: str
    """'influx-v1' or 'influx-v2'."""

    def write(self, lines: list[str]) -> None: ...

    def delete(self, footprint: list[tuple[str, dict[str, str], int, int]]) -> None:
        """Delete the points of each (measurement, tags, first ns, last ns): the rollback of a document
        the server stored only in part. Raises :class:`SinkError` when it cannot."""
        ...

    def close(self) -> None: ...


def classify_status(status: int, message: str) -> SinkError:
    """Map an HTTP error status to the retry decision (see module docstring)."""
    if status in (400, 413, 422):
        return SinkRejected(message, status)
    return SinkUnavailable(message, status)
