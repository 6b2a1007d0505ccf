"""Where edgebench keeps things on a device. Environment variables override for tests and services."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Results store (``EDGEBENCH_DATA_DIR`` or the user data directory)."""
    env = os.environ.get("EDGEBENCH_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("edgebench"))


def cache_dir() -> Path:
    """Converted weights and exported models (``EDGEBENCH_CACHE_DIR`` or the user cache directory)."""
    env = os.environ.get("EDGEBENCH_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgebench"))
