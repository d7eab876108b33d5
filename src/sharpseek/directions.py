"""Physical directions in a generator's latent space (the paper's section 4; InterFaceGAN).

Small pure functions, arrays in and arrays out:

- :func:`make_labels` turns a parameter's values into binary labels by SCIENCE.md's rules;
- :func:`train_boundary` fits a linear SVM (``SVC(kernel="linear", C=1)``, as InterFaceGAN)
  on 70 % of the latent vectors and validates on 30 %; the unit normal of its hyperplane is
  the direction along which the parameter grows;
- :func:`condition_direction` removes from a direction its components along other
  boundaries (conditional manipulation), with a diagnostic;
- :func:`shift` moves latent vectors along one or several directions;
- :func:`project_2d` is the paper's 2-D view of a boundary (Fig. 4).

Shapes: latent vectors ``z`` are (n, d); directions (d,) unit vectors or (k, d) stacks.

References
----------
Shen, Gu, Tang & Zhou (2019), "Interpreting the latent space of GANs for semantic face
editing" (InterFaceGAN), arXiv:1907.10786.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Boundary",
    "ConditionReport",
    "LabelRule",
    "condition_direction",
    "make_labels",
    "project_2d",
    "shift",
    "train_boundary",
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
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values of {parameter!r} must have shape (n,), got {values.shape}")
    used = np.isfinite(values)
    v = values[used]
    if len(v) < 4:
        raise ValueError(f"{parameter!r}: only {len(v)} finite values; need at least 4 to label")
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


def train_boundary(
    z: np.ndarray,
    values: np.ndarray,
    parameter: str,
    *,
    train_fraction: float = 0.7,
    seed: int = 0,
    C: float = 1.0,
    gan_version: str = "",
) -> Boundary:
    """Fit the boundary of one parameter: a linear SVM on labelled latent vectors.

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
    """
    from sklearn.svm import SVC

    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) != len(values):
        raise ValueError(
            f"z must have shape (n, d) with n = len(values) = {len(values)}; got {z.shape}"
        )
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
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
    return Boundary(
        parameter=parameter,
        normal=w / norm,
        intercept=float(svm.intercept_[0]) / norm,
        accuracy=accuracy,
        rule=rule,
        n_samples=int(used.sum()),
        n_train=len(train),
        n_validation=len(val),
        gan_version=gan_version,
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


def condition_direction(
    direction: np.ndarray, conditions: np.ndarray
) -> tuple[np.ndarray, ConditionReport]:
    """Remove the span of ``conditions`` from ``direction`` (conditional manipulation).

    One condition: n = (n1 - (n1 . n2) n2) / |...|. Several: with the condition normals as
    the columns of A, x - A (A^T A)^-1 A^T x, renormalised (the paper's eq. in section 4).

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
    gram = a @ a.T  # (k, k) = A^T A with A = a.T
    residual = x - a.T @ np.linalg.solve(gram, a @ x)
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
