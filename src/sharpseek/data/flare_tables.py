"""Reading flare and HARP tables: the shared GOES CSV, NOAA SWPC event lists, and the HARP table
that maps HARPNUMs to NOAA numbers, from a path or a URL, checked column by column with
one-line errors naming the file.
"""

from __future__ import annotations

import io
import re
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.data.flares import (
    CLASS_FLUX,
    FLARE_COLUMNS,
    FlareCatalogueError,
    class_flux,
    class_name,
    utc_to_tai,
)

__all__ = ["read_flare_table", "read_harp_table", "read_source"]


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
