"""What the ``sharpseek index``, ``search`` and ``evaluate retrieval`` commands share: the
console, the one-line failure (exit 2), the errors a user can cause, the index and a dataset
opened from the settings.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code=2)


def user_errors() -> tuple[type[BaseException], ...]:
    from sharpseek.data.object_store import StoreError
    from sharpseek.search.index import EmptyIndexError
    from sharpseek.serving.backends import BackendError

    return (
        ValueError, KeyError, LookupError, FileNotFoundError, EmptyIndexError, StoreError,
        BackendError,
    )  # fmt: skip


def error_text(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def open_index(settings, dim: int | None = None):
    from sharpseek.search.index import open_index_from_settings

    try:
        return open_index_from_settings(settings, dim=dim)
    except RuntimeError as err:  # e.g. the embedded folder is open in another process
        raise fail(str(err)) from None


def dataset_of(settings, name: str, version: str | None):
    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store

    return load_dataset(open_store(settings), name, version)
