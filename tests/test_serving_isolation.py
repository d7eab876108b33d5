"""Bad input never reaches the models and never fails a neighbour (no TorchServe here; the
real server's batch is tested in tests/test_serving.py): the protocol's number, dtype,
depth and size checks, and the handler keeping an unexpected error to its own request."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from sharpseek.config import Settings
from sharpseek.serving.archives import handlers_dir
from sharpseek.serving.backends import TorchServeBackend
from sharpseek.serving.protocol import (
    RequestError,
    decode_embed_request,
    decode_generate_request,
    encode_embed_request,
    max_body_bytes,
)

LATENT_DIM = 8


def _npy(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "parts, message",
    [
        ({"body": b"[" * 100_000 + b"]" * 100_000}, "nested deeper"),
        ({"body": b'{"seeds": [1], "shifts": {"tuf": ' + b"[" * 50 + b"]" * 50 + b"}}"}, "deeper"),
        ({"body": json.dumps({"seeds": [1], "shifts": {"tuf": 1e308}}).encode()}, "beyond"),
        ({"body": json.dumps({"seeds": [1], "shifts": {"tuf": -101}}).encode()}, "beyond"),
        ({"body": b'{"seeds": [1], "shifts": {"tuf": NaN}}'}, "finite"),
        ({"body": json.dumps({"seeds": [-1]}).encode()}, "non-negative"),
        ({"body": json.dumps({"seeds": [2**64]}).encode()}, "non-negative"),
        ({"z": _npy(np.full((1, LATENT_DIM), 1e30, np.float32))}, "beyond"),
        ({"z": _npy(np.full((1, LATENT_DIM), np.inf, np.float32))}, "infinite"),
    ],
)
def test_generator_numbers_and_depth_are_checked_before_the_model(parts, message):
    with pytest.raises(RequestError, match=message):
        decode_generate_request(parts, latent_dim=LATENT_DIM, max_items=16)


def test_a_shallow_string_holding_brackets_is_not_too_deep():
    body = json.dumps({"seeds": [1], "shifts": {"[[[[[[[[[[[[": 1.0}}).encode()
    request = decode_generate_request({"body": body}, latent_dim=LATENT_DIM)
    assert request.shifts == {"[[[[[[[[[[[[": 1.0}


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((1, 128, 128), np.float64), "dtype float64"),
        (np.full((1, 128, 128), 1.5, np.float32), "outside the model space"),
        (np.full((1, 128, 128), -np.inf, np.float16), "infinite"),
    ],
)
def test_encoder_refuses_float64_and_values_outside_model_space(images, message):
    with pytest.raises(RequestError, match=message):
        decode_embed_request({"body": _npy(images)})


def test_encoder_accepts_the_edges_of_model_space():
    images = np.stack([np.full((128, 128), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    out = decode_embed_request({"body": encode_embed_request(images)})
    assert out.dtype == np.float32 and np.abs(out).max() == 1.0


def test_client_refuses_a_body_over_the_server_limit_before_sending():
    # the URL answers nothing: the check must come before any connection
    settings = Settings(
        preset="tiny",
        serve={"backend": "torchserve", "inference_url": "http://127.0.0.1:9", "retries": 0},
    )
    client = TorchServeBackend(settings, token="x")
    limit = max_body_bytes(settings.serve.max_items_per_request)
    with pytest.raises(RequestError, match=f"more than the limit of {limit}"):
        client._post("encoder", content=b"\0" * (limit + 1))


# ------------------------------------------------------------------------- the handler
class _Context:
    def __init__(self):
        self.status, self.types = {}, {}

    def set_response_status(self, code, phrase, idx):
        self.status[idx] = (code, phrase)

    def set_response_content_type(self, idx, value):
        self.types[idx] = value


@pytest.fixture
def handler_class(monkeypatch):
    monkeypatch.syspath_prepend(str(handlers_dir()))
    sys.modules.pop("base_handler", None)
    from base_handler import SharpseekHandler

    class Doubler(SharpseekHandler):
        """seeds -> 2 * seeds; a seed of 13 crashes the model (an unexpected error)."""

        calls = 0

        def decode(self, parts):
            return decode_generate_request(parts, latent_dim=LATENT_DIM, max_items=16)

        def infer(self, batch):
            Doubler.calls += 1
            if any(13 in request.seeds for request in batch):
                raise ZeroDivisionError("the model fell over")
            return [[2 * s for s in request.seeds] for request in batch]

        def encode(self, answer):
            return json.dumps(answer)

    return Doubler


def _body(**fields) -> dict:
    return {"body": json.dumps(fields).encode()}


def test_one_bad_and_seven_good_requests_answer_seven_good(handler_class):
    batch = [_body(seeds=[i]) for i in range(7)]
    batch.insert(3, _body(seeds=[1], shifts={"tuf": 1e308}))
    context = _Context()
    out = handler_class().handle(batch, context)
    assert context.status == {3: (400, "Bad Request")}
    assert "beyond" in json.loads(out[3])["message"]
    assert [json.loads(out[i]) for i in range(8) if i != 3] == [[2 * i] for i in range(7)]


def test_an_unexpected_error_fails_only_its_own_request(handler_class):
    batch = [_body(seeds=[1]), _body(seeds=[13]), _body(seeds=[2]), {"nothing": b""}]
    context = _Context()
    out = handler_class().handle(batch, context)
    assert context.status[1][0] == 500 and context.status[3][0] == 400
    message = json.loads(out[1])["message"]
    assert "ZeroDivisionError" in message and "Traceback" not in message
    assert json.loads(out[0]) == [2] and json.loads(out[2]) == [4]


def test_a_request_with_no_items_still_answers(handler_class):
    out = handler_class().handle([_body(seeds=[])], _Context())
    assert json.loads(out[0]) == []
