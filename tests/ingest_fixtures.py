"""Datasets for tests, made through the one ingest road (plan -> shards -> commit) in this
process, as `sharpseek ingest synthetic|fits` makes them."""

from __future__ import annotations

from sharpseek.config import Settings
from sharpseek.data.dataset import Dataset, load_dataset, open_dataset
from sharpseek.data.store import open_store
from sharpseek.pipeline import ingest_plans


def synthetic_dataset(settings, **recipe) -> Dataset:
    """The synthetic dataset of ``recipe`` (regions, frames, cadence_hours, seed; unset ones
    from the settings' preset), made unless it exists."""
    plan = ingest_plans.plan_ingest_synthetic(settings, **recipe)
    outcome = ingest_plans.run_ingest_plan(settings, plan, progress=False)
    return load_dataset(open_store(settings), "synthetic", outcome.outputs["version"])


def fits_dataset(settings, paths, *, dataset: str = "sharp") -> Dataset:
    """Br FITS files (or folders) ingested into ``dataset``; its latest version."""
    plan = ingest_plans.plan_ingest_fits(settings, paths, dataset=dataset)
    ingest_plans.run_ingest_plan(settings, plan, progress=False)
    return load_dataset(open_store(settings), dataset)


def micro_dataset(home) -> Dataset:
    """The 8-region, 4-frame synthetic dataset of the micro training runs in ``home`` (a
    path), opened from its folder as training reads it."""
    ds = synthetic_dataset(Settings(home=home, preset="tiny"), regions=8, frames=4, seed=0)
    return open_dataset(home / "datasets" / ds.name / ds.version)
