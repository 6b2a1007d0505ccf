"""Where points go: InfluxDB through the v1 (/write?db=) or v2 (/api/v2/write) wire path."""

from edgebench.collector.sinks.base import Sink, SinkError, SinkRejected, SinkUnavailable

__all__ = ["Sink", "SinkError", "SinkRejected", "SinkUnavailable"]
