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
- :func:`apply_shifts` moves them along named parameters' directions, holding others: the
  one implementation every shell and server calls;
- :func:`project_2d` is the paper's 2-D view of a boundary (Fig. 4).

Shapes: latent vectors ``z`` are (n, d); directions (d,) unit vectors or (k, d) stacks.

References
----------
Shen, Gu, Tang & Zhou (2019), "Interpreting the latent space of GANs for semantic face
editing" (InterFaceGAN), arXiv:1907.10786.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.svm import SVC
from tqdm.auto import tqdm

from sharpseek.data.object_store import ObjectNotFound, PreconditionFailed
from sharpseek.physics.parameters import DIRECTION_PARAMETERS, compute_parameters

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
    "check_eps",
    "LATENT_LIMIT",
    "held_changes",
    "shift_basis",
    "sample_parameters",
    "solve_targets",
]

log = logging.getLogger(__name__)

#: Parameters labelled by sign (+1 / -1) rather than by a median split.
SIGN_PARAMETERS = frozenset({"orientation"})
#: Boolean flags, labelled by their value.
FLAG_PARAMETERS = frozenset({"bipolar"})
#: When at least this share of the finite values equals the minimum exactly (R = 0 for many
#: images), a median split would cut through a block of ties: label "> min" against "= min".
TIE_SHARE_FOR_PRESENCE = 0.25
#: Below this |cos| between a direction and a condition, the condition changes (almost)
#: nothing: it is redundant.
REDUNDANT_COSINE = 0.05
#: A conditioned direction shorter than this (before renormalising) has degenerated: the
#: conditions span (almost) the direction itself.
DEGENERATE_NORM = 1e-3
#: Format of a stored direction set. 1: SVM normals, eps in latent units (no ``format`` key);
#: 2: the :class:`DirectionMethod` is stored with the set.
DIRECTIONS_FORMAT = 2
FIT_METHODS = ("svm", "ridge")
STEP_UNITS = ("latent", "sigma", "spread")
#: Below this response gain (standard deviations of the parameter per latent unit) a step in
#: "spread" units is computed as if the gain were this: at most 1 / MIN_GAIN latent units per
#: eps, so a direction that explains almost nothing cannot throw z far out of the prior.
MIN_GAIN = 0.1


@dataclass(frozen=True)
class DirectionMethod:
    """How the directions of a set were fitted and what a shift of eps means.

    Attributes
    ----------
    fit : ``"svm"``: the paper's linear SVM on SCIENCE.md's labels (:func:`make_labels`), the
        reference; ``"ridge"``: ridge regression of the standardised log parameter
        (:func:`regression_target`) on z, whose unit coefficient vector is the direction of
        steepest mean growth of the log parameter (for z ~ N(0, I), by Stein's lemma, the
        regression vector is the mean gradient).
    step : ``"latent"``: eps is a length in latent units along the unit (conditioned)
        direction (InterFaceGAN; the paper); ``"sigma"``: eps is in standard deviations of the
        parameter's own decision value n . z over z ~ N(0, I) (1 latent unit for a unit
        normal), and holding keeps that meaning: along the conditioned direction c the step
        is eps / (n . c), so the own decision value still moves by eps; ``"spread"``: eps is
        in standard deviations of the parameter itself (its regression target, the log for
        fluxes, PSEP, R) over the generator's images, through the fitted response: a step of
        eps / (gain (n . c)) latent units, gain = the slope of the standardised target on
        n . z (``Boundary.extra["gain"]``, :func:`response_gain`; :func:`step_scale`).
    ridge_alpha : L2 penalty of the ridge fit (on sums over samples, z standard normal).
    """

    fit: str = "svm"
    step: str = "latent"
    ridge_alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.fit not in FIT_METHODS:
            raise ValueError(f"direction fit {self.fit!r} unknown; use one of {FIT_METHODS}")
        if self.step not in STEP_UNITS:
            raise ValueError(f"direction step {self.step!r} unknown; use one of {STEP_UNITS}")
        if not self.ridge_alpha >= 0:
            raise ValueError(f"ridge_alpha must be >= 0, got {self.ridge_alpha}")

    def describe(self) -> str:
        fit = "linear SVM (paper)" if self.fit == "svm" else "ridge on log parameter"
        unit = {
            "latent": "latent units",
            "sigma": "sigma of the decision value",
            "spread": "standard deviations of the parameter",
        }[self.step]
        return f"{fit}, eps in {unit}"


@dataclass(frozen=True)
class LabelRule:
    """How a parameter's values became labels (stored with the boundary)."""

    kind: str  # "median" | "presence" | "sign" | "flag"
    threshold: float  # value separating the classes (median, the tied minimum, or 0)
    class_weight: str | None  # "balanced" where the classes are unequal


@dataclass(frozen=True)
class Boundary:
    """A trained boundary: the direction of one parameter in latent space.

    Attributes
    ----------
    normal : ndarray (d,)
        Unit normal of the SVM hyperplane, pointing toward the high class.
    intercept : float
        Offset of the hyperplane for the unit normal: the boundary is normal . z + intercept = 0.
    accuracy : float
        Accuracy on the held-out 30 %.
    """

    parameter: str
    normal: np.ndarray
    intercept: float
    accuracy: float
    rule: LabelRule
    n_samples: int
    n_train: int
    n_validation: int
    gan_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["normal"] = self.normal.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Boundary:
        data = dict(data)
        data["normal"] = np.asarray(data["normal"], dtype=np.float64)
        data["rule"] = LabelRule(**data["rule"])
        return cls(**data)


def _finite_values(
    values: np.ndarray, parameter: str, purpose: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values as float64 (n,), finite mask (n,), the finite values (m,)); at least 4 of them,
    else a ValueError naming the parameter and what they were for (``purpose``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values of {parameter!r} must have shape (n,), got {values.shape}")
    used = np.isfinite(values)
    v = values[used]
    if len(v) < 4:
        raise ValueError(
            f"{parameter!r}: only {len(v)} finite values; need at least 4 to {purpose}"
        )
    return values, used, v


def make_labels(values: np.ndarray, parameter: str) -> tuple[np.ndarray, np.ndarray, LabelRule]:
    """Binary labels for a parameter, by SCIENCE.md's rules.

    Parameters
    ----------
    values : ndarray (n,)
        The parameter on n generated images (NaN where undefined).
    parameter : str
        Its name (``orientation`` is labelled by sign, ``bipolar`` by value).

    Returns
    -------
    used : ndarray (n,) bool
        Which images carry a label (NaN values are left out).
    labels : ndarray (m,) int
        0/1 for the used images, 1 = high.
    rule : LabelRule

    Notes
    -----
    Continuous parameters are split at the median with ties broken by rank (a stable sort),
    so both classes hold half. Where ties dominate — at least 25 % of the values equal the
    minimum, as R = 0 does for many images — the labels are "> minimum" against "= minimum"
    with balanced class weights instead.
    """
    values, used, v = _finite_values(values, parameter, "label")
    if parameter in SIGN_PARAMETERS:
        used &= values != 0
        labels = (values[used] > 0).astype(int)
        return used, labels, LabelRule("sign", 0.0, "balanced")
    if parameter in FLAG_PARAMETERS:
        labels = (v > 0.5).astype(int)
        return used, labels, LabelRule("flag", 0.5, "balanced")
    minimum = v.min()
    if np.mean(v == minimum) >= TIE_SHARE_FOR_PRESENCE:
        labels = (v > minimum).astype(int)
        return used, labels, LabelRule("presence", float(minimum), "balanced")
    order = np.argsort(v, kind="stable")
    labels = np.zeros(len(v), dtype=int)
    labels[order[len(v) // 2 :]] = 1
    return used, labels, LabelRule("median", float(np.median(v)), None)


def regression_target(
    values: np.ndarray, parameter: str
) -> tuple[np.ndarray, np.ndarray, LabelRule]:
    """The standardised regression target of a parameter (for ``fit="ridge"``).

    Non-negative parameters (fluxes, PSEP, R, ...) are regressed as log(v + floor), so a
    linear step in z means a relative change of the parameter, as the evaluation measures it;
    ``floor`` is the 5th percentile of the positive values (R = 0 stays finite). Signed
    parameters (tilt) and flags (orientation, bipolar) are regressed as they are.

    Returns
    -------
    used : ndarray (n,) bool (NaN left out)
    y : ndarray (m,) the target, mean 0 and standard deviation 1 (or 0 where constant)
    rule : LabelRule with kind ``"log"`` (threshold = floor) or ``"linear"`` (threshold 0)
    """
    values, used, v = _finite_values(values, parameter, "fit")
    signed = parameter in SIGN_PARAMETERS or parameter in FLAG_PARAMETERS or v.min() < 0
    if signed:
        y, rule = v, LabelRule("linear", 0.0, None)
    else:
        positive = v[v > 0]
        floor = float(np.percentile(positive, 5)) if len(positive) else 1.0
        y, rule = np.log(v + floor), LabelRule("log", floor, None)
    spread = float(y.std())
    return used, (y - y.mean()) / (spread if spread > 0 else 1.0), rule


def ridge_direction(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Ridge regression coefficients w (d,) of y (n,) on x (n, d), both centred here:
    w = (X^T X + alpha I)^-1 X^T y."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    return np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)


def response_gain(score: np.ndarray, target: np.ndarray) -> float:
    """Slope of ``target`` (m,) on ``score`` (m,): how many standard deviations of the
    standardised parameter one latent unit along the direction is worth, by least squares
    (cov / var). The calibration of eps in ``"spread"`` units."""
    score = np.asarray(score, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    var = float(np.var(score))
    if var <= 0:
        return 0.0
    return float(np.mean((score - score.mean()) * (target - target.mean())) / var)


def train_boundary(
    z: np.ndarray,
    values: np.ndarray,
    parameter: str,
    *,
    train_fraction: float = 0.7,
    seed: int = 0,
    C: float = 1.0,
    gan_version: str = "",
    method: DirectionMethod | None = None,
) -> Boundary:
    """Fit the boundary of one parameter: a linear SVM on labelled latent vectors (the
    paper), or a ridge regression of its standardised log (``method.fit == "ridge"``).

    Parameters
    ----------
    z : ndarray (n, d)
        Latent vectors the images were generated from.
    values : ndarray (n,)
        The parameter measured on those images.
    train_fraction : float
        Share used for training (the paper: 7,000 of 10,000); the rest validates.
    seed : int
        Seed of the train/validation split.
    method : DirectionMethod
        ``fit="ridge"``: the accuracy is that of the SVM's labels (:func:`make_labels`)
        predicted by the decision value above its quantile at the training share of the low
        class, on the validation share (comparable to the SVM's), and ``extra["r2"]`` the
        validation R^2 of the target.
    """
    method = method or DirectionMethod()

    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) != len(values):
        raise ValueError(
            f"z must have shape (n, d) with n = len(values) = {len(values)}; got {z.shape}"
        )
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    if method.fit == "ridge":
        return _ridge_boundary(z, values, parameter, train_fraction, seed, method, gan_version)
    used, labels, rule = make_labels(values, parameter)
    x = z[used]
    if len(np.unique(labels)) < 2:
        raise ValueError(f"{parameter!r}: all labelled images fall in one class; no boundary")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_train = int(round(train_fraction * len(x)))
    train, val = order[:n_train], order[n_train:]
    svm = SVC(kernel="linear", C=C, class_weight=rule.class_weight)
    svm.fit(x[train], labels[train])
    accuracy = float(svm.score(x[val], labels[val])) if len(val) else float("nan")
    w = svm.coef_.reshape(-1)
    norm = float(np.linalg.norm(w))
    if norm == 0:
        raise ValueError(f"{parameter!r}: the SVM found no direction (zero normal)")
    normal = w / norm
    target_used, target, _ = regression_target(values, parameter)
    return Boundary(
        parameter=parameter,
        normal=normal,
        intercept=float(svm.intercept_[0]) / norm,
        accuracy=accuracy,
        rule=rule,
        n_samples=int(used.sum()),
        n_train=len(train),
        n_validation=len(val),
        gan_version=gan_version,
        extra={"fit": "svm", "gain": response_gain(z[target_used] @ normal, target)},
    )


def _ridge_boundary(
    z: np.ndarray,
    values: np.ndarray,
    parameter: str,
    train_fraction: float,
    seed: int,
    method: DirectionMethod,
    gan_version: str,
) -> Boundary:
    used, y, rule = regression_target(values, parameter)
    if not np.any(y):
        raise ValueError(f"{parameter!r} is constant on these images; no direction")
    x = z[used]
    order = np.random.default_rng(seed).permutation(len(x))
    n_train = int(round(train_fraction * len(x)))
    train, val = order[:n_train], order[n_train:]
    w = ridge_direction(x[train], y[train], method.ridge_alpha)
    norm = float(np.linalg.norm(w))
    if norm == 0:
        raise ValueError(f"{parameter!r}: the regression found no direction (zero coefficients)")
    normal = w / norm
    score = x @ normal  # (m,) decision value, in latent units
    # the labels the SVM would have had (SCIENCE.md's rules), predicted by the score above
    # the quantile that gives the training share of the low class: a comparable accuracy
    labelled, labels, _ = make_labels(values, parameter)
    label = np.full(len(values), -1)
    label[labelled] = labels
    label = label[used]  # (m,) 0/1, -1 where the SVM would leave the image out
    known_train = label[train][label[train] >= 0]
    middle = float(np.quantile(score[train], 1 - known_train.mean())) if len(known_train) else 0.0
    accuracy, r2 = float("nan"), float("nan")
    known_val = val[label[val] >= 0]
    if len(known_val):
        accuracy = float(np.mean((score[known_val] > middle) == (label[known_val] == 1)))
    if len(val):
        fit_pred = (score[val] - score[train].mean()) * norm + y[train].mean()
        r2 = float(1 - np.mean((fit_pred - y[val]) ** 2) / max(np.var(y[val]), 1e-12))
    return Boundary(
        parameter=parameter,
        normal=normal,
        intercept=-middle,
        accuracy=accuracy,
        rule=rule,
        n_samples=int(used.sum()),
        n_train=len(train),
        n_validation=len(val),
        gan_version=gan_version,
        extra={"fit": "ridge", "r2": r2, "gain": response_gain(score, y)},
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


# ----------------------------------------------------------------------------------------------
# directions of a generator: fit, store, calibrate
# ----------------------------------------------------------------------------------------------


class DirectionsConflict(RuntimeError):
    """Another writer saved directions of the same GAN while this fit ran (names theirs)."""


@dataclass
class DirectionSet:
    """The boundaries of one generator version, with their provenance and calibration.

    Stored as JSON at ``directions/<gan_version>/directions.json`` in the store: a retrained
    generator needs its own directions, and :meth:`check_gan` refuses a mismatch.
    """

    gan_version: str
    boundaries: dict[str, Boundary]
    n_samples: int
    seed: int
    latent_dim: int
    calibration: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    #: percentiles 0..100 of each parameter over the fitting sample (for "above p90" targets)
    distribution: dict[str, list[float]] = field(default_factory=dict)
    #: how the boundaries were fitted and what eps means (format 1 sets: the paper's SVM,
    #: eps in latent units)
    method: DirectionMethod = field(default_factory=DirectionMethod)
    #: :data:`DIRECTIONS_FORMAT` of the stored JSON (1: written before methods existed)
    format: int = DIRECTIONS_FORMAT

    def __getitem__(self, parameter: str) -> Boundary:
        if parameter not in self.boundaries:
            raise KeyError(
                f"no direction for {parameter!r}; known: {', '.join(sorted(self.boundaries))}"
            )
        return self.boundaries[parameter]

    def check_gan(self, gan_version: str) -> None:
        """Raise when these directions were fitted on another generator version."""
        if gan_version != self.gan_version:
            raise ValueError(
                f"directions were fitted for GAN version {self.gan_version!r}, not "
                f"{gan_version!r}: fit directions for this GAN (`sharpseek directions fit`)"
            )

    def direction(self, parameter: str, hold: tuple[str, ...] | list[str] = ()) -> np.ndarray:
        """The unit direction of ``parameter``, conditioned on holding the ``hold`` ones."""
        normal = self[parameter].normal
        if not hold:
            return normal
        if parameter in hold:
            raise ValueError(f"cannot hold {parameter!r} while shifting along it")
        conditioned, _ = condition_direction(normal, np.stack([self[h].normal for h in hold]))
        return conditioned

    def step(self, parameter: str, hold: tuple[str, ...] | list[str] = ()) -> np.ndarray:
        """The latent vector (d,) of a shift eps = 1 along ``parameter`` holding ``hold``: the
        conditioned unit direction times :func:`step_scale` in this set's unit of eps."""
        conditioned = self.direction(parameter, hold)
        boundary = self[parameter]
        gain = boundary.extra.get("gain")
        return conditioned * step_scale(boundary.normal, conditioned, self.method.step, gain)

    def _data(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.format >= 2:  # a format-1 set keeps its stored form, hence its version
            extra = {"format": self.format, "method": asdict(self.method)}
        return {
            **extra,
            "gan_version": self.gan_version,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "latent_dim": self.latent_dim,
            "boundaries": {k: b.to_dict() for k, b in self.boundaries.items()},
            "calibration": self.calibration,
            "distribution": self.distribution,
        }

    def to_json(self) -> str:
        return json.dumps(self._data(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> DirectionSet:
        data = json.loads(text)
        stored = data.get("format", 1)
        if not isinstance(stored, int) or not 1 <= stored <= DIRECTIONS_FORMAT:
            raise ValueError(
                f"directions of GAN {data.get('gan_version')!r} are stored in format {stored!r}, "
                f"which this sharpseek does not read (it reads 1..{DIRECTIONS_FORMAT}): "
                "upgrade sharpseek, or refit them with `sharpseek directions fit`"
            )
        data["format"] = stored
        data["method"] = DirectionMethod(**data.get("method", {}))
        data["boundaries"] = {k: Boundary.from_dict(b) for k, b in data["boundaries"].items()}
        return cls(**data)

    @staticmethod
    def key(gan_version: str) -> str:
        return f"directions/{gan_version}/directions.json"

    @property
    def version(self) -> str:
        """``<gan_version>-d<8 hex>``: the one name of this stored set, everywhere (serving
        answers, archives, catalogues, the UI).

        The digest is SHA-256 of everything :meth:`save` stores (boundaries with their
        normals, intercepts, rules and accuracies, N, seed, calibration curves and
        distribution), as JSON with sorted keys: any change of the stored set — a refit
        with another N or seed, a recalibration — changes the version, and equal sets
        (whatever the order they were built in) have equal versions. It is computed on
        each call (~10 ms for a calibrated set), so a set changed in place is named anew.
        """
        text = json.dumps(self._data(), sort_keys=True, separators=(",", ":"))
        return f"{self.gan_version}-d{hashlib.sha256(text.encode()).hexdigest()[:8]}"

    @classmethod
    def stored_version(cls, store, gan_version: str) -> str | None:
        """:attr:`version` of the set stored for ``gan_version``, or None when none is."""
        try:
            return cls.load(store, gan_version).version
        except FileNotFoundError:
            return None

    @staticmethod
    def stored_versions(store) -> list[str]:
        """GAN versions that have directions in ``store``."""
        return sorted(
            info.key.split("/")[1]
            for info in store.list("directions/")
            if info.key.endswith("/directions.json") and info.key.count("/") == 2
        )

    def calibrated_range(self, parameter: str) -> tuple[float, float] | None:
        """Lowest 16th and highest 84th percentile of ``parameter`` over the calibration
        curves (any direction, any eps): what shifting was seen to reach. None uncalibrated."""
        lows, highs = [], []
        for curves in self.calibration.values():
            c = curves.get(parameter)
            if c:
                lows.extend(v for v in c["p16"] if np.isfinite(v))
                highs.extend(v for v in c["p84"] if np.isfinite(v))
        if not lows:
            return None
        return float(min(lows)), float(max(highs))

    def save(self, store, *, replaces: str | None | bool = True) -> str:
        """Store the set under :meth:`key`; return the key.

        ``replaces``: the store token (``store.get_versioned``) of the set this one was
        fitted to replace, read before the fit, or None when there was none: then the set
        is written only if that is still so (compare-and-swap), else
        :class:`DirectionsConflict` names the version another writer saved meanwhile.
        ``True`` (the default) replaces whatever is there.
        """
        key = self.key(self.gan_version)
        data = self.to_json().encode()
        if replaces is True:
            store.put_bytes(key, data, content_type="application/json")
            return key
        try:
            store.put_if(key, data, match=replaces or None, content_type="application/json")
        except PreconditionFailed:
            other = DirectionSet.from_json(store.get_bytes(key).decode())
            if other.version == self.version:
                return key  # the same set, saved by another run of the same fit
            raise DirectionsConflict(
                f"directions of GAN {self.gan_version} were saved by another writer while "
                f"this fit ran (their version {other.version}); this fit ({self.version}) "
                "was not saved: use theirs, or fit again"
            ) from None
        return key

    @staticmethod
    def token(store, gan_version: str) -> str | None:
        """The store token of the saved set of ``gan_version`` (None when there is none),
        to pass as ``save(replaces=...)`` after a fit."""
        try:
            return store.get_versioned(DirectionSet.key(gan_version))[1]
        except ObjectNotFound:
            return None

    @classmethod
    def load(cls, store, gan_version: str) -> DirectionSet:
        try:
            loaded = cls.from_json(store.get_bytes(cls.key(gan_version)).decode())
        except ObjectNotFound:
            others = cls.stored_versions(store)
            stored = (
                f" (stored only for other GAN versions: {', '.join(others)}; a retrained GAN "
                "needs its own)"
                if others
                else ""
            )
            raise FileNotFoundError(
                f"no directions for GAN version {gan_version!r} in {store.describe()}{stored}; "
                "fit them with `sharpseek directions fit`"
            ) from None
        loaded.check_gan(gan_version)
        return loaded


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


# ----------------------------------------------------------------------------------------------
# targets in physical terms ("make it so")
# ----------------------------------------------------------------------------------------------
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
) -> TargetResult:
    """Shift ``z0`` along the target parameters' directions until they reach their targets.

    The directions of the targets are conditioned on the ``hold`` parameters (their
    boundaries' normals are projected out), so held quantities change as little as the
    latent geometry allows; the result reports how much they did move. The shifts are found
    by damped Newton steps on the measured parameters (a finite-difference Jacobian of the
    k targets against their k directions): units of the physics, not of the SVM normal.

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
    """
    z0 = np.asarray(z0, dtype=np.float64).reshape(-1)
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
    basis = shift_basis(directions, names, hold)  # (k, d)

    def measure(eps_rows: np.ndarray) -> dict[str, np.ndarray]:
        z = z0[None, :] + eps_rows @ basis  # (m, d)
        params = compute_parameters(np.asarray(generate(z.astype(np.float32))))
        return {k: np.asarray(v, dtype=float) for k, v in params.items()}

    start_all = measure(np.zeros((1, len(names))))
    start = {n: float(start_all[n][0]) for n in names}
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
    target_vec = np.array([goal[n] for n in names])
    scale = np.maximum(np.abs(target_vec), 1e-12)

    def reached(values: np.ndarray) -> bool:
        ok = []
        for t, v, g in zip(targets, values, target_vec, strict=True):
            if t.kind == "above":
                ok.append(v >= directions.distribution[t.parameter][int(round(t.amount))])
            elif t.kind == "below":
                ok.append(v <= directions.distribution[t.parameter][int(round(t.amount))])
            else:
                ok.append(abs(v - g) <= tolerance * abs(g))
        return all(ok)

    eps = np.zeros(len(names))
    h = 0.3
    current = np.array([start[n] for n in names])
    iterations = 0
    converged = reached(current)
    while not converged and iterations < max_iterations:
        iterations += 1
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
            break
        step, *_ = np.linalg.lstsq(jac / scale[:, None], residual, rcond=None)
        if not np.all(np.isfinite(step)) or np.allclose(step, 0):
            messages.append("the measured parameters do not respond along these directions")
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
        converged = reached(current)
    end = measure(eps[None])
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    return TargetResult(
        z=z0 + eps @ basis,
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


# ----------------------------------------------------------------------------------------------
# named shifts and the diagnostic of held quantities
# ----------------------------------------------------------------------------------------------
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
