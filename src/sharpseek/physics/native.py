"""Parameters of a real patch on its native CEA grid and physical quantities at its resolution.

- :func:`patch_quantities` and :func:`model_separation_length` give physical quantities
  (astropy Quantities in Mx and Mm) for real patches at their original resolution.
- :func:`native_parameters` and :func:`r_jsoc` measure a real patch on its native CEA grid
  (SCIENCE.md, "Geometry of a real patch" and "JSOC's R"): ``psep_mm``, ``tilt_cea``,
  ``joy_tilt_cea``, ``flux_imbalance`` and ``r_jsoc``, comparable with JSOC's R_VALUE. These
  are what a real observation has; the model-space ``tilt``, ``psep`` and ``r`` of
  :mod:`sharpseek.physics.parameters` are what the squashed 128 x 128 image (and a generated
  one) has. A 600 x 200 bipole tilted 10 deg measures 28 deg in model space and 10 deg here.
"""

import math
from typing import Any

import astropy.units as u
import numpy as np
from astropy.constants import au
from scipy import ndimage

from sharpseek.physics.definitions import (
    POLARITY_THRESHOLD,
    R_JSOC_BIN,
    R_JSOC_DILATION,
    R_JSOC_FWHM,
    RSUN_REF,
    SHARP_PIXEL_SCALE,
    STRONG_FIELD_THRESHOLD,
)

__all__ = [
    "cea_pixel_side",
    "model_separation_length",
    "native_parameters",
    "patch_quantities",
    "r_jsoc",
    "r_jsoc_bin",
]

_STRONG_G = STRONG_FIELD_THRESHOLD.to_value(u.G)
_THRESHOLD_G = POLARITY_THRESHOLD.to_value(u.G)


# ----------------------------------------------------------------------------------------------
# public API: physical units at original resolution
# ----------------------------------------------------------------------------------------------
@u.quantity_input(pixel_scale=u.deg, rsun_ref=u.m)
def cea_pixel_side(
    pixel_scale: u.Quantity = SHARP_PIXEL_SCALE, rsun_ref: u.Quantity = RSUN_REF
) -> u.Quantity:
    """The side of one CEA pixel on the solar surface [Mm]: ``pixel_scale`` (CDELT1, degrees
    of heliographic angle) times ``rsun_ref`` (0.364 Mm for SHARP's 0.03 deg)."""
    return (pixel_scale.to_value(u.rad) * rsun_ref).to(u.Mm)


@u.quantity_input(br=u.G, pixel_scale=u.deg, rsun_ref=u.m)
def patch_quantities(
    br: u.Quantity, *, pixel_scale: u.Quantity = SHARP_PIXEL_SCALE, rsun_ref: u.Quantity = RSUN_REF
) -> dict[str, u.Quantity]:
    r"""Fluxes and polarity separation of a real patch at its original resolution.

    Parameters
    ----------
    br : astropy Quantity, shape (ny, nx), magnetic field (G, Mx/cm^2, T, ...)
        The radial field of a CEA patch (SHARP segment ``Br``). NaN pixels are ignored.
    pixel_scale : astropy Quantity, angle, optional
        CEA pixel size (CDELT1 = CDELT2); SHARP's 0.03 deg by default.
    rsun_ref : astropy Quantity, length, optional
        Solar radius (header RSUN_REF; 696 Mm by default).

    Returns
    -------
    dict of str to Quantity
        ``unsigned_flux`` [Mx]: :math:`\sum |B_r| A` over all finite pixels.
        ``unsigned_flux_strong`` [Mx]: the same over :math:`|B_r|` > 100 G.
        ``positive_flux`` [Mx]: :math:`\sum B_r A` over :math:`B_r` > 150 G.
        ``negative_flux`` [Mx]: :math:`\sum |B_r| A` over :math:`B_r` < -150 G (positive).
        ``polarity_separation`` [Mm]: distance between the :math:`|B_r|`-weighted centroids of
        those two sets, times the pixel length; NaN Mm unless both are non-empty.

    Raises
    ------
    TypeError, astropy.units.UnitsError
        If an argument is not a Quantity, or not in units of its kind (named in the message).
    ValueError
        If ``br`` is not 2-D.

    Notes
    -----
    CEA is equal-area: every pixel covers :math:`A = (\Delta\theta\, R_\odot)^2` with
    :math:`\Delta\theta` the pixel scale in radians, and measures :math:`\Delta\theta\,
    R_\odot` along either axis (0.3644 Mm for SHARPs). On the real samples (SCIENCE.md) the
    all-pixel flux is 1.3-12x JSOC's USFLUX (noise dominates weak regions) and the strong-field
    flux 1.0-4.1x; USFLUX itself uses JSOC's strong-field mask. The same thresholds define the
    model-space TPF/TNF/PSEP (:func:`compute_parameters`).

    Examples
    --------
    >>> import astropy.units as u, numpy as np
    >>> br = np.zeros((10, 20)) * u.G; br[5, 2] = 1000 * u.G; br[5, 12] = -500 * u.G
    >>> q = patch_quantities(br)
    >>> q["positive_flux"].round(-15), q["polarity_separation"].round(4)
    (<Quantity 1.328e+18 Mx>, <Quantity 3.6442 Mm>)
    """
    field = br.to_value(u.G)  # units stripped here, once: gauss from now on
    if field.ndim != 2:
        raise ValueError(f"br must be a 2-D (ny, nx) patch; got shape {field.shape}")
    length_cm = (pixel_scale.to_value(u.rad) * rsun_ref).to_value(u.cm)  # pixel side [cm]
    area_cm2 = length_cm**2
    absf = np.abs(np.where(np.isfinite(field), field, 0.0))
    with np.errstate(invalid="ignore"):
        pos = field > _THRESHOLD_G
        neg = field < -_THRESHOLD_G
    (pos_x, pos_y), (neg_x, neg_y) = _native_centroids(absf, pos, neg)
    separation_cm = math.hypot(pos_x - neg_x, pos_y - neg_y) * length_cm  # NaN if not bipolar
    return {
        "unsigned_flux": absf.sum() * area_cm2 * u.Mx,
        "unsigned_flux_strong": absf[absf > _STRONG_G].sum() * area_cm2 * u.Mx,
        "positive_flux": absf[pos].sum() * area_cm2 * u.Mx,
        "negative_flux": absf[neg].sum() * area_cm2 * u.Mx,
        "polarity_separation": (separation_cm * u.cm).to(u.Mm),
    }


@u.quantity_input(pixel_scale=u.deg, rsun_ref=u.m)
def model_separation_length(
    dx: Any,
    dy: Any,
    *,
    scale_x: Any,
    scale_y: Any,
    pixel_scale: u.Quantity = SHARP_PIXEL_SCALE,
    rsun_ref: u.Quantity = RSUN_REF,
) -> u.Quantity:
    r"""Length in Mm of a displacement (dx, dy) measured in model pixels of a resized patch.

    Parameters
    ----------
    dx, dy : float or array-like
        Displacement along x (columns) and y (rows) in model pixels (e.g. ``pos_x - neg_x``
        from :func:`compute_parameters`); broadcast together.
    scale_x, scale_y : float or array-like
        The patch's resize scales, original pixels per model pixel along x and y
        (NAXIS1 / 128, NAXIS2 / 128): the resize is anisotropic.
    pixel_scale, rsun_ref : astropy Quantity, optional
        As in :func:`patch_quantities`.

    Returns
    -------
    astropy Quantity [Mm]
        :math:`\sqrt{(dx\, s_x)^2 + (dy\, s_y)^2}\; \Delta\theta\, R_\odot`.

    Examples
    --------
    >>> model_separation_length(10.0, 0.0, scale_x=5.0, scale_y=2.0).round(3)
    <Quantity 18.221 Mm>
    """
    length_mm = cea_pixel_side(pixel_scale, rsun_ref).to_value(u.Mm)
    original = np.hypot(np.multiply(dx, scale_x), np.multiply(dy, scale_y))  # [original px]
    return original * length_mm * u.Mm


@u.quantity_input(br=u.G, pixel_scale=u.deg, rsun_ref=u.m, dsun_obs=u.m)
def native_parameters(
    br: u.Quantity,
    *,
    pixel_scale: u.Quantity = SHARP_PIXEL_SCALE,
    rsun_ref: u.Quantity = RSUN_REF,
    dsun_obs: u.Quantity = au,
    latitude: u.Quantity | None = None,
    los: u.Quantity | None = None,
) -> dict[str, u.Quantity]:
    r"""Geometry, flux balance and JSOC's R of a real patch on its native CEA grid.

    What a real observation has, unlike the model-space values of :func:`compute_parameters`,
    which are measured on the patch squashed to 128 x 128 (SCIENCE.md, "Geometry of a real
    patch at its native scale" and "JSOC's R").

    Parameters
    ----------
    br : astropy Quantity, shape (ny, nx), magnetic field
        The radial field of a CEA patch (SHARP segment ``Br``), unclipped; NaN pixels ignored.
        x (column) grows westward, y (row) northward.
    pixel_scale : astropy Quantity, angle, optional
        CEA pixel size (CDELT1 = CDELT2); SHARP's 0.03 deg by default.
    rsun_ref : astropy Quantity, length, optional
        Solar radius (header RSUN_REF).
    dsun_obs : astropy Quantity, length, optional
        Observer's distance (header DSUN_OBS; 1 au by default): sets JSOC's R bin in arcsec.
    latitude : astropy Quantity, angle, optional
        Latitude of the patch (LAT_FWT); gives ``joy_tilt_cea`` (NaN without one).
    los : astropy Quantity, shape (ny', nx'), optional
        The line-of-sight ``magnetogram`` segment of the same record; ``r_jsoc`` is computed on
        it, as JSOC computes R_VALUE, where given, and on ``br`` otherwise.

    Returns
    -------
    dict of str to Quantity
        ==============  =======  ==============================================================
        key             unit     definition (P = {Br > 150 G}, N = {Br < -150 G}, native px)
        ==============  =======  ==============================================================
        psep_mm         Mm       distance between the :math:`|B_r|`-weighted centroids of P, N
        tilt_cea        deg      angle above +x (west) of following -> leading (larger x)
                                 centroid, in (-90, 90]; 90 when both share x; NaN unless P
                                 and N are both non-empty
        joy_tilt_cea    deg      :math:`-\mathrm{sign}(lat)` tilt_cea; > 0 obeys Joy's law
        r_jsoc          (none)   :func:`r_jsoc` of ``los`` if given, else of ``br``
        flux_imbalance  (none)   :math:`(F_+ - F_-) / (F_+ + F_-)`, F over P and N; NaN if both
                                 are empty
        ==============  =======  ==============================================================

    Notes
    -----
    Lengths are on the CEA plane, where one pixel measures :math:`\Delta\theta\, R_\odot`
    along either axis (0.364 Mm for SHARPs); CEA is equal-area, not conformal, so an angle on
    the plane differs from one on the sphere by the cos(latitude) stretch of the projection
    (x shrunk, y stretched: at 20 deg a true 10 deg tilt reads 11.3 deg). The thresholds are
    those of the model-space parameters; nothing is clipped.

    Examples
    --------
    >>> import astropy.units as u, numpy as np
    >>> br = np.zeros((20, 60)) * u.G; br[5, 10] = -800 * u.G; br[15, 40] = 800 * u.G
    >>> q = native_parameters(br, latitude=-10 * u.deg)
    >>> q["tilt_cea"].round(2), q["joy_tilt_cea"].round(2), q["flux_imbalance"]
    (<Quantity 18.43 deg>, <Quantity 18.43 deg>, <Quantity 0.>)
    """
    field = br.to_value(u.G)  # units stripped here, once: gauss from now on
    if field.ndim != 2:
        raise ValueError(f"br must be a 2-D (ny, nx) patch; got shape {field.shape}")
    length_mm = cea_pixel_side(pixel_scale, rsun_ref).to_value(u.Mm)
    absf = np.abs(np.where(np.isfinite(field), field, 0.0))
    with np.errstate(invalid="ignore"):
        pos = field > _THRESHOLD_G
        neg = field < -_THRESHOLD_G
    (pos_x, pos_y), (neg_x, neg_y) = _native_centroids(absf, pos, neg)
    dx, dy = pos_x - neg_x, pos_y - neg_y
    if dx == 0:
        tilt = 90.0
    elif math.isnan(dx):
        tilt = math.nan
    else:  # following -> leading: the vector points west (towards larger x)
        tilt = math.degrees(math.atan2(math.copysign(1.0, dx) * dy, abs(dx)))
        tilt = 90.0 if tilt <= -90.0 else tilt + 0.0  # (-90, 90]; + 0.0: no -0.0
    lat = math.nan if latitude is None else float(latitude.to_value(u.deg))
    joy = -math.copysign(1.0, lat) * tilt if lat != 0 and not math.isnan(lat) else math.nan
    f_pos, f_neg = float(absf[pos].sum()), float(absf[neg].sum())
    imbalance = (f_pos - f_neg) / (f_pos + f_neg) if f_pos + f_neg > 0 else math.nan
    return {
        "psep_mm": math.hypot(dx, dy) * length_mm * u.Mm,
        "tilt_cea": tilt * u.deg,
        "joy_tilt_cea": joy * u.deg,
        "r_jsoc": r_jsoc(
            br if los is None else los,
            pixel_scale=pixel_scale,
            rsun_ref=rsun_ref,
            dsun_obs=dsun_obs,
        ),
        "flux_imbalance": imbalance * u.dimensionless_unscaled,
    }


@u.quantity_input(pixel_scale=u.deg, rsun_ref=u.m, dsun_obs=u.m)
def r_jsoc_bin(
    *,
    pixel_scale: u.Quantity = SHARP_PIXEL_SCALE,
    rsun_ref: u.Quantity = RSUN_REF,
    dsun_obs: u.Quantity = au,
) -> int:
    r"""Side s of the blocks JSOC's R averages the field over [native px], at least 1.

    :math:`s = \mathrm{round}(2'' / \Delta_{''})` with the CEA pixel seen from the observer,
    :math:`\Delta_{''} = \arctan(R_\odot \Delta\theta / D_{obs})` in arcsec (about 0.5'', so
    s = 4 for SHARPs). Python's ``round`` (half to even), as JSOC's Python port.

    Examples
    --------
    >>> r_jsoc_bin()
    4
    """
    side = (rsun_ref * pixel_scale.to_value(u.rad)).to_value(u.m)
    cdelt_arcsec = math.degrees(math.atan(side / dsun_obs.to_value(u.m))) * 3600.0
    return max(1, int(round(R_JSOC_BIN.to_value(u.arcsec) / cdelt_arcsec)))


@u.quantity_input(field=u.G, pixel_scale=u.deg, rsun_ref=u.m, dsun_obs=u.m)
def r_jsoc(
    field: u.Quantity,
    *,
    pixel_scale: u.Quantity = SHARP_PIXEL_SCALE,
    rsun_ref: u.Quantity = RSUN_REF,
    dsun_obs: u.Quantity = au,
) -> u.Quantity:
    r"""JSOC's R_VALUE recipe (Schrijver's R as SHARP computes it), on a native CEA patch.

    Parameters
    ----------
    field : astropy Quantity, shape (ny, nx), magnetic field
        The line-of-sight ``magnetogram`` segment (as JSOC) or ``Br``; NaN where off-disk/bad.
    pixel_scale, rsun_ref, dsun_obs : astropy Quantity, optional
        CDELT1, RSUN_REF and DSUN_OBS of the record (they set the bin, :func:`r_jsoc_bin`).

    Returns
    -------
    astropy Quantity, dimensionless
        log10 of the Gaussian-weighted unsigned field near the polarity inversion line, or 0
        when that sum is below 1 (G times binned pixels, as JSOC's R_VALUE).

    Notes
    -----
    Bobra et al. (2014), computeR of mbobra/SHARPs ``calculate_sharpkeys.py``:

    1. block mean over s x s native pixels (s = :func:`r_jsoc_bin`, about 4); a trailing
       partial block is padded with 0 G (as ``skimage.measure.block_reduce``), a block holding
       a NaN pixel is NaN;
    2. masks of binned pixels > +150 G and < -150 G;
    3. each dilated with a 3 x 3 box (a pixel is in if any of its 3 x 3 neighbours is; outside
       the patch counts as out) — SCIENCE.md's centred box; the Python port places its 3 x 3
       kernel up to two binned pixels off centre;
    4. the polarity-inversion map is their overlap (1 inside, 0 outside);
    5. blurred with a Gaussian of sigma = 10 / 2.3548 binned px (``scipy.ndimage.
       gaussian_filter`` defaults: mirror-reflected edges, truncated at 4 sigma);
    6. :math:`\sum` blur x |binned field| over finite binned pixels; log10 of it, 0 below 1.

    JSOC applies it to the line-of-sight field: on Br it differs away from disk centre.
    Compare with R_VALUE by value where R_VALUE > 0 and the same segment was used.

    Examples
    --------
    >>> import astropy.units as u, numpy as np
    >>> b = np.zeros((40, 40)); b[:, :20] = 500.0; b[:, 20:] = -500.0
    >>> float(r_jsoc(b * u.G).round(3))
    4.0
    """
    values = field.to_value(u.G)  # units stripped here, once: gauss from now on
    if values.ndim != 2:
        raise ValueError(f"field must be a 2-D (ny, nx) patch; got shape {values.shape}")
    s = r_jsoc_bin(pixel_scale=pixel_scale, rsun_ref=rsun_ref, dsun_obs=dsun_obs)
    ny, nx = values.shape
    padded = np.zeros((-(-ny // s) * s, -(-nx // s) * s))
    padded[:ny, :nx] = values
    binned = padded.reshape(padded.shape[0] // s, s, padded.shape[1] // s, s).mean((1, 3))
    box = np.ones((R_JSOC_DILATION, R_JSOC_DILATION), dtype=bool)
    with np.errstate(invalid="ignore"):
        pos = ndimage.binary_dilation(binned > _THRESHOLD_G, structure=box)
        neg = ndimage.binary_dilation(binned < -_THRESHOLD_G, structure=box)
    weight = ndimage.gaussian_filter((pos & neg).astype(np.float64), R_JSOC_FWHM / 2.3548)
    total = float(np.nansum(weight * np.abs(binned)))
    return (math.log10(total) if total >= 1.0 else 0.0) * u.dimensionless_unscaled


def _native_centroids(
    absf: np.ndarray, pos: np.ndarray, neg: np.ndarray
) -> list[tuple[float, float]]:
    """|B|-weighted centroids (x = column, y = row) of ``pos`` and ``neg``; NaN where empty."""
    rows, cols = np.indices(absf.shape)
    centroids = []
    for mask in (pos, neg):
        w = absf[mask]
        total = w.sum()
        centroids.append(
            (float(np.sum(w * cols[mask]) / total), float(np.sum(w * rows[mask]) / total))
            if total > 0
            else (math.nan, math.nan)
        )
    return centroids
