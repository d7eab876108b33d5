"""Every command given bad arguments and files answers with one line naming the input and
its exit status (docs/cli.md, "Errors and exit codes"), prints no traceback, and leaves the
home as it was; an internal error's traceback goes to <home>/logs/errors.log only.

One home for the module: untrained tiny checkpoints, a small synthetic dataset, its index.
"""

from __future__ import annotations

import fcntl
import io
import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from sharpseek.cli.app import app
from sharpseek.cli.errors import EXIT_INTERNAL
from sharpseek.config import Settings

pytest_plugins = ["model_fixtures"]
pytestmark = pytest.mark.slow


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _huge_png(width: int, height: int, text: bytes = b"") -> bytes:
    """A valid 1-bit grey PNG of width x height zeros: about 100 kB on disk for 30000 x 30000,
    a gigapixel once decoded; ``text``: a tEXt chunk (keyword NUL value)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + (_chunk(b"tEXt", text) if text else b"")
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


def _npy_header_only(shape: tuple[int, ...]) -> bytes:
    """A .npy header claiming ``shape`` float64 items, and none of the data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _fits_bytes(data: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(data)]).writeto(buffer)
    return buffer.getvalue()


def _huge_fits_header() -> bytes:
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = 200_000
    header["NAXIS2"] = 200_000
    return header.tostring().encode()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "fake.png").write_bytes(b"this is no PNG at all")
    (folder / "huge.png").write_bytes(_huge_png(30_000, 30_000))
    scale = {"format": "sharpseek-magnetogram/1", "b_min_gauss": -1000, "b_max_gauss": 1000}
    text = b"sharpseek-scale\0" + json.dumps({**scale, "levels": 1}).encode()
    (folder / "scaled-9000.png").write_bytes(_huge_png(9_000, 9_000, text))
    (folder / "truncated.fits").write_bytes(_fits_bytes(np.ones((64, 64), np.float32))[:4000])
    (folder / "huge.fits").write_bytes(_huge_fits_header())
    (folder / "claims-1e10.npy").write_bytes(_npy_header_only((100_000, 100_000)))
    np.save(folder / "complex.npy", np.ones((128, 128), np.complex64))
    np.save(folder / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(folder / "gauss-1e300.npy", np.full((128, 128), 1e300))
    (folder / "empty.fits").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """Untrained checkpoints, a 4-region synthetic dataset and its index, then a 5-region
    version of the dataset the index has not taken up."""
    from ingest_fixtures import synthetic_dataset
    from model_fixtures import write_untrained_checkpoints

    home = tmp_path_factory.mktemp("errors") / "home"
    settings = Settings(home=home, preset="tiny")
    write_untrained_checkpoints(settings)
    synthetic_dataset(settings, regions=4, frames=2)
    result = CliRunner().invoke(
        app, ["index", "build", "--no-progress"], env={"SHARPSEEK_HOME": str(home)}
    )
    assert result.exit_code == 0, result.output
    synthetic_dataset(settings, regions=5, frames=2)  # a version the index has yet to take up
    return home


class _Answer500(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server hook
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"internal server error")

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def jsoc_500():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _tree(home: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(home)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


# (id, arguments ({inputs} and {sample} filled in), environment, exit status, the input the
# message must name)
CASES = [
    ("fake-png", ["search", "--image", "{inputs}/fake.png"], {}, 2, "fake.png"),
    ("30000x30000-png", ["search", "--image", "{inputs}/huge.png"], {}, 2, "huge.png"),
    ("9000x9000-scaled-png", ["search", "--image", "{inputs}/scaled-9000.png"], {}, 2, "9000x9000"),
    ("truncated-fits", ["search", "--image", "{inputs}/truncated.fits"], {}, 2, "truncated.fits"),
    ("huge-fits", ["search", "--image", "{inputs}/huge.fits"], {}, 2, "huge.fits"),
    ("empty-fits", ["search", "--image", "{inputs}/empty.fits"], {}, 2, "empty.fits"),
    ("npy-1e10-items", ["search", "--image", "{inputs}/claims-1e10.npy"], {}, 2, "claims-1e10"),
    ("complex-npy", ["search", "--image", "{inputs}/complex.npy"], {}, 2, "complex.npy"),
    ("pickled-npy", ["search", "--image", "{inputs}/pickled.npy"], {}, 2, "pickled.npy"),
    (
        "1e300-model",
        ["search", "--image", "{inputs}/gauss-1e300.npy", "--units", "model"],
        {},
        2,
        "gauss-1e300",
    ),
    ("missing-image", ["search", "--image", "{inputs}/nowhere.fits"], {}, 2, "nowhere.fits"),
    ("shift-1e308", ["search", "--seed", "1", "--shift", "tuf=1e308"], {}, 2, "tuf"),
    ("shift-nan", ["shift", "--seed", "1", "--shift", "tuf=nan"], {}, 2, "tuf"),
    ("shift-word", ["search", "--seed", "1", "--shift", "tuf=abc"], {}, 2, "tuf=abc"),
    ("seed-negative", ["search", "--seed", "-1"], {}, 2, "seed"),
    ("unknown-record", ["search", "--record", "no-such-record"], {}, 2, "no-such-record"),
    ("range-word", ["search", "--seed", "1", "--range", "tuf=a:b"], {}, 2, "'a:b'"),
    (
        "dataset-dotdot",
        ["ingest", "fits", "--dataset", "../../etc", "{sample}"],
        {},
        2,
        "../../etc",
    ),
    ("dataset-empty", ["ingest", "fits", "--dataset", "", "{sample}"], {}, 2, "--dataset"),
    ("dataset-slash", ["dataset", "show", "a/b"], {}, 2, "a/b"),
    ("dataset-unknown", ["dataset", "show", "nothing-here"], {}, 2, "nothing-here"),
    ("index-dataset-dotdot", ["index", "update", "--dataset", "../x"], {}, 2, "../x"),
    ("ingest-missing-file", ["ingest", "fits", "{inputs}/nowhere.fits"], {}, 2, "nowhere.fits"),
    ("measure-fake", ["measure", "{inputs}/truncated.fits"], {}, 2, "truncated.fits"),
    ("invert-pickled", ["invert", "{inputs}/pickled.npy"], {}, 2, "pickled.npy"),
    ("bad-setting", ["config"], {"SHARPSEEK_SERVE__RETRIES": "-1"}, 2, "retries"),
    ("bad-preset", ["search", "--seed", "1", "--preset", "huge"], {}, 2, "huge"),
    ("swap-unknown", ["serve", "swap", "no-such.mar"], {}, 2, "no-such.mar"),
    (
        "jsoc-down",
        ["ingest", "jsoc", "--start", "2014.01.01_00:00", "--end", "2014.01.02_00:00"],
        {"SHARPSEEK_JSOC__SERVER_URL": "{closed}", "SHARPSEEK_JSOC__RETRIES": "0"},
        2,
        "127.0.0.1",
    ),
    (
        "jsoc-500",
        ["ingest", "jsoc", "--start", "2014.01.01_00:00", "--end", "2014.01.02_00:00"],
        {"SHARPSEEK_JSOC__SERVER_URL": "{jsoc_500}", "SHARPSEEK_JSOC__RETRIES": "0"},
        2,
        "500",
    ),
    (
        "index-locked",
        ["index", "update", "--no-progress"],
        {"SHARPSEEK_INDEX__WRITE_TIMEOUT_S": "0.5", "HOLD_INDEX_LOCK": "1"},
        2,
        "being written by another process",
    ),
]


@pytest.mark.parametrize(
    "args, env, code, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_naming_it_with_its_exit_status(
    home, inputs, jsoc_500, br_sample_paths, args, env, code, names
):
    fill = {
        "inputs": str(inputs),
        "sample": str(br_sample_paths[0]),
        "closed": _closed_port_url(),
        "jsoc_500": jsoc_500,
    }
    args = [a.format(**fill) for a in args]
    env = {k: v.format(**fill) for k, v in env.items()}
    env |= {"SHARPSEEK_HOME": str(home), "SHARPSEEK_JSOC__EMAIL": "someone@example.org"}
    before = _tree(home)
    lock = None
    kept = ()
    if env.pop("HOLD_INDEX_LOCK", None):
        # the embeddings computed before the lock was refused are a cache the next update
        # reuses (content-addressed by encoder and dataset); nothing else may change
        kept = ("pipeline/embeddings/",)
        lock = (home / "index" / "write.lock").open("a+")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = _tree(home)
    try:
        result = CliRunner().invoke(app, args, env=env)
    finally:
        if lock is not None:
            lock.close()
    after = _tree(home)
    logged = home / "logs" / "errors.log"
    log = logged.read_text() if logged.exists() else ""
    logged.unlink(missing_ok=True)  # a failing case must not fail the next ones
    output = result.output
    assert result.exit_code == code, output + log[-3000:]
    assert "Traceback" not in output
    assert names in output, output
    changed = sorted(
        k
        for k in before.keys() | after.keys()
        if before.get(k) != after.get(k) and not k.startswith(kept)
    )
    assert not changed, f"the home changed: {changed}"


def test_an_internal_error_is_one_line_and_its_traceback_goes_to_the_log(tmp_path, monkeypatch):
    import sharpseek.cli.app

    def broken(settings):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sharpseek.cli.app, "shown_settings", broken)  # what `config` calls
    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["config", "--home", str(home)])
    assert result.exit_code == EXIT_INTERNAL
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "internal error (ZeroDivisionError: a bug)" in lines[0]
    assert "Traceback" not in result.output
    log = (home / "logs" / "errors.log").read_text()
    assert "Traceback" in log and "ZeroDivisionError: a bug" in log and "'config'" in log


def test_a_search_goes_on_while_an_index_update_holds_the_lock(home):
    """Readers never wait for the writer: the issue's traceback case answers normally."""
    with (home / "index" / "write.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(
            app, ["search", "--seed", "1", "--json"], env={"SHARPSEEK_HOME": str(home)}
        )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["results"], result.output
