"""`sharpseek serve fetch`: published serving versions from a local store into a model-store
folder with the TorchServe configuration that loads exactly them (what the Helm chart's init
container and compose's TorchServe run), refusals with a clear message, and one real
TorchServe started the way the containers start it, from the fetched folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import torch
from typer.testing import CliRunner

from sharpseek.cli.app import app
from sharpseek.config import Settings
from sharpseek.data.store import open_store
from sharpseek.serving import archives as model_archives
from sharpseek.serving import torchserve as serving

pytest_plugins = ["model_fixtures"]


def _said(result) -> str:
    """The CLI's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _properties(path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.fixture
def published(untrained_home):
    """Two serving versions in the local store: the first, then a newer generator archive
    (another batch size changes its model-config.yaml, hence its version)."""
    torch.set_num_threads(1)
    first = {a.model: a.file for a in model_archives.build_archives(untrained_home)}
    newer_settings = untrained_home.model_copy(
        update={"serve": untrained_home.serve.model_copy(update={"batch_size": 3})}
    )
    (newer,) = model_archives.build_archives(newer_settings, models=("generator",))
    second = {**first, "generator": newer.file}
    assert second["generator"] != first["generator"]
    return untrained_home, first, second


def test_fetch_current_and_pinned_versions(published, tmp_path):
    settings, first, second = published
    store = open_store(settings)
    assert model_archives.store_current_archives(store) == second
    assert model_archives.published_versions(store) == sorted(
        [model_archives.serving_version(first), model_archives.serving_version(second)]
    )

    current = tmp_path / "current"
    done = serving.fetch_archives(settings, current)
    assert done["archives"] == second and done["version"] == model_archives.serving_version(second)
    assert json.loads((current / "current.json").read_text()) == second
    assert sorted(p.name for p in current.glob("*.mar")) == sorted(second.values())
    props = _properties(done["config"])
    assert props["load_models"].split(",") == list(second.values())
    assert props["model_store"] == str(current.resolve())
    assert props["disable_token_authorization"] == "false"  # the settings' default: on
    for name in second.values():  # byte-equal to what build published
        assert (current / name).read_bytes() == store.get_bytes(
            f"model-store/{name.split('-', 1)[0]}/{name}"
        )

    pinned = tmp_path / "pinned"
    result = CliRunner().invoke(
        app,
        ["serve", "fetch", "--to", str(pinned), "--version", model_archives.serving_version(first),
         "--bind", "0.0.0.0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert model_archives.serving_version(first) in result.output
    props = _properties(pinned / "config.properties")
    assert props["load_models"].split(",") == list(first.values())
    port = settings.serve.inference_url.rsplit(":", 1)[1]
    assert props["inference_address"] == f"http://0.0.0.0:{port}"
    # no shared token in TorchServe 0.12: the model-registering API stays inside the container
    management_port = settings.serve.management_url.rsplit(":", 1)[1]
    assert props["management_address"] == f"http://127.0.0.1:{management_port}"


def test_fetch_refuses_unknown_malformed_and_missing(published, tmp_path):
    settings, first, _ = published
    runner = CliRunner()
    to = str(tmp_path / "ms")
    result = runner.invoke(app, ["serve", "fetch", "--to", to, "--version", "0123456789ab"])
    assert result.exit_code == 2 and "unknown serving version '0123456789ab'" in _said(result)
    assert model_archives.serving_version(first) in _said(result)  # names the published ones
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["serve", "fetch", "--to", to, "--version", "live"])
    assert result.exit_code == 2 and "not a serving version" in _said(result)
    # a version whose archive has gone from the store
    store = open_store(settings)
    store.delete(f"model-store/encoder/{first['encoder']}")
    result = runner.invoke(
        app, ["serve", "fetch", "--to", to, "--version", model_archives.serving_version(first)]
    )
    assert result.exit_code == 2 and f"model-store/encoder/{first['encoder']}" in _said(result)
    assert "is missing" in _said(result)


def test_fetch_from_an_empty_store(tmp_path):
    runner = CliRunner()
    env = {"SHARPSEEK_HOME": str(tmp_path / "empty")}
    to = tmp_path / "ms"
    result = runner.invoke(app, ["serve", "fetch", "--to", str(to)], env=env)
    assert result.exit_code == 2 and "sharpseek serve build" in _said(result)
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["serve", "fetch", "--to", str(to), "--allow-empty"], env=env)
    assert result.exit_code == 0, result.output
    assert "load_models" not in _properties(to / "config.properties")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_torchserve_serves_exactly_the_fetched_version(published, tmp_path):
    """The container command: fetch, then TorchServe with the fetched config. Token auth off
    as in the containers (docs/serving.md says why)."""
    settings, first, _ = published
    inference, management, metrics, *grpc = _free_ports(5)
    container = Settings(
        home=settings.home,
        preset="tiny",
        serve={
            "grpc_ports": tuple(grpc),
            "inference_url": f"http://127.0.0.1:{inference}",
            "management_url": f"http://127.0.0.1:{management}",
            "metrics_url": f"http://127.0.0.1:{metrics}",
            "token_auth": False,
            "threads_per_worker": 1,
        },
    )
    to = tmp_path / "model-store"
    serving.fetch_archives(container, to, model_archives.serving_version(first))
    run = tmp_path / "run"
    (run / "tmp").mkdir(parents=True)
    env = dict(os.environ, TMPDIR=str(run / "tmp"), TEMP=str(run / "tmp"), OMP_NUM_THREADS="1")
    env.update(LOG_LOCATION=str(run), METRICS_LOCATION=str(run))
    cmd = [
        sys.executable, "-m", "ts.model_server", "--start", "--foreground",
        "--ts-config", str(to / "config.properties"), "--model-store", str(to), "--ncs",
    ]  # fmt: skip
    with open(run / "out.log", "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=run, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 400
        served: dict[str, str] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                listing = httpx.get(f"http://127.0.0.1:{management}/models", timeout=5).json()
                for entry in listing.get("models", []):
                    (described,) = httpx.get(
                        f"http://127.0.0.1:{management}/models/{entry['modelName']}", timeout=5
                    ).json()
                    if any(w["status"] == "READY" for w in described["workers"]):
                        served[entry["modelName"]] = described["modelVersion"]
                if len(served) == 2:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1.0)
        assert proc.poll() is None, (run / "out.log").read_text()[-3000:]
        expected = {
            model: model_archives.read_archive_info(to / file).version
            for model, file in first.items()
        }
        assert served == expected
        ping = httpx.get(f"http://127.0.0.1:{inference}/ping", timeout=5)
        assert ping.status_code == 200 and "Healthy" in ping.text
    finally:
        # the launcher, the JVM and its Python workers share the process group
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while serving.group_pids(proc.pid) and time.monotonic() < deadline:
            proc.poll()
            time.sleep(0.2)
        if serving.group_pids(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.5)
        proc.wait()
        assert serving.group_pids(proc.pid) == [], "TorchServe left processes behind"


def test_handlers_dir_comes_from_the_settings_when_set(tmp_path):
    """Where sharpseek is pip-installed (the worker image) the handlers are not above the
    package; ``serve.handlers_dir`` names them, and a folder without them is refused."""
    import shutil

    from sharpseek.config import Settings
    from sharpseek.serving.archives import ServeError, handlers_dir

    source = handlers_dir()
    assert (source / "base_handler.py").is_file()
    copy = tmp_path / "handlers"
    shutil.copytree(source, copy)
    settings = Settings(home=tmp_path / "home", serve={"handlers_dir": copy})
    assert handlers_dir(settings) == copy
    empty = Settings(home=tmp_path / "home", serve={"handlers_dir": tmp_path})
    with pytest.raises(ServeError, match="holds no base_handler.py"):
        handlers_dir(empty)
