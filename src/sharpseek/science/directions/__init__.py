"""Physical directions in a generator's latent space (the paper's section 4; InterFaceGAN).

Small pure functions, arrays in and arrays out:

- :func:`make_labels` turns a parameter's values into binary labels by SCIENCE.md's rules;
- :func:`train_boundary` fits a linear SVM (``SVC(kernel="linear", C=1)``, as InterFaceGAN;
  the paper's method and the reference) or a ridge regression on the standardised log
  parameter (:func:`regression_target`, :func:`ridge_direction`) on 70 % of the latent
  vectors and validates on 30 %; the unit normal is the direction along which the parameter
  grows. :class:`DirectionMethod` says which, and what a shift of eps means;
- :func:`orthonormal_basis` (Gram-Schmidt of the held normals) and
  :func:`condition_direction` remove from a direction its components along other
  boundaries (conditional manipulation), with a diagnostic; :func:`step_scale` is the length
  of a unit step along the conditioned direction in the method's unit of eps;
- :func:`shift` moves latent vectors along one or several directions (raw arrays);
- :func:`apply_shifts` moves them along named parameters' directions, holding others by the
  linear rule; :func:`shift_and_hold` is the one call every shell and server makes with a
  generator at hand: the set's hold method, linear or measured on the images
  (:mod:`.hold`);
- :func:`project_2d` is the paper's 2-D view of a boundary (Fig. 4).

Shapes: latent vectors ``z`` are (n, d); directions (d,) unit vectors or (k, d) stacks.

References
----------
Shen, Gu, Tang & Zhou (2019), "Interpreting the latent space of GANs for semantic face
editing" (InterFaceGAN), arXiv:1907.10786.
The package is split by job: :mod:`.boundary` (labels and one boundary), :mod:`.algebra`
(conditioning, steps, shifts of raw arrays), :mod:`.store` (the stored :class:`DirectionSet`),
:mod:`.fit` (fit and calibrate a set), :mod:`.strength` (how strong a direction is),
:mod:`.targets` (physical targets), :mod:`.shifts` (named shifts, the eps rule) and
:mod:`.hold` (the measured hold). The names
below are imported from here by the shells, servers and tests (dozens of call sites), so this
package keeps them as its public interface.
"""

from sharpseek.science.directions.algebra import (
    ConditionReport,
    condition_direction,
    orthonormal_basis,
    project_2d,
    shift,
    step_scale,
)
from sharpseek.science.directions.boundary import (
    Boundary,
    DirectionMethod,
    LabelRule,
    make_labels,
    regression_target,
    response_gain,
    ridge_direction,
    train_boundary,
)
from sharpseek.science.directions.fit import calibrate, fit_directions, sample_parameters
from sharpseek.science.directions.hold import HoldResult, measured_hold, shift_and_hold
from sharpseek.science.directions.shifts import (
    LATENT_LIMIT,
    apply_shifts,
    check_eps,
    held_changes,
    shift_basis,
)
from sharpseek.science.directions.store import DIRECTIONS_FORMAT, DirectionsConflict, DirectionSet
from sharpseek.science.directions.strength import (
    DirectionStrength,
    configured_strength,
    direction_strength,
    paired_change,
)
from sharpseek.science.directions.targets import Target, TargetResult, solve_targets

__all__ = [
    "DIRECTIONS_FORMAT",
    "DirectionMethod",
    "DirectionStrength",
    "DirectionsConflict",
    "configured_strength",
    "direction_strength",
    "orthonormal_basis",
    "regression_target",
    "response_gain",
    "ridge_direction",
    "step_scale",
    "Boundary",
    "ConditionReport",
    "LabelRule",
    "condition_direction",
    "make_labels",
    "project_2d",
    "shift",
    "train_boundary",
    "DirectionSet",
    "Target",
    "TargetResult",
    "calibrate",
    "paired_change",
    "fit_directions",
    "apply_shifts",
    "HoldResult",
    "measured_hold",
    "shift_and_hold",
    "check_eps",
    "LATENT_LIMIT",
    "held_changes",
    "shift_basis",
    "sample_parameters",
    "solve_targets",
]
