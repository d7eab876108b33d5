"""SHARP query, export and download from JSOC through drms.

The path a SHARP takes from JSOC to the local store:

1. :func:`sharpseek.data.jsoc_recordset.build_query` writes a DRMS record-set string
   (series, HARP numbers, a time range at a cadence, a QUALITY and a NOAA where-clause);
2. :func:`query_records` asks ``jsoc_info`` for the keywords sharpseek keeps
   (:data:`sharpseek.data.fits.KEYWORDS` plus ``T_REC``) and parses them;
3. :func:`sharpseek.data.jsoc_export.export_and_download` submits an export with the
   user's JSOC-registered email, waits for it, and downloads each file with retries into a
   folder, resumably.

:func:`incremental_query` asks only for records newer than those already ingested, and
:func:`prefer_definitive` drops near-real-time records once their definitive versions exist.
The client is built by :func:`make_client` and passed in; nothing here opens a connection at
import time.

Two drms 0.9 facts this module works around:

- drms converts hexadecimal keyword strings (JSOC prints ``QUALITY`` as ``0x00000400``) only
  when the column has NumPy's object dtype; under pandas 3 strings have the ``str`` dtype,
  so drms turns every ``QUALITY`` into NaN. :func:`query_records` therefore asks drms not
  to convert ``QUALITY`` and parses it itself.
- ``ExportRequest.download`` swallows failures (it logs and returns ``None`` for the file)
  and never retries; downloads here use their own loop with retries, size checks and a
  resumable state file.
- ``import drms`` calls ``logging.basicConfig(level=INFO)`` on the root logger, so drms is
  imported on first use here, not when this module is imported.

"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import drms
import pandas as pd
from astropy.time import Time
from drms.config import ServerConfig
from drms.json import HttpJsonClient

from sharpseek.config import JsocSettings
from sharpseek.data.fits import KEYWORDS, SHARP_SERIES, parse_t_rec
from sharpseek.data.jsoc_recordset import as_tai, build_query, parse_cadence, series_of

__all__ = [
    "DownloadResult",
    "JsocError",
    "JsocExportError",
    "JsocExportTimeout",
    "JsocDownloadError",
    "query_records",
    "incremental_queries",
    "incremental_query",
    "export_options",
    "make_client",
    "prefer_definitive",
]

#: The logger of what is said to and heard from JSOC (queries and exports alike).
logger = logging.getLogger(__name__)

DEFINITIVE_SERIES, NRT_SERIES = SHARP_SERIES

# jsoc_fetch export status codes (drms.ExportRequest uses the same table).
STATUS_DONE = 0
STATUS_PENDING = (1, 2, 6)  # 1 processing, 2 queued, 6 not (yet) registered on the server
STATUS_NOT_FOUND = 6

EMAIL_ENV = "SHARPSEEK_JSOC__EMAIL"
REGISTER_URL = "http://jsoc.stanford.edu/ajax/register_email.html"

#: Socket timeout of one file download (connect and each read), seconds; drms uses 60 too.
HTTP_TIMEOUT_SECONDS = 60.0


T = TypeVar("T")


# ---------------------------------------------------------------- errors and results
class JsocError(RuntimeError):
    """Something went wrong talking to JSOC."""


class JsocExportError(JsocError):
    """A JSOC export failed (status 3 or 4, or it never finished).

    Attributes
    ----------
    request_id : str or None
        The JSOC request id, e.g. ``JSOC_20250101_001``.
    status : int or None
        The last export status JSOC reported.
    """

    def __init__(self, message: str, *, request_id: str | None, status: int | None):
        super().__init__(message)
        self.request_id = request_id
        self.status = status


class JsocExportTimeout(JsocExportError):
    """A JSOC export was still pending when the timeout ran out."""


class JsocDownloadError(JsocError):
    """Some exported files could not be downloaded, even after retries.

    Attributes
    ----------
    request_id : str
        The JSOC request id; a rerun resumes this export.
    failed : dict of str -> str
        File name -> the last error.
    """

    def __init__(self, message: str, *, request_id: str, failed: dict[str, str]):
        super().__init__(message)
        self.request_id = request_id
        self.failed = failed


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`export_and_download` fetched.

    Attributes
    ----------
    files : list of Path
        Every downloaded file (including those a previous, interrupted run completed), in
        the order JSOC listed them.
    missing : list of str
        Records (``series[HARPNUM][T_REC]{segment}``) the query selected but the export did
        not deliver. Empty when the export is complete.
    request_id : str
        The JSOC export request id ("" when the query selected no records).
    """

    files: list[Path]
    missing: list[str]
    request_id: str


# ---------------------------------------------------------------- keyword queries
def query_records(client: drms.Client, query: str) -> pd.DataFrame:
    """The kept keywords of the records a query selects, parsed.

    Parameters
    ----------
    client : drms.Client
        See :func:`make_client`.
    query : str
        A record set (see :func:`sharpseek.data.jsoc_recordset.build_query`); no segment
        list.

    Returns
    -------
    pandas.DataFrame
        One row per record, sorted by (harpnum, t_rec): ``series``, ``harpnum``, ``t_rec``
        (naive datetime, TAI) and the metadata names of :data:`sharpseek.data.fits.KEYWORDS`:
        integers (``Int64``: harpnum, noaa_ar, quality, naxis1, naxis2), ``noaa_ars`` as a
        string or None, the rest floats (NaN where JSOC has none). Keywords the series does
        not have are missing: ``NAXIS1``/``NAXIS2`` are FITS structure, not DRMS keywords,
        so the image size is ``<NA>`` until the file is read.

    Raises
    ------
    drms.DrmsQueryError
        When JSOC rejects the query.
    """
    series = series_of(query)
    known = set(client.keys(series))
    asked = [k for k in (*KEYWORDS, "T_REC") if k in known]
    raw = client.query(query, key=asked, skip_conversion=["QUALITY"])

    def column(key: str) -> list[Any]:
        return list(raw[key]) if key in raw else [None] * len(raw)

    out = pd.DataFrame(index=range(len(raw)))
    out["series"] = series
    out["harpnum"] = pd.array([_parse_int(v) for v in column("HARPNUM")], dtype="Int64")
    out["t_rec"] = pd.Series([parse_t_rec(str(v)) for v in column("T_REC")], dtype="datetime64[us]")
    for key, name in KEYWORDS.items():
        if name in out:
            continue
        if key in _INTEGER_KEYWORDS:
            out[name] = pd.array([_parse_int(v) for v in column(key)], dtype="Int64")
        elif key in _STRING_KEYWORDS:
            out[name] = pd.Series(
                [v if isinstance(v, str) and v else None for v in column(key)], dtype=object
            )
        else:
            values = pd.Series(column(key), dtype=object)
            out[name] = pd.to_numeric(values, errors="coerce").astype(float)
    return out.sort_values(["harpnum", "t_rec"], kind="stable").reset_index(drop=True)


_INTEGER_KEYWORDS = {"HARPNUM", "NOAA_AR", "QUALITY", "NAXIS1", "NAXIS2"}
_STRING_KEYWORDS = {"NOAA_ARS"}


def _parse_int(value: Any) -> int | None:
    """An integer keyword as JSOC prints it: decimal or hexadecimal (``0x00000400``)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(float(text))
    except ValueError:
        return None


def incremental_queries(
    series: str,
    newest_by_harp: Mapping[int, datetime],
    *,
    end: datetime | str | None = None,
    cadence: str = "1h",
    quality: str = "usable",
) -> list[str]:
    """Record sets for the records after the newest T_REC already ingested, per HARP.

    Each HARP's range starts one cadence step after its newest ingested T_REC, so the new
    records continue the same sampling grid (``@12h`` from the last kept frame) and none
    is asked for twice. HARPs that share a start are asked for in one query (after a
    regular ingest most do), so the number of queries is the number of distinct newest
    times, not of HARPs. New HARPs (absent from ``newest_by_harp``) are not asked for: use a
    time-range :func:`build_query` for them.

    Parameters
    ----------
    series : str
        See :func:`build_query`.
    newest_by_harp : mapping of int -> datetime
        HARPNUM -> newest T_REC already ingested (naive, TAI).
    end : datetime or str, optional
        End of the ranges (TAI). Default: now, rounded down to the whole hour, so a rerun in
        the same hour builds the same queries and so resumes the same exports. Pass it
        explicitly for reproducible runs.
    cadence, quality : str
        See :func:`build_query`.

    Returns
    -------
    list of str
        One record set per distinct start time (empty when nothing can be newer).
    """
    step = parse_cadence(cadence)
    t_end = as_tai(end, "end") if end is not None else _now_tai_hour()
    groups: dict[datetime, list[int]] = {}
    for harp, newest in sorted(newest_by_harp.items()):
        start = as_tai(newest, f"newest T_REC of HARP {harp}") + step
        if start <= t_end:
            groups.setdefault(start, []).append(int(harp))
    return [
        build_query(
            series, start=start, end=t_end, harpnums=harps, cadence=cadence, quality=quality
        )
        for start, harps in sorted(groups.items())
    ]


def incremental_query(
    client: drms.Client,
    series: str,
    newest_by_harp: Mapping[int, datetime],
    *,
    end: datetime | str | None = None,
    cadence: str = "1h",
    quality: str = "usable",
) -> pd.DataFrame:
    """The records after the newest T_REC already ingested, per HARP.

    Runs the queries of :func:`incremental_queries` (one per distinct start time, each
    starting one cadence step after a HARP's newest T_REC) and, as a guard, keeps only rows
    strictly newer than their HARP's newest T_REC.

    Returns
    -------
    pandas.DataFrame
        As :func:`query_records`, plus a ``query`` column naming the record set each row
        came from (pass it to :func:`export_and_download`).
    """
    frames = []
    for query in incremental_queries(
        series, newest_by_harp, end=end, cadence=cadence, quality=quality
    ):
        records = query_records(client, query)
        records["query"] = query
        frames.append(records)
    if not frames:
        return pd.DataFrame({c: [] for c in [*_record_columns(), "query"]})
    records = pd.concat(frames, ignore_index=True)
    newest = records["harpnum"].map(
        {int(h): as_tai(t, "newest") for h, t in newest_by_harp.items()}
    )
    return records[records["t_rec"] > newest.astype("datetime64[us]")].reset_index(drop=True)


def _record_columns() -> list[str]:
    """The columns of :func:`query_records`, in order."""
    return ["series", "harpnum", "t_rec", *[n for n in KEYWORDS.values() if n != "harpnum"]]


def _now_tai_hour() -> datetime:
    now = Time.now().tai.to_datetime()
    return now.replace(minute=0, second=0, microsecond=0)


# ---------------------------------------------------------------- NRT vs definitive
def prefer_definitive(records: pd.DataFrame) -> pd.DataFrame:
    """Keep the definitive record where both series hold the same (HARPNUM, T_REC).

    Near-real-time SHARPs (``hmi.sharp_cea_720s_nrt``) are replaced, weeks later, by
    definitive ones (``hmi.sharp_cea_720s``) of the same HARPNUM and T_REC.

    Parameters
    ----------
    records : pandas.DataFrame
        Rows with at least ``series``, ``harpnum`` and ``t_rec`` (as from
        :func:`query_records`), from either series or both; rows of other series (e.g.
        ``synthetic``) pass through.

    Returns
    -------
    pandas.DataFrame
        The rows minus the NRT rows that have a definitive twin, in the input order, with a
        boolean column ``replaced_nrt``: True on a definitive row that replaced an NRT
        record, whose identity is then (``hmi.sharp_cea_720s_nrt``, harpnum, t_rec) — the
        entry the dataset and index layers should drop.
    """
    missing = {"series", "harpnum", "t_rec"} - set(records.columns)
    if missing:
        raise ValueError(f"records lack the column(s) {sorted(missing)}")
    key = list(zip(records["harpnum"], records["t_rec"], strict=True))
    is_def = (records["series"] == DEFINITIVE_SERIES).to_numpy()
    is_nrt = (records["series"] == NRT_SERIES).to_numpy()
    definitive = {k for k, d in zip(key, is_def, strict=True) if d}
    nrt = {k for k, n in zip(key, is_nrt, strict=True) if n}
    drop = [bool(n and k in definitive) for k, n in zip(key, is_nrt, strict=True)]
    out = records.copy()
    out["replaced_nrt"] = [bool(d and k in nrt) for k, d in zip(key, is_def, strict=True)]
    out = out[[not d for d in drop]].reset_index(drop=True)
    replaced = int(sum(drop))
    if replaced:
        logger.info("%d near-real-time record(s) replaced by definitive ones", replaced)
    return out


# ---------------------------------------------------------------- client and email
def make_client(jsoc: JsocSettings) -> drms.Client:
    """A drms client for ``jsoc.server_url`` (JSOC's own CGI layout under another base URL).

    The server configuration is drms's registered ``JSOC`` one with ``cgi_baseurl``
    (``<server_url>cgi-bin/ajax/``) and ``http_download_baseurl`` (``<server_url>``)
    replaced. No request is made here.

    Parameters
    ----------
    jsoc : sharpseek.config.JsocSettings
        ``settings.jsoc``.
    """
    root = jsoc.server_url.rstrip("/") + "/"
    base = HttpJsonClient("jsoc").server.to_dict()
    # url_* entries were derived from JSOC's base URL; drop them so they are re-derived.
    config = {k: v for k, v in base.items() if not k.startswith("url_")}
    config["cgi_baseurl"] = urljoin(root, "cgi-bin/ajax/")
    config["http_download_baseurl"] = root
    config["name"] = "JSOC" if root == base["http_download_baseurl"] else f"JSOC at {root}"
    return drms.Client(server=ServerConfig(config))


def export_options(jsoc: JsocSettings) -> dict[str, Any]:
    """The keyword arguments of :func:`export_and_download` taken from ``settings.jsoc``.

    Examples
    --------
    >>> from sharpseek.config import JsocSettings
    >>> sorted(export_options(JsocSettings(email="me@example.org")))
    ['backoff_seconds', 'email', 'poll_seconds', 'retries', 'segments', 'timeout_seconds']
    """
    return {
        "email": jsoc.email,
        "segments": tuple(jsoc.segments),
        "retries": jsoc.retries,
        "backoff_seconds": jsoc.backoff_seconds,
        "timeout_seconds": jsoc.export_timeout_seconds,
        "poll_seconds": jsoc.poll_seconds,
    }
