"""Targets, sliders and holds of the Shift page as one state with one range.

The sliders move eps along each direction within the range the directions were calibrated
over (:meth:`Workbench.eps_limit`); a target (``tuf=1.4x``, ``psep=31``, ``r>p90``) is solved
within that same range (:func:`solve_for_view`), its solution is put on the sliders (at
their step), and what the message reports as reached is measured on the image those
slider positions draw: the value the parameter table shows. A target the range cannot
reach says so, with how far it got; a held quantity that moved says by how much
(:func:`held_report`). The placeholder examples are derived from the calibration
(:func:`target_examples`), so a typical active region reaches them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sharpseek.science.directions import Target

__all__ = ["TargetOutcome", "held_report", "solve_for_view", "target_examples"]

#: relative change of a held quantity counted as kept (the solver's own value tolerance)
HOLD_TOLERANCE = 0.03


@dataclass
class TargetOutcome:
    """A target request as the Shift page shows it.

    ``shifts`` the slider positions {parameter: eps} (within the range, on the slider step);
    ``lines`` one sentence per target (start, requested, reached on the drawn image) and per
    held quantity; ``reached`` whether every target is met on that image (the message is a
    success only then, a warning otherwise)."""

    shifts: dict[str, float]
    lines: list[str] = field(default_factory=list)
    reached: bool = False


def _round_to(value: float, step: float, limit: float) -> float:
    value = max(-limit, min(limit, float(value)))
    return round(round(value / step) * step, 6)


def _met(target: Target, value: float, goal: float, distribution, tolerance: float) -> bool:
    if not math.isfinite(value):
        return False
    if target.kind in ("above", "below"):
        bound = distribution[target.parameter][int(round(target.amount))]
        return value >= bound if target.kind == "above" else value <= bound
    return abs(value - goal) <= tolerance * abs(goal)


def solve_for_view(
    wb,
    targets: str,
    *,
    seed: int | None = None,
    z: np.ndarray | None = None,
    hold: Sequence[str] = (),
    step: float = 0.1,
    tolerance: float = 0.03,
) -> TargetOutcome:
    """Solve ``targets`` (text, e.g. ``"tuf=1.4x, r>p90"``) from the base AR (``seed`` or
    ``z``) within the sliders' range, put the solution on the sliders' ``step`` and measure
    the image those positions draw (:meth:`Workbench.render`, the Shift page's own call).

    Raises
    ------
    ValueError
        A target that cannot be parsed, or names a parameter without a direction.
    """
    limit = wb.eps_limit()
    base = wb.latent(seed) if seed is not None else np.asarray(z)
    result = wb.solve(base, targets, hold, max_eps=limit)
    parsed = [Target.parse(t) for t in targets.replace(";", ",").split(",") if t.strip()]
    names = list(result.requested)
    shifts = {n: _round_to(e, step, limit) for n, e in zip(names, result.eps, strict=True)}
    shifts = {n: e for n, e in shifts.items() if e}
    held = [h for h in hold if h not in names]
    drawn = wb.render(seed=seed, z=None if seed is not None else base, shifts=shifts, hold=held)
    distribution = wb.directions.distribution
    reach = {n: wb.directions.calibrated_range(n) for n in names}
    lines, reached = [], True
    for t in parsed:
        n = t.parameter
        now, goal = drawn.params[n], result.requested[n]
        ok = _met(t, now, goal, distribution, tolerance)
        reached &= ok
        asked = {"factor": f"{t.amount:g}x the start", "value": f"{goal:.3g}"}.get(
            t.kind,
            f"{'above' if t.kind == 'above' else 'below'} the {t.amount:g}th percentile "
            f"({distribution[n][int(round(t.amount))]:.3g})",
        )
        line = f"{n.upper()}: start {result.start[n]:.3g}, asked {asked}, reached {now:.3g}"
        if ok:
            lines.append(line + " ✓")
            continue
        why = f"not reached (the solver stopped at eps {shifts.get(n, 0.0):+g})"
        r = reach[n]
        if r is not None and not r[0] <= goal <= r[1]:
            why = (
                f"beyond the calibrated range ({r[0]:.3g} .. {r[1]:.3g} over eps ±{limit:g}): "
                "not reachable with these directions"
            )
        elif abs(shifts.get(n, 0.0)) >= limit:
            why = f"the slider stops at eps ±{limit:g}, the calibrated range"
        lines.append(f"{line}: {why}")
    lines += held_report(result.held_start, drawn.params, held)
    return TargetOutcome(shifts, lines, bool(reached))


def held_report(
    start: Mapping[str, float],
    now: Mapping[str, float],
    hold: Sequence[str],
    *,
    tolerance: float = HOLD_TOLERANCE,
) -> list[str]:
    """One sentence per held quantity that moved by more than ``tolerance`` (relative) from
    ``start`` to ``now``, with by how much; holding conditions the directions but cannot
    always keep a quantity fixed.

    >>> held_report({"r": 100.0}, {"r": 130.0}, ["r"])
    ['held R could not be kept: 100 -> 130 (+30 %)']
    >>> held_report({"r": 100.0}, {"r": 101.0}, ["r"])
    []
    """
    out = []
    for h in hold:
        a, b = float(start.get(h, math.nan)), float(now.get(h, math.nan))
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        change = (b - a) / abs(a) if a else math.inf
        if abs(change) > tolerance:
            share = f"{change * 100:+.0f} %" if math.isfinite(change) else f"{b - a:+.3g}"
            out.append(f"held {h.upper()} could not be kept: {a:.3g} -> {b:.3g} ({share})")
    return out


def target_examples(directions: Any, eps: float = 1.0) -> list[str]:
    """Targets a typical active region reaches, from the directions' calibration: for TUF
    the factor its median reaches at ``eps`` (``tuf=1.4x``), for PSEP that median as a value
    (``psep=31``), for R the highest of the 90th, 75th and 50th percentiles of the
    generator's distribution that median passes (``r>p90``). Those without a calibration
    are left out."""
    out = []

    def median(p: str, at: float) -> float | None:
        curves = directions.calibration.get(p) if directions is not None else None
        if not curves or p not in curves:
            return None
        return float(np.interp(at, curves["eps"], curves[p]["median"]))

    tuf0, tuf1 = median("tuf", 0.0), median("tuf", eps)
    if tuf0 and tuf1 and tuf1 / tuf0 >= 1.1:
        out.append(f"tuf={math.floor(tuf1 / tuf0 * 10) / 10:g}x")
    psep = median("psep", eps)
    if psep is not None and math.isfinite(psep):
        out.append(f"psep={psep:.2g}" if psep < 100 else f"psep={psep:.0f}")
    r1 = median("r", eps)
    table = directions.distribution.get("r") if directions is not None else None
    if r1 is not None and table:
        for p in (90, 75, 50):
            if r1 > table[p]:
                out.append(f"r>p{p}")
                break
    return out
