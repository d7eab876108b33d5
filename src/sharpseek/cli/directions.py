"""``sharpseek directions fit|show|flare``, ``sharpseek plot directions`` and
``sharpseek evaluate directions``: thin shells over :mod:`sharpseek.science.directions`
(parse, check, one library call, report). :func:`register` adds them to ``cli/app.py``, with
``sharpseek shift`` (:mod:`sharpseek.cli.shift`), ``sharpseek generate``
(:mod:`sharpseek.cli.generate`) and ``sharpseek invert`` (:mod:`sharpseek.cli.invert`); the
GAN they share is reached through :mod:`sharpseek.cli.served`.

Bad input (unknown parameters, holding a shifted parameter, directions of another GAN
version, unreadable files) exits with code 2 and one line naming what is wrong.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import (
    HomeOpt,
    PresetOpt,
    ProgressOpt,
    dataset_name,
    settings_from,
)
from sharpseek.cli.generate import generate_cmd
from sharpseek.cli.invert import invert_cmd
from sharpseek.cli.served import (
    console,
    err_console,
    fail,
    key_error_text,
    load_generator,
    served,
)
from sharpseek.cli.shift import shift_cmd
from sharpseek.cli.train import _seed_blocks

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

directions_app = typer.Typer(
    help="Physical directions of the GAN: fit SVM boundaries, show them.", no_args_is_help=True
)


# ----------------------------------------------------------------------------------------------
# directions fit / show
# ----------------------------------------------------------------------------------------------
@directions_app.command("fit")
def fit_cmd(
    n: Annotated[
        int | None, typer.Option("--n", min=20, help="generated images (default: settings)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the sample and the 70/30 split")] = 0,
    calibrate: Annotated[
        bool, typer.Option("--calibrate/--no-calibrate", help="measure calibration curves")
    ] = True,
    calibration_n_z: Annotated[
        int | None, typer.Option(min=2, help="latent vectors per calibration point")
    ] = None,
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Fit one SVM boundary per physical parameter of the settings' GAN and store them
    (with calibration curves) under directions/<gan version>/; skipped when they are stored
    for this GAN version and recipe (the pipeline's directions step, one road)."""
    from sharpseek.data.store import open_store
    from sharpseek.pipeline.stages import directions_stage
    from sharpseek.science.directions import DirectionSet

    settings = settings_from(preset, home)
    try:
        outcome = directions_stage(
            settings,
            samples=n,
            seed=seed,
            calibrate=calibrate,
            calibration_n_z=calibration_n_z,
            progress=progress,
        )
    except (FileNotFoundError, ValueError, KeyError) as err:  # no GAN, or a bad checkpoint
        raise fail(f"cannot load the GAN {settings.models.gan!r}: {err}") from None
    version = outcome.outputs["gan_version"]
    directions = DirectionSet.load(open_store(settings), version)
    if outcome.skipped:
        console.print(outcome.message)
    console.print(
        f"directions [bold]{directions.version}[/] for GAN {version}: "
        f"{len(directions.boundaries)} parameters, N = {directions.n_samples} -> "
        f"{outcome.outputs['key']}"
    )
    _print_table(directions, version, settings)


def _print_table(directions, current: str | None, settings) -> None:
    from sharpseek.science.directions import configured_strength

    cfg = settings.directions
    eps = cfg.strong_eps
    table = Table(
        title=f"directions of GAN {directions.gan_version} ({directions.method.describe()})",
        caption=f"weak: +{eps:g} alone raises the parameter in < {cfg.strong_rise_share:.0%} "
        f"of the calibration vectors or by a median < {cfg.strong_median_change:+.0%}",
    )
    columns = ("parameter", "val. accuracy", f"{eps:+g}: rises", f"{eps:+g}: median change")
    for column in (*columns, "strength", "label", "threshold", "N"):
        table.add_column(column)
    for name, b in directions.boundaries.items():
        strength = configured_strength(directions, name, cfg)
        table.add_row(
            name,
            f"{b.accuracy:.3f}",
            "-" if strength.rises is None else f"{strength.rises:.0%}",
            "-"
            if strength.median_relative_change is None
            else f"{strength.median_relative_change:+.0%}",
            "[yellow]weak[/]" if strength.weak else "strong",
            b.rule.kind,
            f"{b.rule.threshold:.4g}",
            str(b.n_samples),
        )
    console.print(table)
    if current is not None and current != directions.gan_version:
        err_console.print(
            f"[yellow]warning:[/] these directions were fitted for GAN {directions.gan_version}, "
            f"but the settings' GAN is {current}: refit with `sharpseek directions fit`"
        )


@directions_app.command("show")
def show_cmd(
    gan_version: Annotated[
        str | None, typer.Option(help="show the directions of this GAN version")
    ] = None,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Table of the stored directions: parameter, validation accuracy, what +1.5 does by the
    calibration (how often it raises the parameter, the median change) and whether that
    makes the direction weak, label rule and threshold, N, GAN version (warns when they
    belong to another GAN version than the settings')."""
    from sharpseek.data.store import open_store
    from sharpseek.science.directions import DirectionSet

    settings = settings_from(preset, home)
    store = open_store(settings)
    current = None
    try:
        _, model = load_generator(settings)
        current = model.version
    except typer.Exit:
        if gan_version is None:
            raise
    wanted = gan_version or current
    try:
        directions = DirectionSet.load(store, wanted)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    console.print(f"directions version {directions.version}")
    _print_table(directions, current, settings)


@directions_app.command("flare")
def flare_cmd(
    seed: Annotated[int, typer.Option(help="seed of the sample, the region split")] = 0,
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Fit the flare-productive direction: a classifier of a >= M flare within 24 h (settings
    flares.outlook_class / outlook_hours) on the indexed frames' physical parameters and
    embeddings, validated on held-out regions, labels generated images; the direction is
    fitted from its labels like the others and stored with them (shift it: --shift flare=1.5).
    Skipped when stored for the same inputs (the pipeline's flare-direction step)."""
    from sharpseek.data.store import open_store
    from sharpseek.pipeline.flare_direction_stage import flare_direction_stage
    from sharpseek.science.directions import DirectionSet, configured_strength
    from sharpseek.science.flare_direction import FLARE_DIRECTION

    settings = settings_from(preset, home)
    try:
        outcome = flare_direction_stage(settings, seed=seed, progress=progress)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise fail(key_error_text(err) if isinstance(err, KeyError) else str(err)) from None
    console.print(outcome.message)
    directions = DirectionSet.load(open_store(settings), outcome.outputs["gan_version"])
    boundary = directions[FLARE_DIRECTION]
    v = boundary.extra["classifier"]["validation"]
    console.print(
        f"classifier on held-out regions ({v['validation_regions']} regions, {v['frames']} "
        f"frames, event rate {v['event_rate']:.0%}): AUC {v['auc']:.2f} (R alone "
        f"{v['r_auc']:.2f}), TSS {v['tss']:.2f}, Brier {v['brier']:.3f} against climatology "
        f"{v['brier_climatology']:.3f} (skill {v['brier_skill']:+.2f}), accuracy "
        f"{v['accuracy']:.2f} (majority class {v['majority_accuracy']:.2f})"
    )
    cosines = boundary.extra["cosines"]
    console.print(
        "direction: "
        + escape(configured_strength(directions, FLARE_DIRECTION, settings.directions).summary())
        + "; cosine with "
        + ", ".join(f"{k} {cosines[k]:+.2f}" for k in ("tuf", "r") if k in cosines)
    )


# ----------------------------------------------------------------------------------------------
# plot directions
# ----------------------------------------------------------------------------------------------
def plot_directions_cmd(
    parameter: Annotated[str, typer.Option(help="direction of Fig. 4 and Fig. 5")] = "tuf",
    hold: Annotated[
        list[str] | None, typer.Option("--hold", help="condition of Fig. 5's second row")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the shifted AR")] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="default: figures dir")] = None,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """The paper's Fig. 4 (2-D view with the boundary and thumbnails), Fig. 5 (strips of
    shifted images with and without a condition) and the calibration curves."""
    from sharpseek.science import directions_plots as dp

    settings = settings_from(preset, home)
    backend, directions = served(settings)
    parameter = parameter.lower()
    hold_list = [h.lower() for h in hold or []] or ["psep" if parameter != "psep" else "tuf"]
    folder = out_dir if out_dir is not None else settings.figures_dir
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with backend, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            z0 = backend.generate(seeds=[seed], parameters=False).z[0]
            paths = [
                dp.boundary_view(
                    backend.images, directions, parameter, folder / f"directions-2d-{parameter}.png"
                ),
                dp.shift_strips(
                    backend.images,
                    directions,
                    z0,
                    parameter,
                    hold_list,
                    folder / f"directions-strips-{parameter}.png",
                    held_shift=backend.held_shift(z0, [parameter], hold_list),
                ),
            ]
            if directions.calibration:
                paths.append(
                    dp.calibration_curves(directions, folder / "directions-calibration.png")
                )
            else:
                err_console.print(
                    "[yellow]warning:[/] no calibration stored: `sharpseek directions fit "
                    "--calibrate` draws the calibration curves"
                )
    except KeyError as err:
        raise fail(key_error_text(err)) from None
    except ValueError as err:
        raise fail(str(err)) from None
    for path in paths:
        console.print(f"picture: {path}")


# ----------------------------------------------------------------------------------------------
# evaluate directions
# ----------------------------------------------------------------------------------------------
def evaluate_directions_cmd(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="dataset whose interquartile ranges are the units",
            callback=dataset_name,
        ),
    ] = "synthetic",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="seeds per block")] = 1000,
    seed_blocks: Annotated[
        str, typer.Option("--seed-blocks", help="first seeds of the blocks")
    ] = "0,100000",
    eps: Annotated[
        float, typer.Option("--eps", help="shift, in the directions' unit of eps")
    ] = 1.5,
    out: Annotated[Path | None, typer.Option("--out", help="write the report as JSON")] = None,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Do the directions move what they name? For TUF, PSEP and R, over the seeds whose start
    image is bipolar with R > 0: shift +eps alone and with the other two held; the share of
    seeds where the parameter rises, its median relative change, and the held parameters'
    median change in units of the dataset's interquartile range."""
    import json

    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store
    from sharpseek.science.evaluate_directions import evaluate_directions

    blocks = _seed_blocks(seed_blocks)
    settings = settings_from(preset, home)
    try:
        manifest = load_dataset(open_store(settings), dataset, None).manifest
    except FileNotFoundError as err:
        raise fail(str(err)) from None
    backend, _ = served(settings)  # fails in one line without directions
    with backend:
        report = evaluate_directions(backend, manifest, n=seeds, seed_blocks=blocks, eps=eps)
    for entry in report["blocks"].values():
        table = Table(
            title=f"seeds {entry['seeds'][0]}..{entry['seeds'][1]}: {entry['selected']} bipolar "
            f"with R > 0, shift {eps:+g}"
        )
        for column in ("direction", "mode", "rises", "median rel. change", "others (median / IQR)"):
            table.add_column(column)
        for name in report["parameters"]:
            if name not in entry:
                continue
            for mode in ("alone", "held"):
                e = entry[name][mode]
                others = ", ".join(
                    f"{o} {e[f'{o}_median_change_iqr']:+.2f}"
                    for o in report["parameters"]
                    if o != name
                )
                table.add_row(
                    name, mode, f"{e['rises']:.0%}", f"{e['median_relative_change']:+.1%}", others
                )
        console.print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"report: {out}")


def register(app: typer.Typer, plot_app: typer.Typer) -> None:
    """Add these commands to the ``sharpseek`` app and its ``plot`` group."""
    app.add_typer(directions_app, name="directions")
    app.command("shift")(shift_cmd)
    app.command("generate")(generate_cmd)
    app.command("invert")(invert_cmd)
    plot_app.command("directions")(plot_directions_cmd)
