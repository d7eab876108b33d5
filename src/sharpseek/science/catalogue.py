"""Catalogues of synthetic active regions for dynamo and surface-flux-transport studies.

A user asks for K distinct generated ARs whose parameters fall in chosen ranges
(``tilt<-10``, ``tuf>p90``, ...), places each on the Sun (latitude, longitude, the size of a
model pixel in Mm, hemisphere and cycle) and may ask for anti-Joy or anti-Hale regions —
properties of a *placed* AR (SCIENCE.md, "tilt"), turned here into ranges on the image's tilt
and orientation — and for flux balance. The ARs are found by guided rejection sampling:
latent vectors are drawn around a shift along each ranged parameter's direction (read off the
calibration curves stored with the directions), generated, measured, kept when every range
holds, and dropped when too like one already kept (image correlation). The export is a FITS
file with one image HDU per AR in gauss with a CEA WCS for its placement (Stonyhurst
``HGLN-CEA``/``HGLT-CEA``, the keywords sunpy.map reads) and a header with its parameters in
physical units, its z and the GAN and directions versions, plus a CSV of the same.

Hook for the search (issue 6): :func:`make_catalogue` takes ``nearest``, a callable given the
(n, 128, 128) model-space images that returns, per AR, identifiers of its nearest real SHARPs;
they are written as header cards ``NEAR1``... and the CSV column ``nearest_sharps``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import torch
import torch.nn.functional as F
from astropy.io import fits
from astropy.time import Time
from tqdm.auto import tqdm

from sharpseek.physics.definitions import FIELD_SCALE, MODEL_SIZE, RSUN_REF
from sharpseek.physics.native import native_parameters, patch_quantities
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions import DirectionSet
from sharpseek.science.flare_direction import FLARE_DIRECTION

__all__ = [
    "Catalogue",
    "CatalogueEntry",
    "CatalogueError",
    "NearestFn",
    "Placement",
    "Range",
    "guide_shift",
    "hale_leading_sign",
    "make_catalogue",
    "physical_parameters",
    "placement_ranges",
    "stretch",
    "write_csv",
    "write_fits",
]

#: ``nearest(images)`` with images (n, 128, 128) model space -> per AR, identifiers of its
#: nearest real SHARPs (the search helper of issue 6 provides one).
NearestFn = Callable[[np.ndarray], Sequence[Sequence[str]]]

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
    :data:`sharpseek.physics.parameters.PARAMETER_UNITS`.
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


# ----------------------------------------------------------------------------------------------
# guided rejection sampling
# ----------------------------------------------------------------------------------------------
#: Beyond the first eps where the calibrated median meets a range, go this much further
#: (latent units) so that about half or more of the candidates meet it.
GUIDE_MARGIN = 0.5


def guide_shift(directions: DirectionSet, ranges: Sequence[Range]) -> tuple[np.ndarray, list[str]]:
    """A latent shift that moves the median of each ranged parameter into its range.

    For each range, the calibration curve of its parameter along its own direction gives the
    smallest |eps| where the median meets the range; the guide goes ``GUIDE_MARGIN`` beyond
    it (within the calibrated eps). Uncalibrated parameters get no shift (pure rejection).

    Returns
    -------
    shift : ndarray (latent_dim,)
    notes : list of str, one per range that the calibration never reached or that has no
        calibration curve
    """
    total = np.zeros(directions.latent_dim)
    notes = []
    for r in ranges:
        curves = directions.calibration.get(r.parameter, {})
        own = curves.get(r.parameter)
        if r.parameter not in directions.boundaries or not own:
            notes.append(f"{r}: no calibrated direction; candidates are only filtered")
            continue
        eps = np.asarray(curves["eps"], dtype=float)
        median = np.array([np.nan if v is None else v for v in own["median"]], dtype=float)
        ok = r.holds(median, r.bound(directions))
        if ok[np.argmin(np.abs(eps))]:
            continue  # the median already meets it
        if not ok.any():
            best = (
                eps[-1]
                if (np.nanmedian(median[eps > 0]) > np.nanmedian(median[eps < 0])) == (r.op == ">")
                else eps[0]
            )
            notes.append(
                f"{r}: the calibration never moved the median into the range (|eps| <= "
                f"{np.abs(eps).max():g}); few candidates may meet it"
            )
            e = best
        else:
            first = eps[ok][np.argmin(np.abs(eps[ok]))]
            e = float(np.clip(first + math.copysign(GUIDE_MARGIN, first), eps.min(), eps.max()))
        total += e * directions[r.parameter].normal
    return total, notes


@dataclass
class CatalogueEntry:
    """One exported AR.

    ``image_gauss`` (ny, nx) float32 is B_r [G] as exported (after balancing; 128 x 128, or
    the placement's :attr:`~Placement.export_shape` when stretched to an aspect);
    ``quantities`` its parameters in physical units (astropy Quantities) at its placement.
    """

    z: np.ndarray
    image_gauss: np.ndarray
    placement: Placement
    quantities: dict[str, u.Quantity]
    balance_factor: float | None = None
    nearest: list[str] = field(default_factory=list)


@dataclass
class Catalogue:
    entries: list[CatalogueEntry]
    gan_version: str
    directions_version: str
    ranges: list[str]
    anti_joy: bool
    anti_hale: bool
    balance: bool
    candidates: int
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)


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
    stretched AR on its own grid (:func:`sharpseek.physics.parameters.native_parameters`), while R,
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


def _balance(image_b: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale positive pixels by f and negative ones by 1/f, f = sqrt(sum|neg| / sum pos), so
    the net flux is zero and the unsigned flux changes least (geometric mean of the two)."""
    pos = image_b[image_b > 0].sum()
    neg = -image_b[image_b < 0].sum()
    if pos <= 0 or neg <= 0:
        raise CatalogueError("cannot balance an AR with a single polarity")
    f = math.sqrt(neg / pos)
    return np.where(image_b > 0, image_b * f, image_b / f).astype(np.float32), f


def make_catalogue(
    generate,
    directions: DirectionSet,
    count: int,
    placements: Placement | Sequence[Placement],
    *,
    ranges: Sequence[Range] = (),
    anti_joy: bool = False,
    anti_hale: bool = False,
    balance: bool = False,
    seed: int = 0,
    batch_size: int = 256,
    max_candidates: int = 20_000,
    duplicate_correlation: float = 0.95,
    nearest: NearestFn | None = None,
    progress: bool = False,
) -> Catalogue:
    """K distinct generated ARs meeting ``ranges`` (and anti-Joy/anti-Hale at their
    placement), placed and optionally flux-balanced.

    Parameters
    ----------
    generate : callable
        ``generate(z)`` float32 (b, latent_dim) -> model-space images (b, 128, 128).
    directions : DirectionSet of that generator (its calibration guides the sampling).
    count : K
    placements : one Placement for every AR, or K of them.
    ranges : ranges on parameters in model units (checked on the generated image, before
        balancing; the exported parameters are those of the exported image).
    duplicate_correlation : a candidate whose image correlates at least this much with a
        kept AR's is rejected as a near-duplicate.
    nearest : the search hook (module docstring); None leaves ``nearest`` empty.

    Raises
    ------
    CatalogueError
        When fewer than K distinct ARs meet the ranges within ``max_candidates`` draws, or
        for an impossible placement.
    KeyError
        For a range on an unknown parameter (naming the known ones).
    """
    if count < 1:
        raise CatalogueError(f"count must be >= 1, got {count}")
    if isinstance(placements, Placement):
        placements = [placements] * count
    placements = list(placements)
    if len(placements) != count:
        raise CatalogueError(f"give one placement or {count}, got {len(placements)}")
    # the flare direction's probability is not measured on candidates: no range on it
    known = (set(directions.distribution) | set(directions.boundaries)) - {FLARE_DIRECTION}
    for r in ranges:
        if r.parameter not in known:
            raise KeyError(
                f"range on unknown parameter {r.parameter!r}; known: {', '.join(sorted(known))}"
            )
    # ARs whose placements imply the same extra ranges are sampled together
    groups: dict[tuple, list[int]] = {}
    extra: dict[tuple, list[Range]] = {}
    for i, place in enumerate(placements):
        more = placement_ranges(place, anti_joy=anti_joy, anti_hale=anti_hale)
        # a tilt in degrees is the exported (stretched) AR's: met on the image by model_tilt
        mine = [_on_image(r, place) for r in ranges]
        key = (*(str(r) for r in mine), "|", *(str(r) for r in more))
        groups.setdefault(key, []).append(i)
        extra[key] = [*mine, *more]
    rng = np.random.default_rng(seed)
    kept_z: list[np.ndarray] = [None] * count  # type: ignore[list-item]
    kept_b: list[np.ndarray] = [None] * count  # type: ignore[list-item]
    kept_unit = np.zeros((0, MODEL_SIZE * MODEL_SIZE))
    drawn = 0
    notes: list[str] = []
    bar = None
    if progress:
        bar = tqdm(total=count, desc="ARs found", unit="AR")
    for key, slots in groups.items():
        wanted = extra[key]
        guide, group_notes = guide_shift(directions, wanted)
        notes.extend(group_notes)
        bounds = [r.bound(directions) for r in wanted]
        filled = 0
        while filled < len(slots):
            if drawn >= max_candidates:
                got = sum(z is not None for z in kept_z)
                raise CatalogueError(
                    f"found only {got} of {count} distinct ARs meeting "
                    f"{', '.join(map(str, wanted)) or 'no range'} in {drawn} candidates; "
                    "loosen the ranges or raise max_candidates"
                )
            n = min(batch_size, max_candidates - drawn)
            z = (rng.standard_normal((n, directions.latent_dim)) + guide).astype(np.float32)
            drawn += n
            images = np.asarray(generate(z))
            params = compute_parameters(images)
            ok = np.ones(n, bool)
            for r, bound in zip(wanted, bounds, strict=True):
                ok &= r.holds(params[r.parameter], bound)
            for i in np.flatnonzero(ok):
                v = images[i].reshape(-1).astype(np.float64)
                v = v - v.mean()
                norm = np.linalg.norm(v)
                if norm == 0:
                    continue
                v /= norm
                if len(kept_unit) and np.max(kept_unit @ v) >= duplicate_correlation:
                    continue  # a near-duplicate of an AR already kept
                slot = slots[filled]
                kept_z[slot], kept_b[slot] = z[i], images[i]
                kept_unit = np.vstack([kept_unit, v])
                filled += 1
                if bar is not None:
                    bar.update(1)
                if filled == len(slots):
                    break
    if bar is not None:
        bar.close()
    entries = []
    exported_b = []  # the square images, as the search compares them
    for z, b, place in zip(kept_z, kept_b, placements, strict=True):
        factor = None
        if balance:
            b, factor = _balance(b)
        exported_b.append(b)
        entries.append(
            CatalogueEntry(
                z=np.asarray(z, dtype=np.float32),
                image_gauss=(stretch(b, place) * _G_PER_B).astype(np.float32),
                placement=place,
                quantities=physical_parameters(b, place),
                balance_factor=factor,
            )
        )
    if nearest is not None:
        found = nearest(np.stack(exported_b))
        for entry, ids in zip(entries, found, strict=True):
            entry.nearest = [str(x) for x in ids]
    return Catalogue(
        entries=entries,
        gan_version=directions.gan_version,
        directions_version=directions.version,
        ranges=[str(r) for r in ranges],
        anti_joy=anti_joy,
        anti_hale=anti_hale,
        balance=balance,
        candidates=drawn,
        notes=notes,
    )


# ----------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------
#: FITS keyword and unit of each exported quantity.
_CARDS = {
    "tuf": ("TUF", u.Mx, "total unsigned flux"),
    "tpf": ("TPF", u.Mx, "positive flux over B > 150 G"),
    "tnf": ("TNF", u.Mx, "negative flux over B < -150 G (positive)"),
    "r": ("R_SCHR", u.Mx, "Schrijver R: flux near the PIL"),
    "net_flux": ("NETFLUX", u.Mx, "signed flux"),
    "psep": ("PSEP", u.Mm, "polarity separation"),
    "tilt": ("TILT", u.deg, "tilt, following -> leading (west)"),
    "joy_tilt": ("JOYTILT", u.deg, "-sign(lat) tilt; > 0 obeys Joy's law"),
    "orientation": ("ORIENT", u.one, "+1: positive polarity leads (west)"),
    "sigma": ("SIGMA", u.G, "sigma of the Gaussian fit to the histogram"),
    "alpha": ("ALPHA", u.one, "power-spectrum slope"),
    "grad": ("GRAD", u.G / u.Mm, "mean gradient magnitude"),
    "bipolar": ("BIPOLAR", u.one, "both polarities present"),
    "joy": ("JOY", u.one, "1: obeys Joy's law at this placement"),
    "hale": ("HALE", u.one, "1: obeys Hale's law at this placement and cycle"),
}


def _card_value(q: u.Quantity, unit) -> float | None:
    value = float(q.to_value(unit))
    return value if math.isfinite(value) else None  # FITS has no NaN: leave the card empty


def write_fits(catalogue: Catalogue, path: str | Path) -> Path:
    """One FITS file: a primary HDU describing the catalogue, then one image HDU per AR
    (``AR0001``...) holding B_r [G] (float32) with its CEA WCS, parameters and z."""
    path = Path(path)
    primary = fits.PrimaryHDU()
    h = primary.header
    h["TELESCOP"] = ("sharpseek", "generated active regions")
    h["GAN_VER"] = (catalogue.gan_version, "generator version")
    h["DIR_VER"] = (catalogue.directions_version, "directions version")
    h["NAR"] = (len(catalogue), "number of ARs (one image HDU each)")
    h["RANGES"] = (";".join(catalogue.ranges), "ranges the ARs meet (model units)")
    h["ANTIJOY"] = (catalogue.anti_joy, "anti-Joy requested")
    h["ANTIHALE"] = (catalogue.anti_hale, "anti-Hale requested")
    h["BALANCE"] = (catalogue.balance, "flux balanced")
    h["NCAND"] = (catalogue.candidates, "candidates drawn")
    hdus = [primary]
    for i, entry in enumerate(catalogue.entries, start=1):
        hdu = fits.ImageHDU(entry.image_gauss.astype(np.float32), name=f"AR{i:04d}")
        hh = hdu.header
        hh["BUNIT"] = ("G", "radial field B_r in gauss")
        for key, card in entry.placement.wcs_cards().items():
            hh[key] = card
        hh["GAN_VER"] = (catalogue.gan_version, "generator version")
        hh["DIR_VER"] = (catalogue.directions_version, "directions version")
        for name, (key, unit, comment) in _CARDS.items():
            label = f"[{unit.to_string()}] " if unit != u.one else ""
            hh[key] = (_card_value(entry.quantities[name], unit), f"{label}{comment}")
        if entry.balance_factor is not None:
            hh["BALFACT"] = (entry.balance_factor, "positive px x f, negative px / f")
        for j, value in enumerate(entry.z):
            hh[f"Z{j:03d}"] = float(value)
        for j, name in enumerate(entry.nearest, start=1):
            hh[f"NEAR{j}"] = (name, "nearest real SHARP")
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_csv(catalogue: Catalogue, path: str | Path) -> Path:
    """The same catalogue as a CSV: one row per AR (placement, parameters with their units
    in the column names, balance factor, z000..., nearest_sharps, versions)."""
    path = Path(path)
    latent_dim = len(catalogue.entries[0].z) if catalogue.entries else 0
    units = {name: unit for name, (_, unit, _) in _CARDS.items()}
    columns = ["hdu", "lat_deg", "lon_deg", "pixel_mm", "aspect", "cycle", "hemisphere"]
    columns += [
        f"{n}_{units[n].to_string().replace(' ', '')}" if units[n] != u.one else n for n in _CARDS
    ]
    columns += ["balance_factor", "gan_version", "directions_version", "nearest_sharps"]
    columns += [f"z{j:03d}" for j in range(latent_dim)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i, e in enumerate(catalogue.entries, start=1):
            p = e.placement
            row: list[Any] = [f"AR{i:04d}", p.lat, p.lon, p.pixel_mm, p.aspect, p.cycle,
                              p.hemisphere]  # fmt: skip
            row += [_card_value(e.quantities[n], units[n]) for n in _CARDS]
            row += [
                e.balance_factor,
                catalogue.gan_version,
                catalogue.directions_version,
                ";".join(e.nearest),
            ]
            row += [float(v) for v in e.z]
            writer.writerow(["" if v is None else v for v in row])
    return path
