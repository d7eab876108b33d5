"""The measured hold of a latent shift: "+1.5 along TUF holding R" as the images measure it.

The paper's hold is linear: the held parameters' normals are projected out of the shifted
direction (:func:`~sharpseek.science.directions.algebra.condition_direction`). That keeps the
held *decision values* n . z fixed, which keeps the held *parameters* fixed only where they
are linear in z. On the demo GAN they are not: TUF's and R's directions share most of their
length, the conditioned direction keeps little of TUF's, and a step long enough to raise TUF
by eps throws z where R moves by 14 interquartile ranges (docs/directions.md).

The measured hold (``DirectionMethod.hold == "measured"``) asks the images instead. First the
plain shift, z1 = z0 + sum_p eps_p n_p, so eps means the same with and without a hold. Then
z1 is corrected by damped Gauss-Newton steps until the measured held parameters are back at
their start values and the shifted ones at their values after the plain shift::

    r_j(z)  = (v_j(z) - goal_j) / IQR_j                  v by compute_parameters (exact)
    A_ji    = d r_j / d z_i                              through the surrogates, at each z
    dz      = -P A^T (A P A^T + damping I)^-1 r         the smallest step that zeroes r

with IQR_j the interquartile range of parameter j over the set's fitting sample, and P the
projection away from the normals of the parameters without a surrogate that are shifted or
held (their decision values stay as the linear rule leaves them). The residual is always
measured exactly; the surrogates (:mod:`sharpseek.physics.surrogates`) only give the slope,
so an error in them costs iterations, not accuracy. (Tried and not kept: one surrogate slope
at z1 updated by Broyden's secant rule after each measured step, which saves the gradients of
every later iteration: on the demo GAN it left R's held TUF 0.5 IQR away where this reaches
0.03; docs/directions.md.) Each row stops at ``HOLD_TOLERANCE`` and
keeps its best iterate. A held parameter undefined at the start (PSEP of a unipolar image)
is not held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sharpseek.physics.parameters import compute_parameters
from sharpseek.physics.surrogates import SURROGATE_PARAMETERS, soft_parameters
from sharpseek.science.directions.algebra import orthonormal_basis
from sharpseek.science.directions.shifts import apply_shifts, shift_basis
from sharpseek.science.directions.store import DirectionSet

__all__ = [
    "HOLD_ITERATIONS",
    "HOLD_MAX_STEP",
    "HOLD_TOLERANCE",
    "MEASURED_PARAMETERS",
    "HoldResult",
    "gauss_newton_step",
    "linear_holds",
    "measured_hold",
    "shift_and_hold",
    "surrogate_jacobian",
]

#: The parameters a measured hold keeps: those with a differentiable surrogate.
MEASURED_PARAMETERS = SURROGATE_PARAMETERS
#: Gauss-Newton iterations at most (on the demo GAN 4-6 reach the tolerance).
HOLD_ITERATIONS = 8
#: A row is done when every constraint is within this share of its parameter's IQR.
HOLD_TOLERANCE = 0.02
#: The longest correction step [latent units] (the prior's shell has radius ~sqrt(d) = 10).
HOLD_MAX_STEP = 1.5
#: Tikhonov damping of the Gauss-Newton system, in (IQR per latent unit)^2.
HOLD_DAMPING = 1e-2
#: Added to R's surrogate before its log (an image with no R has no slope to follow).
_R_FLOOR = 1e-6


@dataclass(frozen=True)
class HoldResult:
    """A measured hold: the corrected latents ``z`` (n, d), each row's largest remaining
    |v - goal| / IQR over its constraints ``residual`` (n,), and ``iterations`` run."""

    z: np.ndarray
    residual: np.ndarray
    iterations: int


def gauss_newton_step(
    jacobian: np.ndarray,
    residual: np.ndarray,
    *,
    fixed: np.ndarray | None = None,
    damping: float = HOLD_DAMPING,
    max_step: float = HOLD_MAX_STEP,
) -> np.ndarray:
    """The damped minimum-norm step of each row towards r = 0.

    Parameters
    ----------
    jacobian : ndarray (n, k, d), d r_j / d z_i per row
    residual : ndarray (n, k); a NaN drops that constraint of that row
    fixed : ndarray (m, d), optional; directions the step must be orthogonal to
    damping : lambda of dz = -P A^T (A P A^T + lambda I)^-1 r
    max_step : steps longer than this [latent units] are shortened to it

    Returns
    -------
    ndarray (n, d); zero for a row without a finite constraint.
    """
    a = np.asarray(jacobian, np.float64)
    r = np.asarray(residual, np.float64)
    active = np.isfinite(r) & np.isfinite(a).all(axis=2)  # (n, k)
    a = np.where(active[:, :, None], a, 0.0)
    r = np.where(active, r, 0.0)
    if fixed is not None and len(fixed):
        q = orthonormal_basis(np.atleast_2d(fixed))  # (m, d)
        a = a - (a @ q.T) @ q
    k = a.shape[1]
    gram = a @ a.transpose(0, 2, 1) + damping * np.eye(k)  # (n, k, k)
    step = -np.einsum("nkd,nk->nd", a, np.linalg.solve(gram, r[:, :, None])[:, :, 0])
    norm = np.linalg.norm(step, axis=1, keepdims=True)
    return step * np.minimum(1.0, max_step / np.maximum(norm, 1e-12))


def surrogate_jacobian(
    generator: torch.nn.Module, z: np.ndarray, names: Sequence[str], batch_size: int = 256
) -> np.ndarray:
    """d s_j / d z of each image's surrogate s_j, in logarithmic form for the fluxes.

    Returns
    -------
    ndarray (n, k, d): d log s / d z for ``tuf`` and ``r`` (multiply by the measured value
    for d v / d z: the units of the surrogate drop out), d s / d z [model px] for ``psep``.
    """
    device = next(generator.parameters()).device
    out = np.empty((len(z), len(names), z.shape[1]))
    for start in range(0, len(z), batch_size):
        # a caller may run under no_grad or inference_mode (a server's forward pass)
        with torch.inference_mode(False), torch.enable_grad():
            zt = torch.tensor(z[start : start + batch_size], dtype=torch.float32, device=device)
            zt.requires_grad_(True)
            values, _ = soft_parameters(generator(zt))
            outputs = {
                "tuf": torch.log(values["tuf"]),
                "psep": values["psep"],
                "r": torch.log(values["r"] + _R_FLOOR),
            }
            for j, name in enumerate(names):
                (grad,) = torch.autograd.grad(
                    outputs[name].sum(), zt, retain_graph=j < len(names) - 1
                )
                out[start : start + len(zt), j] = grad.double().cpu().numpy()
    return out


def _measure(model, z: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(n, k) exact parameters ``names`` of the images of ``z``."""
    params = compute_parameters(model.generate(z.astype(np.float32)))
    return np.stack([np.asarray(params[name], np.float64) for name in names], axis=1)


def _spreads(directions: DirectionSet, names: Sequence[str]) -> np.ndarray:
    """(k,) interquartile range of each parameter over the set's fitting sample."""
    spreads = []
    for name in names:
        table = directions.distribution.get(name)
        if not table:
            raise ValueError(
                f"directions {directions.gan_version!r} store no distribution of {name!r}: a "
                "measured hold needs it; refit them with `sharpseek directions fit`"
            )
        spreads.append(max(float(table[75] - table[25]), 1e-12))
    return np.array(spreads)


def _surrogate_slopes(
    model, z: np.ndarray, values: np.ndarray, names: Sequence[str], spread: np.ndarray
) -> np.ndarray:
    """(n, k, d) d r / d z from the surrogates: d v / d z = v d log s / d z for the fluxes,
    d s / d z for PSEP, over the spreads."""
    slope = surrogate_jacobian(model.generator, z, names)
    scale = np.ones_like(values)
    for j, name in enumerate(names):
        if name != "psep":
            scale[:, j] = np.nan_to_num(values[:, j])
    return slope * (scale / spread)[:, :, None]


def measured_hold(
    model,
    directions: DirectionSet,
    z_start: np.ndarray,
    z_shifted: np.ndarray,
    *,
    keep: Sequence[str],
    hold: Sequence[str],
    fixed: Sequence[str] = (),
    iterations: int = HOLD_ITERATIONS,
    tolerance: float = HOLD_TOLERANCE,
) -> HoldResult:
    """Correct ``z_shifted`` (n, d) so that the ``hold`` parameters measure what they did at
    ``z_start`` and the ``keep`` ones what they do at ``z_shifted`` (module docstring).

    Parameters
    ----------
    model : a :class:`~sharpseek.models.inference.GeneratorModel` (``generate`` and the
        differentiable ``generator``)
    keep, hold : names among :data:`MEASURED_PARAMETERS`
    fixed : parameters whose normals the correction must not move along
    """
    unknown = [n for n in (*keep, *hold) if n not in MEASURED_PARAMETERS]
    if unknown:
        raise ValueError(f"a measured hold keeps {', '.join(MEASURED_PARAMETERS)}; not {unknown}")
    names = [*keep, *hold]
    spread = _spreads(directions, names)
    normals = np.stack([directions[f].normal for f in fixed]) if fixed else None
    z = np.array(z_shifted, np.float64, copy=True)
    values = _measure(model, z, names)  # the shifted images, measured once for goal and start
    start = _measure(model, np.asarray(z_start, np.float64), hold)
    goal = np.concatenate([values[:, : len(keep)], start], axis=1)
    best, best_error = z.copy(), np.full(len(z), np.inf)
    active = np.arange(len(z))
    run = 0
    for run in range(iterations + 1):
        if run:
            values = _measure(model, z[active], names)
        residual = (values - goal[active]) / spread  # (a, k)
        # a constraint without a goal does not count; one whose value became undefined does
        counted = np.where(np.isfinite(goal[active]), np.abs(residual), 0.0)
        error = np.nan_to_num(counted, nan=np.inf).max(axis=1)
        better = error < best_error[active]
        best[active[better]] = z[active[better]]
        best_error[active[better]] = error[better]
        todo = error > tolerance
        if run == iterations or not todo.any():
            break
        active, values, residual = active[todo], values[todo], residual[todo]
        residual = np.where(np.isfinite(goal[active]), residual, np.nan)
        jacobian = _surrogate_slopes(model, z[active], values, names, spread)
        z[active] = z[active] + gauss_newton_step(jacobian, residual, fixed=normals)
    return HoldResult(z=best, residual=best_error, iterations=run)


def linear_holds(directions: DirectionSet, hold: Sequence[str]) -> list[str]:
    """The ``hold`` parameters the set's hold method keeps by the linear rule (projected out
    of the shifted directions): all of them for ``"linear"``, those without a surrogate for
    ``"measured"``."""
    if directions.method.hold == "linear":
        return list(hold)
    return [h for h in hold if h not in MEASURED_PARAMETERS]


def shift_and_hold(
    model,
    directions: DirectionSet,
    z: np.ndarray,
    shifts: Mapping[str, float],
    hold: Sequence[str] = (),
) -> np.ndarray:
    """z' of a named shift with held parameters, by the set's hold method: the one call every
    road that shifts a latent makes where a generator is at hand (serving, ``sharpseek
    shift``, hence search and the UI).

    ``directions.method.hold == "linear"`` (the paper's) is
    :func:`~sharpseek.science.directions.shifts.apply_shifts`. ``"measured"``: held
    parameters with a surrogate (TUF, PSEP, R) are held by measurement (module docstring);
    the others, if any, by the linear rule as before.

    Returns
    -------
    ndarray float64, the shape of ``z``. Raises as :func:`apply_shifts` does.
    """
    linear = linear_holds(directions, hold)
    if not shifts or len(linear) == len(hold):
        return apply_shifts(directions, z, shifts, hold)
    shift_basis(directions, list(shifts), hold)  # the linear rule's checks and messages
    shifted = apply_shifts(directions, z, shifts, linear)
    rows = np.atleast_2d(shifted)
    result = measured_hold(
        model,
        directions,
        np.atleast_2d(np.asarray(z, np.float64)),
        rows,
        keep=[p for p in shifts if p in MEASURED_PARAMETERS],
        hold=[h for h in hold if h in MEASURED_PARAMETERS],
        fixed=[*[p for p in shifts if p not in MEASURED_PARAMETERS], *linear],
    )
    return result.z.reshape(shifted.shape)
