"""The pipeline's flare-direction stage: indexed frames -> classifier -> direction, stored.

The one road of ``sharpseek directions flare`` and the pipeline flow's ``flare-direction``
step (after the directions, the index, the query map and the flares). The science is in
:mod:`sharpseek.science.flare_direction`; this reads the frames and their outcomes from the live
index, reaches the models in this process, and adds the direction to the stored
:class:`~sharpseek.science.directions.DirectionSet` of the settings' generator (compare-and-swap).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from sharpseek.config import Settings
from sharpseek.data.flares import class_threshold
from sharpseek.data.object_store import ObjectStore
from sharpseek.data.store import open_store
from sharpseek.models.inference import GeneratorModel
from sharpseek.pipeline.ledger import Ledger, StageOutcome, _outcome_from, fingerprint
from sharpseek.science.directions import Boundary, DirectionSet
from sharpseek.science.flare_direction import (
    FLARE_DIRECTION,
    FLARE_FEATURES,
    MIN_FRAMES,
    FlareClassifier,
    fit_flare_direction,
    train_flare_classifier,
)
from sharpseek.search.evaluate_outlook import outlook_frames
from sharpseek.search.index import open_index_from_settings
from sharpseek.search.query_map import generated_vectors, load_query_map
from sharpseek.serving.backends import InProcessBackend

__all__ = ["flare_direction_stage", "flare_training_frames"]

STAGE = "flare-direction"


def flare_training_frames(index: Any, settings: Settings) -> dict[str, Any]:
    """The indexed frames the classifier learns from: ``{"kind", "parameters", "vectors",
    "flared", "regions", "catalogues"}`` (known outcomes only). ``settings.flares``'
    ``direction_frames`` picks the kind; ``auto`` takes real frames when at least
    :data:`~sharpseek.science.flare_direction.MIN_FRAMES` have a known outcome of both classes.

    Raises
    ------
    ValueError
        No frame of the index has an outcome window (no flare catalogue loaded), named.
    """
    cfg = settings.flares
    hours = int(cfg.outlook_hours)
    status, flux = f"outcome_{hours}h_status", f"outcome_{hours}h_max_flux"
    floor = class_threshold(cfg.outlook_class) * (1 - 1e-9)

    def known(kind: str) -> dict[str, Any]:
        table, vectors = outlook_frames(
            index, kind=kind, hours=hours, extra=(*FLARE_FEATURES, "flare_catalogue")
        )
        keep = (table[status] == "known").to_numpy()
        table, vectors = table[keep].reset_index(drop=True), vectors[keep]
        peak = table[flux].astype(float).fillna(0.0).to_numpy()
        return {
            "kind": kind,
            "parameters": {p: table[p].astype(float).to_numpy() for p in FLARE_FEATURES},
            "vectors": vectors,
            "flared": peak >= floor,
            "regions": table["region"].astype(str).to_numpy(),
            "catalogues": sorted({str(c) for c in table["flare_catalogue"].dropna()}),
        }

    if cfg.direction_frames != "auto":
        return known(cfg.direction_frames)
    try:
        real = known("real")
    except ValueError:
        real = None
    if real is not None and len(real["flared"]) >= MIN_FRAMES and 0 < real["flared"].mean() < 1:
        return real
    return known("synthetic")


def _physical(directions: Any) -> Any:
    """The set without its flare direction (and its curves): what the flare fit starts from."""
    return replace(
        directions,
        boundaries={k: b for k, b in directions.boundaries.items() if k != FLARE_DIRECTION},
        calibration={k: c for k, c in directions.calibration.items() if k != FLARE_DIRECTION},
        distribution={k: d for k, d in directions.distribution.items() if k != FLARE_DIRECTION},
    )


def flare_direction_stage(
    settings: Settings, *, seed: int = 0, progress: bool = True
) -> Any:  # a pipeline.StageOutcome
    """Train the flare classifier on the indexed frames, fit the flare direction of the
    settings' generator from its labels, calibrate it, and store it with the other
    directions; skipped when the stored set has it for the same inputs (generator, encoder,
    flare catalogues, frames, settings).

    Raises
    ------
    FileNotFoundError
        No directions stored for the generator (``sharpseek directions fit`` first).
    ValueError
        No flare outcomes in the index, one class only, too few frames or regions, an index
        built by another encoder: one line naming the input.
    """
    store = open_store(settings)
    model = GeneratorModel.from_settings(settings, store=store)
    backend = InProcessBackend(settings, generator=model)
    gan_version = model.version
    base = DirectionSet.load(store, gan_version)  # the physical directions come first
    encoder_version, frames = _live_training_frames(settings, backend)
    n = int(settings.flares.direction_samples)
    dcfg = settings.directions
    eps = np.linspace(-dcfg.calibration_eps_max, dcfg.calibration_eps_max, dcfg.calibration_steps)
    inputs = _stage_inputs(
        settings, gan_version, base, encoder_version, frames, n=n, seed=seed, eps=eps
    )
    fp = fingerprint(inputs)
    ledger = Ledger(store)
    entry = ledger.current(STAGE, fp, exists=_direction_stored(store, gan_version, fp))
    if entry is not None:
        return _outcome_from(STAGE, entry, f"flare direction of {gan_version}")
    replaces = DirectionSet.token(store, gan_version)
    classifier = _train_classifier(settings, frames, encoder_version, seed=seed)
    boundary = _fit_direction(
        settings, backend, store, classifier, base, n=n, seed=seed, eps=eps, progress=progress
    )
    base.boundaries[FLARE_DIRECTION] = replace(boundary, extra=boundary.extra | {"fingerprint": fp})
    key = base.save(store, replaces=replaces)
    outputs = _stage_outputs(gan_version, key, frames, classifier, boundary)
    ledger.record(STAGE, fp, inputs, outputs)
    validation = classifier.validation
    return StageOutcome(
        STAGE,
        False,
        fp,
        outputs,
        f"flare direction of {gan_version}: classifier on {len(frames['flared'])} "
        f"{frames['kind']} frames (held-out-region AUC {validation['auc']:.2f}), direction "
        f"accuracy {boundary.accuracy:.2f} on {n} generated images",
    )


def _live_training_frames(
    settings: Settings, backend: InProcessBackend
) -> tuple[str, dict[str, Any]]:
    """The settings' encoder version and the live index's training frames
    (:func:`flare_training_frames`), once the live collection is checked to hold that
    encoder's embeddings.

    Raises
    ------
    ValueError
        No live collection, or one embedded by another encoder (reindex first).
    """
    index = open_index_from_settings(settings)
    try:
        live = index.live()
        encoder_version = str(backend.versions()["encoder"])
        if live is None:
            raise ValueError("the search index has no live collection: build it first")
        if live.encoder_version != encoder_version:
            raise ValueError(
                f"the live index holds embeddings of encoder {live.encoder_version}, the "
                f"settings' encoder is {encoder_version}: reindex first (sharpseek index build)"
            )
        return encoder_version, flare_training_frames(index, settings)
    finally:
        index.close()


def _stage_inputs(
    settings: Settings,
    gan_version: str,
    base: DirectionSet,
    encoder_version: str,
    frames: dict[str, Any],
    *,
    n: int,
    seed: int,
    eps: np.ndarray,
) -> dict[str, Any]:
    """What the stage's fingerprint covers: the generator, its physical directions, the
    encoder, the training frames (kind, counts, flare catalogues), the classifier's settings,
    the ``n`` generated samples, the seed and the calibration grid ``eps`` (latent units)."""
    cfg, dcfg = settings.flares, settings.directions
    return {
        "gan_version": gan_version,
        "directions": _physical(base).version,  # refit when the physical ones are
        "encoder_version": encoder_version,
        "frames": {
            "kind": frames["kind"],
            "n": len(frames["flared"]),
            "flared": int(frames["flared"].sum()),
            "catalogues": frames["catalogues"],
        },
        "classifier": {
            "threshold": cfg.outlook_class,
            "hours": cfg.outlook_hours,
            "holdout": cfg.direction_holdout,
            "C": cfg.direction_c,
            "components": cfg.direction_components,
        },
        "samples": n,
        "seed": seed,
        "calibration": {"eps": eps.tolist(), "n_z": int(dcfg.calibration_n_z)},
    }


def _direction_stored(
    store: ObjectStore, gan_version: str, fp: str
) -> Callable[[dict[str, Any]], bool]:
    """The ledger's check that a recorded run's output is still there: the generator's stored
    set holds a flare direction fitted with fingerprint ``fp``."""

    def stored(outputs: dict[str, Any]) -> bool:
        try:
            have = DirectionSet.load(store, gan_version).boundaries.get(FLARE_DIRECTION)
        except FileNotFoundError:
            return False
        return have is not None and have.extra.get("fingerprint") == fp

    return stored


def _train_classifier(
    settings: Settings, frames: dict[str, Any], encoder_version: str, *, seed: int
) -> FlareClassifier:
    """The flare classifier on the training frames, with the settings' outlook (class,
    hours), held-out fraction of regions, regularisation ``C`` and components."""
    cfg = settings.flares
    return train_flare_classifier(
        frames["parameters"],
        frames["vectors"],
        frames["flared"],
        frames["regions"],
        threshold=cfg.outlook_class,
        hours=cfg.outlook_hours,
        validation_fraction=cfg.direction_holdout,
        seed=seed,
        C=cfg.direction_c,
        components=cfg.direction_components,
        encoder_version=encoder_version,
    )


def _fit_direction(
    settings: Settings,
    backend: InProcessBackend,
    store: ObjectStore,
    classifier: FlareClassifier,
    base: DirectionSet,
    *,
    n: int,
    seed: int,
    eps: np.ndarray,
    progress: bool,
) -> Boundary:
    """The flare direction of ``base``'s generator from ``n`` generated images labelled by
    the classifier (their region vectors through the stored region-space query map),
    calibrated on the grid ``eps`` (latent units)."""
    # The classifier learnt from the indexed frames' region vectors: generated images are
    # embedded in that space too (not the symmetric one generated queries search).
    query_map = load_query_map(settings, backend, store, space="region")

    def embed(images: np.ndarray) -> np.ndarray:  # region vectors of generated images, mapped
        return generated_vectors(backend, images, query_map, space="region")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty images: NaN parameters
        return fit_flare_direction(
            backend.images,
            embed,
            classifier,
            base,
            n=n,
            seed=seed,
            calibration_eps=eps,
            calibration_n_z=int(settings.directions.calibration_n_z),
            progress=progress,
        )


def _stage_outputs(
    gan_version: str,
    key: str,
    frames: dict[str, Any],
    classifier: FlareClassifier,
    boundary: Boundary,
) -> dict[str, Any]:
    """What the ledger records of a run: the stored set's key, the frames' kind, the
    classifier's held-out AUC and Brier skill, the direction's accuracy and its cosines with
    the physical directions (rounded to 3 decimals)."""
    validation = classifier.validation
    return {
        "gan_version": gan_version,
        "key": key,
        "frames": frames["kind"],
        "classifier_auc": round(validation["auc"], 3),
        "classifier_brier_skill": round(validation["brier_skill"], 3),
        "accuracy": round(boundary.accuracy, 3),
        "cosines": {k: round(v, 3) for k, v in boundary.extra["cosines"].items()},
    }
