"""The magnetogram panel every UI page shows: colour bar in gauss, north up, west right, axes."""

from __future__ import annotations

import numpy as np
import pytest

from sharpseek.plotting import (
    MAGNETOGRAM_CMAP,
    _lut,
    magnetogram_panel_rgb,
    model_panel_rgb,
    nice_ticks,
)

RED, BLUE = _lut(MAGNETOGRAM_CMAP)[-1], _lut(MAGNETOGRAM_CMAP)[0]


def _where(panel: np.ndarray, colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.nonzero(np.all(panel == colour, axis=-1))


def test_panel_puts_north_up_and_west_right():
    image = np.zeros((128, 128), np.float32)
    image[100:110, 110:120] = 1.0  # +1000 G in the north-west corner (y and x large)
    image[5:15, 5:15] = -1.0  # -1000 G in the south-east corner
    panel = model_panel_rgb(image)
    # the colour bar carries both end colours too: look left of it, in the picture
    red_y, red_x = _where(panel[:, : 46 + 3 * 128], RED)
    blue_y, blue_x = _where(panel[:, : 46 + 3 * 128], BLUE)
    assert red_y.max() < blue_y.min(), "north (large y) must be drawn above south"
    assert red_x.min() > blue_x.max(), "west (large x) must be drawn right of east"


def test_panel_has_a_symmetric_colour_bar_red_on_top():
    panel = model_panel_rgb(np.zeros((128, 128), np.float32))
    red_y, red_x = _where(panel, RED)
    blue_y, blue_x = _where(panel, BLUE)
    assert red_x.size and blue_x.size, "a blank image still shows the colour bar's two ends"
    assert red_x.min() > 46 + 3 * 128 and blue_x.min() > 46 + 3 * 128, "the bar is right"
    assert red_y.max() < blue_y.min(), "+vmax at the top of the bar, -vmax at the bottom"


def test_real_frame_keeps_its_aspect():
    frame = np.zeros((250, 583), np.float32)
    panel = magnetogram_panel_rgb(frame, zoom=1, pixel_size=0.364, axis_unit="Mm")
    margin_w, margin_h = panel.shape[1] - 583, panel.shape[0] - 250
    square = magnetogram_panel_rgb(np.zeros((128, 128)), zoom=1)
    assert (square.shape[1] - 128, square.shape[0] - 128) == (margin_w, margin_h)


def test_nice_ticks_step_by_one_two_five():
    assert nice_ticks(128).tolist() == [0, 50, 100]
    assert nice_ticks(212.2).tolist() == [0, 50, 100, 150, 200]
    assert nice_ticks(0.9).tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_gauss": np.zeros(5)}, "shape"),
        ({"image_gauss": np.zeros((4, 4)), "pixel_size": 0.0}, "pixel_size"),
    ],
)
def test_bad_panel_input_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        magnetogram_panel_rgb(**kwargs)


def test_fits_upload_keeps_its_frame_for_a_picture_in_mm(br_sample_paths):
    from sharpseek.fits import read_sharp
    from sharpseek.ui import NATIVE_FRAME_KEY, read_upload

    path = br_sample_paths[0]
    _, meta = read_upload(path.name, path.read_bytes())
    sharp = read_sharp(path)
    frame = meta[NATIVE_FRAME_KEY]
    assert frame.shape == sharp.data.shape and frame.shape[0] != frame.shape[1]
    # CDELT1 0.03 deg of a 696 Mm sphere: 0.364 Mm a pixel
    assert meta["cea_pixel_mm"] == pytest.approx(0.03 * np.pi / 180 * 696.0, rel=1e-3)
    panel = magnetogram_panel_rgb(frame, zoom=1, pixel_size=meta["cea_pixel_mm"], axis_unit="Mm")
    square = magnetogram_panel_rgb(np.zeros((128, 128)), zoom=1)
    margins = square.shape[1] - square.shape[0]  # the axes and the colour bar
    assert panel.shape[1] - panel.shape[0] - margins == frame.shape[1] - frame.shape[0]
