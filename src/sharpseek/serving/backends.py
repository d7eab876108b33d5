"""One interface to the models, in-process or served by TorchServe (docs/serving.md).

Search, the UI and the flows talk to the generator and the encoder only through a
:class:`ModelBackend`::

    from sharpseek.serving.backends import open_backend

    backend = open_backend(settings)          # settings.serve.backend: inprocess | torchserve
    result = backend.generate(seeds=[1, 2], shifts={"tuf": 1.5}, hold=["r"])
    result.images        # (2, 128, 128) float32, model space b = Br / 1000 G in [-1, 1]
    result.parameters    # {"tuf": (2,), "r": (2,), ...} physical parameters of the images
    result.z             # (2, latent_dim) float32, the latents after the shift
    emb = backend.embed(result.images)        # (2, dim) float32
    backend.versions()   # {"gan": ..., "encoder": ..., "directions": ...}

Both backends compute through the same functions (:mod:`sharpseek.serving.protocol`), so
they agree to float16 precision: TorchServe sends images as float16 (docs/serving.md).

Errors: a request the models cannot answer raises :class:`RequestError` (a ``ValueError``;
HTTP 4xx from TorchServe, with its status in ``.status``); a server that cannot be reached
or stays unavailable raises :class:`BackendUnavailable`; a missing or wrong token raises
:class:`BackendAuthError`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from sharpseek.config import Settings
from sharpseek.data.store import open_store
from sharpseek.models.inference import EncoderModel, GeneratorModel
from sharpseek.science.directions import DirectionSet
from sharpseek.serving.protocol import (
    NPY,
    GenerateRequest,
    GenerateResult,
    RequestError,
    check_model_images,
    decode_embed_response,
    decode_generate_response,
    encode_embed_request,
    encode_generate_request,
    max_body_bytes,
    run_embed,
    run_generate,
)

__all__ = [
    "BackendAuthError",
    "BackendError",
    "BackendUnavailable",
    "GenerateResult",
    "InProcessBackend",
    "ModelBackend",
    "RequestError",
    "TorchServeBackend",
    "open_backend",
]

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """The backend could not answer (not the request's fault)."""


class BackendUnavailable(BackendError):
    """The server cannot be reached, timed out, or kept answering 503 through the retries."""


class BackendAuthError(BackendError):
    """TorchServe refused the token (missing, wrong or expired)."""


class ServerRequestError(RequestError):
    """A 4xx answer from the server; ``status`` is the HTTP code, the message the server's."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class ModelBackend:
    """The models behind one interface. Subclasses implement the three methods.

    ``generate`` takes latents as ``z`` (n, latent_dim) or as ``seeds`` (one z per seed,
    ``sharpseek.models.inference.latent_from_seeds``), shifts them by ``shifts`` (direction name ->
    eps, a signed step along the unit direction) holding the ``hold`` parameters fixed
    (conditional manipulation), and returns a :class:`GenerateResult`.
    """

    def generate(
        self,
        z: np.ndarray | None = None,
        *,
        seeds: Sequence[int] | None = None,
        shifts: dict[str, float] | None = None,
        hold: Sequence[str] = (),
        parameters: bool = True,
    ) -> GenerateResult:
        raise NotImplementedError

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Embeddings (n, dim) float32 of model-space images (n, 128, 128) or (128, 128)."""
        raise NotImplementedError

    def versions(self) -> dict[str, str | None]:
        """``{"gan", "encoder", "directions"}``: the versions answering now."""
        raise NotImplementedError

    def images(self, z: np.ndarray) -> np.ndarray:
        """Images (n, 128, 128) float32 of latents ``z`` (n, latent_dim), unshifted and
        unmeasured: the ``generate(z)`` callable the solvers take (targets, catalogues,
        figures)."""
        return self.generate(np.asarray(z, np.float32), parameters=False).images

    def held_shift(
        self, z0: np.ndarray, parameters: Sequence[str], hold: Sequence[str] = ()
    ) -> Callable[[np.ndarray | float], np.ndarray]:
        """eps (k,) (one per name of ``parameters``; a number when k = 1) -> the latent (d,)
        of ``z0`` (d,) shifted by them holding ``hold``, by the served set's hold method:
        the ``shift`` the target solver and the direction figures take."""
        z = np.asarray(z0, np.float32).reshape(1, -1)
        names, held = list(parameters), list(hold)

        def shifted(eps: np.ndarray | float) -> np.ndarray:
            steps = np.atleast_1d(np.asarray(eps, dtype=float))
            shifts = dict(zip(names, map(float, steps), strict=True))
            return self.generate(z, shifts=shifts, hold=held, parameters=False).z[0]

        return shifted

    def load_directions(self):
        """The :class:`~sharpseek.science.directions.DirectionSet` the generator is served with, for
        callers that need the whole set (target solver, catalogue guidance, figures).

        Read from the settings' store for the GAN version answering, and checked against
        the directions version it answers with.

        Raises
        ------
        FileNotFoundError
            No directions stored for the served GAN version (the message names the stored
            ones and how to fit them).
        BackendError
            The stored set is not the one served (refit or recalibrated since the model
            archive was built): rebuild the archives.
        """
        versions = self.versions()
        directions = DirectionSet.load(open_store(self.settings), str(versions["gan"]))
        if directions.version != versions["directions"]:
            raise BackendError(
                f"the store holds directions {directions.version} for GAN {versions['gan']}, "
                f"but the models answer with {versions['directions'] or 'no directions'}: "
                "rebuild the model archives (`sharpseek serve build`) and swap them in"
            )
        return directions

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (a no-op in-process)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _request(z, seeds, shifts, hold, parameters) -> GenerateRequest:
    if (z is None) == (seeds is None):
        raise RequestError("give either z (latent vectors) or seeds, not both and not neither")
    if z is not None:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
    seeds = None if seeds is None else [int(s) for s in np.atleast_1d(seeds)]
    return GenerateRequest(
        z=z, seeds=seeds, shifts=dict(shifts or {}), hold=list(hold), parameters=parameters
    )


class InProcessBackend(ModelBackend):
    """The models loaded in this process (the embedded default; no server).

    Loads lazily: the generator (and its directions, when fitted) on the first
    ``generate``, the encoder on the first ``embed``.
    """

    def __init__(self, settings: Settings, *, generator=None, encoder=None, directions=None):
        self.settings = settings
        self._generator = generator
        self._encoder = encoder
        self._directions = directions

    @property
    def generator(self):
        if self._generator is None:
            self._generator = GeneratorModel.from_settings(self.settings)
        return self._generator

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = EncoderModel.from_settings(self.settings)
        return self._encoder

    @property
    def directions(self):
        """The generator's DirectionSet, or None when none was fitted for its version (looked
        for again on the next use: directions fitted meanwhile are picked up)."""
        if self._directions is None:
            try:
                self._directions = DirectionSet.load(
                    open_store(self.settings), self.generator.version
                )
            except FileNotFoundError:
                self._directions = None
        return self._directions

    def _directions_version(self) -> str | None:
        """The loaded directions' :attr:`~sharpseek.science.directions.DirectionSet.version`, hashed
        once per loaded set (a loaded set is not changed)."""
        directions = self.directions
        if directions is None:
            return None
        if getattr(self, "_directions_version_of", None) is not directions:
            self._directions_version_value = directions.version
            self._directions_version_of = directions
        return self._directions_version_value

    def generate(self, z=None, *, seeds=None, shifts=None, hold=(), parameters=True):
        request = _request(z, seeds, shifts, hold, parameters)
        directions = self.directions if request.shifts else None
        (result,) = run_generate(
            self.generator,
            directions,
            [request],
            directions_version=self._directions_version() if directions is not None else None,
        )
        if isinstance(result, RequestError):
            raise result
        if directions is None and self._directions is not None:
            result.directions_version = self._directions_version()
        return result

    def embed(self, images):
        # In process, float64 images are rounded to float32 (the models' precision); the
        # range and finiteness rule is the protocol's (check_model_images).
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        images = check_model_images(images)
        try:
            (embeddings,) = run_embed(self.encoder, [images])
        except ValueError as err:
            raise RequestError(str(err)) from None
        return embeddings

    def versions(self):
        return {
            "gan": self.generator.version,
            "encoder": self.encoder.version,
            "directions": self._directions_version(),
        }


def read_key_file(path: str | Path) -> dict[str, str]:
    """TorchServe's ``key_file.json`` -> ``{"inference", "management", "api"}`` tokens."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackendAuthError(
            f"no TorchServe key file at {path}: start TorchServe (`sharpseek serve start`) or "
            "set SHARPSEEK_SERVE__INFERENCE_TOKEN"
        ) from None
    except (OSError, json.JSONDecodeError) as err:
        raise BackendAuthError(f"cannot read TorchServe key file {path}: {err}") from None
    try:
        return {
            "inference": data["inference"]["key"],
            "management": data["management"]["key"],
            "api": data["API"]["key"],
        }
    except (KeyError, TypeError):
        raise BackendAuthError(f"{path} is not a TorchServe key file") from None


def default_key_file(settings: Settings) -> Path:
    """``serve.key_file`` or ``<home>/serve/key_file.json`` (where `serve start` runs it)."""
    if settings.serve.key_file is not None:
        return settings.serve.key_file
    return settings.home / "serve" / "key_file.json"


def resolve_token(settings: Settings, api: str) -> str | None:
    """The token for ``api`` ("inference" or "management"): the environment, else the key file.

    Returns None when token authorization is off.
    """
    if not settings.serve.token_auth:
        return None
    secret = getattr(settings.serve, f"{api}_token")
    if secret is not None:
        return secret.get_secret_value()
    return read_key_file(default_key_file(settings))[api]


def _message(response) -> str:
    """The server's own message (TorchServe answers errors as JSON with ``message``)."""
    try:
        data = response.json()
        if isinstance(data, dict) and "message" in data:
            return str(data["message"])
    except ValueError:
        pass
    return response.text.strip()[:500] or response.reason_phrase


class TorchServeBackend(ModelBackend):
    """The models behind TorchServe's inference API (``settings.serve.inference_url``).

    Every call: an HTTP timeout (``serve.timeout_seconds``), retries with doubling backoff
    when the server answers 503 or refuses the connection (``serve.retries``,
    ``serve.backoff_seconds``), and a :class:`RequestError` with the server's message on
    4xx. Large calls are split into requests of at most ``serve.max_items_per_request``.
    """

    def __init__(self, settings: Settings, *, token: str | None = None):
        self.settings = settings
        self.url = settings.serve.inference_url.rstrip("/")
        self._token_from_env = token is not None or settings.serve.inference_token is not None
        self._token = token if token is not None else resolve_token(settings, "inference")
        self._client = httpx.Client(timeout=settings.serve.timeout_seconds)
        self.max_items = settings.serve.max_items_per_request

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _post(self, model: str, content_type: str | None = None, **kwargs: Any) -> bytes:
        url = f"{self.url}/predictions/{model}"
        serve = self.settings.serve
        delay = serve.backoff_seconds
        reread = not self._token_from_env and serve.token_auth
        # TorchServe resets the connection of a body over its max_request_size instead of
        # answering 413; so the size is checked here, with the rule the server was given.
        body = self._client.build_request("POST", url, **kwargs).read()
        limit = max_body_bytes(self.max_items)
        if len(body) > limit:
            raise RequestError(
                f"{model}: request body of {len(body)} bytes, more than the limit of {limit} "
                "(serve.max_items_per_request items); split it into smaller requests"
            )
        for attempt in range(serve.retries + 1):
            try:
                headers = self._headers()
                if content_type:
                    headers["Content-Type"] = content_type
                response = self._client.post(url, headers=headers, **kwargs)
            except (httpx.ConnectError, httpx.RemoteProtocolError) as err:
                problem = f"cannot reach TorchServe at {self.url} ({err.__class__.__name__})"
            except httpx.TimeoutException:
                raise BackendUnavailable(
                    f"{model} at {self.url} did not answer within {serve.timeout_seconds} s "
                    "(serve.timeout_seconds)"
                ) from None
            else:
                if response.status_code == 200:
                    return response.content
                message = _message(response)
                if response.status_code in (400, 401) and "token" in message.lower():
                    if reread:  # the key file may have been rewritten (restart, new tokens)
                        reread = False
                        self._token = resolve_token(self.settings, "inference")
                        continue
                    raise BackendAuthError(
                        f"TorchServe at {self.url} refused the inference token: {message} "
                        "(set SHARPSEEK_SERVE__INFERENCE_TOKEN or serve.key_file)"
                    )
                if response.status_code != 503 and 400 <= response.status_code < 500:
                    raise ServerRequestError(f"{model}: {message}", response.status_code)
                if response.status_code != 503:
                    raise BackendError(
                        f"{model} at {self.url}: HTTP {response.status_code}: {message}"
                    )
                problem = f"{model} at {self.url} is unavailable (503: {message})"
            if attempt < serve.retries:
                log.info("%s; retrying in %.2f s", problem, delay)
                time.sleep(delay)
                delay *= 2
        raise BackendUnavailable(f"{problem}, after {serve.retries} retries")

    def _generate_one(self, request: GenerateRequest) -> GenerateResult:
        body, files = encode_generate_request(request)
        if files is not None:
            return decode_generate_response(self._post("generator", files=files))
        return decode_generate_response(self._post("generator", json=body))

    def generate(self, z=None, *, seeds=None, shifts=None, hold=(), parameters=True):
        request = _request(z, seeds, shifts, hold, parameters)
        n = len(request)
        if n <= self.max_items:
            return self._generate_one(request)
        parts = []
        for start in range(0, n, self.max_items):
            part = GenerateRequest(
                z=None if request.z is None else request.z[start : start + self.max_items],
                seeds=None
                if request.seeds is None
                else request.seeds[start : start + self.max_items],
                shifts=request.shifts,
                hold=request.hold,
                parameters=request.parameters,
            )
            parts.append(self._generate_one(part))
        first = parts[0]
        return GenerateResult(
            images=np.concatenate([p.images for p in parts]),
            z=np.concatenate([p.z for p in parts]),
            parameters={
                k: np.concatenate([p.parameters[k] for p in parts]) for k in first.parameters
            },
            gan_version=first.gan_version,
            directions_version=first.directions_version,
        )

    def _embed_one(self, images: np.ndarray) -> tuple[np.ndarray, str]:
        body = encode_embed_request(images)
        return decode_embed_response(self._post("encoder", content=body, content_type=NPY))

    def embed(self, images):
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if len(images) <= self.max_items:
            return self._embed_one(images)[0]
        return np.concatenate(
            [
                self._embed_one(images[s : s + self.max_items])[0]
                for s in range(0, len(images), self.max_items)
            ]
        )

    def versions(self):
        result = self._generate_one(GenerateRequest(seeds=[], parameters=False))
        _, encoder_version = self._embed_one(np.zeros((0, 128, 128), np.float16))
        return {
            "gan": result.gan_version,
            "encoder": encoder_version,
            "directions": result.directions_version,
        }


def open_backend(settings: Settings) -> ModelBackend:
    """The backend ``settings.serve.backend`` names: ``inprocess`` or ``torchserve``."""
    if settings.serve.backend == "torchserve":
        return TorchServeBackend(settings)
    return InProcessBackend(settings)
