"""The local-FITS ingest source: find Br files, read them, refuse bad ones with a reason.

Files as JSOC exports them become records through
:func:`sharpseek.data.ingest_records.frame_to_record`; each raw file is kept in the store
under a content-addressed key (:func:`raw_key`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

from sharpseek import __version__
from sharpseek.data.dataset import PatchRecord, Quarantined, record_id
from sharpseek.data.fits import SHARP_SERIES, read_sharp
from sharpseek.data.ingest_records import (
    DATASET_SCHEMA,
    FIELD_UNITS,
    frame_to_record,
)
from sharpseek.data.native import magnetogram_beside
from sharpseek.data.object_store import ObjectStore
from sharpseek.data.preprocess import (
    small_patch_problem,
)

__all__ = [
    "file_sha256",
    "find_fits_files",
    "fits_provenance",
    "fits_records",
    "keep_raw",
    "raw_key",
    "shown_path",
]

log = logging.getLogger(__name__)


def find_fits_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[Quarantined]]:
    """The Br FITS files among ``paths`` (files, or folders searched recursively).

    Other segments of a SHARP (``bitmap``, ``magnetogram``, ...) are left aside, as are
    files that do not end in ``.fits``; a path that does not exist is reported.
    """
    found: list[Path] = []
    problems: list[Quarantined] = []
    for path in map(Path, paths):
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            candidates = [path]
        else:
            problems.append(Quarantined(shown_path(path), "no such file or folder"))
            continue
        for file in candidates:
            name = file.name.lower()
            if not (name.endswith(".fits") or name.endswith(".fits.gz")):
                if path.is_file():
                    problems.append(Quarantined(shown_path(file), "not a .fits file"))
                continue
            if shown_path(file.name) != file.name:
                problems.append(
                    Quarantined(
                        shown_path(file),
                        "the file name holds a control character (a newline, say) or bytes "
                        "that are not UTF-8; rename it (the dataset records names as text)",
                    )
                )
                continue
            segment = _segment_of(file.name)
            if segment is not None and segment != "br":
                log.info("leaving aside %s: segment %r, not Br", file, segment)
                continue
            found.append(file)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique, problems


def shown_path(path: str | Path) -> str:
    """``path`` as printable UTF-8 text: bytes that are not UTF-8 (kept by Python as
    surrogates) as ``\\xff``, control characters as ``\\n``, ``\\x1b``... A name that
    comes back changed cannot be recorded as it is."""
    raw = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in raw
    )


def _segment_of(name: str) -> str | None:
    """The segment of a JSOC export name ``<series>.<HARP>.<T_REC>.<segment>.fits``."""
    parts = name.removesuffix(".gz").removesuffix(".fits").split(".")
    if len(parts) >= 4 and any(name.startswith(s + ".") for s in SHARP_SERIES):
        return parts[-1].lower()
    return None


def fits_records(
    files: Iterable[Path], *, source: str = "fits", store: ObjectStore | None = None
) -> Iterator[PatchRecord | Quarantined]:
    """Read, check and convert Br FITS files; a bad file becomes :class:`Quarantined`.

    With ``store``, each good file is kept exactly as received under the content-addressed
    key ``raw/<series>/<HARPNUM>/<SHA-256 of its bytes>.fits`` (created only if absent: two
    different files never share a key, the same bytes are stored once, whatever their
    names); the manifest's ``raw_key`` names it, ``source`` the file's name.
    """
    for path in files:
        try:
            sharp = read_sharp(path)
        except Exception as err:  # astropy raises many kinds for a broken file
            reason = str(err).removeprefix(f"{path}: ")  # read_sharp names the file
            if not isinstance(err, ValueError):
                reason = f"{type(err).__name__}: {reason}"
            yield Quarantined(shown_path(path), f"not a readable FITS file: {reason}")
            continue
        meta, header = sharp.meta, sharp.header
        problem = _fits_problem(sharp.data, meta, header)
        rid = ""
        if not (problem or "").startswith(("header lacks", "HARPNUM=")):
            rid = record_id(meta["series"], meta["harpnum"], meta["t_rec"])
        if problem:
            yield Quarantined(shown_path(path), problem, rid)
            continue
        extra = {"source": f"{source}:{path.name}"}
        if store is not None:
            extra["raw_key"] = keep_raw(store, path, meta)
        meta = {**meta, "dsun_obs": _keyword(header, "DSUN_OBS")}
        try:
            yield frame_to_record(
                sharp.data, meta, extra, los=magnetogram_beside(path, sharp.data.shape)
            )
        except ValueError as err:
            yield Quarantined(shown_path(path), str(err), rid)


def raw_key(meta: dict[str, Any], sha256: str) -> str:
    """The content-addressed key of a raw FITS file: its series, HARP and SHA-256."""
    return f"raw/{meta['series']}/{int(meta['harpnum'])}/{sha256}.fits"


def keep_raw(store: ObjectStore, path: Path, meta: dict[str, Any]) -> str:
    """Store ``path`` under its content-addressed key (nothing when those bytes are there
    already; two writers of one key put the same bytes, so neither loses); return the key."""
    key = raw_key(meta, file_sha256(path))
    if not store.exists(key):
        store.put_file(key, path)
    return key


def _keyword(header, key: str) -> float:
    try:
        return float(header.get(key))
    except (TypeError, ValueError):
        return math.nan


def _fits_problem(data: np.ndarray, meta: dict[str, Any], header) -> str | None:
    if meta.get("harpnum") is None or meta.get("t_rec") is None:
        return "header lacks HARPNUM or T_REC"
    harpnum = meta["harpnum"]
    if isinstance(harpnum, bool) or not isinstance(harpnum, int | np.integer) or harpnum < 0:
        return f"HARPNUM={harpnum!r} is not a non-negative integer"
    too_small = small_patch_problem(data.shape)
    if too_small:
        return too_small
    if not np.isfinite(data).any():
        return "all pixels are NaN"
    bunit = str(header.get("BUNIT", "")).strip()
    if not bunit:
        return "header has no BUNIT: cannot tell the field's unit"
    try:
        unit = u.Unit(bunit.replace("^", "**"), format="generic")
    except ValueError:
        return f"unit BUNIT={bunit!r} is not understood"
    if not unit.is_equivalent(FIELD_UNITS):
        return f"unit BUNIT={bunit!r} is not a field strength (gauss or Mx/cm^2)"
    if unit != FIELD_UNITS:
        scale = unit.to(FIELD_UNITS)
        if not math.isclose(scale, 1.0):
            return f"unit BUNIT={bunit!r} is a field strength but not in gauss (x{scale:g})"
    return None


def fits_provenance(paths: Sequence[str | Path], *, n_files: int, source: str) -> dict[str, Any]:
    """What dataset.json records about a FITS ingest."""
    return {
        "source": source,
        "paths": [str(p) for p in paths],
        "n_files": n_files,
        "sharpseek_version": __version__,
        "schema": DATASET_SCHEMA,
    }


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
