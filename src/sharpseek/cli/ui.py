"""``sharpseek ui``: start the Streamlit app (:mod:`sharpseek.ui.app`) on this machine."""

from __future__ import annotations

import importlib.resources
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app_path", "ui"]


def app_path() -> Path:
    """The Streamlit app: ``SHARPSEEK_UI_APP`` if set, else the script shipped in this package
    (``sharpseek/ui/app/main.py``, wherever the package is installed)."""
    override = os.environ.get("SHARPSEEK_UI_APP")
    if override:
        return Path(override)
    return Path(str(importlib.resources.files("sharpseek.ui.app") / "main.py"))


def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to serve on")] = 8501,
    address: Annotated[str, typer.Option(help="address to listen on")] = "localhost",
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="do not open a browser window")
    ] = False,
) -> None:
    """Open the UI: generate, shift, search and compare active regions (docs/ui.md)."""
    path = app_path()
    if not path.is_file():
        typer.echo(
            f"error: the Streamlit app is not at {path}; unset SHARPSEEK_UI_APP to run the "
            "app shipped in the sharpseek package",
            err=True,
        )
        raise typer.Exit(2)
    command = [
        sys.executable, "-m", "streamlit", "run", str(path),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true" if no_browser else "false",
        "--browser.gatherUsageStats", "false",
        # Streamlit's gc.collect(2) after every run holds the GIL ~100-200 ms on this
        # process (torch, pandas, astropy: ~300k objects), delaying the messages of a
        # Shift update that is already computed (docs/ui.md, "Speed")
        "--runner.postScriptGC", "false",
        # an instrument, not a Streamlit demo: no "Deploy" button or developer menu
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    typer.echo(f"sharpseek UI on http://{address}:{port}/ (Ctrl+C stops it)", err=True)
    sys.stdout.flush()
    # become the Streamlit server (exec, not a child): a signal to this process stops it
    os.execv(sys.executable, command)
