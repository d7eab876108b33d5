"""The knobs and the output of the synthetic HARPs (:mod:`sharpseek.data.synthetic`): the
:class:`SyntheticModel` (every physical choice, with its default and unit), the
:class:`SyntheticFrame` a region yields per time step, and the SHARP CEA grid they are drawn on.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np

from sharpseek.physics.definitions import RSUN_REF, SHARP_PIXEL_SCALE

__all__ = ["DEFAULT_MODEL", "SERIES", "SyntheticFrame", "SyntheticModel"]

#: Series name of synthetic records: (series, HARPNUM, T_REC) never collides with JSOC's.
SERIES = "synthetic"

#: CEA pixel size [deg] (CDELT1 = CDELT2).
PIXEL_DEG = float(SHARP_PIXEL_SCALE.to_value(u.deg))
#: Solar radius of the headers [m].
RSUN_M = float(RSUN_REF.to_value(u.m))
#: Pixel side [Mm] (~0.364 Mm) and area [cm^2] (~1.33e15 cm^2); CEA is equal-area.
PIXEL_MM = math.radians(PIXEL_DEG) * RSUN_M / 1e6
PIXEL_AREA_CM2 = (math.radians(PIXEL_DEG) * RSUN_M * 100.0) ** 2

COMPLEXITY_CLASSES = ("beta", "alpha", "beta-gamma", "delta")


@dataclass(frozen=True)
class SyntheticModel:
    """Parameters of the synthetic active-region model (see the module docstring)."""

    # --- flux: log10(Phi / Mx) ~ N(mean + class shift, sigma) clipped to [min, max]
    log_flux_mean: float = 21.4
    log_flux_sigma: float = 0.6
    log_flux_min: float = 20.0
    log_flux_max: float = 23.0
    #: Shares of the Mount Wilson classes, in the order of COMPLEXITY_CLASSES.
    complexity_shares: tuple[float, ...] = (0.62, 0.12, 0.18, 0.08)
    #: Shift of the mean log flux per class [dex], same order.
    complexity_log_flux_shift: tuple[float, ...] = (0.0, -0.3, 0.4, 0.6)
    # --- footpoint separation at peak: d = d0 (Phi / 1e21 Mx)^exponent 10^N(0, scatter)
    separation_mm_at_1e21: float = 25.0
    separation_flux_exponent: float = 0.3
    separation_scatter_dex: float = 0.08
    #: Separation at emergence onset as a fraction of the peak separation.
    separation_onset_fraction: float = 0.35
    #: Further relative growth of the separation over the decay.
    separation_decay_growth: float = 0.15
    # --- latitude (Hathaway 2011): mean |lat| = start exp(-months / drift), Gaussian width
    lat_mean_start_deg: float = 28.0
    lat_drift_months: float = 90.0
    lat_width_deg: float = 6.0
    lat_abs_min_deg: float = 2.0
    lat_abs_max_deg: float = 45.0
    # --- dates drawn when no start is given (the paper's span, May 2010 - July 2023)
    date_min: dt.datetime = dt.datetime(2010, 5, 1)
    date_max: dt.datetime = dt.datetime(2023, 7, 31)
    # --- rotation (Snodgrass & Ulrich 1990, magnetic features; sidereal deg/day)
    rotation_a: float = 14.252
    rotation_b: float = -1.678
    rotation_c: float = -2.401
    #: Earth's mean orbital rate [deg/day], sidereal -> synodic.
    earth_orbit_rate: float = 0.9856
    #: The track stays within +-lon_max_deg of the central meridian [deg].
    lon_max_deg: float = 80.0
    # --- tilt (Joy's law) and Hale's law
    joy_slope: float = 0.5  # |tilt| ~ slope * |lat|
    tilt_scatter_deg: float = 15.0
    tilt_emergence_offset_deg: float = 10.0
    tilt_max_deg: float = 85.0
    anti_hale_fraction: float = 0.04
    # --- life cycle, in units of the window s in [0, 1]
    peak_at: tuple[float, float] = (0.2, 0.5)
    alpha_peak_at: tuple[float, float] = (-0.5, 0.0)
    start_flux_fraction: tuple[float, float] = (0.1, 0.3)
    end_flux_fraction: tuple[float, float] = (0.35, 0.6)
    #: Spot decay time / flux decay time (spots erode into plage faster than flux decays).
    spot_decay_ratio: float = 0.5
    # --- spots: B_peak = clip(at_1e21 + per_dex log10(Phi_spot / 1e21), min, max) [G]
    spot_field_at_1e21_g: float = 1800.0
    spot_field_per_dex_g: float = 600.0
    spot_field_min_g: float = 1200.0
    spot_field_max_g: float = 3000.0
    leading_spot_fraction: tuple[float, float] = (0.55, 0.75)
    following_spot_fraction: tuple[float, float] = (0.25, 0.5)
    #: Regions of log flux below 20 + this many dex carry proportionally less spot flux,
    #: down to spot_min_scale of it (small regions have pores).
    spot_full_log_flux_above: float = 1.5
    spot_min_scale: float = 0.3
    spot_sigma_min_px: float = 1.0
    # --- plage
    plage_field_g: tuple[float, float] = (150.0, 500.0)
    plage_weight_sigma: float = 0.8  # plage element flux shares ~ log-normal(0, this), normed
    plage_sigma_px: tuple[float, float] = (1.5, 12.0)
    #: Plage elements per polarity of the main bipole: base (Phi / 1e20 Mx)^exponent, <= max.
    plage_components_base: int = 16
    plage_components_exponent: float = 0.45
    plage_components_max: int = 400
    plage_spread_fraction: float = 0.2  # plage radius / peak separation
    plage_dispersal: float = 0.6  # the radius grows by (1 + this) over the decay
    plage_offset_clip: float = 2.0  # plage offsets in units of the radius, clipped
    plage_aspect_y: float = 0.7  # N-S / E-W plage radius: regions are elongated E-W
    plage_mean_field_max_g: float = 150.0  # the plage radius keeps the mean field below this
    #: Plage radius factor at emergence onset (it reaches 1 at peak): plage spreads as the
    #: flux emerges.
    plage_onset_radius: float = 0.6
    alpha_following_spread: float = 2.5  # alpha: the following plage is this much wider
    # --- extra bipoles
    beta_gamma_bipoles: tuple[int, int] = (1, 2)
    beta_gamma_flux_share: tuple[float, float] = (0.15, 0.3)  # each, of the region's flux
    beta_gamma_offset: tuple[float, float] = (0.3, 0.8)  # from the centre, x peak separation
    beta_gamma_spot_fraction: tuple[float, float] = (0.5, 0.3)  # leading, following
    beta_gamma_plage_share: float = 1 / 3  # plage elements, relative to the main bipole
    delta_flux_share: tuple[float, float] = (0.15, 0.3)
    delta_spot_fraction: float = 0.9  # of each delta polarity's flux, in its spot
    delta_spot_field_g: float = 2500.0
    delta_pair_separation_sigmas: float = 2.5
    delta_plage_elements: int = 6  # per polarity
    delta_plage_radius_sigmas: float = 2.0  # plage radius, in delta spot widths
    # --- quiet-Sun network
    network_area_px_per_element: float = 150.0
    network_flux_median_mx: float = 1.5e18
    network_flux_sigma_dex: float = 0.3  # log-normal width, truncated at +-2 sigma
    network_sigma_px: float = 1.2
    # --- noise: sigma = sqrt((los mu)^2 + transverse^2 (1 - mu^2)) [G]
    noise_los_g: float = 8.0
    noise_transverse_g: float = 65.0
    # --- HARP box: encloses AR components at +-extent sigma over all frames, plus margins
    box_extent_sigmas: float = 2.0
    box_margin_px: float = 8.0
    box_margin_fraction: float = 0.08
    box_min_px: int = 24
    hemisphere_north_probability: float = 0.5

    def __post_init__(self) -> None:
        if len(self.complexity_shares) != len(COMPLEXITY_CLASSES):
            raise ValueError(
                f"complexity_shares needs {len(COMPLEXITY_CLASSES)} values, one per class "
                f"{COMPLEXITY_CLASSES}; got {len(self.complexity_shares)}"
            )
        if not math.isclose(sum(self.complexity_shares), 1.0, abs_tol=1e-9):
            raise ValueError(f"complexity_shares must sum to 1; got {self.complexity_shares}")


DEFAULT_MODEL = SyntheticModel()


@dataclass(frozen=True)
class SyntheticFrame:
    """One synthetic SHARP record.

    Attributes
    ----------
    br : np.ndarray
        (NAXIS2, NAXIS1) = (ny, nx) float32 radial field [G]; x westward, y northward;
        NaN beyond the limb.
    meta : dict
        SHARP-like header values: series, harpnum, t_rec (naive datetime, TAI), noaa_ar,
        noaa_ars, quality, naxis1, naxis2, cdelt1 [deg], rsun_ref [m], lat_fwt, lon_fwt,
        crval1, crval2, crln_obs, crlt_obs [deg], mu, usflux and r_value (NaN: no JSOC value).
    truth : dict
        What generated the frame: flux_mx (total unsigned flux of the AR's components [Mx];
        network and noise excluded), separation_mm and separation_px (main bipole's
        footpoint centres, original px), tilt_deg (project convention, (-90, 90)),
        leading_sign (+1/-1), hale, joy (bool), complexity ('alpha', 'beta', 'beta-gamma',
        'delta'), phase ('emerging' while the flux grows, else 'decaying'), frame (index in
        the region), region_peak_flux_mx, cycle (solar cycle number), and the main bipole's
        footpoints in patch px: lead_x_px, lead_y_px, follow_x_px, follow_y_px.
    """

    br: np.ndarray
    meta: dict
    truth: dict
