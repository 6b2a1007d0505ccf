"""Caches the test suite keeps between runs, outside the checkout (``EDGEBENCH_TEST_CACHE``, default
``/var/cache/edgebench-tests``): the emulated Pi's root filesystem (tests/emulated_pi.py) and the model
cache (exports, converted weights) every test shares unless it makes its own.

Exporting Whisper to ONNX, LiteRT and CTranslate2 takes minutes of a CI run on two cores, and the same
sources with the same packages export the same files. The model cache is therefore keyed by everything
an export or a conversion is made from: the code under ``models/`` and ``agent/export/`` and the versions
of every package of both environments (the suite's and the LiteRT converter's). Any change to either
makes a new, empty cache; the oldest are deleted. Tests that count, corrupt or time exports use a
private cache (``own_cache`` fixtures), so a warm cache changes no outcome, only the time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_SOURCES = ("models", "agent/export")
KEEP_MODEL_CACHES = 3


def cache_root() -> Path:
    return Path(os.environ.get("EDGEBENCH_TEST_CACHE", "/var/cache/edgebench-tests"))


def _package_versions() -> list[str]:
    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    converter = os.environ.get("EDGEBENCH_LITERT_PYTHON")
    if converter:  # .venv-litert/bin/python -> its site-packages' distributions, by directory name
        env = Path(converter).parent.parent
        versions += sorted(p.name for p in env.glob("lib/python*/site-packages/*.dist-info"))
    return versions


def model_cache_key() -> str:
    h = hashlib.sha256()
    for top in KEY_SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update("\n".join(_package_versions()).encode())
    return h.hexdigest()[:12]


def model_cache_dir() -> Path | None:
    """The shared model cache for these sources and packages (made if missing), or None where the cache
    root cannot be written (a developer without root: the session then uses a temporary cache)."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"model-cache-{model_cache_key()}"
        path.mkdir(exist_ok=True)
        os.utime(path)  # most recently used
    except OSError:
        return None
    caches = []
    for old in root.glob("model-cache-*"):
        with contextlib.suppress(OSError):  # another session pruning it right now
            caches.append((old.stat().st_mtime, old))
    for mtime, old in sorted(caches, reverse=True)[KEEP_MODEL_CACHES:]:
        # not used for a day: no session still running uses it (a whole suite run takes about an hour)
        if time.time() - mtime > 86400:
            shutil.rmtree(old, ignore_errors=True)
    return path
