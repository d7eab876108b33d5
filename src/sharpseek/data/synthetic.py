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

import numpy as np
from tqdm.auto import tqdm

from sharpseek.data.preprocess import heliocentric_mu
from sharpseek.data.synthetic_model import (
    DEFAULT_MODEL,
    PIXEL_AREA_CM2,
    PIXEL_DEG,
    PIXEL_MM,
    RSUN_M,
    SERIES,
    SyntheticFrame,
    SyntheticModel,
)
from sharpseek.data.synthetic_plan import _components, _draw_plan, _Evolution, _evolve, _Plan
from sharpseek.data.synthetic_sun import _b0_deg, _carrington_l0_deg, _network, render_gaussians

__all__ = ["generate_frames", "generate_region"]


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
    box = _harp_box(comps, model)
    out: list[SyntheticFrame] = []
    for k, (ev, comp) in enumerate(zip(evolutions, comps, strict=True)):
        t_rec = start + k * cadence
        days = k * cadence.total_seconds() / 86400.0
        pointing = _pointing(plan, comp, box, t_rec, days)
        br = _render_br(rng, comp, box, pointing, model)
        out.append(
            SyntheticFrame(
                br=br,
                meta=_frame_meta(harpnum, t_rec, box, pointing),
                truth=_frame_truth(plan, ev, comp, box, k, times[k]),
            )
        )
    return out


@dataclass(frozen=True)
class _HarpBox:
    """A region's fixed HARP box: the patch size [px] and the box centre in relative px (the
    main bipole's centre is 0, 0); relative px + (off_x, off_y) = patch px."""

    nx: int
    ny: int
    cx: float
    cy: float
    off_x: float
    off_y: float


def _harp_box(comps: list, model: SyntheticModel) -> _HarpBox:
    """The box enclosing every AR component of every frame (``comps``: one
    :func:`_components` result per frame) at +-``box_extent_sigmas``, plus the margins."""
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
    return _HarpBox(nx, ny, box_cx, box_cy, off_x, off_y)


@dataclass(frozen=True)
class _Pointing:
    """Where one frame lies on the Sun [deg]: its flux-weighted centre, the patch centre and
    the observer (B0, Carrington L0); ``coslat`` scales CEA x offsets to longitude."""

    lat_fwt: float
    lon_fwt: float
    lat_patch: float
    lon_patch: float
    b0: float
    l0: float
    coslat: float


def _pointing(
    plan: _Plan, comp: tuple, box: _HarpBox, t_rec: dt.datetime, days: float
) -> _Pointing:
    """The frame's :class:`_Pointing` at ``days`` after the first frame: patch-centred CEA,
    so local px offsets are heliographic offsets (``comp``: its :func:`_components`)."""
    x, y, _, flux, _ = comp
    coslat = math.cos(math.radians(plan.lat_deg))
    cdelt = PIXEL_DEG
    lon_c = plan.lon0_deg + plan.rate_deg_per_day * days  # main bipole centre
    abs_f = np.abs(flux)
    fx = float(np.sum(abs_f * x) / np.sum(abs_f))
    fy = float(np.sum(abs_f * y) / np.sum(abs_f))
    return _Pointing(
        lat_fwt=plan.lat_deg + fy * cdelt,
        lon_fwt=lon_c + fx * cdelt / coslat,
        lat_patch=plan.lat_deg + box.cy * cdelt,
        lon_patch=lon_c + box.cx * cdelt / coslat,
        b0=_b0_deg(t_rec),
        l0=_carrington_l0_deg(t_rec),
        coslat=coslat,
    )


def _render_br(
    rng: np.random.Generator,
    comp: tuple,
    box: _HarpBox,
    pointing: _Pointing,
    model: SyntheticModel,
) -> np.ndarray:
    """The frame's Br [G], float32 (ny, nx): the AR components, the quiet-Sun network, then
    per-pixel noise that grows toward the limb, NaN beyond it (two draws from ``rng``)."""
    x, y, sig, flux, _ = comp
    nx, ny, cdelt = box.nx, box.ny, PIXEL_DEG
    amp = flux / (2 * np.pi * sig**2 * PIXEL_AREA_CM2)  # peak field [G]
    br = render_gaussians(ny, nx, x + box.off_x, y + box.off_y, sig, amp)  # (ny, nx) [G]
    br += _network(rng, ny, nx, model)
    lat_px = pointing.lat_patch + (np.arange(ny, dtype=np.float32) - (ny - 1) / 2) * cdelt
    lon_px = (
        pointing.lon_patch
        + (np.arange(nx, dtype=np.float32) - (nx - 1) / 2) * cdelt / pointing.coslat
    )
    mu_px = np.asarray(
        heliocentric_mu(lat_px[:, None], lon_px[None, :], pointing.b0), dtype=np.float32
    )  # (ny, nx)
    mu_c = np.clip(mu_px, 0.0, 1.0)
    sigma_noise = np.sqrt(
        (model.noise_los_g * mu_c) ** 2 + model.noise_transverse_g**2 * (1.0 - mu_c**2)
    )
    br += sigma_noise * rng.standard_normal((ny, nx), dtype=np.float32)
    br[mu_px <= 0] = np.nan
    return br.astype(np.float32, copy=False)


def _frame_meta(harpnum: int, t_rec: dt.datetime, box: _HarpBox, pointing: _Pointing) -> dict:
    """The frame's SHARP-like header keywords (metadata names)."""
    lat_fwt, lon_fwt, b0, l0 = pointing.lat_fwt, pointing.lon_fwt, pointing.b0, pointing.l0
    return {
        "series": SERIES,
        "harpnum": int(harpnum),
        "t_rec": t_rec,
        "noaa_ar": 0,
        "noaa_ars": "",
        "quality": 0,
        "naxis1": box.nx,
        "naxis2": box.ny,
        "cdelt1": PIXEL_DEG,
        "rsun_ref": RSUN_M,
        "lat_fwt": float(lat_fwt),
        "lon_fwt": float(lon_fwt),
        "crval1": float((pointing.lon_patch + l0) % 360.0),
        "crval2": float(pointing.lat_patch),
        "crln_obs": float(l0),
        "crlt_obs": float(b0),
        "mu": float(heliocentric_mu(lat_fwt, lon_fwt, b0)),
        "usflux": float("nan"),
        "r_value": float("nan"),
    }


def _frame_truth(plan: _Plan, ev: _Evolution, comp: tuple, box: _HarpBox, k: int, s: float) -> dict:
    """The true generating quantities of frame ``k`` at life time ``s``."""
    flux, (sep_px, lead_xy, follow_xy) = comp[3], comp[4]
    tilt = ev.tilt_deg
    return {
        "flux_mx": float(np.sum(np.abs(flux))),
        "separation_mm": float(sep_px * PIXEL_MM),
        "separation_px": float(sep_px),
        "tilt_deg": float(tilt),
        "leading_sign": int(plan.leading_sign),
        "hale": plan.hale,
        "joy": bool(-math.copysign(1.0, plan.lat_deg) * tilt > 0),
        "complexity": plan.complexity,
        "phase": "emerging" if s < plan.s_peak else "decaying",
        "frame": k,
        "region_peak_flux_mx": float(10.0**plan.log_peak_flux),
        "cycle": plan.cycle,
        "lead_x_px": float(lead_xy[0] + box.off_x),
        "lead_y_px": float(lead_xy[1] + box.off_y),
        "follow_x_px": float(follow_xy[0] + box.off_x),
        "follow_y_px": float(follow_xy[1] + box.off_y),
    }


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
