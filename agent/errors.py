"""User-facing errors.

Every error a user can cause (unknown model, missing extra, unreadable audio, bad sweep value, …) is an
:class:`EdgebenchError`. The CLI prints its message on one line and exits non-zero, never with a traceback,
so the message must say what went wrong *and* what to do about it.
"""

from __future__ import annotations


class EdgebenchError(Exception):
    """An error with a one-line, actionable message for the user."""

    exit_code = 2


class MissingExtraError(EdgebenchError):
    """An optional dependency is not installed; the message names the pip extra that provides it."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{module}', which is not installed: "
            f"pip install 'edgebench[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency lazily, turning ImportError into a MissingExtraError."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no branch - the message is the point
        raise MissingExtraError(module.split(".")[0], extra, purpose) from exc
