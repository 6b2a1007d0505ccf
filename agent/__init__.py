"""edgebench agent: runs ASR models on a device and measures them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgebench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
