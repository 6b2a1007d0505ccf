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


def run_cli(app, prog: str) -> None:  # type: ignore[no-untyped-def]
    """Run a typer app as a console script: user errors become one line on stderr and a non-zero exit,
    never a traceback (``EDGEBENCH_DEBUG=1`` re-raises unexpected errors to show one)."""
    import os
    import sys

    import typer

    # typer >= 0.24 carries its own copy of click: take its exception classes from typer itself.
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    no_args_help = getattr(sys.modules[usage_error.__module__], "NoArgsIsHelpError", ())
    try:
        # Not standalone: usage errors (a bad integer, an unknown option) come here, to be one line
        # like every other error instead of a box.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) is returned, not raised, in this mode
            sys.exit(code)
    except no_args_help as exc:  # a bare group: typer has printed its help already
        sys.exit(exc.exit_code)
    except usage_error as exc:
        sub = exc.ctx.command_path.split()[1:] if exc.ctx else []  # [0] is argv[0], e.g. "-c"
        where = " ".join([prog, *sub, "--help"])
        message = exc.format_message().replace("\n", " ")
        print(f"{prog}: error: {message} (see {where})", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    except EdgebenchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("EDGEBENCH_DEBUG"):
            raise
        print(
            f"{prog}: internal error: {type(exc).__name__}: {exc} (set EDGEBENCH_DEBUG=1 for details)",
            file=sys.stderr,
        )
        sys.exit(1)
