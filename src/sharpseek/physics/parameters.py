"""Physical parameters of SHARP-like radial-field patches — the contract of SCIENCE.md.

Two kinds of entry points:

- :func:`compute_parameters` and :func:`polarity_maps` work on model-space images
  b = clip(Br / 1000 G, -1, 1) of shape (N, 128, 128) — generated or resized real patches —
  batched in torch on the images' device. Their values are in *model units* (below); they are
  dimensionless arrays, not Quantities, because a model pixel has no fixed physical size.
- :func:`patch_quantities` and :func:`model_separation_length` give physical quantities
  (astropy Quantities in Mx and Mm) for real patches at their original resolution.
- :func:`native_parameters` and :func:`r_jsoc` measure a real patch on its native CEA grid
  (SCIENCE.md, "Geometry of a real patch" and "JSOC's R"): ``psep_mm``, ``tilt_cea``,
  ``joy_tilt_cea``, ``flux_imbalance`` and ``r_jsoc``, comparable with JSOC's R_VALUE. These
  are what a real observation has; the model-space ``tilt``, ``psep`` and ``r`` are what the
  squashed 128 x 128 image (and a generated one) has. A 600 x 200 bipole tilted 10 deg
  measures 28 deg in model space and 10 deg here.

Model units (``PARAMETER_UNITS``): B = 1000 G * b; "G px" is a sum of |B| [G] over model pixels
(a flux in units of 1000 G x one model pixel's area, divided by 1000); "model px" is a length in
model pixels; SIGMA is in units of b (1 b = 1000 G); GRAD in b per model px.

The definitions follow SCIENCE.md ("Physical parameters") exactly; each is written once here.
Compared with the paper's public reference code, TPF/TNF are sums (not means), PSEP is in model
pixels (not divided by 128 sqrt 2), tilt follows leading/following polarity, and ALPHA fits
k = 1..25 about the exact zero frequency (see SCIENCE.md, "Differences").

References
----------
.. [1] Schrijver, C. J. 2007, "A characteristic magnetic field pattern associated with all
   major solar flares and its use in flare forecasting", ApJ 655, L117, doi:10.1086/511857.
.. [2] Chatterjee, S., Munoz-Jaramillo, A., & Malanushenko, A., "Deep Generative model that
   uses physical quantities to generate and retrieve solar magnetic active regions" (the
   reference paper; its code: doi:10.5281/zenodo.17613896).
"""

import math
from typing import Any

import astropy.units as u
import numpy as np
import torch
from astropy.constants import au
from scipy import ndimage
from tqdm.auto import tqdm

__all__ = [
    "ALPHA_MAX_RING",
    "BASELINE_PARAMETERS",
    "CARD_NATIVE_PARAMETERS",
    "NATIVE_DESCRIPTIONS",
    "POSITION_FIELDS",
    "parameter_definitions",
    "cea_pixel_side",
    "DIRECTION_PARAMETERS",
    "FIELD_SCALE",
    "MODEL_SIZE",
    "NATIVE_PARAMETERS",
    "NATIVE_UNITS",
    "PARAMETER_DESCRIPTIONS",
    "PARAMETER_UNITS",
    "PAPER_PARAMETERS",
    "POLARITY_THRESHOLD",
    "RSUN_REF",
    "R_DILATION_SIZE",
    "SHARP_PIXEL_SCALE",
    "SHIFT_PARAMETERS",
    "SHOWN_PARAMETERS",
    "SIGMA_BINS",
    "STRONG_FIELD_THRESHOLD",
    "compute_parameters",
    "model_separation_length",
    "native_parameters",
    "patch_quantities",
    "polarity_maps",
    "r_jsoc",
    "r_jsoc_bin",
]

#: Side of a model-space patch [model px]. Real patches are resized to MODEL_SIZE x MODEL_SIZE.
MODEL_SIZE = 128
#: Model space is b = clip(Br / FIELD_SCALE, -1, 1).
FIELD_SCALE = 1000 * u.G
#: Polarity threshold: P = {B > th}, N = {B < -th}.
POLARITY_THRESHOLD = 150 * u.G
#: Threshold of the "strong-field" unsigned flux at original resolution.
STRONG_FIELD_THRESHOLD = 100 * u.G
#: Side of the square structuring element used to dilate P and N for Schrijver's R [px].
R_DILATION_SIZE = 7
#: Bins of the histogram SIGMA is fitted to (spanning the image's own min..max).
SIGMA_BINS = 256
#: Rings k = 1..ALPHA_MAX_RING of the radially averaged power spectrum used for ALPHA.
ALPHA_MAX_RING = 25
#: Solar radius used by JSOC (header RSUN_REF).
RSUN_REF = 6.96e8 * u.m
#: SHARP CEA pixel size (CDELT1 = CDELT2).
SHARP_PIXEL_SCALE = 0.03 * u.deg
#: JSOC's R: the field is block-averaged to bins of about this size before the masks.
R_JSOC_BIN = 2.0 * u.arcsec
#: JSOC's R: full width at half maximum of the Gaussian weighting the inversion map [binned px].
R_JSOC_FWHM = 10.0
#: JSOC's R: side of the box each binned polarity mask is dilated with [binned px].
R_JSOC_DILATION = 3

#: Native-scale values of a real patch (:func:`native_parameters`), beside the model-space
#: ``psep``, ``tilt`` and ``r``; each has a model-space counterpart only in name.
NATIVE_PARAMETERS = ("psep_mm", "tilt_cea", "joy_tilt_cea", "r_jsoc", "flux_imbalance")
#: Unit of each native value ("" = dimensionless), for labels.
NATIVE_UNITS: dict[str, str] = {
    "psep_mm": "Mm",
    "tilt_cea": "deg",
    "joy_tilt_cea": "deg",
    "r_jsoc": "",
    "flux_imbalance": "",
}

#: Unit of each value :func:`compute_parameters` returns ("" = dimensionless), for labels.
PARAMETER_UNITS: dict[str, str] = {
    "tuf": "G px",
    "tpf": "G px",
    "tnf": "G px",
    "psep": "model px",
    "r": "G px",
    "tilt": "deg",
    "orientation": "",
    "sigma": "b",
    "alpha": "",
    "grad": "b / model px",
    "bipolar": "",
    "pos_x": "model px",
    "pos_y": "model px",
    "neg_x": "model px",
    "neg_y": "model px",
    "joy_tilt": "deg",
}

#: One-line description of each value :func:`compute_parameters` returns.
PARAMETER_DESCRIPTIONS: dict[str, str] = {
    "tuf": "TUF, total unsigned field: sum of |B| over all pixels",
    "tpf": "TPF, total positive field: sum of B over P = {B > 150 G}",
    "tnf": "TNF, total negative field: sum of |B| over N = {B < -150 G} (positive)",
    "psep": "PSEP, distance between the |B|-weighted centroids of P and N",
    "r": "R (Schrijver 2007): sum of |B| where the 7x7-dilated P and N overlap",
    "tilt": "tilt of the following-to-leading (west) centroid vector above +x, in (-90, 90]",
    "orientation": "+1 if the positive centroid lies west (larger x), -1 if the negative does",
    "sigma": "SIGMA: sigma of the zero-mean Gaussian fitted to the histogram of b",
    "alpha": "ALPHA: minus the log-log slope of the ring-averaged power spectrum, k = 1..25",
    "grad": "GRAD: mean gradient magnitude of b (numpy.gradient)",
    "bipolar": "both P and N are non-empty",
    "pos_x": "x (column) of the |B|-weighted centroid of P",
    "pos_y": "y (row) of the |B|-weighted centroid of P",
    "neg_x": "x (column) of the |B|-weighted centroid of N",
    "neg_y": "y (row) of the |B|-weighted centroid of N",
    "joy_tilt": "hemisphere-corrected tilt -sign(lat) * tilt; > 0 obeys Joy's law",
}

#: One-line description of each native value (:data:`NATIVE_PARAMETERS`), as docs/physics.md
#: "Native definitions" states it.
NATIVE_DESCRIPTIONS: dict[str, str] = {
    "psep_mm": "distance between the |Br|-weighted centroids of P and N on the CEA grid",
    "tilt_cea": "tilt on the CEA grid: following-to-leading (west) centroid vector above +x",
    "joy_tilt_cea": "-sign(LAT_FWT) x tilt_cea: positive for regions obeying Joy's law",
    "r_jsoc": "JSOC's R_VALUE recipe (log10 of R on the 2 arcsec binned, smoothed field)",
    "flux_imbalance": "(F+ - F-) / (F+ + F-), F+ and F- the unsigned fluxes over P and N",
}

#: Where a frame sits on the disk (SHARP header keywords), with its unit and definition.
POSITION_FIELDS: dict[str, tuple[str, str]] = {
    "mu": ("", "cos of the angle from disk centre: 1 at centre, 0 at the limb"),
    "lat_fwt": ("deg", "Stonyhurst latitude of the flux-weighted centre (north +)"),
    "lon_fwt": ("deg", "Stonyhurst longitude of the flux-weighted centre (west +)"),
}


def parameter_definitions() -> list[tuple[str, str, str, str]]:
    """Every parameter the UI shows, as ``(key, unit, kind, definition)`` rows: the model-space
    ones (:data:`SHOWN_PARAMETERS`), the native ones (:data:`NATIVE_PARAMETERS`) and the
    position (:data:`POSITION_FIELDS`); the one table behind the UI's definitions panel and
    docs/physics.md's definition tables."""
    rows = [
        (p, PARAMETER_UNITS[p], "model space", PARAMETER_DESCRIPTIONS[p]) for p in SHOWN_PARAMETERS
    ]
    rows += [(p, NATIVE_UNITS[p], "native", NATIVE_DESCRIPTIONS[p]) for p in NATIVE_PARAMETERS]
    rows += [(k, unit, "position", text) for k, (unit, text) in POSITION_FIELDS.items()]
    return rows


# Parameter lists: each is written here once, for the use its comment names; every module
# (search, UI, CLI, evaluation, directions) imports them rather than keeping its own copy.

#: The paper's eight parameters, in the order of its retrieval table (SCIENCE.md, "The
#: paper's results"): generated against real distributions (GAN quality) and the query/match
#: correlations of the retrieval evaluation.
PAPER_PARAMETERS = ("tuf", "r", "psep", "tpf", "tnf", "sigma", "alpha", "grad")
#: Shown for a query and each of its matches side by side (search results, their JSON, the
#: UI's parameter tables and exports, ``sharpseek shift``'s before/after table): the paper's
#: eight and the tilt.
SHOWN_PARAMETERS = ("tuf", "tpf", "tnf", "psep", "r", "tilt", "sigma", "alpha", "grad")
#: The paper's physical baseline space, nearest neighbour in normalised (TUF, R, PSEP); also
#: the short summary of a match where there is room for three values (the UI's result cards,
#: ``sharpseek search``'s table).
BASELINE_PARAMETERS = ("tuf", "r", "psep")
#: The short summary of a *real* frame (the UI's result cards, ``sharpseek search``'s table),
#: measured on its native CEA grid: what a solar physicist can quote. Generated images have no
#: native grid and are summarised by BASELINE_PARAMETERS (model space), labelled as such.
CARD_NATIVE_PARAMETERS = ("psep_mm", "tilt_cea", "r_jsoc")
#: Directions offered as the UI's sliders (those the direction set has), in this order: the
#: paper's three main directions first.
SHIFT_PARAMETERS = ("tuf", "psep", "r", "tilt", "tpf", "tnf", "sigma", "alpha", "grad")
#: Every per-image value of :func:`compute_parameters` a latent direction is fitted for by
#: default (``sharpseek directions fit``); the centroids and ``joy_tilt`` (which needs a
#: latitude) are not directions.
DIRECTION_PARAMETERS = (
    "tuf", "tpf", "tnf", "psep", "r", "tilt", "orientation", "sigma", "alpha", "grad", "bipolar",
)  # fmt: skip

_TH = POLARITY_THRESHOLD.to_value(u.G) / FIELD_SCALE.to_value(u.G)  # 0.15, in units of b
_G_PER_B = FIELD_SCALE.to_value(u.G)  # 1000 G per unit of b
_STRONG_G = STRONG_FIELD_THRESHOLD.to_value(u.G)
_THRESHOLD_G = POLARITY_THRESHOLD.to_value(u.G)
_SIGMA_GROUP = 2048  # histograms fitted together: the fit's per-step overhead is per group
_CPU_BLOCK = 64  # images processed at once on a CPU (measured fastest on a 2-core EPYC)


# ----------------------------------------------------------------------------------------------
# public API: model space
# ----------------------------------------------------------------------------------------------
def compute_parameters(
    images: Any,
    *,
    latitude: Any = None,
    chunk_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    r"""Physical parameters of model-space images, batched (SCIENCE.md, "Physical parameters").

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor, shape (N, 128, 128)
        Model-space images b = clip(Br / 1000 G, -1, 1) (dimensionless; any real dtype, cast
        to float64). CPU or CUDA tensors are processed where they are.
    latitude : array-like (N,) [deg] or astropy Quantity (angle), optional
        Latitude of each patch (e.g. LAT_FWT); adds ``joy_tilt``.
    chunk_size : int, optional
        Images processed at once; memory stays bounded for any N. On a CPU each chunk is worked
        through in cache-sized blocks of 64 images; on a GPU, use thousands. The SIGMA fit,
        which works on 256-bin histograms rather than images, runs on groups of
        max(chunk_size, 2048).
    device : str or torch.device, optional
        Where to compute (default: where the images are). Results return to the input's
        device (torch) or to numpy.
    progress : bool, optional
        Show a tqdm bar over chunks.

    Returns
    -------
    dict of str to array, each shape (N,)
        numpy arrays for numpy input, torch tensors on the input's device for torch input;
        float64, except ``bipolar`` (bool). Keys and units (model units, see module doc):

        ============  =================  =====================================================
        key           unit               definition (th = 0.15 = 150 G; B = 1000 G * b)
        ============  =================  =====================================================
        tuf           G px               :math:`\sum |B|` over all pixels
        tpf           G px               :math:`\sum B` over P = {b > th}
        tnf           G px               :math:`\sum |B|` over N = {b < -th} (positive)
        psep          model px           distance between the |B|-weighted centroids of P, N
        r             G px               :math:`\sum |B|` over M = dil7(P) & dil7(N) [1]_
        tilt          deg, (-90, 90]     angle of following -> leading (larger x) centroid
        orientation   +1 / -1            +1 if the positive centroid has the larger x
        sigma         b                  sigma of a zero-mean Gaussian fitted to the histogram
        alpha         dimensionless      -slope of log10 P(k) vs log10 k, k = 1..25
        grad          b / model px       mean of sqrt(gx^2 + gy^2) (numpy.gradient)
        bipolar       bool               P and N both non-empty
        pos_x, pos_y  model px           |B|-weighted centroid of P (x = column, y = row)
        neg_x, neg_y  model px           |B|-weighted centroid of N
        joy_tilt      deg                :math:`-\mathrm{sign}(lat)\,` tilt (with latitude)
        ============  =================  =====================================================

    Raises
    ------
    ValueError
        If ``images`` is not (N, 128, 128), holds NaN or inf, is complex or a Quantity with
        units, or if ``latitude`` is not (N,), or ``chunk_size`` < 1.

    Notes
    -----
    NaN marks what is undefined: centroids of an empty polarity; PSEP, tilt and orientation
    when not bipolar; orientation when both centroids share x (tilt is then 90); ``joy_tilt``
    where latitude is exactly 0 (hemisphere undefined) or NaN; ALPHA when a ring k = 1..25
    holds no power (a constant image); SIGMA where ``curve_fit`` would fail.

    - R: dilation with a 7 x 7 square, zero outside the image (scipy.ndimage.binary_dilation
      defaults); R = 0 when M is empty (e.g. a unipolar patch).
    - SIGMA: ``numpy.histogram(b, bins=256, density=True)`` over the image's own min..max (for
      a constant image numpy's range (min - 0.5, max + 0.5)), then the least-squares fit of
      :math:`e^{-x^2 / 2s^2} / (\sqrt{2\pi}\, s)` to (bin centres, density) from s0 = std(b)
      (ddof 0), computed as ``scipy.optimize.curve_fit`` (method 'lm', MINPACK ``lmdif``)
      computes it, step for step; the result is |s|. For a constant image the fit cannot move
      and returns its start, std(b) = 0 up to rounding.
    - ALPHA: F = fftshift(fft2(b)), zero frequency at (64, 64); P(k) is the mean of |F|^2
      over the pixels whose distance from (64, 64) floors to k; least-squares line through
      (log10 k, log10 P(k)), k = 1..25.
    - GRAD: central differences inside, one-sided at the edges (numpy.gradient).

    Everything is computed in float64 except GRAD, accumulated in float32 (relative error
    ~1e-7). For float32 input (a generator's output) the sums behind TPF, TNF and the centroids
    are exact, so symmetric configurations give exactly equal centroids (tilt 90, orientation
    NaN) as the definitions intend. The result agrees with the per-image numpy/scipy
    transcription of these definitions (``tests/oracle_physics.py``) to 1e-4 relative or
    better (SIGMA: ~1e-6 at worst, where the least-squares problem is ill-conditioned).

    References
    ----------
    .. [1] Schrijver, C. J. 2007, ApJ 655, L117, doi:10.1086/511857 (R).
    .. [2] Chatterjee, Munoz-Jaramillo & Malanushenko, the reference paper (sections 3-4 and
       "distributed image features" for SIGMA, ALPHA, GRAD).

    Examples
    --------
    >>> import numpy as np
    >>> b = np.zeros((1, 128, 128)); b[0, 60:68, 40:48] = 0.5; b[0, 60:68, 80:88] = -0.5
    >>> p = compute_parameters(b)
    >>> float(p["tpf"][0]), float(p["psep"][0]), float(p["tilt"][0]), float(p["orientation"][0])
    (32000.0, 40.0, 0.0, -1.0)
    """
    batch, as_numpy = _as_image_batch(images)
    n = batch.shape[0]
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    lat = _as_latitude(latitude, n)
    dev = torch.device(device) if device is not None else batch.device
    f64 = torch.float64
    # per-image sums and spectra, filled block by block and turned into parameters at the end
    sums = {
        "moments": torch.zeros(n, 2, 3, dtype=f64, device=dev),  # P, N: sum w, sum w x, sum w y
        "abs_sum": torch.zeros(n, dtype=f64, device=dev),  # sum |b|
        "r_sum": torch.zeros(n, dtype=f64, device=dev),  # sum |b| over M
        "grad_sum": torch.zeros(n, dtype=f64, device=dev),  # sum of 2 |grad b|
        "ring_power": torch.zeros(n, ALPHA_MAX_RING, dtype=f64, device=dev),  # P(k)
        "sigma": torch.full((n,), math.nan, dtype=f64, device=dev),
    }
    # on a CPU a chunk is processed in blocks of _CPU_BLOCK images, which suit its caches
    block = chunk_size if dev.type != "cpu" else min(chunk_size, _CPU_BLOCK)
    ws = _Workspace(min(block, n), dev)
    group = min(max(chunk_size, _SIGMA_GROUP), n)  # histograms fitted together
    fit_ws = _Workspace(group, dev)
    pending: list[tuple[torch.Tensor, ...]] = []
    pending_start = pending_n = 0
    starts = range(0, n, chunk_size)
    if progress:
        starts = tqdm(starts, desc="physical parameters", unit="chunk")
    with torch.no_grad():
        for chunk_start in starts:
            chunk_stop = min(chunk_start + chunk_size, n)
            for start in range(chunk_start, chunk_stop, block):
                stop = min(start + block, chunk_stop)
                counts = fit_ws("counts", (SIGMA_BINS,), f64, group)
                block_sums = {key: value[start:stop] for key, value in sums.items()}
                pending.append(
                    _block_sums(
                        batch[start:stop].to(dev),
                        ws,
                        block_sums,
                        counts[pending_n : pending_n + stop - start],
                        batch,
                    )
                )
                pending_n += stop - start
                if pending_n + block > group or stop == n:  # the next block would not fit
                    first, last, std = (torch.cat(part) for part in zip(*pending, strict=True))
                    sigma = _fit_sigma(counts[:pending_n], first, last, std, fit_ws)
                    sums["sigma"][pending_start:stop] = sigma
                    pending, pending_start, pending_n = [], stop, 0
        out = _parameters_from_sums(sums)
        if lat is not None:
            lat = lat.to(dev)
            undefined = (lat == 0) | lat.isnan()  # (torch.sign(NaN) is 0, not NaN)
            out["joy_tilt"] = torch.where(undefined, math.nan, -torch.sign(lat) * out["tilt"])
    if as_numpy:
        return {key: value.cpu().numpy() for key, value in out.items()}
    return {key: value.to(batch.device) for key, value in out.items()}


def polarity_maps(images: Any) -> tuple[Any, Any, Any]:
    """Polarity masks P = {b > 0.15}, N = {b < -0.15} and R's region M = dil7(P) & dil7(N).

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor, shape (N, 128, 128)
        Model-space images (as for :func:`compute_parameters`).

    Returns
    -------
    (P, N, M) : bool arrays of shape (N, 128, 128)
        numpy for numpy input, torch on the input's device for torch input. M is where Schrijver's
        R sums |B| (see :func:`compute_parameters`); the same helpers compute both.
    """
    batch, as_numpy = _as_image_batch(images)
    block = 256
    ws = _Workspace(min(block, batch.shape[0]), batch.device)
    with torch.no_grad():
        masks = [torch.empty(batch.shape, dtype=torch.bool, device=batch.device) for _ in range(3)]
        for start in range(0, batch.shape[0], block):
            b = batch[start : start + block].to(torch.float64)
            _check_finite(b.amin((1, 2)), b.amax((1, 2)), batch)
            pos, neg = _polarity_masks(b)
            region = _inversion_region(pos, neg, ws)
            for mask, value in zip(masks, (pos, neg, region), strict=True):
                mask[start : start + block] = value
    if as_numpy:
        return tuple(mask.cpu().numpy() for mask in masks)
    return tuple(masks)


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


# ----------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------
def _as_image_batch(images: Any) -> tuple[torch.Tensor, bool]:
    """(N, 128, 128) real tensor (no copy where possible) and whether the input was numpy."""
    if isinstance(images, u.Quantity):
        if images.unit.physical_type != "dimensionless":
            raise ValueError(
                f"images must be model-space values b = Br / {FIELD_SCALE} (dimensionless); got"
                f" a Quantity in {images.unit}: divide by "
                "sharpseek.physics.parameters.FIELD_SCALE first"
            )
        images = images.to_value(u.dimensionless_unscaled)
    as_numpy = not isinstance(images, torch.Tensor)
    batch = torch.as_tensor(np.asarray(images)) if as_numpy else images.detach()
    if batch.is_complex():
        raise ValueError(f"images must be real; got dtype {batch.dtype}")
    expected = (MODEL_SIZE, MODEL_SIZE)
    if batch.ndim != 3 or tuple(batch.shape[1:]) != expected:
        raise ValueError(
            f"images must have shape (N, {MODEL_SIZE}, {MODEL_SIZE}); got {tuple(batch.shape)}"
            + (" (add a batch axis: images[None])" if tuple(batch.shape) == expected else "")
        )
    return batch, as_numpy


def _check_finite(first: torch.Tensor, last: torch.Tensor, batch: torch.Tensor) -> None:
    """Raise if a chunk's min or max is NaN or inf (so some pixel is), counting them all."""
    if not bool(torch.isfinite(first).all() & torch.isfinite(last).all()):
        bad = int((~torch.isfinite(batch)).sum())
        raise ValueError(
            f"images contain {bad} non-finite values (NaN or inf); replace them first"
            " (SHARP preprocessing sets NaN pixels to 0)"
        )


def _as_latitude(latitude: Any, n: int) -> torch.Tensor | None:
    if latitude is None:
        return None
    if isinstance(latitude, u.Quantity):
        latitude = latitude.to_value(u.deg)
    elif isinstance(latitude, torch.Tensor):
        latitude = latitude.detach().cpu().numpy()
    lat = np.asarray(latitude, dtype=np.float64)
    if lat.shape != (n,):
        raise ValueError(f"latitude must have shape ({n},), one per image; got {lat.shape}")
    return torch.from_numpy(lat)


# ----------------------------------------------------------------------------------------------
# all parameters of one block of images
# ----------------------------------------------------------------------------------------------
class _Workspace:
    """Scratch tensors reused from one block of (up to ``n``) images to the next.

    A large tensor allocated afresh is paid for again in page faults on first touch (about 2 us
    per 4 KiB page on the machines this was tuned on, more than the arithmetic); reusing the
    buffers makes that a one-off per call. Buffers are created zeroed on first use, so padding
    that is never written stays zero.
    """

    def __init__(self, n: int, device: torch.device) -> None:
        self.n, self.device = n, device
        self._buffers: dict[str, torch.Tensor] = {}

    def __call__(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, m: int, fill: float = 0.0
    ) -> torch.Tensor:
        """The first ``m`` rows of buffer ``name`` (shape (n, *shape), created full of ``fill``)."""
        buf = self._buffers.get(name)
        if buf is None:
            buf = torch.full((self.n, *shape), fill, dtype=dtype, device=self.device)
            self._buffers[name] = buf
        return buf[:m]


def _block_sums(
    chunk: torch.Tensor,
    ws: _Workspace,
    sums: dict[str, torch.Tensor],
    counts: torch.Tensor,
    batch: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """The per-image sums behind every parameter, for a block (m, 128, 128) of images.

    Writes into ``sums`` (views of the call's (n, ...) tensors, keys as in
    :func:`compute_parameters`) and SIGMA's histogram into ``counts`` (m, 256); returns (first
    edge, last edge, std) for the fit. ``batch`` only serves the error message for non-finite
    input.
    """
    m, size, f64 = chunk.shape[0], MODEL_SIZE, torch.float64
    image = (size, size)
    b = ws("b", image, f64, m).copy_(chunk)  # (m, 128, 128) float64
    flat = b.view(m, -1)  # (m, 16384)
    first, last = flat.amin(1), flat.amax(1)
    _check_finite(first, last, batch)
    # (steps are ordered so that each array is reused while it is still in cache)
    # SIGMA's inputs: std (ddof 0) from sum b and sum b^2 (agrees with numpy.std to ~1e-14
    # here; 0 for a constant image) and the histogram
    n_pix = flat.shape[1]
    mean = flat.sum(1) / n_pix
    var = (torch.linalg.vecdot(flat, flat) / n_pix - mean * mean).clamp_(min=0.0)
    std = torch.where(first == last, 0.0, var.sqrt())
    edges = _histogram_counts(flat, first, last, ws, counts)
    sums["ring_power"].copy_(_ring_power(b, ws))
    # strong field over P and N: signed s = b and unsigned |s| = |b| where |b| > th, else 0
    s = torch.hardshrink(b, _TH, out=ws("s", image, f64, m))
    s_x, s_y = s.sum(1), s.sum(2)  # (m, 128): profiles along x (summed over rows) and y
    pos = torch.gt(s, 0.0, out=ws("pos", image, torch.bool, m))
    neg = torch.lt(s, 0.0, out=ws("neg", image, torch.bool, m))
    region = _inversion_region(pos, neg, ws)
    absb = torch.abs(b, out=ws("absb", image, f64, m))
    in_region = torch.mul(absb, region.view(torch.uint8), out=ws("t", image, f64, m))
    torch.sum(in_region, (1, 2), out=sums["r_sum"])
    torch.sum(absb, (1, 2), out=sums["abs_sum"])
    abs_s = torch.threshold(absb, _TH, 0.0, out=absb)
    # |b|-weighted moments; w_P = (|s| + s) / 2 and w_N = (|s| - s) / 2. For float32 input every
    # sum here is exact in float64, whatever the order of summation.
    prof_x = torch.stack((abs_s.sum(1), s_x), 1)  # (m, 2, 128): sum |s|, sum s per column
    prof_y = torch.stack((abs_s.sum(2), s_y), 1)  # (m, 2, 128): per row
    coord = torch.arange(size, dtype=f64, device=b.device)
    moments = torch.stack((prof_x.sum(2), prof_x @ coord, prof_y @ coord), 2)  # (m, 2, 3)
    half = torch.tensor([[0.5, 0.5], [0.5, -0.5]], dtype=f64, device=b.device)
    torch.matmul(half, moments, out=sums["moments"])  # rows P, N; sum w, sum w x, sum w y
    sums["grad_sum"].copy_(_gradient_sum(chunk if chunk.dtype == torch.float32 else b, ws))
    return edges + (std,)


def _parameters_from_sums(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every parameter, (n,) each, from the per-image sums :func:`_block_sums` collects."""
    moments = sums["moments"]  # (n, 2, 3)
    total = moments[:, :, 0]  # (n, 2): sum of |b| over P and over N
    cx = moments[:, :, 1] / total  # (n, 2); 0 / 0 = NaN for an empty polarity
    cy = moments[:, :, 2] / total
    bipolar = (total > 0).all(1)
    dx = cx[:, 0] - cx[:, 1]
    dy = cy[:, 0] - cy[:, 1]
    orientation = torch.where(dx > 0, 1.0, torch.where(dx < 0, -1.0, math.nan))
    tilt = torch.rad2deg(torch.atan2(orientation * dy, orientation * dx))  # following -> leading
    tilt = torch.where(tilt <= -90.0, 90.0, tilt)  # (-90, 90]
    tilt = torch.where(bipolar & (dx == 0), 90.0, tilt) + 0.0  # + 0.0: no -0.0
    p_k = sums["ring_power"]
    alpha = -(torch.log10(p_k) @ _alpha_operators(p_k.device)[2])
    return {
        "tuf": _G_PER_B * sums["abs_sum"],
        "tpf": _G_PER_B * total[:, 0],
        "tnf": _G_PER_B * total[:, 1],
        "psep": torch.hypot(dx, dy),
        "r": _G_PER_B * sums["r_sum"],
        "tilt": tilt,
        "orientation": orientation,
        "sigma": sums["sigma"],
        "alpha": torch.where((p_k > 0).all(1), alpha, math.nan),
        "grad": sums["grad_sum"] / (2.0 * MODEL_SIZE * MODEL_SIZE),
        "bipolar": bipolar,
        "pos_x": cx[:, 0],
        "pos_y": cy[:, 0],
        "neg_x": cx[:, 1],
        "neg_y": cy[:, 1],
    }


# ----------------------------------------------------------------------------------------------
# polarity masks and the dilation behind R
# ----------------------------------------------------------------------------------------------
def _polarity_masks(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P = {b > th}, N = {b < -th} (strict), bool (n, 128, 128)."""
    return b > _TH, b < -_TH


def _inversion_region(pos: torch.Tensor, neg: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """M = dilate(P) & dilate(N) with a 7 x 7 square, zero outside the image; bool (m, 128, 128).

    Same result as ``scipy.ndimage.binary_dilation(P, structure=np.ones((7, 7)))`` (border value
    0) and likewise for N. Both masks are dilated at once: one byte per pixel holds P in bit 0
    and N in bit 1, and the dilation is a bitwise OR over the 7 x 7 window, done separably by
    log-doubling on zero-padded stacks: OR with the neighbour 1 away (window 2), then 2 away
    (window 4), then 3 away (window 7), along y and then along x. M is where both bits are set.
    The result is a view of a workspace buffer, valid until the next block.
    """
    m, size, u8 = pos.shape[0], MODEL_SIZE, torch.uint8
    image = (size, size)
    rows = ws("dil_rows", (size + 6, size), u8, m)  # 3 zero rows above and below the image
    torch.bitwise_left_shift(neg.view(u8), 1, out=rows[:, 3:-3]).bitwise_or_(pos.view(u8))
    w2 = torch.bitwise_or(rows[:, 1:], rows[:, :-1], out=ws("dil_y2", (size + 5, size), u8, m))
    w4 = torch.bitwise_or(w2[:, 2:], w2[:, :-2], out=ws("dil_y4", (size + 3, size), u8, m))
    cols = ws("dil_cols", (size, size + 6), u8, m)  # 3 zero columns left and right
    torch.bitwise_or(w4[:, 3:], w4[:, :-3], out=cols[:, :, 3:-3])  # rows i-3..i+3
    w2 = torch.bitwise_or(cols[..., 1:], cols[..., :-1], out=ws("dil_x2", (size, size + 5), u8, m))
    w4 = torch.bitwise_or(w2[..., 2:], w2[..., :-2], out=ws("dil_x4", (size, size + 3), u8, m))
    w7 = torch.bitwise_or(w4[..., 3:], w4[..., :-3], out=ws("dil_x7", image, u8, m))
    return torch.eq(w7, 3, out=ws("dil_m", image, torch.bool, m))


# ----------------------------------------------------------------------------------------------
# ALPHA and GRAD
# ----------------------------------------------------------------------------------------------
_ALPHA_CACHE: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _alpha_operators(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bins, inv_count, slope): the constants that turn the needed DFT block into ALPHA.

    The block holds F at ky = 0..25 then -25..-1 (rows) and kx = 0..25 (columns), as (Re, Im)
    pairs: 51 * 26 * 2 values. ``bins`` sends each to a bin: ring k = floor(distance from the
    zero frequency) for kx > 0, 26 + k for kx = 0, 52 (ignored) for rings outside 1..25. The
    full-plane ring sum of |F|^2 is then 2 bin[k] + bin[26 + k], each kx > 0 value standing
    also for its Hermitian twin F(-ky, -kx) = conj F(ky, kx); ``inv_count`` (25,) is 1 / the
    number of full-plane pixels in ring k, and ``slope`` (25,) maps log10 P(k) to the
    least-squares slope against log10 k.
    """
    key = str(device)
    if key not in _ALPHA_CACHE:
        kmax = ALPHA_MAX_RING
        ky = np.concatenate([np.arange(0, kmax + 1), np.arange(-kmax, 0)])[:, None]  # (51, 1)
        kx = np.arange(0, kmax + 1)[None, :]  # (1, 26)
        ring = np.floor(np.sqrt(ky**2 + kx**2)).astype(np.int64)  # (51, 26)
        bins = np.where(kx == 0, kmax + 1 + ring, ring)
        bins = np.where((ring >= 1) & (ring <= kmax), bins, 2 * (kmax + 1))
        full = np.arange(-MODEL_SIZE // 2, MODEL_SIZE // 2)
        full_ring = np.floor(np.sqrt(full[:, None] ** 2 + full[None, :] ** 2)).astype(int)
        rings = np.arange(1, kmax + 1)
        counts = np.array([(full_ring == k).sum() for k in rings], dtype=np.float64)
        logk = np.log10(rings)
        slope = (logk - logk.mean()) / np.sum((logk - logk.mean()) ** 2)
        _ALPHA_CACHE[key] = (
            torch.as_tensor(np.repeat(bins.ravel(), 2), device=device),  # Re and Im alike
            torch.as_tensor(1.0 / counts, device=device),
            torch.as_tensor(slope, device=device),
        )
    return _ALPHA_CACHE[key]


def _ring_power(b: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """P(k), the mean of |F|^2 over the full-plane ring k = 1..25 of F = fft2(b). (m, 25)"""
    m, kmax = b.shape[0], ALPHA_MAX_RING
    bins, inv_count, _ = _alpha_operators(b.device)
    along_x = torch.fft.rfft(b, dim=2)  # (m, 128, 65): kx = 0..64
    spec = torch.fft.fft(along_x[:, :, : kmax + 1], dim=1)  # (m, 128, 26): only kx = 0..25
    block = ws("spec_block", (2 * kmax + 1, kmax + 1), torch.complex128, m)  # (m, 51, 26)
    torch.cat((spec[:, : kmax + 1], spec[:, -kmax:]), 1, out=block)  # ky = 0..25, -25..-1
    squares = torch.view_as_real(block).square_().view(m, -1)  # (m, 2652): Re^2, Im^2
    sums = torch.zeros(m, 2 * (kmax + 1) + 1, dtype=b.dtype, device=b.device)
    sums.index_add_(1, bins, squares)
    return (2.0 * sums[:, 1 : kmax + 1] + sums[:, kmax + 2 : 2 * kmax + 2]) * inv_count


def _gradient_sum(x: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """Sum over pixels of 2 sqrt(gx^2 + gy^2), numpy.gradient semantics (unit spacing). (m,)

    Computed in float32 (relative error ~1e-7, far below the 1e-4 the oracle tests ask) on
    2 g: differences not halved inside and doubled at the edges, exact in binary floating point.
    """
    m, image, f32 = x.shape[0], (MODEL_SIZE, MODEL_SIZE), torch.float32
    if x.dtype != f32:
        x = ws("b32", image, f32, m).copy_(x)
    gx, gy = ws("gx", image, f32, m), ws("gy", image, f32, m)
    torch.sub(x[:, :, 2:], x[:, :, :-2], out=gx[:, :, 1:-1])  # f[i+1] - f[i-1]
    torch.sub(x[:, :, 1], x[:, :, 0], out=gx[:, :, 0]).mul_(2.0)  # 2 (f[1] - f[0])
    torch.sub(x[:, :, -1], x[:, :, -2], out=gx[:, :, -1]).mul_(2.0)
    torch.sub(x[:, 2:, :], x[:, :-2, :], out=gy[:, 1:-1, :])
    torch.sub(x[:, 1, :], x[:, 0, :], out=gy[:, 0, :]).mul_(2.0)
    torch.sub(x[:, -1, :], x[:, -2, :], out=gy[:, -1, :]).mul_(2.0)
    return gx.mul_(gx).addcmul_(gy, gy).sqrt_().sum((1, 2))  # sum of 2 |grad b|


# ----------------------------------------------------------------------------------------------
# SIGMA: numpy's histogram and MINPACK's Levenberg-Marquardt, batched
# ----------------------------------------------------------------------------------------------
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LOG2E = 1.0 / math.log(2.0)
_EPSMCH = float(np.finfo(np.float64).eps)
_DWARF = float(np.finfo(np.float64).tiny)
_FD_STEP = math.sqrt(_EPSMCH)  # MINPACK fdjac2 relative step, sqrt(max(epsfcn, epsmch))
_FTOL = _XTOL = 1.49012e-08  # scipy.optimize.leastsq defaults
_FACTOR = 100.0  # initial step bound factor (leastsq default)
_MAXFEV = 400  # leastsq default for one parameter without a Jacobian: 200 * (n + 1)
_NEAR_EDGE = 1e-9  # [bins] values closer to a bin edge are re-binned exactly as numpy does


def _histogram_counts(
    flat: torch.Tensor,
    first: torch.Tensor,
    last: torch.Tensor,
    ws: _Workspace,
    counts: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts of numpy.histogram(row, bins=256) for each row of ``flat`` (m, 16384) float64.

    ``first``, ``last`` are each row's min and max; the counts go to ``counts`` (m, 256)
    float64. Returns the outer edges (first, last), with numpy's rule for min == max (range
    (min - 0.5, max + 0.5)). Every value lands in the bin numpy puts it in: numpy truncates
    ((x - first) / (last - first)) * 256, puts the maximum in the last bin, and moves a value
    within an ulp of an edge to the side of the edge its linspace puts it on. Values within
    1e-9 bin of an edge are binned again with numpy's exact arithmetic; no other value can land
    elsewhere.
    """
    m, npix = flat.shape
    same = first == last
    first = torch.where(same, first - 0.5, first)
    last = torch.where(same, last + 0.5, last)
    denom = last - first
    scale = SIGMA_BINS / denom
    # f = (x - first) * 256 / denom + 1e-9 in one pass, clamped to [0.5, 255.5]: the clamp puts
    # the maximum (f = 256) in the last bin, as numpy does, and keeps the minimum (f = 0, bin 0
    # exactly) and the maximum out of the near-edge test below.
    f = ws("t", (MODEL_SIZE, MODEL_SIZE), flat.dtype, m).view(m, npix)
    torch.addcmul((_NEAR_EDGE - first * scale)[:, None], flat, scale[:, None], out=f)
    f.clamp_(0.5, SIGMA_BINS - 0.5)
    idx = ws("idx", (npix,), torch.int64, m).copy_(f)  # truncation
    near_rows = f.frac_().amin(1) < 2 * _NEAR_EDGE  # rows with a value within 1e-9 of an edge
    if bool(near_rows.any()):
        sub = near_rows.nonzero()[:, 0]
        rows, cols = (f[sub] < 2 * _NEAR_EDGE).nonzero(as_tuple=True)
        rows = sub[rows]
        a, lo, span = flat[rows, cols], first[rows], denom[rows]
        step = span / SIGMA_BINS
        k = ((a - lo) / span * SIGMA_BINS).to(torch.int64).clamp_(max=SIGMA_BINS - 1)
        k = k - (a < k.to(a.dtype) * step + lo).to(torch.int64)  # numpy's edges i*step + first
        hi_edge = torch.where(k + 1 == SIGMA_BINS, last[rows], (k + 1).to(a.dtype) * step + lo)
        k = k + ((a >= hi_edge) & (k != SIGMA_BINS - 1)).to(torch.int64)
        idx[rows, cols] = k
    counts.zero_().scatter_add_(1, idx, ws("ones", (npix,), flat.dtype, m, fill=1.0))
    return first, last


def _gaussian_minus(
    neg_c2: torch.Tensor, neg_density: torch.Tensor, s: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """Residual exp(-c^2 / (2 s^2)) / (sqrt(2 pi) s) - density into ``out`` (k, 256).

    Takes -c^2 and -density (k, 256) and s (k,); three passes over the (k, 256) arrays.
    """
    s = s[:, None]
    # exp(y) as exp2(y log2 e): as accurate here (~1e-14 relative) and, unlike torch's exp,
    # as fast where the Gaussian's far tail underflows to subnormal numbers or zero
    torch.mul(neg_c2, _LOG2E / (2.0 * s * s), out=out).exp2_()
    return torch.addcmul(neg_density, out, 1.0 / (_SQRT_2PI * s), out=out)


def _fit_sigma(
    counts: torch.Tensor, first: torch.Tensor, last: torch.Tensor, x0: torch.Tensor, ws: _Workspace
) -> torch.Tensor:
    """SIGMA of each histogram: ``curve_fit`` of the normal density, batched. (m,) float64.

    The histogram is numpy.histogram(..., density=True) from its ``counts`` (m, 256) and outer
    edges (m,): edges as numpy.linspace builds them (i * step + first, the last one = last),
    density = count / (e[i+1] - e[i]) / total count, x = bin centres (e[i] + e[i+1]) / 2.
    The fit is a one-parameter port of MINPACK's ``lmdif`` (forward-difference Jacobian,
    Levenberg-Marquardt parameter from ``lmpar``, trust-region updates and stopping tests) with
    scipy's defaults (ftol = xtol = 1.49012e-8, gtol = 0, factor = 100, maxfev = 400), so each
    row follows the path ``scipy.optimize.curve_fit(f, x, density, p0=[x0])`` takes and stops
    where it stops; rows leave the batch as they finish. Returns |s|, NaN where curve_fit would
    raise (MINPACK info 5-8).
    """
    m, nb, f64 = x0.shape[0], SIGMA_BINS, x0.dtype
    out = torch.full((m,), math.nan, dtype=f64, device=x0.device)
    if m == 0:
        return out
    # (k, 256) arrays live in pairs of workspace buffers: rows of finished fits are squeezed
    # out by copying the others into the twin, so the loop allocates nothing large
    pairs = {key: [ws(key + "0", (nb,), f64, m), ws(key + "1", (nb,), f64, m)] for key in "cdf"}
    lo, hi = pairs["c"]  # edges i = 0..255 and i = 1..256
    i = torch.arange(nb, dtype=f64, device=x0.device)
    torch.mul(i, ((last - first) / nb)[:, None], out=lo).add_(first[:, None])  # i * step + first
    hi[:, :-1] = lo[:, 1:]
    hi[:, -1] = last
    neg_density = torch.sub(hi, lo, out=pairs["d"][1])  # bin widths
    neg_density = torch.div(counts, neg_density, out=pairs["d"][0])
    neg_density.div_(-counts.sum(1, keepdim=True))  # -density
    neg_c2 = lo.add_(hi).div_(2.0)  # bin centres c
    neg_c2.mul_(neg_c2).neg_()  # -c^2
    fvec = _gaussian_minus(neg_c2, neg_density, x0, pairs["f"][0])
    side = 0  # which buffer of each pair holds the live rows
    scratch = [ws("work_a", (nb,), f64, m), ws("work_b", (nb,), f64, m)]
    zeros = torch.zeros_like(x0)
    st = {
        "row": torch.arange(m, device=x0.device),
        "x": x0.clone(),
        "fnorm": torch.linalg.vector_norm(fvec, dim=1),
        "nfev": torch.ones_like(x0),
        "first": torch.ones(m, dtype=torch.bool, device=x0.device),  # MINPACK's iter == 1
        "need_jac": torch.ones(m, dtype=torch.bool, device=x0.device),
        "par": zeros,
        "diag": zeros,
        "delta": zeros,
        "xnorm": zeros,
        "r": zeros,  # |J|, the R of the QR factorisation (its sign cancels in one dimension)
        "jf": zeros,  # J . fvec
        "gnorm": zeros,
    }
    while (k := st["x"].shape[0]) > 0:
        x, fnorm, need = st["x"], st["fnorm"], st["need_jac"]
        neg_c2, neg_density, fvec = (pair[side][:k] for pair in pairs.values())
        work_a, work_b = scratch[0][:k], scratch[1][:k]
        # --- outer loop of lmdif: Jacobian by forward difference, scaling, gradient test ---
        done4 = torch.zeros_like(need)
        if bool(need.any()):
            h = _FD_STEP * x.abs()
            h = torch.where(h == 0, _FD_STEP, h)
            diff = _gaussian_minus(neg_c2, neg_density, x + h, work_a).sub_(fvec)  # h * J
            r_new = torch.linalg.vector_norm(diff, dim=1) / h
            jf_new = torch.linalg.vecdot(diff, fvec) / h
            st["nfev"] = st["nfev"] + need
            st["r"] = r = torch.where(need, r_new, st["r"])
            st["jf"] = jf = torch.where(need, jf_new, st["jf"])
            init = need & st["first"]
            diag = torch.where(init, torch.where(r == 0, 1.0, r), st["diag"])
            st["xnorm"] = torch.where(init, (diag * x).abs(), st["xnorm"])
            delta0 = _FACTOR * st["xnorm"]
            st["delta"] = torch.where(init, torch.where(delta0 == 0, _FACTOR, delta0), st["delta"])
            gnorm = jf.abs() / (fnorm * r)  # |cos| of the angle between fvec and J
            gnorm = torch.where((fnorm == 0) | (r == 0) | gnorm.isnan(), 0.0, gnorm)
            st["gnorm"] = torch.where(need, gnorm, st["gnorm"])
            st["diag"] = torch.where(need, torch.maximum(diag, r), diag)
            done4 = need & (st["gnorm"] <= 0.0)  # info 4 (gtol = 0): x is the answer
        r, jf, diag, delta, par = st["r"], st["jf"], st["diag"], st["delta"], st["par"]
        step, par = _lmpar(r, jf / r, diag, delta, par)
        # --- inner loop of lmdif: trial step, actual vs predicted reduction, bound update ---
        p = -step
        pnorm = (diag * p).abs()
        first = st["first"]
        delta = torch.where(first, torch.minimum(delta, pnorm), delta)
        xt = x + p
        ft = _gaussian_minus(neg_c2, neg_density, xt, work_b)
        fnorm1 = torch.linalg.vector_norm(ft, dim=1)
        nfev = st["nfev"] + 1
        actred = torch.where(0.1 * fnorm1 < fnorm, 1.0 - (fnorm1 / fnorm) ** 2, -1.0)
        temp1 = (r * p).abs() / fnorm
        temp2 = torch.sqrt(par) * pnorm / fnorm
        prered = temp1**2 + temp2**2 / 0.5
        dirder = -(temp1**2 + temp2**2)
        ratio = torch.where(prered != 0, actred / prered, 0.0)
        low = ratio <= 0.25
        temp = torch.where(actred >= 0, 0.5, 0.5 * dirder / (dirder + 0.5 * actred))
        temp = torch.where((0.1 * fnorm1 >= fnorm) | (temp < 0.1), 0.1, temp)
        grow = (par == 0) | (ratio >= 0.75)
        delta = torch.where(
            low, temp * torch.minimum(delta, pnorm / 0.1), torch.where(grow, pnorm / 0.5, delta)
        )
        par = torch.where(low, par / temp, torch.where(grow, 0.5 * par, par))
        ok = ratio >= 1e-4
        x_new = torch.where(ok, xt, x)
        xnorm = torch.where(ok, (diag * x_new).abs(), st["xnorm"])
        small = (actred.abs() <= _FTOL) & (prered <= _FTOL) & (0.5 * ratio <= 1.0)
        converged = (small | (delta <= _XTOL * xnorm)) & ~done4
        failed = (
            (nfev >= _MAXFEV)
            | ((actred.abs() <= _EPSMCH) & (prered <= _EPSMCH) & (0.5 * ratio <= 1.0))
            | (delta <= _EPSMCH * xnorm)
            | (st["gnorm"] <= _EPSMCH)
        ) & ~(converged | done4)
        finished = done4 | converged | failed
        if bool(ok.all()):  # the usual case: take the trial residuals by swapping buffers
            pairs["f"][side], scratch[1] = scratch[1], pairs["f"][side]
        else:
            torch.where(ok[:, None], ft, fvec, out=fvec)
        st.update(
            x=x_new,
            fnorm=torch.where(ok, fnorm1, fnorm),
            nfev=nfev,
            first=first & ~ok,
            need_jac=ok,
            par=par,
            delta=delta,
            xnorm=xnorm,
        )
        if bool(finished.any()):
            x_done = torch.where(done4, x, x_new)[finished]  # info 4 rows took no step
            out[st["row"][finished]] = torch.where(failed[finished], math.nan, x_done.abs())
            keep = (~finished).nonzero()[:, 0]
            st = {key: value[keep] for key, value in st.items()}
            for pair in pairs.values():
                torch.index_select(pair[side][:k], 0, keep, out=pair[1 - side][: keep.shape[0]])
            side = 1 - side
    return out


def _lmpar(
    r: torch.Tensor, qtf: torch.Tensor, diag: torch.Tensor, delta: torch.Tensor, par: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MINPACK ``lmpar`` for one parameter, batched: the step x and the LM parameter par.

    x solves (r^2 + par diag^2) x = r qtf with par = 0 if the Gauss-Newton step fits the bound
    (|diag x| <= 1.1 delta); otherwise par is found by MINPACK's safeguarded Newton iteration
    (at most 10 steps) until |diag x| is within 10 % of delta.
    """
    x_gn = torch.where(r == 0, 0.0, qtf / r)
    dxnorm = (diag * x_gn).abs()
    fp = dxnorm - delta
    search = fp > 0.1 * delta
    par = torch.where(search, par, 0.0)
    step = x_gn
    if not bool(search.any()):
        return step, par
    t = (diag * (diag * x_gn / dxnorm) / r).abs()
    parl = torch.where(r == 0, 0.0, ((fp / delta) / t) / t)
    gnorm = (r * qtf / diag).abs()
    paru = gnorm / delta
    paru = torch.where(paru == 0, _DWARF / torch.clamp(delta, max=0.1), paru)
    par0 = torch.minimum(torch.maximum(par, parl), paru)
    par = torch.where(search, torch.where(par0 == 0, gnorm / dxnorm, par0), par)
    for it in range(1, 11):
        par = torch.where(search & (par == 0), torch.clamp(0.001 * paru, min=_DWARF), par)
        d = torch.sqrt(par) * diag
        den = r * r + d * d
        xs = r * qtf / den
        dx_new = (diag * xs).abs()
        fp_old, fp_new = fp, dx_new - delta
        step = torch.where(search, xs, step)
        fp = torch.where(search, fp_new, fp)
        stop = (
            (fp_new.abs() <= 0.1 * delta)
            | ((parl == 0) & (fp_new <= fp_old) & (fp_old < 0))
            | (it == 10)
        )
        go = search & ~stop
        if not bool(go.any()):
            break
        t = (diag * (diag * xs / dx_new) / torch.sqrt(den)).abs()
        parc = ((fp_new / delta) / t) / t
        parl = torch.where(go & (fp_new > 0), torch.maximum(parl, par), parl)
        paru = torch.where(go & (fp_new < 0), torch.minimum(paru, par), paru)
        par = torch.where(go, torch.maximum(parl, par + parc), par)
        search = go
    return step, par
