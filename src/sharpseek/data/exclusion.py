"""Which frames training and the index leave out: mostly off the disk, or mostly NaN.

The rule (``settings.quality``): a frame is left out when its fraction of NaN pixels
(off-disk or bad; ``nan_fraction``) exceeds ``max_nan_fraction`` (0.5 by default), or when
its centre's mu = cos(heliocentric angle) is below ``min_mu`` (0 by default: only centres
beyond the limb; a frame of unknown position is kept). Ingest writes the reason of each frame into
the manifest column ``excluded`` ("" for a kept frame) and the rule into the dataset's
provenance; training (:func:`sharpseek.training.common.training_split`) and the index
(:func:`sharpseek.pipeline.index_plans.plan_index`) keep only :func:`usable_rows`; ``sharpseek
dataset show`` counts both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "EXCLUDED_COLUMN",
    "exclusion_counts",
    "exclusion_reasons",
    "exclusion_rule",
    "usable_rows",
]

#: Manifest column holding why a frame is left out ("" when it is kept).
EXCLUDED_COLUMN = "excluded"


def exclusion_rule(settings) -> dict[str, float]:
    """The rule in force, as recorded in a dataset version's provenance."""
    q = settings.quality
    return {"max_nan_fraction": q.max_nan_fraction, "min_mu": q.min_mu}


def exclusion_reasons(
    nan_fraction: Any, mu: Any, *, max_nan_fraction: float, min_mu: float
) -> np.ndarray:
    """Per frame, why it is left out ("" when kept): ``nan_fraction>...``, ``mu<...``.

    >>> exclusion_reasons([0.1, 0.7, 0.0], [0.9, 0.9, -0.2], max_nan_fraction=0.5, min_mu=0.0)
    array(['', 'nan_fraction>0.5', 'mu<0'], dtype=object)
    """
    nan = np.asarray(nan_fraction, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    reasons = np.full(nan.shape, "", dtype=object)
    with np.errstate(invalid="ignore"):
        too_nan = nan > max_nan_fraction
        off_disk = mu < min_mu  # NaN (unknown position): kept
    reasons[off_disk] = f"mu<{min_mu:g}"
    reasons[too_nan] = f"nan_fraction>{max_nan_fraction:g}"
    return reasons


def usable_rows(manifest: pd.DataFrame) -> np.ndarray:
    """Boolean (n,): the frames training and the index keep (all, for a manifest written
    before the ``excluded`` column existed)."""
    if EXCLUDED_COLUMN not in manifest.columns:
        return np.ones(len(manifest), dtype=bool)
    return manifest[EXCLUDED_COLUMN].fillna("").astype(str).eq("").to_numpy()


def exclusion_counts(manifest: pd.DataFrame) -> dict[str, int]:
    """Frames left out, by reason (empty when none is; ``sharpseek dataset show``)."""
    if EXCLUDED_COLUMN not in manifest.columns:
        return {}
    reasons = manifest[EXCLUDED_COLUMN].fillna("").astype(str)
    return {str(k): int(v) for k, v in reasons[reasons != ""].value_counts().items()}
