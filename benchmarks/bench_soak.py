"""Soak: everything at once on one home for a fixed time, good and bad input mixed.

For ``--seconds`` on one home (a local folder, then the same on S3: moto's S3 application,
tests/s3_servers.py), all of these run at the same time:

- two writers, each in a loop running ``sharpseek ingest fits`` on a new folder of
  ``--records`` Br FITS files of its own HARP (new T_RECs every round), as an operator
  would; now and then a round holds a hostile file (a name with a newline, a \\xff byte,
  HARPNUM='abc', a truncated file) that must be quarantined (exit 3) while the rest go in;
- an index updater: ``sharpseek index update --dataset sharp`` in a loop;
- a searcher in this process (``Searcher``: seed queries, k=10), timed;
- bad command lines now and then (a fake PNG, a shift of 1e308, ``--dataset ../../etc``):
  each must exit 2 with one line;
- UI sessions in another process: Streamlit's AppTest opening the app from links, good and
  hostile (a shift beyond the slider, a negative seed, inf in a range), each run checked for
  an uncaught exception;
- serving: two threads sending TorchServe (real, started once for the run) good generator
  and encoder requests mixed with bad ones (a shift of 1e308, a 100,000-deep JSON body,
  float64 images), timed.

Then the loops stop, one last ``index update`` runs, and the counts are read: records
expected (every record of every ingest that exited 0 or 3) vs present in the dataset's
latest version, records the index holds, good requests that failed, 5xx answers, bad
requests that were not refused, tracebacks anywhere (CLI output, UI exceptions, HTTP bodies),
and p50/p95 latency of searches and of good serving requests. The goal: nothing lost, no good
request failed, no traceback.

Usage: python benchmarks/bench_soak.py [--seconds 90] [--records 3]
       [--out benchmarks/results/soak.json]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_servers import start_moto_serial  # noqa: E402
from sharpseek.config import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "services" / "frontend" / "app.py")
CLI = str(Path(sys.executable).with_name("sharpseek"))
SERIES = "hmi.sharp_cea_720s"


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def percentiles(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds) * 1000
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# ------------------------------------------------------------------------------ inputs
def write_fits(path: Path, harpnum, t_rec: datetime, amplitude: float) -> None:
    from astropy.io import fits

    y, x = np.mgrid[:60, :90]
    data = amplitude * np.exp(-((x - 30) ** 2 + (y - 30) ** 2) / 40) - amplitude * np.exp(
        -((x - 60) ** 2 + (y - 30) ** 2) / 40
    )
    hdu = fits.CompImageHDU(data.astype(np.float32), compression_type="RICE_1")
    header = {
        "HARPNUM": harpnum, "T_REC": t_rec.strftime("%Y.%m.%d_%H:%M:%S_TAI"),
        "BUNIT": "Mx/cm^2", "CDELT1": 0.03, "RSUN_REF": 696000000, "LAT_FWT": 10.0,
        "LON_FWT": 5.0, "CRLT_OBS": 1.0,
    }  # fmt: skip
    for key, value in header.items():
        hdu.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)


def ingest_round(work: Path, harpnum: int, first: datetime, records: int, hostile: int):
    """A folder of ``records`` good files of ``harpnum`` from ``first`` (hourly), plus one
    hostile file when ``hostile`` > 0; returns (folder, record ids of the good files)."""
    from sharpseek.data.dataset import record_id

    folder = work / f"round-{uuid.uuid4().hex[:10]}"
    folder.mkdir()
    ids = []
    for i in range(records):
        t_rec = first + timedelta(hours=i)
        write_fits(folder / f"{harpnum}-{i}.fits", harpnum, t_rec, 900 + 10 * i)
        ids.append(record_id(SERIES, harpnum, t_rec))
    kind = hostile % 4
    t_bad = first + timedelta(hours=records)
    if hostile:
        if kind in (1, 2):  # written under a plain name, then renamed (bytes: \xff)
            write_fits(folder / "plain.tmp", harpnum, t_bad, 800)
            name = b"new\nline.fits" if kind == 1 else b"byte-\xff.fits"
            os.rename(os.fsencode(folder / "plain.tmp"), os.fsencode(folder) + b"/" + name)
        elif kind == 3:
            write_fits(folder / "letters.fits", "abc", t_bad, 800)
        else:
            good = folder / "whole.tmp"
            write_fits(good, harpnum, t_bad, 800)
            (folder / "truncated.fits").write_bytes(good.read_bytes()[:4000])
            good.unlink()
    return folder, ids


def run_cli(args: list[str], env: dict[str, str], timeout: float = 600) -> tuple[int, str, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


# ------------------------------------------------------------------------------ the loops
class Tally:
    """What every loop counts, shared by threads (one lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.expected: set[str] = set()
        self.counts: dict[str, int] = {}
        self.latency: dict[str, list[float]] = {}
        self.problems: list[str] = []

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def time(self, key: str, seconds: float) -> None:
        with self.lock:
            self.latency.setdefault(key, []).append(seconds)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text[:400])


def _check_output(tally: Tally, what: str, output: str) -> None:
    if "Traceback" in output:
        tally.add("tracebacks")
        tally.problem(f"{what}: traceback: {output[-300:]}")


def writer_loop(tally, env, work, harpnum, records, stop, start_day) -> None:
    round_no = 0
    while not stop.is_set():
        first = start_day + timedelta(days=round_no)
        hostile = round_no % 4 + 1 if round_no % 2 else 0
        folder, ids = ingest_round(work, harpnum, first, records, hostile)
        code, output, _ = run_cli(["ingest", "fits", str(folder)], env)
        _check_output(tally, "ingest", output)
        tally.add("ingests")
        want = 3 if hostile else 0
        if code in (0, 3):
            with tally.lock:
                tally.expected.update(ids)
        if code != want:
            tally.add("ingests_unexpected_exit")
            tally.problem(f"ingest exit {code} (wanted {want}): {output[-300:]}")
        round_no += 1


def updater_loop(tally, env, stop) -> None:
    while not stop.is_set():
        code, output, seconds = run_cli(
            ["index", "update", "--dataset", "sharp", "--no-progress"], env
        )
        _check_output(tally, "index update", output)
        tally.add("index_updates")
        tally.time("index_update", seconds)
        if code != 0:
            tally.add("index_updates_failed")
            tally.problem(f"index update exit {code}: {output[-300:]}")
        time.sleep(1.0)


def search_loop(tally, settings, stop) -> None:
    from sharpseek.search.searcher import Searcher

    rng = np.random.default_rng(0)
    with Searcher(settings) as searcher:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                query = searcher.latent_query(int(rng.integers(0, 1000)))
                searcher.search(query, k=10)
                tally.time("search", time.perf_counter() - start)
            except Exception as err:  # noqa: BLE001 - counted, the soak goes on
                tally.add("searches_failed")
                tally.problem(f"search: {type(err).__name__}: {err}")
            tally.add("searches")
            time.sleep(0.2)


BAD_COMMANDS = [
    ["search", "--image", "{work}/fake.png"],
    ["search", "--seed", "1", "--shift", "tuf=1e308"],
    ["ingest", "fits", "--dataset", "../../etc", "{work}/fake.png"],
]


def bad_cli_loop(tally, env, work, stop) -> None:
    (work / "fake.png").write_bytes(b"no PNG at all")
    i = 0
    while not stop.is_set():
        args = [a.format(work=work) for a in BAD_COMMANDS[i % len(BAD_COMMANDS)]]
        code, output, _ = run_cli(args, env)
        _check_output(tally, "bad command", output)
        tally.add("bad_commands")
        if code != 2:
            tally.add("bad_commands_not_exit_2")
            tally.problem(f"{args}: exit {code}: {output[-300:]}")
        i += 1
        time.sleep(2.0)


UI_LINKS = [
    {"page": "generate"},
    {"page": "search", "seed": "3"},
    {"page": "shift", "seed": "3", "shift": "tuf:5"},
    {"page": "shift", "seed": "-1"},
    {"page": "search", "seed": "2", "f.tuf": "1e308..inf"},
    {"page": "status"},
]


def ui_process(env: dict[str, str], seconds: float, out) -> None:
    """AppTest sessions from links, good and hostile, for ``seconds``; sends counts back."""
    os.environ.update(env)
    from streamlit.testing.v1 import AppTest

    counts = {"sessions": 0, "exceptions": 0, "latency": [], "problems": []}
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        link = UI_LINKS[i % len(UI_LINKS)]
        start = time.perf_counter()
        try:
            at = AppTest.from_file(APP, default_timeout=180)
            at.query_params.update(link)
            at.run()
            if at.exception:
                counts["exceptions"] += 1
                counts["problems"].append(f"{link}: {at.exception[0].value[:200]}")
        except Exception as err:  # noqa: BLE001 - an AppTest timeout, say: counted
            counts["exceptions"] += 1
            counts["problems"].append(f"{link}: {type(err).__name__}: {err}"[:300])
        counts["latency"].append(time.perf_counter() - start)
        counts["sessions"] += 1
        i += 1
    out.put(counts)


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def serving_loop(tally, serve_settings, token, stop, worker: int) -> None:
    import httpx

    url = serve_settings.serve.inference_url
    headers = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(worker)
    good_image = _npy(np.zeros((2, 128, 128), np.float16))
    cases = [
        ("good", "generator", {"json": {"seeds": [1, 2], "parameters": False}}),
        ("good", "encoder", {"content": good_image}),
        ("bad", "generator", {"json": {"seeds": [1], "shifts": {"tuf": 1e308}}}),
        ("good", "generator", {"json": {"seeds": [int(rng.integers(0, 1000))]}}),
        ("bad", "generator", {"content": b"[" * 100_000 + b"]" * 100_000,
                              "headers": {"Content-Type": "application/json"}}),
        ("bad", "encoder", {"content": _npy(np.zeros((1, 128, 128)))}),
    ]  # fmt: skip
    with httpx.Client(timeout=120) as client:
        i = worker
        while not stop.is_set():
            kind, model, kwargs = cases[i % len(cases)]
            kwargs = dict(kwargs)
            extra = kwargs.pop("headers", {})
            start = time.perf_counter()
            try:
                response = client.post(
                    f"{url}/predictions/{model}", headers={**headers, **extra}, **kwargs
                )
                status, body = (
                    response.status_code,
                    response.text if response.status_code != 200 else "",
                )
            except httpx.HTTPError as err:
                status, body = 0, str(err)
            seconds = time.perf_counter() - start
            tally.add(f"serving_{kind}")
            if status >= 500 or status == 0:
                tally.add("serving_5xx")
            if "Traceback" in body:
                tally.add("tracebacks")
            if kind == "good":
                tally.time("serving_good", seconds)
                if status != 200:
                    tally.add("serving_good_failed")
                    tally.problem(f"good {model} answered {status}: {body[:200]}")
            elif status != 400:
                tally.add("serving_bad_not_400")
                tally.problem(f"bad {model} answered {status}: {body[:200]}")
            i += 1
            time.sleep(0.05)  # leave the two cores to the other loops too


# ------------------------------------------------------------------------------ one home
def prepare_home(settings: Settings, env: dict[str, str], work: Path, records: int) -> set[str]:
    from model_fixtures import write_untrained_checkpoints

    write_untrained_checkpoints(settings)
    folder, ids = ingest_round(work, 9900, datetime(2019, 1, 1), records, 0)
    for args in (
        ["ingest", "fits", str(folder)],
        ["index", "build", "--dataset", "sharp", "--no-progress"],
    ):
        code, output, _ = run_cli(args, env)
        if code != 0:
            raise RuntimeError(f"{args}: exit {code}\n{output}")
    return set(ids)


def soak(kind: str, args, work: Path, moto, serve_settings, token) -> dict:
    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store
    from sharpseek.search.index import open_index_from_settings

    home = work / f"home-{kind}"
    env = {
        **os.environ,
        "SHARPSEEK_HOME": str(home),
        "SHARPSEEK_PRESET": "tiny",
        "SHARPSEEK_FLOWS__INGEST_SHARD_SIZE": "4",
        "SHARPSEEK_INDEX__WRITE_TIMEOUT_S": "600",
        "OMP_NUM_THREADS": "1",
    }
    store = {"backend": "local"}
    if kind == "s3":
        bucket = "soak-" + uuid.uuid4().hex[:8]
        store = {"backend": "s3", "endpoint": moto.endpoint, "bucket": bucket,
                 "access_key": "bench", "secret_key": "bench", "secure": "false"}  # fmt: skip
        env.update({f"SHARPSEEK_STORE__{k.upper()}": v for k, v in store.items()})
    settings = Settings(home=home, preset="tiny", store=store)
    tally = Tally()
    tally.expected |= prepare_home(settings, env, work, args.records)
    log(f"{kind}: home ready; soaking for {args.seconds} s")
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=writer_loop,
            args=(tally, env, work, 9901 + w, args.records, stop, datetime(2020 + w, 1, 1)),
        )
        for w in range(2)
    ]
    threads += [
        threading.Thread(target=updater_loop, args=(tally, env, stop)),
        threading.Thread(target=search_loop, args=(tally, settings, stop)),
        threading.Thread(target=bad_cli_loop, args=(tally, env, work, stop)),
        *[
            threading.Thread(target=serving_loop, args=(tally, serve_settings, token, stop, w))
            for w in range(2)
        ],
    ]
    queue = multiprocessing.get_context("spawn").Queue()
    ui = multiprocessing.get_context("spawn").Process(
        target=ui_process, args=({k: v for k, v in env.items()}, args.seconds, queue)
    )
    started = time.perf_counter()
    ui.start()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    ui_counts = queue.get(timeout=900)
    ui.join()
    soaked = time.perf_counter() - started
    code, output, _ = run_cli(["index", "update", "--dataset", "sharp", "--no-progress"], env)
    _check_output(tally, "final index update", output)
    ds = load_dataset(open_store(settings), "sharp")
    present = set(ds.manifest["record_id"])
    index = open_index_from_settings(settings)
    try:
        indexed = index.count()
    finally:
        index.close()
    counts = tally.counts
    return {
        "store": kind,
        "seconds": round(soaked, 1),
        "records_expected": len(tally.expected),
        "records_present": len(present & tally.expected),
        "records_lost": len(tally.expected - present),
        "records_extra": len(present - tally.expected),
        "records_indexed": indexed,
        "final_index_update_exit": code,
        "dataset_version": ds.version,
        "ingests": counts.get("ingests", 0),
        "ingests_unexpected_exit": counts.get("ingests_unexpected_exit", 0),
        "index_updates": counts.get("index_updates", 0),
        "index_updates_failed": counts.get("index_updates_failed", 0),
        "searches": counts.get("searches", 0),
        "searches_failed": counts.get("searches_failed", 0),
        "bad_commands": counts.get("bad_commands", 0),
        "bad_commands_not_exit_2": counts.get("bad_commands_not_exit_2", 0),
        "ui_sessions": ui_counts["sessions"],
        "ui_exceptions": ui_counts["exceptions"],
        "serving_good": counts.get("serving_good", 0),
        "serving_bad": counts.get("serving_bad", 0),
        "serving_good_failed": counts.get("serving_good_failed", 0),
        "serving_bad_not_400": counts.get("serving_bad_not_400", 0),
        "serving_5xx": counts.get("serving_5xx", 0),
        "tracebacks": counts.get("tracebacks", 0) + ui_counts["exceptions"],
        "latency": {
            "search": percentiles(tally.latency.get("search", [])),
            "serving_good": percentiles(tally.latency.get("serving_good", [])),
            "ui_session": percentiles(ui_counts["latency"]),
            "index_update": percentiles(tally.latency.get("index_update", [])),
        },
        "problems": (tally.problems + ui_counts["problems"])[:20],
    }


def start_torchserve(work: Path) -> tuple[Settings, str]:
    """TorchServe on free ports with untrained tiny models (what it answers is not measured
    here, only that it answers), token auth on; returns its settings and inference token."""
    from model_fixtures import write_untrained_checkpoints
    from sharpseek.serving import archives as model_archives
    from sharpseek.serving import torchserve as serving
    from sharpseek.serving.backends import read_key_file

    inference, management, metrics, *grpc = free_ports(5)
    settings = Settings(
        home=work / "serve-home",
        preset="tiny",
        serve={
            "grpc_ports": tuple(grpc),
            "backend": "torchserve",
            "inference_url": f"http://127.0.0.1:{inference}",
            "management_url": f"http://127.0.0.1:{management}",
            "metrics_url": f"http://127.0.0.1:{metrics}",
            "threads_per_worker": 1,
            "max_items_per_request": 16,
            "batch_size": 4,
            "max_batch_delay_ms": 10,
            "timeout_seconds": 120,
            "startup_timeout_seconds": 400,
        },
    )
    write_untrained_checkpoints(settings)
    model_archives.build_archives(settings)
    serving.start(settings)
    token = read_key_file(model_archives.serve_dir(settings) / "key_file.json")["inference"]
    return settings, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="soak time per store")
    parser.add_argument("--records", type=int, default=3, help="good FITS files per ingest")
    parser.add_argument("--stores", nargs="+", default=["local", "s3"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak.json"))
    args = parser.parse_args()
    from sharpseek.serving import torchserve as serving

    results: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds_per_store": args.seconds,
        "records_per_ingest": args.records,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="sharpseek-soak-") as tmp:
        work = Path(tmp)
        moto = start_moto_serial(work / "moto-logs") if "s3" in args.stores else None
        log("starting TorchServe")
        serve_settings, token = start_torchserve(work)
        try:
            for kind in args.stores:
                row = soak(kind, args, work, moto, serve_settings, token)
                log(json.dumps({k: v for k, v in row.items() if k != "problems"}))
                for problem in row["problems"]:
                    log(f"  problem: {problem}")
                results["runs"].append(row)
        finally:
            serving.stop(serve_settings)
            if moto is not None:
                moto.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
