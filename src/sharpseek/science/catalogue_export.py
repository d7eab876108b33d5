"""Export of a catalogue of synthetic ARs: a FITS file (one image HDU per AR, in gauss, with a
CEA WCS for its placement and its parameters in physical units) and a CSV of the same.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.io import fits

if TYPE_CHECKING:  # only for annotations: catalogue.py imports this module
    from sharpseek.science.catalogue import Catalogue

__all__ = [
    "write_csv",
    "write_fits",
]


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
