"""``sharpseek shift``: move a seed's AR along physical directions or to physical targets,
holding others; before/after table, optional look-alike outlook, a PNG.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import (
    AlongOpt,
    HoldOpt,
    HomeOpt,
    PresetOpt,
    ShiftOpt,
    parse_shifts,
    settings_from,
)
from sharpseek.cli.served import (
    console,
    err_console,
    fail,
    figure_path,
    key_error_text,
    served,
)

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).


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
    try:
        shifts = parse_shifts(shift, along)
    except ValueError as err:
        raise fail(str(err)) from None
    hold_list = [h.strip().lower() for h in hold or []]
    if bool(shifts) == bool(target):
        raise fail("give either --shift PARAMETER=EPS or --target (e.g. tuf=x2), not both")
    settings = settings_from(preset, home)
    backend, directions = served(settings)
    with backend:
        z0 = backend.generate(seeds=[seed], parameters=False).z[0]
        z1, result = _shifted(backend, directions, z0, shifts, target or [], hold_list)
        generated = backend.generate(np.stack([z0, z1]).astype(np.float32))
        outlooks = _outlooks(settings, backend, directions, generated.images) if outlook else []
    if shifts:
        console.print(
            "requested shift: "
            + ", ".join(f"{k} eps = {v:+g}" for k, v in shifts.items())
            + (f" holding {', '.join(hold_list)}" if hold_list else "")
            + f" ({directions.method.describe()})"
        )
        _print_strengths(directions, shifts, settings)
    _print_before_after(seed, generated, hold_list)
    if result is not None:
        _print_targets(result)
    for line in outlooks:
        console.print(escape(line))
    path = figure_path(settings, out, f"shift-seed{seed}.png")
    _shift_png(seed, generated.images, generated.parameters, path)
    console.print(f"picture: {path}")


def _shifted(
    backend,
    directions,
    z0: np.ndarray,
    shifts: dict[str, float],
    target: list[str],
    hold_list: list[str],
):
    """(shifted z (d,), the TargetResult or None): ``z0`` moved by ``shifts`` or to the
    ``target`` specs; the library's warnings printed, its errors a one-line exit 2."""
    from sharpseek.science.directions import Target, solve_targets

    result = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            if shifts:
                # the backend shifts (the set's hold method runs where the generator is)
                z = z0[None].astype(np.float32)
                z1 = backend.generate(z, shifts=shifts, hold=hold_list, parameters=False).z[0]
            else:
                targets = [Target.parse(t) for t in target]
                held_shift = backend.held_shift(z0, [t.parameter for t in targets], hold_list)
                result = solve_targets(
                    backend.images, directions, z0, targets, hold=hold_list, shift=held_shift
                )
                z1 = result.z
        for w in caught:
            if issubclass(w.category, UserWarning):
                err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    except KeyError as err:
        raise fail(key_error_text(err)) from None
    except ValueError as err:
        raise fail(str(err)) from None
    return z1, result


def _print_before_after(seed: int, generated, hold_list: list[str]) -> None:
    """The table of the shown parameters before and after the shift (held ones marked)."""
    from sharpseek.physics.definitions import PARAMETER_UNITS, SHOWN_PARAMETERS

    params = generated.parameters
    table = Table(title=f"seed {seed}: GAN {generated.gan_version}")
    for column in ("parameter", "unit", "before", "after", "change"):
        table.add_column(column)
    for name in SHOWN_PARAMETERS:
        a, b = float(params[name][0]), float(params[name][1])
        mark = " (held)" if name in hold_list else ""
        table.add_row(name + mark, PARAMETER_UNITS[name], f"{a:.4g}", f"{b:.4g}", _relative(a, b))
    console.print(table)


def _print_targets(result) -> None:
    """Requested against achieved values of a target solve, and whether it converged."""
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


def _shift_png(seed: int, images: np.ndarray, params, path: Path) -> None:
    """The before/after pair (2, 128, 128) as one PNG with TUF, PSEP, R and the centroids."""
    from sharpseek.science.plotting import magnetogram_grid

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
            why = key_error_text(err) if isinstance(err, KeyError) else str(err)
            raise fail(f"no outlook: {why}") from None
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
