"""Structured logs: one JSON object per line on stderr (journald/Loki friendly, grep-able).

Only values passed explicitly are logged, and :func:`redact` is the one place a configuration is
turned into log fields, so passwords and tokens never reach a log line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()
_SECRET_KEYS = {"password", "token", "password_file", "token_file", "key_file"}


def log(event: str, level: str = "info", **fields: Any) -> None:
    record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "level": level, "event": event}
    record.update(fields)
    line = json.dumps(record, default=str, ensure_ascii=False)
    with _lock:
        print(line, file=sys.stderr, flush=True)


def redact(data: Any) -> Any:
    """Copy of a (nested) config dict with secret values replaced by '***' (None stays None)."""
    if isinstance(data, dict):
        return {k: ("***" if k in _SECRET_KEYS and v is not None else redact(v)) for k, v in data.items()}
    return data
