"""The GAN as the direction commands (``sharpseek directions``, ``shift``, ``generate``,
``invert``, ``plot directions``) reach it, and their shared output: the consoles, the one-line
failure (exit 2), the served backend with its directions, the figure path.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one line per message


def fail(message: str) -> typer.Exit:
    """The exit (code 2) to raise after printing ``message`` as one error line."""
    err_console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code=2)


def load_generator(settings):
    """(store, generator model in this process), failing with exit 2 and one line: for the
    commands that need the checkpoint itself (fitting its directions, inversion's
    gradients); the others reach the models through :func:`served`."""
    from sharpseek.data.store import open_store
    from sharpseek.models.inference import GeneratorModel

    try:
        store = open_store(settings)
        model = GeneratorModel.from_settings(settings, store=store)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise fail(f"cannot load the GAN {settings.models.gan!r}: {err}") from None
    except Exception as err:  # store errors name the endpoint, never the keys
        raise fail(f"cannot load the GAN {settings.models.gan!r}: {err}") from None
    return store, model


def served(settings):
    """(model backend, its directions): the models through ``sharpseek.serving.backends``
    (in-process or TorchServe, as configured), failing with exit 2 and one line."""
    from sharpseek.serving.backends import BackendError, open_backend

    backend = open_backend(settings)
    try:
        directions = backend.load_directions()
    except (FileNotFoundError, ValueError, KeyError, BackendError) as err:
        backend.close()
        raise fail(key_error_text(err) if isinstance(err, KeyError) else str(err)) from None
    except Exception as err:  # store errors name the endpoint, never the keys
        backend.close()
        raise fail(f"cannot load the GAN {settings.models.gan!r}: {err}") from None
    return backend, directions


def key_error_text(err: KeyError) -> str:
    return str(err.args[0]) if err.args else str(err)


def figure_path(settings, out: Path | None, name: str) -> Path:
    path = out if out is not None else settings.figures_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
