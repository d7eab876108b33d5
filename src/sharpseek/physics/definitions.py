"""The physics contract's constants, units, descriptions and parameter lists (SCIENCE.md).

Each is written once here and imported by the modules that compute the parameters
(:mod:`sharpseek.physics.parameters`, :mod:`sharpseek.physics.native`) and by every layer that
names, shows or shifts them; this module imports nothing of sharpseek, so any physics module can
import it without a cycle. Units of the model-space values: see :mod:`sharpseek.physics.parameters`.
"""

import astropy.units as u

__all__ = [
    "MODEL_SIZE",
    "FIELD_SCALE",
    "POLARITY_THRESHOLD",
    "STRONG_FIELD_THRESHOLD",
    "R_DILATION_SIZE",
    "SIGMA_BINS",
    "ALPHA_MAX_RING",
    "RSUN_REF",
    "SHARP_PIXEL_SCALE",
    "R_JSOC_BIN",
    "R_JSOC_FWHM",
    "R_JSOC_DILATION",
    "NATIVE_PARAMETERS",
    "NATIVE_UNITS",
    "PARAMETER_UNITS",
    "PARAMETER_DESCRIPTIONS",
    "NATIVE_DESCRIPTIONS",
    "POSITION_FIELDS",
    "PAPER_PARAMETERS",
    "SHOWN_PARAMETERS",
    "BASELINE_PARAMETERS",
    "CARD_NATIVE_PARAMETERS",
    "SHIFT_PARAMETERS",
    "DIRECTION_PARAMETERS",
    "parameter_definitions",
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
