"""How realistic is a dataset? Distributions compared with real SHARP headers.

Realism is measured, not judged by eye: each comparison pairs a column of a dataset's
manifest with the nearest real SHARP keyword and reports the two-sample Kolmogorov-Smirnov
distance (0: same distribution, 1: disjoint).

The reference is the table of 867 real ``hmi.sharp_cea_720s`` headers in
``../shared/data/sharp-samples`` — six HARPs from 2012-2015, so a narrow sample of the
real population: a KS distance against it is a guide, not a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Comparison", "read_header_table", "compare_with_headers", "flux_balance"]


@dataclass(frozen=True)
class Comparison:
    """One distribution compared: dataset values against real header values."""

    name: str
    label: str  # axis label, with unit
    dataset: np.ndarray
    real: np.ndarray
    ks: float
    log: bool  # whether the quantity is best viewed on a log axis

    @property
    def n(self) -> tuple[int, int]:
        return len(self.dataset), len(self.real)


def read_header_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV of SHARP headers (one row per record, FITS keywords as columns)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"header table {path} not found")
    table = pd.read_csv(path, low_memory=False)
    missing = {"USFLUX", "NAXIS1", "NAXIS2", "LAT_FWT", "MPOS_TOT", "MNEG_TOT"} - set(table)
    if missing:
        raise ValueError(f"header table {path} lacks the columns {sorted(missing)}")
    return table


def flux_balance(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Signed flux imbalance (F+ - F-) / (F+ + F-), in [-1, 1]; NaN where both are zero."""
    positive = np.asarray(positive, dtype=float)
    negative = np.abs(np.asarray(negative, dtype=float))
    total = positive + negative
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (positive - negative) / total, np.nan)


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(stats.ks_2samp(a, b).statistic)


def compare_with_headers(manifest: pd.DataFrame, headers: pd.DataFrame) -> list[Comparison]:
    """Compare a dataset manifest with real headers, quantity by quantity.

    Pairs (dataset column -> real keyword):

    - flux above 100 G at original resolution ``flux_strong_mx`` -> ``USFLUX`` [Mx]
      (USFLUX uses JSOC's own strong-field mask; ours is the nearest simple analogue);
    - patch size ``naxis1``, ``naxis2`` -> ``NAXIS1``, ``NAXIS2`` [px];
    - latitude ``lat_fwt`` -> ``LAT_FWT`` [deg];
    - flux balance from ``flux_positive_mx``/``flux_negative_mx`` (pixels beyond 150 G) ->
      from ``MPOS_TOT``/``MNEG_TOT`` (all pixels of the HARP mask).
    """

    def col(frame: pd.DataFrame, name: str) -> np.ndarray:
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)

    pairs = [
        (
            "flux",
            "unsigned flux [Mx]",
            col(manifest, "flux_strong_mx"),
            col(headers, "USFLUX"),
            True,
        ),
        (
            "naxis1",
            "patch width NAXIS1 [px]",
            col(manifest, "naxis1"),
            col(headers, "NAXIS1"),
            True,
        ),
        (
            "naxis2",
            "patch height NAXIS2 [px]",
            col(manifest, "naxis2"),
            col(headers, "NAXIS2"),
            True,
        ),
        (
            "latitude",
            "latitude LAT_FWT [deg]",
            col(manifest, "lat_fwt"),
            col(headers, "LAT_FWT"),
            False,
        ),
        (
            "flux_balance",
            "flux balance (F+ - F-)/(F+ + F-)",
            flux_balance(col(manifest, "flux_positive_mx"), col(manifest, "flux_negative_mx")),
            flux_balance(col(headers, "MPOS_TOT"), col(headers, "MNEG_TOT")),
            False,
        ),
    ]
    out = []
    for name, label, ours, real, log in pairs:
        ours, real = ours[np.isfinite(ours)], real[np.isfinite(real)]
        if log:  # a log quantity of 0 is "nothing measured" (e.g. USFLUX = 0): leave it out
            ours, real = ours[ours > 0], real[real > 0]
        out.append(Comparison(name, label, ours, real, _ks(ours, real), log))
    return out
