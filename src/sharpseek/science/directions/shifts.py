"""Named latent shifts: the one implementation every shell and server calls
(:func:`apply_shifts`), the eps rule (:func:`check_eps`, :data:`LATENT_LIMIT`) and the
diagnostic of held quantities (:func:`held_changes`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions.algebra import shift
from sharpseek.science.directions.store import DirectionSet


def shift_basis(
    directions: DirectionSet, names: Sequence[str], hold: Sequence[str] = ()
) -> np.ndarray:
    """The steps (eps = 1) along ``names``, each conditioned on holding ``hold``, shape
    (k, d) (:meth:`DirectionSet.step`: unit vectors for eps in latent units).

    Raises
    ------
    KeyError
        A name in ``names`` or ``hold`` without a direction (the message lists the known).
    ValueError
        A parameter both moved and held, or conditions that span a direction.
    """
    for name in [*names, *hold]:
        directions[name]  # raises a KeyError naming the known ones
    both = sorted(set(names) & set(hold))
    if both:
        raise ValueError(f"cannot hold {both} while shifting along them")
    return np.stack([directions.step(p, hold=tuple(hold)) for p in names])  # (k, d)


def apply_shifts(
    directions: DirectionSet,
    z: np.ndarray,
    shifts: Mapping[str, float],
    hold: Sequence[str] = (),
) -> np.ndarray:
    """z' = z + sum_p eps_p n_p: the one implementation of a named latent shift.

    Every road that shifts latents (the serving protocol behind both model backends, search's
    latent queries, ``sharpseek shift`` and the UI) calls this. Each direction n_p is the unit
    normal of parameter p's boundary conditioned on the ``hold`` parameters (their normals
    projected out, :func:`condition_direction`), so held quantities move as little as the
    latent geometry allows.

    Parameters
    ----------
    directions : DirectionSet
        The generator's directions (latent dimension d) and their method.
    z : ndarray (n, d) or (d,)
        Latent vectors.
    shifts : {parameter: eps}
        eps is a signed step in the set's unit (``directions.method.step``: latent units
        along the unit direction, or standard deviations of the parameter's own decision
        value, kept when holding; :meth:`DirectionSet.step`). Empty: ``z`` comes back
        unchanged (as float64).
    hold : parameters held fixed while shifting (conditions); needs ``shifts``.

    Returns
    -------
    ndarray float64, the shape of ``z``.

    Raises
    ------
    KeyError
        An unknown parameter in ``shifts`` or ``hold``; the message lists the known ones.
    ValueError
        ``z`` not (n, d) or (d,) with d = ``directions.latent_dim``; a non-finite eps; a
        parameter both shifted and held; ``hold`` without ``shifts``; conditions that span a
        direction (it would degenerate).
    """
    z = np.asarray(z, dtype=np.float64)
    d = directions.latent_dim
    if z.ndim not in (1, 2) or z.shape[-1] != d:
        raise ValueError(f"z must have shape (n, {d}) or ({d},), got {z.shape}")
    if not shifts:
        if hold:
            raise ValueError(
                f"hold {list(hold)} given without any shifts: nothing to hold fixed against"
            )
        return z
    names = list(shifts)
    eps = np.array([check_eps(name, shifts[name]) for name in names])  # (k,)
    basis = shift_basis(directions, names, hold)  # (k, d)
    return shift(z, basis, eps)


#: The largest |eps| of a shift (in the set's step units: latent, sigma or spread) and
#: |component| of a latent vector anything accepts. The prior is N(0, 1) per component and
#: calibrated shifts span a few units (directions.calibration_eps_max): 100 is far outside
#: anything the GAN was trained on, and values near float32's range overflow the generator
#: into NaN images.
LATENT_LIMIT = 100.0


def check_eps(name: str, value: Any) -> float:
    """``value`` as the eps of a shift along ``name``: a finite number with
    |eps| <= :data:`LATENT_LIMIT`; ValueError naming the direction and the value otherwise."""
    try:
        eps = float(value)
    except (TypeError, ValueError, OverflowError):
        eps = float("nan")
    if isinstance(value, bool) or not np.isfinite(eps):
        raise ValueError(f"shift of {name!r} must be a finite number, got {value!r}")
    if abs(eps) > LATENT_LIMIT:
        raise ValueError(
            f"shift of {name!r} is {value!r}, beyond the limit of +-{LATENT_LIMIT:g} "
            "(calibrated shifts span a few units)"
        )
    return eps


def held_changes(
    generate,
    directions: DirectionSet,
    parameter: str,
    hold: tuple[str, ...] | list[str],
    *,
    eps: np.ndarray | None = None,
    n_z: int = 100,
    seed: int = 2,
) -> dict[str, Any]:
    """How much ``parameter`` and each held quantity move along the plain and the
    conditioned direction of ``parameter`` (the diagnostic of conditional manipulation).

    The same ``n_z`` latent vectors are shifted by each eps along n (plain) and along n
    conditioned on ``hold``; every parameter is measured.

    Returns
    -------
    dict with ``eps`` (m,), ``cos_before`` {held: cos(n, n_held)}, and for "plain" and
    "conditioned": {name: {"median": (m,) medians over z, "spearman": Spearman rank
    correlation of the value with eps over all (z, eps) pairs, "change": median over z of
    |value(eps_max) - value(eps_min)| / (p84 - p16 of the generator's distribution)}} for
    ``parameter`` and each held name. ``change`` is in units of the parameter's natural
    spread, so 0.1 reads "moved a tenth of the usual spread".
    """
    eps = np.linspace(-2, 2, 5) if eps is None else np.asarray(eps, dtype=float)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_z, directions.latent_dim))
    plain = directions[parameter].normal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # redundancy is reported by cos_before
        conditioned = directions.step(parameter, hold=tuple(hold))
    out: dict[str, Any] = {
        "eps": eps.tolist(),
        "cos_before": {h: float(plain @ directions[h].normal) for h in hold},
    }
    for label, n in (("plain", plain), ("conditioned", conditioned)):
        values: dict[str, list[np.ndarray]] = {}
        for e in eps:
            params = compute_parameters(np.asarray(generate(shift(z, n, e).astype(np.float32))))
            for name in (parameter, *hold):
                values.setdefault(name, []).append(np.asarray(params[name], dtype=float))
        report = {}
        for name, rows in values.items():
            grid = np.stack(rows)  # (m, n_z)
            table = directions.distribution.get(name)
            spread = (table[84] - table[16]) if table else np.nan
            ok = np.isfinite(grid)
            e_all = np.repeat(eps[:, None], n_z, axis=1)[ok]
            rho = float(spearmanr(e_all, grid[ok]).statistic) if ok.sum() > 3 else float("nan")
            ends = np.abs(grid[-1] - grid[0])
            ends = ends[np.isfinite(ends)]
            change = float(np.median(ends) / spread) if len(ends) and spread > 0 else float("nan")
            report[name] = {
                "median": [float(np.nanmedian(r)) if np.isfinite(r).any() else None for r in rows],
                "spearman": rho,
                "change": change,
            }
        out[label] = report
    return out
