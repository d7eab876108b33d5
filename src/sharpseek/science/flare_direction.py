"""The flare-productive latent direction (issue 23; the paper's outlook as a direction).

A classifier learns, from observed frames (the demo: the synthetic dataset's frames with
their synthetic 24 h outcomes, docs/synthetic.md), the probability of a flare of at least
``threshold`` within ``hours`` of a frame, from the frame's physical parameters (model space)
and its embedding (the search vector). It is validated on held-out *regions* (frames of one
region are not independent; a validation region never trains it). It then labels generated
images with that probability, and the direction is fitted from those labels exactly as the
physical directions are (:func:`sharpseek.science.directions.train_boundary`, the set's method;
:func:`sharpseek.science.directions.calibrate` with the probability measured beside the parameters),
and saved in the generator's :class:`~sharpseek.science.directions.DirectionSet` under
:data:`FLARE_DIRECTION`, so every road that shifts (``sharpseek shift --shift flare=1.5``,
search, the UI, TorchServe) offers it, weak or strong by the same rule.

Pure arrays and callables here: the pipeline's stage
(:mod:`sharpseek.pipeline.flare_direction_stage`) reads the frames from the index and the models
from a backend.

Shapes: parameters are dicts of name -> (n,) arrays; vectors (n, dim); images (n, 128, 128)
model space; z (n, latent_dim).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions import Boundary, DirectionSet, calibrate, train_boundary

__all__ = [
    "FLARE_DIRECTION",
    "FLARE_FEATURES",
    "MIN_FRAMES",
    "FlareClassifier",
    "fit_flare_direction",
    "flare_features",
    "region_split",
    "train_flare_classifier",
]

#: The name of the direction (a shift ``flare=1.5``), in the direction set beside the
#: physical parameters'.
FLARE_DIRECTION = "flare"
#: Model-space physical parameters the classifier reads (with the embedding).
FLARE_FEATURES = ("tuf", "tpf", "tnf", "psep", "r", "sigma", "alpha", "grad")
#: Non-negative, heavy-tailed ones: read as log(1 + v), so a linear model sees relative changes.
_LOG_FEATURES = frozenset({"tuf", "tpf", "tnf", "psep", "r"})
#: Fewer frames with a known outcome than this cannot train and validate a classifier.
MIN_FRAMES = 20
#: Fewer regions than this cannot be split into training and validation regions.
MIN_REGIONS = 4


def flare_features(
    parameters: Mapping[str, Any], vectors: np.ndarray, names: tuple[str, ...] = FLARE_FEATURES
) -> np.ndarray:
    """The raw feature matrix (n, len(names) + k): the parameters ``names`` (log(1 + v)
    for the non-negative ones; NaN stays NaN) followed by ``vectors`` (n, k) (the
    embedding's principal components, :class:`FlareClassifier`)."""
    vectors = np.asarray(vectors, np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"embedding vectors must have shape (n, dim), got {vectors.shape}")
    missing = [p for p in names if p not in parameters]
    if missing:
        raise ValueError(f"flare classifier: parameters {missing} missing from the frames")
    columns = []
    for name in names:
        v = np.asarray(parameters[name], np.float64).reshape(-1)
        if len(v) != len(vectors):
            raise ValueError(
                f"flare classifier: {len(v)} values of {name!r} for {len(vectors)} embeddings"
            )
        columns.append(np.log1p(np.maximum(v, 0)) if name in _LOG_FEATURES else v)
    return np.column_stack([*columns, vectors])


@dataclass(frozen=True)
class FlareClassifier:
    """A logistic regression of "a flare >= ``threshold`` within ``hours``" on standardised
    features (:func:`flare_features`: the physical parameters and the embedding's leading
    principal components); NaN features are read as the training mean.

    Attributes
    ----------
    embedding_mean : ndarray (dim,), components : ndarray (k, dim)  the embedding's principal
        axes over the training frames (a whole 100-d embedding overfits a few hundred
        regions: their frames are not independent)
    mean, scale : ndarray (f,) standardisation of the raw features (training frames)
    coef : ndarray (f,), intercept : float  the logit's weights on standardised features
    validation : dict  skill on the held-out regions (:func:`train_flare_classifier`)
    encoder_version : str  the embedding the weights read (a new encoder needs a refit)
    """

    threshold: str
    hours: int
    parameters: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    embedding_mean: np.ndarray
    components: np.ndarray
    validation: dict[str, Any] = field(default_factory=dict)
    encoder_version: str = ""

    def logit(self, parameters: Mapping[str, Any], vectors: np.ndarray) -> np.ndarray:
        """The log-odds (n,) of a flare for frames or images with these parameters and
        embeddings ``vectors`` (n, dim)."""
        vectors = np.asarray(vectors, np.float64)
        if vectors.ndim != 2 or vectors.shape[1] != len(self.embedding_mean):
            raise ValueError(
                f"flare classifier reads {len(self.embedding_mean)}-d embeddings, got shape "
                f"{vectors.shape} (another encoder?)"
            )
        x = flare_features(
            parameters, (vectors - self.embedding_mean) @ self.components.T, self.parameters
        )
        x = (x - self.mean) / self.scale
        x[~np.isfinite(x)] = 0.0  # an undefined parameter reads as the training mean
        return x @ self.coef + self.intercept

    def probability(self, parameters: Mapping[str, Any], vectors: np.ndarray) -> np.ndarray:
        """P(flare >= threshold within hours), (n,) in (0, 1)."""
        return 1.0 / (1.0 + np.exp(-self.logit(parameters, vectors)))

    def label_images(
        self, images: np.ndarray, embed: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """The probability (n,) of model-space images (n, 128, 128): their parameters
        measured here, their embeddings by ``embed`` (images -> (n, dim), the same vectors
        the frames were indexed or searched with)."""
        images = np.asarray(images, np.float32)
        return self.probability(compute_parameters(images), np.asarray(embed(images)))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("mean", "scale", "coef", "embedding_mean", "components"):
            out[key] = np.asarray(out[key], float).tolist()
        out["parameters"] = list(self.parameters)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlareClassifier:
        data = dict(data)
        for key in ("mean", "scale", "coef", "embedding_mean", "components"):
            data[key] = np.asarray(data[key], np.float64)
        data["parameters"] = tuple(data["parameters"])
        return cls(**data)


def region_split(regions: np.ndarray, validation_fraction: float, seed: int) -> np.ndarray:
    """A validation mask (n,): whole regions, ``validation_fraction`` of them (at least one,
    at most all but one), drawn with ``seed``. Every frame of a region falls on one side."""
    regions = np.asarray(regions).astype(str)
    unique = np.unique(regions)
    if len(unique) < MIN_REGIONS:
        raise ValueError(
            f"flare classifier: frames of only {len(unique)} region(s); need at least "
            f"{MIN_REGIONS} to hold some out for validation"
        )
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    n_val = min(len(unique) - 1, max(1, int(round(validation_fraction * len(unique)))))
    held = np.random.default_rng(seed).permutation(unique)[:n_val]
    return np.isin(regions, held)


def _skill(p: np.ndarray, y: np.ndarray, base_rate: float) -> dict[str, Any]:
    """Accuracy (yes = p >= 0.5), TSS (yes = p >= the training base rate), Brier score, its
    climatology (the training base rate, a constant) and the Brier skill score, ROC AUC."""

    both = bool(y.any() and (~y).any())
    yes = p >= base_rate
    tss = float(yes[y].mean() - yes[~y].mean()) if both else float("nan")
    brier = float(np.mean((p - y) ** 2))
    climatology = float(np.mean((base_rate - y) ** 2))
    return {
        "frames": len(y),
        "event_rate": float(y.mean()),
        "accuracy": float(np.mean((p >= 0.5) == y)),
        "majority_accuracy": float(max(y.mean(), 1 - y.mean())),
        "tss": tss,
        "brier": brier,
        "brier_climatology": climatology,
        "brier_skill": float(1 - brier / climatology) if climatology > 0 else float("nan"),
        "auc": _auc(p, y),
    }


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC of one score (finite values only; NaN without both classes): the R baseline."""
    ok = np.isfinite(score)
    both = bool(y[ok].any() and (~y[ok]).any())
    return float(roc_auc_score(y[ok], score[ok])) if both else float("nan")


def train_flare_classifier(
    parameters: Mapping[str, Any],
    vectors: np.ndarray,
    flared: np.ndarray,
    regions: np.ndarray,
    *,
    threshold: str = "M",
    hours: int = 24,
    validation_fraction: float = 0.3,
    seed: int = 0,
    C: float = 1.0,
    components: int = 8,
    encoder_version: str = "",
) -> FlareClassifier:
    """Train on the frames of some regions, validate on the frames of the others.

    Parameters
    ----------
    parameters : {name: (n,)} model-space parameters of the frames (at least
        :data:`FLARE_FEATURES`)
    vectors : (n, dim) their embeddings
    flared : (n,) bool  a flare >= ``threshold`` within ``hours`` of the frame (known outcomes
        only: the caller leaves the unknown ones out)
    regions : (n,) the frame's region; ``validation_fraction`` of the regions (seeded) are
        held out: never trained on, only scored (``validation``: accuracy against the
        majority class, TSS, Brier against climatology, AUC beside R's alone; the regions on
        each side)
    C : inverse L2 penalty of the logistic regression (on standardised features)
    components : leading principal components of the embedding read (fitted on the training
        frames; 0: the physical parameters only)

    The classifier returned is the one validated (trained on the training regions only).

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_FRAMES` frames, fewer than :data:`MIN_REGIONS` regions, or
        outcomes of one class only (overall or among the training regions).
    """
    y = np.asarray(flared).astype(bool).reshape(-1)
    regions = np.asarray(regions).astype(str).reshape(-1)
    if len(y) < MIN_FRAMES:
        raise ValueError(
            f"flare classifier: only {len(y)} frames with a known {hours} h outcome; need at "
            f"least {MIN_FRAMES} (load a flare catalogue: sharpseek flares load)"
        )
    if len(regions) != len(y):
        raise ValueError(f"flare classifier: {len(regions)} regions for {len(y)} outcomes")
    if y.all() or not y.any():
        kind = "a flare" if y.all() else "no flare"
        raise ValueError(
            f"flare classifier: all {len(y)} frames had {kind} >= {threshold} within {hours} h "
            "(one class): nothing to learn"
        )
    vectors = np.asarray(vectors, np.float64)
    if vectors.ndim != 2 or len(vectors) != len(y):
        raise ValueError(
            f"flare classifier: embeddings of shape {vectors.shape} for {len(y)} outcomes"
        )
    val = region_split(regions, validation_fraction, seed)
    train = ~val
    embedding_mean = vectors[train].mean(axis=0)
    axes = np.linalg.svd(vectors[train] - embedding_mean, full_matrices=False)[2]
    axes = axes[: max(0, min(int(components), len(axes)))]
    x = flare_features(parameters, (vectors - embedding_mean) @ axes.T)
    if y[train].all() or not y[train].any():
        raise ValueError(
            f"flare classifier: the {int(train.sum())} training frames hold one outcome class "
            "only; more regions are needed"
        )
    mean = np.nanmean(x[train], axis=0)
    scale = np.nanstd(x[train], axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    xs = (x - mean) / scale
    xs[~np.isfinite(xs)] = 0.0
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(xs[train], y[train])
    classifier = FlareClassifier(
        threshold=str(threshold).strip().upper().rstrip("+"),
        hours=int(hours),
        parameters=tuple(FLARE_FEATURES),
        mean=mean,
        scale=scale,
        coef=model.coef_.reshape(-1).astype(np.float64),
        intercept=float(model.intercept_[0]),
        embedding_mean=embedding_mean,
        components=axes,
        encoder_version=encoder_version,
    )
    p = 1.0 / (1.0 + np.exp(-(xs @ classifier.coef + classifier.intercept)))
    base_rate = float(y[train].mean())
    validation = {
        "split": "held-out regions",
        "training_regions": int(len(np.unique(regions[train]))),
        "validation_regions": int(len(np.unique(regions[val]))),
        "training_frames": int(train.sum()),
        "training_event_rate": base_rate,
        **_skill(p[val], y[val], base_rate),
        "r_auc": _auc(np.asarray(parameters["r"], np.float64)[val], y[val]),
    }
    return dataclasses.replace(classifier, validation=validation)


def fit_flare_direction(
    generate: Callable[[np.ndarray], np.ndarray],
    embed: Callable[[np.ndarray], np.ndarray],
    classifier: FlareClassifier,
    directions: DirectionSet,
    *,
    n: int,
    seed: int = 0,
    calibration_eps: np.ndarray | None = None,
    calibration_n_z: int = 200,
    batch_size: int = 512,
    progress: bool = False,
) -> Boundary:
    """Fit the flare direction of ``directions``' generator and add it to the set.

    ``n`` latent vectors z ~ N(0, I) (seeded) are generated (``generate``: z (b, d) -> images
    (b, 128, 128)), labelled with the classifier's probability (parameters measured here,
    embeddings by ``embed``), and the boundary is fitted by the set's method
    (:func:`~sharpseek.science.directions.train_boundary`: median split of the probability, or ridge
    on its log) with its 70/30 validation. Calibrated along itself
    (:func:`~sharpseek.science.directions.calibrate`, the probability measured as ``flare`` beside
    every parameter, seed + 1) when ``calibration_eps`` is given, so
    :func:`~sharpseek.science.directions.configured_strength` judges it like the others.

    The boundary's ``extra`` holds the classifier (``classifier``: weights and its
    held-out-region validation), the cosines with the other directions (``cosines``) and the
    probability's spread over the sample (``probability``: p16, median, p84).
    """
    # z as sample_parameters draws it (the same seed gives the same sample as the set's fit)
    z = np.random.default_rng(seed).standard_normal((n, directions.latent_dim)).astype(np.float32)
    starts = range(0, n, batch_size)
    if progress:
        starts = tqdm(starts, desc="generate + label", unit="batch")
    p = np.concatenate(
        [
            classifier.label_images(np.asarray(generate(z[i : i + batch_size])), embed)
            for i in starts
        ]
    )
    boundary = train_boundary(
        z,
        p,
        FLARE_DIRECTION,
        seed=seed,
        gan_version=directions.gan_version,
        method=directions.method,
    )
    cosines = {
        name: float(other.normal @ boundary.normal)
        for name, other in directions.boundaries.items()
        if name != FLARE_DIRECTION
    }
    spread = np.percentile(p, [16, 50, 84])
    boundary = dataclasses.replace(
        boundary,
        extra=boundary.extra
        | {
            "classifier": classifier.to_dict(),
            "cosines": cosines,
            "probability": {"p16": spread[0], "median": spread[1], "p84": spread[2]},
        },
    )
    directions.boundaries[FLARE_DIRECTION] = boundary
    directions.distribution[FLARE_DIRECTION] = np.percentile(p, np.arange(101)).tolist()
    if calibration_eps is not None:

        def measure(images: np.ndarray) -> dict[str, Any]:
            images = np.asarray(images, np.float32)
            values = compute_parameters(images)
            return dict(values) | {
                FLARE_DIRECTION: classifier.probability(values, np.asarray(embed(images)))
            }

        calibrate(
            generate,
            directions,
            along=(FLARE_DIRECTION,),
            eps=calibration_eps,
            n_z=calibration_n_z,
            seed=seed + 1,
            measure=measure,
        )
    return boundary


def flare_classifier_of(directions: DirectionSet) -> FlareClassifier | None:
    """The classifier stored with the set's flare direction, or None when it has none."""
    boundary = directions.boundaries.get(FLARE_DIRECTION)
    if boundary is None or "classifier" not in boundary.extra:
        return None
    return FlareClassifier.from_dict(boundary.extra["classifier"])
