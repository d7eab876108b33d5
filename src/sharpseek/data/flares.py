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
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.time import Time

from sharpseek.config import FlareSettings
from sharpseek.data.store import ObjectNotFound, ObjectStore, PreconditionFailed

__all__ = [
    "CLASS_FLUX",
    "FLARE_COLUMN",
    "FlareCatalogue",
    "FlareCatalogueError",
    "FlareWindow",
    "LoadResult",
    "class_flux",
    "class_name",
    "class_threshold",
    "flare_columns",
    "flare_fields",
    "flare_payloads",
    "flare_summary",
    "flare_windows",
    "latest_flare_version",
    "load_flare_catalogue",
    "match_flares",
    "parse_record_id",
    "payload_windows",
    "read_flare_table",
    "read_harp_table",
    "read_source",
    "save_flare_catalogue",
    "utc_to_tai",
    "window_text",
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
# reading
# ----------------------------------------------------------------------------------------------
def read_source(location: str | Path, *, timeout_s: float = 60.0) -> bytes:
    """The bytes of a local file or of an ``http(s)://`` URL."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        with urllib.request.urlopen(text, timeout=timeout_s) as response:  # noqa: S310
            return response.read()
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"flare table {path} does not exist")
    return path.read_bytes()


def read_flare_table(data: bytes | str | Path, name: str | None = None) -> pd.DataFrame:
    """Parse a flare table: the shared CSV or a NOAA/SWPC event list (detected by content).

    Returns
    -------
    DataFrame with :data:`FLARE_COLUMNS`: ``row`` (line number in the file), ``start_utc``
    and ``start_tai`` (naive datetime64[s]), ``goes_class`` ("X9.3"), ``peak_flux``
    [W m^-2, from the class], ``noaa`` (0 when none), ``sharp`` (reported HARPNUM, 0 when
    none). Sorted by start time.

    Raises
    ------
    FlareCatalogueError
        A missing column, an unknown class, a time that does not parse: names the row.
    """
    if isinstance(data, str | Path):
        name = name or str(data)
        data = read_source(data)
    name = name or "flare table"
    text = data.decode("utf-8", errors="replace")
    head = text.lstrip()[:4000]
    if head.startswith(":Product:") or re.search(r"^#\s*Event\s+Begin", head, re.MULTILINE):
        table = _read_swpc(text, name)
    else:
        table = _read_csv(text, name)
    if not len(table):
        raise FlareCatalogueError(f"{name}: no flares in the file")
    table["start_tai"] = utc_to_tai(table["start_utc"].to_numpy())
    table = table.sort_values(["start_utc", "row"], kind="stable").reset_index(drop=True)
    return table[FLARE_COLUMNS]


_CSV_COLUMNS = ("DATE", "START_TIME", "CMX", "CMX_VALUE", "AR")


def _read_csv(text: str, name: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise FlareCatalogueError(f"{name}: not a flare table ({err})") from None
    raw.columns = [str(c).strip().upper() for c in raw.columns]
    missing = [c for c in _CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise FlareCatalogueError(
            f"{name}: not a flare table of the shared kind nor a NOAA/SWPC event list "
            f"(missing column(s) {missing})"
        )
    raw = raw.apply(lambda column: column.str.strip())
    rows = np.arange(len(raw)) + 2  # line numbers: the header is line 1
    date, start = raw["DATE"], raw["START_TIME"]
    letter, value = raw["CMX"].str.upper(), raw["CMX_VALUE"]

    def fail(mask: pd.Series | np.ndarray, what: str, column: pd.Series) -> None:
        bad = np.flatnonzero(np.asarray(mask))
        if bad.size:
            i = int(bad[0])
            raise FlareCatalogueError(
                f"{name}: row {rows[i]}: {what} {column.iloc[i]!r}"
                + (f" ({bad.size} rows like it)" if bad.size > 1 else "")
            )

    fail(~date.str.fullmatch(r"\d{6}"), "DATE is not YYMMDD:", date)
    fail(~start.str.fullmatch(r"\d{1,4}"), "START_TIME is not HHMM:", start)
    fail(~letter.isin(list(CLASS_FLUX)), "unknown GOES class letter", raw["CMX"])
    fail(~value.str.fullmatch(r"\d+(\.\d*)?"), "CMX_VALUE is not a number:", value)
    hhmm = start.str.zfill(4)
    stamp = "20" + date.str[:2] + "-" + date.str[2:4] + "-" + date.str[4:6]
    stamp = stamp + "T" + hhmm.str[:2] + ":" + hhmm.str[2:] + ":00"
    start_utc = pd.to_datetime(stamp, format="%Y-%m-%dT%H:%M:%S", errors="coerce")
    fail(start_utc.isna(), "time does not parse (DATE, START_TIME):", date + " " + start)
    multiplier = pd.to_numeric(value).to_numpy(float) / 10.0  # CMX_VALUE is class x 10
    fail(multiplier <= 0, "CMX_VALUE is not positive:", value)
    flux = np.array([CLASS_FLUX[c] for c in letter]) * multiplier
    noaa = _integer_column(raw["AR"], name, rows, "AR")
    sharp = (
        _integer_column(raw["SHARP"], name, rows, "SHARP")
        if "SHARP" in raw.columns
        else np.zeros(len(raw), np.int64)
    )
    return pd.DataFrame(
        {
            "row": rows,
            "start_utc": start_utc.to_numpy("datetime64[s]"),
            "goes_class": [class_name(f) for f in flux],
            "peak_flux": flux,
            "noaa": noaa,
            "sharp": sharp,
        }
    )


def _integer_column(column: pd.Series, name: str, rows: np.ndarray, what: str) -> np.ndarray:
    """Integers written as ``377``, ``377.0`` or blank (0)."""
    values = pd.to_numeric(column.replace("", "0"), errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(values) | (values % 1 != 0) | (values < 0))
    if bad.size:
        i = int(bad[0])
        raise FlareCatalogueError(
            f"{name}: row {rows[i]}: {what} {column.iloc[i]!r} is not a number"
        )
    return values.astype(np.int64)


_SWPC_DATE = re.compile(r"^:Date:\s+(\d{4})\s+(\d{2})\s+(\d{2})")
_SWPC_CLASS = re.compile(r"([A-Za-z])(\d+(?:\.\d+)?)")


def _read_swpc(text: str, name: str) -> pd.DataFrame:
    """The XRA events of a NOAA/SWPC edited event list (one or more days)."""
    day: str | None = None
    out: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        date = _SWPC_DATE.match(line)
        if date:
            day = "-".join(date.groups())
            continue
        if line.startswith((":", "#")) or not line.strip():
            continue
        tokens = line.split()
        if "XRA" not in tokens:
            continue
        if day is None:
            raise FlareCatalogueError(f"{name}: row {number}: an event before any ':Date:' line")
        at = tokens.index("XRA")
        head = [t for t in tokens[:at] if t != "+"]
        if len(head) < 4 or len(tokens) < at + 3:
            raise FlareCatalogueError(f"{name}: row {number}: not an SWPC event line: {line!r}")
        begin = re.sub(r"^[A-Za-z]", "", head[1])  # B: began before, U: uncertain
        if not re.fullmatch(r"\d{4}", begin) or int(begin[:2]) > 23 or int(begin[2:]) > 59:
            raise FlareCatalogueError(
                f"{name}: row {number}: begin time {head[1]!r} does not parse"
            )
        particulars = tokens[at + 2]
        cls = _SWPC_CLASS.fullmatch(particulars)
        if cls is None or cls.group(1).upper() not in CLASS_FLUX:
            raise FlareCatalogueError(f"{name}: row {number}: unknown GOES class {particulars!r}")
        region = tokens[at + 4] if len(tokens) > at + 4 else ""
        if region and not region.isdigit():
            raise FlareCatalogueError(f"{name}: row {number}: Reg# {region!r} is not a number")
        noaa = int(region) if region else 0
        if 0 < noaa < 10000:  # SWPC writes the NOAA number modulo 10000
            noaa += 10000
        flux = class_flux(cls.group(1).upper(), float(cls.group(2)))
        out.append(
            {
                "row": number,
                "start_utc": np.datetime64(f"{day}T{begin[:2]}:{begin[2:]}:00", "s"),
                "goes_class": class_name(flux),
                "peak_flux": flux,
                "noaa": noaa,
                "sharp": 0,
            }
        )
    return pd.DataFrame(
        out, columns=["row", "start_utc", "goes_class", "peak_flux", "noaa", "sharp"]
    )


def read_harp_table(data: bytes | str | Path, name: str | None = None) -> pd.DataFrame:
    """The HARP table: ``harpnum``, ``t_start``, ``t_end`` (naive TAI datetime64[s]), ``noaa_ars``
    (list of ints, possibly empty), ``area_px`` (NX_HMI * NY_HMI, 0 when absent)."""
    if isinstance(data, str | Path):
        name = name or str(data)
        data = read_source(data)
    name = name or "HARP table"
    try:
        raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise FlareCatalogueError(f"{name}: not a HARP table ({err})") from None
    missing = [c for c in ("HARPNUM", "T_START", "T_END", "NOAA_ARS") if c not in raw.columns]
    if missing:
        raise FlareCatalogueError(f"{name}: not a HARP table (missing column(s) {missing})")
    rows = np.arange(len(raw)) + 2
    harpnum = _integer_column(raw["HARPNUM"].str.strip(), name, rows, "HARPNUM")
    times = {}
    for column in ("T_START", "T_END"):
        text = raw[column].str.strip().str.replace("_TAI", "", regex=False)
        parsed = pd.to_datetime(text, format="%Y.%m.%d_%H:%M:%S", errors="coerce")
        # blank: the table does not know the lifetime (NaT; see match_flares)
        bad = np.flatnonzero(parsed.isna().to_numpy() & (text != "").to_numpy())
        if bad.size:
            i = int(bad[0])
            raise FlareCatalogueError(
                f"{name}: row {rows[i]}: {column} {raw[column].iloc[i]!r} does not parse"
            )
        times[column] = parsed.to_numpy("datetime64[s]")
    noaa = []
    for i, text in enumerate(raw["NOAA_ARS"]):
        tokens = [t for t in re.split(r"[,;\s]+", text.strip()) if t]
        if not all(t.isdigit() for t in tokens):
            raise FlareCatalogueError(f"{name}: row {rows[i]}: NOAA_ARS {text!r} is not a list")
        noaa.append(sorted({int(t) for t in tokens if int(t) > 0}))
    area = np.zeros(len(raw))
    if "NX_HMI" in raw.columns and "NY_HMI" in raw.columns:
        nx = pd.to_numeric(raw["NX_HMI"], errors="coerce").fillna(0).to_numpy()
        ny = pd.to_numeric(raw["NY_HMI"], errors="coerce").fillna(0).to_numpy()
        area = nx * ny
    table = pd.DataFrame(
        {
            "harpnum": harpnum,
            "t_start": times["T_START"],
            "t_end": times["T_END"],
            "noaa_ars": noaa,
            "area_px": area.astype(np.int64),
        }
    )
    return table.sort_values("harpnum").drop_duplicates("harpnum").reset_index(drop=True)


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


# ----------------------------------------------------------------------------------------------
# windows
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlareWindow:
    """A window around T_REC: ``history`` [T_REC - hours, T_REC) or ``outcome``
    [T_REC, T_REC + hours), on the TAI clock."""

    kind: str
    hours: int

    def __post_init__(self) -> None:
        if self.kind not in ("history", "outcome"):
            raise ValueError(f"flare window kind {self.kind!r}: choose history or outcome")
        if int(self.hours) != self.hours or self.hours <= 0:
            raise ValueError(f"flare window of {self.hours!r} h: give a positive whole number")

    @property
    def name(self) -> str:
        """``history_24h``, ``outcome_48h``: the prefix of its payload fields."""
        return f"{self.kind}_{int(self.hours)}h"

    def offsets(self) -> tuple[np.timedelta64, np.timedelta64]:
        """(start, end) relative to T_REC, half-open [start, end)."""
        span = np.timedelta64(int(self.hours) * 3600, "s")
        zero = np.timedelta64(0, "s")
        return (-span, zero) if self.kind == "history" else (zero, span)


def configured_windows(settings: FlareSettings) -> list[FlareWindow]:
    """The windows of ``settings`` (``settings.flares``): history windows, then outcomes."""
    return [FlareWindow("history", h) for h in settings.history_hours] + [
        FlareWindow("outcome", h) for h in settings.outcome_hours
    ]


#: Statistics of a window in the payload: name -> index field kind.
WINDOW_STATS = {
    "status": "keyword",  # known | unknown
    "max_class": "keyword",  # "X9.3", or "none" when no flare
    "max_flux": "float",  # W m^-2, 0 when no flare
    "c": "integer",  # flares >= C1.0
    "m": "integer",  # flares >= M1.0
}
CATALOGUE_FIELD = "flare_catalogue"


def flare_fields(windows: Sequence[FlareWindow]) -> dict[str, str]:
    """Payload fields (name -> index kind) the windows write into the index."""
    fields = {CATALOGUE_FIELD: "keyword"}
    for window in windows:
        for stat, kind in WINDOW_STATS.items():
            fields[f"{window.name}_{stat}"] = kind
    return fields


def parse_record_id(rid: str) -> tuple[str, int, np.datetime64]:
    """``series:HARPNUM:YYYYMMDD_HHMMSS_TAI`` -> (series, harpnum, T_REC as datetime64[s])."""
    match = re.fullmatch(r"([^:]+):(\d+):(\d{8})_(\d{6})_TAI", rid.strip())
    if not match:
        raise ValueError(
            f"record id {rid!r}: expected series:HARPNUM:YYYYMMDD_HHMMSS_TAI "
            "(e.g. hmi.sharp_cea_720s:377:20110215_020000_TAI)"
        )
    series, harp, day, clock = match.groups()
    text = f"{day[:4]}-{day[4:6]}-{day[6:]}T{clock[:2]}:{clock[2:4]}:{clock[4:]}"
    try:
        return series, int(harp), np.datetime64(text, "s")
    except ValueError:
        raise ValueError(f"record id {rid!r}: T_REC {day}_{clock} is not a time") from None


def flare_windows(
    catalogue: FlareCatalogue,
    harpnums: Iterable[int],
    t_recs: Any,
    windows: Sequence[FlareWindow],
) -> pd.DataFrame:
    """History and outcome of any set of frames, vectorised over frames.

    Parameters
    ----------
    harpnums : iterable of int, shape (n,)
    t_recs : array-like of naive TAI datetimes, shape (n,)
    windows : FlareWindow sequence

    Returns
    -------
    DataFrame (n rows, in input order): ``flare_catalogue``, ``unknown_reason`` (per frame;
    empty when the HARP is covered) and per window ``<name>_status`` (known/unknown),
    ``<name>_max_class``, ``<name>_max_flux`` [W m^-2], ``<name>_c``, ``<name>_m``, and
    ``<name>_reason``; the statistics are None where the window is unknown.
    """
    harp = np.asarray(list(harpnums), dtype=np.int64)
    t = np.asarray(t_recs, dtype="datetime64[s]")
    if harp.shape != t.shape:
        raise ValueError(f"{harp.size} HARP numbers but {t.size} T_REC values")
    n = harp.size
    flares = catalogue.matched.sort_values(["harpnum", "start_tai"], kind="stable")
    key = flares["harpnum"].to_numpy(np.int64) * _HARP_SHIFT + flares["start_tai"].to_numpy(
        "datetime64[s]"
    ).astype(np.int64)
    flux = flares["peak_flux"].to_numpy(float)
    cum_c = np.concatenate([[0], np.cumsum(flux >= CLASS_FLUX["C"] * (1 - 1e-9))])
    cum_m = np.concatenate([[0], np.cumsum(flux >= CLASS_FLUX["M"] * (1 - 1e-9))])
    padded = np.concatenate([flux, [0.0]])  # reduceat needs every index < len

    covered = {
        int(h): bool(len(ars))
        for h, ars in zip(catalogue.harps["harpnum"], catalogue.harps["noaa_ars"], strict=True)
    }
    harp_reason = np.array(
        [
            ""
            if covered.get(int(h))
            else (
                "HARP has no NOAA number"
                if int(h) in covered
                else "HARP not in the catalogue's HARP table"
            )
            for h in harp
        ],
        dtype=object,
    )
    # flares are attributed to a HARP only within its lifetime (+- the catalogue's margin):
    # outside it the catalogue says nothing about the region (e.g. behind the limb)
    margin = np.timedelta64(int(round(3600 * catalogue.info.get("lifetime_margin_hours", 0))), "s")
    lifetimes = catalogue.harps.drop_duplicates("harpnum").set_index("harpnum")
    alive_from = lifetimes["t_start"].reindex(harp).to_numpy("datetime64[s]") - margin
    alive_until = lifetimes["t_end"].reindex(harp).to_numpy("datetime64[s]") + margin
    no_lifetime = (harp_reason == "") & (np.isnat(alive_from) | np.isnat(alive_until))
    harp_reason[no_lifetime] = "HARP's lifetime is blank in the HARP table"
    first, last = catalogue.coverage
    out: dict[str, Any] = {
        "flare_catalogue": [catalogue.version] * n,
        "unknown_reason": harp_reason,
    }
    seconds = t.astype(np.int64)
    for window in windows:
        lo_off, hi_off = window.offsets()
        start, end = t + lo_off, t + hi_off
        base = harp * _HARP_SHIFT + seconds
        lo = np.searchsorted(key, base + lo_off.astype(np.int64), side="left")
        hi = np.searchsorted(key, base + hi_off.astype(np.int64), side="left")
        bounds = np.empty(2 * n, np.int64)
        bounds[0::2], bounds[1::2] = lo, hi
        peak = np.maximum.reduceat(padded, bounds)[0::2] if n else np.zeros(0)
        peak = np.where(hi > lo, peak, 0.0)
        reason = harp_reason.copy()
        past = (reason == "") & (end > last)
        reason[past] = f"window ends after the catalogue's last flare ({last} TAI)"
        before = (reason == "") & (start < first)
        reason[before] = f"window starts before the catalogue's first flare ({first} TAI)"
        # a window reaching the HARP's last record + margin is still covered: a flare that
        # starts exactly then is matched (the lifetime test is closed)
        late = (reason == "") & (end - np.timedelta64(1, "s") > alive_until)
        reason[late] = "window reaches past the HARP's lifetime (T_END + margin)"
        early = (reason == "") & (start < alive_from)
        reason[early] = "window starts before the HARP's lifetime (T_START - margin)"
        known = reason == ""
        name = window.name
        out[f"{name}_status"] = np.where(known, "known", "unknown")
        out[f"{name}_max_class"] = [
            (class_name(p) if p > 0 else "none") if k else None
            for p, k in zip(peak, known, strict=True)
        ]
        out[f"{name}_max_flux"] = [
            float(p) if k else None for p, k in zip(peak, known, strict=True)
        ]
        out[f"{name}_c"] = [
            int(v) if k else None for v, k in zip(cum_c[hi] - cum_c[lo], known, strict=True)
        ]
        out[f"{name}_m"] = [
            int(v) if k else None for v, k in zip(cum_m[hi] - cum_m[lo], known, strict=True)
        ]
        out[f"{name}_reason"] = reason
    return pd.DataFrame({k: pd.Series(list(v), dtype=object) for k, v in out.items()})


def flare_payloads(summary: pd.DataFrame, windows: Sequence[FlareWindow]) -> list[dict[str, Any]]:
    """Index payload fields (:func:`flare_fields`) of each row of :func:`flare_windows`."""
    keys = list(flare_fields(windows))
    columns = [summary[k].tolist() for k in keys]
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


_WINDOW_KEY = re.compile(r"^(history|outcome)_(\d+)h_(status|max_class|max_flux|c|m)$")


def payload_windows(payload: Mapping[str, Any]) -> list[FlareWindow]:
    """The flare windows a payload (or a hit's row) holds fields of, history first."""
    found = {(m.group(1), int(m.group(2))) for m in map(_WINDOW_KEY.match, map(str, payload)) if m}
    return [FlareWindow(kind, hours) for kind, hours in sorted(found)]


def window_text(payload: Mapping[str, Any], window: FlareWindow) -> str:
    """One window in words: ``"X9.3 (3 >=M, 10 >=C)"``, ``"no flare >=C"`` or ``"unknown"``.

    >>> window_text({"outcome_24h_status": "known", "outcome_24h_max_class": "M7.3",
    ...              "outcome_24h_m": 5, "outcome_24h_c": 7}, FlareWindow("outcome", 24))
    'M7.3 (5 >=M, 7 >=C)'
    """
    name = window.name
    if payload.get(f"{name}_status") != "known":
        return "unknown"
    c, m = payload.get(f"{name}_c") or 0, payload.get(f"{name}_m") or 0
    largest = payload.get(f"{name}_max_class") or "none"
    if not c:
        return "no flare >=C" if largest == "none" else f"{largest} (no flare >=C)"
    return f"{largest} ({int(m)} >=M, {int(c)} >=C)"


def flare_summary(payload: Mapping[str, Any]) -> str:
    """Every window of a payload in one line (``""`` when it holds no flare fields), e.g.
    ``"24 h before: X9.3 (3 >=M, 10 >=C); 24 h after: M7.3 (5 >=M, 7 >=C)"``."""
    parts = []
    for window in payload_windows(payload):
        side = "before" if window.kind == "history" else "after"
        parts.append(f"{window.hours} h {side}: {window_text(payload, window)}")
    return "; ".join(parts)


#: Payload fields shown with a search hit (cards, CSV, JSON): the catalogue version and each
#: window's status, largest class and counts.
FLARE_COLUMN = re.compile(r"^(flare_catalogue|(history|outcome)_\d+h_(status|max_class|c|m))$")


def flare_columns(payload: Mapping[str, Any]) -> list[str]:
    """The flare fields of a payload shown with a hit (:data:`FLARE_COLUMN`), in payload
    order."""
    return [k for k in payload if FLARE_COLUMN.match(str(k))]
