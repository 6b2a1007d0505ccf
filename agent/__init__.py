"""edgebench agent: runs ASR models on a device and measures them."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Computed on first use: importlib.metadata costs tens of ms at start-up (every CLI call and every
    # memory-poller process imports this package).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("edgebench")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0.0.0+source"
    raise AttributeError(name)
