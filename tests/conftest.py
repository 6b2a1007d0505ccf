"""Test-wide isolation: results, caches and the HF hub never touch the user's real directories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("edgebench-home")
    os.environ["EDGEBENCH_DATA_DIR"] = str(base / "data")
    os.environ["EDGEBENCH_CACHE_DIR"] = str(base / "cache")
    os.environ["HF_HUB_OFFLINE"] = "1"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run the real ``edgebench-agent`` entry point in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-c", "from edgebench.agent.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
