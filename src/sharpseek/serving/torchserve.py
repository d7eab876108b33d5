"""TorchServe for sharpseek's two models: fetch, configuration, start/stop/status, swap.

The archives it serves are built and published by :mod:`sharpseek.serving.archives`.

- :func:`write_config` writes TorchServe's ``config.properties`` from ``settings.serve``:
  token authorization on, the model API only where enabled, Prometheus metrics, and
  ``load_models`` naming exactly the archives of ``current.json``.
- :func:`fetch_archives` downloads a published serving version (the store's current one, or
  a named one) into a model-store folder and writes ``current.json`` and the configuration
  beside it: the one way containers (compose, the Helm chart's init container) get their
  archives, with the same loading rule as :func:`start`.
- :func:`start` / :func:`stop` / :func:`status` run TorchServe locally in its own process
  group under ``<home>/serve/`` (logs, key file, pid file: nothing in the shared /tmp).
- :func:`swap_model` puts a new archive version in service without downtime through the
  management API (register, wait for its workers, make it the default, unregister the old).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from sharpseek.config import Settings
from sharpseek.data.store import open_store
from sharpseek.serving.archives import (
    _SERVING_VERSION,
    CURRENT,
    STORE_PREFIX,
    ServeError,
    current_archives,
    model_store_dir,
    published_versions,
    read_archive_info,
    serve_dir,
    serving_version,
    store_current_archives,
)
from sharpseek.serving.backends import BackendAuthError, _message, resolve_token
from sharpseek.serving.protocol import max_body_bytes

__all__ = [
    "fetch_archives",
    "management_request",
    "start",
    "status",
    "stop",
    "swap_model",
    "write_config",
]

log = logging.getLogger(__name__)

#: Where the management API listens in a container (:func:`write_config` with a bind host).
MANAGEMENT_BIND_HOST = "127.0.0.1"
STATE = "torchserve.json"


def fetch_archives(
    settings: Settings,
    to: str | Path,
    version: str | None = None,
    *,
    store=None,
    bind_host: str | None = None,
    allow_empty: bool = False,
) -> dict:
    """Download a serving version's archives from the store into the folder ``to``.

    Writes the archives, ``current.json`` naming them, and ``config.properties`` (from
    :func:`write_config`: ``settings.serve``, ``model_store=to``, ``load_models`` = exactly
    these archives), so ``torchserve --ts-config <to>/config.properties --model-store <to>``
    serves them. Archives already in ``to`` are kept (a running server may still use them).

    Parameters
    ----------
    to : the model-store folder (created when missing)
    version : a serving version (``model-store/versions/<version>.json``); default the
        store's current archives (``model-store/<model>/CURRENT``)
    bind_host : listen on this host (``0.0.0.0`` in a container) at the ports of
        ``serve.*_url``; default the URLs' own hosts
    allow_empty : when the store has no current archives yet, write a configuration that
        loads none instead of failing (compose's first start; models are registered later)

    Returns
    -------
    ``{"version", "archives": {model: file}, "config": path}``

    Raises
    ------
    ServeError : unknown or malformed version, no archives published, or an archive that is
        missing or does not hold the model its name says.
    """
    store = store if store is not None else open_store(settings)
    if version is not None:
        version = version.strip()
        if not _SERVING_VERSION.match(version):
            raise ServeError(
                f"--version {version!r} is not a serving version (12 hex digits, printed by "
                "`sharpseek serve build`)"
            )
        key = f"{STORE_PREFIX}/versions/{version}.json"
        if not store.exists(key):
            known = published_versions(store)
            raise ServeError(
                f"unknown serving version {version!r}: no {key} in {store.describe()} "
                f"(published: {', '.join(known[-5:]) if known else 'none'})"
            )
        archives = json.loads(store.get_bytes(key))["archives"]
    else:
        archives = store_current_archives(store)
        if not archives and not allow_empty:
            raise ServeError(
                f"no model archives published in {store.describe()} ({STORE_PREFIX}/<model>/"
                "CURRENT missing): run `sharpseek serve build` first"
            )
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    for model, file in sorted(archives.items()):
        key = f"{STORE_PREFIX}/{model}/{file}"
        if not store.exists(key):
            raise ServeError(f"archive {key} is missing from {store.describe()}")
        part = to / f"{file}.part"
        store.get_file(key, part)
        try:
            info = read_archive_info(part)
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as err:
            part.unlink()
            raise ServeError(f"{key} is not a sharpseek model archive ({err})") from None
        if info.model != model or info.file != file:
            part.unlink()
            raise ServeError(f"{key} holds {info.file} ({info.model}), not {file}")
        os.replace(part, to / file)
    (to / CURRENT).write_text(json.dumps(archives, indent=1))
    config = write_config(
        settings, list(archives.values()), path=to / "config.properties", model_store=to,
        bind_host=bind_host,
    )  # fmt: skip
    return {
        "version": serving_version(archives) if archives else None,
        "archives": archives,
        "config": config,
    }


# --------------------------------------------------------------------------------- config
def _host_port(url: str, what: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"serve.{what} must look like http://host:port, got {url!r}")
    return parts.hostname, parts.port


def write_config(
    settings: Settings,
    load: list[str] | None = None,
    *,
    path: Path | None = None,
    model_store: Path | None = None,
    bind_host: str | None = None,
) -> Path:
    """Write TorchServe's ``config.properties`` from ``settings.serve``; returns its path.

    ``load`` lists archive files to load at start (default: those of ``current.json``;
    none: TorchServe starts without models). ``path`` defaults to
    ``<home>/serve/config.properties``, ``model_store`` to :func:`model_store_dir`;
    ``bind_host`` replaces the host of the inference and metrics URLs (``0.0.0.0`` in a
    container). The management API then listens on ``127.0.0.1`` only: TorchServe 0.12 cannot
    be given a shared token, so the API that registers and deletes models is reachable only
    from inside the container or pod (``sharpseek serve swap`` run there).
    """
    serve = settings.serve
    address = {}
    for what in ("inference_url", "management_url", "metrics_url"):
        host, port = _host_port(getattr(serve, what), what)
        host = bind_host if bind_host else None
        if bind_host and what == "management_url":
            host = MANAGEMENT_BIND_HOST
        address[what] = f"http://{host}:{port}" if host else getattr(serve, what)
    store_dir = Path(model_store) if model_store is not None else model_store_dir(settings)
    load = load if load is not None else list(current_archives(settings).values())
    max_bytes = max_body_bytes(serve.max_items_per_request)
    lines = [
        "# Written by `sharpseek serve start` from settings.serve (docs/serving.md).",
        f"inference_address={address['inference_url']}",
        f"management_address={address['management_url']}",
        f"metrics_address={address['metrics_url']}",
        "metrics_mode=prometheus",
        # gRPC cannot be switched off in TorchServe 0.12; unused by sharpseek: loopback only
        f"grpc_inference_address={MANAGEMENT_BIND_HOST}",
        f"grpc_management_address={MANAGEMENT_BIND_HOST}",
        f"grpc_inference_port={serve.grpc_ports[0]}",
        f"grpc_management_port={serve.grpc_ports[1]}",
        f"model_store={store_dir.resolve()}",
        # TorchServe loads nothing at start when load_models is absent.
        *([f"load_models={','.join(load)}"] if load else []),
        f"enable_model_api={'true' if serve.enable_model_api else 'false'}",
        f"disable_token_authorization={'false' if serve.token_auth else 'true'}",
        f"token_expiration_min={serve.token_expiration_min}",
        f"default_workers_per_model={serve.workers}",
        f"default_response_timeout={int(max(1, serve.timeout_seconds))}",
        f"max_request_size={max_bytes}",
        f"max_response_size={max_bytes}",
        "install_py_dep_per_model=false",
        # System metrics poll psutil in a Python process every minute; the model metrics
        # (latency, queue, requests) are what the Prometheus endpoint is for.
        "disable_system_metrics=true",
        "allowed_urls=file://.*",
    ]
    path = Path(path) if path is not None else serve_dir(settings) / "config.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------- the process
def _state_path(settings: Settings) -> Path:
    return serve_dir(settings) / STATE


def _read_state(settings: Settings) -> dict | None:
    path = _state_path(settings)
    return json.loads(path.read_text()) if path.is_file() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _get(url: str, token: str | None, timeout: float = 5.0):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url, headers=headers, timeout=timeout)


def management_request(settings: Settings, method: str, path: str, **params):
    """One call to the management API with the management token; raises ServeError on 4xx/5xx."""
    token = resolve_token(settings, "management")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = settings.serve.management_url.rstrip("/") + path
    try:
        response = httpx.request(
            method,
            url,
            params=params,
            headers=headers,
            timeout=settings.serve.startup_timeout_seconds,
        )
    except httpx.HTTPError as err:
        raise ServeError(f"management API at {settings.serve.management_url}: {err}") from None
    if response.status_code >= 400:
        raise ServeError(f"{method} {path}: HTTP {response.status_code}: {_message(response)}")
    return response.json() if response.content else None


def _models_ready(settings: Settings, names: list[str]) -> bool:
    for name in names:
        try:
            described = management_request(settings, "GET", f"/models/{name}")
        except (ServeError, BackendAuthError):
            # BackendAuthError: TorchServe creates its key file, then writes it; read in
            # between, it is empty (seen in CI). Not ready yet: the caller asks again.
            return False
        workers = [w for entry in described for w in entry.get("workers", [])]
        if not workers or not any(w.get("status") == "READY" for w in workers):
            return False
    return True


def start(settings: Settings, *, wait: bool = True, models: list[str] | None = None) -> dict:
    """Start TorchServe in the background with :func:`write_config`'s configuration.

    Runs in ``<home>/serve`` (its key file, logs and temporary files stay there), in a
    process group of its own so :func:`stop` ends it and its workers together. With
    ``wait``, returns once the models named in ``current.json`` have a READY worker, or
    raises :class:`ServeError` with the end of the log after
    ``serve.startup_timeout_seconds``.

    Returns the state recorded in ``<home>/serve/torchserve.json`` (pid, URLs, archives).
    """
    state = _read_state(settings)
    if state and _alive(state["pid"]):
        raise ServeError(
            f"TorchServe already runs here (pid {state['pid']}, {state['inference_url']}); "
            "`sharpseek serve stop` first"
        )
    current = current_archives(settings)
    load = [current[m] for m in (models or current)] if current else []
    if not load:
        raise ServeError(
            f"no model archives in {model_store_dir(settings)}: run `sharpseek serve build` first"
        )
    for what in ("inference_url", "management_url", "metrics_url"):
        host, port = _host_port(getattr(settings.serve, what), what)

        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                raise ServeError(f"port {port} of serve.{what} is already in use")
    config = write_config(settings, load)
    run_dir = serve_dir(settings)
    logs = run_dir / "logs"
    tmp = run_dir / "tmp"
    logs.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    (run_dir / "key_file.json").unlink(missing_ok=True)
    env = dict(os.environ)
    # TorchServe's launcher keeps its pid file in tempfile.gettempdir() (TMPDIR) and Java's
    # temporary files (unpacked archives) in TEMP: both per run folder, so several servers
    # (tests, engineers) on one machine never see each other's.
    env.update(TMPDIR=str(tmp), TEMP=str(tmp), LOG_LOCATION=str(logs), METRICS_LOCATION=str(logs))
    if settings.serve.threads_per_worker is not None:
        env["OMP_NUM_THREADS"] = str(settings.serve.threads_per_worker)
        env["MKL_NUM_THREADS"] = str(settings.serve.threads_per_worker)
    cmd = [
        sys.executable, "-m", "ts.model_server", "--start", "--foreground",
        "--ts-config", str(config), "--model-store", str(model_store_dir(settings).resolve()),
        "--ncs",
    ]  # fmt: skip
    out = open(logs / "torchserve.out", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        cmd, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    state = {
        "pid": process.pid,
        "inference_url": settings.serve.inference_url,
        "management_url": settings.serve.management_url,
        "metrics_url": settings.serve.metrics_url,
        "archives": load,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _state_path(settings).write_text(json.dumps(state, indent=1))
    if wait:
        names = [name.split("-", 1)[0] for name in load]
        deadline = time.monotonic() + settings.serve.startup_timeout_seconds
        while True:
            if process.poll() is not None:
                _state_path(settings).unlink(missing_ok=True)
                raise ServeError(f"TorchServe exited during start:\n{_log_tail(settings)}")
            if (run_dir / "key_file.json").is_file() or not settings.serve.token_auth:
                if _models_ready(settings, names):
                    break
            if time.monotonic() > deadline:
                stop(settings)
                raise ServeError(
                    f"TorchServe not ready within {settings.serve.startup_timeout_seconds} s "
                    f"(serve.startup_timeout_seconds):\n{_log_tail(settings)}"
                )
            time.sleep(1.0)
    return state


def _log_tail(settings: Settings, lines: int = 30) -> str:
    logs = serve_dir(settings) / "logs"
    text = []
    for name in ("torchserve.out", "model_log.log", "ts_log.log"):
        path = logs / name
        if path.is_file():
            text.append(f"--- {path}")
            text.extend(path.read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(text)


def stop(settings: Settings, *, timeout: float = 60.0) -> bool:
    """Stop the TorchServe that :func:`start` started here (its whole process group).

    SIGTERM first, SIGKILL after ``timeout`` seconds. Returns False when none was running.
    """
    state = _read_state(settings)
    if state is None:
        return False
    pid = state["pid"]
    running = _alive(pid)
    if running:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _group_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.2)
        if _group_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.5)
        _reap(pid)
    _state_path(settings).unlink(missing_ok=True)
    (serve_dir(settings) / "key_file.json").unlink(missing_ok=True)
    return running


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _group_alive(pgid: int) -> bool:
    return bool(group_pids(pgid))


def status(settings: Settings) -> dict:
    """Where the local TorchServe stands: running, healthy, models and their versions."""
    state = _read_state(settings)
    out: dict = {"running": False, "pid": None, "healthy": False, "models": {}}
    if state is None or not _alive(state["pid"]):
        return out
    out.update(running=True, pid=state["pid"], inference_url=state["inference_url"])
    try:
        ping = _get(
            settings.serve.inference_url.rstrip("/") + "/ping", resolve_token(settings, "inference")
        )
        out["healthy"] = ping.status_code == 200 and "Healthy" in ping.text
        listing = management_request(settings, "GET", "/models")
        for entry in listing.get("models", []):
            described = management_request(settings, "GET", f"/models/{entry['modelName']}/all")
            out["models"][entry["modelName"]] = [
                {
                    "version": d.get("modelVersion"),
                    "default": d.get("modelUrl") == entry.get("modelUrl"),
                    "workers": [w.get("status") for w in d.get("workers", [])],
                    "batch_size": d.get("batchSize"),
                    "max_batch_delay_ms": d.get("maxBatchDelay"),
                }
                for d in described
            ]
    except Exception as err:  # noqa: BLE001 - status reports, never raises
        out["error"] = str(err)
    return out


def drain_version(settings: Settings, model: str, version: str) -> float:
    """Wait until no request is left with ``model`` ``version``, which is no longer the default.

    TorchServe unregisters a version by stopping its workers at once: a request a worker
    holds is answered "500 Worker died", and it offers no way to wait for it
    (pytorch/serve#1101; scaling to 0 workers does the same). Its description shows the
    queue (``jobQueueStatus.pendingRequests``) but not which workers are busy. So: wait for
    the queue to empty (at most ``serve.startup_timeout_seconds``), then
    ``serve.drain_seconds`` more for the requests the workers took from it.

    Returns the seconds waited.
    """
    started = time.monotonic()
    deadline = started + settings.serve.startup_timeout_seconds
    while True:
        described = management_request(settings, "GET", f"/models/{model}/{version}")
        pending = sum(
            int((entry.get("jobQueueStatus") or {}).get("pendingRequests", 0))
            for entry in described
        )
        if pending == 0:
            break
        if time.monotonic() > deadline:
            raise ServeError(
                f"{model} version {version}: {pending} requests still queued after "
                f"{settings.serve.startup_timeout_seconds} s (serve.startup_timeout_seconds); "
                "not unregistered"
            )
        time.sleep(0.05)
    time.sleep(settings.serve.drain_seconds)
    return time.monotonic() - started


def swap_model(settings: Settings, archive: str, *, unregister_old: bool = True) -> dict:
    """Serve ``archive`` (a file in the model store) instead of the model's current version.

    Through the management API (``serve.enable_model_api`` must be on): register the new
    version and wait for its workers (``synchronous=true``), make it the default version —
    from then on new requests go to it — then drain each old version (:func:`drain_version`)
    and unregister it. Requests keep being answered throughout (tests/test_serving.py).

    Returns ``{"model", "version", "previous"}``.
    """
    path = model_store_dir(settings) / archive
    if not path.is_file():
        raise ServeError(f"no archive {archive!r} in {model_store_dir(settings)}")
    info = read_archive_info(path)
    before = management_request(settings, "GET", f"/models/{info.model}/all")
    previous = [d["modelVersion"] for d in before]
    if info.version not in previous:
        management_request(
            settings,
            "POST",
            "/models",
            url=archive,
            initial_workers=settings.serve.workers,
            synchronous="true",
        )
    management_request(settings, "PUT", f"/models/{info.model}/{info.version}/set-default")
    if unregister_old:
        for version in previous:
            if version != info.version:
                drain_version(settings, info.model, version)
                management_request(settings, "DELETE", f"/models/{info.model}/{version}")
    current = current_archives(settings)
    current[info.model] = archive
    (model_store_dir(settings) / CURRENT).write_text(json.dumps(current, indent=1))
    return {"model": info.model, "version": info.version, "previous": previous}
