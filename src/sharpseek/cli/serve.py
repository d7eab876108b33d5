"""``sharpseek serve build|fetch|start|stop|status|swap``: a shell over
:mod:`sharpseek.serving.torchserve`.

Register in ``cli/app.py``::

    from sharpseek.cli.serve import serve_app
    app.add_typer(serve_app, name="serve")

Configuration comes from ``settings.serve`` (env ``SHARPSEEK_SERVE__*``, docs/serving.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import HomeOpt, PresetOpt, settings_from

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

serve_app = typer.Typer(
    help="Serve the generator and the encoder with TorchServe (docs/serving.md).",
    no_args_is_help=True,
)
console = Console()


_settings = settings_from


def _fail(err: BaseException) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
    return typer.Exit(code=2)


@serve_app.command("build")
def build_cmd(
    preset: PresetOpt = None,
    home: HomeOpt = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="generator or encoder (default both)")
    ] = None,
    upload: Annotated[
        bool, typer.Option("--upload/--no-upload", help="copy archives to the store's model-store/")
    ] = True,
    require_directions: Annotated[
        bool, typer.Option("--require-directions", help="fail when the GAN has no directions")
    ] = False,
) -> None:
    """Model archives (.mar) of the current checkpoints and directions, versioned."""
    from sharpseek.serving.archives import ServeError, build_archives, model_store_dir

    settings = _settings(preset, home)
    try:
        archives = build_archives(
            settings,
            models=tuple(model) if model else ("generator", "encoder"),
            upload=upload,
            require_directions=require_directions,
        )
    except (FileNotFoundError, ValueError, ServeError) as err:
        raise _fail(err) from None
    table = Table(title=f"archives in {model_store_dir(settings)}")
    for column in ("model", "archive", "GAN", "encoder", "directions"):
        table.add_column(column)
    for a in archives:
        table.add_row(a.model, a.file, a.gan or "", a.encoder or "", a.directions or "-")
    console.print(table)
    if upload:
        from sharpseek.data.store import open_store
        from sharpseek.serving.archives import serving_version, store_current_archives

        published = store_current_archives(open_store(settings))
        console.print(
            f"serving version {serving_version(published)} published "
            f"({', '.join(published.values())}): on Kubernetes, "
            f"--set torchserve.modelVersion={serving_version(published)}"
        )


@serve_app.command("fetch")
def fetch_cmd(
    to: Annotated[Path, typer.Option("--to", help="model-store folder to fill")],
    version: Annotated[
        str | None,
        typer.Option("--version", help="serving version (default: the store's current one)"),
    ] = None,
    bind: Annotated[
        str | None,
        typer.Option("--bind", help="listen on this host, e.g. 0.0.0.0 in a container"),
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="nothing published yet: configure no models"),
    ] = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Download published archives from the store and write TorchServe's config for them."""
    from sharpseek.serving.archives import ServeError
    from sharpseek.serving.torchserve import fetch_archives

    settings = _settings(preset, home)
    try:
        done = fetch_archives(settings, to, version, bind_host=bind, allow_empty=allow_empty)
    except (ServeError, ValueError, OSError) as err:
        raise _fail(err) from None
    if done["archives"]:
        console.print(
            f"serving version {done['version']}: {', '.join(done['archives'].values())} "
            f"in {to}; config {done['config']}"
        )
    else:
        console.print(f"no archives published yet; {done['config']} loads no model")


@serve_app.command("start")
def start_cmd(preset: PresetOpt = None, home: HomeOpt = None) -> None:
    """Start TorchServe with the current archives; returns when the models are ready."""
    from sharpseek.serving.archives import ServeError, serve_dir
    from sharpseek.serving.backends import BackendError
    from sharpseek.serving.torchserve import start

    settings = _settings(preset, home)
    try:
        with console.status("starting TorchServe (the JVM and one worker per model) ..."):
            state = start(settings)
    except (ServeError, BackendError, ValueError) as err:
        raise _fail(err) from None
    console.print(
        f"TorchServe runs (pid {state['pid']}): inference {settings.serve.inference_url}, "
        f"management {settings.serve.management_url}, metrics {settings.serve.metrics_url}/metrics"
    )
    if settings.serve.token_auth:
        console.print(f"tokens: {serve_dir(settings) / 'key_file.json'}")


@serve_app.command("stop")
def stop_cmd(preset: PresetOpt = None, home: HomeOpt = None) -> None:
    """Stop the TorchServe started here (and its workers)."""
    from sharpseek.serving.torchserve import stop

    settings = _settings(preset, home)
    console.print("stopped" if stop(settings) else "TorchServe was not running")


@serve_app.command("status")
def status_cmd(
    preset: PresetOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Whether TorchServe runs, and which versions of which models it serves."""
    from sharpseek.serving.torchserve import status

    settings = _settings(preset, home)
    state = status(settings)
    if as_json:
        console.print_json(json.dumps(state))
        return
    if not state["running"]:
        console.print("TorchServe is not running")
        return
    health = "healthy" if state["healthy"] else "not healthy"
    console.print(f"TorchServe pid {state['pid']} at {state['inference_url']}: {health}")
    if "error" in state:
        console.print(f"[red]{escape(state['error'])}[/]")
    table = Table()
    for column in ("model", "version", "default", "workers", "batch", "delay ms"):
        table.add_column(column)
    for name, versions in state["models"].items():
        for v in versions:
            table.add_row(
                name,
                v["version"],
                "yes" if v["default"] else "",
                ",".join(v["workers"]),
                str(v["batch_size"]),
                str(v["max_batch_delay_ms"]),
            )
    console.print(table)


@serve_app.command("swap")
def swap_cmd(
    archive: Annotated[str, typer.Argument(help="archive file in the model store")],
    preset: PresetOpt = None,
    home: HomeOpt = None,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="do not unregister the old")] = False,
) -> None:
    """Serve a new archive version without downtime (needs serve.enable_model_api)."""
    from sharpseek.serving.archives import ServeError
    from sharpseek.serving.backends import BackendError
    from sharpseek.serving.torchserve import swap_model

    settings = _settings(preset, home)
    try:
        done = swap_model(settings, archive, unregister_old=not keep_old)
    except (ServeError, BackendError, ValueError) as err:
        raise _fail(err) from None
    console.print(
        f"{done['model']} now serves {done['version']} (was {', '.join(done['previous'])})"
    )
