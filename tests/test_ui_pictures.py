"""The magnetogram panel every UI page shows: colour bar in gauss, north up, west right, axes."""

from __future__ import annotations

import numpy as np
import pytest

from sharpseek.cli.ui import app_path
from sharpseek.science.plotting import (
    MAGNETOGRAM_CMAP,
    _lut,
    magnetogram_panel_rgb,
    model_panel_rgb,
    nice_ticks,
)

pytest_plugins = ["model_fixtures", "ui_fixtures"]
APP = str(app_path())  # the Streamlit script shipped in the package

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
    from sharpseek.data.fits import read_sharp
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


def test_export_names_say_what_the_files_hold_and_the_png_uploads_back(ui_home, monkeypatch):
    from streamlit.delta_generator import DeltaGenerator
    from streamlit.testing.v1 import AppTest

    offered = {}  # label -> (file name, bytes): what the browser would save
    original = DeltaGenerator.download_button

    def recording(self, label, data, file_name=None, *args, **kwargs):
        offered[label] = (file_name, data)
        return original(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.button(key="pick_3").click().run()
    at.sidebar.radio(key="page_choice").set_value("shift").run()
    at.slider(key="eps_tuf").set_value(1.5).run()
    at.sidebar.radio(key="page_choice").set_value("export").run()
    assert not at.exception, at.exception
    assert offered["PNG"][0] == "seed3-tuf+1.5.png"
    assert offered["Model-space .npy"][0] == "seed3-tuf+1.5.npy"
    # the app's own PNG is an upload it accepts (then inverts, as any real patch)
    at.sidebar.radio(key="page_choice").set_value("generate").run()
    name, data = offered["PNG"]
    at.file_uploader(key="upload").upload(name, data, "image/png").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(f"Working on {name}" in s.value for s in at.success)


def test_a_real_frame_exports_as_jsoc_names_it_and_its_inversion_says_gan(
    ui_home, br_sample_paths, monkeypatch
):
    from streamlit.delta_generator import DeltaGenerator
    from streamlit.testing.v1 import AppTest

    offered = {}  # label -> file name: what the browser would save
    original = DeltaGenerator.download_button

    def recording(self, label, data, file_name=None, *args, **kwargs):
        offered[label] = file_name
        return original(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    path = br_sample_paths[0]  # e.g. hmi.sharp_cea_720s.7115.20170906_120000_TAI.Br.fits
    jsoc = path.name.removesuffix(".fits")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.file_uploader(key="upload").upload(path.name, path.read_bytes(), "image/fits").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.sidebar.radio(key="page_choice").set_value("export").run()
    assert not at.exception, at.exception
    assert offered["Real frame PNG"] == f"{jsoc}.png"  # the frame, as JSOC names it
    assert offered["Real frame .npy"] == f"{jsoc}.npy"
    assert offered["PNG"] == f"{jsoc}-gan.png"  # its GAN reconstruction, not the frame


@pytest.mark.parametrize(
    "kwargs, stem",
    [
        ({"seed": 3, "shifts": {"tuf": 1.5}}, "seed3-tuf+1.5"),
        ({"seed": 0, "shifts": {"r": -2.0, "psep": 0.0}}, "seed0-r-2"),
        (
            {"series": "hmi.sharp_cea_720s", "harpnum": 7115, "t_rec": "2017-09-06T12:00:00"},
            "hmi.sharp_cea_720s.7115.20170906_120000_TAI.Br",
        ),
        ({"fallback": "upload my patch.npy"}, "upload_my_patch"),
        ({"fallback": "synthetic:12:x", "t_rec": None, "series": "s"}, "synthetic_12_x"),
        (
            {
                "series": "hmi.sharp_cea_720s",
                "harpnum": 377,
                "t_rec": "2011-02-15T02:00:00",
                "inverted": True,
                "shifts": {"r": 0.5},
            },
            "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br-gan-r+0.5",
        ),
        ({"seed": 4, "inverted": True}, "seed4"),  # a seed's image is no inversion
    ],
)
def test_export_stem_names_what_a_file_holds(kwargs, stem):
    from sharpseek.ui import export_stem

    assert export_stem(**kwargs) == stem


def test_thumbnail_colour_bar_runs_blue_to_red_left_to_right():
    from sharpseek.science.plotting import colour_bar_rgb

    bar = colour_bar_rgb(length=200)
    red_y, red_x = _where(bar, RED)
    blue_y, blue_x = _where(bar, BLUE)
    assert blue_x.size and red_x.size and blue_x.max() < red_x.min()
    with pytest.raises(ValueError, match="length"):
        colour_bar_rgb(length=3)


def test_an_indexed_record_is_drawn_at_its_frames_aspect_in_mm():
    from sharpseek.ui import true_aspect

    image = np.zeros((128, 128), np.float32)
    image[:, 64:] = 0.5  # +500 G in the western half
    payload = {"naxis1": 583, "naxis2": 250, "cdelt1": 0.03, "rsun_ref": 6.96e8}
    frame = true_aspect(image, payload)
    assert frame.resampled and frame.native_shape == (250, 583)
    ny, nx = frame.image_gauss.shape
    assert nx == 128 and ny == round(128 * 250 / 583)  # the long side keeps 128 px
    cea = 0.03 * np.pi / 180 * 696.0  # Mm per CEA pixel
    assert frame.pixel_mm * nx == pytest.approx(583 * cea, rel=1e-3)  # the frame's width
    assert frame.pixel_mm * ny == pytest.approx(250 * cea, rel=0.01)
    assert frame.image_gauss[:, -1].mean() == pytest.approx(500.0, rel=1e-3)  # gauss, west
    assert frame.image_gauss[:, 0].mean() == pytest.approx(0.0, abs=1e-3)
    assert "583 x 250 CEA px" in frame.caption() and "resampled" in frame.caption()
    # without naxis, the resize scales say the size; without either, no true aspect
    scaled = true_aspect(image, {"scale_x": 583 / 128, "scale_y": 250 / 128})
    assert scaled.image_gauss.shape == (ny, nx)
    assert true_aspect(image, {"naxis1": None, "scale_x": float("nan")}) is None


def test_an_uploaded_frame_is_drawn_from_its_own_data():
    from sharpseek.ui import true_aspect

    native = np.full((40, 90), 250.0, np.float32)
    frame = true_aspect(np.zeros((128, 128)), {"cdelt1": 0.03}, native)
    assert not frame.resampled and frame.image_gauss.shape == (40, 90)
    np.testing.assert_array_equal(frame.image_gauss, native)
    assert "the frame's own data" in frame.caption()
