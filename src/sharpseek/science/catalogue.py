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

Here: the sampling (:func:`make_catalogue`) and the catalogue's types; ranges and placement live
in :mod:`sharpseek.science.catalogue_placement`, the export in
:mod:`sharpseek.science.catalogue_export`.

Hook for the search (issue 6): :func:`make_catalogue` takes ``nearest``, a callable given the
(n, 128, 128) model-space images that returns, per AR, identifiers of its nearest real SHARPs;
they are written as header cards ``NEAR1``... and the CSV column ``nearest_sharps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from tqdm.auto import tqdm

from sharpseek.physics.definitions import FIELD_SCALE, MODEL_SIZE
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.catalogue_placement import (
    CatalogueError,
    Placement,
    Range,
    _on_image,
    physical_parameters,
    placement_ranges,
    stretch,
)
from sharpseek.science.directions import DirectionSet
from sharpseek.science.flare_direction import FLARE_DIRECTION

__all__ = [
    "Catalogue",
    "CatalogueEntry",
    "NearestFn",
    "guide_shift",
    "make_catalogue",
]

_G_PER_B = FIELD_SCALE.to_value(u.G)


#: ``nearest(images)`` with images (n, 128, 128) model space -> per AR, identifiers of its
#: nearest real SHARPs (the search helper of issue 6 provides one).
NearestFn = Callable[[np.ndarray], Sequence[Sequence[str]]]


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
    placements = _check_request(directions, count, placements, ranges)
    groups = _placement_groups(placements, ranges, anti_joy=anti_joy, anti_hale=anti_hale)
    rng = np.random.default_rng(seed)
    kept_z: list[np.ndarray] = [None] * count  # type: ignore[list-item]
    kept_b: list[np.ndarray] = [None] * count  # type: ignore[list-item]
    kept_unit = np.zeros((0, MODEL_SIZE * MODEL_SIZE))
    drawn = 0
    notes: list[str] = []
    bar = None
    if progress:
        bar = tqdm(total=count, desc="ARs found", unit="AR")
    for wanted, slots in groups:
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
                v = _unit_image(images[i])
                if v is None:
                    continue
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
    entries = _entries(kept_z, kept_b, placements, balance=balance, nearest=nearest)
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


def _check_request(
    directions: DirectionSet,
    count: int,
    placements: Placement | Sequence[Placement],
    ranges: Sequence[Range],
) -> list[Placement]:
    """The K placements of a :func:`make_catalogue` request, after checking count and ranges."""
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
    return placements


def _placement_groups(
    placements: Sequence[Placement], ranges: Sequence[Range], *, anti_joy: bool, anti_hale: bool
) -> list[tuple[list[Range], list[int]]]:
    """(ranges met on the image, AR slots) per group of ARs sampled together: those whose
    placements imply the same extra ranges."""
    groups: dict[tuple, list[int]] = {}
    extra: dict[tuple, list[Range]] = {}
    for i, place in enumerate(placements):
        more = placement_ranges(place, anti_joy=anti_joy, anti_hale=anti_hale)
        # a tilt in degrees is the exported (stretched) AR's: met on the image by model_tilt
        mine = [_on_image(r, place) for r in ranges]
        key = (*(str(r) for r in mine), "|", *(str(r) for r in more))
        groups.setdefault(key, []).append(i)
        extra[key] = [*mine, *more]
    return [(extra[key], slots) for key, slots in groups.items()]


def _unit_image(image_b: np.ndarray) -> np.ndarray | None:
    """The image as a zero-mean unit vector (16384,) for the duplicate test; None if constant."""
    v = image_b.reshape(-1).astype(np.float64)
    v = v - v.mean()
    norm = np.linalg.norm(v)
    if norm == 0:
        return None
    v /= norm
    return v


def _entries(
    kept_z: Sequence[np.ndarray],
    kept_b: Sequence[np.ndarray],
    placements: Sequence[Placement],
    *,
    balance: bool,
    nearest: NearestFn | None,
) -> list[CatalogueEntry]:
    """The exported ARs: balanced if asked, stretched to their placement, measured there."""
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
    return entries
