"""Fit a result document into one MQTT message by decimating its long lists.

Why: a broker disconnects a client that sends a packet over its ``max_packet_size`` (mosquitto: 1 MiB in
``deploy/mosquitto``), and the collector refuses payloads over its own limit. A legitimate document can be
larger: a long run on a tiny workload holds tens of thousands of latency samples. Sending it whole would
fail on every attempt; refusing it would lose a measurement. Every figure the dashboards read (the
summaries: mean, percentiles, confidence interval, WER, energy totals) is computed on the device from the
full lists *before* this step, so only the raw series are thinned, evenly, and the document says so in
``decimated`` (path, original length, kept length, stride). The local results store keeps the full
document; ``edgebench-agent report`` and ``compare`` read that.

Decimation is deterministic (same document, same limit → same bytes), so a re-queued result is recognised
as the same message.
"""

from __future__ import annotations

from typing import Any

from edgebench.agent.results.schema import Decimation, ResultDocument

MIN_KEPT = 16
"""A list is never thinned below this many items."""
_PATHS = (
    ("forward", "latency_samples_s"),
    ("generate", "latency_samples_s"),
    ("transcribe", "per_utterance"),
    ("stream", "timeline"),
    ("energy", "trace"),
    ("telemetry", "trace"),
)


class TooLarge(Exception):
    """Even with every list at its minimum the document does not fit (the message says by how much)."""


def fit(doc: ResultDocument, limit_bytes: int, payload: bytes | None = None) -> tuple[bytes, ResultDocument]:
    """The JSON payload of ``doc`` in at most ``limit_bytes``, and the document it encodes.

    ``payload``: ``doc``'s JSON when the caller has it already. Halves the longest list (doubling its
    stride) until the payload fits. Raises :class:`TooLarge`."""
    payload = payload if payload is not None else doc.model_dump_json().encode()
    if len(payload) <= limit_bytes:
        return payload, doc
    original = {path: len(_get(doc, path)) for path in _PATHS if _get(doc, path)}
    strides = dict.fromkeys(original, 1)
    current = doc
    while len(payload) > limit_bytes:
        kept = {path: -(-original[path] // strides[path]) for path in original}
        candidates = [path for path in original if kept[path] > MIN_KEPT]
        if not candidates:
            raise TooLarge(
                f"result {doc.run_id}:{doc.seq} is {len(payload)} bytes even with its sample lists "
                f"decimated to {MIN_KEPT} items; the limit is {limit_bytes} bytes"
            )
        longest = max(candidates, key=lambda path: kept[path])
        strides[longest] *= 2
        current = _decimated(doc, original, strides)
        payload = current.model_dump_json().encode()
    return payload, current


def _get(doc: ResultDocument, path: tuple[str, str]) -> list[Any]:
    section = getattr(doc, path[0])
    return getattr(section, path[1]) if section is not None else []


def _decimated(
    doc: ResultDocument, original: dict[tuple[str, str], int], strides: dict[tuple[str, str], int]
) -> ResultDocument:
    """``doc`` with each list thinned by its stride. A list ``doc`` already carries thinned (a spooled copy
    fitted again to a smaller broker limit) keeps its original length and compounds the strides, so kept
    item *j* is still the original item ``j * stride``."""
    update: dict[str, Any] = {}
    prior = {d.path: d for d in doc.decimated}
    notes = {d.path: d for d in doc.decimated}
    for path, stride in strides.items():
        if stride == 1:
            continue
        name = ".".join(path)
        section = getattr(doc, path[0])
        kept = _get(doc, path)[::stride]
        update[path[0]] = section.model_copy(update={path[1]: kept})
        before = prior.get(name)
        total = before.total if before else original[path]
        overall = before.stride * stride if before else stride
        notes[name] = Decimation(path=name, total=total, kept=len(kept), stride=overall)
    update["decimated"] = list(notes.values())
    return doc.model_copy(update=update)
