"""Fitting and calibrating a generator's direction set: sample latents, measure the
parameters of the generated images, fit one boundary per parameter, then measure what
shifts along each direction do (the calibration curves).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from sharpseek.physics.definitions import DIRECTION_PARAMETERS
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions.algebra import shift
from sharpseek.science.directions.boundary import DirectionMethod, train_boundary
from sharpseek.science.directions.store import DirectionSet
from sharpseek.science.directions.strength import paired_change

log = logging.getLogger(__name__)


def sample_parameters(
    generate,
    n: int,
    *,
    latent_dim: int,
    seed: int = 0,
    batch_size: int = 512,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sample z ~ N(0, I), generate, and measure every parameter (batched).

    Parameters
    ----------
    generate : callable
        ``generate(z)`` with z float32 (b, latent_dim) -> model-space images (b, 128, 128).

    Returns
    -------
    z : ndarray (n, latent_dim) float32
    parameters : dict of name -> ndarray (n,)
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent_dim)).astype(np.float32)
    parts: dict[str, list[np.ndarray]] = {}
    starts = range(0, n, batch_size)
    if progress:
        starts = tqdm(starts, desc="generate + measure", unit="batch")
    for start in starts:
        images = np.asarray(generate(z[start : start + batch_size]))
        for key, value in compute_parameters(images).items():
            parts.setdefault(key, []).append(np.asarray(value))
    return z, {key: np.concatenate(value) for key, value in parts.items()}


def fit_directions(
    generate,
    *,
    gan_version: str,
    latent_dim: int = 100,
    n: int = 10_000,
    parameters: tuple[str, ...] = DIRECTION_PARAMETERS,
    seed: int = 0,
    batch_size: int = 512,
    progress: bool = False,
    method: DirectionMethod | None = None,
) -> DirectionSet:
    """Fit one boundary per parameter on ``n`` generated images (the paper: 10,000, 70/30),
    by ``method`` (default: the paper's SVM, eps in latent units)."""
    method = method or DirectionMethod()
    z, values = sample_parameters(
        generate, n, latent_dim=latent_dim, seed=seed, batch_size=batch_size, progress=progress
    )
    unknown = [p for p in parameters if p not in values]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; known: {sorted(values)}")
    boundaries = {}
    names = parameters
    if progress:
        names = tqdm(parameters, desc="SVM boundaries", unit="parameter")
    for parameter in names:
        try:
            boundaries[parameter] = train_boundary(
                z, values[parameter], parameter, seed=seed, gan_version=gan_version, method=method
            )
        except ValueError as err:  # e.g. a parameter constant on these images
            log.warning("no direction for %s: %s", parameter, err)
    distribution = {}
    for key, value in values.items():
        finite = np.asarray(value, dtype=float)
        finite = finite[np.isfinite(finite)]
        if len(finite):
            distribution[key] = np.percentile(finite, np.arange(101)).tolist()
    return DirectionSet(
        gan_version, boundaries, n, seed, latent_dim, distribution=distribution, method=method
    )


def calibrate(
    generate,
    directions: DirectionSet,
    *,
    along: tuple[str, ...] | None = None,
    eps: np.ndarray | None = None,
    n_z: int = 200,
    seed: int = 1,
    progress: bool = False,
    measure=None,
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """How every parameter's distribution moves along each direction.

    For each direction in ``along`` and each eps, the same ``n_z`` latent vectors are shifted
    by eps along it (:meth:`DirectionSet.step`: eps in the set's unit) and every parameter is
    measured: its median and 16th/84th percentiles over the vectors, and, paired with the
    same vectors unshifted, the share of vectors where it rose (``rises``; a NaN before or
    after counts as not risen) and the median relative change (``median_relative_change``,
    (after - before) / |before| over finite pairs with before != 0; NaN where there are
    none). The curves are stored in ``directions.calibration`` and returned as
    ``{direction: {"eps": [...], parameter: {"median", "p16", "p84", "rises",
    "median_relative_change": [...]}}}``.

    ``measure``: images (n, 128, 128) -> {name: (n,)}, what is measured on each image
    (default :func:`~sharpseek.physics.parameters.compute_parameters`; the flare direction adds its
    classifier's probability, :mod:`sharpseek.science.flare_direction`).
    """
    measure = measure or compute_parameters
    eps = np.linspace(-3, 3, 13) if eps is None else np.asarray(eps, dtype=float)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_z, directions.latent_dim)).astype(np.float32)
    measured = measure(np.asarray(generate(z)))
    start = {k: np.asarray(v, dtype=float) for k, v in measured.items()}
    out: dict[str, dict[str, Any]] = {}
    names = along or tuple(directions.boundaries)
    if progress:
        names = tqdm(names, desc="calibration", unit="direction")
    for name in names:
        step = directions.step(name)
        curves: dict[str, Any] = {"eps": eps.tolist()}
        for e in eps:
            images = np.asarray(generate(shift(z, step, e).astype(np.float32)))
            for key, value in measure(images).items():
                value = np.asarray(value, dtype=float)
                finite = value[np.isfinite(value)]
                q = np.percentile(finite, [16, 50, 84]) if len(finite) else [np.nan] * 3
                c = curves.setdefault(
                    key,
                    {"median": [], "p16": [], "p84": [], "rises": [], "median_relative_change": []},
                )
                c["p16"].append(float(q[0]))
                c["median"].append(float(q[1]))
                c["p84"].append(float(q[2]))
                rises, change = paired_change(start[key], value)
                c["rises"].append(rises)
                c["median_relative_change"].append(change)
        out[name] = curves
    directions.calibration.update(out)
    return out
