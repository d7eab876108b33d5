"""Search real SHARPs that look like a query, with the physics side by side (issue 6).

The notebook API behind ``sharpseek search``. A query is an active region as a model-space
image (128 x 128, b = B_r / 1000 G clipped to [-1, 1]) and its SimSiam embedding; it comes
from

- a **latent vector**: a seed of the generator, optionally shifted along physical directions
  (:class:`sharpseek.science.directions.DirectionSet` of the generator version), see
  :meth:`Searcher.latent_query`;
- an **image**: a FITS file (a SHARP ``Br`` segment, preprocessed as ingestion does), a
  ``.npy`` array (B_r in gauss, any size, or a model-space 128 x 128 array), or a PNG written
  by :func:`sharpseek.data.images.png_bytes` (``sharpseek search --save-query-png``, the UI's
  Export page), which carries its gauss scale in its metadata; any other PNG is refused (a
  colour-mapped picture cannot be turned back into gauss), see :meth:`Searcher.image_query`;
- an **indexed record**: its stored embedding, :meth:`Searcher.record_query`.

A generated query's embedding (a latent query, an image the caller says was generated, the
images of :meth:`Searcher.nearest_regions`) is moved onto the indexed frames' embedding
distribution by the stored :class:`~sharpseek.search.query_map.GeneratedQueryMap` of the models
(:attr:`Searcher.query_map`; ``settings.retrieval``): the cure for the hubs such queries
otherwise all find (docs/search.md, "Hubs"). Real queries are searched as embedded.

:meth:`Searcher.hits` sends the embedding and the filter (:class:`SearchFilter`) to the
index in one request, one best frame per region by default, and returns the index's
:class:`~sharpseek.search.index.SearchHit` list; :meth:`Searcher.search` returns the same as a
:class:`pandas.DataFrame` (:func:`sharpseek.search.results.hits_frame`): one row per match with
its identity, T_REC, NOAA numbers, the Euclidean distance in the embedding space (``distance``,
smaller is closer), a JSOC link, and the query's and the match's parameters side by side
(``query_tuf``, ``match_tuf``, ...).

The paper's baselines (nearest neighbour in the normalised (TUF, R, PSEP) space, by
Euclidean or by Mahalanobis distance): :class:`sharpseek.search.baselines.PhysicsBaseline` and
:meth:`Searcher.baseline_search`, on a dataset's manifest.

Real records: sunpy is not a dependency, so :meth:`Searcher.record_fits` gives the raw FITS
file of a record (open it with ``astropy.io.fits`` or, where installed,
``sunpy.map.Map(path)``); :meth:`Searcher.record_image` gives its model-space image.

See docs/search.md.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sharpseek.config import Settings, get_settings
from sharpseek.data.dataset import dataset_names, dataset_versions, load_dataset
from sharpseek.data.fits import read_sharp
from sharpseek.data.flare_windows import parse_record_id
from sharpseek.data.images import ImageInputError, check_model_image, load_image, png_is_generated
from sharpseek.data.local_store import LocalStore
from sharpseek.data.native import magnetogram_beside, native_columns
from sharpseek.data.store import open_store
from sharpseek.physics.definitions import MODEL_SIZE, NATIVE_PARAMETERS, SHOWN_PARAMETERS
from sharpseek.physics.parameters import compute_parameters
from sharpseek.search.baselines import PhysicsBaseline, _noaa_lists, baseline_features, filter_mask
from sharpseek.search.index import (
    EmptyIndexError,
    SearchFilter,
    SearchHit,
    VectorIndex,
    open_index_from_settings,
)
from sharpseek.search.index.points import region_key
from sharpseek.search.outlook import query_outlook
from sharpseek.search.picture import PictureRerank
from sharpseek.search.query_map import generated_vectors, load_query_map
from sharpseek.search.results import Query, _describe, _float, hits_frame
from sharpseek.serving.backends import TorchServeBackend, open_backend

log = logging.getLogger(__name__)

__all__ = ["Searcher", "nearest_regions", "nearest_sharps"]


def _native_of_file(path: Path) -> dict[str, Any]:
    """Native-scale values of a real SHARP file (and its magnetogram beside it, if any)."""
    sharp = read_sharp(path)
    meta = {**sharp.meta, "dsun_obs": sharp.header.get("DSUN_OBS")}
    return native_columns(sharp.data, meta, los=magnetogram_beside(path, sharp.data.shape))


def _parameters(images: np.ndarray) -> list[dict[str, float]]:
    return _rows(compute_parameters(np.asarray(images, np.float32)), len(images))


def _rows(values: Mapping[str, Any], n: int) -> list[dict[str, float]]:
    """Per image, its parameters from :func:`~sharpseek.physics.parameters.compute_parameters`
    columns."""
    return [
        {k: float(v[i]) for k, v in values.items() if k != "bipolar"}
        | {"bipolar": bool(values["bipolar"][i])}
        for i in range(n)
    ]


class Searcher:
    """Queries, searches and baselines on the configured index and models.

    The models are reached only through a :class:`~sharpseek.serving.backends.ModelBackend`
    (``open_backend(settings)``: in-process, or TorchServe when ``settings.serve.backend``
    says so); the index and the store open on first use, from ``settings``. Give any of them
    to use another (tests, notebooks, the UI).

    Examples
    --------
    >>> searcher = Searcher.from_settings()                        # doctest: +SKIP
    >>> q = searcher.latent_query(7, shifts={"tuf": 2.0})          # doctest: +SKIP
    >>> searcher.search(q, k=10, filter=SearchFilter(mu=(0.8, 1)))  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        index: VectorIndex | None = None,
        backend=None,
        store=None,
    ) -> None:
        self.settings = settings or get_settings()
        self._index = index
        self._backend = backend
        self._own_backend = backend is None
        self._store = store
        self._versions: dict[str, str | None] | None = None
        self._query_map: Any = None
        self._datasets: dict[tuple[str, str], tuple[Any, dict[str, int]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **parts: Any) -> Searcher:
        return cls(settings, **parts)

    # ------------------------------------------------------------------ parts
    @property
    def store(self):
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    @property
    def backend(self):
        """The :class:`~sharpseek.serving.backends.ModelBackend` generating and embedding
        queries."""
        if self._backend is None:
            self._backend = open_backend(self.settings)
        return self._backend

    def versions(self) -> dict[str, str | None]:
        """``{"gan", "encoder", "directions"}`` of the backend (asked once), and which
        backend answers (``"backend"``: ``inprocess`` or ``torchserve``)."""
        if self._versions is None:
            kind = "torchserve" if isinstance(self.backend, TorchServeBackend) else "inprocess"
            self._versions = dict(self.backend.versions()) | {"backend": kind}
        return self._versions

    @property
    def encoder_version(self) -> str:
        """The version of the encoder that embeds the queries."""
        return str(self.versions()["encoder"])

    @property
    def query_map(self):
        """The :class:`~sharpseek.search.query_map.GeneratedQueryMap` of the backend's models
        (fitted and stored on first use), or None when ``settings.retrieval.query_map`` is off."""
        if self._query_map is None:
            live = self.index.live()
            if live is not None:  # an index without the space: say so before fitting its map
                live.using(self.query_space(generated=True))
            self._query_map = (
                load_query_map(self.settings, self.backend, self.store, index=self.index) or False
            )
        return self._query_map or None

    def query_space(self, *, generated: bool) -> str:
        """The embedding space a query searches (:mod:`sharpseek.search.spaces`): generated
        images ``settings.retrieval.generated_space``, real ones ``region``."""
        return self.settings.retrieval.generated_space if generated else "region"

    def query_vectors(self, images: np.ndarray, *, generated: bool) -> np.ndarray:
        """Search vectors (n, dim) of model-space images (n, 128, 128) in
        :meth:`query_space`: a real image's embedding; a generated image's vector in the
        generated space, moved by :attr:`query_map`
        (:func:`sharpseek.search.query_map.generated_vectors`)."""
        if not generated:
            return np.asarray(self.backend.embed(images), np.float32)
        space = self.query_space(generated=True)
        return generated_vectors(self.backend, images, self.query_map, space=space)

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = open_index_from_settings(self.settings)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._own_backend and self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries
    def latent_query(
        self,
        seed: int | None = None,
        *,
        z: np.ndarray | None = None,
        shifts: Mapping[str, float] | None = None,
        hold: Sequence[str] = (),
    ) -> Query:
        """The generated active region of a seed (or of ``z``), shifted along directions.

        ``shifts`` maps a parameter to a step eps in latent units along its unit direction
        (z' = z + eps n, SCIENCE.md), each direction conditioned on the ``hold`` parameters:
        one backend call (:func:`sharpseek.science.directions.apply_shifts` behind it). The
        backend's generator refuses a shift when no directions were fitted for its version
        (``sharpseek directions fit``); a bad latent or shift raises a ``ValueError``
        (:class:`~sharpseek.serving.backends.RequestError`) naming it.
        """
        if (seed is None) == (z is None):
            raise ValueError("give a seed or a latent vector z (one of them)")
        result = self.backend.generate(
            None if z is None else np.asarray(z, np.float32).reshape(1, -1),
            seeds=None if seed is None else [int(seed)],
            shifts=dict(shifts or {}),
            hold=list(hold),
        )
        words = [f"seed {seed}" if seed is not None else "latent vector"]
        words += [f"{name} {float(eps):+g}" for name, eps in (shifts or {}).items()]
        if hold:
            words.append(f"holding {', '.join(hold)}")
        image = result.images[0]
        return Query(
            vector=self.query_vectors(image[None], generated=True)[0],
            encoder_version=self.encoder_version,
            kind="latent",
            description=", ".join(words),
            image=image,
            parameters=_rows(result.parameters, 1)[0],
            latent=result.z[0],
            space=self.query_space(generated=True),
            generated=True,
        )

    def image_query(
        self,
        image: str | Path | np.ndarray,
        *,
        units: Literal["gauss", "model"] = "model",
        generated: bool = False,
    ) -> Query:
        """A query from an image: a path (FITS, .npy, sharpseek PNG; see :func:`load_image`)
        or an array in ``units`` (default model space). ``generated``: the image came from the
        generator (e.g. the UI's shifted image, or a PNG whose metadata says so), so its
        embedding is moved by :attr:`query_map`; a real patch's is not."""
        is_path = isinstance(image, str | Path)
        b = load_image(image, units=units, field_clip_gauss=self.settings.quality.field_clip_gauss)
        if is_path and str(image).lower().endswith(".png"):
            generated = generated or png_is_generated(image)  # e.g. --save-query-png's
        vector = self.query_vectors(b[None], generated=generated)[0]
        parameters: dict[str, Any] = _parameters(b[None])[0]
        if is_path and str(image).lower().endswith((".fits", ".fits.gz", ".fts", ".fit")):
            parameters.update(_native_of_file(Path(image)))  # a real patch: its native values
        return Query(
            vector=vector,
            encoder_version=self.encoder_version,
            kind="image",
            description=str(image) if is_path else "image",
            image=b,
            parameters=parameters,
            space=self.query_space(generated=generated),
            generated=generated,
        )

    def record_query(self, record_id: str) -> Query:
        """A query from an indexed record: its stored embedding and parameters."""
        found = self.index.get([record_id], with_vector=True)
        if not found:
            raise KeyError(f"record {record_id!r} is not in the live collection of the index")
        record = found[0]
        payload = record.payload
        return Query(
            vector=record.vector,
            encoder_version=str(payload.get("encoder_version")),
            kind="record",
            description=record_id,
            image=None,
            parameters={k: _float(payload.get(k)) for k in (*SHOWN_PARAMETERS, *NATIVE_PARAMETERS)}
            | {"r_jsoc_segment": payload.get("r_jsoc_segment")},
            region=str(payload.get("region")),
            t_rec=pd.Timestamp(parse_record_id(record_id)[2]),
        )

    # ------------------------------------------------------------------ search
    def hits(
        self,
        query: Query,
        *,
        k: int = 10,
        filter: SearchFilter | None = None,
        per_region: int = 1,
        group_by_region: bool = True,
        include_own_region: bool = False,
        exact: bool | None = None,
    ) -> list[SearchHit]:
        """The real frames nearest to ``query`` in the embedding space, best first, as
        :class:`~sharpseek.search.index.SearchHit` (``distance``: Euclidean, smaller is closer).

        One request to the index, with the filter inside. By default one best frame per
        region (``k`` regions); ``per_region`` frames of each; ``group_by_region=False``
        for ``k`` frames. A record query leaves its own region out unless
        ``include_own_region``. A generated query with its image asks for
        ``settings.retrieval.rerank_candidates`` hits (when more than ``k``) and keeps the
        ``k`` best by embedding and picture distance together
        (:mod:`sharpseek.search.picture`; each hit's ``distance`` stays the embedding's).

        Raises
        ------
        EmptyIndexError, EncoderMismatchError, ValueError (see :meth:`VectorIndex.search`).
        """
        spec = filter
        if query.region is not None and not include_own_region:
            spec = _with_excluded_region(spec, query.region)
        rerank = PictureRerank.from_settings(self.settings)
        if not (query.generated and query.image is not None):
            rerank = None
        found = self.index.search(
            query.vector,
            limit=k if rerank is None else max(k, rerank.candidates),
            filter=spec,
            group_by_harp=group_by_region,
            per_region=per_region,
            exact=exact,
            encoder_version=query.encoder_version,
            space=query.space,
        )
        if rerank is None or len(found) < 2:
            return found
        pictures = rerank.pictures(self.frame_images([h.record_id for h in found]))
        distances = np.array([h.distance for h in found])
        ordered = [found[i] for i in rerank.order(query.image, pictures, distances)]
        if not group_by_region:
            return ordered[:k]
        # regions in the order of their best-scored frame; a region's frames as the index gave them
        regions = list(dict.fromkeys(h.region for h in ordered))[:k]
        return [h for region in regions for h in found if h.region == region]

    def search(
        self,
        query: Query,
        *,
        k: int = 10,
        filter: SearchFilter | None = None,
        per_region: int = 1,
        group_by_region: bool = True,
        include_own_region: bool = False,
        exact: bool | None = None,
    ) -> pd.DataFrame:
        """:meth:`hits` as a table, best first.

        Returns
        -------
        DataFrame, one row per match: ``rank``, ``record_id``, ``series``, ``harpnum``,
        ``region``, ``t_rec`` (TAI), ``noaa_ars`` (list), ``distance`` (Euclidean distance
        in the embedding space, smaller is closer: :attr:`SearchHit.distance`),
        ``lat_fwt``, ``lon_fwt``, ``mu``, ``jsoc_url`` (None for synthetic records),
        ``dataset_version``, and ``query_<p>`` / ``match_<p>`` for each of
        :data:`sharpseek.physics.definitions.SHOWN_PARAMETERS`. ``attrs["query"]`` describes the
        query.

        Raises
        ------
        EmptyIndexError, EncoderMismatchError, ValueError (see :meth:`VectorIndex.search`).
        """
        hits = self.hits(
            query,
            k=k,
            filter=filter,
            per_region=per_region,
            group_by_region=group_by_region,
            include_own_region=include_own_region,
            exact=exact,
        )
        return hits_frame(query, hits, jsoc_base=self.settings.jsoc.server_url)

    def nearest_regions(
        self,
        images: np.ndarray,
        k: int = 3,
        *,
        filter: SearchFilter | None = None,
        generated: bool = True,
    ) -> list[pd.DataFrame]:
        """For each model-space image (n, 128, 128), the best frames of its ``k`` nearest
        real regions (one :meth:`search` result per image). For catalogues of generated ARs
        (``generated``: their embeddings are moved by :attr:`query_map`).
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3:
            raise ImageInputError(f"images must have shape (n, 128, 128), got {images.shape}")
        for i, image in enumerate(images):
            check_model_image(image, f"image {i}")
        vectors = self.query_vectors(images, generated=generated)
        params = _parameters(images)
        out = []
        for i in range(len(images)):
            query = Query(
                vector=vectors[i],
                encoder_version=self.encoder_version,
                kind="image",
                description=f"image {i}",
                image=images[i],
                parameters=params[i],
                space=self.query_space(generated=generated),
                generated=generated,
            )
            out.append(self.search(query, k=k, filter=filter))
        return out

    def outlook(
        self,
        query: Query,
        *,
        k: int | None = None,
        threshold: str | None = None,
        hours: int | None = None,
    ):
        """The look-alike flare outlook of ``query``
        (:func:`sharpseek.search.outlook.query_outlook`): the share of its ``k`` nearest regions
        whose outcome held a flare >= ``threshold``; a record query counts only neighbours whose
        outcome had closed by its T_REC, never its own region, and only regions of its own kind
        (real or synthetic); an image query counts both kinds and says how many are synthetic.
        Defaults: ``settings.flares.outlook_k``, ``outlook_class``, ``outlook_hours``."""
        flares = self.settings.flares
        return query_outlook(
            self.index,
            query.vector,
            k=flares.outlook_k if k is None else k,
            threshold=flares.outlook_class if threshold is None else threshold,
            hours=flares.outlook_hours if hours is None else hours,
            query_t_rec=query.t_rec,
            query_region=query.region,
            encoder_version=query.encoder_version,
            space=query.space,
            kind=(
                None
                if query.region is None
                else "synthetic"
                if str(query.region).startswith("synthetic:")
                else "real"
            ),
        )

    def baseline_search(
        self,
        query: Query,
        table: pd.DataFrame,
        *,
        metric: Literal["euclidean", "mahalanobis"] = "euclidean",
        k: int = 10,
        filter: SearchFilter | None = None,
        per_region: int = 1,
    ) -> pd.DataFrame:
        """The paper's baseline: nearest frames of ``table`` (a manifest) to the query in the
        (TUF, R, PSEP) space, normalised (``euclidean``) or by ``mahalanobis`` distance with
        the covariance of all of ``table``'s frames; ``distance`` is that distance. The filter
        has the index's semantics (:func:`filter_mask`). The table's columns are those of
        :meth:`search`."""
        baseline = PhysicsBaseline.fit(table)
        q = baseline_features(pd.DataFrame([query.parameters]))
        dist = baseline.distances(q, metric)[0]
        spec = filter
        if query.region is not None:
            spec = _with_excluded_region(spec, query.region)
        keep = np.flatnonzero(filter_mask(table, spec))
        order = keep[np.argsort(dist[keep], kind="stable")]
        chosen: list[int] = []
        counts: dict[str, int] = {}
        for i in order:
            region = region_key(str(table["series"].iloc[i]), int(table["harpnum"].iloc[i]))
            if counts.get(region, 0) >= per_region:
                continue
            counts[region] = counts.get(region, 0) + 1
            chosen.append(int(i))
            if len(counts) >= k and all(c >= per_region for c in counts.values()):
                break
        hits = []
        for i in chosen:
            r = table.iloc[i]
            series, harpnum = str(r["series"]), int(r["harpnum"])
            payload = r.to_dict() | {
                "series": series,
                "noaa_ars": _noaa_lists(table.iloc[[i]])[0],
                "dataset_version": None,
            }
            hits.append(
                SearchHit(
                    record_id=str(r.get("record_id")),
                    distance=float(dist[i]),
                    harpnum=harpnum,
                    t_rec=pd.Timestamp(r["t_rec"]),
                    region=region_key(series, harpnum),
                    payload=payload,
                )
            )
        frame = hits_frame(query, hits, jsoc_base=self.settings.jsoc.server_url)
        frame.attrs["query"] = _describe(query) | {"method": metric}
        return frame

    # ------------------------------------------------------------------ records
    def _loaded(self, name: str, version: str) -> tuple[Any, dict[str, int]]:
        """A dataset version and its record ids' manifest rows, loaded once per searcher."""
        key = (name, version)
        if key not in self._datasets:
            ds = load_dataset(self.store, name, version)
            ids = ds.manifest["record_id"].astype(str).to_numpy()
            self._datasets[key] = (ds, {r: i for i, r in enumerate(ids)})
        return self._datasets[key]

    def _dataset_of(self, record_id: str):
        for ds, rows in self._datasets.values():
            if record_id in rows:
                return ds, rows[record_id]
        found = self.index.get([record_id])
        wanted = str(found[0].payload.get("dataset_version")) if found else None
        for name in dataset_names(self.store):
            versions = dataset_versions(self.store, name)
            for version in ([wanted] if wanted in versions else []) + versions[::-1]:
                ds, rows = self._loaded(name, version)
                if record_id in rows:
                    return ds, rows[record_id]
        raise KeyError(f"record {record_id!r} is in no dataset of {self.store.describe()}")

    def record_image(self, record_id: str) -> np.ndarray:
        """The model-space image (128, 128) float32 of a record, from its dataset."""
        ds, row = self._dataset_of(record_id)
        return ds.images([row])[0]

    def frame_images(self, record_ids: Sequence[str]) -> np.ndarray:
        """The model-space images (n, 128, 128) float32 of indexed records, from their
        datasets (each dataset version loaded once per searcher, its frames read in one call)."""
        out = np.empty((len(record_ids), MODEL_SIZE, MODEL_SIZE), np.float32)
        groups: dict[int, tuple[Any, list[int], list[int]]] = {}
        for i, record_id in enumerate(record_ids):
            ds, row = self._dataset_of(record_id)
            _, positions, rows = groups.setdefault(id(ds), (ds, [], []))
            positions.append(i)
            rows.append(row)
        for ds, positions, rows in groups.values():
            out[positions] = ds.images(rows)
        return out

    def record_fits(self, record_id: str) -> Path | None:
        """The raw FITS file of a real record (a local path; downloaded to a temporary
        folder from an S3 store), or None for a synthetic record or one ingested without
        keeping its file. Open it with ``astropy.io.fits.open(path)`` or, where sunpy is
        installed, ``sunpy.map.Map(path)`` (sunpy is not a dependency of sharpseek)."""
        ds, row = self._dataset_of(record_id)
        r = ds.manifest.iloc[row]
        source = str(r.get("source") or "")
        if ":" not in source:
            return None
        key = r.get("raw_key")
        if not isinstance(key, str) or not key:  # a dataset written before raw_key
            key = f"raw/{r['series']}/{int(r['harpnum'])}/{source.split(':', 1)[1]}"
        if not self.store.exists(key):
            return None

        if isinstance(self.store, LocalStore):
            return self.store.root / key
        name = source.split(":", 1)[1] if ":" in source else Path(key).name
        target = Path(tempfile.mkdtemp(prefix="sharpseek-fits-")) / name
        return self.store.get_file(key, target)


def nearest_regions(
    images: np.ndarray,
    k: int = 3,
    *,
    settings: Settings | None = None,
    filter: SearchFilter | None = None,
    searcher: Searcher | None = None,
) -> list[pd.DataFrame]:
    """For each model-space image (n, 128, 128), its ``k`` nearest real regions (best
    frame of each) in the configured index: the hook of the generated-AR catalogue."""
    if searcher is not None:
        return searcher.nearest_regions(images, k, filter=filter)
    with Searcher(settings) as own:
        return own.nearest_regions(images, k, filter=filter)


def nearest_sharps(
    k: int = 3,
    *,
    settings: Settings | None = None,
    filter: SearchFilter | None = None,
    searcher: Searcher | None = None,
):
    """The catalogue's hook (:data:`sharpseek.science.catalogue.NearestFn`): a function from
    model-space images (n, 128, 128) to, per image, the record ids of its ``k`` nearest real
    regions' best frames. Images are clipped to [-1, 1] first (the model's input space). With
    nothing indexed yet it returns empty lists and logs a warning (a catalogue is still useful
    without); an encoder-version mismatch is an error."""

    def find(images: np.ndarray) -> list[list[str]]:
        images = np.clip(np.asarray(images, dtype=np.float32), -1.0, 1.0)
        own = searcher is None
        active = Searcher(settings) if own else searcher
        try:
            if active.index.count() == 0:  # before loading any model: nothing to search
                raise EmptyIndexError(f"nothing indexed in {active.settings.index_dir}")
            frames = active.nearest_regions(images, k, filter=filter)
        except EmptyIndexError as err:
            log.warning("no nearest SHARPs: %s", err)
            return [[] for _ in range(len(images))]
        finally:
            if own:
                active.close()
        return [frame["record_id"].tolist() for frame in frames]

    return find


def _with_excluded_region(spec: SearchFilter | None, region: str) -> SearchFilter:
    spec = spec or SearchFilter()
    regions = tuple(spec.exclude_regions or ()) + (region,)
    return replace(spec, exclude_regions=regions)
