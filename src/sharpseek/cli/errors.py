"""The one error rule of the ``sharpseek`` command (docs/cli.md, "Errors and exit codes").

Every command runs inside :class:`GuardedGroup`, the root command group, so an exception no
command caught itself is answered here, once, for all of them:

====  ======================================================================================
exit  meaning
====  ======================================================================================
0     done
2     bad input, or a situation the user can fix: an argument, option, file or setting, or
      a service or lock not available now (JSOC, the object store, TorchServe, the index
      held by another writer); one line names it
3     done, but ingest quarantined something (the table lists each file and why)
70    internal error (a bug): one line, and the traceback appended to
      ``<home>/logs/errors.log`` with the command line, never printed on the terminal
====  ======================================================================================

A bad-input or unavailable answer writes nothing anywhere (the home is left as it was);
only an internal error writes its log.
"""

from __future__ import annotations

import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from sharpseek.config import get_settings

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_QUARANTINED",
    "GuardedGroup",
    "classify",
    "error_log",
    "remember_home",
]

EXIT_BAD_INPUT = 2
EXIT_QUARANTINED = 3
EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE
#: The longest one-line message printed (a message that long is cut, not wrapped).
_MAX_MESSAGE = 600

_home: Path | None = None


def remember_home(home: Path) -> None:
    """Record the data home the running command uses (its internal errors are logged there);
    called by :func:`sharpseek.cli.common.settings_from`."""
    global _home
    _home = Path(home)


def error_log() -> Path:
    """``<home>/logs/errors.log`` of the running command (the environment's home when the
    command failed before it read its settings)."""
    home = _home
    if home is None:
        try:
            home = get_settings().home
        except Exception:  # noqa: BLE001 - the settings themselves may be what is broken
            home = Path(".sharpseek")
    return Path(home) / "logs" / "errors.log"


def _unavailable() -> tuple[type[BaseException], ...]:
    from sharpseek.data.jsoc import JsocError
    from sharpseek.data.object_store import StoreError
    from sharpseek.search.index import IndexBusyError
    from sharpseek.serving.archives import ServeError
    from sharpseek.serving.backends import BackendError

    kinds: list[type[BaseException]] = [
        BackendError, IndexBusyError, JsocError, ServeError, StoreError, ConnectionError,
        TimeoutError,
    ]  # fmt: skip
    try:
        import httpx

        kinds.append(httpx.HTTPError)
    except ImportError:  # pragma: no cover - httpx is a core dependency
        pass
    return tuple(kinds)


def _bad_input() -> tuple[type[BaseException], ...]:
    from sharpseek.data.dataset_writer import CommitConflict
    from sharpseek.data.object_store import ObjectNotFound, StoreConfigError
    from sharpseek.science.directions import DirectionsConflict
    from sharpseek.search.index import EmptyIndexError
    from sharpseek.serving.archives import ArchiveConflict

    return (
        ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
        PermissionError, EmptyIndexError, ObjectNotFound, StoreConfigError, CommitConflict,
        ArchiveConflict, DirectionsConflict,
    )  # fmt: skip


def classify(err: BaseException) -> int:
    """The exit status of an exception no command caught: :data:`EXIT_BAD_INPUT` for bad
    input and services or locks not available now, :data:`EXIT_INTERNAL` for anything else
    (the table of the module)."""
    if isinstance(err, _bad_input() + _unavailable()):
        return EXIT_BAD_INPUT
    return EXIT_INTERNAL


def one_line(message: str) -> str:
    """``message`` on one line: whitespace runs (newlines included) as one space, cut at
    :data:`_MAX_MESSAGE` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _text(err: BaseException) -> str:
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__


def _log_internal(err: BaseException, argv: list[str]) -> Path | None:
    path = error_log()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')} ")
            log.write(f"sharpseek {' '.join(repr(a) for a in argv)}\n")
            log.write("".join(traceback.format_exception(err)))
        return path
    except OSError:
        return None


def report(err: BaseException, argv: list[str]) -> int:
    """Print the one line for ``err`` on stderr (the internal error's traceback to the log
    file) and return the exit status."""
    code = classify(err)
    if code == EXIT_INTERNAL:
        path = _log_internal(err, argv)
        where = f"traceback in {path}" if path else "the log file could not be written"
        line = f"internal error ({type(err).__name__}: {one_line(_text(err))}); {where}"
    else:
        line = one_line(_text(err))
    typer.echo(f"error: {line}", err=True)
    return code


class GuardedGroup(TyperGroup):
    """The root command group: every sub-command's uncaught exception is answered by
    :func:`report` (one line, exit status by :func:`classify`) instead of a traceback."""

    def make_context(self, info_name, args, parent=None, **extra):
        self._argv = list(args)
        return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # usage errors exit 2 as they do
            raise
        except Exception as err:  # noqa: BLE001 - the one place errors become exit statuses
            argv = getattr(self, "_argv", sys.argv[1:])
            raise typer.Exit(report(err, argv)) from None
