"""Model archives of sharpseek's two models: build, publish, read; the serving folders.

- :func:`build_archives` packs the settings' GAN checkpoint (with its directions) and encoder
  checkpoint, with the handlers of :mod:`sharpseek.serving.handlers`, into versioned model archives
  (``.mar``: a zip with ``MAR-INF/MANIFEST.json``, the format torch-model-archiver writes);
  each records which GAN, encoder and directions it holds (``sharpseek-archive.json``).
- :func:`serving_version`, :func:`store_current_archives` and :func:`published_versions` name
  and list what the store publishes; :mod:`sharpseek.serving.torchserve` fetches and serves it.

Archives are named ``<model>-<version>.mar``; the version is the model's content-addressed
version plus 8 hex digits of the archive's payload (checkpoint, directions, handlers), so
the same inputs always give the same version and a changed one never passes for the old.

Layout in the store (written by :func:`build_archives`, read by
:func:`sharpseek.serving.torchserve.fetch_archives`)::

    model-store/<model>/<model>-<archive version>.mar   the archives
    model-store/<model>/CURRENT                         file name of the model's current one
    model-store/versions/<serving version>.json         {"archives": {model: file}, ...}

A *serving version* (:func:`serving_version`, 12 hex digits) names one generator archive
and one encoder archive together; it is what a Kubernetes Deployment revision pins.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import re
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sharpseek import __version__
from sharpseek.config import Settings
from sharpseek.data.object_store import ObjectNotFound, PreconditionFailed
from sharpseek.data.store import open_store
from sharpseek.models.inference import EncoderModel, GeneratorModel, _model_key
from sharpseek.science.directions import DirectionSet

__all__ = [
    "ArchiveConflict",
    "ArchiveInfo",
    "ServeError",
    "build_archives",
    "current_archives",
    "handlers_dir",
    "model_store_dir",
    "published_versions",
    "serve_dir",
    "serving_version",
    "store_current_archives",
]

log = logging.getLogger(__name__)

MODELS = ("generator", "encoder")
#: Zip timestamps of archive members: fixed, so equal inputs give byte-equal archives.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_HANDLER_FILES = {
    "generator": ("generator_handler.py", "base_handler.py"),
    "encoder": ("encoder_handler.py", "base_handler.py"),
}
ARCHIVE_INFO = "sharpseek-archive.json"
CURRENT = "current.json"
#: Prefix of the archives in the object store (MinIO on Kubernetes).
STORE_PREFIX = "model-store"
_SERVING_VERSION = re.compile(r"^[0-9a-f]{12}$")


class ServeError(RuntimeError):
    """TorchServe could not be built, started, stopped or asked (the message says why)."""


# ----------------------------------------------------------------------------------- paths
def serve_dir(settings: Settings) -> Path:
    """Where a local TorchServe runs: ``<home>/serve`` (config, logs, key file, pid)."""
    return settings.home / "serve"


def model_store_dir(settings: Settings) -> Path:
    """``serve.model_store`` or ``<home>/serve/model-store``: the archives TorchServe loads."""
    if settings.serve.model_store is not None:
        return Path(settings.serve.model_store)
    return serve_dir(settings) / "model-store"


def handlers_dir(settings: Settings | None = None) -> Path:
    """The TorchServe handlers that go into every archive: ``settings.serve.handlers_dir``
    when set, else those shipped in this package (:mod:`sharpseek.serving.handlers`)."""
    configured = settings.serve.handlers_dir if settings is not None else None
    if configured is not None:
        if not (Path(configured) / "base_handler.py").is_file():
            raise ServeError(
                f"serve.handlers_dir {str(configured)!r} holds no base_handler.py (the "
                "TorchServe handlers of sharpseek/serving/handlers/)"
            )
        return Path(configured)
    return Path(str(importlib.resources.files("sharpseek.serving.handlers")))


# -------------------------------------------------------------------------------- archives
@dataclass
class ArchiveInfo:
    """What one archive holds (also written into it as ``sharpseek-archive.json``).

    Attributes
    ----------
    model : ``generator`` or ``encoder`` (the TorchServe model name)
    version : the archive version (model version + payload digest)
    file : the archive file name in the model store
    gan, encoder, directions : the versions it serves (None where not applicable)
    checkpoint : the checkpoint's key inside the archive (and in the store it came from)
    max_items_per_request : the handler refuses larger requests (HTTP 400)
    """

    model: str
    version: str
    file: str
    gan: str | None
    encoder: str | None
    directions: str | None
    checkpoint: str
    max_items_per_request: int
    built: str = ""
    sharpseek_version: str = ""


def _model_config_yaml(settings: Settings) -> str:
    """TorchServe's per-archive model config: batching and workers travel with the archive,
    so every way of loading it (``--models``, ``load_models=all``, registration) batches."""
    serve = settings.serve
    return (
        f"minWorkers: {serve.workers}\n"
        f"maxWorkers: {serve.workers}\n"
        f"batchSize: {serve.batch_size}\n"
        f"maxBatchDelay: {serve.max_batch_delay_ms}\n"
        f"responseTimeout: {int(max(1, serve.timeout_seconds))}\n"
    )


def _write_mar(path: Path, files: dict[str, bytes], manifest: dict) -> None:
    tmp = path.with_suffix(".mar.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        entries = {"MAR-INF/MANIFEST.json": json.dumps(manifest, indent=1).encode(), **files}
        for name, data in sorted(entries.items()):
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), data)
    os.replace(tmp, path)


def _build_one(
    settings: Settings,
    model: str,
    payload: dict[str, bytes],
    info: dict,
    base_version: str,
    out_dir: Path,
    handlers: Path,
) -> ArchiveInfo:
    files = dict(payload)
    for name in _HANDLER_FILES[model]:
        files[name] = (handlers / name).read_bytes()
    files["model-config.yaml"] = _model_config_yaml(settings).encode()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    version = f"{base_version}.{digest.hexdigest()[:8]}"
    archive = ArchiveInfo(
        model=model,
        version=version,
        file=f"{model}-{version}.mar",
        max_items_per_request=settings.serve.max_items_per_request,
        built=datetime.now(UTC).isoformat(timespec="seconds"),
        sharpseek_version=__version__,
        **info,
    )
    path = out_dir / archive.file
    if path.is_file():  # same payload: the archive is already there; keep its record
        with zipfile.ZipFile(path) as existing:
            return ArchiveInfo(**json.loads(existing.read(ARCHIVE_INFO)))
    files[ARCHIVE_INFO] = json.dumps(asdict(archive), indent=1).encode()
    manifest = {
        "createdOn": datetime.now(UTC).strftime("%d/%m/%Y %H:%M:%S"),
        "runtime": "python",
        "model": {
            "modelName": model,
            "handler": _HANDLER_FILES[model][0],
            "modelVersion": version,
            "configFile": "model-config.yaml",
        },
        "archiverVersion": "0.12.0",
    }
    _write_mar(path, files, manifest)
    return archive


def build_archives(
    settings: Settings,
    *,
    models: tuple[str, ...] = MODELS,
    store=None,
    upload: bool = True,
    require_directions: bool = False,
) -> list[ArchiveInfo]:
    """Model archives of the settings' checkpoints, in :func:`model_store_dir`.

    Parameters
    ----------
    models : which archives (``generator``, ``encoder``)
    store : the object store holding the checkpoints (default: the settings' store)
    upload : also copy each archive to the store under ``model-store/<model>/`` (where a
        Kubernetes Deployment fetches them from MinIO) and mark it there as current
    require_directions : refuse a generator without fitted directions (otherwise it is built
        without them, and shift requests answer HTTP 400)

    Returns
    -------
    One :class:`ArchiveInfo` per archive; ``current.json`` in the model store names them.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    store = store if store is not None else open_store(settings)
    out_dir = model_store_dir(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    handlers = handlers_dir(settings)
    built = []
    for model in models:
        current_before = _current_token(store, model) if upload else None
        if model == "generator":
            key = _model_key("gan", settings.models.gan, settings.models.gan_checkpoint)
            loaded = GeneratorModel.from_checkpoint(key, store=store)
            payload = {key: store.get_bytes(key)}
            try:
                directions = DirectionSet.load(store, loaded.version)
            except FileNotFoundError:
                if require_directions:
                    raise
                log.warning("GAN %s has no directions: archived without them", loaded.version)
                directions = None
            if directions is not None:
                payload[DirectionSet.key(loaded.version)] = directions.to_json().encode()
            info = {
                "gan": loaded.version,
                "encoder": None,
                "directions": directions.version if directions else None,
                "checkpoint": key,
            }
        else:
            key = _model_key("encoder", settings.models.encoder, settings.models.encoder_checkpoint)
            loaded = EncoderModel.from_checkpoint(key, store=store)
            payload = {key: store.get_bytes(key)}
            info = {"gan": None, "encoder": loaded.version, "directions": None, "checkpoint": key}
        archive = _build_one(settings, model, payload, info, loaded.version, out_dir, handlers)
        built.append(archive)
        if upload:
            store.put_file(f"{STORE_PREFIX}/{model}/{archive.file}", out_dir / archive.file)
            _mark_current(store, model, archive.file, current_before)
    if upload:
        _publish_serving_version(store, store_current_archives(store))
    current = current_archives(settings)
    current.update({a.model: a.file for a in built})
    (out_dir / CURRENT).write_text(json.dumps(current, indent=1))
    return built


class ArchiveConflict(RuntimeError):
    """Another writer marked another archive current while this one was built (names it)."""


def _current_token(store, model: str) -> str | None:
    try:
        return store.get_versioned(f"{STORE_PREFIX}/{model}/CURRENT")[1]
    except ObjectNotFound:
        return None


def _mark_current(store, model: str, file: str, before: str | None) -> None:
    """``model-store/<model>/CURRENT`` := ``file`` if it is still what it was when the build
    began (compare-and-swap); the same archive marked by another build is fine."""
    key = f"{STORE_PREFIX}/{model}/CURRENT"
    try:
        store.put_if(key, file.encode(), match=before)
    except PreconditionFailed:
        other = store.get_bytes(key).decode().strip()
        if other != file:
            raise ArchiveConflict(
                f"another writer marked {other} as the current {model} archive while "
                f"{file} was being built; {file} is uploaded but not current (swap to it "
                "with `sharpseek serve swap` if it is the one to serve)"
            ) from None


def serving_version(archives: dict[str, str]) -> str:
    """The serving version of ``{model: archive file}``: 12 hex digits of their names.

    The archive names are content-addressed, so equal archives give equal serving versions.
    """
    text = "\n".join(f"{model}={archives[model]}" for model in sorted(archives))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def store_current_archives(store) -> dict[str, str]:
    """``{model: archive file}`` named by the store's ``model-store/<model>/CURRENT``."""
    current = {}
    for model in MODELS:
        key = f"{STORE_PREFIX}/{model}/CURRENT"
        if store.exists(key):
            current[model] = store.get_bytes(key).decode().strip()
    return current


def _publish_serving_version(store, archives: dict[str, str]) -> str:
    version = serving_version(archives)
    key = f"{STORE_PREFIX}/versions/{version}.json"
    if not store.exists(key):  # same archives, same record: keep the first one's date
        record = {
            "version": version,
            "archives": archives,
            "published": datetime.now(UTC).isoformat(timespec="seconds"),
            "sharpseek_version": __version__,
        }
        store.put_bytes(key, json.dumps(record, indent=1).encode())
    return version


def published_versions(store) -> list[str]:
    """Serving versions recorded in the store (``model-store/versions/*.json``), sorted."""
    prefix = f"{STORE_PREFIX}/versions/"
    names = [o.key[len(prefix) :] for o in store.list(prefix)]
    return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))


def current_archives(settings: Settings) -> dict[str, str]:
    """``{model: archive file}`` of the last build (``<model store>/current.json``)."""
    path = model_store_dir(settings) / CURRENT
    return json.loads(path.read_text()) if path.is_file() else {}


def read_archive_info(path: str | Path) -> ArchiveInfo:
    """The :class:`ArchiveInfo` recorded in an archive."""
    with zipfile.ZipFile(path) as archive:
        return ArchiveInfo(**json.loads(archive.read(ARCHIVE_INFO)))
