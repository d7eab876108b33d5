"""Ground-truth flares of synthetic active regions (issue 23; fixed in docs/synthetic.md).

The demo has no real flares, so each synthetic HARP gets a flare history drawn from a stated
law, written in the shared catalogue's file format (a GOES table and a HARP table) so that
``sharpseek flares load`` reads it like any other, and stored as a catalogue of its own
(:data:`sharpseek.data.flares.SYNTHETIC_PREFIX`: synthetic HARP numbers overlap real ones).

The law
-------
* **Occurrence**: flares of class C1.0 or above of a region form a Poisson process whose
  rate between a frame and the next follows that frame's R (Schrijver 2007, ApJ 655, L117:
  the flare X-ray output of a region over the next 24 h grows about linearly with R, and
  regions without a strong-field polarity inversion line, R = 0, do not produce major
  flares):

      rate [flares >= C1.0 per day] = rate_c_per_day * (R / R_ref) ** r_exponent,

  with R the frame's model-space R (:mod:`sharpseek.physics.parameters`) and R_ref the median R of
  the dataset's frames with R > 0 (model-space R has no absolute scale to borrow Schrijver's
  threshold from, so the law fixes its shape and the demo's rate). Total unsigned flux is not
  a second factor: R grows with it already (Leka & Barnes 2003, ApJ 595, 1296 find the two
  nearly interchangeable as single discriminants).
* **Size**: peak 1-8 A fluxes above C1.0 follow a power law dN/dF ~ F^-alpha with alpha = 2
  (Hudson 1991, Sol. Phys. 133, 357; Aschwanden & Freeland 2012, ApJ 754, 112 measure about
  1.98 on GOES); so about 10 % of flares >= C are >= M and 1 % are >= X.

Each region's draws come from its own generator seeded by (synthetic seed, HARPNUM), so the
table is deterministic from the synthetic seed and a region's flares do not depend on how
many regions there are. The HARP table gives each synthetic HARP the lifetime of its frames
(first T_REC to last T_REC + one cadence) and its HARP number as its NOAA number (the AR
column), so every flare matches by HARPNUM.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from astropy.time import Time

from sharpseek.config import SyntheticSettings
from sharpseek.data.flares import CLASS_FLUX

__all__ = ["SyntheticFlareLaw", "synthetic_flare_tables"]

FLARE_HEADER = [
    "DATE", "START_TIME", "END_TIME", "MAX_TIME", "LOCATION", "CMX", "CMX_VALUE",
    "INTENSITY", "FLUX", "AR", "SHARP",
]  # fmt: skip


@dataclass(frozen=True)
class SyntheticFlareLaw:
    """The flare law of synthetic regions (:meth:`from_settings` of ``settings.synthetic``).

    rate_c_per_day : flares >= C1.0 per day at R = R_ref
    r_exponent : the rate grows as R ** r_exponent (Schrijver 2007: about 1)
    alpha : dN/dF ~ F^-alpha of the peak flux above C1.0
    """

    rate_c_per_day: float
    r_exponent: float
    alpha: float

    @classmethod
    def from_settings(cls, settings: SyntheticSettings) -> SyntheticFlareLaw:
        """The law of ``settings.synthetic`` (its ``flare_*`` fields)."""
        return cls(settings.flare_rate_c_per_day, settings.flare_r_exponent, settings.flare_alpha)


def _utc_minutes(tai: np.ndarray) -> pd.DatetimeIndex:
    """TAI instants as UTC times (the GOES table's clock), to the minute (floor)."""
    utc = Time(tai.astype("datetime64[s]"), scale="tai").utc.to_datetime()
    return pd.DatetimeIndex(utc).floor("min")


def synthetic_flare_tables(
    manifest: pd.DataFrame, *, seed: int, cadence_hours: float, law: SyntheticFlareLaw
) -> tuple[str, str]:
    """The flare table and the HARP table (CSV text, the shared catalogue's format) of the
    synthetic regions of ``manifest``.

    Parameters
    ----------
    manifest : DataFrame
        The synthetic dataset's frames: ``harpnum``, ``t_rec`` (naive TAI) and ``r`` (the
        model-space R of each frame).
    seed : int
        The synthetic seed (``settings.synthetic.seed``).
    cadence_hours : float
        Time between frames [h]: the last frame of a region covers one cadence.
    law : SyntheticFlareLaw

    Returns
    -------
    (flares_csv, harps_csv) : str, str
    """
    frames = manifest[["harpnum", "t_rec", "r"]].copy()
    frames["t_rec"] = pd.to_datetime(frames["t_rec"]).astype("datetime64[s]")
    frames = frames.sort_values(["harpnum", "t_rec"], kind="stable")
    r = frames["r"].to_numpy(float)
    positive = r[np.isfinite(r) & (r > 0)]
    r_ref = float(np.median(positive)) if positive.size else 1.0
    cadence = np.timedelta64(int(round(cadence_hours * 3600)), "s")
    starts, fluxes, harps_of = [], [], []
    harp_rows = []
    for harp, group in frames.groupby("harpnum", sort=True):
        t = group["t_rec"].to_numpy("datetime64[s]")
        rates = law.rate_c_per_day * np.clip(group["r"].to_numpy(float) / r_ref, 0, None) ** (
            law.r_exponent
        )
        rates = np.nan_to_num(rates, nan=0.0)
        ends = np.concatenate([t[1:], [t[-1] + cadence]])
        rng = np.random.default_rng([int(seed), int(harp)])
        span_s = (ends - t).astype(np.int64)
        counts = rng.poisson(rates * span_s / 86400.0)
        for start, span, n in zip(t, span_s, counts, strict=True):
            if n:
                # at least two minutes after the frame: the minute of the UTC table never
                # falls before the HARP's start
                offset = rng.uniform(120, span, size=n).astype(np.int64)
                starts.append(start + offset.astype("timedelta64[s]"))
                u = rng.uniform(size=n)
                # capped at X30, about the largest GOES has seen
                peak = CLASS_FLUX["C"] * (1 - u) ** (-1.0 / (law.alpha - 1.0))
                fluxes.append(np.minimum(peak, 30 * CLASS_FLUX["X"]))
                harps_of.append(np.full(n, int(harp)))
        harp_rows.append(
            {
                "HARPNUM": int(harp),
                "T_START": f"{pd.Timestamp(t[0]):%Y.%m.%d_%H:%M:%S}_TAI",
                "T_END": f"{pd.Timestamp(ends[-1]):%Y.%m.%d_%H:%M:%S}_TAI",
                "NOAA_ARS": str(int(harp)),
                "NX_HMI": 0,
                "NY_HMI": 0,
            }
        )
    start_tai = np.concatenate(starts) if starts else np.zeros(0, "datetime64[s]")
    flux = np.concatenate(fluxes) if fluxes else np.zeros(0)
    harp_of = np.concatenate(harps_of) if harps_of else np.zeros(0, np.int64)
    utc = _utc_minutes(start_tai) if len(start_tai) else pd.DatetimeIndex([])
    letters = np.where(flux >= CLASS_FLUX["X"], "X", np.where(flux >= CLASS_FLUX["M"], "M", "C"))
    scale = np.array([CLASS_FLUX[x] for x in letters]) if len(letters) else np.zeros(0)
    tenths = np.floor(flux / np.where(scale > 0, scale, 1) * 10 + 1e-9).astype(np.int64)
    table = pd.DataFrame(
        {
            "DATE": utc.strftime("%y%m%d"),
            "START_TIME": utc.strftime("%H%M"),
            "END_TIME": "",
            "MAX_TIME": "",
            "LOCATION": "",
            "CMX": letters,
            "CMX_VALUE": tenths,
            "INTENSITY": "",
            "FLUX": "",
            "AR": harp_of,
            "SHARP": harp_of,
        },
        columns=FLARE_HEADER,
    ).sort_values(["DATE", "START_TIME"], kind="stable")
    flares_csv, harps_csv = io.StringIO(), io.StringIO()
    table.to_csv(flares_csv, index=False)
    pd.DataFrame(harp_rows).to_csv(harps_csv, index=False)
    return flares_csv.getvalue(), harps_csv.getvalue()
