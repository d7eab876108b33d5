"""The synthetic ingest source: records of generated HARPs, and the version name of a recipe."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sharpseek import __version__
from sharpseek.data.dataset import PatchRecord
from sharpseek.data.ingest_records import (
    DATASET_SCHEMA,
    frame_to_record,
)
from sharpseek.data.synthetic import generate_frames

__all__ = ["synthetic_provenance", "synthetic_records", "synthetic_version"]


def synthetic_version(*, regions: int, frames: int, cadence_hours: float, seed: int) -> str:
    """The version name of a synthetic dataset: its recipe, readable."""
    cadence = f"{cadence_hours:g}".replace(".", "p")
    return f"seed{seed}-r{regions}-f{frames}-c{cadence}h-s{DATASET_SCHEMA}"


def synthetic_records(
    *,
    regions: int,
    frames: int,
    cadence_hours: float,
    seed: int,
    first_region: int = 0,
    progress: bool = False,
) -> Iterator[PatchRecord]:
    """The records of synthetic regions ``first_region``..``regions - 1`` of a recipe (each
    the same whether made alone or with the whole recipe)."""
    for frame in generate_frames(
        regions=regions,
        frames=frames,
        cadence_hours=cadence_hours,
        seed=seed,
        first_region=first_region,
        progress=progress,
    ):
        extra = {f"truth_{k}": v for k, v in frame.truth.items()}
        extra["source"] = "synthetic"
        yield frame_to_record(frame.br, frame.meta, extra)


def synthetic_provenance(
    *, regions: int, frames: int, cadence_hours: float, seed: int
) -> dict[str, Any]:
    """What dataset.json records about how a synthetic version was made."""
    return {
        "source": "synthetic",
        "regions": regions,
        "frames": frames,
        "cadence_hours": cadence_hours,
        "seed": seed,
        "sharpseek_version": __version__,
        "schema": DATASET_SCHEMA,
    }
