"""Model-space images in and out of files: sharpseek's magnetogram PNG (16-bit grey with its
gauss scale in the metadata), ``.npy`` arrays (header checked, never unpickled) and SHARP FITS
segments, and the one check of a model-space image.

A query image comes in through :func:`load_image` (``sharpseek search --image``, the UI's
upload, ``sharpseek measure``); a generated or found image goes out through
:func:`png_bytes` / :func:`export_png` (``--save-query-png``, the UI's Export page).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from sharpseek.data.fits import read_sharp
from sharpseek.data.preprocess import clip_field, small_patch_problem, to_model_space
from sharpseek.physics.definitions import FIELD_SCALE, MODEL_SIZE

__all__ = [
    "PNG_SCALE_KEY",
    "ImageInputError",
    "check_model_image",
    "export_png",
    "is_sharpseek_png",
    "load_image",
    "png_bytes",
    "png_is_generated",
    "read_npy",
    "read_png",
]

#: PNG text chunk holding the gauss scale of a sharpseek magnetogram PNG.
PNG_SCALE_KEY = "sharpseek-scale"
PNG_FORMAT = "sharpseek-magnetogram/1"
_FIELD_G = float(FIELD_SCALE.to_value("G"))
_LEVELS = 65535  # 16-bit grey


class ImageInputError(ValueError):
    """An image that cannot be a query: wrong shape, NaN, unknown format, unscaled PNG."""


def png_bytes(image: np.ndarray, *, description: str = "", generated: bool = False) -> bytes:
    """A model-space image as sharpseek's magnetogram PNG: 16-bit grey with its gauss scale.

    The one PNG format sharpseek writes (``sharpseek search --save-query-png`` and the UI's
    Export page) and reads back as a query (:func:`load_image`, ``sharpseek search
    --image``, the UI's upload). Grey level g in 0..65535 stands for
    B_r = -1000 G + g * 2000 G / 65535 (a step of 0.03 G; the model's own float16 datasets
    are coarser), so any viewer shows it as a magnetogram (white positive, black negative).
    The scale is written as JSON in the PNG text chunk ``sharpseek-scale``, so
    :func:`read_png` can turn the picture back into gauss. Row 0 of the array is the
    *bottom* row of the picture (south, as the magnetogram figures draw it with
    origin='lower').

    Parameters
    ----------
    image : ndarray (128, 128)
        b = B_r / 1000 G in [-1, 1], finite.
    description : str
        Written into the scale, e.g. what the image is.
    generated : bool
        The image came from the generator: written into the scale, so a search with the PNG
        moves its embedding as the generated query's was (:func:`png_is_generated`).
    """
    check_model_image(image, "image")
    b = np.asarray(image, dtype=np.float64)  # levels rounded in double precision
    grey = np.rint((np.clip(b, -1, 1) + 1.0) / 2.0 * _LEVELS).astype(np.uint16)
    picture = Image.fromarray(np.ascontiguousarray(np.flipud(grey)))  # uint16 -> I;16
    meta = PngImagePlugin.PngInfo()
    scale = {
        "format": PNG_FORMAT,
        "b_min_gauss": -_FIELD_G,
        "b_max_gauss": _FIELD_G,
        "levels": _LEVELS,
        "origin": "lower",
        "description": description,
        "generated": bool(generated),
    }
    meta.add_text(PNG_SCALE_KEY, json.dumps(scale))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", pnginfo=meta)
    return buffer.getvalue()


def export_png(
    image: np.ndarray, path: str | Path, *, description: str = "", generated: bool = False
) -> Path:
    """Write a model-space image to ``path`` as sharpseek's magnetogram PNG
    (:func:`png_bytes`); returns the path."""
    data = png_bytes(image, description=description, generated=generated)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def is_sharpseek_png(source: str | Path | bytes) -> bool:
    """Whether a PNG (a path or its bytes) carries sharpseek's gauss scale."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as picture:
            return PNG_SCALE_KEY in picture.info
    except (UnidentifiedImageError, OSError):
        return False


def png_is_generated(source: str | Path | bytes) -> bool:
    """Whether a sharpseek PNG (a path or its bytes) says its image came from the generator
    (:func:`png_bytes`); False for any other file."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as picture:
            scale = json.loads(picture.info.get(PNG_SCALE_KEY) or "{}")
    except (UnidentifiedImageError, OSError, ValueError):
        return False
    return isinstance(scale, dict) and scale.get("generated") is True


def read_png(source: str | Path | bytes, *, name: str | None = None) -> np.ndarray:
    """The model-space image (128, 128) float32 of a PNG written by :func:`png_bytes` (a
    path, or the file's bytes; ``name`` names it in messages).

    Raises
    ------
    ImageInputError
        A PNG without sharpseek's scale (e.g. a colour-mapped figure): colours are not field
        values, so it cannot be turned back into gauss.
    """
    label = name or ("PNG" if isinstance(source, bytes) else str(source))
    unreadable = (UnidentifiedImageError, OSError, Image.DecompressionBombError)
    try:
        picture = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except unreadable as err:
        raise ImageInputError(f"{label}: not a readable PNG ({err})") from None
    with picture:
        text = picture.info.get(PNG_SCALE_KEY)
        if text is None:
            raise ImageInputError(
                f"{label}: this PNG carries no sharpseek gauss scale (metadata "
                f"{PNG_SCALE_KEY!r}); a colour-mapped picture cannot be turned back into "
                "gauss. Give the FITS file, a .npy array, or a PNG exported by sharpseek"
            )
        try:
            scale = json.loads(text)
            low, high, levels = (
                float(scale["b_min_gauss"]),
                float(scale["b_max_gauss"]),
                int(scale["levels"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ImageInputError(
                f"{label}: unreadable {PNG_SCALE_KEY!r} metadata ({err})"
            ) from None
        if scale.get("format") != PNG_FORMAT:
            raise ImageInputError(f"{label}: unknown sharpseek PNG format {scale.get('format')!r}")
        if picture.size != (MODEL_SIZE, MODEL_SIZE):  # before its pixels are decoded
            raise ImageInputError(
                f"{label}: a sharpseek PNG is {MODEL_SIZE}x{MODEL_SIZE} px, this one is "
                f"{picture.size[0]}x{picture.size[1]}"
            )
        try:
            picture.load()
        except unreadable as err:
            raise ImageInputError(f"{label}: not a readable PNG ({err})") from None
        grey = np.asarray(picture, dtype=np.float64)
    if grey.ndim != 2:
        raise ImageInputError(f"{label}: a sharpseek PNG is one grey channel, got {grey.shape}")
    gauss = low + grey / levels * (high - low)
    if scale.get("origin", "lower") == "lower":
        gauss = np.flipud(gauss)
    return check_model_image(gauss / _FIELD_G, label)


def load_image(
    source: str | Path | np.ndarray,
    *,
    units: Literal["gauss", "model"] = "gauss",
    field_clip_gauss: float = 1000.0,
) -> np.ndarray:
    """A query image in model space, (128, 128) float32, b in [-1, 1].

    Parameters
    ----------
    source : path or array
        ``.fits`` / ``.fits.gz`` / ``.fts``: a SHARP segment (B_r in gauss); NaN pixels
        (off-disk) become 0 G and the patch is resized as ingestion does
        (:func:`sharpseek.data.preprocess.to_model_space`). ``.npy`` or an array: in ``units``.
        ``.png``: only a PNG written by :func:`png_bytes` (CLI or UI export).
    units : "gauss" or "model"
        For arrays: B_r in gauss (any 2-D size; resized and clipped as ingestion does), or
        model space (exactly 128 x 128, in [-1, 1]).
    field_clip_gauss : float
        The clip of a real patch (FITS, or an array in gauss), as ingestion applies it
        (:func:`sharpseek.data.preprocess.clip_field`; pass ``settings.quality.field_clip_gauss``).
        Model-space input is taken as it is.

    Raises
    ------
    ImageInputError
        Unknown file type, not 2-D, wrong size for model units, NaN or infinite values in an
        array, values outside [-1, 1] in model units, an unscaled PNG.
    """
    if units not in ("gauss", "model"):
        raise ImageInputError(f"units must be 'gauss' or 'model', got {units!r}")
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ImageInputError(f"image file {path} does not exist")
        name = path.name.lower()
        if name.endswith(".png"):
            return read_png(path)
        if name.endswith((".fits", ".fits.gz", ".fts", ".fit")):
            try:
                data = read_sharp(path).data
            except (OSError, ValueError) as err:
                raise ImageInputError(f"{path}: not a readable FITS image ({err})") from None
            if np.isnan(data).all():
                raise ImageInputError(f"{path}: every pixel is NaN")
            too_small = small_patch_problem(data.shape)
            if too_small:
                raise ImageInputError(f"{path}: {too_small} (ingestion refuses such patches too)")
            return clip_field(to_model_space(data).image, field_clip_gauss)
        if name.endswith(".npy"):
            array = read_npy(path)
            if array.dtype == object:
                return _bad_npy(path)
            try:
                return load_image(array, units=units, field_clip_gauss=field_clip_gauss)
            except ImageInputError as err:
                raise ImageInputError(f"{path}: {err}") from None
        raise ImageInputError(
            f"{path}: unknown image type; give a FITS file, a .npy array or a PNG exported "
            "by sharpseek"
        )
    array = np.asarray(source)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise ImageInputError(f"image must be numeric, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise ImageInputError(f"image must be real numbers, got complex dtype {array.dtype}")
    array = np.squeeze(array.astype(np.float64))
    if array.ndim != 2:
        raise ImageInputError(f"image must be 2-D (ny, nx), got shape {np.shape(source)}")
    too_small = small_patch_problem(array.shape) if units == "gauss" else None
    if too_small:
        raise ImageInputError(f"image: {too_small} (ingestion refuses such patches too)")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ImageInputError(
            f"image has {int(bad.sum())} NaN or infinite pixel(s); set them to 0 G (as "
            "preprocessing does for off-disk pixels) or give the FITS file"
        )
    if units == "model":
        return check_model_image(array, "image")
    return clip_field(to_model_space(array).image, field_clip_gauss)


def read_npy(path: str | Path) -> np.ndarray:
    """The array of a ``.npy`` file, never unpickled, its header checked first: a header
    claiming more items than the file holds (say 10^10) is refused before any memory is
    taken for them. :class:`ImageInputError` naming the file otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} is not read here")
            header_end = f.tell()
        size = path.stat().st_size
    except (OSError, ValueError, TypeError, SyntaxError) as err:
        raise ImageInputError(f"{path}: not a readable .npy array ({err})") from None
    if dtype.hasobject:
        return _bad_npy(path)
    items = int(np.prod(shape, dtype=np.float64))
    if items * dtype.itemsize > size - header_end:
        raise ImageInputError(
            f"{path}: the .npy header claims {items:.3g} items of {dtype} (shape {shape}), "
            f"more than the file's {size} bytes hold"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, MemoryError) as err:
        raise ImageInputError(f"{path}: not a readable .npy array ({err})") from None


def _bad_npy(path: Path) -> np.ndarray:
    raise ImageInputError(f"{path}: holds Python objects, not an image array")


def check_model_image(image: Any, what: str = "image") -> np.ndarray:
    """A model-space image checked: (128, 128) float32, finite, b = B_r / 1000 G in [-1, 1].

    The one check of a model-space image, for every door one comes in by (query files and
    arrays here, the UI's uploads, renders and queries).

    Raises
    ------
    ImageInputError
        Naming ``what`` (e.g. the file) and what is wrong: not numbers, the wrong shape, NaN
        or infinite values, values outside [-1, 1] (gauss given for model units, say).
    """
    array = np.asarray(image)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise ImageInputError(f"{what}: expected numbers, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise ImageInputError(f"{what}: expected real numbers, got complex dtype {array.dtype}")
    if array.shape != (MODEL_SIZE, MODEL_SIZE):
        raise ImageInputError(
            f"{what}: a model-space image has shape ({MODEL_SIZE}, {MODEL_SIZE}), got shape "
            f"{array.shape}"
        )
    array = array.astype(np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ImageInputError(f"{what}: has {int(bad.sum())} NaN or infinite value(s)")
    peak = float(np.abs(array).max())
    if peak > 1.0 + 1e-6:
        raise ImageInputError(
            f"{what}: values reach {peak:.3g}; model space is b = B_r / 1000 G in [-1, 1]; "
            "is it in gauss?"
        )
    return array
