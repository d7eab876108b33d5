"""The UI never shows a traceback: hypothesis drives its shareable-link parameters and its
upload with random and hostile values, through Streamlit's AppTest against the small real
home of ui_fixtures.py. A value the UI cannot use is a message on the page (``st.error``),
never an uncaught exception (which Streamlit would draw as a traceback)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharpseek.cli.ui import app_path
from sharpseek.ui.state import PAGES

pytest_plugins = ["model_fixtures", "ui_fixtures"]
pytestmark = pytest.mark.slow

APP = str(app_path())  # the Streamlit script shipped in the package

KEYS = [
    "v", "page", "seed", "record", "shift", "hold", "f.tuf", "f.r", "time", "hemi", "lat",
    "mu", "harp", "noaa", "hist", "out", "quiet", "k", "per", "gan", "dirs", "index",
]  # fmt: skip
HOSTILE = [
    "", " ", "nan", "inf", "-inf", "-1", "0", "3", "1e308", "-1e308", "9" * 30, "1..0", "..",
    "0..1", "tuf:5", "tuf:-7.5", "tuf:100", "tuf:100.5", "tuf:1e308", "tuf:nan", "r:1,tuf:2",
    "tuf:1,tuf:2", "nosuch:1", "tuf", "tuf,r", "north", "south", "../../etc", "\x00", "%00",
    "<script>alert(1)</script>", "'; --", "é", "M+:24h", "48h:C", "X:-1h",
    "2014-01-01..2015-01-01", "2099-13-45..", "x" * 300,
]  # fmt: skip
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    _TEXT,
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.tuples(st.sampled_from(["tuf", "r", "psep", "sigma", "grad"]), st.floats()).map(
        lambda t: f"{t[0]}:{t[1]!r}"
    ),
)
LINKS = st.fixed_dictionaries(
    {"page": st.sampled_from([*PAGES, "nowhere"]), "seed": st.sampled_from(["3", "0", "-1"])}
).flatmap(
    lambda base: st.dictionaries(
        st.one_of(st.sampled_from(KEYS), st.text("abcxyz.", min_size=1, max_size=6)),
        VALUES,
        max_size=6,
    ).map(lambda extra: {**base, **extra})
)


def _app(query: dict[str, str] | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    if query:
        at.query_params.update(query)
    at.run()
    return at


def _no_traceback(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(str(e.value) for e in [*at.error, *at.warning, *at.markdown])
    assert "Traceback" not in shown


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=LINKS)
def test_no_link_makes_a_traceback(ui_home, query):
    _no_traceback(_app(query))


def test_a_shift_beyond_the_slider_is_shown_not_a_traceback(ui_home):
    """The issue's case: a link whose shift is beyond the slider's +-3 (the slider widens to
    hold it); one beyond the protocol's limit is a message naming it."""
    at = _app({"page": "shift", "seed": "3", "shift": "tuf:5"})
    _no_traceback(at)
    assert at.slider(key="eps_tuf").value == 5.0 and not at.error
    at = _app({"page": "shift", "seed": "3", "shift": "tuf:1e308"})
    _no_traceback(at)
    assert any("shift of 'tuf'" in e.value and "beyond" in e.value for e in at.error)


# ------------------------------------------------------------------------------ uploads
def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _fits(data: np.ndarray, **header) -> bytes:
    hdu = fits.PrimaryHDU(data)
    for key, value in header.items():
        hdu.header[key] = value
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def _npy_claiming(shape) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + crc


CRAFTED = [
    ("nan.npy", _npy(np.full((128, 128), np.nan))),
    ("huge-values.npy", _npy(np.full((128, 128), 1e300))),
    ("complex.npy", _npy(np.ones((128, 128), np.complex64))),
    ("ints.npy", _npy(np.ones((128, 128), np.int64))),
    ("bools.npy", _npy(np.ones((128, 128), bool))),
    ("cube.npy", _npy(np.zeros((3, 128, 128)))),
    ("empty.npy", _npy(np.zeros((0, 128)))),
    ("claims-1e10.npy", _npy_claiming((100_000, 100_000))),
    ("pickled.npy", _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)),
    ("tiny.fits", _fits(np.ones((4, 4), np.float32))),
    ("nan.fits", _fits(np.full((64, 64), np.nan, np.float32))),
    ("truncated.fits", _fits(np.ones((64, 64), np.float32))[:3000]),
    ("huge-claim.png", _png_claiming(30_000, 30_000)),
    ("empty.png", b""),
    ("x.txt", b"hello"),
]
NAMES = st.sampled_from(["a.fits", "a.fits.gz", "a.npy", "a.png", "a.txt", "noext", "a.FITS"])
UPLOADS = st.one_of(st.sampled_from(CRAFTED), st.tuples(NAMES, st.binary(max_size=3000)))


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(upload=UPLOADS)
def test_no_upload_makes_a_traceback(ui_home, upload):
    name, data = upload
    at = _app()
    at.file_uploader(key="upload").upload(name, data, "application/octet-stream").run()
    _no_traceback(at)
    assert any(name in e.value for e in at.error) or any(name in s.value for s in at.success)
