"""The model backends without a server: the wire protocol, the in-process backend, and the
HTTP client's retries/timeouts/errors against a small stub server (real TorchServe:
tests/test_serving.py)."""

from __future__ import annotations

import http.server
import json
import threading

import numpy as np
import pytest
import torch

from sharpseek.config import Settings
from sharpseek.data.store import open_store
from sharpseek.models.inference import EncoderModel, GeneratorModel, latent_from_seeds
from sharpseek.science.directions import DirectionSet, fit_directions, shift
from sharpseek.serving.backends import (
    BackendAuthError,
    BackendUnavailable,
    InProcessBackend,
    RequestError,
    TorchServeBackend,
    open_backend,
    read_key_file,
)
from sharpseek.serving.protocol import (
    GenerateRequest,
    decode_embed_request,
    decode_generate_request,
    decode_generate_response,
    encode_embed_request,
    encode_generate_request,
    encode_generate_response,
    run_generate,
)

pytest_plugins = ["model_fixtures"]


@pytest.fixture
def fitted_home(untrained_home):
    """Untrained checkpoints plus a small DirectionSet of the GAN (200 samples)."""
    torch.set_num_threads(1)
    generator = GeneratorModel.from_settings(untrained_home)
    directions = fit_directions(
        generator.generate, gan_version=generator.version, latent_dim=generator.latent_dim, n=200
    )
    directions.save(open_store(untrained_home))
    return untrained_home


# ---------------------------------------------------------------------------- protocol
def test_generate_request_round_trip_with_z():
    z = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    body, files = encode_generate_request(GenerateRequest(z=z, shifts={"tuf": 1.5}, hold=["r"]))
    assert body is None
    parts = {name: content for name, (_, content, _) in files.items()}
    decoded = decode_generate_request(parts, latent_dim=100)
    np.testing.assert_array_equal(decoded.z, z)
    assert decoded.shifts == {"tuf": 1.5} and decoded.hold == ["r"] and decoded.parameters


def test_generate_request_round_trip_with_seeds():
    body, files = encode_generate_request(GenerateRequest(seeds=[3, 4], parameters=False))
    assert files is None
    decoded = decode_generate_request({"body": json.dumps(body).encode()}, latent_dim=100)
    assert decoded.seeds == [3, 4] and not decoded.parameters and decoded.z is None


@pytest.mark.parametrize(
    "parts, message",
    [
        ({"body": b'{"seeds": [1, -2]}'}, "non-negative"),
        ({"body": b'{"seeds": [1], "colour": 3}'}, "unknown field"),
        ({"body": b"not json"}, "not valid JSON"),
        ({"body": b'{"seeds": [1], "shifts": {"tuf": "big"}}'}, "finite number"),
        ({"body": json.dumps({"seeds": list(range(5))}).encode()}, "more than the limit of 4"),
        ({}, "expected a JSON body"),
    ],
)
def test_bad_generate_requests_name_the_problem(parts, message):
    with pytest.raises(RequestError, match=message):
        decode_generate_request(parts, latent_dim=100, max_items=4)


def test_bad_latents_are_refused():
    def npy(array):
        import io

        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    with pytest.raises(RequestError, match=r"shape \(n, 100\)"):
        decode_generate_request({"z": npy(np.zeros((2, 7), np.float32))}, latent_dim=100)
    with pytest.raises(RequestError, match="NaN"):
        decode_generate_request({"z": npy(np.full((1, 100), np.nan, np.float32))}, latent_dim=100)
    with pytest.raises(RequestError, match="float16/float32"):
        decode_generate_request({"z": npy(np.zeros((1, 100), np.int64))}, latent_dim=100)
    with pytest.raises(RequestError, match="not a .npy"):
        decode_generate_request({"z": b"garbage"}, latent_dim=100)


def test_images_travel_as_float16():
    images = np.random.default_rng(1).uniform(-1, 1, (2, 128, 128)).astype(np.float32)
    body = encode_embed_request(images)
    assert len(body) < 2 * 128 * 128 * 2 + 200  # float16: 2 bytes per pixel, small header
    decoded = decode_embed_request({"body": body})
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, images.astype(np.float16).astype(np.float32))
    with pytest.raises(RequestError, match=r"\(n, 128, 128\)"):
        decode_embed_request({"body": encode_embed_request(np.zeros((2, 64, 64)))})
    with pytest.raises(RequestError, match="NaN"):
        decode_embed_request({"body": encode_embed_request(np.full((1, 128, 128), np.nan))})
    with pytest.raises(RequestError, match="not JSON"):
        decode_embed_request({"body": {"images": [1, 2]}})


def test_generate_response_round_trip():
    from sharpseek.serving.protocol import GenerateResult

    result = GenerateResult(
        images=np.linspace(-1, 1, 2 * 128 * 128, dtype=np.float32).reshape(2, 128, 128),
        z=np.ones((2, 100), np.float32),
        parameters={"tuf": np.array([1.0, 2.0])},
        gan_version="g-e0001-abcd",
        directions_version=None,
    )
    back = decode_generate_response(encode_generate_response(result))
    np.testing.assert_allclose(back.images, result.images, atol=2**-11)
    np.testing.assert_array_equal(back.parameters["tuf"], [1.0, 2.0])
    assert back.gan_version == "g-e0001-abcd" and back.directions_version is None


# ---------------------------------------------------------------------------- in-process
def test_inprocess_generate_is_the_generator_on_seeded_latents(untrained_home):
    torch.set_num_threads(1)
    backend = open_backend(untrained_home)
    assert isinstance(backend, InProcessBackend)
    result = backend.generate(seeds=[5, 6])
    generator = GeneratorModel.from_settings(untrained_home)
    z = latent_from_seeds([5, 6], generator.latent_dim)
    np.testing.assert_array_equal(result.z, z)
    np.testing.assert_array_equal(result.images, generator.generate(z))
    assert result.images.shape == (2, 128, 128) and result.parameters["tuf"].shape == (2,)


def test_inprocess_shift_moves_along_the_conditioned_direction(fitted_home):
    backend = InProcessBackend(fitted_home)
    directions = DirectionSet.load(open_store(fitted_home), backend.generator.version)
    name, held = sorted(directions.boundaries)[:2]
    result = backend.generate(seeds=[1], shifts={name: 2.0}, hold=[held])
    expected = shift(latent_from_seeds([1], 100), directions.direction(name, hold=(held,)), 2.0)
    np.testing.assert_allclose(result.z, expected, rtol=1e-6)
    assert result.directions_version == directions.version


def test_inprocess_errors(fitted_home):
    backend = InProcessBackend(fitted_home)
    with pytest.raises(RequestError, match="unknown direction"):
        backend.generate(seeds=[1], shifts={"no-such-parameter": 1.0})
    with pytest.raises(RequestError, match="NaN"):
        backend.generate(np.full((1, 100), np.nan))
    with pytest.raises(RequestError, match="either z"):
        backend.generate(np.zeros((1, 100)), seeds=[1])
    with pytest.raises(RequestError, match="without any 'shifts'"):
        backend.generate(seeds=[1], hold=["tuf"])
    with pytest.raises(RequestError, match="128, 128"):
        backend.embed(np.zeros((1, 64, 64)))


def test_inprocess_embed_and_versions(untrained_home):
    torch.set_num_threads(1)
    backend = InProcessBackend(untrained_home)
    images = np.random.default_rng(2).uniform(-1, 1, (3, 128, 128)).astype(np.float32)
    encoder = EncoderModel.from_settings(untrained_home)
    np.testing.assert_array_equal(backend.embed(images), encoder.embed(images))
    versions = backend.versions()
    assert versions["encoder"] == encoder.version and versions["directions"] is None


def test_load_directions_is_the_set_the_backend_shifts_with(fitted_home):
    backend = InProcessBackend(fitted_home)
    directions = backend.load_directions()
    assert directions.version == backend.versions()["directions"]
    assert directions.to_json() == backend.directions.to_json()


def test_load_directions_refuses_a_set_changed_since_it_was_served(fitted_home):
    """A recalibration stored after the backend loaded its directions changes the version:
    the caller is told to rebuild instead of solving with a set the backend does not use."""
    from sharpseek.serving.backends import BackendError

    backend = InProcessBackend(fitted_home)
    served = backend.versions()["directions"]
    store = open_store(fitted_home)
    changed = DirectionSet.load(store, backend.generator.version)
    changed.calibration["tuf"] = {"eps": [0.0], "tuf": {"median": [1.0], "p16": [0.5],
                                                      "p84": [1.5]}}  # fmt: skip
    changed.save(store)
    with pytest.raises(BackendError, match=f"answer with {served}"):
        backend.load_directions()


def test_load_directions_without_a_fitted_set_says_how_to_fit(untrained_home):
    with pytest.raises(FileNotFoundError, match="sharpseek directions fit"):
        InProcessBackend(untrained_home).load_directions()


def test_images_are_the_unshifted_generation(untrained_home):
    torch.set_num_threads(1)
    backend = InProcessBackend(untrained_home)
    z = latent_from_seeds([8, 9], 100)
    np.testing.assert_array_equal(backend.images(z), backend.generate(z).images)


def test_batched_requests_answer_each_and_isolate_a_bad_one(untrained_home):
    torch.set_num_threads(1)
    generator = GeneratorModel.from_settings(untrained_home)
    batch = [
        GenerateRequest(seeds=[1]),
        GenerateRequest(seeds=[2], shifts={"x": 1.0}),
        GenerateRequest(seeds=[3, 4]),
    ]
    answers = run_generate(generator, None, batch)
    assert isinstance(answers[1], RequestError)
    np.testing.assert_allclose(
        answers[2].images, generator.generate(latent_from_seeds([3, 4], 100)), atol=1e-6
    )


# ---------------------------------------------------------------------------- HTTP client
class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers from a script: a list of (status, body) consumed one per request."""

    script: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802
        self.seen.append(self.headers.get("Authorization"))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = self.script.pop(0)
        if status == "sleep":
            import time

            time.sleep(body)  # the client has given up by now: answer nothing
            return
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.script, _Stub.seen = [], []
    settings = Settings(
        home=tmp_path,
        serve={
            "backend": "torchserve",
            "inference_url": f"http://127.0.0.1:{server.server_port}",
            "inference_token": "secret-token",
            "retries": 2,
            "backoff_seconds": 0.01,
            "timeout_seconds": 0.5,
        },
    )
    yield settings
    server.shutdown()
    server.server_close()


def _embed_answer() -> bytes:
    from sharpseek.serving.protocol import encode_embed_response

    return encode_embed_response(np.ones((1, 4), np.float32), "enc-v1")


def test_client_retries_503_then_succeeds(stub):
    _Stub.script = [(503, b'{"message": "busy"}'), (503, b"{}"), (200, _embed_answer())]
    with open_backend(stub) as backend:
        assert isinstance(backend, TorchServeBackend)
        np.testing.assert_array_equal(backend.embed(np.zeros((1, 128, 128))), np.ones((1, 4)))
    assert _Stub.seen == ["Bearer secret-token"] * 3


def test_client_gives_up_after_the_retries(stub):
    _Stub.script = [(503, b'{"message": "busy"}')] * 3
    with pytest.raises(BackendUnavailable, match="after 2 retries"):
        TorchServeBackend(stub).embed(np.zeros((1, 128, 128)))


def test_client_does_not_retry_4xx_and_keeps_the_message(stub):
    _Stub.script = [(400, b'{"code": 400, "message": "images must have shape"}')]
    with pytest.raises(RequestError, match="images must have shape") as info:
        TorchServeBackend(stub).embed(np.zeros((1, 128, 128)))
    assert info.value.status == 400 and _Stub.script == []


def test_client_reports_a_refused_token(stub):
    _Stub.script = [(400, b'{"message": "Token Authorization failed. Token either incorrect"}')]
    with pytest.raises(BackendAuthError, match="SHARPSEEK_SERVE__INFERENCE_TOKEN"):
        TorchServeBackend(stub).embed(np.zeros((1, 128, 128)))


def test_client_times_out(stub):
    _Stub.script = [("sleep", 2.0)]
    with pytest.raises(BackendUnavailable, match="did not answer within 0.5 s"):
        TorchServeBackend(stub).embed(np.zeros((1, 128, 128)))


def test_client_cannot_connect(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        home=tmp_path,
        serve={"inference_url": f"http://127.0.0.1:{port}", "inference_token": "t", "retries": 1,
               "backoff_seconds": 0.01},
    )  # fmt: skip
    with pytest.raises(BackendUnavailable, match="cannot reach TorchServe"):
        TorchServeBackend(settings).versions()


def test_missing_key_file_says_what_to_do(tmp_path):
    with pytest.raises(BackendAuthError, match="sharpseek serve start"):
        read_key_file(tmp_path / "key_file.json")
    with pytest.raises(BackendAuthError, match="no TorchServe key file"):
        TorchServeBackend(Settings(home=tmp_path, serve={"backend": "torchserve"}))
