"""Labels and boundaries of one parameter: the pure fitting functions (InterFaceGAN).

:func:`make_labels` turns a parameter's values into binary labels by SCIENCE.md's rules;
:func:`train_boundary` fits a linear SVM (``SVC(kernel="linear", C=1)``, as InterFaceGAN) or a
ridge regression on the standardised log parameter (:func:`regression_target`,
:func:`ridge_direction`); :class:`DirectionMethod` says which, and what a shift of eps means.
Shapes: latent vectors ``z`` (n, d), normals (d,).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.svm import SVC

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
FIT_METHODS = ("svm", "ridge")
STEP_UNITS = ("latent", "sigma", "spread")
HOLD_METHODS = ("linear", "measured")
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
    hold : ``"linear"``: held parameters' normals are projected out of the shifted direction
        (the paper's conditional manipulation); ``"measured"``: the plain shift, then a
        correction until the held parameters measure what they did at the start
        (:mod:`sharpseek.science.directions.hold`; TUF, PSEP and R, the others linearly).
    """

    fit: str = "svm"
    step: str = "latent"
    ridge_alpha: float = 1.0
    hold: str = "linear"

    def __post_init__(self) -> None:
        if self.fit not in FIT_METHODS:
            raise ValueError(f"direction fit {self.fit!r} unknown; use one of {FIT_METHODS}")
        if self.step not in STEP_UNITS:
            raise ValueError(f"direction step {self.step!r} unknown; use one of {STEP_UNITS}")
        if not self.ridge_alpha >= 0:
            raise ValueError(f"ridge_alpha must be >= 0, got {self.ridge_alpha}")
        if self.hold not in HOLD_METHODS:
            raise ValueError(f"direction hold {self.hold!r} unknown; use one of {HOLD_METHODS}")

    def describe(self) -> str:
        fit = "linear SVM (paper)" if self.fit == "svm" else "ridge on log parameter"
        unit = {
            "latent": "latent units",
            "sigma": "sigma of the decision value",
            "spread": "standard deviations of the parameter",
        }[self.step]
        held = ", held by measurement" if self.hold == "measured" else ""
        return f"{fit}, eps in {unit}{held}"


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
