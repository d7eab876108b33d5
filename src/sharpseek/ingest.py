"""Ingestion: turn a source of frames into a versioned dataset through one writer.

Every source (synthetic now; local FITS and JSOC in later work) yields the same kind of
frame — Br in gauss at original resolution plus SHARP metadata — and goes through
:func:`frame_to_record`: model-space conversion, physical-unit quantities at original
resolution, then the dataset writer, which adds the model-space parameters per shard.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

from sharpseek import __version__
from sharpseek.config import Settings
from sharpseek.dataset import Dataset, PatchRecord, open_dataset, write_dataset
from sharpseek.physics import compute_parameters, patch_quantities
from sharpseek.preprocess import to_model_space

__all__ = ["frame_to_record", "ingest_synthetic", "synthetic_version", "model_space_annotator"]

log = logging.getLogger(__name__)

#: Bump when the dataset's columns or the preprocessing change, so old versions are not reused.
DATASET_SCHEMA = 1


def frame_to_record(br: np.ndarray, meta: dict[str, Any], extra: dict[str, Any] | None = None):
    """One frame (Br [G], ny x nx, original resolution) -> a :class:`PatchRecord`.

    Adds the resize scales and the physical-unit quantities of SCIENCE.md at original
    resolution: ``flux_mx`` (all pixels), ``flux_strong_mx`` (|Br| > 100 G),
    ``flux_positive_mx``, ``flux_negative_mx`` and ``psep_mm``.
    """
    patch = to_model_space(br)
    quantities = patch_quantities(
        np.asarray(br) * u.G,
        pixel_scale=float(meta.get("cdelt1") or 0.03) * u.deg,
        rsun_ref=float(meta.get("rsun_ref") or 6.96e8) * u.m,
    )
    columns = {
        "scale_x": patch.scale_x,
        "scale_y": patch.scale_y,
        "nan_fraction": patch.nan_fraction,
        "flux_mx": quantities["unsigned_flux"].to_value(u.Mx),
        "flux_strong_mx": quantities["unsigned_flux_strong"].to_value(u.Mx),
        "flux_positive_mx": quantities["positive_flux"].to_value(u.Mx),
        "flux_negative_mx": quantities["negative_flux"].to_value(u.Mx),
        "psep_mm": quantities["polarity_separation"].to_value(u.Mm),
    }
    if extra:
        columns.update(extra)
    return PatchRecord(image=patch.image, meta=dict(meta), columns=columns)


def model_space_annotator(settings: Settings):
    """The per-shard annotation: the batched physics of :mod:`sharpseek.physics`."""

    def annotate(images: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        latitude = np.array([r.get("lat_fwt", np.nan) for r in rows], dtype=np.float64)
        params = compute_parameters(
            images,
            latitude=latitude,
            chunk_size=settings.physics_chunk_size,
        )
        return {k: np.asarray(v) for k, v in params.items()}

    return annotate


def synthetic_version(*, regions: int, frames: int, cadence_hours: float, seed: int) -> str:
    """The version name of a synthetic dataset: its recipe, readable."""
    cadence = f"{cadence_hours:g}".replace(".", "p")
    return f"seed{seed}-r{regions}-f{frames}-c{cadence}h-s{DATASET_SCHEMA}"


def ingest_synthetic(
    settings: Settings,
    *,
    regions: int | None = None,
    frames: int | None = None,
    cadence_hours: float | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Dataset:
    """Generate synthetic HARPs and write them as dataset ``synthetic``.

    Values left as None come from ``settings.synthetic`` (the preset). A version with the same
    recipe that is already complete is reused, not regenerated (the generator is
    deterministic given the recipe), unless ``overwrite``.
    """
    from sharpseek.synthetic import SERIES, generate_frames

    cfg = settings.synthetic
    regions = cfg.regions if regions is None else regions
    frames = cfg.frames if frames is None else frames
    cadence_hours = cfg.cadence_hours if cadence_hours is None else cadence_hours
    seed = cfg.seed if seed is None else seed
    version = synthetic_version(
        regions=regions, frames=frames, cadence_hours=cadence_hours, seed=seed
    )
    final = settings.datasets_dir / SERIES / version
    if final.exists() and not overwrite:
        log.info("dataset %s/%s is up to date; reusing it", SERIES, version)
        return open_dataset(final)

    def records() -> Iterator[PatchRecord]:
        for frame in generate_frames(
            regions=regions,
            frames=frames,
            cadence_hours=cadence_hours,
            seed=seed,
            progress=progress,
        ):
            truth = {f"truth_{k}": v for k, v in frame.truth.items()}
            yield frame_to_record(frame.br, frame.meta, truth)

    provenance = {
        "source": "synthetic",
        "regions": regions,
        "frames": frames,
        "cadence_hours": cadence_hours,
        "seed": seed,
        "sharpseek_version": __version__,
        "schema": DATASET_SCHEMA,
    }
    return write_records(settings, SERIES, version, records(), provenance, overwrite=overwrite)


def write_records(
    settings: Settings,
    name: str,
    version: str,
    records: Iterable[PatchRecord],
    provenance: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Dataset:
    """Write records through the one dataset writer with the model-space physics."""
    root: Path = settings.datasets_dir
    return write_dataset(
        root,
        name,
        version,
        records,
        provenance=provenance,
        annotate=model_space_annotator(settings),
        overwrite=overwrite,
    )
