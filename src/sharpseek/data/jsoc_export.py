"""JSOC exports through drms, resumable: :func:`export_and_download` asks JSOC for the files of a
query (or picks up an export a crashed run left), waits for it, downloads what is missing
with retries, and keeps its state in a small JSON file beside the downloads so a rerun
resumes instead of starting over.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import drms
import pandas as pd
from drms import DrmsExportError
from tqdm.auto import tqdm

from sharpseek import __version__
from sharpseek.config import mask_email
from sharpseek.data.fits import parse_t_rec
from sharpseek.data.jsoc import (
    EMAIL_ENV,
    HTTP_TIMEOUT_SECONDS,
    REGISTER_URL,
    STATUS_DONE,
    STATUS_PENDING,
    DownloadResult,
    JsocDownloadError,
    JsocExportError,
    JsocExportTimeout,
    T,
)
from sharpseek.data.jsoc import logger as jsoc_logger
from sharpseek.data.jsoc_recordset import format_t_rec, series_of

__all__ = ["export_and_download"]

_PENDING_WORDS = {1: "processing", 2: "queued", 6: "not yet registered"}
#: The version of the resumable export's state file (``.export-<key>.json``).
_STATE_VERSION = 1
_RECORD = re.compile(
    r"^\s*(?P<series>[\w.]+)\[(?P<harp>\d+)\]\[(?P<t_rec>[^\]]+)\](?:\{(?P<seg>[^}]*)\})?\s*$"
)


# ---------------------------------------------------------------- export and download
def export_and_download(
    client: drms.Client,
    query: str,
    dest_dir: str | Path,
    *,
    email: str | None,
    segments: Sequence[str] = ("Br",),
    method: str = "url",
    protocol: str = "fits",
    retries: int,
    backoff_seconds: float,
    timeout_seconds: float,
    poll_seconds: float,
    progress: bool = True,
    logger: logging.Logger | None = None,
) -> DownloadResult:
    """Export the records of a query from JSOC and download the files, resumably.

    Steps: list the records the query selects (``jsoc_info``); submit the export with the
    registered ``email``; poll its status every ``poll_seconds`` until it is done (status
    0), has failed (3 or 4) or ``timeout_seconds`` have passed; then download each file to a
    ``.part`` file, check its size (``Content-Length``, and whole 2880-byte FITS blocks) and
    rename it into ``dest_dir``. Transient failures (connection errors, timeouts, HTTP 5xx,
    truncated files) are retried ``retries`` times with exponential backoff
    (``backoff_seconds``, doubling).

    A state file ``dest_dir/jsoc-export-<hash>.json`` (hash of query, segments, method and
    protocol) records the request id, the query, the expected records and which files are
    done; it is rewritten after every file. A rerun of the same call after a crash, a
    timeout or a failed download resumes: it asks JSOC for the status of the same request
    (no new export), skips files already complete (present with their recorded size), and
    downloads the rest. After success a rerun downloads nothing. When JSOC no longer knows
    the request (expired, or it had failed), a new export is submitted and complete files
    are still kept. The state never holds the email address.

    Parameters
    ----------
    client : drms.Client
        See :func:`make_client`.
    query : str
        Record set without segments (see :func:`sharpseek.data.jsoc_recordset.build_query`).
    dest_dir : str or Path
        Download folder (created when absent).
    email : str
        JSOC-registered address (``SHARPSEEK_JSOC__EMAIL``); logged masked only.
    segments : sequence of str
        Segments to export, e.g. ``("Br",)``.
    method, protocol : str
        ``url`` and ``fits``: the only combination supported, because ``fits`` files carry
        the record's keywords in their headers (``as-is`` files do not) and one file per
        record and segment (``url-tar`` gives one tar file).
    retries : int
        Retries of a transient failure (per file and per status poll).
    backoff_seconds : float
        First retry delay; doubles after each retry.
    timeout_seconds : float
        How long to wait for JSOC to prepare the export.
    poll_seconds : float
        Export status polling interval.
    progress : bool
        Show a tqdm progress bar of the downloads.
    logger : logging.Logger, optional
        Where to log (default: the JSOC logger, ``sharpseek.data.jsoc``).

    Returns
    -------
    DownloadResult
        The files, the records JSOC did not deliver (also logged as a warning), and the
        request id.

    Raises
    ------
    ValueError
        Missing or unregistered email, bad method/protocol/segments, a query with segments.
    JsocExportError
        The export failed (status 3 or 4); names the request id and status.
    JsocExportTimeout
        The export was still pending after ``timeout_seconds``; a rerun resumes waiting.
    JsocDownloadError
        Files still failing after the retries; a rerun resumes with them.
    """
    log = logger or jsoc_logger
    email = _require_email(email)
    segments = _check_export_arguments(query, segments, method, protocol)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    state_path = dest / f"jsoc-export-{_state_key(query, segments, method, protocol)}.json"
    state = _load_state(state_path, log)

    def retrying(what: str, fn: Callable[[], T]) -> T:
        return _retrying(fn, what=what, retries=retries, backoff_seconds=backoff_seconds, log=log)

    if state is not None and state.get("complete") and _all_done(state, dest):
        log.info("Export %s of %s already downloaded to %s", state["request_id"], query, dest)
        return _result(state, dest)
    if state is None:
        expected = _expected_records(client, query, segments, retrying)
        if not expected:
            log.info("No records match %s: nothing to export", query)
            return DownloadResult(files=[], missing=[], request_id="")
        request = _new_export(client, query, segments, email, retrying, log)
        state = _new_state(query, segments, method, protocol, request.id, expected)
    else:
        request = _resume_export(client, query, segments, email, state, retrying, log)
    _save_state(state_path, state)

    _wait_for_export(request, timeout_seconds, poll_seconds, retrying, log)
    urls = retrying(f"JSOC export listing {request.id}", lambda: request.urls)
    _record_delivered_files(state, urls, segments)
    _save_state(state_path, state)
    if state["missing"]:
        missing = state["missing"]
        log.warning(
            "JSOC export %s delivered %d of %d expected files; missing: %s",
            request.id,
            len(state["files"]),
            len(state["expected"]),
            ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
        )

    failed = _download_files(state, state_path, dest, retrying, progress, log)
    if failed:
        raise JsocDownloadError(
            f"{len(failed)} file(s) of JSOC export {request.id} could not be downloaded "
            f"({', '.join(sorted(failed))}); run again to resume",
            request_id=request.id,
            failed=failed,
        )
    state["complete"] = True
    _save_state(state_path, state)
    result = _result(state, dest)
    log.info(
        "JSOC export %s: %d file(s) in %s%s",
        request.id,
        len(result.files),
        dest,
        f", {len(result.missing)} record(s) missing" if result.missing else "",
    )
    return result


def _check_export_arguments(
    query: str, segments: Sequence[str], method: str, protocol: str
) -> list[str]:
    if method != "url" or protocol != "fits":
        raise ValueError(
            f"method={method!r}, protocol={protocol!r}: only method='url', protocol='fits' is "
            "supported (fits files carry the SHARP keywords; one file per record and segment)"
        )
    segments = list(segments)
    if not segments or any(not re.fullmatch(r"\w+", str(s)) for s in segments):
        raise ValueError(f"segments {segments!r} must be a non-empty list of segment names")
    if "{" in query:
        raise ValueError(f"query {query!r} names segments: pass them as segments= instead")
    return segments


def _expected_records(client, query: str, segments: list[str], retrying) -> list[str]:
    """``series[HARPNUM][T_REC]{segment}`` of every file the export should deliver."""
    series = series_of(query)
    records = retrying("JSOC query", lambda: client.query(query, key=["HARPNUM", "T_REC"]))
    return [
        _record_name(series, int(h), parse_t_rec(str(t)), seg)
        for h, t in zip(records["HARPNUM"], records["T_REC"], strict=True)
        for seg in segments
    ]


def _new_state(query, segments, method, protocol, request_id, expected) -> dict[str, Any]:
    return {
        "version": _STATE_VERSION,
        "query": query,
        "segments": segments,
        "method": method,
        "protocol": protocol,
        "request_id": request_id,
        "expected": expected,
        "files": {},  # file name -> {record, url, size, done}
        "missing": [],
        "complete": False,
    }


def _resume_export(client, query, segments, email, state, retrying, log) -> drms.ExportRequest:
    """The export of a saved state, or a new one when JSOC no longer has it."""
    done = sum(1 for f in state["files"].values() if f.get("done"))
    log.info(
        "Resuming JSOC export %s (%d of %d expected files already downloaded)",
        state["request_id"],
        done,
        len(state["expected"]),
    )
    request = retrying(
        f"JSOC export status {state['request_id']}",
        lambda: client.export_from_id(state["request_id"]),
    )
    if request.status in (STATUS_DONE, 1, 2):
        return request
    log.warning(
        "JSOC no longer has export %s (status %s: expired or failed); "
        "requesting a new export, keeping the files already downloaded",
        state["request_id"],
        request.status,
    )
    request = _new_export(client, query, segments, email, retrying, log)
    state["request_id"] = request.id
    return request


def _record_delivered_files(state: dict[str, Any], urls: pd.DataFrame, segments) -> None:
    """Put the export's file list into the state, keeping what earlier runs completed."""
    files: dict[str, dict[str, Any]] = {}
    for record, filename, url in zip(urls["record"], urls["filename"], urls["url"], strict=True):
        previous = state["files"].get(filename, {})
        files[filename] = {
            "record": _normalise_record(record, filename, segments) or str(record),
            "url": url,
            "size": previous.get("size"),
            "done": bool(previous.get("done")),
        }
    delivered = {f["record"] for f in files.values()}
    state["files"] = files
    state["missing"] = [r for r in state["expected"] if r not in delivered]


def _download_files(state, state_path, dest, retrying, progress, log) -> dict[str, str]:
    """Download the files not yet complete; returns file name -> error of those that failed."""
    files = state["files"]
    todo = [name for name, f in files.items() if not _is_done(dest / name, f)]
    request_id = state["request_id"]
    log.info(
        "Downloading %d file(s) of export %s to %s (%d already there)",
        len(todo),
        request_id,
        dest,
        len(files) - len(todo),
    )
    failed: dict[str, str] = {}
    with tqdm(total=len(todo), unit="file", desc=f"JSOC {request_id}", disable=not progress) as bar:
        for name in todo:
            entry = files[name]
            entry["done"] = False
            try:
                size = retrying(
                    f"download of {name}",
                    lambda e=entry, n=name: _download(e["url"], dest / n, HTTP_TIMEOUT_SECONDS),
                )
            except (OSError, http.client.HTTPException) as err:  # reported after the others
                failed[name] = _describe(err)
                log.error("Could not download %s: %s", name, failed[name])
            else:
                entry.update(size=size, done=True)
                _save_state(state_path, state)
            bar.update(1)
    return failed


def _new_export(client, query, segments, email, retrying, log) -> drms.ExportRequest:
    if not retrying("JSOC email check", lambda: client.check_email(email)):
        raise ValueError(
            f"{mask_email(email)} is not registered with JSOC for exports: register it at "
            f"{REGISTER_URL} and set {EMAIL_ENV}"
        )
    export_query = f"{query}{{{','.join(segments)}}}"
    request = retrying(
        "JSOC export request",
        lambda: client.export(export_query, method="url", protocol="fits", email=email),
    )
    log.info(
        "Requested JSOC export %s of %s for %s (status %s)",
        request.id,
        export_query,
        mask_email(email),
        request.status,
    )
    return request


def _wait_for_export(request, timeout_seconds, poll_seconds, retrying, log) -> None:
    """Poll until the export is done; raise on failure or timeout."""
    deadline = time.monotonic() + timeout_seconds
    last = None
    while True:
        status = request.status
        if status == STATUS_DONE:
            return
        if status not in STATUS_PENDING:
            try:
                request.data  # noqa: B018 - drms raises DrmsExportError with JSOC's message
                detail = "export failed"
            except DrmsExportError as err:
                detail = str(err)
            raise JsocExportError(
                f"JSOC export {request.id} failed with status {status}: {detail}",
                request_id=request.id,
                status=status,
            )
        if status != last:
            log.info("JSOC export %s %s (status %s)", request.id, _PENDING_WORDS[status], status)
            last = status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JsocExportTimeout(
                f"JSOC export {request.id} still pending (status {status}) after "
                f"{timeout_seconds:g} s; run again later to resume waiting for the same export",
                request_id=request.id,
                status=status,
            )
        time.sleep(min(poll_seconds, remaining))
        retrying(f"JSOC export status {request.id}", request.has_finished)


def _download(url: str, target: Path, timeout: float) -> int:
    """Download one file to ``target`` through ``target.part``; returns its size in bytes."""
    part = target.with_name(target.name + ".part")
    headers = {"User-Agent": f"sharpseek/{__version__}"}
    with urlopen(Request(url, headers=headers), timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        size = 0
        with open(part, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    if length is not None and size != int(length):
        raise _TruncatedDownload(f"received {size} of {length} bytes")
    if target.suffix == ".fits" and size % 2880:
        raise _TruncatedDownload(f"{size} bytes is not a whole number of 2880-byte FITS blocks")
    os.replace(part, target)
    return size


class _TruncatedDownload(OSError):
    """A download ended early (fewer bytes than announced)."""


def _is_transient(err: BaseException) -> bool:
    if isinstance(err, HTTPError):
        return err.code >= 500 or err.code in (408, 429)
    return isinstance(
        err,
        (URLError, TimeoutError, ConnectionError, http.client.HTTPException, _TruncatedDownload),
    )


def _describe(err: BaseException) -> str:
    if isinstance(err, _TruncatedDownload):
        return f"truncated: {err}"
    if isinstance(err, HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, URLError):
        return f"{type(err).__name__}: {err.reason}"
    return f"{type(err).__name__}: {err}"


def _retrying(
    fn: Callable[[], T],
    *,
    what: str,
    retries: int,
    backoff_seconds: float,
    log: logging.Logger,
) -> T:
    """Call ``fn``; on a transient failure wait backoff * 2**attempt and retry."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as err:
            if not _is_transient(err) or attempt == retries:
                raise
            delay = backoff_seconds * 2**attempt
            log.warning(
                "%s failed (%s); retry %d of %d in %.3g s",
                what,
                _describe(err),
                attempt + 1,
                retries,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------- state file
def _state_key(query: str, segments: list[str], method: str, protocol: str) -> str:
    text = json.dumps([query.strip(), segments, method, protocol])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _load_state(path: Path, log: logging.Logger) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("Ignoring unreadable download state %s (%s)", path, err)
        return None
    if state.get("version") != _STATE_VERSION or not state.get("request_id"):
        log.warning("Ignoring download state %s of another format", path)
        return None
    return state


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _is_done(path: Path, entry: Mapping[str, Any]) -> bool:
    size = entry.get("size")
    return bool(entry.get("done")) and path.is_file() and path.stat().st_size == size


def _all_done(state: Mapping[str, Any], dest: Path) -> bool:
    return all(_is_done(dest / name, f) for name, f in state["files"].items())


def _result(state: Mapping[str, Any], dest: Path) -> DownloadResult:
    files = [dest / name for name, f in state["files"].items() if _is_done(dest / name, f)]
    return DownloadResult(
        files=files, missing=list(state["missing"]), request_id=str(state["request_id"])
    )


def _record_name(series: str, harpnum: int, t_rec: datetime, segment: str) -> str:
    return f"{series}[{harpnum}][{format_t_rec(t_rec)}]{{{segment}}}"


def _normalise_record(record: Any, filename: str, segments: list[str]) -> str | None:
    """``series[HARP][T_REC]{segment}`` for an export's (record, filename), or None."""
    m = _RECORD.match(str(record))
    if not m:
        return None
    segment = m.group("seg")
    if not segment:
        # protocol=fits lists the record without its segment; the file name ends with it.
        segment = next((s for s in segments if f".{s}." in f".{filename}"), None)
        if segment is None:
            return None
    try:
        t_rec = parse_t_rec(m.group("t_rec"))
    except ValueError:
        return None
    return _record_name(series_of(m.group("series")), int(m.group("harp")), t_rec, segment)


def _require_email(email: str | None) -> str:
    if email is None or not str(email).strip():
        raise ValueError(
            "JSOC exports need a JSOC-registered email address: set "
            f"{EMAIL_ENV}=you@example.org (register it at {REGISTER_URL})"
        )
    email = str(email).strip()
    if "@" not in email:
        raise ValueError(
            f"{mask_email(email)} is not an email address; set {EMAIL_ENV} to the address "
            f"registered with JSOC ({REGISTER_URL})"
        )
    return email
