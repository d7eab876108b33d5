"""The model-serving wire protocol: what a request and a response hold, and how they are
encoded. Shared by the client (:mod:`sharpseek.serving.backends`), the TorchServe handlers
(:mod:`sharpseek.serving.handlers`) and the in-process backend, so the three compute the same
thing.

Two models (docs/serving.md, "Protocol"):

``generator``
    request: JSON ``{"seeds": [...], "shifts": {"tuf": 1.5}, "hold": ["r"], "parameters": true}``
    (``application/json``), or ``multipart/form-data`` with a part ``z`` (a ``.npy`` of float32
    latent vectors, shape (n, latent_dim)) and an optional part ``options`` (the same JSON
    without ``seeds``). Response: an uncompressed ``.npz`` with ``images`` (n, 128, 128)
    float16 in model space, ``z`` (n, latent_dim) float32 (after the shifts), one float64
    array per physical parameter named ``parameters.<name>``, and the 0-d strings
    ``gan_version`` and ``directions_version``.
``encoder``
    request: a ``.npy`` of model-space images (n, 128, 128), float16 (or float32), as the raw
    body (``application/x-npy``). Response: ``.npz`` with ``embeddings`` (n, dim) float32 and
    the 0-d string ``encoder_version``.

No pickles anywhere (``allow_pickle=False``). A request with no items (``seeds: []``, or a
(0, 128, 128) array) is valid: it answers the versions only.

Every number is checked before a model sees it: seeds in [0, 2**63), latents and shifts
finite with |value| <= :data:`sharpseek.science.directions.LATENT_LIMIT`, images float16/float32,
finite and within the model space [-1, 1]; JSON nested at most :data:`MAX_JSON_DEPTH` deep;
bodies at most :func:`max_body_bytes` (the server's ``max_request_size``; the client checks
it before sending, since TorchServe drops an oversized upload without an answer).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sharpseek.models.inference import latent_from_seeds
from sharpseek.physics.definitions import MODEL_SIZE
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions import LATENT_LIMIT, check_eps, shift_and_hold

__all__ = [
    "GenerateRequest",
    "GenerateResult",
    "RequestError",
    "decode_embed_request",
    "check_model_images",
    "decode_embed_response",
    "decode_generate_request",
    "decode_generate_response",
    "encode_embed_request",
    "encode_embed_response",
    "encode_generate_request",
    "encode_generate_response",
    "max_body_bytes",
    "run_generate",
    "run_embed",
]

#: Content types of the protocol.
NPY = "application/x-npy"
NPZ = "application/x-npz"
PARAMETER_PREFIX = "parameters."
#: Deepest JSON nesting a request may have (the protocol needs 2: ``{"shifts": {...}}``);
#: deeper bodies are refused before parsing (a 100,000-deep one exhausts Python's stack).
MAX_JSON_DEPTH = 8


def max_body_bytes(max_items: int) -> int:
    """The largest request or response body for ``max_items`` items per request [bytes]:
    that many float16 128x128 images plus room for the .npz/.npy headers and parameters.
    TorchServe's ``max_request_size`` / ``max_response_size``, and the client's check."""
    return max_items * (MODEL_SIZE * MODEL_SIZE * 2 + 4096) + (1 << 20)


class RequestError(ValueError):
    """A request the models cannot answer (bad shape, NaN, unknown direction, too many items).

    Its message names the input and what is wrong; servers answer it with HTTP 400.
    """


@dataclass
class GenerateRequest:
    """What the generator is asked: latents (``z`` or ``seeds``), shifts and conditions.

    Attributes
    ----------
    z : ndarray (n, latent_dim) float32, or None when ``seeds`` name the latents
    seeds : non-negative ints (``latent_from_seeds``), or None when ``z`` is given
    shifts : direction name -> eps (signed step along the unit direction, latent units)
    hold : names of parameters held fixed while shifting (conditional manipulation)
    parameters : whether to measure the physical parameters of the images
    """

    z: np.ndarray | None = None
    seeds: list[int] | None = None
    shifts: dict[str, float] = field(default_factory=dict)
    hold: list[str] = field(default_factory=list)
    parameters: bool = True

    def __len__(self) -> int:
        return len(self.seeds) if self.z is None else len(self.z)


@dataclass
class GenerateResult:
    """The generator's answer for one request.

    Attributes
    ----------
    images : ndarray (n, 128, 128) float32, model space b = Br / 1000 G in [-1, 1]
    z : ndarray (n, latent_dim) float32, the latents after the shifts
    parameters : name -> ndarray (n,) (units of
        :func:`sharpseek.physics.parameters.compute_parameters`); empty when not asked for
    gan_version, directions_version : what produced them (``directions_version`` is
        :attr:`sharpseek.science.directions.DirectionSet.version`, None when the generator has no
        directions)
    """

    images: np.ndarray
    z: np.ndarray
    parameters: dict[str, np.ndarray]
    gan_version: str
    directions_version: str | None


# ------------------------------------------------------------------------------ npy helpers
def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_npy(data: bytes, what: str) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any parse failure is the caller's bad input
        raise RequestError(f"{what}: not a .npy array without pickles ({err})") from None
    if not isinstance(array, np.ndarray):
        raise RequestError(f"{what}: expected one .npy array, got an archive")
    if array.dtype.kind != "f":
        raise RequestError(f"{what}: expected a float16/float32 array, got dtype {array.dtype}")
    return array


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _load_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise RequestError(f"expected a binary body, got {type(value).__name__}")


def _json_depth(text: bytes) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON text, brackets inside strings not counted
    (a linear scan: never recurses, whatever the input)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _as_json(value: Any, what: str) -> dict:
    if isinstance(value, dict):
        return value
    raw = _as_bytes(value)
    if _json_depth(raw) > MAX_JSON_DEPTH:
        raise RequestError(
            f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels (the protocol needs 2)"
        )
    try:
        data = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise RequestError(f"{what}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise RequestError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _check_count(n: int, max_items: int | None, what: str) -> None:
    if max_items is not None and n > max_items:
        raise RequestError(
            f"{what}: {n} items in one request, more than the limit of {max_items} "
            "(serve.max_items_per_request); split it into smaller requests"
        )


# ------------------------------------------------------------------------------ generator
_OPTION_KEYS = {"seeds", "shifts", "hold", "parameters"}


def encode_generate_request(request: GenerateRequest) -> tuple[dict | None, dict | None]:
    """The HTTP body of a generator request: ``(json, None)`` or ``(None, multipart files)``."""
    options = {"shifts": dict(request.shifts), "hold": list(request.hold)}
    options["parameters"] = bool(request.parameters)
    if request.z is None:
        return {"seeds": [int(s) for s in request.seeds or []], **options}, None
    z = np.ascontiguousarray(request.z, dtype=np.float32)
    return None, {
        "z": ("z.npy", _npy_bytes(z), NPY),
        "options": ("options.json", json.dumps(options).encode(), "application/json"),
    }


def _options(data: dict, what: str) -> tuple[dict[str, float], list[str], bool]:
    unknown = set(data) - _OPTION_KEYS
    if unknown:
        raise RequestError(
            f"{what}: unknown field(s) {sorted(unknown)}; known: {sorted(_OPTION_KEYS)}"
        )
    shifts = data.get("shifts") or {}
    if not isinstance(shifts, dict):
        raise RequestError(f"{what}: 'shifts' must map direction names to numbers")

    clean = {}
    for name, eps in shifts.items():
        if isinstance(eps, bool) or not isinstance(eps, int | float):
            raise RequestError(f"{what}: shift of {name!r} must be a finite number, got {eps!r}")
        try:
            clean[str(name)] = check_eps(str(name), eps)
        except ValueError as err:
            raise RequestError(f"{what}: {err}") from None
    hold = data.get("hold") or []
    if not isinstance(hold, list) or not all(isinstance(h, str) for h in hold):
        raise RequestError(f"{what}: 'hold' must be a list of parameter names")
    parameters = data.get("parameters", True)
    if not isinstance(parameters, bool):
        raise RequestError(f"{what}: 'parameters' must be true or false")
    return clean, hold, parameters


def decode_generate_request(
    parts: Mapping[str, Any], *, latent_dim: int, max_items: int | None = None
) -> GenerateRequest:
    """A generator request from the parts TorchServe hands a handler.

    ``parts`` holds ``body`` (or ``data``; JSON with ``seeds``), or ``z`` (.npy bytes) and
    optionally ``options`` (JSON). Raises :class:`RequestError` naming what is wrong.
    """
    if "z" in parts:
        z = _load_npy(_as_bytes(parts["z"]), "latent vectors 'z'")
        if z.ndim != 2 or z.shape[1] != latent_dim:
            raise RequestError(
                f"latent vectors 'z' must have shape (n, {latent_dim}), got {tuple(z.shape)}"
            )
        _check_count(len(z), max_items, "latent vectors 'z'")
        _check_latents(z)
        options = _as_json(parts["options"], "options") if "options" in parts else {}
        if "seeds" in options:
            raise RequestError("give either 'z' or 'seeds', not both")
        shifts, hold, parameters = _options(options, "options")
        return GenerateRequest(
            z=z.astype(np.float32), shifts=shifts, hold=hold, parameters=parameters
        )
    body = parts.get("body", parts.get("data"))
    if body is None:
        raise RequestError("generator request: expected a JSON body with 'seeds' or a 'z' part")
    data = _as_json(body, "generator request")
    shifts, hold, parameters = _options(data, "generator request")
    if "seeds" not in data:
        raise RequestError("generator request: JSON body needs 'seeds' (or send a 'z' part)")
    seeds = data["seeds"]
    if not isinstance(seeds, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in seeds
    ):
        raise RequestError("'seeds' must be a list of non-negative integers")
    _check_count(len(seeds), max_items, "'seeds'")
    return GenerateRequest(seeds=list(seeds), shifts=shifts, hold=hold, parameters=parameters)


def _check_latents(z: np.ndarray) -> None:
    if not np.isfinite(z).all():
        raise RequestError("latent vectors 'z' contain NaN or infinite values")
    if z.size and float(np.abs(z).max()) > LATENT_LIMIT:
        raise RequestError(
            f"latent vectors 'z' hold a component of {float(np.abs(z).max()):.3g}, beyond "
            f"+-{LATENT_LIMIT:g} (the prior is N(0, 1) per component)"
        )


def _latents(request: GenerateRequest, model, directions) -> np.ndarray:
    """z of one request after its shifts (float32 (n, latent_dim)), by
    :func:`sharpseek.science.directions.shift_and_hold` (the set's hold method: a measured
    hold generates and measures here, on the server); its errors become
    :class:`RequestError`."""
    z = request.z if request.z is not None else latent_from_seeds(request.seeds, model.latent_dim)
    if request.z is not None and (z.ndim != 2 or z.shape[1] != model.latent_dim):
        raise RequestError(
            f"latent vectors 'z' must have shape (n, {model.latent_dim}), got {tuple(z.shape)}"
        )
    if request.z is not None:
        _check_latents(z)
    if not request.shifts:
        if request.hold:
            raise RequestError("'hold' given without any 'shifts': nothing to hold fixed against")
        return np.asarray(z, np.float32)
    if directions is None:
        raise RequestError(
            f"shifts asked, but GAN {model.version!r} is served without directions "
            "(fit them with `sharpseek directions fit`, then rebuild the archive)"
        )
    try:
        return shift_and_hold(model, directions, z, request.shifts, request.hold).astype(np.float32)
    except KeyError as err:
        raise RequestError(f"unknown direction: {err.args[0]}") from None
    except ValueError as err:
        raise RequestError(str(err)) from None


def run_generate(
    model,
    directions,
    requests: Sequence[GenerateRequest],
    *,
    directions_version: str | None = None,
) -> list[GenerateResult | RequestError]:
    """Answer several generator requests with one ``model.generate`` call (server batching).

    Parameters
    ----------
    model : :class:`sharpseek.models.inference.GeneratorModel`
    directions : :class:`sharpseek.science.directions.DirectionSet` of this GAN version, or None
    requests : the batch
    directions_version : ``directions.version`` when the caller holds it already (hashing
        the set costs ~10-20 ms per call); computed here if None

    Returns
    -------
    One item per request: its :class:`GenerateResult`, or the :class:`RequestError` that
    makes it unanswerable (the others are still answered).
    """
    latents: list[np.ndarray | RequestError] = []
    for request in requests:
        try:
            latents.append(_latents(request, model, directions))
        except RequestError as err:
            latents.append(err)
    good = [z for z in latents if isinstance(z, np.ndarray)]
    all_z = np.concatenate(good) if good else np.zeros((0, model.latent_dim), np.float32)
    images = (
        model.generate(all_z) if len(all_z) else np.zeros((0, MODEL_SIZE, MODEL_SIZE), np.float32)
    )
    measured = [
        r.parameters for r, z in zip(requests, latents, strict=True) if isinstance(z, np.ndarray)
    ]
    wanted = any(measured)
    parameters = compute_parameters(images) if wanted and len(images) else {}
    d_version = None
    if directions is not None:
        d_version = directions_version or directions.version
    out: list[GenerateResult | RequestError] = []
    start = 0
    for request, z in zip(requests, latents, strict=True):
        if isinstance(z, RequestError):
            out.append(z)
            continue
        stop = start + len(z)
        params = (
            {k: np.asarray(v)[start:stop] for k, v in parameters.items()}
            if request.parameters
            else {}
        )
        out.append(GenerateResult(images[start:stop], z, params, model.version, d_version))
        start = stop
    return out


def encode_generate_response(result: GenerateResult) -> bytes:
    """The ``.npz`` body of a generator answer (images as float16)."""
    arrays = {
        "images": result.images.astype(np.float16),
        "z": result.z.astype(np.float32),
        "gan_version": np.array(result.gan_version),
        "directions_version": np.array(result.directions_version or ""),
    }
    for name, values in result.parameters.items():
        arrays[PARAMETER_PREFIX + name] = np.asarray(values, dtype=np.float64)
    return _npz_bytes(arrays)


def decode_generate_response(data: bytes) -> GenerateResult:
    """A :class:`GenerateResult` from a generator answer (images back to float32)."""
    arrays = _load_npz(data)
    return GenerateResult(
        images=arrays["images"].astype(np.float32),
        z=arrays["z"],
        parameters={
            k.removeprefix(PARAMETER_PREFIX): v
            for k, v in arrays.items()
            if k.startswith(PARAMETER_PREFIX)
        },
        gan_version=str(arrays["gan_version"]),
        directions_version=str(arrays["directions_version"]) or None,
    )


# ------------------------------------------------------------------------------ encoder
def encode_embed_request(images: np.ndarray) -> bytes:
    """The ``.npy`` body of an encoder request: images as float16 (n, 128, 128)."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    return _npy_bytes(np.ascontiguousarray(images, dtype=np.float16))


def decode_embed_request(parts: Mapping[str, Any], *, max_items: int | None = None) -> np.ndarray:
    """The images (n, 128, 128) float32 of an encoder request; :class:`RequestError` if bad."""
    body = parts.get("body", parts.get("data"))
    if body is None:
        raise RequestError("encoder request: expected a .npy body of images (n, 128, 128)")
    if isinstance(body, dict | list):
        raise RequestError("encoder request: send images as a binary .npy body, not JSON")
    images = _load_npy(_as_bytes(body), "images")
    if images.ndim != 3 or images.shape[1:] != (MODEL_SIZE, MODEL_SIZE):
        raise RequestError(
            f"images must have shape (n, {MODEL_SIZE}, {MODEL_SIZE}), got {tuple(images.shape)}"
        )
    _check_count(len(images), max_items, "images")
    return check_model_images(images)


def check_model_images(images: np.ndarray) -> np.ndarray:
    """``images`` as float32 if they are model-space images the encoder may see: float16 or
    float32 (float64 is refused rather than silently rounded: the protocol sends float16),
    finite, within [-1, 1] (b = Br / 1000 G after the clip); :class:`RequestError` naming
    what is wrong otherwise."""
    if images.dtype not in (np.float16, np.float32):
        raise RequestError(
            f"images: dtype {images.dtype}; send float16 (or float32) model-space images"
        )
    images = images.astype(np.float32)
    if not np.isfinite(images).all():
        raise RequestError("images contain NaN or infinite values")
    if images.size and float(np.abs(images).max()) > 1.0 + 1e-6:  # as check_model_image
        raise RequestError(
            f"images hold a value of {float(np.abs(images).max()):.3g}, outside the model "
            "space [-1, 1] (b = Br / 1000 G, clipped at 1000 G)"
        )
    return images


def run_embed(model, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Embed several requests' images with one ``model.embed`` call; (n_i, dim) each."""
    sizes = [len(images) for images in batch]
    if sum(sizes) == 0:
        return [np.zeros((0, model.dim), np.float32) for _ in batch]
    embeddings = model.embed(np.concatenate(batch))
    return list(np.split(embeddings, np.cumsum(sizes)[:-1]))


def encode_embed_response(embeddings: np.ndarray, encoder_version: str) -> bytes:
    return _npz_bytes(
        {"embeddings": embeddings.astype(np.float32), "encoder_version": np.array(encoder_version)}
    )


def decode_embed_response(data: bytes) -> tuple[np.ndarray, str]:
    """``(embeddings (n, dim) float32, encoder_version)``."""
    arrays = _load_npz(data)
    return arrays["embeddings"], str(arrays["encoder_version"])
