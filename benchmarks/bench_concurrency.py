"""Several things at once: records kept by concurrent writers, search latency during an update.

1. **Concurrent ingests.** N processes (N = 2, 4) run ``sharpseek ingest fits`` into one home
   at the same time, as an operator would, each with its own R Br FITS files (one HARP per
   writer, every file named ``Br.fits`` in a folder of its own). Then the latest dataset
   version is read: records expected (N x R) vs present, duplicates, versions written, exit
   codes. On a local folder and on S3 (moto's S3 application served one request at a time, as
   the tests use it: tests/s3_servers.py explains why not the threaded moto server).
2. **Search while the index is updated.** An embedded index of P points (random 100-d
   vectors, realistic payloads: bench_index.make_manifest) is searched in this process
   (exact, limit 10, one frame per HARP off) while another process adds U points in batches
   (``upsert_records``, one copy-on-write generation per batch). Latency p50/p95/max of the
   searches before and during the update, and how many generations the searches went through.

Usage: python benchmarks/bench_concurrency.py [--records 10] [--trials 3] [--points 20000]
       [--update 5000] [--out benchmarks/results/concurrency.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_index import DIM, make_manifest  # noqa: E402
from s3_servers import start_moto_serial  # noqa: E402
from sharpseek.data.dataset import dataset_versions, load_dataset  # noqa: E402
from sharpseek.data.local_store import LocalStore  # noqa: E402
from sharpseek.data.s3_store import S3Store
from sharpseek.search.index import EdgeIndex  # noqa: E402


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def write_fits(folder: Path, harpnum: int, n: int) -> None:
    from astropy.io import fits

    y, x = np.mgrid[:60, :90]
    for i in range(n):
        data = (900 + 10 * i) * np.exp(-((x - 30) ** 2 + (y - 30) ** 2) / 40) - 900 * np.exp(
            -((x - 60) ** 2 + (y - 30) ** 2) / 40
        )
        hdu = fits.CompImageHDU(data.astype(np.float32), compression_type="RICE_1")
        header = {"HARPNUM": harpnum, "T_REC": f"2020.01.01_{i:02d}:00:00_TAI",
                  "BUNIT": "Mx/cm^2", "CDELT1": 0.03, "RSUN_REF": 696000000,
                  "LAT_FWT": 10.0, "LON_FWT": 5.0, "CRLT_OBS": 1.0}  # fmt: skip
        for key, value in header.items():
            hdu.header[key] = value
        path = folder / str(i) / "Br.fits"
        path.parent.mkdir(parents=True)
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)


def ingest_race(kind: str, writers: int, records: int, work: Path, moto) -> dict:
    home = work / f"home-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SHARPSEEK_HOME": str(home), "SHARPSEEK_FLOWS__INGEST_SHARD_SIZE": "4"}
    bucket = "bench-" + uuid.uuid4().hex[:12]
    if kind == "s3":
        s3 = {"BACKEND": "s3", "ENDPOINT": moto.endpoint, "BUCKET": bucket,
              "ACCESS_KEY": "bench", "SECRET_KEY": "bench", "SECURE": "false"}  # fmt: skip
        env.update({f"SHARPSEEK_STORE__{k}": v for k, v in s3.items()})
    folders = []
    for w in range(writers):
        folder = work / f"fits-{uuid.uuid4().hex[:8]}"
        write_fits(folder, 9300 + w, records)
        folders.append(folder)
    cli = Path(sys.executable).with_name("sharpseek")
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [str(cli), "ingest", "fits", str(f)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for f in folders
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    seconds = time.perf_counter() - start
    store = (
        LocalStore(home)
        if kind == "local"
        else S3Store(moto.endpoint, bucket, "bench", "bench", secure=False)
    )
    ds = load_dataset(store, "sharp")
    counts = Counter(ds.manifest["record_id"])
    return {
        "store": kind,
        "writers": writers,
        "expected": writers * records,
        "present": len(counts),
        "duplicates": sum(c - 1 for c in counts.values()),
        "exit_codes": [p.returncode for p in procs],
        "versions": dataset_versions(store, "sharp"),
        "latest": ds.version,
        "rebased": sum(
            "committed meanwhile by another writer" in " ".join(o.split()) for o in outputs
        ),
        "seconds": round(seconds, 2),
    }


def _updater(path: str, rows, vectors, batch: int, done) -> None:
    index = EdgeIndex(path)
    start = time.perf_counter()
    for first in range(0, len(rows), batch):
        index.upsert_records(
            rows.iloc[first : first + batch], vectors[first : first + batch],
            encoder_version="enc-a", dataset_version="v0002",
        )  # fmt: skip
    index.close()
    done.put(time.perf_counter() - start)


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def search_during_update(points: int, update: int, batch: int, work: Path) -> dict:
    rows = make_manifest(points + update, seed=5)
    vectors = np.random.default_rng(5).standard_normal((len(rows), DIM)).astype(np.float32)
    path = work / "index"
    with EdgeIndex(path) as index:
        index.reindex("enc-a", [(rows.iloc[:points], vectors[:points])], dataset_version="v0001")
    queries = np.random.default_rng(6).standard_normal((64, DIM)).astype(np.float32)
    reader = EdgeIndex(path)

    def one(i: int) -> float:
        t = time.perf_counter()
        reader.search(queries[i % len(queries)], limit=10, group_by_harp=False, exact=True)
        return time.perf_counter() - t

    one(0)  # the first search copies the generation
    before = [one(i) for i in range(200)]
    ctx = multiprocessing.get_context("fork")
    done = ctx.Queue()
    writer = ctx.Process(
        target=_updater, args=(str(path), rows.iloc[points:], vectors[points:], batch, done)
    )
    counts, during = [], []
    writer.start()
    i = 0
    while writer.is_alive() or done.empty():
        during.append(one(i))
        counts.append(reader.count())
        i += 1
        if not writer.is_alive() and not done.empty():
            break
    writer_seconds = done.get(timeout=600)
    writer.join()
    after = reader.count()
    reader.close()
    return {
        "points_before": points,
        "points_added": update,
        "batch": batch,
        "points_after": after,
        "writer_seconds": round(writer_seconds, 2),
        "generations_seen": len(set(counts)),
        "counts_monotonic": counts == sorted(counts),
        "search_before_update": percentiles(before),
        "search_during_update": percentiles(during),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10, help="FITS files per writer")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--writers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--update", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/concurrency.json"))
    args = parser.parse_args()

    results: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "ingests": [],
    }
    with tempfile.TemporaryDirectory(prefix="sharpseek-bench-conc-") as tmp:
        work = Path(tmp)
        moto = start_moto_serial(work / "moto-logs")
        try:
            for kind in ("local", "s3"):
                for writers in args.writers:
                    for trial in range(args.trials):
                        row = ingest_race(kind, writers, args.records, work, moto)
                        row["trial"] = trial + 1
                        log(f"ingest {kind} x{writers} #{trial + 1}: {row['present']}/"
                            f"{row['expected']} present, {row['duplicates']} duplicated, "
                            f"exit {row['exit_codes']}, {row['seconds']} s")  # fmt: skip
                        results["ingests"].append(row)
        finally:
            moto.stop()
        log(f"index: {args.points} points, then {args.update} more while searching")
        results["index"] = search_during_update(args.points, args.update, args.batch, work)
        results["index"]["folder"] = "a temporary folder on the local disk"
        log(json.dumps(results["index"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
