"""Real TorchServe (Java + the handlers of sharpseek/serving/handlers/) on free ports: both models
against the in-process results, bad inputs, auth, metrics, the model swap without downtime,
and a clean stop. One server for the module: the JVM takes ~20-60 s to start on 2 cores."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import zipfile

import httpx
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sharpseek.cli.app import app
from sharpseek.config import Settings
from sharpseek.data.store import open_store
from sharpseek.models.inference import GeneratorModel
from sharpseek.science.directions import DirectionSet, fit_directions
from sharpseek.serving import archives as model_archives
from sharpseek.serving import torchserve as serving
from sharpseek.serving.backends import (
    BackendAuthError,
    InProcessBackend,
    RequestError,
    TorchServeBackend,
    read_key_file,
)
from sharpseek.serving.protocol import encode_embed_request

pytest_plugins = ["model_fixtures"]
pytestmark = pytest.mark.slow

# float16 has an 11-bit significand: |x - fp16(x)| <= 2**-11 |x| <= 2**-11 for |x| <= 1.
FP16_ATOL = 2.0**-11


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _settings(home, ports) -> Settings:
    inference, management, metrics, *grpc = ports
    return Settings(
        home=home,
        preset="tiny",
        serve={
            "backend": "torchserve",
            "grpc_ports": tuple(grpc),
            "inference_url": f"http://127.0.0.1:{inference}",
            "management_url": f"http://127.0.0.1:{management}",
            "metrics_url": f"http://127.0.0.1:{metrics}",
            "enable_model_api": True,
            "threads_per_worker": 1,
            "max_items_per_request": 16,
            "batch_size": 4,
            "max_batch_delay_ms": 10,
            "timeout_seconds": 120,
            "startup_timeout_seconds": 400,
        },
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Untrained checkpoints + small directions, archives built, TorchServe started; always
    stopped at the end, and no process of its group may be left."""
    from model_fixtures import write_untrained_checkpoints

    torch.set_num_threads(1)
    settings = _settings(tmp_path_factory.mktemp("serve") / "home", _free_ports(5))
    write_untrained_checkpoints(settings)
    generator = GeneratorModel.from_settings(settings)
    directions = fit_directions(
        generator.generate, gan_version=generator.version, latent_dim=generator.latent_dim, n=200
    )
    directions.save(open_store(settings))
    archives = model_archives.build_archives(settings)
    state = None
    try:
        state = serving.start(settings)
        yield settings, archives
    finally:
        pid = state["pid"] if state else (serving._read_state(settings) or {}).get("pid")
        serving.stop(settings)
        if pid is not None:
            assert serving.group_pids(pid) == [], "TorchServe left processes behind"
        assert not (model_archives.serve_dir(settings) / "key_file.json").exists()


@pytest.fixture(scope="module")
def inprocess(server):
    settings, _ = server
    return InProcessBackend(settings)


@pytest.fixture(scope="module")
def backend(server):
    with TorchServeBackend(server[0]) as client:
        yield client


def _token(settings, api="inference") -> dict:
    key = read_key_file(model_archives.serve_dir(settings) / "key_file.json")[api]
    return {"Authorization": f"Bearer {key}"}


def _shift_names(inprocess) -> tuple[str, str]:
    names = sorted(inprocess.directions.boundaries)
    return names[0], names[1]


# ---------------------------------------------------------------------------- archives
def test_archives_record_what_they_hold(server):
    settings, archives = server
    by_model = {a.model: a for a in archives}
    gen = by_model["generator"]
    assert gen.gan == GeneratorModel.from_settings(settings).version
    directions = DirectionSet.load(open_store(settings), gen.gan)
    assert gen.directions == directions.version and gen.version.startswith(gen.gan + ".")
    with zipfile.ZipFile(model_archives.model_store_dir(settings) / gen.file) as mar:
        names = set(mar.namelist())
    assert {
        "MAR-INF/MANIFEST.json",
        "generator_handler.py",
        "base_handler.py",
        gen.checkpoint,
    } <= names
    assert open_store(settings).exists(f"model-store/generator/{gen.file}")
    # same inputs -> same archive version, nothing rewritten
    again = model_archives.build_archives(settings, models=("encoder",), upload=False)
    assert again[0].version == by_model["encoder"].version


# ---------------------------------------------------------------------------- both models
def test_generator_by_seeds_with_shifts_matches_inprocess(backend, inprocess):
    name, held = _shift_names(inprocess)
    served = backend.generate(seeds=[1, 2, 3], shifts={name: 1.5}, hold=[held])
    local = inprocess.generate(seeds=[1, 2, 3], shifts={name: 1.5}, hold=[held])
    assert served.images.shape == (3, 128, 128) and served.images.dtype == np.float32
    np.testing.assert_allclose(served.images, local.images, rtol=0, atol=FP16_ATOL)
    np.testing.assert_allclose(served.z, local.z, rtol=1e-6)
    assert served.parameters.keys() == local.parameters.keys()
    for key in served.parameters:  # measured on the float32 images, server side
        np.testing.assert_allclose(
            served.parameters[key], local.parameters[key], rtol=1e-5, atol=1e-9
        )
    assert (served.gan_version, served.directions_version) == (
        local.gan_version,
        local.directions_version,
    )


def test_generator_by_latents_matches_inprocess(backend, inprocess):
    z = np.random.default_rng(7).standard_normal((5, 100)).astype(np.float32)
    served = backend.generate(z, parameters=False)
    np.testing.assert_allclose(served.images, inprocess.generate(z).images, rtol=0, atol=FP16_ATOL)
    assert served.parameters == {}


def test_large_calls_are_split_into_allowed_requests(backend, inprocess):
    seeds = list(range(40))  # max_items_per_request is 16
    served = backend.generate(seeds=seeds, parameters=False)
    np.testing.assert_allclose(
        served.images, inprocess.generate(seeds=seeds).images, rtol=0, atol=FP16_ATOL
    )


def test_encoder_matches_inprocess(backend, inprocess):
    images = inprocess.generate(seeds=[4, 5, 6], parameters=False).images
    served = backend.embed(images)
    # the server sees the float16 images: the same embeddings to float32 precision
    local16 = inprocess.embed(images.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(served, local16, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served, inprocess.embed(images), rtol=1e-2, atol=1e-2)


def test_versions_match_inprocess(backend, inprocess):
    assert backend.versions() == inprocess.versions()


def test_load_directions_through_torchserve_is_the_inprocess_set(backend, inprocess):
    served = backend.load_directions()
    assert served.version == backend.versions()["directions"] == inprocess.directions.version


def _requests_served(settings, model: str) -> float:
    """TorchServe's own count of inference requests to ``model`` (Prometheus metrics)."""
    text = httpx.get(f"{settings.serve.metrics_url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ts_inference_requests_total") and f'model_name="{model}"' in line
    )


def test_cli_search_by_seed_runs_on_torchserve_and_finds_what_inprocess_finds(server, inprocess):
    """`sharpseek search --seed` with serve.backend=torchserve: the query is generated,
    shifted and embedded by TorchServe (its request counters move, the JSON names it) and
    the hits are those of the in-process backend."""
    from ingest_fixtures import synthetic_dataset
    from sharpseek.pipeline.index_plans import plan_index, run_index_plan

    settings = server[0]
    synthetic_dataset(settings, regions=8, frames=2)
    plan = plan_index(settings, datasets=["synthetic"], mode="reindex")  # `sharpseek index build`
    assert plan.encoder_version == inprocess.versions()["encoder"]
    run_index_plan(settings, plan, progress=False)
    name, held = _shift_names(inprocess)
    env = {
        "SHARPSEEK_HOME": str(settings.home),
        "SHARPSEEK_SERVE__INFERENCE_URL": settings.serve.inference_url,
        "SHARPSEEK_SERVE__MAX_ITEMS_PER_REQUEST": "16",
    }
    args = ["search", "--seed", "3", "--shift", f"{name}=1.5", "--hold", held, "-k", "4", "--json"]

    def search(backend: str) -> dict:
        result = CliRunner().invoke(app, args, env=env | {"SHARPSEEK_SERVE__BACKEND": backend})
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    before = {m: _requests_served(settings, m) for m in ("generator", "encoder")}
    served = search("torchserve")
    after = {m: _requests_served(settings, m) for m in ("generator", "encoder")}
    local = search("inprocess")
    assert all(after[m] > before[m] for m in before), (before, after)
    assert served["models"]["backend"] == "torchserve" and local["models"]["backend"] == "inprocess"
    assert {k: v for k, v in served["models"].items() if k != "backend"} == {
        k: v for k, v in local["models"].items() if k != "backend"
    }
    assert served["query"]["description"] == f"seed 3, {name} +1.5, holding {held}"
    hits = [r["record_id"] for r in served["results"]]
    assert len(hits) == 4 and hits == [r["record_id"] for r in local["results"]]
    # the server embeds the float16 image: distances agree to that precision
    np.testing.assert_allclose(
        [r["distance"] for r in served["results"]],
        [r["distance"] for r in local["results"]],
        rtol=1e-2,
        atol=1e-2,
    )


def test_concurrent_requests_are_batched_and_each_answered(server, backend, inprocess):
    results = {}

    def call(seed):
        results[seed] = backend.generate(seeds=[seed], parameters=False).images

    threads = [threading.Thread(target=call, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    local = inprocess.generate(seeds=list(range(8)), parameters=False).images
    for seed in range(8):
        np.testing.assert_allclose(results[seed][0], local[seed], atol=FP16_ATOL)


# ---------------------------------------------------------------------------- bad inputs
def _post(settings, model, headers=None, headers_extra=None, **kwargs):
    url = f"{settings.serve.inference_url}/predictions/{model}"
    headers = dict(headers if headers is not None else _token(settings))
    return httpx.post(url, headers={**headers, **(headers_extra or {})}, timeout=60, **kwargs)


_JSON = {"headers_extra": {"Content-Type": "application/json"}}


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "model, kwargs, message",
    [
        ("encoder", {"content": encode_embed_request(np.zeros((2, 64, 64)))}, "(n, 128, 128)"),
        ("encoder", {"content": encode_embed_request(np.full((1, 128, 128), np.nan))}, "NaN"),
        ("encoder", {"content": encode_embed_request(np.zeros((17, 128, 128)))}, "limit of 16"),
        ("encoder", {"content": b"not an array"}, "not a .npy"),
        ("generator", {"json": {"seeds": list(range(17))}}, "limit of 16"),
        ("generator", {"json": {"seeds": [1], "shifts": {"no-such": 1.0}}}, "unknown direction"),
        ("generator", {"json": {"seeds": [1], "shifts": {"tuf": 1.0}, "hold": ["tuf"]}}, "hold"),
        ("generator", {"json": {"seed": [1]}}, "unknown field"),
        ("generator", {"json": {"seeds": [1], "shifts": {"tuf": 1e308}}}, "beyond"),
        ("generator", {"content": b"[" * 100_000 + b"]" * 100_000, **_JSON}, "nested deeper"),
        ("encoder", {"content": _npy_bytes(np.zeros((1, 128, 128)))}, "dtype float64"),
        ("encoder", {"content": encode_embed_request(np.full((1, 128, 128), 2.0))}, "[-1, 1]"),
    ],
)
def test_bad_input_is_a_400_with_a_message(server, model, kwargs, message):
    response = _post(server[0], model, **kwargs)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_nan_latents_are_a_400(server, backend):
    with pytest.raises(RequestError, match="NaN") as info:
        backend.generate(np.full((2, 100), np.nan, np.float32))
    assert info.value.status == 400


def test_unknown_direction_through_the_client(backend):
    with pytest.raises(RequestError, match="unknown direction") as info:
        backend.generate(seeds=[1], shifts={"no-such": 1.0})
    assert info.value.status == 400


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
def test_missing_or_wrong_token_is_refused(server, headers):
    response = _post(server[0], "generator", headers=headers, json={"seeds": [1]})
    assert response.status_code == 400
    assert "Token Authorization failed" in response.json()["message"]


def test_client_with_a_wrong_token_raises_auth_error(server):
    client = TorchServeBackend(server[0], token="wrong-token")
    with pytest.raises(BackendAuthError, match="refused the inference token"):
        client.generate(seeds=[1])


def test_a_bad_request_does_not_fail_its_batch_neighbours(server, backend):
    answers = {}

    def good():
        answers["good"] = backend.generate(seeds=[9], parameters=False)

    def bad():
        answers["bad"] = _post(server[0], "generator", json={"seeds": [1], "shifts": {"x": 1}})

    threads = [threading.Thread(target=f) for f in (good, bad, good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers["bad"].status_code == 400 and answers["good"].images.shape == (1, 128, 128)


@pytest.mark.parametrize(
    "bad",
    [
        {"json": {"seeds": [1], "shifts": {"tuf": 1e308}}},
        {"content": b"[" * 100_000 + b"]" * 100_000, **_JSON},
    ],
    ids=["huge-shift", "deep-json"],
)
def test_one_bad_beside_seven_good_requests_answers_seven_good(server, inprocess, bad):
    """The issue's case: before, 30-35 of 35 good neighbours got 503. Eight requests at once
    (batch_size 4: the bad one shares a batch with three good ones) and no client retries."""
    settings = server[0]
    answers = {}

    def ask(i):
        if i == 3:
            answers[i] = _post(settings, "generator", **bad)
        else:
            answers[i] = _post(settings, "generator", json={"seeds": [i], "parameters": False})

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers[3].status_code == 400, answers[3].text
    good = {i: r for i, r in answers.items() if i != 3}
    assert {i: r.status_code for i, r in good.items()} == dict.fromkeys(good, 200)
    local = inprocess.generate(seeds=sorted(good), parameters=False).images
    for row, i in enumerate(sorted(good)):
        images = np.load(io.BytesIO(good[i].content))["images"].astype(np.float32)
        np.testing.assert_allclose(images[0], local[row], atol=FP16_ATOL)


# ---------------------------------------------------------------------------- operations
def test_prometheus_metrics_count_requests(server, backend):
    backend.generate(seeds=[1], parameters=False)
    text = httpx.get(f"{server[0].serve.metrics_url}/metrics", timeout=30).text
    assert "ts_inference_requests_total" in text and 'model_name="generator"' in text


def test_status_lists_both_models_with_batching(server):
    state = serving.status(server[0])
    assert state["running"] and state["healthy"]
    for name in ("generator", "encoder"):
        (version,) = state["models"][name]
        assert version["workers"] == ["READY"] and version["default"]
        assert (version["batch_size"], version["max_batch_delay_ms"]) == (4, 10)


def test_cli_status_and_refused_second_start(server):
    settings = server[0]
    env = {
        "SHARPSEEK_HOME": str(settings.home),
        "SHARPSEEK_SERVE__MANAGEMENT_URL": settings.serve.management_url,
        "SHARPSEEK_SERVE__INFERENCE_URL": settings.serve.inference_url,
    }
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "status"], env=env)
    assert result.exit_code == 0 and "healthy" in result.output and "generator" in result.output
    result = runner.invoke(app, ["serve", "start"], env=env)
    assert result.exit_code == 2 and "already runs" in result.output


def test_swap_to_a_new_version_without_a_failed_request(server, backend, tmp_path):
    """Register a retrained generator through the management API while a thread keeps
    sending requests: every request is answered, first by the old version then the new."""
    from model_fixtures import write_untrained_checkpoints

    settings = server[0]
    old = backend.versions()["gan"]
    # "retrain": another generator under the same run name (new weights, new epoch)
    write_untrained_checkpoints(settings, seed=1, epoch=2)
    (new_archive,) = model_archives.build_archives(settings, models=("generator",), upload=False)
    assert new_archive.gan != old and new_archive.directions is None

    seen, failures, stop = [], [], threading.Event()

    def keep_asking():
        with TorchServeBackend(settings) as client:
            while not stop.is_set():
                try:
                    seen.append(client.generate(seeds=[3], parameters=False).gan_version)
                except Exception as err:  # noqa: BLE001 - every failure is counted
                    failures.append(repr(err))

    # One client: a request of it the old version's worker still held when the swap
    # unregistered that version was answered "500 Worker died" in about 1 CI run in 7 before
    # the drain (serving.drain_version). (Four clients in threads were tried: they did not
    # reproduce that, and hit a CPython race instead, "AST constructor recursion depth
    # mismatch", in the clients themselves.)
    threads = [threading.Thread(target=keep_asking)]
    for thread in threads:
        thread.start()
    try:
        while len(seen) < 3 and all(t.is_alive() for t in threads):
            time.sleep(0.1)
        done = serving.swap_model(settings, new_archive.file)
        deadline = time.monotonic() + 30
        while (not seen or seen[-1] != new_archive.gan) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a few more requests after the old version is gone
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    # TorchServe's own log beside a failure: which version's worker died, and why
    assert failures == [], f"{failures}\n{serving._log_tail(settings, lines=80)}"
    assert seen[0] == old and seen[-1] == new_archive.gan
    assert seen.index(new_archive.gan) > 0 and set(seen) == {old, new_archive.gan}
    assert done["version"] == new_archive.version
    state = serving.status(settings)
    assert [v["version"] for v in state["models"]["generator"]] == [new_archive.version]


def test_serve_cli_without_archives_or_server(tmp_path):
    env = {"SHARPSEEK_HOME": str(tmp_path / "empty")}
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "start"], env=env)
    assert result.exit_code == 2 and "sharpseek serve build" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["serve", "stop"], env=env)
    assert result.exit_code == 0 and "not running" in result.output
    result = runner.invoke(app, ["serve", "build"], env=env)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_key_file_caught_half_written_means_not_ready_yet(tmp_path):
    """TorchServe creates key_file.json, then fills it: read in between it is empty. The start
    loop must take that as "not ready yet" and ask again, not fail (a CI run hit it)."""
    settings = _settings(tmp_path / "home", _free_ports(5))
    key_file = model_archives.serve_dir(settings) / "key_file.json"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("")
    with pytest.raises(BackendAuthError, match="cannot read TorchServe key file"):
        read_key_file(key_file)
    assert serving._models_ready(settings, ["encoder"]) is False
