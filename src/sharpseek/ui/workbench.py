"""The UI's view model: one object that the Streamlit pages call for everything they show.

:class:`Workbench` holds the models, directions and index a deployment is configured for
(through the library's interfaces, so the same pages run embedded or against servers) and
turns UI requests into library calls: a grid of generated active regions, a shifted image
with its polarity maps and parameters, a target solved, a search with filters, the data
behind the filter histograms, the status of every part. It holds no Streamlit code and no
physics: the pages stay thin and this is unit-tested without a browser.

Every failure a user can cause (a bad upload, a filter the index refuses, a server that is
down) raises an ordinary exception with a message naming the input; the pages show it and
keep their state.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.config import Settings
from sharpseek.data.dataset import dataset_names, dataset_versions, latest_version, load_dataset
from sharpseek.data.images import check_model_image
from sharpseek.data.store import open_store
from sharpseek.models.inference import GeneratorModel
from sharpseek.physics.definitions import NATIVE_PARAMETERS, SHIFT_PARAMETERS
from sharpseek.physics.parameters import compute_parameters, polarity_maps
from sharpseek.science.directions import Target, configured_strength, solve_targets
from sharpseek.science.flare_direction import FLARE_DIRECTION
from sharpseek.science.inversion import invert_configured, representation_warning
from sharpseek.search.index import SearchFilter, SearchHit, open_index_from_settings
from sharpseek.search.searcher import Searcher
from sharpseek.serving.backends import (
    BackendError,
    InProcessBackend,
    TorchServeBackend,
    open_backend,
)

__all__ = ["Rendered", "SearchView", "Workbench"]

log = logging.getLogger(__name__)

#: Payload fields a search can be filtered on from the UI (histogrammed over indexed data).
FILTER_FIELDS = (
    "tuf", "r", "psep", "tpf", "tnf", "tilt", "sigma", "grad",  # model space
    "flux_mx", "psep_mm", "tilt_cea", "joy_tilt_cea", "r_jsoc", "flux_imbalance",  # native
)  # fmt: skip


@dataclass
class Rendered:
    """One image and everything the Shift page draws of it.

    ``image`` (128, 128) float32 model space; ``params`` every value of
    :func:`~sharpseek.physics.parameters.compute_parameters` (model units); ``pos``, ``neg``,
    ``region`` the bool polarity masks and R's region M (128, 128); ``seconds`` the time it took;
    ``z`` (latent_dim,) the latent vector it was generated from (None for a real patch).
    """

    image: np.ndarray
    params: dict[str, float]
    pos: np.ndarray
    neg: np.ndarray
    region: np.ndarray
    seconds: float = 0.0
    z: np.ndarray | None = None

    @property
    def centroids(self) -> tuple[float, float, float, float]:
        p = self.params
        return (p["pos_x"], p["pos_y"], p["neg_x"], p["neg_y"])


@dataclass
class SearchView:
    """What the Search page shows of one search: the matches (best first), the query's
    parameters (model units, plus a real patch's native values), the query image (128, 128)
    and the look-alike flare outlook (None, with ``outlook_error`` saying why)."""

    matches: list[SearchHit]
    query_params: dict[str, Any]
    query_image: np.ndarray
    outlook: Any = None
    outlook_error: str | None = None


def render(image: np.ndarray) -> Rendered:
    """Measure one model-space image and its polarity maps (one batched call each)."""
    start = time.perf_counter()
    image = check_model_image(image, "image")
    params = {k: float(v[0]) for k, v in compute_parameters(image[None]).items()}
    pos, neg, region = (m[0] for m in polarity_maps(image[None]))
    return Rendered(image, params, pos, neg, region, time.perf_counter() - start)


class Workbench:
    """Models, directions and index of one deployment, behind the calls the pages make.

    Models are reached only through :func:`sharpseek.serving.backends.open_backend` (in-process or
    TorchServe, ``settings.serve.backend``), search and indexed records only through
    :class:`sharpseek.search.searcher.Searcher`. The directions (slider list, calibration, targets)
    are the stored :class:`~sharpseek.science.directions.DirectionSet` the backend serves
    (``backend.load_directions()``).

    Parameters
    ----------
    settings : Settings
    backend : optional
        A :class:`~sharpseek.serving.backends.ModelBackend`; by default ``open_backend(settings)``.
    index, store : optional
        A :class:`~sharpseek.search.index.VectorIndex` and a store; by default from the settings.
    """

    def __init__(self, settings: Settings, *, backend=None, index=None, store=None):
        self.settings = settings
        self.store = store if store is not None else open_store(settings)
        self.backend = backend if backend is not None else open_backend(settings)
        self._index = index
        self._searcher = None
        self._model_versions: dict[str, str | None] | None = None
        self._directions: Any = None
        self._directions_error: str | None = None
        self._inversion_generator = None
        self._datasets: dict[str, Any] = {}

    # ------------------------------------------------------------------ parts, loaded lazily
    def model_versions(self) -> dict[str, str | None]:
        """``{"gan", "encoder", "directions"}`` the backend answers with (asked once)."""
        if self._model_versions is None:
            self._model_versions = dict(self.backend.versions())
        return self._model_versions

    @property
    def gan_version(self) -> str:
        return str(self.model_versions()["gan"])

    @property
    def searcher(self):
        """The :class:`~sharpseek.search.searcher.Searcher` on the configured index, embedding
        through the backend."""
        if self._searcher is None:
            self._searcher = Searcher(
                self.settings, index=self.index, backend=self.backend, store=self.store
            )
        return self._searcher

    @property
    def index(self):
        """The configured :class:`~sharpseek.search.index.VectorIndex` (embedded or a server)."""
        if self._index is None:
            self._index = open_index_from_settings(self.settings)
        return self._index

    @property
    def directions(self):
        """The served GAN's :class:`~sharpseek.science.directions.DirectionSet`
        (:meth:`~sharpseek.serving.backends.ModelBackend.load_directions`: the set the backend
        shifts with), or None (see :attr:`directions_error` for why)."""
        if self._directions is None and self._directions_error is None:
            try:
                self._directions = self.backend.load_directions()
            except (FileNotFoundError, ValueError, BackendError) as err:
                self._directions_error = str(err)
        return self._directions

    @property
    def directions_error(self) -> str | None:
        _ = self.directions
        return self._directions_error

    def close(self) -> None:
        self._searcher = None
        if self._index is not None:
            self._index.close()
            self._index = None
        self.backend.close()

    # ------------------------------------------------------------------ versions and status
    def versions(self) -> dict[str, str | None]:
        """GAN, directions and index versions served now (None where there is none)."""
        return {
            "gan": self.gan_version,
            "directions": self.directions_version(),
            "index": self._index_version(),
        }

    def directions_version(self) -> str | None:
        """:attr:`~sharpseek.science.directions.DirectionSet.version` of the loaded directions
        (hashed once: the URL names it after every update)."""
        ds = self.directions
        if ds is None:
            return None
        if getattr(self, "_directions_version", None) is None:
            self._directions_version = ds.version
        return self._directions_version

    def _index_version(self) -> str | None:
        try:
            live = self.index.live()
        except Exception as err:  # a server that is down: the index part reports it
            log.warning("index unavailable: %s", err)
            return None
        return None if live is None else live.name

    def model_backend(self) -> str:
        """Which model backend answers, in words: in-process, or TorchServe at its URL."""
        if isinstance(self.backend, TorchServeBackend):
            return f"TorchServe at {self.backend.url}"
        return "in-process (embedded)"

    def status(self) -> dict[str, Any]:
        """Which backends are in use, model and index versions, records indexed, last ingest."""
        out: dict[str, Any] = {"home": str(self.settings.home)}
        try:
            versions = self.model_versions()
            out["models"] = {
                "backend": self.model_backend(),
                "gan": versions["gan"],
                "encoder": versions["encoder"],
            }
        except Exception as err:  # a TorchServe that is down: the models part says so
            out["models"] = {"backend": self.model_backend(), "error": str(err)}
        if "error" in out["models"]:
            out["directions"] = "unknown: the models are unavailable"
        else:
            out["directions"] = self.versions()["directions"] or self.directions_error
        try:
            status = self.index.status()
            live = next((c for c in status["collections"] if c["live"]), None)
            out["index"] = {
                "backend": status["backend"],
                "where": _index_location(self.settings, status["backend"]),
                "live": status["live"],
                "records": live["points"] if live else 0,
                "encoder": live["encoder_version"] if live else None,
                "dataset_versions": live["dataset_versions"] if live else [],
            }
        except Exception as err:
            out["index"] = {"error": f"index unavailable: {err}"}
        out["store"] = self.store.describe()
        out["last_ingest"] = self.last_ingest()
        return out

    def last_ingest(self) -> dict[str, str] | None:
        """The newest dataset version written to the store: name, version, created (UTC)."""
        newest = None
        for name in dataset_names(self.store):
            version = latest_version(self.store, name)
            if version is None:
                continue
            info = self._dataset(name, version).info
            created = str(info.get("created", ""))
            if newest is None or created > newest["created"]:
                newest = {"dataset": name, "version": version, "created": created}
        return newest

    # ------------------------------------------------------------------ generate and shift
    def grid(self, seeds: Sequence[int]) -> np.ndarray:
        """Images of the seeds' latent vectors, (n, 128, 128) float32."""
        return self.backend.generate(seeds=list(seeds), parameters=False).images

    def latent(self, seed: int) -> np.ndarray:
        """z of a seed, (latent_dim,) float32 (as the backend draws it)."""
        return self.backend.generate(seeds=[int(seed)], parameters=False).z[0]

    def shift_parameters(self) -> list[str]:
        """Directions offered as sliders: those the direction set has, in a fixed order (the
        flare-productive direction last, when fitted: :mod:`sharpseek.science.flare_direction`)."""
        ds = self.directions
        order = (*SHIFT_PARAMETERS, FLARE_DIRECTION)
        return [] if ds is None else [p for p in order if p in ds.boundaries]

    def render(
        self,
        *,
        seed: int | None = None,
        z: np.ndarray | None = None,
        shifts: dict[str, float] | None = None,
        hold: Sequence[str] = (),
    ) -> Rendered:
        """The image of a seed (or of ``z``) shifted by ``shifts`` (parameter -> eps) with
        the ``hold`` parameters held (one backend call: generate + measure), and its
        polarity maps. A direction that is itself held is not shifted (it is a condition
        for the others)."""
        start = time.perf_counter()
        moving = {p: float(e) for p, e in (shifts or {}).items() if e and p not in hold}
        result = self.backend.generate(
            None if z is None else np.asarray(z, np.float32)[None],
            seeds=None if seed is None else [int(seed)],
            shifts=moving,
            hold=list(hold) if moving else [],
        )
        out = _measured(result.images[0], {k: v[0] for k, v in result.parameters.items()})
        out.z = result.z[0]
        out.seconds = time.perf_counter() - start
        return out

    def strength(self, parameter: str):
        """:class:`~sharpseek.science.directions.DirectionStrength` of a slider's direction by the
        settings' rule (``directions.strong_*``): validation accuracy, what +1.5 does by the
        calibration, weak or strong. None without directions."""
        ds = self.directions
        if ds is None or parameter not in ds.boundaries:
            return None
        return configured_strength(ds, parameter, self.settings.directions)

    def calibrated(self, parameter: str, eps: float) -> tuple[float, float, float] | None:
        """Median (16th, 84th percentiles) of ``parameter`` over the calibration sample
        shifted by ``eps`` along its own direction: what this slider position means in
        physical terms, for a typical z. None when the direction is not calibrated."""
        ds = self.directions
        curves = None if ds is None else ds.calibration.get(parameter)
        if not curves or parameter not in curves:
            return None
        grid = np.asarray(curves["eps"], dtype=float)
        c = curves[parameter]
        return tuple(
            float(np.interp(eps, grid, np.asarray(c[q], dtype=float)))
            for q in ("median", "p16", "p84")
        )  # type: ignore[return-value]

    def eps_limit(self) -> float:
        """The sliders' and the target solver's one range, +-eps: the largest |eps| the
        directions were calibrated over (``sharpseek directions calibrate``), else the
        settings' ``directions.calibration_eps_max``. Beyond it nothing was measured."""
        ds = self.directions
        grids = [c["eps"] for c in (ds.calibration.values() if ds is not None else []) if c]
        if grids:
            return float(max(np.max(np.abs(g)) for g in grids))
        return float(self.settings.directions.calibration_eps_max)

    def solve(self, z: np.ndarray, targets: str, hold: Sequence[str] = (), *, max_eps: float = 6.0):
        """Parse targets such as ``tuf=2x, r>p90`` and solve them from ``z`` with
        |eps| <= ``max_eps`` (:func:`~sharpseek.science.directions.solve_targets`, generating
        through the backend); returns its TargetResult."""
        parsed = [Target.parse(t) for t in targets.replace(";", ",").split(",") if t.strip()]
        if not parsed:
            raise ValueError("no target given; write e.g. 'tuf=2x' or 'psep=40, r>p90'")
        ds = self._require_directions()

        def generate(latents: np.ndarray) -> np.ndarray:
            return self.backend.generate(np.asarray(latents, np.float32), parameters=False).images

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # they come back in result.warnings
            return solve_targets(
                generate,
                ds,
                np.asarray(z, np.float64),
                parsed,
                hold=[h for h in hold if h not in {t.parameter for t in parsed}],
                max_eps=max_eps,
            )

    def _require_directions(self):
        ds = self.directions
        if ds is None:
            raise RuntimeError(self.directions_error or "no directions")
        return ds

    # ------------------------------------------------------------------ inversion
    def invert(self, image: np.ndarray, *, progress: bool = False):
        """GAN inversion of a real patch (:func:`sharpseek.science.inversion.invert_configured`, the
        settings' ``directions.inversion_*``): its z_hat, reconstruction and error; see
        :meth:`representation_warning` for whether the GAN can represent it.

        Inversion needs the generator's gradients, so it runs on the GAN in this process:
        the in-process backend's own, or (with TorchServe) the settings' checkpoint, which
        must be the version the server answers with.
        """
        image = check_model_image(image, "image")
        if isinstance(self.backend, InProcessBackend):
            generator = self.backend.generator
        else:
            if self._inversion_generator is None:
                local = GeneratorModel.from_settings(self.settings, store=self.store)
                if local.version != self.gan_version:
                    raise RuntimeError(
                        f"GAN inversion runs here on checkpoint {local.version}, but the server "
                        f"answers with {self.gan_version}: point settings.models at the "
                        "served GAN to invert real patches"
                    )
                self._inversion_generator = local
            generator = self._inversion_generator
        return invert_configured(generator, image, self.settings.directions, progress=progress)

    def representation_warning(self, result) -> str | None:
        """The plain warning when the GAN cannot represent an inverted patch (its relative
        error above ``directions.inversion_warn_relative``), else None."""
        return representation_warning(result, self.settings.directions)

    # ------------------------------------------------------------------ search
    def search(
        self,
        image: np.ndarray,
        filters: SearchFilter | None = None,
        *,
        limit: int = 12,
        per_region: int = 1,
        group_by_region: bool = True,
        generated: bool = False,
    ) -> list[SearchHit]:
        """Indexed frames nearest to an image's embedding, best first, each with its image
        (:meth:`~sharpseek.search.searcher.Searcher.image_query`, then its ``hits``); one frame per
        region by default. ``generated``: the image came from the generator (its embedding is
        moved onto the frames' distribution, :mod:`sharpseek.search.query_map`). A hit whose dataset
        version is gone from the store has no image.
        """
        query = self.searcher.image_query(
            check_model_image(image, "query image"), units="model", generated=generated
        )
        hits = self.searcher.hits(
            query, k=limit, filter=filters, per_region=per_region, group_by_region=group_by_region
        )
        return [hit.with_image(self._record_image_or_none(hit.record_id)) for hit in hits]

    def search_view(
        self,
        query: Rendered,
        filters: SearchFilter | None = None,
        *,
        limit: int = 12,
        group_by_region: bool = True,
        real: bool = False,
        base_payload: dict[str, Any] | None = None,
    ) -> SearchView:
        """One search as the Search page runs it (its button, a link or a Back/Forward to a
        view with results): :meth:`search` of ``query``'s image, its parameters and the
        look-alike outlook. ``real``: the query is the real base patch (an upload or an
        indexed record, whose native values and record id are in ``base_payload``), searched
        as embedded; otherwise it is generated. A failed outlook is a message, not a failed
        search."""
        base = base_payload or {}
        matches = self.search(
            query.image,
            filters,
            limit=limit,
            group_by_region=group_by_region,
            generated=not real,
        )
        params: dict[str, Any] = dict(query.params)
        if real:  # the real patch: its native values (upload or record)
            params.update({p: base.get(p) for p in (*NATIVE_PARAMETERS, "r_jsoc_segment")})
        out = SearchView(matches, params, query.image)
        try:
            out.outlook = self.outlook(
                query.image, generated=not real, record_id=base.get("record_id") if real else None
            )
        except Exception as err:  # noqa: BLE001 - the page says why there is no outlook
            out.outlook_error = str(err) or type(err).__name__
        return out

    def outlook(self, image: np.ndarray, *, generated: bool = False, record_id: str | None = None):
        """The look-alike flare outlook (:class:`sharpseek.search.outlook.Outlook`) of the query
        image, or of the indexed record ``record_id`` when the query is that record (then
        only neighbours whose outcome had closed by its T_REC count, never its region)."""
        if record_id is not None and self.index.get([record_id]):
            query = self.searcher.record_query(record_id)
        else:
            query = self.searcher.image_query(
                check_model_image(image, "query image"), units="model", generated=generated
            )
        return self.searcher.outlook(query)

    def _record_image_or_none(self, record_id: str) -> np.ndarray | None:
        try:
            return self.searcher.record_image(record_id)
        except KeyError:  # its dataset version is gone from the store
            return None

    def record(self, record_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        """An indexed record's image and payload (to start from a real SHARP)."""
        found = self.index.get([record_id])
        if not found:
            raise ValueError(f"record {record_id!r} is not in the index")
        try:
            image = self.searcher.record_image(record_id)
        except KeyError as err:
            raise ValueError(f"record {record_id!r}: {err.args[0]}") from None
        return image, found[0].payload

    def indexed_values(self, fields: Sequence[str] = FILTER_FIELDS) -> pd.DataFrame:
        """Payload values of the indexed records, for the filter histograms (and picking a
        record): the manifest rows of the live collection's dataset versions."""
        try:
            live = self.index.live()
        except Exception as err:
            raise RuntimeError(f"index unavailable: {err}") from None
        if live is None:
            return pd.DataFrame(columns=["record_id", *fields])
        frames = []
        for name in dataset_names(self.store):
            versions = set(dataset_versions(self.store, name))
            for version in live.dataset_versions:
                if version in versions:
                    manifest = self._dataset(name, version).manifest
                    keep = [c for c in ("record_id", "harpnum", "t_rec", *fields, "lat_fwt", "mu")
                            if c in manifest.columns]  # fmt: skip
                    frames.append(manifest[keep])
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _dataset(self, name: str, version: str):
        key = f"{name}/{version}"
        if key not in self._datasets:
            self._datasets[key] = load_dataset(self.store, name, version)
        return self._datasets[key]


def _measured(image: np.ndarray, params: dict[str, Any]) -> Rendered:
    pos, neg, region = (m[0] for m in polarity_maps(np.asarray(image, np.float32)[None]))
    return Rendered(image, {k: float(v) for k, v in params.items()}, pos, neg, region)


def _index_location(settings: Settings, backend: str) -> str:
    if backend == "embedded":
        return str(settings.index_dir)
    return str(getattr(settings.index, "url", "") or "server")
