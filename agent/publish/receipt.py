"""The collector's receipt: "these results of yours are stored" (or "refused, and why"), per device.

Why receipts exist: an MQTT broker acknowledges a QoS 1 publish (PUBACK) before it has persisted it —
mosquitto writes its database every ``autosave_interval`` — and drops messages beyond its queue limits, so
an agent that forgets a result on PUBACK can lose it to a broker crash without anyone learning of it.
The agent therefore keeps a sent result until the collector, *after* the database write, publishes a
receipt on ``edgebench/v1/{fleet}/{host}/receipt`` (QoS 1; the device reads it through its persistent
session, so receipts wait at the broker while the device is off). Unconfirmed results are re-sent after
a timeout; the collector's writes are idempotent, so a re-send after a lost receipt costs nothing.

Items are named by the payload's digest (:func:`~edgebench.agent.publish.spool.payload_digest`), because the
collector may be unable to parse a payload it refuses. One model, shared by both sides (as ``status.py``).
No paho import.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RECEIPT_SUFFIX = "receipt"


class ReceiptItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    digest: str = Field(min_length=8, max_length=64)
    outcome: Literal["written", "refused"]
    key: str | None = None
    """``run_id:seq`` when the collector could read it (for messages; the digest is the identity)."""
    reason: str | None = None
    """Why refused: the dead letter's reason and detail."""


class Receipt(BaseModel):
    """JSON body of a receipt. ``extra="ignore"``: a newer collector may add keys."""

    model_config = ConfigDict(extra="ignore")

    items: list[ReceiptItem]
    collector: str | None = None
    ts_ns: int | None = None


def receipt_topic(prefix: str, fleet: str, host: str) -> str:
    return f"{prefix}/{fleet}/{host}/{RECEIPT_SUFFIX}"
