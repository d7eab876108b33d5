"""Real S3-compatible server processes on 127.0.0.1 for the store tests.

* moto's server (``python -m moto.server``): the S3 API in memory; it accepts any
  credentials. Used for the contract suite and for killing a server mid-upload.
* the same moto application served one request at a time (:func:`start_moto_serial`): moto
  checks a conditional put's condition and then writes, without a lock, so its threaded
  server lets two concurrent ``If-None-Match: *`` puts of one key both succeed (measured in
  the race tests). S3 decides a conditional put atomically; serving requests one at a time
  gives moto the same property, so the race tests run on this one.
* nanio (``python -m nanio serve``): a small S3 server on a folder that *checks* SigV4
  credentials. Used for the wrong-credentials case. Its keys go in through the environment
  (``NANIO_ACCESS_KEY`` / ``NANIO_SECRET_KEY``), so they never show in a process listing.

Each server is a child process started by a fixture, awaited until it answers HTTP, and
stopped (terminate, then kill) when the fixture ends, so no process outlives the tests.
A test module uses the fixtures with ``pytest_plugins = ["s3_servers"]`` (and imports nothing
from here, so pytest can register it as a plugin).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0

#: Fixed credentials of the nanio server (test-only values).
NANIO_ACCESS_KEY = "sharpseek-test-access"
NANIO_SECRET_KEY = "sharpseek-test-secret-Zq9x"


@dataclass
class ServerProcess:
    """One running server: its ``host:port`` endpoint, process and log file."""

    name: str
    endpoint: str
    process: subprocess.Popen
    log_path: Path
    access_key: str | None = None  # the credentials it accepts (None: any, as moto)
    secret_key: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to open connections."""
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate politely, then kill; always reaps the process."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=10)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (a server started next will almost surely get it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status (403 for an anonymous request) means it is serving
    except OSError:
        return False


def _start(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None) -> ServerProcess:
    """Start ``argv`` + ``--port``-style args (built by the caller) and wait until it answers."""
    log_dir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(3):  # a port taken between free_port() and bind: try another
        port = free_port()
        log_path = log_dir / f"{name}-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [arg.replace("{port}", str(port)) for arg in argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        server = ServerProcess(name, f"{HOST}:{port}", process, log_path)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not server.alive():
                break
            if _answers(server.url + "/"):
                return server
            time.sleep(0.05)
        server.stop()
        last_error = f"attempt {attempt + 1}: exit {process.returncode}\n{server.log_tail()}"
    raise RuntimeError(f"{name} did not start on {HOST}:\n{last_error}")


def start_moto(log_dir: Path) -> ServerProcess:
    """moto's S3 server (any credentials accepted), in memory."""
    argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", "{port}"]
    return _start("moto", argv, log_dir, env=None)


_SERIAL_MOTO = """
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
app = DomainDispatcherApplication(create_backend_app)
run_simple(sys.argv[1], int(sys.argv[2]), app, threaded=False,
           request_handler=MotoRequestHandler)
"""


def start_moto_serial(log_dir: Path) -> ServerProcess:
    """moto's S3 application, one request at a time (each conditional put atomic)."""
    argv = [sys.executable, "-c", _SERIAL_MOTO, HOST, "{port}"]
    return _start("moto-serial", argv, log_dir, env=None)


def start_nanio(data_dir: Path, log_dir: Path) -> ServerProcess:
    """nanio on ``data_dir``, accepting only NANIO_ACCESS_KEY / NANIO_SECRET_KEY."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "nanio",
        "serve",
        "--host",
        HOST,
        "--port",
        "{port}",
        "--data-dir",
        str(data_dir),
        "--region",
        "us-east-1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    env = dict(os.environ, NANIO_ACCESS_KEY=NANIO_ACCESS_KEY, NANIO_SECRET_KEY=NANIO_SECRET_KEY)
    server = _start("nanio", argv, log_dir, env=env)
    server.access_key, server.secret_key = NANIO_ACCESS_KEY, NANIO_SECRET_KEY
    return server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One moto server for the session (tests isolate themselves by bucket)."""
    server = start_moto(tmp_path_factory.mktemp("moto-logs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_serial_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One serial moto server for the session (the race tests' S3)."""
    server = start_moto_serial(tmp_path_factory.mktemp("moto-serial-logs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_server_to_kill(tmp_path: Path) -> Iterator[ServerProcess]:
    """A moto server of the test's own, which the test may kill; reaped afterwards."""
    server = start_moto(tmp_path / "logs")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nanio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A nanio server that checks credentials (NANIO_ACCESS_KEY / NANIO_SECRET_KEY)."""
    root = tmp_path_factory.mktemp("nanio")
    server = start_nanio(root / "data", root / "logs")
    try:
        yield server
    finally:
        server.stop()
