"""Reading a user's upload (a SHARP Br FITS, a .npy or a PNG) into a model-space image with
what is known of its origin: the pages' one way in for a real patch.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from sharpseek.data.fits import read_sharp
from sharpseek.data.images import check_model_image, is_sharpseek_png, read_png
from sharpseek.data.native import native_columns
from sharpseek.data.preprocess import clip_field, small_patch_problem, to_model_space
from sharpseek.ui.frames import cea_pixel_mm

__all__ = ["NATIVE_FRAME_KEY", "read_upload"]

#: ``read_upload``'s metadata key of a FITS upload's frame, Br [G] (ny, nx) at native scale
NATIVE_FRAME_KEY = "native_br_gauss"


def read_upload(
    name: str, data: bytes, *, field_clip_gauss: float = 1000.0
) -> tuple[np.ndarray, dict[str, Any]]:
    """A model-space image from an uploaded file: a SHARP Br FITS, a .npy or a PNG.

    - FITS: the SHARP segment is read (:func:`sharpseek.data.fits.read_sharp`) and resized to
      128 x 128 model space and clipped at ``field_clip_gauss`` as every ingested patch is
      (:func:`~sharpseek.data.preprocess.to_model_space`,
      :func:`~sharpseek.data.preprocess.clip_field`; pass the settings'
    ``quality.field_clip_gauss``);
    - .npy: a (128, 128) model-space array, b in [-1, 1] (as the Export page writes them);
    - PNG: sharpseek's magnetogram PNG (the Export page's and ``sharpseek search
      --save-query-png``'s; :func:`sharpseek.data.images.png_bytes`), read back in gauss by its
      scale; any other 128 x 128 grayscale picture is read as b = value / 127.5 - 1 (the
      mapping is the caller's claim: such a PNG holds no units).

    Returns the image (128, 128) float32 and what is known of its origin (FITS metadata and,
    for a FITS, its native-scale values: :func:`sharpseek.data.native.native_columns`).

    Raises
    ------
    ValueError
        Naming the file and what is wrong with it.
    """
    suffix = Path(name).suffix.lower()
    if suffix in (".fits", ".fit", ".fts") or data[:6] == b"SIMPLE":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / (Path(name).name or "upload.fits")
            path.write_bytes(data)
            try:
                sharp = read_sharp(path)
            except Exception as err:  # astropy raises several kinds for a broken file
                raise ValueError(f"{name}: not a readable FITS image ({err})") from None
        too_small = small_patch_problem(sharp.data.shape)
        if too_small:
            raise ValueError(f"{name}: {too_small} (ingestion refuses such patches too)")
        try:
            patch = to_model_space(sharp.data)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None

        meta = {k: v for k, v in sharp.meta.items() if v is not None}
        meta["nan_fraction"] = patch.nan_fraction
        # a real patch: its native-scale values (on Br; an upload has no magnetogram beside)
        meta.update(native_columns(sharp.data, {**meta, "dsun_obs": sharp.header.get("DSUN_OBS")}))
        # the frame itself, for pictures at its true aspect (the caller pops it: not a value)
        meta[NATIVE_FRAME_KEY] = np.asarray(sharp.data, dtype=np.float32)
        meta["cea_pixel_mm"] = cea_pixel_mm(meta)
        return clip_field(patch.image, field_clip_gauss), meta
    if suffix == ".npy":
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as err:
            raise ValueError(f"{name}: not a readable .npy array ({err})") from None
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        return check_model_image(array, name), {}
    if suffix == ".png":
        if is_sharpseek_png(data):  # the Export page's (and the CLI's) own format
            return read_png(data, name=name), {}
        try:
            picture = Image.open(io.BytesIO(data))
            picture.load()
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{name}: not a readable PNG ({err})") from None
        if picture.mode not in ("L", "I;16", "I"):
            raise ValueError(
                f"{name}: a {picture.mode} PNG; upload a grayscale 128 x 128 PNG (value 0 = "
                "-1000 G, 255 = +1000 G), or the .npy or FITS of the patch"
            )
        gray = np.asarray(picture, dtype=np.float32)
        if picture.mode != "L":
            gray = gray / 257.0
        # rows of a picture run top (north) to bottom; model arrays run south to north
        return check_model_image(gray[::-1] / 127.5 - 1.0, name), {}
    raise ValueError(f"{name}: upload a FITS (.fits), a .npy or a PNG file, not {suffix or 'this'}")
