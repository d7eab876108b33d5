"""Generated queries moved onto the indexed frames' embedding distribution: the cure for the
hubs of generated-image search (issue 17; docs/search.md, "Hubs").

The encoder embeds a generated image somewhere off the cloud of the indexed frames (the GAN's
texture and noise are not the data's): per dimension its embeddings have another mean and a
narrower spread. The frames nearest to that shifted, narrow cloud are a handful of *hubs*
that every query finds. :class:`GeneratedQueryMap` standardises a generated query's
embedding with the statistics of the generator's embeddings and gives it the statistics of
the indexed frames'; per embedding dimension d::

    q'_d = mean_frames_d + std_frames_d * (q_d - mean_generated_d) / std_generated_d

fitted on the embeddings of ``frames`` indexed frames (a seeded sample of the training
dataset, the one the index holds) and of ``generated`` images of seeds ``first_seed ..``
(10**6 .., outside both evaluation seed blocks, so no evaluated query fits its own map). The
indexed frames and real (uploaded, FITS, indexed) queries are left as the encoder gives
them: they *are* the reference distribution. A generator that matched the data would give
the identity.

One map per (encoder version, GAN version, frames dataset version, embedding space), stored
in the store at ``query-maps/<encoder version>/<gan version>--<dataset>-<version>.json`` (the
``region`` space: the encoder's embeddings as they are) or ``...--symmetric.json`` (the
``symmetric`` space of :mod:`sharpseek.search.spaces`, where generated queries search) the
first time it is needed (:func:`load_query_map`); the search (CLI, notebook, catalogues), the UI and
``sharpseek evaluate retrieval`` all get their generated queries' vectors through
:func:`generated_vectors`, whichever backend (in-process or TorchServe) embedded them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from sharpseek.data.dataset import latest_version, load_dataset
from sharpseek.data.object_store import ObjectNotFound
from sharpseek.data.store import open_store
from sharpseek.search.index.build import embedded_batches
from sharpseek.search.spaces import SpaceEmbedder, check_space, space_vectors

__all__ = [
    "GeneratedQueryMap",
    "fit_query_map",
    "generated_vectors",
    "load_query_map",
    "query_map_key",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedQueryMap:
    """Per-dimension moments of the indexed frames' and of the generator's embeddings.

    Attributes
    ----------
    encoder_version, generator_version : the models whose embeddings were measured
    frames : ``{"dataset": "<name>/<version>", "count": n}``, the frames measured
    first_seed, generated : the generated images measured (seeds ``first_seed ..
        first_seed + generated - 1``)
    mean_frames, std_frames, mean_generated, std_generated : ndarray (dim,) float64
    space : the embedding space of both (:data:`sharpseek.search.spaces.SPACES`)
    """

    encoder_version: str
    generator_version: str
    frames: dict[str, Any]
    first_seed: int
    generated: int
    mean_frames: np.ndarray
    std_frames: np.ndarray
    mean_generated: np.ndarray
    std_generated: np.ndarray
    space: str = "region"

    @classmethod
    def fit(
        cls,
        frame_vectors: np.ndarray,
        generated_vectors: np.ndarray,
        *,
        encoder_version: str,
        generator_version: str,
        frames: dict[str, Any],
        first_seed: int,
        space: str = "region",
    ) -> GeneratedQueryMap:
        """The map from the embeddings (n, dim) of indexed frames and of generated images
        (at least 2 of each; a dimension that does not vary keeps scale 1)."""
        a = np.asarray(frame_vectors, np.float64)
        b = np.asarray(generated_vectors, np.float64)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(
                f"frame and generated embeddings must be (n, dim) of one dim, got "
                f"{a.shape} and {b.shape}"
            )
        if len(a) < 2 or len(b) < 2:
            raise ValueError(
                f"a query map needs at least 2 frames and 2 generated images, got {len(a)} "
                f"and {len(b)}"
            )
        return cls(
            encoder_version=encoder_version,
            generator_version=generator_version,
            frames=dict(frames),
            first_seed=int(first_seed),
            generated=len(b),
            mean_frames=a.mean(0),
            std_frames=_spread(a),
            mean_generated=b.mean(0),
            std_generated=_spread(b),
            space=check_space(space),
        )

    @property
    def dim(self) -> int:
        return len(self.mean_frames)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Generated queries' embeddings (n, dim) or (dim,) -> the same shape, float32, with
        the indexed frames' per-dimension mean and spread."""
        v = np.asarray(vectors, np.float64)
        if v.shape[-1] != self.dim:
            raise ValueError(
                f"embeddings of dim {v.shape[-1]} given to a query map of dim {self.dim} "
                f"(encoder {self.encoder_version})"
            )
        out = self.mean_frames + self.std_frames * (v - self.mean_generated) / self.std_generated
        return out.astype(np.float32)

    def check(self, encoder_version: str, generator_version: str) -> None:
        """Raise ``ValueError`` when the map was fitted for other models."""
        if (encoder_version, generator_version) != (self.encoder_version, self.generator_version):
            raise ValueError(
                f"query map fitted for encoder {self.encoder_version} and GAN "
                f"{self.generator_version}, used with encoder {encoder_version} and GAN "
                f"{generator_version}"
            )

    def to_json(self) -> str:
        data = {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()
        }
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> GeneratedQueryMap:
        data = json.loads(text)
        for name in ("mean_frames", "std_frames", "mean_generated", "std_generated"):
            data[name] = np.asarray(data[name], np.float64)
        return cls(**data)

    @staticmethod
    def key(
        encoder_version: str, generator_version: str, dataset: str, space: str = "region"
    ) -> str:
        """Where the map of these versions, frames dataset (``name/version``) and space is
        stored (the region space's key is the one maps had before there were two spaces)."""
        suffix = "" if check_space(space) == "region" else f"--{space}"
        name = f"{generator_version}--{dataset.replace('/', '-')}{suffix}"
        return f"query-maps/{encoder_version}/{name}.json"


def _spread(x: np.ndarray) -> np.ndarray:
    """Per-column standard deviation; 1 where a column does not vary (nothing to rescale)."""
    std = x.std(0)
    return np.where(std > 0, std, 1.0)


def fit_query_map(
    backend,
    dataset,
    *,
    frames: int,
    generated: int,
    first_seed: int,
    seed: int = 0,
    batch_size: int = 500,
    space: str = "region",
    index=None,
) -> GeneratedQueryMap:
    """Measure the map: embed up to ``frames`` frames of ``dataset`` (a seeded sample) and
    ``generated`` images of seeds ``first_seed ..`` with ``backend``
    (:class:`sharpseek.serving.backends.ModelBackend`) in ``space``, ``batch_size`` at a
    time. The frames' vectors are read from ``index`` (a
    :class:`~sharpseek.search.index.VectorIndex`) instead when its live collection is of the
    backend's encoder, holds ``space`` and every sampled frame: the same vectors, without
    embedding them again (16 embeddings per frame in the symmetric space)."""
    embedder = SpaceEmbedder(backend, space)
    n = len(dataset.manifest)
    rows = np.arange(n)
    if frames < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, frames, replace=False))
    ids = dataset.manifest["record_id"].astype(str).to_numpy()[rows].tolist()
    frame_vectors = _indexed_vectors(index, ids, space, backend.versions()["encoder"])
    if frame_vectors is None:
        frame_vectors = np.concatenate(
            [v for _, v in embedded_batches(dataset, embedder, rows, batch_size=batch_size)]
        )
    parts = []
    for start in range(first_seed, first_seed + generated, batch_size):
        seeds = list(range(start, min(start + batch_size, first_seed + generated)))
        parts.append(embedder.embed(backend.generate(seeds=seeds, parameters=False).images))
    versions = backend.versions()
    return GeneratedQueryMap.fit(
        frame_vectors,
        np.concatenate(parts),
        encoder_version=versions["encoder"],
        generator_version=versions["gan"],
        frames={
            "dataset": f"{dataset.name}/{dataset.version}",
            "count": len(rows),
            "requested": frames,
        },
        first_seed=first_seed,
        space=space,
    )


def _indexed_vectors(
    index, record_ids: list[str], space: str, encoder_version: str
) -> np.ndarray | None:
    """The stored ``space`` vectors (n, dim) of ``record_ids`` in the live collection of
    ``index``; None when there is no index, its live collection is of another encoder or
    lacks the space, or it lacks one of the records."""
    if index is None:
        return None
    live = index.live()
    if live is None or live.encoder_version != encoder_version or space not in live.spaces:
        return None
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(record_ids), 1000):
        for record in index.get(record_ids[start : start + 1000], with_vector=True):
            found[record.record_id] = (record.vectors or {}).get(space)
    if len(found) != len(record_ids) or any(v is None for v in found.values()):
        return None
    return np.stack([found[r] for r in record_ids]).astype(np.float32)


def query_map_key(settings, backend, store, space: str = "region") -> tuple[str, str, str] | None:
    """(store key, dataset name, dataset version) of the map of the backend's models in
    ``space`` over the latest version of ``settings.flows.training_dataset``; None when that
    dataset is absent."""
    name = settings.flows.training_dataset
    version = latest_version(store, name)
    if version is None:
        return None
    versions = backend.versions()
    return (
        GeneratedQueryMap.key(versions["encoder"], versions["gan"], f"{name}/{version}", space),
        name,
        version,
    )


def load_query_map(
    settings, backend, store=None, *, space: str | None = None, index=None
) -> GeneratedQueryMap | None:
    """The map of the backend's models over the frames of ``settings.flows.training_dataset``
    (its latest version) in ``space`` (default ``settings.retrieval.generated_space``, where
    generated queries search), fitted and stored the first time (reading the frames' vectors
    from ``index`` where it holds them: :func:`fit_query_map`); None when
    ``settings.retrieval.query_map`` is off or that dataset is absent."""
    cfg = settings.retrieval
    if not cfg.query_map:
        return None
    space = check_space(space or cfg.generated_space)
    store = store if store is not None else open_store(settings)
    where = query_map_key(settings, backend, store, space)
    if where is None:
        log.warning(
            "no dataset %r to fit the generated-query map on: queries unmapped",
            settings.flows.training_dataset,
        )
        return None
    key, name, version = where
    try:
        found = GeneratedQueryMap.from_json(store.get_bytes(key).decode())
        if (found.first_seed, found.generated, found.frames.get("requested"), found.space) == (
            cfg.first_seed,
            cfg.generated,
            cfg.frames,
            space,
        ):
            return found
    except ObjectNotFound:
        pass
    log.info("fitting the generated-query map %s", key)
    fitted = fit_query_map(
        backend,
        load_dataset(store, name, version),
        frames=cfg.frames,
        generated=cfg.generated,
        first_seed=cfg.first_seed,
        space=space,
        index=index,
    )
    store.put_bytes(key, fitted.to_json().encode(), content_type="application/json")
    return fitted


def generated_vectors(
    backend,
    images: np.ndarray,
    query_map: GeneratedQueryMap | None,
    *,
    space: str = "region",
):
    """The search vectors (n, dim) float32 of generated images: their vectors in the
    query map's space (``space`` when there is no map; :func:`sharpseek.search.spaces.space_vectors`
    of the backend's ``embed``), moved by ``query_map`` (checked against the backend's
    versions) when there is one."""
    space = query_map.space if query_map is not None else space
    vectors = space_vectors(backend.embed, images, space)
    if query_map is None:
        return vectors
    versions = backend.versions()
    query_map.check(versions["encoder"], versions["gan"])
    return query_map.apply(vectors)
