"""Synthetic HARPs: time sequences of emerging and decaying active regions as HMI would see them.

The project's embedded default dataset and the ground truth of its tests. Each synthetic
region is a sequence of CEA Br patches at the ORIGINAL SHARP resolution (0.03 deg/px, about
0.364 Mm/px, Br in gauss, float32, ``br[y, x]`` with x westward and y northward), so it goes
through :func:`sharpseek.data.preprocess.to_model_space` exactly as real data do. Every frame
carries SHARP-like metadata (``meta``) and the true generating quantities (``truth``).

Model, and where each choice comes from (all numbers are fields of :class:`SyntheticModel`)
-------------------------------------------------------------------------------------------
Flux
    Peak total unsigned flux per region log10(Phi/Mx) ~ N(21.4 + class shift, 0.6) clipped
    to [20, 23]: active regions span ~1e20 (ephemeral/small) to ~1e23 Mx with a roughly
    log-normal distribution (Harvey & Zwaan 1993; Zhang, Wang & Liu 2010; the JSOC USFLUX
    of real SHARPs spans 1e19-1e23 Mx). Class shifts: alpha -0.3 dex, beta-gamma +0.4,
    delta +0.6 (complex regions are the big ones; Jaeggli & Norton 2016).
Complexity (Mount Wilson classes, shares close to Jaeggli & Norton 2016)
    62 % 'beta' (one bipole), 12 % 'alpha' (a leading spot with its following flux dispersed
    as weak plage, already decaying), 18 % 'beta-gamma' (the main bipole plus 1-2 smaller
    bipoles of random orientation), 8 % 'delta' (the main bipole plus a compact pair of
    strong opposite spots inside the leading spot's penumbra).
Footpoint separation
    d = 25 Mm (Phi/1e21 Mx)^0.3 x 10^N(0, 0.08) at peak flux (separation grows with flux:
    Wang & Sheeley 1989; Tian, Liu & Wang 2003), i.e. ~12 Mm at 1e20 Mx, ~100 Mm at 1e23 Mx.
    During emergence the footpoints separate from 35 % to 100 % of d (Harvey 1993; Strous et
    al. 1996), during decay by a further 15 %.
Latitude
    The butterfly diagram: mean |lat| = 28 deg exp(-t / 90 months), t since the start of the
    cycle (Hathaway 2011, "A standard law for the equatorward drift"), Gaussian width 6 deg,
    |lat| in [2, 45] deg, either hemisphere with equal chance.
Cycle and Hale's law
    Cycle 24 from Dec 2008, cycle 25 from Dec 2019 (by date only; real cycles overlap). The
    leading polarity of an even cycle is negative in the north and positive in the south,
    the reverse in odd cycles (Hale et al. 1919); 4 % of regions are anti-Hale (Li 2018;
    McClintock, Norton & Li 2014 find ~3-8 %).
Tilt (project convention: angle of the following->leading vector above +x, x westward)
    Joy's law, leading polarity nearer the equator: tilt = -sign(lat) 0.5 |lat| + N(0, 15)
    deg (Wang & Sheeley 1989; Stenflo & Kosovichev 2012; Dasi-Espuig et al. 2010), clipped
    to +-85 deg. During emergence the tilt relaxes to that value from an offset N(0, 10) deg
    (Kosovichev & Stenflo 2008).
Rotation and viewing geometry
    Synodic differential rotation of magnetic features omega = A + B sin^2 + C sin^4 - 0.9856
    deg/day with (A, B, C) = (14.252, -1.678, -2.401) (Snodgrass & Ulrich 1990): ~13.3 deg/day
    at the equator, so LON_FWT increases over the frames. The track stays within +-80 deg of
    the central meridian; when frames x cadence is longer than such a passage the rate is
    scaled down to fit (a stated compromise, only for windows over ~12 days). The patch is
    taken as a CEA map centred on itself (as SHARPs are), so pixel offsets from its centre
    are great-circle offsets: dlat = dy CDELT, dlon = dx CDELT / cos(lat). B0 = 7.25 deg
    sin(2 pi (t - J2000 - 157.75 d) / 365.2422 d) and the Carrington longitude of the
    observer from the mean synodic Carrington period 27.2752316 d plus the equation of the
    centre (both checked against 867 real headers: max errors 0.2 deg and 0.3 deg).
Spots and plage
    Each polarity of a bipole is one spot (compact Gaussian) plus plage (many weaker
    Gaussians around the footpoint). Peak spot field
    B = clip(1800 + 600 log10(Phi_spot/1e21 Mx), 1200, 3000) G and the spot's width follows
    from its flux, Phi = 2 pi sigma^2 B (pixel area) (Solanki 2003: umbral fields 2-3.5 kG,
    pores ~1.5 kG). The leading spot holds 55-75 % of its polarity's flux, the following
    25-50 % (leading spots are more compact: van Driel-Gesztelyi & Green 2015); regions
    below ~3e21 Mx carry less flux in spots (pores). Plage: 16 (Phi/1e20 Mx)^0.45 elements
    per polarity (at most 400) with peak fields 150-500 G at HMI resolution and widths
    1.5-12 px, scattered around the footpoint (outside the spot) with a radius of 0.2 d
    east-west and 0.7 of that north-south, widened where needed so the mean plage field
    stays below 150 G. The radius grows by 60 % over the decay, and spot flux falls twice
    as fast as the total, as spots erode into plage (Martinez Pillet 2002; van
    Driel-Gesztelyi & Green 2015).
Rendering and the box
    Components are rendered as sums of axis-aligned Gaussians, separably and by tiles
    (:func:`render_gaussians`). The HARP box encloses every component at +-2 sigma over all
    frames, plus margins of 8 px and 8 %. That gives boxes of ~120-1100 px by ~60-750 px,
    x usually wider than y, like real SHARPs (57x25 to 1047x476 in the header table).
Life cycle
    The frames span the region's observed life: time s = frame / (frames - 1) in [0, 1];
    peak at s_peak ~ U(0.2, 0.5) (alpha: U(-0.5, 0) - already decaying); flux rises as
    f0 + (1 - f0) sin^2(pi s / 2 s_peak) from f0 ~ U(0.1, 0.3) of the peak (emergence is
    faster than decay: Harvey 1993) and decays exponentially to f_end ~ U(0.35, 0.6) of the
    peak at the last frame. For short windows (the 12 x 6 h default) this compresses a
    life of days to weeks into the window: the shapes, not the absolute rates, are modelled.
    The patch (NAXIS1 x NAXIS2) is fixed per region, as HARP boxes are.
Quiet Sun and noise
    A network of small mixed-polarity elements everywhere (one per 150 px^2, flux log-normal
    with median 1.5e18 Mx and width 0.3 dex truncated at 2 sigma, width 1.2 px: mean |B|
    ~ 10 G; Schrijver et al. 1997), redrawn every frame (the quiet-Sun flux is replaced
    within hours: Hagenaar et al. 2008). Per-pixel Gaussian noise
    sigma = sqrt((8 G mu)^2 + (65 G)^2 (1 - mu^2)): the line-of-sight noise (~8 G for 720 s
    data; Liu et al. 2012) dominates at disk centre, the noisier transverse field (Hoeksema
    et al. 2014) projects into Br toward the limb. The std of pixels with |Br| < 100 G then
    runs ~28 G at mu > 0.9 to ~45 G at mu < 0.7, as in the real samples (20-57 G). Pixels
    beyond the limb (mu <= 0) are NaN, as in real SHARPs.

Reproducibility: ``generate_frames`` derives one child generator per region from
``np.random.default_rng(seed)`` (``Generator.spawn``), so region k is the same however many
regions are asked for. No global random state is used.

Examples
--------
>>> frames = list(generate_frames(regions=2, frames=3, seed=1))
>>> len(frames), frames[0].meta["series"], frames[0].meta["harpnum"], frames[-1].meta["harpnum"]
(6, 'synthetic', 1, 2)
>>> frames[0].br.shape == (frames[0].meta["naxis2"], frames[0].meta["naxis1"])
True
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from scipy.ndimage import gaussian_filter
from tqdm.auto import tqdm

from sharpseek.data.preprocess import heliocentric_mu
from sharpseek.physics.parameters import RSUN_REF, SHARP_PIXEL_SCALE

__all__ = [
    "DEFAULT_MODEL",
    "SERIES",
    "SyntheticFrame",
    "SyntheticModel",
    "generate_frames",
    "generate_region",
    "render_gaussians",
]

#: Series name of synthetic records: (series, HARPNUM, T_REC) never collides with JSOC's.
SERIES = "synthetic"

#: CEA pixel size [deg] (CDELT1 = CDELT2).
PIXEL_DEG = float(SHARP_PIXEL_SCALE.to_value(u.deg))
#: Solar radius of the headers [m].
RSUN_M = float(RSUN_REF.to_value(u.m))
#: Pixel side [Mm] (~0.364 Mm) and area [cm^2] (~1.33e15 cm^2); CEA is equal-area.
PIXEL_MM = math.radians(PIXEL_DEG) * RSUN_M / 1e6
PIXEL_AREA_CM2 = (math.radians(PIXEL_DEG) * RSUN_M * 100.0) ** 2

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


# ----------------------------------------------------------------------------- the region


@dataclass(frozen=True)
class _Polarity:
    """Fixed draws of one footpoint: spot share and plage seeds."""

    sign: int
    spot_fraction: float  # of this polarity's flux at peak
    offsets: np.ndarray  # (K, 2) plage offsets in units of the plage radius
    weights: np.ndarray  # (K,) plage flux shares, sum 1
    fields: np.ndarray  # (K,) plage peak fields [G]
    spread: float  # plage radius multiplier (alpha's following polarity: wider)
    spot_field_g: float | None = None  # fixed spot field (delta pair) or None (from flux)


@dataclass(frozen=True)
class _Bipole:
    share: float  # of the region's flux
    separation_px: float  # at peak
    angle_deg: float  # following -> leading, above +x (the main bipole: Joy tilt)
    centre: tuple[float, float]  # relative px; for the delta pair, offset from main leading
    leading: _Polarity
    following: _Polarity
    anchored: bool = False  # centre is relative to the main bipole's leading footpoint
    plage_radius_px: float = 0.0


@dataclass(frozen=True)
class _Plan:
    complexity: str
    log_peak_flux: float
    lat_deg: float
    lon0_deg: float
    rate_deg_per_day: float
    cycle: int
    leading_sign: int
    hale: bool
    tilt_final_deg: float
    tilt_offset_deg: float
    s_peak: float
    f_start: float
    tau: float  # flux decay time in units of the window
    spot_tau: float
    bipoles: tuple[_Bipole, ...]


def _draw_polarity(
    rng: np.random.Generator,
    sign: int,
    spot_fraction: float,
    n_plage: int,
    model: SyntheticModel,
    spread: float = 1.0,
    spot_field_g: float | None = None,
) -> _Polarity:
    clip = model.plage_offset_clip
    offsets = np.clip(rng.standard_normal((n_plage, 2)), -clip, clip)  # (K, 2)
    weights = rng.lognormal(0.0, model.plage_weight_sigma, n_plage)
    return _Polarity(
        sign=sign,
        spot_fraction=spot_fraction,
        offsets=offsets,
        weights=weights / weights.sum(),
        fields=rng.uniform(*model.plage_field_g, n_plage),
        spread=spread,
        spot_field_g=spot_field_g,
    )


def _draw_plan(
    rng: np.random.Generator, start: dt.datetime, duration_days: float, model: SyntheticModel
) -> _Plan:
    complexity = COMPLEXITY_CLASSES[
        int(rng.choice(len(COMPLEXITY_CLASSES), p=model.complexity_shares))
    ]
    ci = COMPLEXITY_CLASSES.index(complexity)
    log_flux = float(
        np.clip(
            rng.normal(
                model.log_flux_mean + model.complexity_log_flux_shift[ci], model.log_flux_sigma
            ),
            model.log_flux_min,
            model.log_flux_max,
        )
    )
    peak_flux = 10.0**log_flux

    # latitude from the butterfly diagram, hemisphere, cycle and Hale's law
    cycle, cycle_start = _solar_cycle(start)
    months = max((start - cycle_start).days, 0) / _DAYS_PER_MONTH
    lat_mean = model.lat_mean_start_deg * math.exp(-months / model.lat_drift_months)
    abs_lat = float(
        np.clip(
            abs(rng.normal(lat_mean, model.lat_width_deg)),
            model.lat_abs_min_deg,
            model.lat_abs_max_deg,
        )
    )
    north = bool(rng.random() < model.hemisphere_north_probability)
    lat = abs_lat if north else -abs_lat
    hale = bool(rng.random() >= model.anti_hale_fraction)
    leading_sign = _hale_leading_sign(cycle, north) * (1 if hale else -1)

    # rotation: start longitude so the whole track stays within +-lon_max
    rate = _synodic_rate_deg_per_day(lat, model)
    span = rate * duration_days
    if span > 2 * model.lon_max_deg:
        rate = 2 * model.lon_max_deg / duration_days
        span = 2 * model.lon_max_deg
    lon0 = float(rng.uniform(-model.lon_max_deg, model.lon_max_deg - span))

    # Joy's law with scatter, and a relaxing offset during emergence
    tilt = -math.copysign(model.joy_slope * abs_lat, lat) + rng.normal(0.0, model.tilt_scatter_deg)
    tilt = float(np.clip(tilt, -model.tilt_max_deg, model.tilt_max_deg))
    tilt_offset = float(rng.normal(0.0, model.tilt_emergence_offset_deg))

    # life cycle
    peak_range = model.alpha_peak_at if complexity == "alpha" else model.peak_at
    s_peak = float(rng.uniform(*peak_range))
    f_start = float(rng.uniform(*model.start_flux_fraction))
    f_end = float(rng.uniform(*model.end_flux_fraction))
    tau = (1.0 - s_peak) / math.log(1.0 / f_end)
    spot_tau = tau * (1.0 if complexity == "alpha" else model.spot_decay_ratio)

    # the main bipole
    d_mm = (
        model.separation_mm_at_1e21
        * (peak_flux / 1e21) ** model.separation_flux_exponent
        * 10.0 ** rng.normal(0.0, model.separation_scatter_dex)
    )
    d_px = d_mm / PIXEL_MM
    spot_scale = float(
        np.clip(
            (log_flux - model.log_flux_min) / model.spot_full_log_flux_above,
            model.spot_min_scale,
            1.0,
        )
    )
    n_plage = int(
        min(
            model.plage_components_base
            * 10.0 ** (model.plage_components_exponent * (log_flux - 20.0)),
            model.plage_components_max,
        )
    )
    lead_spot = float(rng.uniform(*model.leading_spot_fraction)) * spot_scale
    follow_spot = float(rng.uniform(*model.following_spot_fraction)) * spot_scale
    follow_spread = 1.0
    if complexity == "alpha":
        lead_spot = float(rng.uniform(*model.leading_spot_fraction))
        follow_spot = 0.0
        follow_spread = model.alpha_following_spread

    extra: list[_Bipole] = []
    main_share = 1.0
    if complexity == "beta-gamma":
        n_extra = int(rng.integers(model.beta_gamma_bipoles[0], model.beta_gamma_bipoles[1] + 1))
        for _ in range(n_extra):
            share = float(rng.uniform(*model.beta_gamma_flux_share))
            main_share -= share
            phi = share * peak_flux
            d_sec = (
                model.separation_mm_at_1e21
                * (phi / 1e21) ** model.separation_flux_exponent
                / PIXEL_MM
            )
            r = float(rng.uniform(*model.beta_gamma_offset)) * d_px
            theta = float(rng.uniform(0.0, 2 * math.pi))
            sign = int(rng.choice([-1, 1]))
            n_sec = max(round(n_plage * model.beta_gamma_plage_share), 6)
            lead_frac, follow_frac = model.beta_gamma_spot_fraction
            extra.append(
                _Bipole(
                    share=share,
                    separation_px=d_sec,
                    angle_deg=float(rng.uniform(-180.0, 180.0)),
                    centre=(r * math.cos(theta), r * math.sin(theta)),
                    leading=_draw_polarity(rng, sign, lead_frac * spot_scale, n_sec, model),
                    following=_draw_polarity(rng, -sign, follow_frac * spot_scale, n_sec, model),
                    plage_radius_px=model.plage_spread_fraction * d_sec,
                )
            )
    elif complexity == "delta":
        share = float(rng.uniform(*model.delta_flux_share))
        main_share -= share
        phi_spot = model.delta_spot_fraction * 0.5 * share * peak_flux  # each delta spot
        s_delta = float(_sigma_for(np.array(phi_spot), np.array(model.delta_spot_field_g)))
        s_lead = float(
            _sigma_for(
                np.array(0.5 * lead_spot * main_share * peak_flux),
                _spot_field_g(np.array(0.5 * lead_spot * main_share * peak_flux), model),
            )
        )
        theta = float(rng.uniform(0.0, 2 * math.pi))
        touch = s_lead + s_delta  # the pair's near spot touches the leading spot's penumbra
        sep = model.delta_pair_separation_sigmas * s_delta
        # near spot (opposite to the leading polarity) at `touch`, far spot further out
        centre = ((touch + sep / 2) * math.cos(theta), (touch + sep / 2) * math.sin(theta))
        n_d = model.delta_plage_elements
        frac = model.delta_spot_fraction
        extra.append(
            _Bipole(
                share=share,
                separation_px=sep,
                angle_deg=math.degrees(theta),  # "leading" end = far end: same sign as main lead
                centre=centre,
                anchored=True,
                leading=_draw_polarity(
                    rng, leading_sign, frac, n_d, model, spot_field_g=model.delta_spot_field_g
                ),
                following=_draw_polarity(
                    rng, -leading_sign, frac, n_d, model, spot_field_g=model.delta_spot_field_g
                ),
                plage_radius_px=model.delta_plage_radius_sigmas * s_delta,
            )
        )
    main = _Bipole(
        share=main_share,
        separation_px=d_px,
        angle_deg=tilt,
        centre=(0.0, 0.0),
        leading=_draw_polarity(rng, leading_sign, lead_spot, n_plage, model),
        following=_draw_polarity(rng, -leading_sign, follow_spot, n_plage, model, follow_spread),
        plage_radius_px=model.plage_spread_fraction * d_px,
    )
    return _Plan(
        complexity=complexity,
        log_peak_flux=log_flux,
        lat_deg=lat,
        lon0_deg=lon0,
        rate_deg_per_day=rate,
        cycle=cycle,
        leading_sign=leading_sign,
        hale=hale,
        tilt_final_deg=tilt,
        tilt_offset_deg=tilt_offset,
        s_peak=s_peak,
        f_start=f_start,
        tau=tau,
        spot_tau=spot_tau,
        bipoles=(main, *extra),
    )


@dataclass(frozen=True)
class _Evolution:
    """Scalars of the life cycle at one time s."""

    flux_fraction: float  # of the peak flux
    emergence: float  # g in [0, 1]
    decay: float  # h in [0, 1]
    spot_factor: float  # multiplies the peak spot fractions
    tilt_deg: float


def _evolve(plan: _Plan, s: float, model: SyntheticModel) -> _Evolution:
    if s < plan.s_peak:
        g = math.sin(0.5 * math.pi * s / plan.s_peak) ** 2
        return _Evolution(
            flux_fraction=plan.f_start + (1.0 - plan.f_start) * g,
            emergence=g,
            decay=0.0,
            spot_factor=math.sqrt(g),
            tilt_deg=float(
                np.clip(
                    plan.tilt_final_deg + plan.tilt_offset_deg * (1.0 - g),
                    -model.tilt_max_deg,
                    model.tilt_max_deg,
                )
            ),
        )
    dt_s = s - plan.s_peak
    return _Evolution(
        flux_fraction=math.exp(-dt_s / plan.tau),
        emergence=1.0,
        decay=dt_s / (1.0 - plan.s_peak),
        spot_factor=math.exp(-dt_s / plan.spot_tau),
        tilt_deg=plan.tilt_final_deg,
    )


def _components(plan: _Plan, ev: _Evolution, model: SyntheticModel):
    """AR components at one time: x, y [relative px], sigma [px], flux [Mx] (signed), and
    the main bipole's (separation_px, leading xy, following xy)."""
    total = 10.0**plan.log_peak_flux * ev.flux_fraction
    sep_factor = (
        model.separation_onset_fraction + (1 - model.separation_onset_fraction) * ev.emergence
    ) * (1.0 + model.separation_decay_growth * ev.decay)
    onset = model.plage_onset_radius
    radius_factor = (onset + (1 - onset) * ev.emergence) * (1.0 + model.plage_dispersal * ev.decay)
    xs, ys, ss, fs = [], [], [], []
    main_lead = (0.0, 0.0)
    main_info = None
    for bi, bp in enumerate(plan.bipoles):
        d = bp.separation_px * sep_factor
        angle = math.radians(ev.tilt_deg if bi == 0 else bp.angle_deg)
        cx, cy = bp.centre
        if bp.anchored:
            cx, cy = cx + main_lead[0], cy + main_lead[1]
        ux, uy = math.cos(angle), math.sin(angle)
        lead_xy = (cx + 0.5 * d * ux, cy + 0.5 * d * uy)
        follow_xy = (cx - 0.5 * d * ux, cy - 0.5 * d * uy)
        if bi == 0:
            main_lead = lead_xy
            main_info = (d, lead_xy, follow_xy)
        pol_flux = 0.5 * bp.share * total
        for pol, (px, py) in ((bp.leading, lead_xy), (bp.following, follow_xy)):
            spot_frac = min(pol.spot_fraction * ev.spot_factor, 1.0)
            spot_flux = spot_frac * pol_flux
            spot_sigma = 0.0
            if spot_flux > 0:
                b = (
                    np.array(pol.spot_field_g)
                    if pol.spot_field_g is not None
                    else _spot_field_g(np.array(spot_flux), model)
                )
                spot_sigma = max(float(_sigma_for(np.array(spot_flux), b)), model.spot_sigma_min_px)
                xs.append(np.array([px]))
                ys.append(np.array([py]))
                ss.append(np.array([spot_sigma]))
                fs.append(np.array([pol.sign * spot_flux]))
            plage_total = (1.0 - spot_frac) * pol_flux
            plage_flux = plage_total * pol.weights
            # plage radius: the geometric one, widened so the mean plage field stays below
            # plage_mean_field_max_g (flux packed into a small area would make kG "plage")
            r_geom = bp.plage_radius_px * radius_factor * pol.spread
            r_flux = float(
                _sigma_for(np.array(plage_total), np.array(model.plage_mean_field_max_g))
            )
            r = math.hypot(r_geom, r_flux)
            # plage surrounds the spot: every element is pushed out by the spot's width
            u = pol.offsets
            push = spot_sigma / np.maximum(np.hypot(u[:, 0], u[:, 1]), 1e-6)  # (K,)
            xs.append(px + (r + push) * u[:, 0])
            ys.append(py + (r * model.plage_aspect_y + push) * u[:, 1])
            ss.append(np.clip(_sigma_for(plage_flux, pol.fields), *model.plage_sigma_px))
            fs.append(pol.sign * plage_flux)
    return (
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(ss),
        np.concatenate(fs),
        main_info,
    )


def generate_region(
    rng: np.random.Generator,
    harpnum: int,
    *,
    frames: int,
    cadence: dt.timedelta,
    start: dt.datetime,
    model: SyntheticModel = DEFAULT_MODEL,
) -> list[SyntheticFrame]:
    """One synthetic HARP: ``frames`` Br patches at a regular cadence through its life.

    Parameters
    ----------
    rng : np.random.Generator
        The region's own generator (all draws come from it, in a fixed order).
    harpnum : int
        HARPNUM of the record (series ``synthetic``).
    frames : int
        Number of frames (>= 1); frame k is at ``start + k * cadence``.
    cadence : datetime.timedelta
        Time between frames (> 0).
    start : datetime.datetime
        T_REC of the first frame (timezone-naive, TAI).
    model : SyntheticModel
        Model parameters.

    Returns
    -------
    list[SyntheticFrame]
        ``frames`` frames of one fixed patch size, Br [G] float32 (ny, nx).

    Raises
    ------
    ValueError
        For ``frames < 1``, a cadence that is not positive, or a timezone-aware start.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1; got {frames}")
    if cadence <= dt.timedelta(0):
        raise ValueError(f"cadence must be positive; got {cadence}")
    if start.tzinfo is not None:
        raise ValueError(f"start must be timezone-naive (TAI); got {start!r}")
    duration_days = (frames - 1) * cadence.total_seconds() / 86400.0
    plan = _draw_plan(rng, start, duration_days, model)

    times = [k / (frames - 1) if frames > 1 else max(plan.s_peak, 0.0) for k in range(frames)]
    evolutions = [_evolve(plan, s, model) for s in times]
    comps = [_components(plan, ev, model) for ev in evolutions]

    # the HARP box: fixed, enclosing every AR component of every frame
    ext = model.box_extent_sigmas
    x_lo = min(float(np.min(c[0] - ext * c[2])) for c in comps)
    x_hi = max(float(np.max(c[0] + ext * c[2])) for c in comps)
    y_lo = min(float(np.min(c[1] - ext * c[2])) for c in comps)
    y_hi = max(float(np.max(c[1] + ext * c[2])) for c in comps)
    margin_x = model.box_margin_px + model.box_margin_fraction * (x_hi - x_lo)
    margin_y = model.box_margin_px + model.box_margin_fraction * (y_hi - y_lo)
    nx = max(int(math.ceil(x_hi - x_lo + 2 * margin_x)), model.box_min_px)
    ny = max(int(math.ceil(y_hi - y_lo + 2 * margin_y)), model.box_min_px)
    # relative px -> patch px: the box centre goes to the patch centre
    box_cx, box_cy = 0.5 * (x_lo + x_hi), 0.5 * (y_lo + y_hi)
    off_x, off_y = (nx - 1) / 2 - box_cx, (ny - 1) / 2 - box_cy

    coslat = math.cos(math.radians(plan.lat_deg))
    peak_flux = 10.0**plan.log_peak_flux
    cdelt = PIXEL_DEG
    out: list[SyntheticFrame] = []
    for k, (ev, (x, y, sig, flux, main_info)) in enumerate(zip(evolutions, comps, strict=True)):
        t_rec = start + k * cadence
        days = k * cadence.total_seconds() / 86400.0
        lon_c = plan.lon0_deg + plan.rate_deg_per_day * days  # main bipole centre
        b0 = _b0_deg(t_rec)
        l0 = _carrington_l0_deg(t_rec)

        amp = flux / (2 * np.pi * sig**2 * PIXEL_AREA_CM2)  # peak field [G]
        br = render_gaussians(ny, nx, x + off_x, y + off_y, sig, amp)  # (ny, nx) [G]
        br += _network(rng, ny, nx, model)

        # patch-centred CEA: local px offsets -> heliographic offsets
        abs_f = np.abs(flux)
        fx = float(np.sum(abs_f * x) / np.sum(abs_f))
        fy = float(np.sum(abs_f * y) / np.sum(abs_f))
        lat_fwt = plan.lat_deg + fy * cdelt
        lon_fwt = lon_c + fx * cdelt / coslat
        lat_p = plan.lat_deg + box_cy * cdelt
        lon_p = lon_c + box_cx * cdelt / coslat

        # per-pixel mu: noise grows toward the limb, NaN beyond it
        lat_px = lat_p + (np.arange(ny, dtype=np.float32) - (ny - 1) / 2) * cdelt  # (ny,)
        lon_px = lon_p + (np.arange(nx, dtype=np.float32) - (nx - 1) / 2) * cdelt / coslat
        mu_px = np.asarray(
            heliocentric_mu(lat_px[:, None], lon_px[None, :], b0), dtype=np.float32
        )  # (ny, nx)
        mu_c = np.clip(mu_px, 0.0, 1.0)
        sigma_noise = np.sqrt(
            (model.noise_los_g * mu_c) ** 2 + model.noise_transverse_g**2 * (1.0 - mu_c**2)
        )
        br += sigma_noise * rng.standard_normal((ny, nx), dtype=np.float32)
        br[mu_px <= 0] = np.nan
        br = br.astype(np.float32, copy=False)

        sep_px, lead_xy, follow_xy = main_info
        tilt = ev.tilt_deg
        meta = {
            "series": SERIES,
            "harpnum": int(harpnum),
            "t_rec": t_rec,
            "noaa_ar": 0,
            "noaa_ars": "",
            "quality": 0,
            "naxis1": nx,
            "naxis2": ny,
            "cdelt1": cdelt,
            "rsun_ref": RSUN_M,
            "lat_fwt": float(lat_fwt),
            "lon_fwt": float(lon_fwt),
            "crval1": float((lon_p + l0) % 360.0),
            "crval2": float(lat_p),
            "crln_obs": float(l0),
            "crlt_obs": float(b0),
            "mu": float(heliocentric_mu(lat_fwt, lon_fwt, b0)),
            "usflux": float("nan"),
            "r_value": float("nan"),
        }
        truth = {
            "flux_mx": float(np.sum(abs_f)),
            "separation_mm": float(sep_px * PIXEL_MM),
            "separation_px": float(sep_px),
            "tilt_deg": float(tilt),
            "leading_sign": int(plan.leading_sign),
            "hale": plan.hale,
            "joy": bool(-math.copysign(1.0, plan.lat_deg) * tilt > 0),
            "complexity": plan.complexity,
            "phase": "emerging" if times[k] < plan.s_peak else "decaying",
            "frame": k,
            "region_peak_flux_mx": float(peak_flux),
            "cycle": plan.cycle,
            "lead_x_px": float(lead_xy[0] + off_x),
            "lead_y_px": float(lead_xy[1] + off_y),
            "follow_x_px": float(follow_xy[0] + off_x),
            "follow_y_px": float(follow_xy[1] + off_y),
        }
        out.append(SyntheticFrame(br=br, meta=meta, truth=truth))
    return out


def _window_steps(cadence: dt.timedelta, frames: int, model: SyntheticModel) -> int:
    """How many cadence-grid starts (from ``model.date_min``) keep the last frame before
    ``model.date_max``; raises when there is none."""
    steps = int((model.date_max - model.date_min) / cadence) - (frames - 1)
    if steps < 1:
        raise ValueError(
            f"{frames} frames at {cadence} do not fit between {model.date_min} and {model.date_max}"
        )
    return steps


def _draw_start(
    rng: np.random.Generator, cadence: dt.timedelta, frames: int, model: SyntheticModel
) -> dt.datetime:
    """A start on the cadence grid counted from ``model.date_min``."""
    return model.date_min + int(rng.integers(0, _window_steps(cadence, frames, model))) * cadence


def generate_frames(
    *,
    regions: int,
    frames: int,
    cadence_hours: float = 6.0,
    seed: int = 0,
    start: dt.datetime | None = None,
    progress: bool = False,
    model: SyntheticModel = DEFAULT_MODEL,
    first_region: int = 0,
) -> Iterator[SyntheticFrame]:
    """The frames of ``regions`` synthetic HARPs, region by region, frame by frame.

    Parameters
    ----------
    regions : int
        Number of regions (>= 0); HARPNUMs 1..regions.
    frames : int
        Frames per region (>= 1).
    cadence_hours : float
        Time between frames [h].
    seed : int
        Seed of ``np.random.default_rng``; region k uses the k-th spawned child generator,
        so it does not depend on ``regions``.
    start : datetime.datetime, optional
        T_REC of every region's first frame (naive, TAI). When None, each region draws its
        own start in [model.date_min, model.date_max] on the cadence grid counted from
        ``model.date_min`` (the draw is made either way, so the rest of a region does not
        depend on whether ``start`` is given, apart from the date itself).
    progress : bool
        Show a tqdm progress bar over regions.
    model : SyntheticModel
        Model parameters.
    first_region : int
        Start at this region (0-based; HARPNUM ``first_region + 1``): a shard of the recipe
        whose regions are identical to the same regions of the full run.

    Returns
    -------
    Iterator[SyntheticFrame]
        Arguments are checked at the call; frames are generated lazily as it is consumed.

    Raises
    ------
    ValueError
        For ``regions < 0``, ``frames < 1``, ``cadence_hours <= 0``, a timezone-aware
        ``start``, or a window that does not fit in the model's date range.
    """
    if regions < 0:
        raise ValueError(f"regions must be >= 0; got {regions}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1; got {frames}")
    if not cadence_hours > 0:
        raise ValueError(f"cadence_hours must be > 0; got {cadence_hours}")
    if start is not None and start.tzinfo is not None:
        raise ValueError(f"start must be timezone-naive (TAI); got {start!r}")
    if not 0 <= first_region <= regions:
        raise ValueError(f"first_region must be in [0, {regions}]; got {first_region}")
    _window_steps(dt.timedelta(hours=cadence_hours), frames, model)
    return _iter_frames(
        regions,
        frames,
        dt.timedelta(hours=cadence_hours),
        seed,
        start,
        progress,
        model,
        first_region,
    )


def _iter_frames(
    regions: int,
    frames: int,
    cadence: dt.timedelta,
    seed: int,
    start: dt.datetime | None,
    progress: bool,
    model: SyntheticModel,
    first_region: int = 0,
) -> Iterator[SyntheticFrame]:
    parent = np.random.default_rng(seed)
    if first_region:
        parent.spawn(first_region)  # the children of the regions before: skipped, not drawn
    indices = range(first_region, regions)
    if progress:
        indices = tqdm(indices, total=len(indices), unit="region", desc="synthetic HARPs")
    for i in indices:
        child = parent.spawn(1)[0]  # the i-th child: the same for any `regions`
        drawn = _draw_start(child, cadence, frames, model)
        yield from generate_region(
            child,
            i + 1,
            frames=frames,
            cadence=cadence,
            start=drawn if start is None else start,
            model=model,
        )
