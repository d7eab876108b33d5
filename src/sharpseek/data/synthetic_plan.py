"""A synthetic region's plan and its evolution: the polarities and bipoles drawn for a region
(Joy's and Hale's laws, complexity class, plage), how they emerge, grow and decay, and the
flux elements of each frame.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from sharpseek.data.synthetic_model import COMPLEXITY_CLASSES, PIXEL_MM, SyntheticModel
from sharpseek.data.synthetic_sun import (
    _DAYS_PER_MONTH,
    _hale_leading_sign,
    _sigma_for,
    _solar_cycle,
    _spot_field_g,
    _synodic_rate_deg_per_day,
)

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


@dataclass(frozen=True)
class _MainSize:
    """The main bipole's size at peak flux: what its extra bipoles scale from too."""

    separation_px: float  # footpoint separation [px]
    spot_scale: float  # spot shares' factor in (0, 1]: small regions hold less flux in spots
    n_plage: int  # plage elements per polarity
    lead_spot: float  # leading spot's share of its polarity's flux
    follow_spot: float  # following spot's share (alpha: 0)
    follow_spread: float  # following plage radius multiplier (alpha: wider)


def _draw_class_and_flux(rng: np.random.Generator, model: SyntheticModel) -> tuple[str, float]:
    """The Mount Wilson class and log10 of the peak unsigned flux [Mx], clipped."""
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
    return complexity, log_flux


def _draw_latitude(
    rng: np.random.Generator, start: dt.datetime, model: SyntheticModel
) -> tuple[int, float, bool, int]:
    """Latitude from the butterfly diagram, hemisphere, cycle and Hale's law: (cycle,
    latitude [deg], whether the region obeys Hale's law, leading polarity's sign)."""
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
    return cycle, lat, hale, leading_sign


def _draw_track(
    rng: np.random.Generator, lat: float, duration_days: float, model: SyntheticModel
) -> tuple[float, float]:
    """Rotation: (rate [deg/day], start longitude [deg]) so the whole track stays within
    +-lon_max."""
    rate = _synodic_rate_deg_per_day(lat, model)
    span = rate * duration_days
    if span > 2 * model.lon_max_deg:
        rate = 2 * model.lon_max_deg / duration_days
        span = 2 * model.lon_max_deg
    lon0 = float(rng.uniform(-model.lon_max_deg, model.lon_max_deg - span))
    return rate, lon0


def _draw_tilt(rng: np.random.Generator, lat: float, model: SyntheticModel) -> tuple[float, float]:
    """Joy's law with scatter, and a relaxing offset during emergence: (final tilt [deg],
    offset at emergence [deg])."""
    abs_lat = abs(lat)
    tilt = -math.copysign(model.joy_slope * abs_lat, lat) + rng.normal(0.0, model.tilt_scatter_deg)
    tilt = float(np.clip(tilt, -model.tilt_max_deg, model.tilt_max_deg))
    tilt_offset = float(rng.normal(0.0, model.tilt_emergence_offset_deg))
    return tilt, tilt_offset


def _draw_life_cycle(
    rng: np.random.Generator, complexity: str, model: SyntheticModel
) -> tuple[float, float, float, float]:
    """(s_peak, f_start, tau, spot_tau): the peak time and the start flux share, and the
    decay times of the flux and of the spots, in units of the window."""
    peak_range = model.alpha_peak_at if complexity == "alpha" else model.peak_at
    s_peak = float(rng.uniform(*peak_range))
    f_start = float(rng.uniform(*model.start_flux_fraction))
    f_end = float(rng.uniform(*model.end_flux_fraction))
    tau = (1.0 - s_peak) / math.log(1.0 / f_end)
    spot_tau = tau * (1.0 if complexity == "alpha" else model.spot_decay_ratio)
    return s_peak, f_start, tau, spot_tau


def _draw_main_size(
    rng: np.random.Generator, complexity: str, log_flux: float, model: SyntheticModel
) -> _MainSize:
    """The main bipole's separation (grows with flux), spot shares and plage elements."""
    peak_flux = 10.0**log_flux
    d_mm = (
        model.separation_mm_at_1e21
        * (peak_flux / 1e21) ** model.separation_flux_exponent
        * 10.0 ** rng.normal(0.0, model.separation_scatter_dex)
    )
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
    return _MainSize(d_mm / PIXEL_MM, spot_scale, n_plage, lead_spot, follow_spot, follow_spread)


def _draw_beta_gamma_bipoles(
    rng: np.random.Generator, peak_flux: float, main: _MainSize, model: SyntheticModel
) -> list[_Bipole]:
    """1-2 smaller bipoles of random orientation around the main one (peak flux in Mx)."""
    extra: list[_Bipole] = []
    n_extra = int(rng.integers(model.beta_gamma_bipoles[0], model.beta_gamma_bipoles[1] + 1))
    for _ in range(n_extra):
        share = float(rng.uniform(*model.beta_gamma_flux_share))
        phi = share * peak_flux
        d_sec = (
            model.separation_mm_at_1e21 * (phi / 1e21) ** model.separation_flux_exponent / PIXEL_MM
        )
        r = float(rng.uniform(*model.beta_gamma_offset)) * main.separation_px
        theta = float(rng.uniform(0.0, 2 * math.pi))
        sign = int(rng.choice([-1, 1]))
        n_sec = max(round(main.n_plage * model.beta_gamma_plage_share), 6)
        lead_frac, follow_frac = model.beta_gamma_spot_fraction
        scale = main.spot_scale
        extra.append(
            _Bipole(
                share=share,
                separation_px=d_sec,
                angle_deg=float(rng.uniform(-180.0, 180.0)),
                centre=(r * math.cos(theta), r * math.sin(theta)),
                leading=_draw_polarity(rng, sign, lead_frac * scale, n_sec, model),
                following=_draw_polarity(rng, -sign, follow_frac * scale, n_sec, model),
                plage_radius_px=model.plage_spread_fraction * d_sec,
            )
        )
    return extra


def _draw_delta_pair(
    rng: np.random.Generator,
    peak_flux: float,
    main: _MainSize,
    leading_sign: int,
    model: SyntheticModel,
) -> _Bipole:
    """A compact pair of strong opposite spots inside the leading spot's penumbra, anchored
    to the main bipole's leading footpoint (peak flux in Mx)."""
    share = float(rng.uniform(*model.delta_flux_share))
    main_share = 1.0 - share
    phi_spot = model.delta_spot_fraction * 0.5 * share * peak_flux  # each delta spot
    s_delta = float(_sigma_for(np.array(phi_spot), np.array(model.delta_spot_field_g)))
    lead_flux = 0.5 * main.lead_spot * main_share * peak_flux
    s_lead = float(_sigma_for(np.array(lead_flux), _spot_field_g(np.array(lead_flux), model)))
    theta = float(rng.uniform(0.0, 2 * math.pi))
    touch = s_lead + s_delta  # the pair's near spot touches the leading spot's penumbra
    sep = model.delta_pair_separation_sigmas * s_delta
    # near spot (opposite to the leading polarity) at `touch`, far spot further out
    centre = ((touch + sep / 2) * math.cos(theta), (touch + sep / 2) * math.sin(theta))
    n_d = model.delta_plage_elements
    frac = model.delta_spot_fraction
    field = model.delta_spot_field_g
    return _Bipole(
        share=share,
        separation_px=sep,
        angle_deg=math.degrees(theta),  # "leading" end = far end: same sign as main lead
        centre=centre,
        anchored=True,
        leading=_draw_polarity(rng, leading_sign, frac, n_d, model, spot_field_g=field),
        following=_draw_polarity(rng, -leading_sign, frac, n_d, model, spot_field_g=field),
        plage_radius_px=model.delta_plage_radius_sigmas * s_delta,
    )


def _draw_plan(
    rng: np.random.Generator, start: dt.datetime, duration_days: float, model: SyntheticModel
) -> _Plan:
    """A region's fixed draws for a window of ``duration_days`` from ``start`` (TAI).

    The draws come from ``rng`` in a fixed order (class and flux, latitude, track, tilt, life
    cycle, main bipole size, extra bipoles, main bipole polarities): the synthetic dataset
    depends on it.
    """
    complexity, log_flux = _draw_class_and_flux(rng, model)
    peak_flux = 10.0**log_flux
    cycle, lat, hale, leading_sign = _draw_latitude(rng, start, model)
    rate, lon0 = _draw_track(rng, lat, duration_days, model)
    tilt, tilt_offset = _draw_tilt(rng, lat, model)
    s_peak, f_start, tau, spot_tau = _draw_life_cycle(rng, complexity, model)
    size = _draw_main_size(rng, complexity, log_flux, model)
    extra: list[_Bipole] = []
    if complexity == "beta-gamma":
        extra = _draw_beta_gamma_bipoles(rng, peak_flux, size, model)
    elif complexity == "delta":
        extra = [_draw_delta_pair(rng, peak_flux, size, leading_sign, model)]
    main_share = 1.0
    for bipole in extra:
        main_share -= bipole.share
    d_px, n_plage = size.separation_px, size.n_plage
    main = _Bipole(
        share=main_share,
        separation_px=d_px,
        angle_deg=tilt,
        centre=(0.0, 0.0),
        leading=_draw_polarity(rng, leading_sign, size.lead_spot, n_plage, model),
        following=_draw_polarity(
            rng, -leading_sign, size.follow_spot, n_plage, model, size.follow_spread
        ),
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
