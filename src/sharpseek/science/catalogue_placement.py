"""Ranges on a catalogue AR's parameters and its placement on the Sun, in physical units.

A :class:`Range` (``tilt<-10``, ``tuf>p90``) bounds a parameter in model units; a
:class:`Placement` puts an AR on the Sun (latitude, longitude, the size of a model pixel in Mm,
hemisphere and cycle, aspect) and gives its CEA header and the ranges that anti-Joy or
anti-Hale imply there (SCIENCE.md, "tilt"); :func:`physical_parameters` measures a placed AR in
physical units. Used by :mod:`sharpseek.science.catalogue`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
import torch
import torch.nn.functional as F
from astropy.time import Time

from sharpseek.physics.definitions import FIELD_SCALE, MODEL_SIZE, RSUN_REF
from sharpseek.physics.native import native_parameters, patch_quantities
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions import DirectionSet

__all__ = [
    "CatalogueError",
    "Placement",
    "Range",
    "hale_leading_sign",
    "physical_parameters",
    "placement_ranges",
    "stretch",
]

_G_PER_B = FIELD_SCALE.to_value(u.G)
_RSUN_MM = RSUN_REF.to_value(u.Mm)
#: Distance of the nominal observer written into headers (sunpy wants an observer).
_AU_M = (1 * u.AU).to_value(u.m)


class CatalogueError(ValueError):
    """A catalogue request that cannot be met (too few ARs found, bad placement)."""


# ----------------------------------------------------------------------------------------------
# ranges
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    """A one-sided range on a parameter in model units: ``tilt<-10``, ``tuf>p90``.

    ``percentile`` bounds are percentiles of the generator's distribution stored with the
    directions; plain numbers are values in the units of
    :data:`sharpseek.physics.definitions.PARAMETER_UNITS`.
    """

    parameter: str
    op: str  # "<" or ">"
    amount: float
    percentile: bool = False

    @classmethod
    def parse(cls, text: str) -> Range:
        spec = text.replace(" ", "").lower()
        m = re.fullmatch(r"([a-z_]+)(<=|>=|<|>)(p?)([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)", spec)
        if not m:
            raise ValueError(
                f"range {text!r} not understood; write e.g. 'tilt<-10' (a value in the "
                "parameter's model units) or 'tuf>p90' (above the 90th percentile)"
            )
        name, op, pct, number = m.groups()
        amount = float(number)
        if pct and not 0 <= amount <= 100:
            raise ValueError(f"range {text!r}: a percentile lies in 0..100")
        return cls(name, op[0], amount, bool(pct))

    def __str__(self) -> str:
        return f"{self.parameter}{self.op}{'p' if self.percentile else ''}{self.amount:g}"

    def bound(self, directions: DirectionSet) -> float:
        """The bound as a value (a percentile is looked up in the stored distribution)."""
        if not self.percentile:
            return self.amount
        table = directions.distribution.get(self.parameter)
        if not table:
            raise ValueError(
                f"no distribution of {self.parameter!r} stored with the directions; "
                f"known: {', '.join(sorted(directions.distribution))}"
            )
        return float(np.interp(self.amount, np.arange(len(table)), table))

    def holds(self, values: np.ndarray, bound: float) -> np.ndarray:
        """Boolean (n,): where the range holds (NaN never does)."""
        values = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            return values < bound if self.op == "<" else values > bound


# ----------------------------------------------------------------------------------------------
# placement on the Sun
# ----------------------------------------------------------------------------------------------
def hale_leading_sign(latitude: float, cycle: int) -> int:
    """Sign of the leading polarity by Hale's law: +1 in the north in odd cycles and in the
    south in even cycles (cycle 24: north leading negative; cycle 25: north leading
    positive), -1 otherwise."""
    if latitude == 0:
        raise CatalogueError("Hale's law needs a hemisphere: latitude 0 lies on the equator")
    north = latitude > 0
    return 1 if north == (cycle % 2 == 1) else -1


@dataclass(frozen=True)
class Placement:
    """Where an AR is put on the Sun.

    Attributes
    ----------
    lat, lon : float
        Stonyhurst latitude and longitude of the AR's centre [deg] (longitude from the
        central meridian, positive west).
    pixel_mm : float
        Side of one model pixel [Mm] (a SHARP pixel is 0.364 Mm; a 128-px AR at 1 Mm/px
        spans 128 Mm).
    cycle : int
        Solar cycle, for Hale's law.
    date_obs : str
        DATE-OBS written to the header (ISO 8601).
    aspect : float
        Width / height of the exported AR. A generated image is square because every real
        SHARP was squashed to 128 x 128 for the GAN, whatever its shape (HARPs are 2.1x wider
        than tall at the median): a generated AR has no native aspect. The export stretches
        it back to ``aspect`` (:attr:`export_shape`, the same area), and its tilt, separation
        and fluxes are those of the stretched AR; 1 keeps it square (model pixels of
        ``pixel_mm`` on both axes).
    """

    lat: float
    lon: float
    pixel_mm: float
    cycle: int
    date_obs: str
    aspect: float = 1.0

    def __post_init__(self) -> None:
        if not -90 < self.lat < 90:
            raise CatalogueError(f"latitude {self.lat} deg: must lie in (-90, 90)")
        if not -180 <= self.lon <= 180:
            raise CatalogueError(f"longitude {self.lon} deg: must lie in [-180, 180]")
        try:
            Time(self.date_obs)
        except ValueError:
            raise CatalogueError(f"date {self.date_obs!r}: not an ISO 8601 date") from None
        if not self.pixel_mm > 0:
            raise CatalogueError(f"pixel size {self.pixel_mm} Mm: must be positive")
        if not 0.05 <= self.aspect <= 20:
            raise CatalogueError(f"aspect {self.aspect}: width / height must lie in 0.05..20")
        half_extent = max(self.export_shape) / 2 * self.pixel_mm / _RSUN_MM  # [rad]
        if half_extent > 1.0:
            raise CatalogueError(
                f"pixel size {self.pixel_mm} Mm makes a 128-px AR larger than the Sun"
            )

    @property
    def export_shape(self) -> tuple[int, int]:
        """(ny, nx) of the exported AR: nx / ny = aspect, nx * ny = 128 x 128 (area kept).

        >>> Placement(15, 0, 0.36, 25, "2024-01-01", aspect=2.1).export_shape
        (88, 185)
        """
        if self.aspect == 1:
            return (MODEL_SIZE, MODEL_SIZE)
        root = math.sqrt(self.aspect)
        return (max(1, round(MODEL_SIZE / root)), max(1, round(MODEL_SIZE * root)))

    def model_tilt(self, tilt_deg: float) -> float:
        """The tilt a generated (square) image must have for its export to have ``tilt_deg``.

        The stretch scales x by sqrt(aspect) and y by 1 / sqrt(aspect), so
        tan(exported tilt) = tan(image tilt) / aspect; the sign is kept.

        >>> round(Placement(15, 0, 0.36, 25, "2024-01-01", aspect=3.0).model_tilt(10.0), 2)
        27.88
        """
        if abs(tilt_deg) >= 90:
            return tilt_deg
        return math.degrees(math.atan(self.aspect * math.tan(math.radians(tilt_deg))))

    @property
    def hemisphere(self) -> str:
        return "north" if self.lat > 0 else "south" if self.lat < 0 else "equator"

    @property
    def cdelt_deg(self) -> float:
        """CEA pixel size [deg] of heliographic angle: pixel_mm / R_sun, in degrees."""
        return math.degrees(self.pixel_mm / _RSUN_MM)

    def wcs_cards(self) -> dict[str, tuple[Any, str]]:
        """Header cards of a CEA WCS centred on the placement, as SHARPs (but Stonyhurst)."""
        ny, nx = self.export_shape  # FITS pixels are 1-based: the centre of 128 px is 64.5
        return {
            "WCSNAME": ("Stonyhurst", "heliographic Stonyhurst coordinates"),
            "CTYPE1": ("HGLN-CEA", "longitude, cylindrical equal area"),
            "CTYPE2": ("HGLT-CEA", "latitude, cylindrical equal area"),
            "CUNIT1": ("deg", ""),
            "CUNIT2": ("deg", ""),
            "CRPIX1": ((nx + 1) / 2, "reference pixel: the AR's centre"),
            "CRPIX2": ((ny + 1) / 2, ""),
            "CRVAL1": (float(self.lon), "[deg] Stonyhurst longitude of the centre"),
            "CRVAL2": (float(self.lat), "[deg] Stonyhurst latitude of the centre"),
            "CDELT1": (self.cdelt_deg, "[deg] pixel size (equal-area)"),
            "CDELT2": (self.cdelt_deg, "[deg] pixel size (equal-area)"),
            "PV2_1": (1.0, "CEA lambda"),
            "DATE-OBS": (self.date_obs, "nominal date of the placement"),
            "MJD-OBS": (Time(self.date_obs).mjd, "the same date as a modified Julian date"),
            "RSUN_REF": (RSUN_REF.to_value(u.m), "[m] solar radius"),
            "DSUN_OBS": (_AU_M, "[m] nominal observer distance (1 AU)"),
            "HGLN_OBS": (0.0, "[deg] nominal observer at the central meridian"),
            "HGLT_OBS": (0.0, "[deg] nominal observer B0"),
            "PIXMM": (float(self.pixel_mm), "[Mm] size of one pixel"),
            "ASPECT": (float(self.aspect), "width / height the generated AR is stretched to"),
            "CYCLE": (int(self.cycle), "solar cycle (Hale's law)"),
            "HEMISPH": (self.hemisphere, ""),
        }


def placement_ranges(placement: Placement, *, anti_joy: bool, anti_hale: bool) -> list[Range]:
    """The ranges on the image's tilt and orientation that make a placed AR anti-Joy or
    anti-Hale.

    Joy's law (SCIENCE.md): joy_tilt = -sign(lat) tilt > 0; anti-Joy is joy_tilt < 0, i.e.
    tilt > 0 in the north and tilt < 0 in the south. Hale's law: the leading (west, larger x)
    polarity has the sign :func:`hale_leading_sign`; orientation is +1 when the positive
    polarity leads, so anti-Hale is orientation = -that sign.
    """
    out = []
    if (anti_joy or anti_hale) and placement.lat == 0:
        raise CatalogueError(
            "anti-Joy and anti-Hale need a hemisphere: give a latitude other than 0"
        )
    if anti_joy:
        out.append(Range("tilt", ">" if placement.lat > 0 else "<", 0.0))
    if anti_hale:
        sign = -hale_leading_sign(placement.lat, placement.cycle)
        out.append(Range("orientation", ">" if sign > 0 else "<", 0.0))
    return out


def physical_parameters(image_b: np.ndarray, placement: Placement) -> dict[str, u.Quantity]:
    """Parameters of one model-space image at a placement, in physical units.

    Parameters
    ----------
    image_b : ndarray (128, 128)
        b = B_r / 1000 G (may exceed 1 after flux balancing).

    Returns
    -------
    dict of Quantities: fluxes ``tuf``, ``tpf``, ``tnf``, ``r``, ``net_flux`` [Mx] (G px times
    the pixel area (pixel_mm)^2), ``psep`` [Mm], ``tilt`` and ``joy_tilt`` [deg],
    ``orientation`` and ``leading_sign`` (+1/-1, dimensionless), ``sigma`` [G], ``alpha``,
    ``grad`` [G / Mm], ``bipolar``, ``joy`` (1 obeys Joy's law), ``hale`` (1 obeys Hale's
    law). The definitions are SCIENCE.md's, on the 128 x 128 image; at an aspect other than
    1, the fluxes, ``psep``, ``tilt``, ``joy_tilt`` and ``joy`` are those of the exported,
    stretched AR on its own grid (:func:`sharpseek.physics.native.native_parameters`), while R,
    SIGMA, ALPHA and GRAD stay the image's.
    """
    p = {
        k: float(np.asarray(v)[0])
        for k, v in compute_parameters(image_b[None].astype(np.float64)).items()
    }
    area_cm2 = (placement.pixel_mm * u.Mm).to_value(u.cm) ** 2
    flux = lambda g_px: g_px * area_cm2 * u.Mx  # noqa: E731  (G px -> Mx)
    lat_sign = float(np.sign(placement.lat))
    joy_tilt = -lat_sign * p["tilt"] if lat_sign else float("nan")
    orientation = p["orientation"]
    if lat_sign and np.isfinite(orientation):
        hale = float(orientation == hale_leading_sign(placement.lat, placement.cycle))
    else:
        hale = float("nan")
    out = {
        "tuf": flux(p["tuf"]),
        "tpf": flux(p["tpf"]),
        "tnf": flux(p["tnf"]),
        "r": flux(p["r"]),
        "net_flux": flux(float(image_b.sum()) * _G_PER_B),
        "psep": p["psep"] * placement.pixel_mm * u.Mm,
        "tilt": p["tilt"] * u.deg,
        "joy_tilt": joy_tilt * u.deg,
        "orientation": orientation * u.one,
        "sigma": p["sigma"] * _G_PER_B * u.G,
        "alpha": p["alpha"] * u.one,
        "grad": p["grad"] * _G_PER_B / placement.pixel_mm * u.G / u.Mm,
        "bipolar": float(p["bipolar"]) * u.one,
        "joy": (float(joy_tilt > 0) if np.isfinite(joy_tilt) else float("nan")) * u.one,
        "hale": hale * u.one,
    }
    if placement.aspect != 1:  # the exported AR is the stretched one: measure it there
        field = stretch(np.asarray(image_b, np.float32), placement) * _G_PER_B * u.G
        scale = placement.cdelt_deg * u.deg
        native = native_parameters(field, pixel_scale=scale, latitude=placement.lat * u.deg)
        fluxes = patch_quantities(field, pixel_scale=scale)
        joy = native["joy_tilt_cea"].to_value(u.deg)
        out.update(
            tuf=fluxes["unsigned_flux"],
            tpf=fluxes["positive_flux"],
            tnf=fluxes["negative_flux"],
            net_flux=flux(float(field.to_value(u.G).sum())),
            psep=native["psep_mm"],
            tilt=native["tilt_cea"],
            joy_tilt=native["joy_tilt_cea"],
            joy=(float(joy > 0) if np.isfinite(joy) else float("nan")) * u.one,
        )
    return out


def _on_image(r: Range, placement: Placement) -> Range:
    """A range as checked on the square generated image: a tilt bound in degrees belongs to
    the exported AR, so it moves to :meth:`Placement.model_tilt` (percentiles stay)."""
    if r.parameter not in ("tilt", "joy_tilt") or r.percentile or placement.aspect == 1:
        return r
    return Range(r.parameter, r.op, placement.model_tilt(r.amount))


def stretch(image_b: np.ndarray, placement: Placement) -> np.ndarray:
    """A square model-space image stretched to the placement's :attr:`~Placement.export_shape`
    (antialiased bilinear, as sharpseek resizes patches); unchanged at aspect 1."""
    if placement.export_shape == image_b.shape:
        return image_b

    x = torch.from_numpy(np.ascontiguousarray(image_b, dtype=np.float32))[None, None]
    y = F.interpolate(
        x, size=placement.export_shape, mode="bilinear", antialias=True, align_corners=False
    )  # (1, 1, ny, nx)
    return y[0, 0].numpy()
