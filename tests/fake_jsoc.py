"""A fake JSOC: the DRMS HTTP/JSON protocol that drms speaks, served on 127.0.0.1.

The tests point the real :class:`drms.Client` at this server (a ``ServerConfig`` whose
``cgi_baseurl`` and ``http_download_baseurl`` name it), so every request goes through drms's
own URL building and JSON parsing. What is implemented follows drms 0.9's source
(``drms/json.py``, ``drms/client.py``) and JSOC's documented JSON answers:

``/cgi-bin/ajax/checkAddress.sh?address=...&checkonly=1``
    ``{"status": 2, "msg": ...}`` for a registered address, ``4`` otherwise.
``/cgi-bin/ajax/jsoc_info?op=series_struct&ds=SERIES``
    ``primekeys`` (``HARPNUM``, ``T_REC``), ``keywords`` (name/type/recscope/defval/units/
    note), ``links``, ``segments`` (name/type/units/protocol/dims/note), ``status``.
``/cgi-bin/ajax/jsoc_info?op=rs_list&ds=RECORDSET&key=...&seg=...[&n=..][&R=1]``
    ``keywords: [{name, values}]`` (values are strings, as JSOC prints them: ``QUALITY`` in
    hex ``0x00000400``, NaN as ``nan``, unknown keywords as ``Invalid KeyLink``),
    ``segments: [{name, values, dims}]``, ``recinfo``, ``count``, ``runtime``, ``status``.
``/cgi-bin/ajax/jsoc_info?op=rs_summary``
    ``count``, ``runtime``, ``status``.
``/cgi-bin/ajax/jsoc_fetch?op=exp_request&ds=...&notify=...&method=url&protocol=fits...``
    ``{"status": 2, "requestid": "JSOC_...", "method", "protocol", "wait"}``.
``/cgi-bin/ajax/jsoc_fetch?op=exp_status&requestid=...``
    pending (status 1) for ``Behaviour.pending_polls`` polls, then ``0`` with ``dir``, ``data``
    (``[{record, filename}]``, one file per record and segment, ``record`` without the
    segment for ``fits`` as JSOC answers), ``count``, ``size``; or a failure status with
    ``error``; ``6`` for an unknown request id.
``/SUM<n>/D<id>/S00000/<filename>``
    the exported files, with ``Content-Length``: the real sample FITS where one matches
    the file name, otherwise a FITS written on first use from the record's keywords (an
    empty primary HDU, then a Rice-compressed int32 ``CompImageHDU`` with ``BSCALE=0.01``
    and ``BLANK``, as JSOC exports SHARP segments) holding a small synthetic bipole.

The record-set parser understands what sharpseek sends and a little more: the series name;
the ``HARPNUM`` slot (``[]``, ``[377]``, ``[377,7115]``, ``[377-380]``); the ``T_REC`` slot
(``[t]``, ``[t0-t1]`` inclusive, ``[t0/30d]`` half-open, each with ``@12m``/``@1h``/``@1d``
steps counted from the start); where-clauses ``[? KEY OP VALUE ?]`` with ``< <= > >= = !=
~`` joined by ``and``, chained or not; and a ``{seg,...}`` list. Anything else is answered
with a JSON error (``status`` 1), as JSOC answers a query it cannot parse.

Not modelled (the docs should say so): DRMS's full record-set grammar (``$``, ``#``
record numbers, ``or`` and SQL functions in where-clauses), slot rounding of times that
fall between 12-minute slots, ``url_quick``/``as-is`` and tar exports, processing
(``process=...``), export size limits and queueing, ``wait`` hints, email confirmation,
expired exports (beyond "unknown id" -> status 6), and HTTP range requests.

Failure modes, set on :class:`Behaviour` (per server, changeable between calls): an export
that ends with a failure status, one that never finishes, one that lists fewer files than
records (dropped or ``NoDataFile``), HTTP 500 for the first k file requests, a connection cut
half-way through the first k file requests, and files that are always cut.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, unquote_plus
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
import pandas as pd
from astropy.io import fits

__all__ = [
    "Behaviour",
    "FakeJsoc",
    "builtin_record_table",
    "real_record_table",
    "add_native_cadence",
]

DEFINITIVE = "hmi.sharp_cea_720s"
NRT = "hmi.sharp_cea_720s_nrt"
PRIMEKEYS = ["HARPNUM", "T_REC"]
SEGMENTS = {
    # name -> (type, units): the segments of hmi.sharp_cea_720s
    "magnetogram": ("int", "Gauss"),
    "bitmap": ("char", " "),
    "Dopplergram": ("int", "m/s"),
    "continuum": ("int", "DN/s"),
    "Bp": ("int", "Mx/cm^2"),
    "Bt": ("int", "Mx/cm^2"),
    "Br": ("int", "Mx/cm^2"),
    "Bp_err": ("int", "Mx/cm^2"),
    "Bt_err": ("int", "Mx/cm^2"),
    "Br_err": ("int", "Mx/cm^2"),
    "conf_disambig": ("char", " "),
}
# FITS structural cards and header-table bookkeeping columns: not DRMS keywords.
NOT_KEYWORDS = {
    "hnum", "date", "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT",
    "XTENSION", "EXTEND", "HISTORY", "COMMENT", "BLANK", "BZERO", "BSCALE", "CHECKSUM",
    "DATASUM", "RECNUM", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZTILE1",
    "ZTILE2", "ZCMPTYPE", "ZNAME1", "ZVAL1", "ZNAME2", "ZVAL2", "ZQUANTIZ", "ZDITHER0",
    "ZSIMPLE", "ZEXTEND", "ZBLANK", "TFIELDS", "TTYPE1", "TFORM1", "TTYPE2", "TFORM2",
    "TTYPE3", "TFORM3",
}  # fmt: skip
TIME_KEYWORDS = {
    "T_REC", "T_OBS", "T_FRST", "T_FRST1", "T_LAST", "T_LAST1", "DATE", "DATE_S", "DATE_B",
    "DATE__OBS",
}  # fmt: skip
INT_KEYWORDS = {"HARPNUM", "QUALITY", "NOAA_AR", "NOAA_NUM", "QUALLEV1", "QUAL_S"}
STATUS_DONE = 0
STATUS_PROCESSING = 1
STATUS_QUEUED = 2
STATUS_NOT_FOUND = 6


# ---------------------------------------------------------------- record tables
def _t_rec(t: datetime) -> str:
    return t.strftime("%Y.%m.%d_%H:%M:%S_TAI")


def builtin_record_table() -> pd.DataFrame:
    """Twelve records of two made-up HARPs (9001, 9002), hourly, small patches.

    Needs no data files, so the export/download mechanics are tested everywhere. The
    keyword values are plausible, not real.
    """
    rows = []
    for harp, noaa, lat in ((9001, 13001, -12.0), (9002, 13002, 18.5)):
        for hour in range(6):
            t = datetime(2020, 1, 1, hour)
            rows.append(
                {
                    "HARPNUM": harp,
                    "T_REC": _t_rec(t),
                    "T_OBS": _t_rec(t + timedelta(seconds=4)),
                    "QUALITY": 0,
                    "NOAA_AR": noaa,
                    "NOAA_NUM": 1,
                    "NOAA_ARS": str(noaa),
                    "NAXIS1": 40 + 4 * (harp - 9001),
                    "NAXIS2": 30,
                    "CDELT1": 0.03,
                    "CDELT2": 0.03,
                    "CUNIT1": "degree",
                    "CUNIT2": "degree",
                    "CTYPE1": "CRLN-CEA",
                    "CTYPE2": "CRLT-CEA",
                    "RSUN_REF": 696000000,
                    "LAT_FWT": lat,
                    "LON_FWT": -20.0 + 0.55 * hour,
                    "CRVAL1": 100.0 + 0.5 * hour,
                    "CRVAL2": lat,
                    "CRLN_OBS": 120.0 - 0.55 * hour,
                    "CRLT_OBS": -3.0,
                    "USFLUX": 1.0e21 * (1 + 0.1 * hour),
                    "R_VALUE": 2.5 + 0.1 * hour,
                    "BUNIT": "Mx/cm^2",
                    "CADENCE": 720.0,
                }
            )
    return pd.DataFrame(rows)


def real_record_table(header_table: Path, br_paths: list[Path]) -> pd.DataFrame:
    """The real header table plus one row per real Br sample (its own FITS header)."""
    table = pd.read_csv(header_table)
    rows = []
    for path in br_paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path) as hdul:
                hdu = hdul[1]
                hdu.verify("silentfix")
                header = hdu.header
                row = {}
                for card in header.cards:
                    if card.keyword and card.keyword not in ("HISTORY", "COMMENT", ""):
                        value = card.value
                        if isinstance(value, str) and value.strip().lower() == "nan":
                            value = math.nan
                        row[card.keyword] = value
                row["NAXIS1"], row["NAXIS2"] = header["NAXIS1"], header["NAXIS2"]
        rows.append(row)
    table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
    return table


def add_native_cadence(table: pd.DataFrame, harpnum: int) -> pd.DataFrame:
    """Fill the 12-minute slots between consecutive hourly records of one HARP.

    The header table holds hourly records; JSOC holds one every 12 minutes. The filled
    records copy the keywords of the record before them (only T_REC and T_OBS change), so
    queries at the native cadence find more records than at ``@1h``.
    """
    rows = table[table["HARPNUM"] == harpnum].copy()
    rows["_t"] = pd.to_datetime(rows["T_REC"].str.removesuffix("_TAI"), format="%Y.%m.%d_%H:%M:%S")
    rows = rows.sort_values("_t")
    extra = []
    for (_, a), (_, b) in zip(rows.iterrows(), rows.iloc[1:].iterrows(), strict=False):
        if b["_t"] - a["_t"] != pd.Timedelta(hours=1):
            continue
        for k in range(1, 5):
            fill = a.drop(labels="_t").copy()
            t = a["_t"].to_pydatetime() + timedelta(minutes=12 * k)
            fill["T_REC"] = _t_rec(t)
            fill["T_OBS"] = _t_rec(t + timedelta(seconds=4))
            extra.append(fill)
    return pd.concat([table, pd.DataFrame(extra)], ignore_index=True)


# ---------------------------------------------------------------- record-set parsing
class RecordSetError(ValueError):
    """A record-set string the fake cannot parse (answered as a JSOC error)."""


_RS = re.compile(
    r"^\s*(?P<series>[\w.]+)\s*(?P<filters>(?:\[[^\]]*\]\s*)*)(?:\{(?P<segs>[^}]*)\})?\s*$"
)
_SLOT = re.compile(r"\[([^\]]*)\]")
_STEP = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_COND = re.compile(r"^\(*\s*([A-Za-z_]\w*)\s*(<=|>=|!=|<>|=|<|>|~)\s*(.+?)\s*\)*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class RecordSet:
    series: str
    harps: list[tuple[int, int]] | None  # inclusive ranges
    times: (
        tuple[datetime, datetime, bool, timedelta | None] | None
    )  # start, end, end_inclusive, step
    where: list[tuple[str, str, str]]
    segments: list[str] | None


def _parse_time(text: str) -> datetime:
    text = text.strip().removesuffix("_TAI")
    for fmt in ("%Y.%m.%d_%H:%M:%S", "%Y.%m.%d_%H:%M", "%Y.%m.%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise RecordSetError(f"cannot parse time {text!r}")


def _parse_step(text: str) -> timedelta:
    m = _STEP.match(text.strip())
    if not m:
        raise RecordSetError(f"cannot parse interval {text!r}")
    return timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])


def parse_record_set(ds: str) -> RecordSet:
    """Split a record-set string into series, prime-key slots, where-clauses, segments."""
    m = _RS.match(ds)
    if not m:
        raise RecordSetError(f"cannot parse record set {ds!r}")
    slots = _SLOT.findall(m.group("filters") or "")
    positional = [s for s in slots if not s.strip().startswith("?")]
    where_text = [s.strip()[1:-1] for s in slots if s.strip().startswith("?")]
    if len(positional) > len(PRIMEKEYS):
        raise RecordSetError(f"too many prime-key slots in {ds!r}")
    harps = times = None
    if positional and positional[0].strip():
        harps = []
        for part in positional[0].split(","):
            lo, _, hi = part.strip().partition("-")
            try:
                harps.append((int(lo), int(hi or lo)))
            except ValueError as err:
                raise RecordSetError(f"bad HARPNUM {part!r}") from err
    if len(positional) > 1 and positional[1].strip():
        text, _, step = positional[1].strip().partition("@")
        step_td = _parse_step(step) if step else None
        if "/" in text:
            start, _, dur = text.partition("/")
            t0 = _parse_time(start)
            times = (t0, t0 + _parse_step(dur), False, step_td)
        elif "-" in text:
            start, _, end = text.partition("-")
            times = (_parse_time(start), _parse_time(end), True, step_td)
        else:
            t0 = _parse_time(text)
            times = (t0, t0, True, step_td)
    where = []
    for clause in where_text:
        for part in re.split(r"\s+and\s+", clause.strip(), flags=re.IGNORECASE):
            cm = _COND.match(part.strip())
            if not cm:
                raise RecordSetError(f"cannot parse where-clause {part!r}")
            where.append((cm.group(1), cm.group(2), cm.group(3).strip().strip("'\"")))
    segs = [s.strip() for s in m.group("segs").split(",")] if m.group("segs") else None
    return RecordSet(m.group("series"), harps, times, where, segs)


def select(table: pd.DataFrame, rs: RecordSet) -> pd.DataFrame:
    """The rows of ``table`` (one series) that the record set names."""
    keep = np.ones(len(table), dtype=bool)
    if rs.harps is not None:
        h = table["HARPNUM"].to_numpy()
        keep &= np.any([(h >= lo) & (h <= hi) for lo, hi in rs.harps], axis=0)
    if rs.times is not None:
        t0, t1, inclusive, step = rs.times
        t = table["_t"]
        keep &= (t >= t0).to_numpy() & ((t <= t1) if inclusive else (t < t1)).to_numpy()
        if step is not None:
            offset = (t - t0).dt.total_seconds().to_numpy()
            keep &= np.isclose(np.mod(offset, step.total_seconds()), 0.0)
    for key, op, value in rs.where:
        if key not in table.columns:
            raise RecordSetError(f"unknown keyword {key!r} in where-clause")
        col = table[key]
        if op == "~":
            keep &= col.fillna("").astype(str).str.contains(value, regex=True).to_numpy()
            continue
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        v = float(value)
        ops = {
            "<": num < v, "<=": num <= v, ">": num > v, ">=": num >= v,
            "=": num == v, "!=": num != v, "<>": num != v,
        }  # fmt: skip
        keep &= ops[op]
    return table[keep]


# ---------------------------------------------------------------- behaviour and state
@dataclass
class Behaviour:
    """How the fake misbehaves; change the fields between calls as a test needs."""

    pending_polls: int = 1  # exp_status answers "processing" this many times, then finishes
    final_status: int = STATUS_DONE  # the status an export ends with (4: failure)
    never_finish: bool = False  # exports stay pending for ever
    drop_last_records: int = 0  # the export leaves out the last k records (fewer files)
    nodata_last_records: int = 0  # ... or lists them with filename NoDataFile
    http_500_first: int = 0  # the first k file requests answer HTTP 500
    cut_first: int = 0  # the first k file requests are cut half-way
    broken_files: set[str] = field(default_factory=set)  # always cut half-way
    registered: set[str] = field(default_factory=lambda: {"researcher@example.org"})


@dataclass
class Export:
    request_id: str
    series: str
    rows: pd.DataFrame
    segments: list[str]
    filenamefmt: str | None
    method: str
    protocol: str
    directory: str
    polls: int = 0


@dataclass
class Request:
    """One HTTP request the server answered (for the tests to count)."""

    path: str
    args: dict[str, str]

    @property
    def op(self) -> str | None:
        return self.args.get("op")


# ---------------------------------------------------------------- the server
class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class FakeJsoc:
    """A fake JSOC DRMS server (a WSGI app) with tables of records per series.

    Parameters
    ----------
    tables : dict of str -> DataFrame
        Records per series: keyword columns named as in the FITS headers (``HARPNUM``,
        ``T_REC`` as ``YYYY.MM.DD_hh:mm:ss_TAI``, ``QUALITY``, ``NOAA_ARS``, ...), plus
        ``NAXIS1``/``NAXIS2`` giving the patch size of the synthetic files.
    files_dir : Path
        Where synthetic FITS are written on first request (may be shared between servers).
    real_files : dict of str -> Path, optional
        Export file name -> real FITS to serve for it.
    """

    def __init__(
        self,
        tables: dict[str, pd.DataFrame],
        files_dir: Path,
        real_files: dict[str, Path] | None = None,
    ):
        self.tables = {name: self._prepare(t) for name, t in tables.items()}
        self._kinds: dict[str, str] = {}  # keyword -> DRMS type, over all tables
        for table in self.tables.values():
            for col in self._keyword_columns(table):
                self._kinds.setdefault(col, _keyword_type(col, table[col]))
        self.files_dir = Path(files_dir)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.real_files = dict(real_files or {})
        self.behaviour = Behaviour()
        self.requests: list[Request] = []
        self.exports: dict[str, Export] = {}
        self._file_requests = 0
        self._export_count = 0
        self._lock = threading.Lock()
        self._server: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> FakeJsoc:
        """Serve on 127.0.0.1 at a free port, in a daemon thread."""
        self._server = make_server(
            "127.0.0.1", 0, self, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """The base URL (what ``JsocSettings.server_url`` would be)."""
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    # -- counting, for the tests
    def count(self, op: str) -> int:
        """How many JSON requests with ``op=...`` (or ``checkAddress``) were answered."""
        with self._lock:
            if op == "checkAddress":
                return sum(r.path.endswith("checkAddress.sh") for r in self.requests)
            return sum(r.op == op for r in self.requests)

    def file_requests(self, filename: str | None = None) -> int:
        """How many file downloads were asked for (of one file, or in all)."""
        with self._lock:
            files = [r for r in self.requests if r.path.startswith("/SUM")]
            if filename is None:
                return len(files)
            return sum(r.path.rsplit("/", 1)[-1] == filename for r in files)

    # -- WSGI
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        args = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        with self._lock:
            self.requests.append(Request(path, args))
        if path.endswith("/cgi-bin/ajax/checkAddress.sh"):
            return self._json(start_response, self._check_address(args))
        if path.endswith("/cgi-bin/ajax/jsoc_info"):
            return self._json(start_response, self._jsoc_info(args))
        if path.endswith("/cgi-bin/ajax/jsoc_fetch"):
            return self._json(start_response, self._jsoc_fetch(args))
        if path.startswith("/SUM"):
            return self._file(start_response, path)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    @staticmethod
    def _json(start_response, payload: dict) -> list[bytes]:
        body = json.dumps(payload).encode("latin1")
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    # -- checkAddress.sh
    def _check_address(self, args: dict[str, str]) -> dict:
        # drms sends quote_plus(email) inside urlencode: decode the second layer here.
        address = unquote_plus(args.get("address", ""))
        if address in self.behaviour.registered:
            return {"status": 2, "msg": f"{address} is a valid registered address"}
        return {"status": 4, "msg": f"{address} has neither been validated nor registered"}

    # -- jsoc_info
    def _jsoc_info(self, args: dict[str, str]) -> dict:
        op = args.get("op")
        t_start = time.perf_counter()
        try:
            if op == "series_struct":
                return self._series_struct(args.get("ds", ""))
            if op in ("rs_list", "rs_summary"):
                rs = parse_record_set(args.get("ds", ""))
                table = self._table(rs.series)
                rows = select(table, rs)
                n = int(args.get("n", 0) or 0)
                rows = rows.iloc[:n] if n > 0 else rows.iloc[n:] if n < 0 else rows
                runtime = round(time.perf_counter() - t_start, 3)
                if op == "rs_summary":
                    return {"count": len(rows), "runtime": runtime, "status": 0}
                return self._rs_list(rs, rows, args, runtime)
        except RecordSetError as err:
            return {"status": 1, "error": str(err)}
        return {"status": 1, "error": f"unsupported jsoc_info op {op!r}"}

    def _table(self, series: str) -> pd.DataFrame:
        for name, table in self.tables.items():
            if name.lower() == series.lower():
                return table
        raise RecordSetError(f"series {series!r} does not exist")

    def _series_struct(self, ds: str) -> dict:
        table = self._table(ds)
        keywords = []
        for col in self._keyword_columns(table):
            kind = self._kinds[col]
            keywords.append(
                {
                    "name": col,
                    "type": kind,
                    "recscope": "variable",
                    "defval": "-4712.01.01_11:59_TAI" if kind == "time" else "",
                    "units": "TAI" if kind == "time" else "none",
                    "note": "",
                }
            )
        segments = [
            {"name": s, "type": t, "units": u, "protocol": "fits", "dims": "VARxVAR", "note": ""}
            for s, (t, u) in SEGMENTS.items()
        ]
        name = next(n for n in self.tables if n.lower() == ds.lower())
        return {
            "note": "Space-weather HMI Active Region Patches, CEA (fake)",
            "retention": 10000,
            "unitsize": 32,
            "archive": 1,
            "tapegroup": 1,
            "primekeys": PRIMEKEYS,
            "dbindex": PRIMEKEYS,
            "keywords": keywords,
            "links": [
                {"name": "MHARP", "target": "hmi.Mharp_720s", "kind": "DYNAMIC", "note": ""},
            ],
            "segments": segments,
            "Interval": {"FirstRecord": f"{name}[][]", "LastRecord": f"{name}[][]"},
            "status": 0,
        }

    @staticmethod
    def _keyword_columns(table: pd.DataFrame) -> list[str]:
        return [c for c in table.columns if c not in NOT_KEYWORDS and not c.startswith("_")]

    def _rs_list(self, rs: RecordSet, rows: pd.DataFrame, args: dict, runtime: float) -> dict:
        out: dict[str, Any] = {}
        keys = [k for k in args.get("key", "").split(",") if k]
        if keys:
            known = self._keyword_columns(rows)
            if "**ALL**" in keys:
                keys = known
            out["keywords"] = [
                {"name": k, "values": [_jsoc_string(self._kinds[k], k, v) for v in rows[k]]}
                if k in known
                else {"name": k, "values": ["Invalid KeyLink"] * len(rows)}
                for k in keys
            ]
        segs = [s for s in args.get("seg", "").split(",") if s]
        if segs:
            out["segments"] = [
                {
                    "name": s,
                    "values": [f"/SUM1/D{1000 + i}/S00000/{s}.fits" for i in rows.index]
                    if s in SEGMENTS
                    else ["InvalidSegName"] * len(rows),
                    "dims": [
                        f"{a}x{b}" for a, b in zip(rows["NAXIS1"], rows["NAXIS2"], strict=True)
                    ],
                }
                for s in segs
            ]
        if args.get("R") == "1":
            out["recinfo"] = [
                {"name": _record_name(rs.series, r), "online": "Y"} for _, r in rows.iterrows()
            ]
        out.update({"count": len(rows), "runtime": runtime, "status": 0})
        return out

    # -- jsoc_fetch
    def _jsoc_fetch(self, args: dict[str, str]) -> dict:
        op = args.get("op")
        if op == "exp_request":
            return self._exp_request(args)
        if op == "exp_status":
            return self._exp_status(args.get("requestid", ""))
        return {"status": 4, "error": f"unsupported jsoc_fetch op {op!r}"}

    def _exp_request(self, args: dict[str, str]) -> dict:
        notify = args.get("notify", "")
        if notify not in self.behaviour.registered:
            return {"status": 4, "error": f"Export notify address {notify!r} is not registered"}
        method, protocol = args.get("method", ""), args.get("protocol", "")
        if method != "url" or protocol.lower() != "fits":
            return {
                "status": 4,
                "error": f"fake JSOC exports url/fits only, not {method}/{protocol}",
            }
        try:
            rs = parse_record_set(args.get("ds", ""))
            rows = select(self._table(rs.series), rs)
        except RecordSetError as err:
            return {"status": 4, "error": str(err)}
        if rows.empty:
            return {"status": 4, "error": "No records in record set"}
        with self._lock:
            self._export_count += 1
            number = self._export_count
            request_id = f"JSOC_20250101_{number:03d}"
            self.exports[request_id] = Export(
                request_id=request_id,
                series=rs.series,
                rows=rows,
                segments=rs.segments or list(SEGMENTS),
                filenamefmt=args.get("filenamefmt"),
                method=method,
                protocol=protocol.lower(),
                directory=f"/SUM{number}/D{77000 + number}/S00000",
            )
        return {
            "status": STATUS_QUEUED,
            "requestid": request_id,
            "method": method,
            "protocol": protocol.lower(),
            "wait": 0,
            "rcount": len(rows),
        }

    def _exp_status(self, request_id: str) -> dict:
        with self._lock:
            export = self.exports.get(request_id)
            if export is None:
                return {"status": STATUS_NOT_FOUND, "requestid": request_id, "wait": 0,
                        "error": f"Request {request_id} not found"}  # fmt: skip
            export.polls += 1
            polls = export.polls
        b = self.behaviour
        base = {"requestid": request_id, "method": export.method, "protocol": export.protocol}
        if b.never_finish or polls <= b.pending_polls:
            return {**base, "status": STATUS_PROCESSING, "wait": 0}
        if b.final_status != STATUS_DONE:
            return {**base, "status": b.final_status, "wait": 0,
                    "error": f"Export {request_id} failed (fake failure)"}  # fmt: skip
        data = self._export_data(export)
        return {
            **base,
            "status": STATUS_DONE,
            "dir": export.directory,
            "wait": 0,
            "count": len(data),
            "rcount": len(export.rows),
            "size": f"{0.1 * len(data):.1f}",
            "exptime": "2025-01-01 00:00:00",
            "tarfile": "",
            "data": data,
        }

    def _export_data(self, export: Export) -> list[dict[str, str]]:
        rows = export.rows
        if self.behaviour.drop_last_records:
            rows = rows.iloc[: -self.behaviour.drop_last_records]
        nodata_from = len(rows) - self.behaviour.nodata_last_records
        data = []
        for i, (_, row) in enumerate(rows.iterrows()):
            record = _record_name(export.series, row)
            for seg in export.segments:
                name = "NoDataFile" if i >= nodata_from else self._filename(export, row, seg)
                data.append({"record": record, "filename": name})
        return data

    @staticmethod
    def _filename(export: Export, row: pd.Series, segment: str) -> str:
        fmt = export.filenamefmt or f"{export.series}.{{HARPNUM}}.{{T_REC:A}}.{{segment}}"
        t_rec = row["T_REC"].replace(".", "").replace(":", "")
        name = (
            fmt.replace("{HARPNUM}", str(int(row["HARPNUM"])))
            .replace("{T_REC:A}", t_rec)
            .replace("{segment}", segment)
        )
        return f"{name}.fits"

    # -- files
    def _file(self, start_response, path: str) -> list[bytes]:
        directory, _, filename = path.rpartition("/")
        with self._lock:
            export = next((e for e in self.exports.values() if e.directory == directory), None)
            self._file_requests += 1
            serial = self._file_requests
        source = self._find_file(export, filename) if export else None
        if source is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such file"]
        b = self.behaviour
        if serial <= b.http_500_first:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"fake transient failure"]
        body = source.read_bytes()
        headers = [("Content-Type", "application/fits"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        if serial <= b.cut_first or filename in b.broken_files:
            # HTTP/1.0: the server closes the connection after half of Content-Length.
            return [body[: len(body) // 2]]
        return [body]

    def _find_file(self, export: Export, filename: str) -> Path | None:
        for _, row in export.rows.iterrows():
            for seg in export.segments:
                if self._filename(export, row, seg) != filename:
                    continue
                if filename in self.real_files:
                    return self.real_files[filename]
                target = self.files_dir / filename
                with self._lock:
                    if not target.exists():
                        write_synthetic_fits(target, row, seg, self._kinds)
                return target
        return None

    # -- tables
    @staticmethod
    def _prepare(table: pd.DataFrame) -> pd.DataFrame:
        table = table.rename(columns={"DATE-OBS": "DATE__OBS"}).copy()
        table["_t"] = pd.to_datetime(
            table["T_REC"].str.removesuffix("_TAI"), format="%Y.%m.%d_%H:%M:%S"
        )
        table = table.sort_values(["HARPNUM", "_t"], kind="stable").reset_index(drop=True)
        return table


def _record_name(series: str, row: pd.Series) -> str:
    return f"{series}[{int(row['HARPNUM'])}][{row['T_REC']}]"


def _keyword_type(name: str, values: pd.Series) -> str:
    if name in TIME_KEYWORDS:
        return "time"
    if name in INT_KEYWORDS or pd.api.types.is_integer_dtype(values):
        return "int"
    if pd.api.types.is_float_dtype(values):
        return "double"
    return "string"


def _jsoc_string(kind: str, name: str, value: Any) -> str:
    """A keyword value as jsoc_info prints it (every value is a string)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if missing:
        return "" if kind in ("string", "time") else "nan"
    if name == "QUALITY":
        return f"0x{int(value):08x}"  # JSOC prints QUALITY in hex
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if kind == "int" and float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    return str(value)


def write_synthetic_fits(path: Path, row: pd.Series, segment: str, kinds: dict[str, str]) -> None:
    """A SHARP segment file as JSOC exports it, with a synthetic bipole as data.

    Empty primary HDU, then a Rice-compressed int32 image (BSCALE 0.01, BLANK for NaN) whose
    header carries the record's keywords. NaN keyword values are written as JSOC writes
    them (``KEY = nan``, not FITS-standard).
    """
    nx, ny = int(row["NAXIS1"]), int(row["NAXIS2"])
    y, x = np.mgrid[0:ny, 0:nx]
    sx, sy = max(nx / 10, 2.0), max(ny / 6, 2.0)
    br = 1500.0 * np.exp(
        -(((x - 0.35 * nx) / sx) ** 2 + ((y - 0.5 * ny) / sy) ** 2)
    ) - 1200.0 * np.exp(-(((x - 0.65 * nx) / sx) ** 2 + ((y - 0.5 * ny) / sy) ** 2))
    br[: max(ny // 10, 1), : max(nx // 10, 1)] = np.nan  # an off-disk corner
    raw = np.where(np.isnan(br), -2147483648, np.round(br / 0.01)).astype(np.int32)
    header = fits.Header()
    for key, value in row.items():
        if key in NOT_KEYWORDS or key.startswith("_"):
            continue
        fits_key = "DATE-OBS" if key == "DATE__OBS" else key
        if isinstance(value, float) and math.isnan(value):
            if kinds.get(key) in ("string", "time"):
                header[fits_key] = ""
            else:
                header.append(fits.Card.fromstring(f"{fits_key:<8}= {'nan':>20}"))
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            header[fits_key] = value.item()
        elif value is not None:
            header[fits_key] = value
    header["BUNIT"] = SEGMENTS.get(segment, ("int", "Mx/cm^2"))[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu = fits.CompImageHDU(data=raw, header=header, compression_type="RICE_1")
        hdu.header["BLANK"] = -2147483648
        hdu.header["BSCALE"] = 0.01
        hdu.header["BZERO"] = 0.0
        tmp = path.with_suffix(".tmp")
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True, output_verify="ignore")
        tmp.replace(path)
