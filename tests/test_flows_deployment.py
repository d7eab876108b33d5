"""A deployment run on a real local Prefect server that this test starts.

``prefect server start`` (its own PREFECT_HOME and SQLite database), a process that serves
the ``ingest-synthetic`` flow as a deployment (``flow.serve``), a trigger through the API
(``run_deployment``), and the wait for COMPLETED; then the serve process is stopped before
the server. The flow run writes a real dataset, which the test reads back.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sharpseek.config import Settings

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SERVE = """
from sharpseek.pipeline.runs import load_flows
load_flows().ingest_synthetic_flow.serve(name="test", print_starting_message=False)
"""

TRIGGER = """
import sys
from prefect.deployments import run_deployment
run = run_deployment("ingest-synthetic/test", timeout=240, poll_interval=2)
print("STATE", run.state.type.value, run.state.message)
"""

WAIT_DEPLOYMENT = """
import sys, time
from prefect.client.orchestration import get_client
deadline = time.time() + 120
with get_client(sync_client=True) as client:
    while True:
        try:
            client.read_deployment_by_name("ingest-synthetic/test")
            print("READY")
            break
        except Exception as err:
            if time.time() > deadline:
                print("NOT READY", err)
                sys.exit(1)
            time.sleep(1)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, name: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does: both shut down cleanly
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout} s")


def test_deployment_run_on_a_real_local_server(tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "home"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "SHARPSEEK_HOME": str(home),
        "SHARPSEEK_SYNTHETIC__REGIONS": "2",
        "SHARPSEEK_SYNTHETIC__FRAMES": "3",
        "OMP_NUM_THREADS": "1",
    }
    (tmp_path / "prefect").mkdir()
    prefect = [sys.executable, "-m", "prefect"]
    server = subprocess.Popen(
        [*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={k: v for k, v in env.items() if k != "PREFECT_API_URL"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    serve = None
    try:
        _wait_healthy(api, server)
        serve = subprocess.Popen(
            [sys.executable, "-c", SERVE],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "serve.log").open("w"),
        )
        ready = subprocess.run(
            [sys.executable, "-c", WAIT_DEPLOYMENT], env=env, capture_output=True, text=True
        )
        assert "READY" in ready.stdout, ready.stdout + ready.stderr[-2000:]
        trigger = subprocess.run(
            [sys.executable, "-c", TRIGGER], env=env, capture_output=True, text=True, timeout=300
        )
        log = (tmp_path / "serve.log").read_text()[-3000:]
        assert "STATE COMPLETED" in trigger.stdout, trigger.stdout + trigger.stderr[-2000:] + log
    finally:
        if serve is not None:
            _stop(serve, "serve")  # the serve process first, then its server
        _stop(server, "server")

    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store

    ds = load_dataset(open_store(Settings(home=home)), "synthetic")
    assert len(ds) == 6 and ds.info["n_regions"] == 2
