"""The one road of indexing: :func:`plan_index` (mode auto / reindex / update) -> shards
(:func:`embed_shard`, ``settings.flows.shard_size`` frames each, vectors stored under a key made
from the encoder version and the records' content hashes, so a rerun reuses them) ->
:func:`apply_index_plan` (one writer; a new collection is switched in by its alias when
complete). Also the index's flare payloads (:func:`update_flare_payloads`), written without
touching the vectors.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sharpseek.config import Settings
from sharpseek.data.dataset import DEFINITIVE_SERIES, NRT_SERIES, latest_version, load_dataset
from sharpseek.data.exclusion import usable_rows
from sharpseek.data.flare_windows import (
    configured_windows,
    flare_fields,
    flare_payloads,
    flare_windows,
)
from sharpseek.data.flares import PREFIX as FLARE_PREFIX
from sharpseek.data.flares import SYNTHETIC_PREFIX, latest_flare_version, load_flare_catalogue
from sharpseek.data.object_store import ObjectStore
from sharpseek.data.store import open_store
from sharpseek.models.inference import EncoderModel
from sharpseek.pipeline.ledger import DatasetRef, dataset_ref
from sharpseek.pipeline.stages import model_keys
from sharpseek.search.index import (
    EmptyIndexError,
    EncoderMismatchError,
    UpsertResult,
    open_index_from_settings,
)
from sharpseek.search.spaces import check_space, space_vectors
from sharpseek.serving.backends import BackendError, InProcessBackend, RequestError, open_backend

log = logging.getLogger(__name__)

__all__ = [
    "IndexOutcome",
    "IndexPlan",
    "Shard",
    "apply_index_plan",
    "embed_shard",
    "embedding_backend",
    "update_flare_payloads",
    "open_settings_index",
    "plan_index",
    "plan_shards",
    "run_index_plan",
]

EMBEDDINGS_PREFIX = "pipeline/embeddings"


# ----------------------------------------------------------------------------------------------
# the index: plan, shards, apply — the one road of `sharpseek index build|update` and the flows
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """Rows of one dataset version to embed as one task (``key``: where its vectors go), with
    the encoder version that must embed them (the collection's)."""

    dataset: str
    version: str
    rows: tuple[int, ...]
    key: str
    encoder_version: str = ""

    def __len__(self) -> int:
        return len(self.rows)


def plan_shards(
    manifest: pd.DataFrame,
    rows: Sequence[int],
    *,
    dataset: str,
    version: str,
    encoder_version: str,
    shard_size: int,
    spaces: Sequence[str] = ("region",),
) -> list[Shard]:
    """Cut ``rows`` of a manifest into shards of at most ``shard_size`` (in row order).

    A shard's key is made from the encoder version, its records' ids and content hashes and
    the embedding spaces (:mod:`sharpseek.search.spaces`), so the same frames embedded by the
    same encoder map to the same stored result: ``<digest>.npy`` (one (n, dim) array) for
    the region space alone, ``<digest>--<space>+<space>.npz`` (one array per space) for
    several.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    rows = [int(r) for r in rows]
    shards = []
    for start in range(0, len(rows), shard_size):
        chunk = tuple(rows[start : start + shard_size])
        part = manifest.iloc[list(chunk)]
        digest = hashlib.sha256()
        for rid, content in part[["record_id", "content_hash"]].astype(str).itertuples(False):
            digest.update(f"{rid}\t{content}\n".encode())
        name = digest.hexdigest()[:20] + _shard_suffix(spaces)
        key = f"{EMBEDDINGS_PREFIX}/{encoder_version}/{dataset}/{name}"
        shards.append(Shard(dataset, version, chunk, key, encoder_version))
    return shards


def _shard_suffix(spaces: Sequence[str]) -> str:
    names = [check_space(s) for s in spaces]
    return ".npy" if names == ["region"] else "--" + "+".join(names) + ".npz"


@dataclass
class IndexPlan:
    """What the index needs: ``reindex`` (a new encoder version: every frame, into a new
    collection that goes live when full), ``update`` (the frames the live collection lacks)
    or ``none``."""

    mode: Literal["reindex", "update", "none"]
    encoder_version: str
    encoder_key: str
    datasets: list[DatasetRef]
    shards: list[Shard]
    live_before: str | None
    points_before: int

    @property
    def n_frames(self) -> int:
        return sum(len(s) for s in self.shards)


def open_settings_index(settings: Settings, *, dim: int | None = None):
    """The index the settings describe (:func:`sharpseek.search.index.open_index_from_settings`)."""
    return open_index_from_settings(settings, dim=dim)


def plan_index(
    settings: Settings,
    *,
    datasets: Sequence[str] | None = None,
    versions: Mapping[str, str] | None = None,
    encoder_key: str | None = None,
    mode: Literal["auto", "reindex", "update"] = "auto",
) -> IndexPlan:
    """Decide what the index needs for the settings' encoder and ``datasets`` (default
    ``settings.flows.index_datasets``; absent ones are left out): their latest versions, or
    the version ``versions`` names.

    ``mode``: ``auto`` (the flows) rebuilds for a new encoder and otherwise adds what the
    live collection lacks; ``reindex`` (``sharpseek index build``) fills a new collection
    for the encoder's version (refused when that version is already live); ``update``
    (``sharpseek index update``) adds the missing frames to the live collection, which must
    be of the encoder's version.
    """
    store = open_store(settings)
    encoder_key = encoder_key or model_keys(settings)["encoder"]
    encoder = EncoderModel.from_checkpoint(encoder_key, store=store)
    names = list(datasets if datasets is not None else settings.flows.index_datasets)
    versions = dict(versions or {})
    loaded = []
    for name in names:
        version = versions.get(name) or latest_version(store, name)
        if version is not None:
            loaded.append(load_dataset(store, name, version))
    if not loaded:
        raise FileNotFoundError(
            f"none of the datasets {names} is in {store.describe()}: nothing to index"
        )
    index = open_settings_index(settings, dim=encoder.dim)
    try:
        live = index.live()
        points_before = index.count() if live is not None else 0
        # the encoder's collection with the configured spaces (another set of spaces, or an
        # index of before the spaces: a new collection, as for a new encoder)
        same = live is not None and live.name == index.collection_name(encoder.version)
        if mode == "reindex" and same:
            raise ValueError(
                f"encoder version {encoder.version!r} is already live ({live.name}); add the "
                "frames it lacks with `sharpseek index update`"
            )
        if mode == "update" and live is None:
            raise EmptyIndexError("nothing is live yet: run a build first (sharpseek index build)")
        if mode == "update" and not same:
            raise EncoderMismatchError(
                f"the live collection holds encoder version {live.encoder_version!r} but the "
                f"configured encoder is {encoder.version!r}: build a collection for it "
                "(sharpseek index build) or configure the live encoder"
            )
        wanted: dict[str, list[int]] = {}
        for ds in loaded:
            ids = ds.manifest["record_id"].astype(str).tolist()
            lacking = set(ids) if not same else set(index.missing(ids))
            usable = usable_rows(ds.manifest)  # frames mostly off-disk or NaN: left out
            wanted[ds.name] = [i for i, r in enumerate(ids) if r in lacking and usable[i]]
    finally:
        index.close()
    shards = []
    for ds in loaded:
        shards += plan_shards(
            ds.manifest,
            wanted[ds.name],
            dataset=ds.name,
            version=ds.version,
            encoder_version=encoder.version,
            shard_size=settings.flows.shard_size,
            spaces=tuple(settings.index.spaces),
        )
    chosen: Literal["reindex", "update", "none"] = "update" if same else "reindex"
    if chosen == "reindex" and not shards:
        raise ValueError(
            "no frames to index in " + ", ".join(f"{ds.name}/{ds.version}" for ds in loaded)
        )
    if chosen == "update" and not shards:
        chosen = "none"
    return IndexPlan(
        chosen,
        encoder.version,
        encoder_key,
        [dataset_ref(ds) for ds in loaded],
        shards,
        live.name if live is not None else None,
        points_before,
    )


_BACKENDS: dict[tuple[str, ...], Any] = {}


def embedding_backend(
    settings: Settings, encoder_key: str, encoder_version: str, *, served: bool = True
):
    """The model backend (:mod:`sharpseek.serving.backends`) that embeds with exactly
    ``encoder_version``: TorchServe when ``settings.serve.backend`` is ``torchserve`` (and
    ``served``) and it serves that version (``backend.versions()``); otherwise an
    in-process backend with the checkpoint at ``encoder_key``. One per process: the shards
    a worker runs share it.

    Raises ``ValueError`` when the checkpoint is not of ``encoder_version`` (a collection
    never holds vectors of two encoders).
    """
    store = open_store(settings)
    served = served and settings.serve.backend == "torchserve"
    cache_key = (store.describe(), encoder_key, encoder_version, str(served))
    if cache_key in _BACKENDS:
        return _BACKENDS[cache_key]
    for old in _BACKENDS.values():
        old.close()
    _BACKENDS.clear()
    backend = None
    if served:
        server = open_backend(settings)
        try:
            serving = server.versions().get("encoder")
        except (BackendError, RequestError) as err:
            serving = None
            log.warning("TorchServe cannot answer (%s): embedding in this process", err)
        if serving == encoder_version:
            backend = server
        else:
            server.close()
            if serving is not None:
                log.info(
                    "TorchServe serves encoder %s, the index needs %s: embedding in this process",
                    serving, encoder_version,
                )  # fmt: skip
    if backend is None:
        encoder = EncoderModel.from_checkpoint(encoder_key, store=store)
        if encoder.version != encoder_version:
            raise ValueError(
                f"checkpoint {encoder_key} is encoder version {encoder.version!r}, not "
                f"{encoder_version!r}: the collection's vectors must all come from one encoder"
            )
        backend = InProcessBackend(settings, encoder=encoder)
    _BACKENDS[cache_key] = backend
    return backend


def embed_shard(settings: Settings, shard: Shard, encoder_key: str) -> dict[str, Any]:
    """Embed one shard's frames through the model backend of its encoder version
    (:func:`embedding_backend`) in each of ``settings.index.spaces`` and store the vectors at
    its key (:func:`plan_shards`: float32 (n, dim) .npy for the region space alone, an .npz of
    one such array per space for several).

    Runs on any worker that can reach the store; a shard already stored is not recomputed.
    Returns ``{"key", "n", "cached"}``.
    """
    store = open_store(settings)
    if store.exists(shard.key):
        return {"key": shard.key, "n": len(shard), "cached": True}

    torch.set_num_threads(1)  # one core per worker: the cluster is the parallelism
    ds = load_dataset(store, shard.dataset, shard.version)
    images = ds.images(shard.rows)
    version = shard.encoder_version or _checkpoint_version(store, encoder_key)
    spaces = tuple(settings.index.spaces)
    backend = embedding_backend(settings, encoder_key, version)
    vectors = space_vectors(backend.embed, images, spaces)
    if not isinstance(backend, InProcessBackend) and backend.versions()["encoder"] != version:
        # the server rolled to another encoder version while embedding: embed here instead
        backend = embedding_backend(settings, encoder_key, version, served=False)
        vectors = space_vectors(backend.embed, images, spaces)
    buffer = io.BytesIO()
    if shard.key.endswith(".npz"):
        np.savez(buffer, **vectors)
    else:
        np.save(buffer, vectors["region"], allow_pickle=False)
    store.put_bytes(shard.key, buffer.getvalue())
    return {"key": shard.key, "n": len(shard), "cached": False}


def _checkpoint_version(store: ObjectStore, key: str) -> str:
    return EncoderModel.from_checkpoint(key, store=store).version


def _load_vectors(store: ObjectStore, key: str) -> np.ndarray | dict[str, np.ndarray]:
    """A shard's vectors: (n, dim) (.npy), or ``{space: (n, dim)}`` (.npz)."""
    loaded = np.load(io.BytesIO(store.get_bytes(key)), allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        return {name: loaded[name] for name in loaded.files}


def _vectors_dim(vectors: np.ndarray | Mapping[str, np.ndarray]) -> int:
    first = vectors if isinstance(vectors, np.ndarray) else next(iter(vectors.values()))
    return int(np.asarray(first).shape[1])


@dataclass
class IndexOutcome:
    """What the index stage did."""

    mode: str
    encoder_version: str
    live_before: str | None
    live_after: str | None
    points_before: int
    points_after: int
    added: int = 0
    skipped: int = 0
    replaced: int = 0
    superseded: int = 0
    per_dataset: dict[str, int] = field(default_factory=dict)
    flare_payloads: int = 0  # frames given their flare history and outcome (a catalogue held)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def message(self) -> str:
        if self.mode == "none":
            return f"index {self.live_after} is up to date ({self.points_after} points); skipped"
        verb = "rebuilt for a new encoder" if self.mode == "reindex" else "updated"
        return (
            f"index {verb}: {self.added} frames added, {self.replaced} NRT frames replaced; "
            f"{self.points_before} -> {self.points_after} points, live {self.live_after}"
        )


def apply_index_plan(
    settings: Settings, plan: IndexPlan, *, drop_previous: bool = False
) -> IndexOutcome:
    """Write the embedded shards into the index: a new collection that goes live when
    complete (``reindex``; ``drop_previous`` deletes the collection live before), or the
    missing frames into the live one (``update``).

    Every shard must be embedded first (:func:`embed_shard`). The live collection is never
    touched before all vectors exist, so a failure anywhere before leaves it as it was; an
    interrupted reindex resumes on rerun (records already in the new collection are skipped).
    """
    store = open_store(settings)
    if plan.mode != "none":
        for shard in plan.shards:
            if not store.exists(shard.key):
                raise RuntimeError(
                    f"shard {shard.key} was not embedded; the live index is unchanged"
                )
    manifests = {
        ref.name: load_dataset(store, ref.name, ref.version).manifest for ref in plan.datasets
    }
    by_dataset: dict[str, list[Shard]] = {}
    for shard in plan.shards:
        by_dataset.setdefault(shard.dataset, []).append(shard)
    versions = {ref.name: ref.version for ref in plan.datasets}

    def batches(name: str):
        for shard in by_dataset.get(name, []):
            yield manifests[name].iloc[list(shard.rows)], _load_vectors(store, shard.key)

    dim = None
    if plan.shards:
        dim = _vectors_dim(_load_vectors(store, plan.shards[0].key))
    index = open_settings_index(settings, dim=dim)
    outcome = IndexOutcome(
        plan.mode, plan.encoder_version, plan.live_before, None, plan.points_before, 0
    )
    try:
        names = [n for n in versions if by_dataset.get(n)]
        writes = UpsertResult()
        rest = names
        if plan.mode == "reindex":
            first, rest = names[0], names[1:]
            result = index.reindex(
                plan.encoder_version,
                batches(first),
                dataset_version=versions[first],
                drop_previous=drop_previous,
            )
            writes += result.writes
            outcome.per_dataset[first] = result.writes.added
        for name in rest:
            done = UpsertResult()
            for rows, vectors in batches(name):
                done += index.upsert_records(
                    rows,
                    vectors,
                    encoder_version=plan.encoder_version,
                    dataset_version=versions[name],
                )
            writes += done
            outcome.per_dataset[name] = done.added
        outcome.added, outcome.skipped = writes.added, writes.skipped
        outcome.replaced, outcome.superseded = writes.replaced, writes.superseded
        live = index.live()
        outcome.live_after = live.name if live is not None else None
        outcome.points_after = index.count() if live is not None else 0
    finally:
        index.close()
    if outcome.live_after is not None and any(
        latest_flare_version(store, root=root) is not None
        for root in (FLARE_PREFIX, SYNTHETIC_PREFIX)
    ):
        # new frames get their flare history and outcome from the catalogue held (a fresh
        # index object: an embedded reader opened before the write could read a stale copy)
        outcome.flare_payloads = update_flare_payloads(settings)["written"]
    return outcome


def update_flare_payloads(settings: Settings, *, index=None) -> dict[str, Any]:
    """Give every frame of the live index its flare history and outcome from the latest
    catalogue of its kind (real frames: the GOES catalogue; synthetic frames: their
    ground-truth catalogue, when loaded), writing only the frames whose flare fields differ
    (a frame added since, or every frame after a new catalogue version); vectors are
    untouched. Returns the real frames' counts: ``frames`` (real frames seen), ``written``,
    ``known`` (frames whose first outcome window is known), ``version``; and ``synthetic``:
    the same for the synthetic frames (None without a synthetic catalogue)."""
    store = open_store(settings)
    families = {
        root: load_flare_catalogue(store, root=root)
        for root in (FLARE_PREFIX, SYNTHETIC_PREFIX)
        if latest_flare_version(store, root=root) is not None
    }
    if not families:
        raise FileNotFoundError(
            f"no flare catalogue in {store.describe()}: load one with `sharpseek flares load FILE`"
        )
    counts = {
        root: {"frames": 0, "written": 0, "known": 0, "version": catalogue.version}
        for root, catalogue in families.items()
    }
    windows = configured_windows(settings.flares)
    fields = flare_fields(windows)
    own = index is None
    index = open_settings_index(settings) if own else index
    try:
        scanned = (
            list(index.scan(["series", "harpnum", "t_rec", *fields]))
            if index.live() is not None
            else []
        )
        for root, catalogue in families.items():
            real = root == FLARE_PREFIX
            stored = [
                row
                for row in scanned
                if (str(row.get("series")) in (DEFINITIVE_SERIES, NRT_SERIES)) == real
            ]
            if not stored:
                continue
            t_recs = pd.to_datetime([str(r["t_rec"]).rstrip("Z") for r in stored]).to_numpy(
                "datetime64[s]"
            )
            harps = [int(r["harpnum"]) for r in stored]
            summary = flare_windows(catalogue, harps, t_recs, windows)
            new = flare_payloads(summary, windows)
            changed = {
                row["record_id"]: values
                for row, values in zip(stored, new, strict=True)
                if any(row.get(k) != v for k, v in values.items())
            }
            first_outcome = next((w for w in windows if w.kind == "outcome"), windows[0])
            counts[root] |= {
                "frames": len(stored),
                "written": index.update_payloads(changed, fields=fields) if changed else 0,
                "known": int((summary[f"{first_outcome.name}_status"] == "known").sum()),
            }
    finally:
        if own:
            index.close()
    real_counts = counts.get(FLARE_PREFIX, {"frames": 0, "written": 0, "known": 0, "version": None})
    return real_counts | {"synthetic": counts.get(SYNTHETIC_PREFIX)}


def run_index_plan(
    settings: Settings, plan: IndexPlan, *, drop_previous: bool = False, progress: bool = True
) -> IndexOutcome:
    """Embed every shard of ``plan`` in this process, then apply it: ``sharpseek index
    build|update`` (the flows map the same shards over workers, then
    :func:`apply_index_plan`)."""
    if plan.mode != "none":
        for shard in tqdm(plan.shards, desc="embedding", unit="shard", disable=not progress):
            embed_shard(settings, shard, plan.encoder_key)
    return apply_index_plan(settings, plan, drop_previous=drop_previous)


def index_stage_inputs(plan: IndexPlan) -> dict[str, Any]:
    """The fingerprint inputs of an index state: encoder version and dataset contents."""
    return {
        "encoder_version": plan.encoder_version,
        "datasets": {ref.name: ref.digest for ref in plan.datasets},
    }
