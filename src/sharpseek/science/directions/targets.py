"""Targets in physical terms ("make it so"): reach a value, a factor or a percentile of
parameters by damped Newton steps on the measured parameters along their directions.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sharpseek.physics.definitions import DIRECTION_PARAMETERS
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions.hold import linear_holds
from sharpseek.science.directions.shifts import shift_basis
from sharpseek.science.directions.store import DirectionSet


@dataclass(frozen=True)
class Target:
    """A request on one parameter: ``kind`` is "value" (reach ``amount``), "factor" (reach
    ``amount`` times the start value) or "above"/"below" (pass the ``amount``-th percentile
    of the generator's distribution)."""

    parameter: str
    kind: str
    amount: float

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse ``tuf=2x`` (or ``tuf=x2``), ``psep=40``, ``r>p90`` or ``tilt<p10``."""
        spec = text.replace(" ", "").lower()
        # "x2" (times two) is read as "2x"
        spec = re.sub(r"=x([-+0-9.e]+)$", r"=\1x", spec)
        m = re.fullmatch(r"([a-z_]+)(=|>|<)(p?)([-+0-9.e]+)(x?)", spec)
        if not m:
            raise ValueError(
                f"target {text!r} not understood; write e.g. 'tuf=x2' (twice the start), "
                "'psep=40' (a value), 'r>p90' (above the 90th percentile)"
            )
        name, op, pct, number, times = m.groups()
        amount = float(number)
        if op == "=" and pct:
            raise ValueError(f"target {text!r}: use > or < with a percentile")
        if op in "<>":
            if not pct:
                raise ValueError(f"target {text!r}: a bound needs a percentile, e.g. 'r>p90'")
            if not 0 <= amount <= 100:
                raise ValueError(f"target {text!r}: percentile must lie in 0..100")
            return cls(name, "above" if op == ">" else "below", amount)
        return cls(name, "factor" if times else "value", amount)


@dataclass
class TargetResult:
    """What :func:`solve_targets` reached: requested against achieved, per parameter."""

    z: np.ndarray  # (d,) the final latent vector
    eps: np.ndarray  # (k,) shifts along the (conditioned) target directions
    start: dict[str, float]
    requested: dict[str, float]
    achieved: dict[str, float]
    held_start: dict[str, float]
    held_end: dict[str, float]
    converged: bool
    iterations: int
    warnings: list[str] = field(default_factory=list)

    def relative_errors(self) -> dict[str, float]:
        return {
            k: abs(self.achieved[k] - v) / max(abs(v), 1e-12) for k, v in self.requested.items()
        }


def solve_targets(
    generate,
    directions: DirectionSet,
    z0: np.ndarray,
    targets: list[Target],
    *,
    hold: tuple[str, ...] | list[str] = (),
    tolerance: float = 0.03,
    max_iterations: int = 25,
    max_step: float = 1.0,
    max_eps: float = 6.0,
    shift: Callable[[np.ndarray], np.ndarray] | None = None,
) -> TargetResult:
    """Shift ``z0`` along the target parameters' directions until they reach their targets.

    With the linear hold (``directions.method.hold``, the paper's) the directions of the
    targets are conditioned on the ``hold`` parameters (their boundaries' normals are
    projected out), so held quantities change as little as the latent geometry allows. With
    the measured hold, whose correction keeps the shifted parameters at their plain shift's
    values, the solver finds the eps of the plain shift (conditioned only on held parameters
    without a surrogate) and ``shift`` applies them with the hold. The result reports how
    much the held ones moved. The shifts are found by damped Newton steps on the measured
    parameters (a finite-difference Jacobian of the k targets against their k directions):
    units of the physics, not of the SVM normal.

    Parameters
    ----------
    generate : callable
        ``generate(z)`` float32 (b, d) -> model-space images (b, 128, 128).
    z0 : ndarray (d,)
    targets : list of Target
    hold : parameters to keep near their start values.
    tolerance : relative error at which a value target counts as reached.
    max_eps : beyond this |eps| the request leaves the region the directions were fitted and
        calibrated on: the solver stops there and says so.
    shift : eps (k,) -> the latent (d,) of that shift with the ``hold`` (e.g. a backend's
        generate with shifts and hold; :func:`~sharpseek.science.directions.shift_and_hold`):
        the result's z and its achieved and held values. None: z0 + eps @ basis.
    """
    z0 = np.asarray(z0, dtype=np.float64).reshape(-1)
    names = _check_request(directions, z0, targets, hold)
    shift_basis(directions, names, hold)  # the hold's own checks and messages
    basis = shift_basis(directions, names, linear_holds(directions, hold))  # (k, d)

    def measure(eps_rows: np.ndarray) -> dict[str, np.ndarray]:
        z = z0[None, :] + eps_rows @ basis  # (m, d)
        params = compute_parameters(np.asarray(generate(z.astype(np.float32))))
        return {k: np.asarray(v, dtype=float) for k, v in params.items()}

    start_all = measure(np.zeros((1, len(names))))
    start = {n: float(start_all[n][0]) for n in names}
    goal, messages = _goals(directions, targets, start)
    target_vec = np.array([goal[n] for n in names])
    scale = np.maximum(np.abs(target_vec), 1e-12)

    eps = np.zeros(len(names))
    current = np.array([start[n] for n in names])
    iterations = 0
    converged = _reached(directions, targets, current, target_vec, tolerance)
    while not converged and iterations < max_iterations:
        iterations += 1
        step = _newton_step(measure, names, eps, target_vec, scale, messages)
        if step is None:
            break
        norm = np.linalg.norm(step)
        if norm > max_step:
            step *= max_step / norm
        eps = eps + step
        if np.any(np.abs(eps) > max_eps):
            eps = np.clip(eps, -max_eps, max_eps)
            messages.append(
                f"stopped at |eps| = {max_eps}: beyond it the request leaves the region the "
                "directions were fitted on"
            )
            current = np.array([measure(eps[None])[n][0] for n in names])
            break
        current = np.array([measure(eps[None])[n][0] for n in names])
        converged = _reached(directions, targets, current, target_vec, tolerance)
    z_end = z0 + eps @ basis if shift is None else np.asarray(shift(eps), np.float64)
    params = compute_parameters(np.asarray(generate(z_end[None].astype(np.float32))))
    end = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    return TargetResult(
        z=z_end,
        eps=eps,
        start=start,
        requested=dict(zip(names, target_vec.tolist(), strict=True)),
        achieved={n: float(end[n][0]) for n in names},
        held_start={n: float(start_all[n][0]) for n in hold},
        held_end={n: float(end[n][0]) for n in hold},
        converged=bool(converged),
        iterations=iterations,
        warnings=messages,
    )


def _check_request(
    directions: DirectionSet,
    z0: np.ndarray,
    targets: list[Target],
    hold: tuple[str, ...] | list[str],
) -> list[str]:
    """The targets' parameter names, after refusing a request :func:`solve_targets` cannot
    serve (a z0 of the wrong shape, repeated or unknown or unmeasured parameters, a parameter
    both targeted and held) with a ValueError or KeyError naming it."""
    if z0.shape != (directions.latent_dim,):
        raise ValueError(f"z0 must have shape ({directions.latent_dim},), got {z0.shape}")
    names = [t.parameter for t in targets]
    if not targets or len(set(names)) != len(names):
        raise ValueError(f"give one target per parameter; got {names}")
    for name in [*names, *hold]:
        directions[name]  # raises a KeyError naming the known ones
    unmeasured = [n for n in names if n not in DIRECTION_PARAMETERS]  # e.g. the flare direction
    if unmeasured:
        raise ValueError(
            f"targets are physical parameters ({', '.join(DIRECTION_PARAMETERS)}), not "
            f"{unmeasured}: shift along them with --shift NAME=EPS"
        )
    overlap = set(names) & set(hold)
    if overlap:
        raise ValueError(f"cannot both target and hold {sorted(overlap)}")
    return names


def _goals(
    directions: DirectionSet, targets: list[Target], start: dict[str, float]
) -> tuple[dict[str, float], list[str]]:
    """The value each target aims at (in the parameter's units), from the start values and
    the stored distribution, and warnings for goals outside what the generator produced or
    the calibration reached."""
    messages: list[str] = []
    goal = {}
    for t in targets:
        if t.kind == "value":
            goal[t.parameter] = t.amount
        elif t.kind == "factor":
            goal[t.parameter] = t.amount * start[t.parameter]
        else:
            table = directions.distribution.get(t.parameter)
            if not table:
                raise ValueError(f"no distribution stored for {t.parameter!r}: refit directions")
            bound = table[int(round(t.amount))]
            # aim a little past the bound so that noise does not leave it just short
            spread = table[84] - table[16]
            goal[t.parameter] = bound + (0.05 if t.kind == "above" else -0.05) * spread
        lo, hi = (
            directions.distribution.get(t.parameter, [np.nan])[0],
            directions.distribution.get(t.parameter, [np.nan])[-1],
        )
        if np.isfinite(lo) and not lo <= goal[t.parameter] <= hi:
            messages.append(
                f"{t.parameter}: target {goal[t.parameter]:.4g} lies outside what the generator "
                f"produced when its directions were fitted ({lo:.4g} .. {hi:.4g})"
            )
        reach = directions.calibrated_range(t.parameter)
        if reach is not None and not reach[0] <= goal[t.parameter] <= reach[1]:
            messages.append(
                f"{t.parameter}: target {goal[t.parameter]:.4g} lies outside what the "
                f"calibration reached along the directions ({reach[0]:.4g} .. {reach[1]:.4g})"
            )
    return goal, messages


def _reached(
    directions: DirectionSet,
    targets: list[Target],
    values: np.ndarray,
    target_vec: np.ndarray,
    tolerance: float,
) -> bool:
    """Whether the measured ``values`` (k,) meet every target: past the percentile bound for
    "above"/"below", within ``tolerance`` (relative) of the goal otherwise."""
    ok = []
    for t, v, g in zip(targets, values, target_vec, strict=True):
        if t.kind == "above":
            ok.append(v >= directions.distribution[t.parameter][int(round(t.amount))])
        elif t.kind == "below":
            ok.append(v <= directions.distribution[t.parameter][int(round(t.amount))])
        else:
            ok.append(abs(v - g) <= tolerance * abs(g))
    return all(ok)


def _newton_step(
    measure,
    names: list[str],
    eps: np.ndarray,
    target_vec: np.ndarray,
    scale: np.ndarray,
    messages: list[str],
    h: float = 0.3,
) -> np.ndarray | None:
    """The undamped Newton step (k,) from ``eps`` towards the goals, by a finite-difference
    Jacobian (probes ``h`` apart in eps); None, with the reason appended to ``messages``,
    when there is no gradient to follow."""
    probes = np.vstack([eps, eps + h * np.eye(len(names))])  # (k+1, k)
    values = measure(probes)
    f0 = np.array([values[n][0] for n in names])
    jac = np.stack(
        [(np.array([values[n][i + 1] for n in names]) - f0) / h for i in range(len(names))],
        axis=1,
    )  # (k, k): d param_j / d eps_i
    residual = (target_vec - f0) / scale
    if not (np.all(np.isfinite(jac)) and np.all(np.isfinite(residual))):
        # e.g. PSEP or tilt undefined (not bipolar) at a probe: no gradient to follow
        messages.append(
            f"a target parameter became undefined (NaN) near eps = {np.round(eps, 3)}: "
            "stopped there"
        )
        return None
    step, *_ = np.linalg.lstsq(jac / scale[:, None], residual, rcond=None)
    if not np.all(np.isfinite(step)) or np.allclose(step, 0):
        messages.append("the measured parameters do not respond along these directions")
        return None
    return step
