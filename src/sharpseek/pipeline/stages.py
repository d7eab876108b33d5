"""The pipeline's stages after ingest: training, directions, the query map, the evaluation
report and the TorchServe archives, each skipped when its inputs have not changed
(:mod:`.ledger`).

The Prefect flows (:mod:`sharpseek.pipeline.flows`) are thin shells: each task calls one
function of the pipeline's modules (or of the module that owns the work) and reports what it
returned. Ingest is planned in :mod:`.ingest_plans`, indexing in :mod:`.index_plans`, the flare
steps in :mod:`.flare_steps`; :mod:`.runs` runs the flows from the command line and keeps
their timings. Everything here works without Prefect (plain calls), which is how the tests
check it.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal

import numpy as np

from sharpseek.config import Settings
from sharpseek.data.dataset import latest_version, load_dataset
from sharpseek.data.store import open_store
from sharpseek.models.inference import EncoderModel, GeneratorModel, checkpoint_name
from sharpseek.pipeline.ledger import Ledger, StageOutcome, _outcome_from, dataset_ref, fingerprint
from sharpseek.science.directions import (
    DIRECTIONS_FORMAT,
    DirectionMethod,
    DirectionSet,
    fit_directions,
)
from sharpseek.science.directions import calibrate as calibrate_directions
from sharpseek.search.index import open_index_from_settings
from sharpseek.search.query_map import load_query_map, query_map_key
from sharpseek.serving.archives import build_archives
from sharpseek.serving.backends import InProcessBackend
from sharpseek.training.common import RunStore, checkpoint_key, load_checkpoint
from sharpseek.training.encoder import EncoderTrainConfig, encoder_train_config, train_encoder
from sharpseek.training.evaluate_models import evaluate_checkpoints
from sharpseek.training.gan import GANTrainConfig, gan_train_config, train_gan

log = logging.getLogger(__name__)

__all__ = ["directions_stage", "evaluate_stage", "archives_stage", "train_stage"]

REPORTS_PREFIX = "pipeline/reports"


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
def _train_config(kind: str, preset: str, epochs: int | None):
    overrides = {} if epochs is None else {"epochs": epochs}
    if kind == "gan":
        return gan_train_config(preset, **overrides)
    if kind == "encoder":
        return encoder_train_config(preset, **overrides)
    raise ValueError(f"unknown model kind {kind!r}; choose gan or encoder")


def _run_name(settings: Settings, kind: str) -> str:
    return settings.models.gan if kind == "gan" else settings.models.encoder


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _stored_config(kind: str, ckpt: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's training config as this version reads it: a field added since the
    checkpoint was written takes its default, which is the behaviour from before the field
    existed, so a run is not stale only because the config gained an option. A config this
    version cannot read (a field it does not know) is compared as stored."""
    stored = ckpt.get("config") or {}
    config_type = GANTrainConfig if kind == "gan" else EncoderTrainConfig
    try:
        return _plain(config_type.from_dict(stored).to_dict())
    except (TypeError, ValueError):
        return _plain(stored)


def train_stage(
    settings: Settings,
    kind: Literal["gan", "encoder"],
    *,
    dataset: str | None = None,
    epochs: int | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> StageOutcome:
    """Train the GAN or the encoder run that ``settings.models`` names, unless a finished
    run of the same config on the same dataset content is there.

    A run left by an interrupted training with the same config and dataset is resumed; a
    run of another config or dataset is replaced (the pipeline retrains what is stale).
    """
    store = open_store(settings)
    name = dataset or settings.flows.training_dataset
    version = latest_version(store, name)
    if version is None:
        raise FileNotFoundError(
            f"no dataset {name!r} in {store.describe()} to train the {kind} on; ingest it first"
        )
    ds = load_dataset(store, name, version)
    ref = dataset_ref(ds)
    config = _train_config(kind, settings.preset, epochs)
    config_dict = _plain(config.to_dict())
    run_name = _run_name(settings, kind)
    inputs = {"kind": kind, "run": run_name, "config": config_dict, "dataset_digest": ref.digest}
    fp = fingerprint(inputs)
    stage = f"train-{kind}"
    ledger = Ledger(store)
    run = RunStore(store, kind, run_name)
    entry = ledger.current(stage, fp, exists=lambda out: store.exists(out["last"]))
    if entry is not None:
        return _outcome_from(stage, entry, f"{kind} {run_name}")

    resume = overwrite = False
    if run.has_checkpoints() and run.exists("last.pt"):
        ckpt = load_checkpoint(run.key("last.pt"), store=store, kind=kind)
        same_data = ckpt.get("dataset") == {"name": ds.name, "version": ds.version}
        stored = _stored_config(kind, ckpt)
        same_config = stored == config_dict
        if same_data and same_config and int(ckpt.get("epoch", 0)) >= config.epochs:
            # a finished run the ledger did not know (trained by hand): adopt it
            outputs = {"run": run_name, "last": run.key("last.pt"), "epoch": ckpt["epoch"]}
            ledger.record(stage, fp, inputs, outputs)
            return StageOutcome(
                stage, True, fp, outputs, f"{kind} {run_name}: finished run found; adopted"
            )
        without_epochs = {k: v for k, v in config_dict.items() if k != "epochs"}
        old = {k: v for k, v in stored.items() if k != "epochs"}
        if same_data and old == without_epochs and int(ckpt.get("epoch", 0)) < config.epochs:
            resume = True
            log.info("%s %s: resuming at epoch %s", kind, run_name, ckpt.get("epoch"))
        else:
            overwrite = True
            log.warning("%s %s is stale (config or dataset changed): retraining", kind, run_name)
    train = train_gan if kind == "gan" else train_encoder
    result = train(
        config,
        ds,
        store,
        version=run_name,
        resume=resume,
        overwrite=overwrite,
        device=settings.device,
        progress=progress,
        on_epoch_end=on_epoch_end,
    )
    last = result.history[-1] if result.history else {}
    outputs = {
        "run": run_name,
        "last": run.key("last.pt"),
        "epoch": int(last.get("epoch", config.epochs)),
        "best_epoch": (result.best or {}).get("epoch"),
        "history": _plain(result.history),
        "samples": run.key(f"samples/epoch-{config.epochs:04d}.png") if kind == "gan" else None,
    }
    ledger.record(stage, fp, inputs, outputs)
    return StageOutcome(
        stage,
        False,
        fp,
        outputs,
        f"{kind} {run_name}: trained {config.epochs} epochs on {ds.name}/{ds.version}"
        + (" (resumed)" if resume else ""),
    )


# ----------------------------------------------------------------------------------------------
# directions, evaluation, archives
# ----------------------------------------------------------------------------------------------
def directions_stage(
    settings: Settings,
    *,
    samples: int | None = None,
    seed: int = 0,
    calibrate: bool = True,
    calibration_n_z: int | None = None,
    progress: bool = True,
) -> StageOutcome:
    """Fit (and calibrate) the physical directions of the settings' generator version,
    unless they are stored for this exact version and recipe. The one road of
    `sharpseek directions fit` and the pipeline's directions step.

    Parameters
    ----------
    samples : generated images the SVMs are fitted on (default ``settings.directions.samples``)
    seed : seed of the sample and of its 70/30 split; the calibration vectors use ``seed + 1``
    calibrate : also measure the calibration curves (``settings.directions.calibration_*``)

    The method (``settings.directions.fit``, ``step``, ``ridge_alpha``) is part of the
    recipe: changing it refits.
    calibration_n_z : latent vectors per calibration point (default: settings)

    The images come through an in-process model backend (:mod:`sharpseek.serving.backends`) holding
    the settings' generator checkpoint: the boundaries are fitted on full-precision images
    of exactly that version (TorchServe would send float16 images).
    """
    cfg = settings.directions
    store = open_store(settings)
    model = GeneratorModel.from_settings(settings, store=store)
    generate = InProcessBackend(settings, generator=model).images  # z (b, d) -> (b, 128, 128)
    version = model.version
    n = int(samples or cfg.samples)
    n_z = int(calibration_n_z or cfg.calibration_n_z)
    method = DirectionMethod(fit=cfg.fit, step=cfg.step, ridge_alpha=cfg.ridge_alpha, hold=cfg.hold)
    inputs: dict[str, Any] = {"gan_version": version, "samples": n, "seed": seed}
    # the method and the stored format are part of the recipe: a set of an older format
    # (no calibration of how often a shift raises its parameter) is refitted once
    inputs["method"] = asdict(method)
    inputs["format"] = DIRECTIONS_FORMAT
    if calibrate:
        eps = np.linspace(-cfg.calibration_eps_max, cfg.calibration_eps_max, cfg.calibration_steps)
        inputs["calibration"] = {"eps": eps.tolist(), "n_z": n_z}
    fp = fingerprint(inputs)
    stage = "directions"
    ledger = Ledger(store)
    entry = ledger.current(stage, fp, exists=lambda out: store.exists(out["key"]))
    if entry is not None:
        return _outcome_from(stage, entry, f"directions of {version}")
    replaces = DirectionSet.token(store, version)  # the set this fit replaces (or none)
    with warnings.catch_warnings():
        # parameters of empty generated images are NaN (no polarity): expected, not news
        warnings.simplefilter("ignore", RuntimeWarning)
        directions = fit_directions(
            generate,
            gan_version=version,
            latent_dim=model.latent_dim,
            n=n,
            seed=seed,
            progress=progress,
            method=method,
        )
        if calibrate:
            calibrate_directions(
                generate, directions, eps=eps, n_z=n_z, seed=seed + 1, progress=progress
            )
    key = directions.save(store, replaces=replaces)  # refused if another fit saved meanwhile
    accuracy = {
        name: round(float(getattr(b, "accuracy", float("nan"))), 3)
        for name, b in directions.boundaries.items()
    }
    outputs = {"gan_version": version, "key": key, "accuracy": accuracy}
    ledger.record(stage, fp, inputs, outputs)
    return StageOutcome(
        stage,
        False,
        fp,
        outputs,
        f"directions of {version}: {len(directions.boundaries)} fitted on {n} images",
    )


def query_map_stage(settings: Settings) -> StageOutcome:
    """The generated-query map (:mod:`sharpseek.search.query_map`) of the settings' GAN and encoder
    over the training dataset, in the space generated queries search
    (``retrieval.generated_space``), fitted and stored unless it is there (then this takes
    a moment): the UI's first generated search need not wait for it."""
    store = open_store(settings)
    backend = InProcessBackend(settings)
    where = query_map_key(settings, backend, store, settings.retrieval.generated_space)
    stored = where is not None and store.exists(where[0])
    with open_index_from_settings(settings) as index:  # the frames' vectors, when it has them
        fitted = load_query_map(settings, backend, store, index=index)
    outputs = {"key": None if where is None else where[0]}
    if fitted is None:
        return StageOutcome("query-map", True, "", outputs, "generated-query map: off")
    message = f"generated-query map of {fitted.encoder_version} and {fitted.generator_version}"
    return StageOutcome(
        "query-map", stored, "", outputs, message + (" (stored)" if stored else ": fitted")
    )


def model_keys(settings: Settings) -> dict[str, str]:
    """Store keys of the checkpoints ``settings.models`` names."""
    m = settings.models
    return {
        "gan": checkpoint_key("gan", m.gan, checkpoint_name(m.gan_checkpoint)),
        "encoder": checkpoint_key("encoder", m.encoder, checkpoint_name(m.encoder_checkpoint)),
    }


def evaluate_stage(settings: Settings) -> StageOutcome:
    """The model quality report (:func:`sharpseek.training.evaluate_models.evaluate_checkpoints`) of
    the settings' GAN and encoder versions, stored as JSON under ``pipeline/reports/``."""
    store = open_store(settings)
    keys = model_keys(settings)
    gan_version = GeneratorModel.from_settings(settings, store=store).version
    enc_version = EncoderModel.from_settings(settings, store=store).version
    n = settings.flows.eval_samples
    inputs = {"gan_version": gan_version, "encoder_version": enc_version, "samples": n}
    fp = fingerprint(inputs)
    stage = "evaluate"
    ledger = Ledger(store)
    entry = ledger.current(stage, fp, exists=lambda out: store.exists(out["key"]))
    if entry is not None:
        return _outcome_from(stage, entry, f"evaluation of {gan_version} and {enc_version}")
    report = evaluate_checkpoints(store, gan=keys["gan"], encoder=keys["encoder"], n_generated=n)
    key = f"{REPORTS_PREFIX}/evaluation-{fp}.json"
    store.put_bytes(key, json.dumps(report, indent=2, default=str).encode())
    outputs = {"key": key, "report": _plain(report)}
    ledger.record(stage, fp, inputs, outputs)
    return StageOutcome(stage, False, fp, outputs, f"evaluation report: {key}")


def archives_stage(settings: Settings) -> StageOutcome:
    """Build and publish the TorchServe model archives of the settings' model versions
    through :func:`sharpseek.serving.archives.build_archives`."""
    store = open_store(settings)
    inputs = {
        "gan_version": GeneratorModel.from_settings(settings, store=store).version,
        "encoder_version": EncoderModel.from_settings(settings, store=store).version,
    }
    # the generator's archive packs its directions: a refit or recalibration rebuilds it
    inputs["directions_version"] = DirectionSet.stored_version(store, inputs["gan_version"])
    fp = fingerprint(inputs)
    ledger = Ledger(store)
    entry = ledger.current("archives", fp)
    if entry is not None:
        return _outcome_from("archives", entry, "model archives")
    built = build_archives(settings, store=store)
    archives = [asdict(a) if hasattr(a, "__dataclass_fields__") else a for a in built]
    outputs = {"archives": _plain(archives)}
    ledger.record("archives", fp, inputs, outputs)
    names = ", ".join(str(getattr(a, "file", a)) for a in built)
    return StageOutcome("archives", False, fp, outputs, f"model archives published: {names}")
