"""Filling the index from a dataset with an encoder: full builds and incremental updates.

``build_index`` embeds every frame of a dataset version with the encoder and fills the
collection of the encoder's version beside the live one (:meth:`VectorIndex.reindex`): the
alias switches only when it is complete. ``update_index`` embeds and adds only the frames
the live collection lacks (definitive records replace their NRT twins).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sharpseek.index.base import EncoderMismatchError, ReindexResult, UpsertResult, VectorIndex

__all__ = ["BuildPlan", "build_index", "embedded_batches", "missing_records", "update_index"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildPlan:
    """What an update would do: the frames of the dataset the live collection lacks."""

    dataset_frames: int
    missing: int


def embedded_batches(
    dataset,
    encoder,
    rows: np.ndarray | None = None,
    *,
    batch_size: int = 512,
    progress: bool = False,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """(manifest rows, embeddings) of a dataset's frames (all, or the row positions
    ``rows``), ``batch_size`` at a time: memory stays bounded for any dataset."""
    from tqdm.auto import tqdm

    positions = np.arange(len(dataset.manifest)) if rows is None else np.asarray(rows, int)
    bar = tqdm(total=len(positions), unit="frame", desc="embedding", disable=not progress)
    try:
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            images = dataset.images(chunk)
            vectors = encoder.embed(images)
            bar.update(len(chunk))
            yield dataset.manifest.iloc[chunk], vectors
    finally:
        bar.close()


def _check_dim(index: VectorIndex, encoder) -> None:
    if int(encoder.dim) != int(index.config.dim):
        raise ValueError(
            f"encoder {encoder.version} makes {encoder.dim}-d embeddings but the index is "
            f"configured for dim={index.config.dim} (SHARPSEEK_INDEX__DIM)"
        )


def build_index(
    index: VectorIndex,
    dataset,
    encoder,
    *,
    drop_previous: bool = False,
    batch_size: int = 512,
    progress: bool = False,
) -> ReindexResult:
    """Embed every frame of ``dataset`` with ``encoder`` into a new collection for the
    encoder's version, then make it live (an interrupted build resumes on rerun)."""
    _check_dim(index, encoder)
    if len(dataset.manifest) == 0:
        raise ValueError(f"dataset {dataset.name}/{dataset.version} has no frames to index")
    batches = embedded_batches(dataset, encoder, batch_size=batch_size, progress=progress)
    return index.reindex(
        encoder.version, batches, dataset_version=dataset.version, drop_previous=drop_previous
    )


def missing_records(index: VectorIndex, manifest: pd.DataFrame) -> np.ndarray:
    """Row positions of ``manifest`` whose records the live collection lacks."""
    ids = manifest["record_id"].astype(str).tolist()
    lacking = set(index.missing(ids))
    return np.array([i for i, r in enumerate(ids) if r in lacking], dtype=int)


def update_index(
    index: VectorIndex,
    dataset,
    encoder,
    *,
    batch_size: int = 512,
    progress: bool = False,
) -> UpsertResult:
    """Add to the live collection the frames of ``dataset`` it lacks (incremental).

    Only the missing frames are embedded. The live collection must be of the encoder's
    version (a new encoder needs :func:`build_index`).
    """
    _check_dim(index, encoder)
    live = index.live()
    if live is None:
        from sharpseek.index.base import EmptyIndexError

        raise EmptyIndexError("nothing is live yet: run a build first (sharpseek index build)")
    if live.encoder_version != encoder.version:
        raise EncoderMismatchError(
            f"the live collection holds encoder version {live.encoder_version!r} but the "
            f"configured encoder is {encoder.version!r}: build a collection for it "
            "(sharpseek index build) or configure the live encoder"
        )
    rows = missing_records(index, dataset.manifest)
    total = UpsertResult()
    if len(rows) == 0:
        return total
    for frame, vectors in embedded_batches(
        dataset, encoder, rows, batch_size=batch_size, progress=progress
    ):
        total += index.upsert_records(
            frame, vectors, encoder_version=encoder.version, dataset_version=dataset.version
        )
    return total
