"""The linear algebra of directions: small pure functions, arrays in and arrays out.

:func:`orthonormal_basis` (Gram-Schmidt of the held normals) and :func:`condition_direction`
(conditional manipulation, with a diagnostic), :func:`step_scale` (length of a unit step in
the method's unit of eps), :func:`shift` (raw latent shift) and :func:`project_2d` (the
paper's Fig. 4 view). Shapes: ``z`` (n, d); directions (d,) unit vectors or (k, d) stacks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from sharpseek.science.directions.boundary import (
    DEGENERATE_NORM,
    MIN_GAIN,
    REDUNDANT_COSINE,
    STEP_UNITS,
)


@dataclass(frozen=True)
class ConditionReport:
    """How a direction relates to its conditions, before and after conditioning.

    ``cos_before[i]`` and ``cos_after[i]`` are the cosines between the direction and the
    i-th condition's normal (after is ~0 by construction); ``kept_norm`` is the length of
    the direction left after removing the conditions' span (1: nothing removed).
    """

    cos_before: np.ndarray
    cos_after: np.ndarray
    kept_norm: float
    redundant: list[int]


def orthonormal_basis(vectors: np.ndarray, *, tolerance: float = 1e-8) -> np.ndarray:
    """Gram-Schmidt: an orthonormal basis (m, d) of the span of ``vectors`` (k, d), m <= k.

    Modified Gram-Schmidt, each vector orthogonalised twice ("twice is enough") so nearly
    parallel normals (|cos| ~ 0.95 is common) stay orthogonal to machine precision; a vector
    already in the span of the earlier ones (remaining length < ``tolerance`` times its own)
    adds nothing.
    """
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    basis: list[np.ndarray] = []
    for v in rows:
        r = v.copy()
        for _ in range(2):
            for b in basis:
                r -= (b @ r) * b
        length = float(np.linalg.norm(r))
        if length > tolerance * max(float(np.linalg.norm(v)), 1e-300):
            basis.append(r / length)
    return np.stack(basis) if basis else np.zeros((0, rows.shape[1]))


def condition_direction(
    direction: np.ndarray, conditions: np.ndarray
) -> tuple[np.ndarray, ConditionReport]:
    """Remove the span of ``conditions`` from ``direction`` (conditional manipulation).

    One condition: n = (n1 - (n1 . n2) n2) / |...|. Several: the projection onto the
    orthogonal complement of their span, x - Q Q^T x with Q an orthonormal basis of the
    conditions (:func:`orthonormal_basis`), renormalised: the same as the paper's
    x - A (A^T A)^-1 A^T x, also when conditions are (nearly) dependent.

    Parameters
    ----------
    direction : ndarray (d,)
    conditions : ndarray (k, d) or (d,)

    Raises
    ------
    ValueError
        When the direction degenerates: the conditions span (almost) the direction itself
        (e.g. a condition equal to it).

    Warns
    -----
    UserWarning
        For a redundant condition: one already near-orthogonal to the direction.
    """
    x = _unit(np.asarray(direction, dtype=np.float64), "direction")
    a = np.atleast_2d(np.asarray(conditions, dtype=np.float64))  # (k, d)
    if a.shape[1] != x.shape[0]:
        raise ValueError(f"conditions must have shape (k, {x.shape[0]}), got {a.shape}")
    a = np.stack([_unit(row, f"condition {i}") for i, row in enumerate(a)])
    cos_before = a @ x
    q = orthonormal_basis(a)  # (m, d)
    residual = x - q.T @ (q @ x)
    kept = float(np.linalg.norm(residual))
    if kept < DEGENERATE_NORM:
        raise ValueError(
            "the conditioned direction degenerates: the conditions span the direction itself "
            f"(|remaining| = {kept:.2e}); drop a condition equal or parallel to it"
        )
    out = residual / kept
    redundant = [i for i, c in enumerate(cos_before) if abs(c) < REDUNDANT_COSINE]
    for i in redundant:
        warnings.warn(
            f"condition {i} is redundant: it is already near-orthogonal to the direction "
            f"(cos = {cos_before[i]:+.3f}); holding it changes little",
            UserWarning,
            stacklevel=2,
        )
    return out, ConditionReport(cos_before, a @ out, kept, redundant)


def step_scale(
    normal: np.ndarray, conditioned: np.ndarray, step: str = "latent", gain: float | None = None
) -> float:
    """Latent length of a step of eps = 1 along ``conditioned`` in the unit ``step``.

    ``"latent"``: 1. ``"sigma"``: 1 / (n . c), so the parameter's own decision value n . z
    (standard deviation 1 over z ~ N(0, I) for a unit normal n) moves by exactly eps also
    along the conditioned direction c; without conditions c = n and the scale is 1.
    ``"spread"``: 1 / (gain (n . c)): the parameter's fitted response moves by eps of its
    standard deviations (``gain`` below :data:`MIN_GAIN` counts as MIN_GAIN).
    """
    if step == "latent":
        return 1.0
    if step not in STEP_UNITS:
        raise ValueError(f"step unit {step!r} unknown; use one of {STEP_UNITS}")
    cos = float(np.dot(normal, conditioned))
    if cos < DEGENERATE_NORM:
        raise ValueError(
            f"the conditioned direction is (nearly) orthogonal to the parameter's own normal "
            f"(cos = {cos:.2e}): a step in sigma of its decision value is unbounded"
        )
    if step == "sigma":
        return 1.0 / cos
    if gain is None or not np.isfinite(gain):
        raise ValueError(
            "eps in 'spread' units needs the direction's response gain; refit the directions"
        )
    return 1.0 / (max(float(gain), MIN_GAIN) * cos)


def shift(z: np.ndarray, directions: np.ndarray, eps: float | np.ndarray) -> np.ndarray:
    """z' = z + sum_i eps_i n_i, for one direction (d,) or several (k, d) at once.

    Parameters
    ----------
    z : ndarray (n, d) or (d,)
    directions : ndarray (d,) or (k, d)
    eps : float or ndarray (k,)
    """
    z = np.asarray(z, dtype=np.float64)
    n = np.atleast_2d(np.asarray(directions, dtype=np.float64))  # (k, d)
    e = np.atleast_1d(np.asarray(eps, dtype=np.float64))  # (k,)
    d = z.shape[-1]
    if n.shape[1] != d:
        raise ValueError(f"directions must have shape (k, {d}) to match z, got {n.shape}")
    if e.shape != (n.shape[0],):
        raise ValueError(f"eps must have one value per direction ({n.shape[0]}), got {e.shape}")
    return z + e @ n


def project_2d(z: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """The paper's Fig. 4 view: z'1 = z1, z'2 = (1/n2) sum_{i>=2} n_i z_i, shape (n, 2).

    The boundary n . z + b = 0 becomes the line z'2 = -(n1 z'1 + b) / n2.
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    n = np.asarray(normal, dtype=np.float64)
    if abs(n[1]) < 1e-12:
        raise ValueError("the 2-D view needs n_2 != 0")
    return np.stack([z[:, 0], z[:, 1:] @ n[1:] / n[1]], axis=1)


def _unit(v: np.ndarray, name: str) -> np.ndarray:
    if v.ndim != 1:
        raise ValueError(f"{name} must be a vector (d,), got shape {v.shape}")
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"{name} must be a finite non-zero vector")
    return v / norm
