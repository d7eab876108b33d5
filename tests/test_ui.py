"""The UI: its library side (view state, URLs, uploads, exports, workbench) and every page
through Streamlit's AppTest against a small real home (untrained models, fitted directions,
an embedded index of a tiny synthetic dataset; see ui_fixtures.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from sharpseek.cli.ui import app_path
from sharpseek.data.images import load_image, png_bytes
from sharpseek.search.index import SearchFilter
from sharpseek.ui import (
    ViewState,
    Workbench,
    decode_query,
    encode_query,
    image_npy,
    read_upload,
    results_table,
    version_problems,
)

pytest_plugins = ["model_fixtures", "ui_fixtures"]
torch.set_num_threads(1)
APP = str(app_path())  # the Streamlit script shipped in the package


# ---------------------------------------------------------------- view state and URLs
def test_query_string_round_trip():
    state = ViewState(
        page="search", seed=42, shifts={"tuf": 1.5, "psep": -0.25}, hold=["r"],
        filters=SearchFilter(ranges={"tuf": (1e5, None), "r": (0.0, 2.5e4)}, hemisphere="south",
                             mu=(0.5, 1.0), time=("2014-01-01", None), harpnums=[377, 401],
                             noaa=[11158]),
        limit=7, gan="g-1", directions="g-1-dabc", index="sharps--e1",
    )  # fmt: skip
    assert decode_query(encode_query(state)) == state


@pytest.mark.parametrize(
    "time", ["2014-01-01..2014-06-01", "2014-01-01T06:30:00..", "..2015-03-02"]
)
def test_a_link_is_written_again_byte_for_byte(time):
    from urllib.parse import urlencode

    link = {"v": "1", "page": "search", "seed": "42", "shift": "psep:-0.25,tuf:1.5", "hold": "r",
            "f.r": "0..25000", "f.tuf": "100000..", "time": time, "hemi": "south", "lat": "-30..0",
            "mu": "0.5..1", "harp": "377,401", "noaa": "11158", "k": "7", "per": "1",
            "gan": "g-1", "dirs": "g-1-dabc", "index": "sharps--e1"}  # fmt: skip
    state = decode_query(link)
    assert isinstance(state.filters, SearchFilter)
    assert urlencode(encode_query(state)) == urlencode(link)


def test_a_range_bound_reads_back_exactly_so_the_frame_on_it_stays_in():
    # a TUF range whose top is a frame's own TUF, as the Search page's slider sets it: with
    # 12 significant digits the link's bound fell below the frame, which it then filtered out
    top = 2146158.1959741234
    state = ViewState(page="search", seed=3, filters=SearchFilter(ranges={"tuf": (1e6, top)}))
    query = encode_query(state)
    assert decode_query(query).filters.ranges["tuf"] == (1e6, top)
    assert query["f.tuf"] == f"1000000..{top!r}"


def test_zero_shifts_are_left_out_of_the_link():
    assert "shift" not in encode_query(ViewState(seed=1, shifts={"tuf": 0.0}))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"v": "2"}, "format v=2"),
        ({"seed": "abc"}, "seed='abc' is not a whole number"),
        ({"seed": "-3"}, "seed=-3 must be at least 0"),
        ({"f.tuf": "5..1"}, "inverted range"),
        ({"shift": "tuf=1"}, "name:eps pairs"),
        ({"page": "nowhere"}, "page='nowhere'"),
        ({"bogus": "1"}, "bogus not understood"),
        ({"shift": "tuf:nan"}, "must be finite"),
    ],
)
def test_bad_link_names_the_parameter(params, message):
    with pytest.raises(ValueError, match=message):
        decode_query(params)


def test_version_problems_say_which_version_is_gone():
    state = ViewState(seed=1, gan="old-gan", directions=None, index="sharps--new")
    problems = version_problems(
        state, {"gan": "new-gan", "directions": "d", "index": "sharps--new"}
    )
    assert len(problems) == 1
    assert "GAN version old-gan, which is gone" in problems[0] and "new-gan" in problems[0]


def test_the_view_holds_a_checked_search_filter():
    assert ViewState().filters == SearchFilter() and ViewState().filters.is_empty()
    state = decode_query({"f.tuf": "1..2", "hemi": "north", "time": "2014-01-01.."})
    spec = state.filters
    assert spec == SearchFilter(ranges={"tuf": (1.0, 2.0)}, hemisphere="north",
                                time=("2014-01-01", None))  # fmt: skip
    with pytest.raises(ValueError, match="hemisphere"):
        SearchFilter(hemisphere="east")
    with pytest.raises(ValueError, match="time='2014-99-01'"):
        decode_query({"time": "2014-99-01.."})
    with pytest.raises(ValueError, match="cannot carry the filter field"):
        encode_query(ViewState(filters=SearchFilter(exclude_regions=["synthetic:1"])))


# ---------------------------------------------------------------- uploads and exports
def test_npy_export_reads_back_as_the_same_image():
    image = np.random.default_rng(0).uniform(-1, 1, (128, 128)).astype(np.float32)
    back, _ = read_upload("a.npy", image_npy(image))
    np.testing.assert_array_equal(back, image)


def test_grayscale_png_maps_0_255_to_minus_plus_1000_gauss_north_up():
    from PIL import Image

    gray = np.zeros((128, 128), np.uint8)
    gray[0, :] = 255  # top row of the picture = north = last model row
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    image, _ = read_upload("x.png", buffer.getvalue())
    assert image[-1, 0] == pytest.approx(1.0) and image[0, 0] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", b"hello", "upload a FITS"),
        ("small.npy", image_npy(np.zeros((64, 64))), r"shape \(64, 64\)"),
        ("big.npy", image_npy(np.full((128, 128), 3.0)), "values reach 3"),
        ("broken.npy", b"not numpy", "not a readable .npy"),
        ("broken.fits", b"SIMPLE  = garbage", "not a readable FITS"),
        ("colour.png", None, "RGB PNG"),
    ],
)
def test_bad_upload_is_refused_with_its_name(name, data, message):
    if data is None:
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (128, 128)).save(buffer, format="PNG")
        data = buffer.getvalue()
    with pytest.raises(ValueError, match=message):
        read_upload(name, data)


def test_a_tiny_fits_upload_is_refused_as_ingest_refuses_it(tmp_path):
    from astropy.io import fits

    fits.PrimaryHDU(np.ones((4, 4))).writeto(tmp_path / "tiny.fits")
    with pytest.raises(ValueError, match=r"tiny.fits: patch is 4x4 px, under 8 px"):
        read_upload("tiny.fits", (tmp_path / "tiny.fits").read_bytes())
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((128, 128), np.complex64))
    with pytest.raises(ValueError, match="complex"):
        read_upload("c.npy", buffer.getvalue())


def test_real_fits_sample_becomes_a_model_space_image(br_sample_paths):
    path = br_sample_paths[0]
    image, meta = read_upload(path.name, path.read_bytes())
    assert image.shape == (128, 128) and np.abs(image).max() <= 1
    assert meta["harpnum"] > 0
    clipped, _ = read_upload(path.name, path.read_bytes(), field_clip_gauss=200.0)
    from sharpseek.data.preprocess import clip_field

    assert np.array_equal(clipped, clip_field(image, 200.0))  # as ingestion clips it
    assert np.abs(clipped).max() == pytest.approx(0.2)


def test_png_export_is_the_magnetogram_scale():
    from PIL import Image

    image = np.zeros((128, 128), np.float32)
    image[:, :64] = 1.0
    image[-1, -1] = -1.0  # the last model row is the top (north) row of the picture
    picture = np.asarray(Image.open(io.BytesIO(png_bytes(image))))
    assert picture.shape == (128, 128)
    assert picture[0, 0] == 65535  # +1000 G is white
    assert picture[0, -1] == 0  # -1000 G is black
    assert picture[1, -1] == 32768  # 0 G is mid grey (level 32767.5, rounded)


def _quantised(image):
    """Within half a grey level of the PNG (2000 G / 65535 per level), in model units."""
    return pytest.approx(image, abs=1.0 / 65535 + 1e-7)


def test_exported_png_uploads_back_as_the_same_image():
    image = np.random.default_rng(4).uniform(-1, 1, (128, 128)).astype(np.float32)
    back, _ = read_upload("exported.png", png_bytes(image, description="seed 4"))
    assert back.dtype == np.float32 and back.shape == (128, 128)
    assert back == _quantised(image)


def test_ui_png_export_is_a_cli_query_and_a_cli_png_an_upload(tmp_path):
    from sharpseek.data.images import export_png

    image = np.random.default_rng(5).uniform(-1, 1, (128, 128)).astype(np.float32)
    ui_png = tmp_path / "from-ui.png"
    ui_png.write_bytes(png_bytes(image))  # what the Export page's PNG button hands out
    assert load_image(ui_png) == _quantised(image)  # as `sharpseek search --image` reads it
    cli_png = export_png(image, tmp_path / "from-cli.png")  # `search --save-query-png`
    back, _ = read_upload(cli_png.name, cli_png.read_bytes())
    assert back == _quantised(image)


# ---------------------------------------------------------------- workbench
@pytest.fixture
def wb(ui_home):
    """A Workbench on the UI home, closed after the test (the embedded index serves one
    opener at a time)."""
    bench = Workbench(ui_home)
    yield bench
    bench.close()


def test_workbench_shift_moves_tuf_as_its_calibration_says(wb):
    before = wb.render(seed=5).params["tuf"]
    after = wb.render(seed=5, shifts={"tuf": 3.0}).params["tuf"]
    cal_low, cal_high = wb.calibrated("tuf", -3.0)[0], wb.calibrated("tuf", 3.0)[0]
    assert cal_high > cal_low  # the calibration curve grows along the TUF direction
    assert after > before


def test_workbench_renders_what_the_backend_generates(wb, ui_home):
    from sharpseek.physics.parameters import compute_parameters
    from sharpseek.serving.backends import open_backend

    shown = wb.render(seed=5, shifts={"tuf": 1.0, "grad": -0.5}, hold=["sigma"])
    direct = open_backend(ui_home).generate(seeds=[5], shifts={"tuf": 1.0, "grad": -0.5},
                                            hold=["sigma"])  # fmt: skip
    np.testing.assert_array_equal(shown.image, direct.images[0])
    np.testing.assert_array_equal(shown.z, direct.z[0])
    assert shown.params["tuf"] == pytest.approx(float(compute_parameters(direct.images)["tuf"][0]))
    assert wb.model_backend() == "in-process (embedded)"


def test_shift_updates_hash_the_directions_once(wb, monkeypatch):
    """The directions version (a hash of the whole set, ~10-20 ms) is computed once, not
    on every slider step; each result still names it."""
    from sharpseek.science.directions import DirectionSet

    wb.render(seed=5, shifts={"tuf": 0.1})
    calls = []
    original = DirectionSet.version
    monkeypatch.setattr(
        DirectionSet, "version", property(lambda self: calls.append(1) or original.fget(self))
    )
    results = [wb.backend.generate(seeds=[5], shifts={"tuf": e}) for e in (0.2, 0.3)]
    results.append(wb.backend.generate(seeds=[5]))
    assert calls == []
    expected = original.fget(wb.directions)
    assert [r.directions_version for r in results] == [expected] * 3
    assert wb.backend.versions()["directions"] == expected


def test_workbench_search_is_the_searchers_search(wb, ui_home):
    from sharpseek.search.searcher import Searcher

    image = wb.grid([7])[0]
    matches = wb.search(image, SearchFilter(hemisphere="north"), limit=4)
    searcher = Searcher(ui_home, index=wb.index)  # its own in-process encoder, same index
    frame = searcher.search(
        searcher.image_query(image), k=4, filter=SearchFilter(hemisphere="north")
    )
    assert len(frame) == 4
    assert [m.record_id for m in matches] == frame["record_id"].tolist()
    np.testing.assert_allclose([m.distance for m in matches], frame["distance"], rtol=1e-5)
    for m in matches:
        np.testing.assert_array_equal(m.image, searcher.record_image(m.record_id))


def test_workbench_inversion_finds_a_generated_patch(ui_home):
    wb = Workbench(
        ui_home.model_copy(
            update={
                "directions": ui_home.directions.model_copy(
                    update={"inversion_steps": 60, "inversion_starts": 4}
                )
            }
        )
    )
    target = wb.grid([11])[0]
    result = wb.invert(target)
    wb.close()
    noise = np.random.default_rng(0).standard_normal(result.z.shape).astype(np.float32)
    far = wb.render(z=noise).image
    # the inverted z reconstructs the patch much better than a random z does
    assert result.error < 0.5 * float(np.mean((far - target) ** 2))
    shifted = wb.render(z=result.z, shifts={"tuf": 2.0})
    assert shifted.params["tuf"] != pytest.approx(wb.render(z=result.z).params["tuf"])


def test_torchserve_that_is_down_is_named_in_the_status(ui_home):
    settings = ui_home.model_copy(update={"serve": ui_home.serve.model_copy(update={
        "backend": "torchserve", "inference_url": "http://127.0.0.1:9", "token_auth": False,
        "retries": 0, "timeout_seconds": 2})})  # fmt: skip
    bench = Workbench(settings)
    status = bench.status()
    bench.close()
    assert status["models"]["backend"] == "TorchServe at http://127.0.0.1:9"
    assert "cannot reach TorchServe at http://127.0.0.1:9" in status["models"]["error"]
    assert status["index"]["records"] == 36  # the index part still answers


def test_range_histogram_draws_bars_in_and_out_of_the_range():
    from PIL import Image

    from sharpseek.ui.charts import range_histogram_png

    values = np.random.default_rng(1).normal(0, 1, 500)
    picture = np.asarray(Image.open(io.BytesIO(range_histogram_png(values, 0.5, 3, label="x"))))
    rgb = picture[..., :3].astype(int)
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 60) & (rgb[..., 2] < 80)
    grey = (np.abs(rgb[..., 0] - 187) < 4) & (np.abs(rgb[..., 2] - 187) < 4)
    assert red.sum() > 200 and grey.sum() > 200  # bars on both sides, not just axes
    # the red bars lie right of the grey ones (the range is the upper tail)
    assert np.median(np.nonzero(red)[1]) > np.median(np.nonzero(grey)[1])


def test_workbench_search_returns_one_frame_per_region_within_the_filter(wb):
    values = wb.indexed_values()
    cut = float(values["tuf"].median())
    matches = wb.search(wb.grid([1])[0], SearchFilter(ranges={"tuf": (cut, None)}), limit=5)
    assert 0 < len(matches) <= 5
    assert len({m.harpnum for m in matches}) == len(matches)
    assert all(m.parameter("tuf") >= cut for m in matches)
    assert all(m.image is not None and m.image.shape == (128, 128) for m in matches)
    distances = [m.distance for m in matches]
    assert distances == sorted(distances)
    table = results_table(matches, {"tuf": 1.0}, jsoc_url="http://jsoc.example/")
    assert list(table["record_id"][:1]) == ["query"] and len(table) == len(matches) + 1


def test_status_counts_the_indexed_records(wb):
    status = wb.status()
    assert status["index"]["records"] == 36  # 12 regions x 3 frames
    assert status["index"]["backend"] == "embedded"
    assert status["last_ingest"]["dataset"] == "synthetic"


# ---------------------------------------------------------------- pages (AppTest)
@pytest.fixture
def app(ui_home):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _page(at, name):
    at.sidebar.radio(key="page_choice").set_value(name).run()
    assert not at.exception, at.exception
    return at


def test_generate_page_picks_a_seed(app):
    assert len(app.image) >= 12
    app.button(key="pick_3").click().run()
    assert "Working on seed 3." in [s.value for s in app.success]
    assert app.query_params["seed"] == ["3"] or app.query_params["seed"] == "3"


def test_generate_page_refuses_a_bad_upload_and_keeps_the_seed(app):
    app.button(key="pick_2").click().run()
    app.file_uploader(key="upload").upload("oops.txt", b"not an image", "text/plain").run()
    assert any("Upload refused: oops.txt" in e.value for e in app.error)
    _page(app, "shift")
    assert "seed 2" in " ".join(c.value for c in app.sidebar.caption)


def test_upload_is_inverted_shifted_and_kept_as_a_query(ui_home):
    from streamlit.testing.v1 import AppTest

    bench = Workbench(ui_home)
    real = bench.grid([9])[0]
    bench.close()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.file_uploader(key="upload").upload("patch.npy", image_npy(real), "application/npy").run()
    assert not at.exception, at.exception
    assert any("Working on patch.npy (inverted" in s.value for s in at.success)
    error = {m.label: m.value for m in at.metric}["Reconstruction rms error"]
    assert error.endswith(" G") and 0 <= float(error[:-2]) < 50  # the GAN drew this patch,
    # so inversion finds it again, and says nothing about not representing it
    assert not any("cannot represent" in w.value for w in at.warning)
    _page(at, "shift")
    before = at.table[0].value["now"]["TUF"]
    at.slider(key="eps_tuf").set_value(2.0).run()
    assert at.table[0].value["now"]["TUF"] != before
    _page(at, "search")
    assert at.radio(key="query_source").value == "the real patch"
    at.button(key="search").click().run()
    assert not at.exception and not at.error
    np.testing.assert_array_equal(at.session_state["query_image"], real)


def test_an_upload_the_gan_cannot_draw_is_inverted_with_a_plain_warning(app):
    checkerboard = (np.indices((128, 128)).sum(axis=0) % 2 * 1.6 - 0.8).astype(np.float32)
    app.file_uploader(key="upload").upload(
        "checkerboard.npy", image_npy(checkerboard), "application/npy"
    ).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    warned = [w.value for w in app.warning if "cannot represent" in w.value]
    assert warned and warned[0].startswith("The GAN cannot represent this patch")
    assert "search with the real patch itself" in warned[0]


def test_shift_page_slider_changes_the_parameters(app):
    app.button(key="pick_4").click().run()
    _page(app, "shift")
    before = app.table[0].value["now"]["TUF"]
    app.slider(key="eps_tuf").set_value(2.5).run()
    table = app.table[0].value
    assert table["now"]["TUF"] != before and table["start"]["TUF"] == pytest.approx(before)
    assert dict(_qp(app))["shift"] == "tuf:2.5"
    assert any(c.value.startswith("TUF ≈") for c in app.caption)


def test_shift_page_solves_a_target(app):
    app.button(key="pick_4").click().run()
    _page(app, "shift")
    app.text_input(key="targets").input("tuf=1.3x").run()
    app.button(key="solve").click().run()
    assert not app.exception
    text = " ".join(m.value for m in [*app.success, *app.warning])
    assert "TUF: start" in text and "reached" in text
    assert app.slider(key="eps_tuf").value != 0


def test_shift_page_bad_target_is_a_message(app):
    app.button(key="pick_4").click().run()
    _page(app, "shift")
    app.text_input(key="targets").input("tuf is big").run()
    app.button(key="solve").click().run()
    assert any("not understood" in e.value for e in app.error)
    assert app.slider(key="eps_tuf").value == 0


def test_search_page_filters_and_compares(app):
    app.button(key="pick_1").click().run()
    _page(app, "search")
    app.multiselect(key="filter_fields").set_value(["tuf"]).run()
    low, high = app.slider(key="range_tuf").value
    cut = (low + high) / 2
    app.slider(key="range_tuf").set_value((cut, high)).run()
    app.button(key="search").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value.set_index("parameter")
    matches = [c for c in table.columns if c not in ("unit", "query")]
    assert matches and all(table[c]["TUF"] >= cut for c in matches)
    assert len(app.image) >= 3 + len(matches)  # query, results, compare (3)
    # the compared match's labelled values: model space and, for an indexed frame, position
    assert any(c.value.startswith(("model space:", "native CEA grid:")) for c in app.caption)
    # the look-alike outlook: this index holds no flare outcomes, and the page says so
    outlook = [m.value for m in app.markdown if "Flare outlook" in m.value]
    assert outlook and "no look-alike region with flare outcomes" in outlook[0]
    assert "f.tuf" in dict(_qp(app))


def test_search_page_bad_harp_number_is_a_message(app):
    app.button(key="pick_1").click().run()
    _page(app, "search")
    app.text_input(key="harps").input("12x").run()
    assert any("HARP numbers" in e.value for e in app.error)
    assert app.button(key="search").disabled


def test_search_page_flare_filters_reach_the_search(app):
    app.button(key="pick_1").click().run()
    _page(app, "search")
    app.text_input(key="flare_outcome").input("Q+").run()
    assert any("flare class 'Q+'" in e.value for e in app.error)
    assert app.button(key="search").disabled
    app.text_input(key="flare_outcome").input("M+").run()
    app.button(key="search").click().run()
    # this index holds no flare fields (no catalogue loaded): the search says so
    assert any("no 24 h outcome window" in e.value for e in app.error)


def test_export_page_link_reproduces_the_view(app, ui_home):
    from streamlit.testing.v1 import AppTest

    app.button(key="pick_6").click().run()
    _page(app, "shift")
    app.slider(key="eps_tuf").set_value(1.2).run()
    tuf = app.table[0].value["now"]["TUF"]
    _page(app, "export")
    link = app.code[0].value
    assert "seed=6" in link and "gan=" in link and "dirs=" in link
    again = AppTest.from_file(APP, default_timeout=60)
    for key, value in dict(_qp(app)).items():
        again.query_params[key] = value
    again.query_params["page"] = "shift"
    again.run()
    assert not again.error
    table = again.table[0].value
    assert table["now"]["TUF"] == pytest.approx(tuf)


def test_link_with_a_gone_gan_version_says_so(ui_home):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"v": "1", "page": "shift", "seed": "3", "gan": "retired-gan-e0001"})
    at.run()
    assert any("GAN version retired-gan-e0001, which is gone" in e.value for e in at.error)


def test_status_page_shows_backends_and_counts(app):
    _page(app, "status")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["SHARPs indexed"] == "36" and metrics["Index backend"] == "embedded"


def _qp(at):
    return {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def test_ui_command_starts_streamlit_without_its_gc_after_every_run(monkeypatch):
    """`sharpseek ui` turns off Streamlit's post-run gc.collect(2): on this process it held
    the GIL for ~100-200 ms after every Shift update (docs/ui.md, "Speed")."""
    from typer.testing import CliRunner

    from sharpseek.cli import ui as cli_ui
    from sharpseek.cli.app import app as cli_app

    calls = []
    monkeypatch.setattr(cli_ui.os, "execv", lambda exe, argv: calls.append(argv))
    result = CliRunner().invoke(cli_app, ["ui", "--port", "8601", "--no-browser"])
    assert result.exit_code == 0, result.output
    (argv,) = calls
    assert argv[argv.index("--runner.postScriptGC") + 1] == "false"
    assert argv[argv.index("--client.toolbarMode") + 1] == "viewer"  # no Deploy button
    assert argv[argv.index("run") + 1] == str(cli_ui.app_path())


def test_shift_page_marks_weak_directions_beside_their_sliders(app, ui_home):
    """Each slider carries its direction's validation accuracy and calibration; a weak one
    (by the settings' rule, as `sharpseek directions show` says) is labelled and warned."""
    bench = Workbench(ui_home)
    strengths = {p: bench.strength(p) for p in bench.shift_parameters()}
    bench.close()
    app.button(key="pick_4").click().run()
    _page(app, "shift")
    labels = {s.key: s.label for s in app.slider}
    notes = [c.value for c in app.caption] + [w.value for w in app.warning]
    for p, strength in strengths.items():
        assert labels[f"eps_{p}"].endswith("· weak") == strength.weak
        assert f"{p.upper()} direction: {strength.summary()}" in notes
    weak = [p for p, s in strengths.items() if s.weak]
    assert all(any(w.value.startswith(f"{p.upper()} direction") for w in app.warning) for p in weak)
