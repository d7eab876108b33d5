"""GOES flare catalogue: parsing, matching flares to HARPs, and flare windows around frames.

What it is for: beside every real SHARP frame, what its region did in the 24 h before
(*history*) and in the 24 h and 48 h after (*outcome*). An outcome describes what happened
after an observation; it is never a feature of it (never an input of a model, an embedding
or a query vector), only a label to filter and read search results by.

Sources (:func:`read_flare_table`):

* the table of ../shared/data/flares (SWxTREC's ``goes_flares_2010_2019.csv``: DATE YYMMDD,
  START_TIME HHMM with or without leading zeros, CMX + CMX_VALUE = class x 10, AR, SHARP);
* a NOAA/SWPC edited event list (``YYYYMMDDevents.txt``, one or several days concatenated):
  its ``XRA`` rows (GOES 1-8 A events), Reg# = NOAA number - 10000.

Matching (:func:`match_flares`), against a HARP table (HARPNUM, lifetime in TAI, NOAA
numbers): a flare whose reported HARPNUM names a HARP of the table carrying the flare's NOAA
number, with the flare's start within that HARP's lifetime (+- ``margin``), is matched *by
HARPNUM*; otherwise the HARPs of the table carrying its NOAA number and alive at its start
are looked up (*by NOAA*; the largest HARP when several are); otherwise it is *unmatched*,
with the reason.

Times: GOES times are UTC, T_REC is TAI; flare starts are converted with astropy.time (leap
seconds included) and every window is computed on the TAI clock, where 24 h is 86,400 s.
The event time of a flare is its START (MAX is often blank).

Windows (:class:`FlareWindow`): history [T_REC - h, T_REC), outcome [T_REC, T_REC + h).
:func:`flare_windows` computes, for any set of frames at once (vectorised: two binary
searches per window), the largest class and the counts of flares >= C and >= M in each
window. A window is *unknown* (never quiet) when the catalogue does not cover it: it reaches
past the catalogue's last flare (or before its first), or outside the HARP's lifetime (+-
the margin: flares are matched to a HARP only while it lives), or the frame's HARP is not in
the HARP table or has no NOAA number (GOES attributes flares to NOAA regions only).

Versions in the store (:func:`save_flare_catalogue`), like a dataset::

    flares/<version>/flares.parquet   every row read, with its match (harpnum, by, reason)
    flares/<version>/harps.parquet    the HARP table it was matched against
    flares/<version>/claim.json       written first, only if absent (a number is used once)
    flares/<version>/catalogue.json   written last: the version exists once it exists
    flares/LATEST                     moved by compare-and-swap

"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from astropy.time import Time

from sharpseek.data.object_store import ObjectNotFound, ObjectStore, PreconditionFailed

__all__ = [
    "CLASS_FLUX",
    "FlareCatalogue",
    "FlareCatalogueError",
    "LoadResult",
    "class_flux",
    "class_name",
    "class_threshold",
    "latest_flare_version",
    "load_flare_catalogue",
    "match_flares",
    "save_flare_catalogue",
    "utc_to_tai",
]

#: Peak 1-8 A flux [W m^-2] of class 1.0 of each GOES letter (X1.0 = 1e-4 W m^-2).
CLASS_FLUX: dict[str, float] = {"A": 1e-8, "B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}
PREFIX = "flares"
#: Where the ground-truth flares of synthetic HARPs live (docs/synthetic.md): their HARP
#: numbers overlap real ones, so they are a catalogue of their own.
SYNTHETIC_PREFIX = "flares-synthetic"
FLARES = "flares.parquet"
HARPS = "harps.parquet"
INFO = "catalogue.json"
CLAIM = "claim.json"
#: Columns of a parsed flare table (before matching).
FLARE_COLUMNS = ["row", "start_utc", "start_tai", "goes_class", "peak_flux", "noaa", "sharp"]
_SECONDS = np.int64(1_000_000_000)
#: HARP numbers and TAI seconds share one int64 sort key: harpnum * 2**33 + seconds since
#: 1970 (seconds < 2**33 until the year 2242; harpnum < 2**29 leaves the key < 2**62).
_HARP_SHIFT = np.int64(2**33)


class FlareCatalogueError(ValueError):
    """A flare or HARP table that cannot be read; the message names the file and the row."""


# ----------------------------------------------------------------------------------------------
# classes
# ----------------------------------------------------------------------------------------------
def class_flux(letter: str, value: float) -> float:
    """Peak 1-8 A flux [W m^-2] of GOES class ``letter`` ``value`` (``"X", 9.3`` -> 9.3e-4)."""
    return CLASS_FLUX[letter] * float(value)


def class_name(flux: float) -> str:
    """The GOES class of a peak flux [W m^-2], one decimal: ``9.3e-4`` -> ``"X9.3"``.

    >>> class_name(9.3e-4), class_name(1e-5), class_name(2.2e-6)
    ('X9.3', 'M1.0', 'C2.2')
    """
    for letter in ("X", "M", "C", "B", "A"):
        if flux >= CLASS_FLUX[letter] * (1 - 1e-9) or letter == "A":
            return f"{letter}{flux / CLASS_FLUX[letter] + 1e-9:.1f}"
    raise AssertionError("unreachable")


def class_threshold(text: str) -> float:
    """The peak flux [W m^-2] a class threshold names: ``"M+"``, ``"M"``, ``"X2"``, ``"c+"``.

    >>> class_threshold("M+"), class_threshold("X2")
    (1e-05, 0.0002)
    """
    match = re.fullmatch(r"\s*([ABCMXabcmx])(\d+(?:\.\d+)?)?\+?\s*", str(text))
    if not match:
        raise ValueError(
            f"flare class {text!r}: give a GOES class and an optional '+', e.g. C+, M+, X, M5"
        )
    return class_flux(match.group(1).upper(), float(match.group(2) or 1.0))


# ----------------------------------------------------------------------------------------------
# time
# ----------------------------------------------------------------------------------------------
def utc_to_tai(times: Any) -> np.ndarray:
    """UTC times -> the TAI clock readings (naive ``datetime64[s]``), leap seconds included.

    >>> str(utc_to_tai(np.array(["2017-01-01T00:00:00"], "datetime64[s]"))[0])
    '2017-01-01T00:00:37'
    """
    utc = np.asarray(times, dtype="datetime64[s]")
    if not utc.size:
        return utc
    return Time(utc, scale="utc").tai.datetime64.astype("datetime64[s]")


# ----------------------------------------------------------------------------------------------
# matching
# ----------------------------------------------------------------------------------------------
def match_flares(
    flares: pd.DataFrame, harps: pd.DataFrame, *, margin: np.timedelta64 | None = None
) -> pd.DataFrame:
    """Attach a HARP to each flare: ``harpnum`` (0 when unmatched), ``matched_by``
    (``harpnum``, ``noaa`` or ``unmatched``) and ``reason`` (why unmatched, else empty).

    A flare is matched *by HARPNUM* when its reported HARPNUM is a HARP of ``harps`` carrying
    its NOAA number and alive at its start (TAI, +- ``margin``); else *by NOAA* to the HARP
    of ``harps`` carrying its NOAA number alive at its start (the largest, ``area_px``, when
    several are); else it is unmatched.
    """
    margin = np.timedelta64(0, "s") if margin is None else margin.astype("timedelta64[s]")
    by_harp = {int(h): row for h, row in zip(harps["harpnum"], harps.itertuples(), strict=True)}
    by_noaa: dict[int, list[Any]] = {}
    for row in harps.sort_values("area_px", ascending=False, kind="stable").itertuples():
        for number in row.noaa_ars:
            by_noaa.setdefault(int(number), []).append(row)

    def alive(row: Any, t: np.datetime64) -> bool:
        # a lifetime the table leaves blank (NaT) confirms nothing: every comparison is False
        return bool(row.t_start - margin <= t <= row.t_end + margin)

    harpnum = np.zeros(len(flares), np.int64)
    matched_by: list[str] = []
    reasons: list[str] = []
    for i, (t, noaa, sharp) in enumerate(
        zip(
            flares["start_tai"].to_numpy("datetime64[s]"),
            flares["noaa"],
            flares["sharp"],
            strict=True,
        )
    ):
        noaa, sharp = int(noaa), int(sharp)
        reported = by_harp.get(sharp) if sharp > 0 else None
        if reported is not None and noaa in reported.noaa_ars and alive(reported, t):
            harpnum[i] = sharp
            matched_by.append("harpnum")
            reasons.append("")
            continue
        candidates = [row for row in by_noaa.get(noaa, []) if alive(row, t)] if noaa > 0 else []
        if candidates:
            harpnum[i] = int(candidates[0].harpnum)
            matched_by.append("noaa")
            reasons.append("")
            continue
        matched_by.append("unmatched")
        if noaa <= 0:
            reasons.append("no NOAA number")
        elif noaa not in by_noaa:
            reasons.append(f"no HARP of the table carries NOAA {noaa}")
        else:
            reasons.append(f"no HARP carrying NOAA {noaa} is alive at the flare's start")
    out = flares.copy()
    out["harpnum"] = harpnum
    out["matched_by"] = matched_by
    out["reason"] = reasons
    return out


# ----------------------------------------------------------------------------------------------
# the catalogue in the store
# ----------------------------------------------------------------------------------------------
@dataclass
class FlareCatalogue:
    """A complete catalogue version: matched flares, the HARP table, and its info."""

    version: str
    flares: pd.DataFrame
    harps: pd.DataFrame
    info: dict[str, Any]

    @property
    def matched(self) -> pd.DataFrame:
        return self.flares[self.flares["matched_by"] != "unmatched"]

    @property
    def unmatched(self) -> pd.DataFrame:
        return self.flares[self.flares["matched_by"] == "unmatched"]

    @property
    def coverage(self) -> tuple[np.datetime64, np.datetime64]:
        """(first, last) flare start of the catalogue, TAI: the span its windows may cover."""
        starts = self.flares["start_tai"].to_numpy("datetime64[s]")
        return starts.min(), starts.max()


@dataclass
class LoadResult:
    """What a load did: the catalogue now latest, and whether it is a new version."""

    catalogue: FlareCatalogue
    created: bool
    counts: dict[str, int] = field(default_factory=dict)


def latest_flare_version(store: ObjectStore, *, root: str = PREFIX) -> str | None:
    """The newest complete catalogue version (from ``<root>/LATEST``: ``flares/`` for
    real HARPs, :data:`SYNTHETIC_PREFIX` for synthetic ones), or None."""
    try:
        version = store.get_bytes(f"{root}/LATEST").decode().strip()
    except ObjectNotFound:
        return None
    return version if store.exists(f"{root}/{version}/{INFO}") else None


def load_flare_catalogue(
    store: ObjectStore, version: str | None = None, *, root: str = PREFIX
) -> FlareCatalogue:
    """Version ``version`` (default: the latest) of the flare catalogue in ``store`` under
    ``root``."""
    version = version or latest_flare_version(store, root=root)
    if version is None:
        raise FileNotFoundError(
            f"no flare catalogue in {store.describe()}: load one with `sharpseek flares load FILE`"
        )
    prefix = f"{root}/{version}"
    try:
        info = json.loads(store.get_bytes(f"{prefix}/{INFO}"))
    except ObjectNotFound:
        raise FileNotFoundError(
            f"flare catalogue {version} is not complete in {store.describe()}"
        ) from None
    flares = pd.read_parquet(io.BytesIO(store.get_bytes(f"{prefix}/{FLARES}")))
    harps = pd.read_parquet(io.BytesIO(store.get_bytes(f"{prefix}/{HARPS}")))
    harps["noaa_ars"] = [list(map(int, v)) for v in harps["noaa_ars"]]
    for column in ("start_utc", "start_tai"):
        flares[column] = flares[column].astype("datetime64[s]")
    for column in ("t_start", "t_end"):
        harps[column] = harps[column].astype("datetime64[s]")
    return FlareCatalogue(version, flares, harps, info)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _content_digest(flares: pd.DataFrame, harps: pd.DataFrame, margin_hours: float) -> str:
    digest = hashlib.sha256(f"margin={margin_hours}\n".encode())
    for frame in (flares, harps):
        digest.update(
            pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes()
        )
    return digest.hexdigest()[:16]


def save_flare_catalogue(
    store: ObjectStore,
    flares: pd.DataFrame,
    harps: pd.DataFrame,
    *,
    source: str,
    harps_source: str,
    margin_hours: float = 0.0,
    root: str = PREFIX,
) -> LoadResult:
    """Match ``flares`` (from :func:`read_flare_table`) to ``harps`` and store them as a new
    catalogue version, unless the latest version holds the same content (then it is
    returned, ``created`` False). Nothing is visible until ``catalogue.json`` and LATEST are
    written; a crash before leaves a claimed number and no version."""
    margin = np.timedelta64(int(round(margin_hours * 3600)), "s")
    matched = match_flares(flares, harps, margin=margin)
    digest = _content_digest(flares, harps, margin_hours)
    counts = {
        "flares": len(matched),
        "by_harpnum": int((matched["matched_by"] == "harpnum").sum()),
        "by_noaa": int((matched["matched_by"] == "noaa").sum()),
        "unmatched": int((matched["matched_by"] == "unmatched").sum()),
        "harps": len(harps),
    }
    latest = latest_flare_version(store, root=root)
    if latest is not None:
        current = load_flare_catalogue(store, latest, root=root)
        if current.info.get("digest") == digest:
            return LoadResult(current, False, counts)
    version = _claim_version(store, root)
    prefix = f"{root}/{version}"
    harps_stored = harps.copy()
    harps_stored["noaa_ars"] = [list(map(int, v)) for v in harps_stored["noaa_ars"]]
    store.put_bytes(f"{prefix}/{FLARES}", _parquet(matched))
    store.put_bytes(f"{prefix}/{HARPS}", _parquet(harps_stored))
    first, last = matched["start_tai"].min(), matched["start_tai"].max()
    info = {
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "harps_source": harps_source,
        "digest": digest,
        "lifetime_margin_hours": margin_hours,
        "coverage_tai": [str(np.datetime64(first, "s")), str(np.datetime64(last, "s"))],
        "counts": counts,
    }
    store.put_bytes(f"{prefix}/{INFO}", json.dumps(info, indent=2).encode())
    _move_latest(store, version, root)
    return LoadResult(load_flare_catalogue(store, version, root=root), True, counts)


def _claim_version(store: ObjectStore, root: str) -> str:
    taken = set()
    for info in store.list(f"{root}/", recursive=True):
        parts = info.key[len(root) + 1 :].split("/")
        if len(parts) == 2 and parts[1] in (INFO, CLAIM):
            taken.add(parts[0])
    number = max((int(v[1:]) for v in taken if re.fullmatch(r"v\d+", v)), default=0)
    for _ in range(100):
        number += 1
        version = f"v{number:04d}"
        try:
            store.put_if(f"{root}/{version}/{CLAIM}", b"{}", match=None)
            return version
        except PreconditionFailed:
            continue  # another writer claimed it
    raise RuntimeError(f"could not claim a flare catalogue version in {store.describe()}")


def _move_latest(store: ObjectStore, version: str, root: str) -> None:
    """LATEST -> ``version`` by compare-and-swap, unless another writer moved it to a newer
    version meanwhile (versions are numbered in claim order)."""
    key = f"{root}/LATEST"
    for _ in range(50):
        try:
            current, token = store.get_versioned(key)
        except ObjectNotFound:
            current, token = b"", None
        name = current.decode().strip()
        if name and name >= version:
            return
        try:
            store.put_if(key, version.encode(), match=token)
            return
        except PreconditionFailed:
            continue
    raise RuntimeError(f"could not move {key} in {store.describe()}")
