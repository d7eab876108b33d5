"""How strong a direction is: paired changes of the measured parameters along it and the
verdict (:class:`DirectionStrength`) that the settings' thresholds give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sharpseek.science.directions.store import DirectionSet


def paired_change(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(share of pairs where the value rose, median relative change) of paired values (n,).

    A pair with a NaN counts as not risen; the relative change (after - before) / |before|
    is taken over finite pairs with before != 0 (NaN when there are none). The one rule of
    "a shift raised it" for the calibration and the evaluation."""
    b = np.asarray(before, np.float64)
    a = np.asarray(after, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    rel = ok & (b != 0)
    rises = float((ok & (a > b)).mean()) if len(b) else float("nan")
    change = float(np.median((a[rel] - b[rel]) / np.abs(b[rel]))) if rel.any() else float("nan")
    return rises, change


@dataclass(frozen=True)
class DirectionStrength:
    """Whether a direction moves its parameter as a user expects, at ``eps``.

    ``rises`` and ``median_relative_change`` come from the calibration (its own curve,
    interpolated at ``eps``); ``weak`` is True when either misses its threshold, or when the
    set has no such calibration (``reason`` says which).
    """

    parameter: str
    eps: float
    accuracy: float
    rises: float | None
    median_relative_change: float | None
    weak: bool
    reason: str

    def summary(self) -> str:
        """One line: accuracy, calibration at eps, and the verdict."""
        if self.rises is None or self.median_relative_change is None:
            moved = f"not calibrated at {self.eps:+g}"
        else:
            moved = (
                f"{self.eps:+g} raises it in {self.rises:.0%} "
                f"(median {self.median_relative_change:+.0%})"
            )
        verdict = f"WEAK: {self.reason}" if self.weak else "strong"
        return f"accuracy {self.accuracy:.2f}; {moved}; {verdict}"


def direction_strength(
    directions: DirectionSet,
    parameter: str,
    *,
    eps: float = 1.5,
    min_rise_share: float = 0.9,
    min_median_change: float = 0.2,
    min_accuracy: float = 0.0,
) -> DirectionStrength:
    """Is ``parameter``'s direction strong: does a shift of ``eps`` alone raise it in at
    least ``min_rise_share`` of the calibration vectors by a median relative change of at
    least ``min_median_change``, and does the direction separate high from low values of
    held-out images with at least ``min_accuracy``? (The thresholds of issue 17; the shells
    pass the settings' ``directions.strong_*``.) The accuracy floor matters because a long
    enough step along any direction pushes z off the latent Gaussian and raises TUF and R
    with it: a direction at chance accuracy that "raises" its parameter names nothing."""
    boundary = directions[parameter]
    curves = directions.calibration.get(parameter, {})
    own = curves.get(parameter, {})
    rises = change = None
    if "rises" in own and "median_relative_change" in own:
        grid = np.asarray(curves["eps"], dtype=float)
        rises = float(np.interp(eps, grid, np.asarray(own["rises"], dtype=float)))
        change = float(np.interp(eps, grid, np.asarray(own["median_relative_change"], dtype=float)))
    if rises is None or change is None or not (np.isfinite(rises) and np.isfinite(change)):
        reason = "no calibration of how often it rises: refit (`sharpseek directions fit`)"
        return DirectionStrength(parameter, eps, boundary.accuracy, rises, change, True, reason)
    misses = []
    if not boundary.accuracy >= min_accuracy:  # NaN (no validation images) misses too
        misses.append(f"validation accuracy {boundary.accuracy:.2f} < {min_accuracy:.2f}")
    if rises < min_rise_share:
        misses.append(f"rises in {rises:.0%} < {min_rise_share:.0%}")
    if change < min_median_change:
        misses.append(f"median change {change:+.0%} < {min_median_change:+.0%}")
    return DirectionStrength(
        parameter, eps, boundary.accuracy, rises, change, bool(misses), "; ".join(misses)
    )


def configured_strength(directions: DirectionSet, parameter: str, cfg) -> DirectionStrength:
    """:func:`direction_strength` by the settings' rule (``cfg`` = ``settings.directions``:
    ``strong_eps``, ``strong_rise_share``, ``strong_median_change``,
    ``strong_min_accuracy``): what the CLI, the UI and the benchmark call a weak direction."""
    return direction_strength(
        directions,
        parameter,
        eps=cfg.strong_eps,
        min_rise_share=cfg.strong_rise_share,
        min_median_change=cfg.strong_median_change,
        min_accuracy=cfg.strong_min_accuracy,
    )
