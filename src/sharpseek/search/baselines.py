"""The paper's physical baselines of retrieval (nearest neighbour in the normalised (TUF, R, PSEP)
space, Euclidean or Mahalanobis) and the search filters applied to a table of frames, the
way the index applies them to its payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.physics.definitions import BASELINE_PARAMETERS
from sharpseek.search.index import (
    SearchFilter,
)
from sharpseek.search.index.filters import to_tai
from sharpseek.search.index.points import _noaa_lists as lists
from sharpseek.search.index.points import region_key

__all__ = ["PhysicsBaseline", "baseline_features", "filter_mask"]


def baseline_features(table: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
    """(n, 3) float64 (TUF [G px], R [G px], PSEP [model px]) of a table of parameters.

    PSEP is undefined (NaN) for a patch that is not bipolar; here it is taken as 0 px
    (no separation), so every frame has a place in the space. Any other NaN is an error.
    """
    tuf, r, psep = (np.asarray(table[p], dtype=np.float64) for p in BASELINE_PARAMETERS)
    x = np.stack([tuf, r, np.where(np.isfinite(psep), psep, 0.0)], axis=1)  # (n, 3)
    if not np.isfinite(x).all():
        raise ValueError("TUF and R must be finite for the physical baseline")
    return x


@dataclass
class PhysicsBaseline:
    """The paper's baselines: nearest neighbour in the (TUF, R, PSEP) space of real frames.

    ``euclidean``: Euclidean distance after normalising each parameter by the mean and
    standard deviation of the real frames. ``mahalanobis``:
    sqrt((x1 - x2)^T S^-1 (x1 - x2)) with S the covariance of the real features (scale
    invariant, so no normalisation). Fitted on the real frames :meth:`fit` is given.
    """

    features: np.ndarray  # (n, 3) raw features of the real frames
    mean: np.ndarray
    std: np.ndarray
    covariance: np.ndarray

    @classmethod
    def fit(cls, real: pd.DataFrame) -> PhysicsBaseline:
        x = baseline_features(real)
        if len(x) < 4:
            raise ValueError(f"the physical baseline needs at least 4 real frames, got {len(x)}")
        std = x.std(axis=0)
        std[std == 0] = 1.0
        return cls(x, x.mean(axis=0), std, np.cov(x, rowvar=False))

    def transform(self, x: np.ndarray, metric: str) -> np.ndarray:
        """Coordinates in which the metric is Euclidean: z-scores, or whitened features."""
        if metric == "euclidean":
            return (x - self.mean) / self.std
        if metric == "mahalanobis":
            # S^-1 = W W^T with W = L^-T (S = L L^T): |W^T d| is the Mahalanobis distance
            chol = np.linalg.cholesky(self.covariance + 1e-12 * np.eye(len(self.covariance)))
            return np.linalg.solve(chol, (x - self.mean).T).T
        raise ValueError(f"unknown baseline metric {metric!r}; choose euclidean or mahalanobis")

    def distances(self, queries: np.ndarray, metric: str) -> np.ndarray:
        """(m, n) distances from raw query features (m, 3) to every real frame."""
        q = self.transform(np.atleast_2d(np.asarray(queries, np.float64)), metric)
        r = self.transform(self.features, metric)
        d2 = (q**2).sum(1)[:, None] + (r**2).sum(1)[None, :] - 2 * q @ r.T
        return np.sqrt(np.clip(d2, 0, None))


def filter_mask(table: pd.DataFrame, spec: SearchFilter | None) -> np.ndarray:
    """Which rows of a manifest satisfy ``spec`` (the same semantics as the index: closed
    ranges, a null never matches a range, hemisphere strict). For searches over a table,
    e.g. the baselines; a test checks it against the index on the same rows."""
    n = len(table)
    mask = np.ones(n, bool)
    if spec is None:
        return mask

    def col(name: str) -> pd.Series:
        if name not in table.columns:
            raise ValueError(f"unknown filter field {name!r}: not a column of this table")
        return table[name]

    def within(values: pd.Series, low: Any, high: Any) -> np.ndarray:
        v = values.to_numpy()
        ok = pd.notna(values).to_numpy().copy()
        if low is not None:
            ok &= np.where(ok, v >= low, False)
        if high is not None:
            ok &= np.where(ok, v <= high, False)
        return ok

    for name, (low, high) in spec.ranges.items():
        values = col(name)
        if pd.api.types.is_datetime64_any_dtype(values):
            low = None if low is None else to_tai(low)
            high = None if high is None else to_tai(high)
        else:
            values = pd.to_numeric(values, errors="coerce").astype(float)
            values = values.where(np.isfinite(values))
        mask &= within(values, low, high)
    if spec.time is not None:
        mask &= within(pd.to_datetime(col("t_rec")), *spec.time)
    if spec.harpnums is not None:
        mask &= col("harpnum").isin(spec.harpnums).to_numpy()
    if spec.exclude_harpnums is not None:
        mask &= ~col("harpnum").isin(spec.exclude_harpnums).to_numpy()
    if spec.noaa is not None:
        wanted = set(spec.noaa)
        lists = _noaa_lists(table)
        mask &= np.array([bool(wanted & set(ars)) for ars in lists], bool)
    lat = pd.to_numeric(col("lat_fwt"), errors="coerce") if _uses_lat(spec) else None
    if spec.hemisphere == "north":
        mask &= (lat > 0).to_numpy()
    elif spec.hemisphere == "south":
        mask &= (lat < 0).to_numpy()
    if spec.latitude is not None:
        mask &= within(lat, *spec.latitude)
    if spec.mu is not None:
        mask &= within(pd.to_numeric(col("mu"), errors="coerce"), *spec.mu)
    for name, values in spec.equals.items():
        mask &= col(name).isin(values).to_numpy()
    if spec.exclude_regions is not None:
        regions = [region_key(s, h) for s, h in zip(table["series"], table["harpnum"], strict=True)]
        mask &= ~np.isin(regions, list(spec.exclude_regions))
    return mask


def _uses_lat(spec: SearchFilter) -> bool:
    return spec.hemisphere is not None or spec.latitude is not None


def _noaa_lists(table: pd.DataFrame) -> list[list[int]]:
    return lists(table)
