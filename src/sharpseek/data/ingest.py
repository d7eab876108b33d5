"""Ingestion: every source of SHARPs lands in the same versioned dataset, through one writer.

Sources — synthetic (:mod:`sharpseek.data.synthetic`), local FITS as JSOC exports them, and JSOC
itself through drms (:mod:`sharpseek.data.jsoc`) — yield frames (Br in gauss at original
resolution plus SHARP metadata) that all go through :func:`frame_to_record`: model-space
conversion, physical-unit quantities at original resolution, mu, data-quality flags. The
dataset writer (:func:`sharpseek.data.dataset.append_records`) adds the model-space physics per
shard, keys records by (series, HARPNUM, T_REC), and quarantines what is refused with its
reason while the rest goes on.

Every ingest takes one road: a plan cuts the input into :class:`IngestShard` pieces
(:func:`plan_synthetic_shards`, :func:`plan_fits_shards`, :func:`plan_jsoc_shards` after
:func:`download_jsoc`), any worker makes a shard's records (:func:`ingest_shard`), and one
commit writes them through the dataset writer (:func:`commit_ingest_shards`). The planners
that decide what is up to date, and the runners, are in :mod:`sharpseek.pipeline.stages`
(``plan_ingest_synthetic``, ``plan_ingest_fits``, ``plan_ingest_jsoc``, ``run_ingest_plan``):
the ``sharpseek ingest`` commands run a plan in one process, the Prefect flows map its
shards over workers.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import astropy.units as u
import numpy as np
import pandas as pd

from sharpseek import __version__
from sharpseek.config import Settings
from sharpseek.data import jsoc
from sharpseek.data.dataset import (
    AppendResult,
    PatchRecord,
    Quarantined,
    append_records,
    latest_version,
    load_dataset,
    record_id,
)
from sharpseek.data.exclusion import EXCLUDED_COLUMN, exclusion_reasons, exclusion_rule
from sharpseek.data.fits import SHARP_SERIES, read_sharp
from sharpseek.data.jsoc_export import export_and_download
from sharpseek.data.native import magnetogram_beside, magnetogram_name, native_columns
from sharpseek.data.object_store import ObjectStore
from sharpseek.data.preprocess import (
    MIN_PATCH_SIDE,
    clip_field,
    heliocentric_mu,
    small_patch_problem,
    to_model_space,
)
from sharpseek.data.store import open_store
from sharpseek.data.synthetic import generate_frames
from sharpseek.physics.parameters import compute_parameters, patch_quantities

__all__ = [
    "DATASET_SCHEMA",
    "INGEST_SHARDS_PREFIX",
    "MIN_PATCH_SIDE",
    "IngestShard",
    "JsocDownload",
    "combine_downloads",
    "commit_ingest_shards",
    "download_jsoc",
    "find_fits_files",
    "fits_records",
    "keep_raw",
    "raw_key",
    "frame_to_record",
    "ingest_shard",
    "model_space_annotator",
    "plan_fits_shards",
    "plan_jsoc_shards",
    "plan_synthetic_shards",
    "shard_items",
    "synthetic_records",
    "synthetic_version",
]

log = logging.getLogger(__name__)

#: Bump when the dataset's columns or the preprocessing change, so old versions are not reused.
DATASET_SCHEMA = 1
#: Our flux above 100 G over JSOC's USFLUX outside this range flags the record (measured on
#: the real samples: 1.0-4.1; USFLUX uses JSOC's own strong-field mask).
USFLUX_RATIO_RANGE = (0.5, 6.0)
#: BUNIT values of a field strength that JSOC and others write (Mx/cm^2 is a gauss).
FIELD_UNITS = u.G


def frame_to_record(
    br: np.ndarray,
    meta: dict[str, Any],
    extra: dict[str, Any] | None = None,
    *,
    los: np.ndarray | None = None,
):
    """One frame (Br [G], ny x nx, original resolution) -> a :class:`PatchRecord`.

    Adds the resize scales; the physical-unit quantities of SCIENCE.md at original
    resolution: ``flux_mx`` (all pixels), ``flux_strong_mx`` (|Br| > 100 G),
    ``flux_positive_mx``, ``flux_negative_mx``; the native-scale parameters of
    :func:`sharpseek.data.native.native_columns` (``psep_mm``, ``tilt_cea``, ``joy_tilt_cea``,
    ``r_jsoc`` on ``los`` when given, ``flux_imbalance``, ``r_jsoc_segment``), all from the
    unclipped field; ``mu`` when the metadata lack it; and ``dq_flags`` where JSOC's own
    keywords disagree strongly with ours.
    """
    meta = dict(meta)
    patch = to_model_space(br)
    quantities = patch_quantities(
        np.asarray(br) * u.G,
        pixel_scale=float(meta.get("cdelt1") or 0.03) * u.deg,
        rsun_ref=float(meta.get("rsun_ref") or 6.96e8) * u.m,
    )
    if meta.get("mu") is None:
        meta["mu"] = derive_mu(meta)
    columns = {
        "scale_x": patch.scale_x,
        "scale_y": patch.scale_y,
        "nan_fraction": patch.nan_fraction,
        "flux_mx": quantities["unsigned_flux"].to_value(u.Mx),
        "flux_strong_mx": quantities["unsigned_flux_strong"].to_value(u.Mx),
        "flux_positive_mx": quantities["positive_flux"].to_value(u.Mx),
        "flux_negative_mx": quantities["negative_flux"].to_value(u.Mx),
        **native_columns(br, meta, los=los),
    }
    columns["dq_flags"] = ",".join(data_quality_flags(meta, columns))
    if extra:
        columns.update(extra)
    return PatchRecord(image=patch.image, meta=meta, columns=columns)


def derive_mu(meta: dict[str, Any]) -> float:
    """mu = cos(heliocentric angle) of the patch centre (SCIENCE.md "Data"): from LAT_FWT and
    LON_FWT, falling back to CRVAL2 and CRVAL1 - CRLN_OBS; B0 = CRLT_OBS. NaN if unknown."""

    def number(key: str) -> float:
        return _float(meta.get(key))

    lat, lon = number("lat_fwt"), number("lon_fwt")
    if not (math.isfinite(lat) and math.isfinite(lon)):
        lat, lon = number("crval2"), number("crval1") - number("crln_obs")
    b0 = number("crlt_obs")
    if not math.isfinite(b0):
        b0 = 0.0
    return float(heliocentric_mu(lat, lon, b0))


def data_quality_flags(meta: dict[str, Any], columns: dict[str, Any]) -> list[str]:
    """Where JSOC's keywords disagree strongly with what we measure (names of flags)."""
    flags = []
    usflux = _float(meta.get("usflux"))
    if math.isfinite(usflux) and usflux > 0:
        ratio = columns["flux_strong_mx"] / usflux
        lo, hi = USFLUX_RATIO_RANGE
        if not lo <= ratio <= hi:
            flags.append(f"usflux_ratio={ratio:.2g}")
    if columns["nan_fraction"] > 0.5:
        flags.append("mostly_nan")
    return flags


def model_space_annotator(settings: Settings):
    """The per-shard annotation: the batched physics of :mod:`sharpseek.physics.parameters`."""

    def annotate(images: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        latitude = np.array([_float(r.get("lat_fwt")) for r in rows], dtype=np.float64)
        params = compute_parameters(
            images, latitude=latitude, chunk_size=settings.physics_chunk_size
        )
        out = {k: np.asarray(v) for k, v in params.items()}
        # which frames training and the index leave out (sharpseek.data.exclusion)
        out[EXCLUDED_COLUMN] = exclusion_reasons(
            [_float(r.get("nan_fraction")) for r in rows],
            [_float(r.get("mu")) for r in rows],
            **exclusion_rule(settings),
        )
        return out

    return annotate


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ----------------------------------------------------------------------------------------------
# synthetic
# ----------------------------------------------------------------------------------------------
def synthetic_version(*, regions: int, frames: int, cadence_hours: float, seed: int) -> str:
    """The version name of a synthetic dataset: its recipe, readable."""
    cadence = f"{cadence_hours:g}".replace(".", "p")
    return f"seed{seed}-r{regions}-f{frames}-c{cadence}h-s{DATASET_SCHEMA}"


def synthetic_records(
    *,
    regions: int,
    frames: int,
    cadence_hours: float,
    seed: int,
    first_region: int = 0,
    progress: bool = False,
) -> Iterator[PatchRecord]:
    """The records of synthetic regions ``first_region``..``regions - 1`` of a recipe (each
    the same whether made alone or with the whole recipe)."""
    for frame in generate_frames(
        regions=regions,
        frames=frames,
        cadence_hours=cadence_hours,
        seed=seed,
        first_region=first_region,
        progress=progress,
    ):
        extra = {f"truth_{k}": v for k, v in frame.truth.items()}
        extra["source"] = "synthetic"
        yield frame_to_record(frame.br, frame.meta, extra)


def synthetic_provenance(
    *, regions: int, frames: int, cadence_hours: float, seed: int
) -> dict[str, Any]:
    """What dataset.json records about how a synthetic version was made."""
    return {
        "source": "synthetic",
        "regions": regions,
        "frames": frames,
        "cadence_hours": cadence_hours,
        "seed": seed,
        "sharpseek_version": __version__,
        "schema": DATASET_SCHEMA,
    }


# ----------------------------------------------------------------------------------------------
# local FITS
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# JSOC
# ----------------------------------------------------------------------------------------------
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
            jsoc.build_query(
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


def plan_jsoc_shards(
    download: JsocDownload, *, dataset: str, shard_files: int, store: ObjectStore
) -> tuple[list[IngestShard], list[Quarantined]]:
    """Cut what a JSOC request downloaded into shards of at most ``shard_files`` Br files,
    and stage each file's bytes in ``store`` with its shard (the worker that makes a shard
    may run on another machine than the download: a Dask worker pod reads the store, not
    the flow run's disk). Returns the shards and what was refused before any shard (records
    the export did not deliver, files that are not Br FITS).

    The series (definitive or near-real-time) travels in each file's JSOC name, which the
    staged copy keeps: the dataset writer replaces an NRT record by the definitive one of
    the same HARP and T_REC, as it does for local files.
    """
    br_files, problems = find_fits_files(download.files)
    shards = plan_fits_shards(
        br_files, dataset=dataset, source="jsoc", shard_files=shard_files, stage_in=store
    )
    return shards, [*download.missing, *problems]


# ----------------------------------------------------------------------------------------------
# sharded ingest: workers turn pieces of the input into records, one writer commits them
# ----------------------------------------------------------------------------------------------
#: Where ingest shards keep their records until the dataset writer commits them.
INGEST_SHARDS_PREFIX = "pipeline/ingest"


@dataclass(frozen=True)
class IngestShard:
    """A piece of an ingest that one worker turns into records: preprocessing + physics.

    ``kind == "synthetic"``: regions ``first_region`` .. ``stop_region - 1`` (0-based) of the
    recipe ``recipe`` (keyword arguments of :func:`synthetic_records`, as sorted pairs);
    ``kind == "fits"``: the Br FITS ``files``, their records tagged ``source``. ``key`` is the
    store prefix its records go to, made from its inputs (recipe and region range, or the
    files' names and bytes, and the sharpseek version): a rerun, or another worker, reuses
    what a shard already made. ``staged``: store keys holding a copy of each file (same
    order), read instead of the local paths, so that a worker on another machine can make
    the shard (JSOC downloads: :func:`plan_jsoc_shards`).
    """

    dataset: str
    kind: Literal["synthetic", "fits"]
    key: str
    recipe: tuple[tuple[str, Any], ...] = ()
    first_region: int = 0
    stop_region: int = 0
    files: tuple[str, ...] = ()
    source: str = "fits"
    staged: tuple[str, ...] = ()

    def __len__(self) -> int:
        """Regions (synthetic) or files (FITS) in the shard."""
        return self.stop_region - self.first_region if self.kind == "synthetic" else len(self.files)


def _shard_key(dataset: str, inputs: dict[str, Any]) -> str:
    text = json.dumps(
        {"schema": DATASET_SCHEMA, "sharpseek": __version__, **inputs}, sort_keys=True, default=str
    )
    return f"{INGEST_SHARDS_PREFIX}/{dataset}/{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def plan_synthetic_shards(
    *,
    regions: int,
    frames: int,
    cadence_hours: float,
    seed: int,
    shard_frames: int,
    dataset: str = "synthetic",
) -> list[IngestShard]:
    """Cut a synthetic recipe into shards of whole regions, about ``shard_frames`` frames each
    (at least one region); in region order."""
    if shard_frames < 1:
        raise ValueError(f"shard size must be >= 1 frame, got {shard_frames}")
    recipe = tuple(
        sorted(
            {
                "regions": regions,
                "frames": frames,
                "cadence_hours": cadence_hours,
                "seed": seed,
            }.items()
        )
    )
    per_shard = max(1, shard_frames // max(frames, 1))
    shards = []
    for first in range(0, regions, per_shard):
        stop = min(first + per_shard, regions)
        inputs = {"kind": "synthetic", "recipe": recipe, "regions_from": first, "to": stop}
        shards.append(
            IngestShard(dataset, "synthetic", _shard_key(dataset, inputs), recipe, first, stop)
        )
    return shards


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plan_fits_shards(
    files: Sequence[str | Path],
    *,
    dataset: str,
    source: str,
    shard_files: int,
    stage_in: ObjectStore | None = None,
) -> list[IngestShard]:
    """Cut Br FITS files into shards of at most ``shard_files`` files (one frame each), in the
    order given; a shard's key follows its files' names and bytes.

    With ``stage_in``, each file of a shard not yet made is copied into that store under
    ``<shard key>/inputs/<i>/<file name>`` (removed with the shard once committed), and the
    shard reads those copies (:attr:`IngestShard.staged`).
    """
    if shard_files < 1:
        raise ValueError(f"shard size must be >= 1 file, got {shard_files}")
    files = [str(f) for f in files]
    shards = []
    for start in range(0, len(files), shard_files):
        chunk = tuple(files[start : start + shard_files])
        inputs: dict[str, Any] = {
            "kind": "fits",
            "source": source,
            "files": [(Path(f).name, file_sha256(f)) for f in chunk],
        }
        # the line-of-sight segment beside a Br file (JSOC's R is computed on it)
        beside = {i: p for i, f in enumerate(chunk) if (p := _magnetogram_path(f)) is not None}
        if beside:
            inputs["magnetograms"] = [(i, file_sha256(p)) for i, p in sorted(beside.items())]
        key = _shard_key(dataset, inputs)
        staged: tuple[str, ...] = ()
        if stage_in is not None:
            staged = tuple(f"{key}/inputs/{i}/{Path(f).name}" for i, f in enumerate(chunk))
            if not stage_in.exists(f"{key}/done.json"):
                copies = [*zip(chunk, staged, strict=True)]
                copies += [(p, f"{key}/inputs/{i}/{p.name}") for i, p in beside.items()]
                for path, staged_key in copies:
                    if not stage_in.exists(staged_key):
                        stage_in.put_file(staged_key, Path(path))
        shards.append(IngestShard(dataset, "fits", key, files=chunk, source=source, staged=staged))
    return shards


def _magnetogram_path(br_path: str | Path) -> Path | None:
    name = magnetogram_name(Path(br_path).name)
    path = None if name is None else Path(br_path).with_name(name)
    return path if path is not None and path.is_file() else None


def _shard_inputs(shard: IngestShard, store: ObjectStore) -> Iterator[PatchRecord | Quarantined]:
    if shard.kind == "synthetic":  # a region does not depend on how many follow it
        recipe = {**dict(shard.recipe), "regions": shard.stop_region}
        return synthetic_records(**recipe, first_region=shard.first_region)
    if shard.staged:
        return _staged_fits_records(shard, store)
    return fits_records(map(Path, shard.files), source=shard.source, store=store)


def _staged_fits_records(
    shard: IngestShard, store: ObjectStore
) -> Iterator[PatchRecord | Quarantined]:
    """:func:`fits_records` of a shard's staged copies, fetched from the store into a
    temporary folder under their own names (the name carries the series); a refused file is
    reported under its original path, as a shard of local files reports it."""
    with tempfile.TemporaryDirectory(prefix="sharpseek-shard-") as folder:
        local: list[Path] = []
        for i, (original, key) in enumerate(zip(shard.files, shard.staged, strict=True)):
            path = Path(folder) / str(i) / Path(original).name
            path.parent.mkdir()
            path.write_bytes(store.get_bytes(key))
            local.append(path)
            los_name = magnetogram_name(path.name)  # staged beside it, when there was one
            los_key = f"{key.rsplit('/', 1)[0]}/{los_name}"
            if los_name is not None and store.exists(los_key):
                (path.parent / los_name).write_bytes(store.get_bytes(los_key))
        originals = {str(p): f for p, f in zip(local, shard.files, strict=True)}
        for item in fits_records(local, source=shard.source, store=store):
            if isinstance(item, Quarantined) and item.source in originals:
                original = originals[item.source]  # the reason may name the path too
                reason = item.reason.replace(item.source, original)
                item = Quarantined(original, reason, item.record_id)
            yield item


def ingest_shard(
    settings: Settings, shard: IngestShard, *, store: ObjectStore | None = None
) -> dict[str, Any]:
    """Make one shard's records: read or generate its frames, convert them to model space,
    compute the physics on the float16 images the dataset will hold (exactly what
    :func:`sharpseek.data.dataset.append_records` would compute), and store them under
    ``shard.key`` (``images.npy`` float16 (n, 128, 128), ``rows.parquet`` metadata and
    columns, ``physics.parquet``, ``quarantined.json``, then ``done.json`` last: a shard
    exists once ``done.json`` does).

    Runs on any worker that reaches the store; a shard already made is not made again.
    Returns ``{"key", "records", "quarantined", "cached"}``.
    """
    store = store or open_store(settings)
    done_key = f"{shard.key}/done.json"
    if store.exists(done_key):
        return {**json.loads(store.get_bytes(done_key)), "key": shard.key, "cached": True}
    records: list[PatchRecord] = []
    quarantined: list[Quarantined] = []
    for item in _shard_inputs(shard, store):
        (quarantined if isinstance(item, Quarantined) else records).append(item)
    rows = [{**r.meta, **r.columns} for r in records]
    if records:
        stack = np.stack([r.image for r in records])  # (n, 128, 128)
        images = clip_field(stack, settings.quality.field_clip_gauss).astype(np.float16)
        buffer = io.BytesIO()
        np.save(buffer, images, allow_pickle=False)
        store.put_bytes(f"{shard.key}/images.npy", buffer.getvalue())
        _put_frame(store, f"{shard.key}/rows.parquet", pd.DataFrame(rows))
        # the physics of the stored (float16) values, as the dataset writer defines them
        physics = model_space_annotator(settings)(images.astype(np.float32), rows)
        frame = pd.DataFrame(physics)
        frame.insert(0, "record_id", [r.record_id for r in records])
        _put_frame(store, f"{shard.key}/physics.parquet", frame)
    store.put_bytes(
        f"{shard.key}/quarantined.json",
        json.dumps([[q.source, q.reason, q.record_id] for q in quarantined]).encode(),
    )
    counts = {"records": len(records), "quarantined": len(quarantined)}
    store.put_bytes(done_key, json.dumps(counts).encode())
    return {**counts, "key": shard.key, "cached": False}


def _put_frame(store: ObjectStore, key: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.put_bytes(key, buffer.getvalue())


def _get_frame(store: ObjectStore, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(store.get_bytes(key)))


def shard_items(store: ObjectStore, shard: IngestShard) -> Iterator[PatchRecord | Quarantined]:
    """What a made shard holds, for the dataset writer: its quarantined inputs, then its
    records (float16 images; metadata and columns as the shard stored them)."""
    for source, reason, rid in json.loads(store.get_bytes(f"{shard.key}/quarantined.json")):
        yield Quarantined(source, reason, rid)
    if not store.exists(f"{shard.key}/rows.parquet"):
        return
    images = np.load(io.BytesIO(store.get_bytes(f"{shard.key}/images.npy")), allow_pickle=False)
    for image, row in zip(images, _get_frame(store, f"{shard.key}/rows.parquet").to_dict("records"),
                          strict=True):  # fmt: skip
        yield PatchRecord(image=image, meta=row)


def commit_ingest_shards(
    store: ObjectStore,
    dataset: str,
    shards: Sequence[IngestShard],
    *,
    provenance: dict[str, Any],
    leading: Sequence[Quarantined] = (),
    base: str | None = "latest",
    version: str | None = None,
    overwrite: bool = False,
    delete_shards: bool = True,
) -> AppendResult:
    """Commit made shards into ``dataset`` through the one dataset writer, in shard order.

    The writer (:func:`sharpseek.data.dataset.append_records`, journaled and idempotent) takes the
    physics the shards computed instead of computing it again. Every shard must be made
    first; otherwise nothing is written. ``leading``: inputs refused before any shard (a path
    that does not exist). ``base``, ``version``, ``overwrite``: as
    :func:`sharpseek.data.dataset.append_records`. With ``delete_shards``, the shards' staged
    records are removed once the version is committed.
    """
    missing = [s.key for s in shards if not store.exists(f"{s.key}/done.json")]
    if missing:
        raise RuntimeError(
            f"{len(missing)} of {len(shards)} ingest shards of {dataset!r} were not made "
            f"(first: {missing[0]}); the dataset is unchanged"
        )
    frames = [
        _get_frame(store, f"{s.key}/physics.parquet")
        for s in shards
        if store.exists(f"{s.key}/physics.parquet")
    ]
    physics = (
        pd.concat(frames, ignore_index=True).drop_duplicates("record_id").set_index("record_id")
        if frames
        else pd.DataFrame()
    )

    def annotate(images: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        part = physics.loc[[row["record_id"] for row in rows]]
        return {name: part[name].to_numpy() for name in part.columns}

    def items() -> Iterator[PatchRecord | Quarantined]:
        yield from leading
        for shard in shards:
            yield from shard_items(store, shard)

    result = append_records(
        store, dataset, items(), provenance=provenance, annotate=annotate, base=base,
        version=version, overwrite=overwrite,
    )  # fmt: skip
    if delete_shards:
        for shard in shards:
            store.delete_prefix(shard.key)
    return result
