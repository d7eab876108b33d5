"""The Sun around a synthetic HARP: solar ephemeris (B0, Carrington longitude), the solar cycle
and Hale's law, differential rotation, spot field strength, and the rendering of flux
elements (Gaussians) and of the magnetic network on the CEA grid.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from scipy.ndimage import gaussian_filter

from sharpseek.data.synthetic_model import PIXEL_AREA_CM2, SyntheticModel

__all__ = ["render_gaussians"]

#: Cycle numbers and start dates (minima: Dec 2008 and Dec 2019 per SILSO/NOAA).
CYCLE_STARTS: tuple[tuple[int, dt.datetime], ...] = (
    (22, dt.datetime(1986, 9, 1)),
    (23, dt.datetime(1996, 8, 1)),
    (24, dt.datetime(2008, 12, 1)),
    (25, dt.datetime(2019, 12, 1)),
)

_J2000 = dt.datetime(2000, 1, 1, 12)  # JD 2451545.0 (TAI/TT difference ignored)
_JD_J2000 = 2451545.0
#: JD at Carrington longitude 0 of the observer of rotation 1 (mean synodic period below).
_CARRINGTON_JD0 = 2398140.2270
_CARRINGTON_SYNODIC_DAYS = 27.2752316
#: B0 = 0 (ascending) this many days after J2000, and its amplitude [deg].
_B0_PHASE_DAYS = 157.75
_B0_AMPLITUDE_DEG = 7.25
_TROPICAL_YEAR_DAYS = 365.2422
#: Equation of the centre of the Earth's orbit [deg], applied to the observer's L0, with the
#: Earth's mean anomaly at J2000 [deg] and its rate [deg/day].
_EQUATION_OF_CENTRE_DEG = 1.915
_MEAN_ANOMALY_J2000_DEG = 357.529
_MEAN_ANOMALY_RATE_DEG = 0.98560028
_DAYS_PER_MONTH = 30.44


# ----------------------------------------------------------------------------- geometry


def _days_since_j2000(t: dt.datetime) -> float:
    return (t - _J2000).total_seconds() / 86400.0


def _b0_deg(t: dt.datetime) -> float:
    """Heliographic latitude of the disk centre seen from Earth (CRLT_OBS) [deg], +-0.2 deg."""
    days = _days_since_j2000(t)
    return _B0_AMPLITUDE_DEG * math.sin(2 * math.pi * (days - _B0_PHASE_DAYS) / _TROPICAL_YEAR_DAYS)


def _carrington_l0_deg(t: dt.datetime) -> float:
    """Carrington longitude of the disk centre seen from Earth (CRLN_OBS) [deg], +-0.3 deg."""
    days = _days_since_j2000(t)
    rotations = (days + _JD_J2000 - _CARRINGTON_JD0) / _CARRINGTON_SYNODIC_DAYS
    mean_anomaly = math.radians(_MEAN_ANOMALY_J2000_DEG + _MEAN_ANOMALY_RATE_DEG * days)
    l0 = 360.0 * (1.0 - (rotations % 1.0)) + _EQUATION_OF_CENTRE_DEG * math.sin(mean_anomaly)
    return l0 % 360.0


def _solar_cycle(t: dt.datetime) -> tuple[int, dt.datetime]:
    """(cycle number, cycle start) of a date; dates before the table get its first cycle."""
    number, start = CYCLE_STARTS[0]
    for n, s in CYCLE_STARTS:
        if t >= s:
            number, start = n, s
    return number, start


def _hale_leading_sign(cycle: int, north: bool) -> int:
    """Leading polarity by Hale's law: even cycles negative in the north, positive south."""
    sign = -1 if cycle % 2 == 0 else 1
    return sign if north else -sign


def _synodic_rate_deg_per_day(lat_deg: float, model: SyntheticModel) -> float:
    s2 = math.sin(math.radians(lat_deg)) ** 2
    sidereal = model.rotation_a + model.rotation_b * s2 + model.rotation_c * s2 * s2
    return sidereal - model.earth_orbit_rate


def _spot_field_g(flux_mx: np.ndarray, model: SyntheticModel) -> np.ndarray:
    logf = np.log10(np.maximum(np.abs(flux_mx), 1.0) / 1e21)
    b = model.spot_field_at_1e21_g + model.spot_field_per_dex_g * logf
    return np.clip(b, model.spot_field_min_g, model.spot_field_max_g)


def _sigma_for(flux_mx: np.ndarray, field_g: np.ndarray) -> np.ndarray:
    """Width [px] of a Gaussian of peak field_g holding flux_mx: Phi = 2 pi s^2 B A_px."""
    return np.sqrt(np.abs(flux_mx) / (2 * np.pi * field_g * PIXEL_AREA_CM2))


# ----------------------------------------------------------------------------- rendering


def render_gaussians(
    ny: int,
    nx: int,
    x: np.ndarray,
    y: np.ndarray,
    sigma: np.ndarray,
    amplitude: np.ndarray,
    *,
    tile: int = 128,
    cutoff_sigmas: float = 5.0,
) -> np.ndarray:
    """Sum of K isotropic Gaussians on an (ny, nx) pixel grid, computed separably.

    B[j, i] = sum_k a_k exp(-(i - x_k)^2 / 2 s_k^2) exp(-(j - y_k)^2 / 2 s_k^2), evaluated as
    Gy @ diag(a) @ Gx.T: an (ny x K) by (K x nx) matrix product instead of K full-grid
    evaluations. The grid is cut into ``tile`` x ``tile`` blocks and each block's product
    takes only the components within ``cutoff_sigmas`` of it (the dropped tails are below
    exp(-cutoff^2 / 2) = 4e-6 of a component's peak at the default 5).

    Parameters
    ----------
    ny, nx : int
        Grid size; pixel centres at integer coordinates 0..n-1.
    x, y, sigma, amplitude : np.ndarray
        (K,) centres [px], widths [px] and peak values of the components.
    tile : int
        Block side [px].
    cutoff_sigmas : float
        Components farther than this many widths from a block are left out of it.

    Returns
    -------
    np.ndarray
        (ny, nx) float32.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    sig = np.asarray(sigma, dtype=np.float32)
    amp = np.asarray(amplitude, dtype=np.float32)
    inv = np.float32(1.0) / sig
    ys = np.arange(ny, dtype=np.float32)[:, None]  # (ny, 1)
    xs = np.arange(nx, dtype=np.float32)[:, None]  # (nx, 1)
    gy = np.exp(-0.5 * ((ys - y) * inv) ** 2) * amp  # (ny, K), amplitudes folded in
    gx = np.exp(-0.5 * ((xs - x) * inv) ** 2)  # (nx, K)
    reach = cutoff_sigmas * sig
    out = np.zeros((ny, nx), dtype=np.float32)
    for y0 in range(0, ny, tile):
        y1 = min(y0 + tile, ny)
        in_y = (y + reach >= y0) & (y - reach <= y1 - 1)
        for x0 in range(0, nx, tile):
            x1 = min(x0 + tile, nx)
            keep = np.flatnonzero(in_y & (x + reach >= x0) & (x - reach <= x1 - 1))
            if keep.size:
                out[y0:y1, x0:x1] = gy[y0:y1, keep] @ gx[x0:x1, keep].T  # (ty, tx)
    return out


def _network(rng: np.random.Generator, ny: int, nx: int, model: SyntheticModel) -> np.ndarray:
    """Quiet-Sun network [G], (ny, nx) float32: Poisson-many mixed-polarity elements of one
    width, deposited at pixel centres and smoothed by a normalised Gaussian (all elements
    share a width, so this equals the separable sum of their Gaussians, in O(ny nx))."""
    n_net = int(rng.poisson(nx * ny / model.network_area_px_per_element))
    where = rng.integers(0, ny * nx, n_net)
    flux = (
        model.network_flux_median_mx
        * 10.0 ** (model.network_flux_sigma_dex * np.clip(rng.standard_normal(n_net), -2.0, 2.0))
        * rng.choice([-1.0, 1.0], n_net)
    )
    density = np.bincount(where, weights=flux / PIXEL_AREA_CM2, minlength=ny * nx)  # [G px]
    density = density.reshape(ny, nx).astype(np.float32)
    return gaussian_filter(density, model.network_sigma_px, mode="constant", truncate=3.0)
