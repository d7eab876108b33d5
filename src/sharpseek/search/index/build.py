"""A dataset's frames and their embeddings, a batch at a time (bounded memory).

Filling the index is not done here: ``sharpseek index build|update``, the flows and the
pipeline all take one road, :func:`sharpseek.pipeline.index_plans.plan_index` (what is missing) ->
:func:`sharpseek.pipeline.index_plans.embed_shard` (embedding shards, through the model backends) ->
:func:`sharpseek.pipeline.index_plans.apply_index_plan` (the writes, and the alias switch of a new
collection). This module keeps the batch iterator the retrieval evaluation embeds with.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

__all__ = ["embedded_batches"]


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
