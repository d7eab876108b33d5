"""``sharpseek directions fit|show``, ``sharpseek shift``, ``sharpseek generate``,
``sharpseek invert`` and ``sharpseek plot directions``: thin shells over
:mod:`sharpseek.science.directions`, :mod:`sharpseek.science.catalogue` and
:mod:`sharpseek.science.inversion` (parse, check, one library call, report). Registered in
``cli/app.py`` by :func:`register`.

Bad input (unknown parameters, holding a shifted parameter, directions of another GAN
version, unreadable files) exits with code 2 and one line naming what is wrong.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import (
    AlongOpt,
    HoldOpt,
    HomeOpt,
    PresetOpt,
    ProgressOpt,
    ShiftOpt,
    dataset_name,
    parse_shifts,
    settings_from,
)
from sharpseek.cli.train import _seed_blocks

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

directions_app = typer.Typer(
    help="Physical directions of the GAN: fit SVM boundaries, show them.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one line per message


_settings = settings_from


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code=2)


def _load(settings):
    """(store, generator model in this process), failing with exit 2 and one line: for the
    commands that need the checkpoint itself (fitting its directions, inversion's
    gradients); the others reach the models through :func:`_served`."""
    from sharpseek.data.store import open_store
    from sharpseek.models.inference import GeneratorModel

    try:
        store = open_store(settings)
        model = GeneratorModel.from_settings(settings, store=store)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise _fail(f"cannot load the GAN {settings.models.gan!r}: {err}") from None
    except Exception as err:  # store errors name the endpoint, never the keys
        raise _fail(f"cannot load the GAN {settings.models.gan!r}: {err}") from None
    return store, model


def _served(settings):
    """(model backend, its directions): the models through ``sharpseek.serving.backends``
    (in-process or TorchServe, as configured), failing with exit 2 and one line."""
    from sharpseek.serving.backends import BackendError, open_backend

    backend = open_backend(settings)
    try:
        directions = backend.load_directions()
    except (FileNotFoundError, ValueError, KeyError, BackendError) as err:
        backend.close()
        raise _fail(_key_error(err) if isinstance(err, KeyError) else str(err)) from None
    except Exception as err:  # store errors name the endpoint, never the keys
        backend.close()
        raise _fail(f"cannot load the GAN {settings.models.gan!r}: {err}") from None
    return backend, directions


def _key_error(err: KeyError) -> str:
    return str(err.args[0]) if err.args else str(err)


def _figure_path(settings, out: Path | None, name: str) -> Path:
    path = out if out is not None else settings.figures_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


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

    settings = _settings(preset, home)
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
        raise _fail(f"cannot load the GAN {settings.models.gan!r}: {err}") from None
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

    settings = _settings(preset, home)
    store = open_store(settings)
    current = None
    try:
        _, model = _load(settings)
        current = model.version
    except typer.Exit:
        if gan_version is None:
            raise
    wanted = gan_version or current
    try:
        directions = DirectionSet.load(store, wanted)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None
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

    settings = _settings(preset, home)
    try:
        outcome = flare_direction_stage(settings, seed=seed, progress=progress)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise _fail(_key_error(err) if isinstance(err, KeyError) else str(err)) from None
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
# shift
# ----------------------------------------------------------------------------------------------
def shift_cmd(
    seed: Annotated[int, typer.Option("--seed", min=0, help="seed of the start z")],
    shift: ShiftOpt = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="tuf=x2 | psep=40 | r>p90 (physical targets), repeatable"),
    ] = None,
    hold: HoldOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="PNG (default: figures dir)")] = None,
    along: AlongOpt = None,
    outlook: Annotated[
        bool,
        typer.Option(
            "--outlook",
            help="also the look-alike flare outlook (and the flare classifier's probability) "
            "before and after the shift",
        ),
    ] = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Shift the AR of a seed along physical directions (--shift tuf=1.5, or the flare
    direction: flare=1.5), or to physical targets (--target tuf=x2), holding other
    parameters; print before/after (--outlook: how often look-alikes flared next); write a
    PNG."""
    from sharpseek.physics.parameters import PARAMETER_UNITS, SHOWN_PARAMETERS
    from sharpseek.science.directions import Target, apply_shifts, solve_targets
    from sharpseek.science.plotting import magnetogram_grid

    try:
        shifts = parse_shifts(shift, along)
    except ValueError as err:
        raise _fail(str(err)) from None
    hold_list = [h.strip().lower() for h in hold or []]
    if bool(shifts) == bool(target):
        raise _fail("give either --shift PARAMETER=EPS or --target (e.g. tuf=x2), not both")
    settings = _settings(preset, home)
    backend, directions = _served(settings)
    with backend:
        z0 = backend.generate(seeds=[seed], parameters=False).z[0]
        result = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                if shifts:
                    z1 = apply_shifts(directions, z0, shifts, hold_list)
                else:
                    targets = [Target.parse(t) for t in target or []]
                    result = solve_targets(backend.images, directions, z0, targets, hold=hold_list)
                    z1 = result.z
            for w in caught:
                if issubclass(w.category, UserWarning):
                    err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
        except KeyError as err:
            raise _fail(_key_error(err)) from None
        except ValueError as err:
            raise _fail(str(err)) from None
        generated = backend.generate(np.stack([z0, z1]).astype(np.float32))
        outlooks = _outlooks(settings, backend, directions, generated.images) if outlook else []
    images, params = generated.images, generated.parameters
    if shifts:
        console.print(
            "requested shift: "
            + ", ".join(f"{k} eps = {v:+g}" for k, v in shifts.items())
            + (f" holding {', '.join(hold_list)}" if hold_list else "")
            + f" ({directions.method.describe()})"
        )
        _print_strengths(directions, shifts, settings)
    table = Table(title=f"seed {seed}: GAN {generated.gan_version}")
    for column in ("parameter", "unit", "before", "after", "change"):
        table.add_column(column)
    for name in SHOWN_PARAMETERS:
        a, b = float(params[name][0]), float(params[name][1])
        mark = " (held)" if name in hold_list else ""
        table.add_row(name + mark, PARAMETER_UNITS[name], f"{a:.4g}", f"{b:.4g}", _relative(a, b))
    console.print(table)
    if result is not None:
        rt = Table(title="targets: requested against achieved")
        for column in ("parameter", "start", "requested", "achieved", "rel. error"):
            rt.add_column(column)
        errors = result.relative_errors()
        for name, requested in result.requested.items():
            rt.add_row(
                name,
                f"{result.start[name]:.4g}",
                f"{requested:.4g}",
                f"{result.achieved[name]:.4g}",
                f"{errors[name]:.1%}",
            )
        console.print(rt)
        console.print(
            f"{'converged' if result.converged else 'NOT converged'} after "
            f"{result.iterations} iterations; eps = {np.round(result.eps, 3).tolist()}"
        )
    for line in outlooks:
        console.print(escape(line))
    path = _figure_path(settings, out, f"shift-seed{seed}.png")
    centroids = np.stack(
        [params["pos_x"], params["pos_y"], params["neg_x"], params["neg_y"]], axis=1
    )
    magnetogram_grid(
        images,
        path,
        titles=[
            f"seed {seed}\nTUF {params['tuf'][0]:.3g} PSEP {params['psep'][0]:.3g} "
            f"R {params['r'][0]:.3g}",
            f"shifted\nTUF {params['tuf'][1]:.3g} PSEP {params['psep'][1]:.3g} "
            f"R {params['r'][1]:.3g}",
        ],
        centroids=centroids,
        ncols=2,
    )
    console.print(f"picture: {path}")


def _outlooks(settings, backend, directions, images: np.ndarray) -> list[str]:
    """Lines: the look-alike outlook of the images before and after the shift (the search's
    rule on generated queries), with the flare classifier's probability when the set has
    one, and the outlook's caveat."""
    from sharpseek.physics.parameters import compute_parameters
    from sharpseek.science.flare_direction import flare_classifier_of
    from sharpseek.search.searcher import Searcher

    classifier = flare_classifier_of(directions)
    with Searcher(settings, backend=backend) as searcher:
        try:
            vectors = searcher.query_vectors(images, generated=True)
            looks = [searcher.outlook(searcher.image_query(im, generated=True)) for im in images]
        except (FileNotFoundError, ValueError, KeyError) as err:
            why = _key_error(err) if isinstance(err, KeyError) else str(err)
            raise _fail(f"no outlook: {why}") from None
    chance = (
        None
        if classifier is None
        else classifier.probability(compute_parameters(np.asarray(images, np.float32)), vectors)
    )
    lines = []
    for i, (label, look) in enumerate(zip(("before", "after"), looks, strict=True)):
        words = f"outlook {label}: {look.text()}"
        if chance is not None:
            words += (
                f" Flare classifier: P(>= {classifier.threshold} within {classifier.hours} h) "
                f"= {chance[i]:.2f}."
            )
        lines.append(words)
    return [*lines, looks[0].caveat]


def _print_strengths(directions, shifts: dict[str, float], settings) -> None:
    """Beside each shifted direction: its validation accuracy and calibration; weak ones
    warn on stderr."""
    from sharpseek.science.directions import configured_strength

    cfg = settings.directions
    for name in shifts:
        strength = configured_strength(directions, name, cfg)
        console.print(f"  {name}: {escape(strength.summary())}")
        if strength.weak:
            err_console.print(
                f"[yellow]warning:[/] the {name} direction is weak ({escape(strength.reason)}): "
                "the shift may not move it as asked"
            )


def _relative(a: float, b: float) -> str:
    if not (np.isfinite(a) and np.isfinite(b)):
        return "-"
    if a == 0:
        return f"{b - a:+.3g}"
    return f"{(b - a) / abs(a):+.1%}"


# ----------------------------------------------------------------------------------------------
# generate a catalogue
# ----------------------------------------------------------------------------------------------
def generate_cmd(
    count: Annotated[int, typer.Option("--count", min=1, help="number of distinct ARs")],
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="range, e.g. 'tilt<-10' or 'tuf>p90', repeatable"),
    ] = None,
    lat: Annotated[
        list[float] | None,
        typer.Option("--lat", help="latitude [deg]: one for all ARs, or one per AR"),
    ] = None,
    lon: Annotated[
        list[float] | None,
        typer.Option("--lon", help="Stonyhurst longitude [deg]: one for all, or one per AR"),
    ] = None,
    pixel_mm: Annotated[
        float | None, typer.Option("--pixel-mm", help="Mm per model pixel (default: settings)")
    ] = None,
    aspect: Annotated[
        float,
        typer.Option(
            "--aspect",
            help="width/height the exported ARs are stretched to (a generated AR has none; "
            "HARPs: 2.1 at the median); a tilt in --where is then the exported AR's",
        ),
    ] = 1.0,
    hemisphere: Annotated[
        str | None, typer.Option("--hemisphere", help="north or south: sets the sign of --lat")
    ] = None,
    cycle: Annotated[
        int | None, typer.Option("--cycle", min=1, help="solar cycle (Hale's law)")
    ] = None,
    anti_joy: Annotated[bool, typer.Option("--anti-joy", help="tilt against Joy's law")] = False,
    anti_hale: Annotated[
        bool, typer.Option("--anti-hale", help="leading polarity against Hale's law")
    ] = False,
    balance: Annotated[bool, typer.Option("--balance", help="make the net flux zero")] = False,
    nearest: Annotated[
        int, typer.Option("--nearest", min=0, help="nearest real SHARPs per AR (index; 0: none)")
    ] = 3,
    seed: Annotated[int, typer.Option(help="seed of the candidates")] = 0,
    out: Annotated[
        Path, typer.Option("--out", help="FITS path; the CSV gets the same name .csv")
    ] = Path("catalogue.fits"),
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Generate K distinct ARs meeting ranges on their parameters, placed on the Sun, and
    export them as FITS (one image HDU per AR in gauss, CEA WCS) and CSV."""
    from sharpseek.science.catalogue import (
        CatalogueError,
        Placement,
        Range,
        make_catalogue,
        write_csv,
        write_fits,
    )
    from sharpseek.science.plotting import magnetogram_grid
    from sharpseek.search.searcher import nearest_sharps

    settings = _settings(preset, home)
    cfg = settings.directions
    try:
        ranges = [Range.parse(w) for w in where or []]
    except ValueError as err:
        raise _fail(str(err)) from None
    lats = lat or [15.0]
    lons = lon or [0.0]
    for name, values in (("--lat", lats), ("--lon", lons)):
        if len(values) not in (1, count):
            raise _fail(f"{name}: give one value or {count} (one per AR), got {len(values)}")
    if hemisphere is not None:
        if hemisphere.lower() not in ("north", "south"):
            raise _fail(f"--hemisphere {hemisphere!r}: choose north or south")
        sign = 1.0 if hemisphere.lower() == "north" else -1.0
        lats = [sign * abs(v) for v in lats]
    try:
        placements = [
            Placement(
                lat=lats[i if len(lats) > 1 else 0],
                lon=lons[i if len(lons) > 1 else 0],
                pixel_mm=pixel_mm if pixel_mm is not None else cfg.pixel_mm,
                cycle=cycle if cycle is not None else cfg.cycle,
                date_obs=cfg.date_obs,
                aspect=aspect,
            )
            for i in range(count)
        ]
    except CatalogueError as err:
        raise _fail(str(err)) from None
    backend, directions = _served(settings)
    try:
        with backend, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            catalogue = make_catalogue(
                backend.images,
                directions,
                count,
                placements,
                ranges=ranges,
                anti_joy=anti_joy,
                anti_hale=anti_hale,
                balance=balance,
                seed=seed,
                max_candidates=cfg.max_candidates,
                duplicate_correlation=cfg.duplicate_correlation,
                progress=progress,
                nearest=nearest_sharps(nearest, settings=settings) if nearest else None,
            )
    except KeyError as err:
        raise _fail(_key_error(err)) from None
    except ValueError as err:  # CatalogueError included
        raise _fail(str(err)) from None
    for note in catalogue.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fits_path = write_fits(catalogue, out)
    csv_path = write_csv(catalogue, out.with_suffix(".csv"))
    table = Table(title=f"{len(catalogue)} ARs from {catalogue.candidates} candidates")
    for column in ("AR", "lat", "lon", "TUF [Mx]", "PSEP [Mm]", "tilt [deg]", "Joy", "Hale"):
        table.add_column(column)
    for i, e in enumerate(catalogue.entries, start=1):
        q = e.quantities
        table.add_row(
            f"AR{i:04d}",
            f"{e.placement.lat:+.1f}",
            f"{e.placement.lon:+.1f}",
            f"{q['tuf'].value:.3g}",
            f"{q['psep'].value:.3g}",
            f"{q['tilt'].value:+.1f}",
            _flag(q["joy"].value),
            _flag(q["hale"].value),
        )
    console.print(table)
    png = out.with_suffix(".png")
    shown = catalogue.entries[:24]
    magnetogram_grid(
        np.stack([e.image_gauss / 1000.0 for e in shown]),
        png,
        titles=[
            f"AR{i:04d} tilt {e.quantities['tilt'].value:+.0f}" for i, e in enumerate(shown, 1)
        ],
        vmax_gauss=1000.0,
    )
    console.print(f"FITS: {fits_path}\nCSV: {csv_path}\npicture: {png}")


def _flag(value: float) -> str:
    return "-" if not np.isfinite(value) else "yes" if value > 0.5 else "no"


# ----------------------------------------------------------------------------------------------
# invert
# ----------------------------------------------------------------------------------------------
def invert_cmd(
    file: Annotated[Path, typer.Argument(help="a SHARP Br FITS file, or a model-space .npy")],
    starts: Annotated[
        int | None, typer.Option(min=1, help="latent vectors refined together")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(min=1, help="L-BFGS iterations (Adam steps with method adam)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the starts")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="PNG (default: figures dir)")] = None,
    save_z: Annotated[Path | None, typer.Option("--save-z", help="write z_hat as .npy")] = None,
    progress: ProgressOpt = True,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Find the latent vector whose generated image best matches FILE (GAN inversion); write
    original / reconstruction / difference as a PNG."""
    from sharpseek.science.inversion import invert_configured, representation_warning

    settings = _settings(preset, home)
    cfg = settings.directions
    image, mu = _read_image(file)
    _, model = _load(settings)
    started = time.perf_counter()
    try:
        result = invert_configured(
            model, image, cfg, seed=seed, progress=progress, starts=starts, steps=steps
        )
    except ValueError as err:
        raise _fail(f"{file}: {err}") from None
    seconds = time.perf_counter() - started
    where = f" at mu = {mu:.3f}" if mu is not None else ""
    console.print(
        f"{file.name}{where}: reconstruction RMS {result.rms_gauss:.1f} G, "
        f"{result.relative_error:.0%} of the patch's rms (best of {len(result.errors)} starts; "
        f"worst {np.sqrt(result.errors.max()) * 1000:.1f} G; {seconds:.1f} s)"
    )
    warning = representation_warning(result, cfg)
    if warning:
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    if file.suffix.lower() in (".fits", ".fit", ".fts"):  # a real frame: its native values
        from sharpseek.physics.parameters import compute_parameters
        from sharpseek.science.measure import measure_files
        from sharpseek.ui.exports import summary

        rebuilt = {
            k: float(v[0]) for k, v in compute_parameters(result.reconstruction[None]).items()
        }
        console.print(f"the real patch: {summary(measure_files([file])[0])}", soft_wrap=True)
        console.print(f"its reconstruction (generated): {summary(rebuilt)}", soft_wrap=True)
    path = _figure_path(settings, out, f"invert-{file.stem}.png")
    _inversion_png(image, result.reconstruction, path, title=f"{file.name}{where}")
    console.print(f"picture: {path}")
    if save_z is not None:
        np.save(save_z, result.z)
        console.print(f"z_hat: {save_z}")


def _read_image(file: Path) -> tuple[np.ndarray, float | None]:
    """Model-space (128, 128) image of FILE and, for a SHARP, its mu (else None)."""
    from sharpseek.physics.parameters import MODEL_SIZE

    if not file.is_file():
        raise _fail(f"{file}: no such file")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        from sharpseek.data.images import read_npy

        try:
            image = read_npy(file)
        except ValueError as err:
            raise _fail(str(err)) from None
        if image.shape != (MODEL_SIZE, MODEL_SIZE) or not np.isfinite(image).all():
            raise _fail(
                f"{file}: a .npy must hold a finite model-space ({MODEL_SIZE}, {MODEL_SIZE}) "
                f"image (b = B_r / 1000 G in [-1, 1]); got shape {image.shape}"
            )
        return image.astype(np.float32), None
    if suffix not in (".fits", ".fit", ".fts"):
        raise _fail(f"{file}: expected a .fits SHARP Br segment or a .npy model-space image")
    from sharpseek.data.fits import read_sharp
    from sharpseek.data.preprocess import heliocentric_mu, to_model_space

    try:
        sharp = read_sharp(file)
        patch = to_model_space(sharp.data)
    except (OSError, ValueError, KeyError) as err:
        raise _fail(f"{file}: cannot read a Br image ({err})") from None
    meta = sharp.meta
    lat = meta.get("lat_fwt")
    lon = meta.get("lon_fwt")
    if lat is None or lon is None or not (np.isfinite(lat) and np.isfinite(lon)):
        lat = meta.get("crval2")
        lon = (meta.get("crval1") or np.nan) - (meta.get("crln_obs") or np.nan)
    b0 = meta.get("crlt_obs") or 0.0
    mu = heliocentric_mu(lat, lon, b0) if lat is not None else None
    return patch.image, (float(mu) if mu is not None and np.isfinite(mu) else None)


def _inversion_png(image: np.ndarray, reconstruction: np.ndarray, path: Path, title: str):
    from sharpseek.science.directions_plots import inversion_panels

    return inversion_panels(image, reconstruction, path, title=title)


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

    settings = _settings(preset, home)
    backend, directions = _served(settings)
    parameter = parameter.lower()
    hold_list = [h.lower() for h in hold or []] or ["psep" if parameter != "psep" else "tuf"]
    folder = out_dir if out_dir is not None else settings.figures_dir
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with backend, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            paths = [
                dp.boundary_view(
                    backend.images, directions, parameter, folder / f"directions-2d-{parameter}.png"
                ),
                dp.shift_strips(
                    backend.images,
                    directions,
                    backend.generate(seeds=[seed], parameters=False).z[0],
                    parameter,
                    hold_list,
                    folder / f"directions-strips-{parameter}.png",
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
        raise _fail(_key_error(err)) from None
    except ValueError as err:
        raise _fail(str(err)) from None
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
    settings = _settings(preset, home)
    try:
        manifest = load_dataset(open_store(settings), dataset, None).manifest
    except FileNotFoundError as err:
        raise _fail(str(err)) from None
    backend, _ = _served(settings)  # fails in one line without directions
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
