"""The JSOC ingest source: export and download a query's Br files (:func:`download_jsoc`).

What a request downloaded (:class:`JsocDownload`) is then cut into shards by
:func:`sharpseek.data.ingest.plan_jsoc_shards`, as local files are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from sharpseek import __version__
from sharpseek.config import Settings
from sharpseek.data import jsoc
from sharpseek.data.dataset import Quarantined, latest_version, load_dataset
from sharpseek.data.ingest_records import (
    DATASET_SCHEMA,
)
from sharpseek.data.jsoc_export import export_and_download
from sharpseek.data.jsoc_recordset import build_query
from sharpseek.data.object_store import ObjectStore
from sharpseek.data.store import open_store

__all__ = ["JsocDownload", "combine_downloads", "download_jsoc"]


@dataclass
class JsocDownload:
    """What one JSOC request downloaded: the files (Br segments, in ``<home>/downloads/``),
    the records the export did not deliver (already :class:`Quarantined`, with that reason),
    the series asked for, the record-set queries and JSOC's export request ids."""

    files: list[Path]
    missing: list[Quarantined]
    series: str
    queries: list[str]
    request_ids: list[str]

    def provenance(self) -> dict[str, Any]:
        """What dataset.json records about a JSOC ingest."""
        return {
            "source": "jsoc",
            "series": self.series,
            "queries": self.queries,
            "request_ids": self.request_ids,
            "sharpseek_version": __version__,
            "schema": DATASET_SCHEMA,
        }


def combine_downloads(downloads: Sequence[JsocDownload], *, series: str) -> JsocDownload:
    """Several JSOC requests of one ingest (the incremental one and a time range) as one
    download: their files, missing records, queries and request ids, in request order."""
    return JsocDownload(
        files=[f for d in downloads for f in d.files],
        missing=[m for d in downloads for m in d.missing],
        series=series,
        queries=[q for d in downloads for q in d.queries],
        request_ids=[r for d in downloads for r in d.request_ids],
    )


def download_jsoc(
    settings: Settings,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    harpnums: Sequence[int] | None = None,
    noaa: Sequence[int] | None = None,
    series: str | None = None,
    cadence: str | None = None,
    strict_quality: bool = False,
    incremental: bool = False,
    dataset: str = "sharp",
    progress: bool = True,
    store: ObjectStore | None = None,
    client=None,
) -> JsocDownload:
    """Query JSOC, export and download the Br segments. Nothing is written to the dataset.

    With ``incremental``, asks only for records after the newest T_REC already in
    ``dataset``, per HARP (new HARPs need a time range). ``series`` defaults to
    ``settings.jsoc.series``, ``cadence`` to ``settings.jsoc.cadence``; ``strict_quality``
    asks for QUALITY == 0. Records the export did not deliver come back in ``missing``,
    quarantined with that reason.

    Downloads go to ``<home>/downloads/`` and resume after a crash (see
    :func:`sharpseek.data.jsoc_export.export_and_download`): a rerun of the same request after a
    crash finds the same files and asks JSOC for nothing more.
    """
    store = store or open_store(settings)
    cfg = settings.jsoc
    series = series or cfg.series
    cadence = cadence or cfg.cadence
    quality = "strict" if strict_quality else cfg.quality
    client = client or jsoc.make_client(cfg)
    if incremental:
        version = latest_version(store, dataset)
        newest: dict[int, datetime] = {}
        if version is not None:
            manifest = load_dataset(store, dataset, version).manifest
            held = manifest[manifest["series"].isin([series, jsoc.DEFINITIVE_SERIES])]
            if harpnums:
                held = held[held["harpnum"].isin(list(harpnums))]
            newest = {
                int(h): pd.Timestamp(t).to_pydatetime()
                for h, t in held.groupby("harpnum")["t_rec"].max().items()
            }
        queries = jsoc.incremental_queries(
            series, newest, end=end, cadence=cadence, quality=quality
        )
    else:
        queries = [
            build_query(
                series,
                start=start,
                end=end,
                harpnums=harpnums,
                noaa=noaa,
                cadence=cadence,
                quality=quality,
            )
        ]
    downloads = settings.home / "downloads"
    out = JsocDownload(files=[], missing=[], series=series, queries=queries, request_ids=[])
    for query in queries:
        result = export_and_download(
            client, query, downloads, progress=progress, **jsoc.export_options(cfg)
        )
        out.files.extend(result.files)
        out.request_ids.append(result.request_id)
        out.missing.extend(
            Quarantined(
                f"jsoc:{result.request_id}", "the JSOC export did not deliver this record", m
            )
            for m in result.missing
        )
    return out
