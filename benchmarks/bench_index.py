"""Vector index: search latency and HNSW recall on the embedded backend (qdrant-edge-py).

For each size N (default 50,000; add 1,000,000 with ``--sizes 50000 1000000``):

- builds a manifest of N frames with realistic payloads (HARPs of ~27 frames at 12 h,
  2010-2023, both hemispheres, NOAA numbers, mu from position, physics in model space and in
  physical units with NaN PSEP for unipolar frames) and random 100-d vectors (i.i.d. normal:
  the hardest case for HNSW; real embeddings have structure);
- indexes it with ``EdgeIndex.reindex`` (points/s);
- times ``EdgeIndex.search`` (the public call: filter translation, one request, payloads)
  with exact search, without and with filters, ungrouped and one frame per HARP, against
  numpy brute force on the same data (squared distances by one matrix-vector product; the
  filters as boolean masks over the same columns; grouping by a per-HARP minimum);
- builds the HNSW graph (``optimize``), then times HNSW search and measures recall@10
  against exact search for several ``hnsw_ef``, unfiltered and filtered.

With ``--clustered`` it also measures recall@10 on vectors clustered by HARP (frames of one
region near each other, as embeddings of near-duplicate frames are).

Usage: python benchmarks/bench_index.py [--sizes 50000] [--queries 200]
       [--ef 64 128 256 512] [--out benchmarks/results/index.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from sharpseek.search.index import EdgeIndex, IndexConfig, SearchFilter, iter_batches, recall_at_k

DIM = 100
FRAMES_PER_HARP = 27
K = 10

#: The filters timed: what a search narrows by, from broad to selective.
FILTERS = {
    "broad": SearchFilter(  # ~1/5 of frames: strong regions, northern, 2012-2016
        ranges={"tuf": (2e5, None)},
        time=("2012-01-01", "2016-12-31"),
        hemisphere="north",
    ),
    "disk_centre": SearchFilter(mu=(0.8, 1.0), ranges={"psep_mm": (10.0, 60.0)}),
    "harps": None,  # five HARPs, filled per size (a few hundred frames)
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_manifest(n: int, seed: int) -> pd.DataFrame:
    """N frames with realistic payload columns (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_harps = -(-n // FRAMES_PER_HARP)
    harp = np.repeat(np.arange(1, n_harps + 1), FRAMES_PER_HARP)[:n]
    frame = np.tile(np.arange(FRAMES_PER_HARP), n_harps)[:n]
    start = pd.Timestamp("2010-05-01") + pd.to_timedelta(
        rng.uniform(0, 13.2 * 365, n_harps), unit="D"
    ).round("12min")
    t_rec = start[harp - 1] + pd.to_timedelta(frame * 12, unit="h")
    north = rng.random(n_harps) < 0.5
    lat0 = np.where(north, 1, -1) * rng.uniform(3, 38, n_harps)
    lat = lat0[harp - 1] + rng.normal(0, 0.3, n)
    lon = rng.uniform(-75, -40, n_harps)[harp - 1] + frame * 6.6  # 13.2 deg/day
    b0 = 7.25 * np.sin(2 * np.pi * (t_rec.day_of_year.to_numpy() - 68) / 365.25)
    rad = np.pi / 180
    mu = np.sin(b0 * rad) * np.sin(lat * rad) + np.cos(b0 * rad) * np.cos(lat * rad) * np.cos(
        lon * rad
    )
    noaa = np.where(rng.random(n_harps) < 0.7, 11000 + rng.integers(0, 2500, n_harps), 0)
    tuf = rng.lognormal(12.0, 1.0, n)
    bipolar = rng.random(n) > 0.1
    psep = np.where(bipolar, rng.uniform(3, 60, n), np.nan)
    flux = tuf * 1.4e16
    return pd.DataFrame(
        {
            "series": "hmi.sharp_cea_720s",
            "harpnum": harp,
            "t_rec": t_rec,
            "noaa_ar": noaa[harp - 1],
            "noaa_ars": [str(a) if a else "" for a in noaa[harp - 1]],
            "quality": np.where(rng.random(n) < 0.95, 0, 1024),
            "naxis1": rng.integers(50, 900, n),
            "naxis2": rng.integers(30, 500, n),
            "cdelt1": 0.03,
            "lat_fwt": lat,
            "lon_fwt": lon,
            "crlt_obs": b0,
            "mu": mu,
            "usflux": flux * rng.uniform(0.3, 1.0, n),
            "r_value": rng.uniform(0, 5, n),
            "scale_x": rng.uniform(0.5, 7, n),
            "scale_y": rng.uniform(0.3, 4, n),
            "flux_mx": flux,
            "flux_strong_mx": flux * 0.6,
            "flux_positive_mx": flux * 0.3,
            "flux_negative_mx": flux * 0.3,
            "psep_mm": psep * 0.36,
            "dq_flags": "",
            "tuf": tuf,
            "tpf": tuf * rng.uniform(0.1, 0.5, n),
            "tnf": tuf * rng.uniform(0.1, 0.5, n),
            "psep": psep,
            "r": np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(10, 1.5, n)),
            "tilt": np.where(bipolar, rng.uniform(-89, 90, n), np.nan),
            "orientation": np.where(bipolar, rng.choice([-1.0, 1.0], n), np.nan),
            "sigma": rng.uniform(0.01, 0.2, n),
            "alpha": rng.uniform(0.5, 3, n),
            "grad": rng.uniform(0.005, 0.1, n),
            "bipolar": bipolar,
            "joy_tilt": np.where(bipolar, rng.uniform(-89, 90, n), np.nan),
        }
    )


def numpy_mask(cols: dict[str, np.ndarray], name: str, harps: list[int]) -> np.ndarray:
    """The same filters as FILTERS, as boolean masks over numpy columns (evaluated per query,
    as the index evaluates its filter per query)."""
    if name == "broad":
        t = cols["t_rec"]
        return (
            (cols["tuf"] >= 2e5)
            & (t >= np.datetime64("2012-01-01"))
            & (t <= np.datetime64("2016-12-31"))
            & (cols["lat_fwt"] > 0)
        )
    if name == "disk_centre":
        mu, ps = cols["mu"], cols["psep_mm"]
        return (mu >= 0.8) & (mu <= 1.0) & (ps >= 10) & (ps <= 60)
    return np.isin(cols["harpnum"], harps)


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
    }


def timed_each(fn, queries: np.ndarray, warmup: int = 3) -> dict[str, float]:
    for q in queries[:warmup]:
        fn(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - start)
    return percentiles(times)


class NumpyBrute:
    """Exact k-NN over the same vectors: ||v||^2 - 2 v.q (||q||^2 is a constant)."""

    def __init__(self, vectors: np.ndarray, harp: np.ndarray):
        self.v = vectors
        self.norms = np.einsum("ij,ij->i", vectors, vectors)
        self.order = np.argsort(harp, kind="stable")  # rows grouped by HARP
        sorted_harp = harp[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_harp[1:] != sorted_harp[:-1]])

    def top(self, q: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        if mask is None:
            d2 = self.norms - 2 * (self.v @ q)
            idx = np.argpartition(d2, K)[:K]
            return idx[np.argsort(d2[idx])]
        rows = np.flatnonzero(mask)
        d2 = self.norms[rows] - 2 * (self.v[rows] @ q)
        k = min(K, len(rows) - 1)
        idx = np.argpartition(d2, k)[:K]
        return rows[idx[np.argsort(d2[idx])]]

    def top_per_harp(self, q: np.ndarray) -> np.ndarray:
        d2 = (self.norms - 2 * (self.v @ q))[self.order]
        best = np.minimum.reduceat(d2, self.starts)  # per-HARP minimum
        groups = np.argpartition(best, K)[:K]
        return groups[np.argsort(best[groups])]


def rss_gb() -> float:
    """Resident memory of this process [GB] (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def available_gb() -> float:
    """Memory the machine can still give [GB] (Linux MemAvailable)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("inf")


def guarded(batches, progress: dict, n: int, min_free_gb: float):
    """Pass batches on; log progress; stop (MemoryError) before the machine runs short."""
    for rows, vectors in batches:
        free = available_gb()
        if free < min_free_gb:
            progress["rss_gb"] = round(rss_gb(), 2)
            raise MemoryError(
                f"{free:.1f} GB left on the machine (< --min-free-gb {min_free_gb}) after "
                f"{progress['points']:,} of {n:,} points; this process holds "
                f"{progress['rss_gb']} GB"
            )
        yield rows, vectors
        before = progress["points"]
        progress["points"] += len(rows)
        if progress["points"] // 100_000 > before // 100_000:
            log(
                f"  {progress['points']:,} points indexed, RSS {rss_gb():.1f} GB, "
                f"{free:.1f} GB available"
            )


@contextlib.contextmanager
def _blas_threads(threads: int | None):
    """Limit BLAS threads (threadpoolctl, installed with scikit-learn); None: leave as is."""
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def bench_size(n: int, args: argparse.Namespace, workdir: Path) -> dict:
    rng = np.random.default_rng(1)
    log(f"N={n:,}: making the manifest and vectors")
    manifest = make_manifest(n, seed=0)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    queries = rng.standard_normal((args.queries, DIM), dtype=np.float32)
    harps = sorted(rng.choice(manifest["harpnum"].unique(), 5, replace=False).tolist())
    filters = dict(FILTERS, harps=SearchFilter(harpnums=harps))

    config = IndexConfig(hnsw_ef=args.chosen_ef)
    if n > args.hnsw_max:  # reindex builds the graph at or above exact_threshold: not here
        config = IndexConfig(hnsw_ef=args.chosen_ef, exact_threshold=n + 1)
    folder = workdir / f"edge-{n}"
    index = EdgeIndex(folder, config)
    log(f"N={n:,}: indexing (reindex, batches of 5,000)")
    start = time.perf_counter()
    progress = {"points": 0}
    try:
        index.reindex(
            "bench",
            guarded(iter_batches(manifest, vectors, 5000), progress, n, args.min_free_gb),
            dataset_version="bench",
        )
    except MemoryError as err:
        log(f"N={n:,}: stopped: {err}")
        index.close()
        shutil.rmtree(folder, ignore_errors=True)
        return {
            "n": n,
            "stopped": str(err),
            "points_indexed_before_stop": progress["points"],
            "seconds_before_stop": round(time.perf_counter() - start, 1),
            "rss_gb_at_stop": progress.get("rss_gb"),
        }
    build_s = time.perf_counter() - start
    log(f"N={n:,}: indexed in {build_s:.1f} s ({n / build_s:,.0f} points/s), RSS {rss_gb():.1f} GB")
    out: dict = {
        "n": n,
        "index_build_s": round(build_s, 2),
        "index_points_per_s": round(n / build_s),
        "rss_gb_after_build": round(rss_gb(), 2),
        "filter_selectivity": {},
        "latency": {},
    }

    brute = NumpyBrute(vectors, manifest["harpnum"].to_numpy())
    cols = {
        c: manifest[c].to_numpy() for c in ("t_rec", "tuf", "lat_fwt", "mu", "psep_mm", "harpnum")
    }
    masks = {name: numpy_mask(cols, name, harps) for name in filters}
    out["filter_selectivity"] = {name: round(float(m.mean()), 5) for name, m in masks.items()}
    # the exact search must agree with numpy before its speed means anything
    rids = (
        manifest["series"]
        + ":"
        + manifest["harpnum"].astype(str)
        + ":"
        + manifest["t_rec"].dt.strftime("%Y%m%d_%H%M%S")
        + "_TAI"
    ).to_numpy()
    for q in queries[:3]:
        got = [h.record_id for h in index.search(q, limit=K, group_by_harp=False, exact=True)]
        assert got == rids[brute.top(q)].tolist(), "exact search disagrees with numpy"
        for name, flt in filters.items():
            got = index.search(q, limit=K, filter=flt, group_by_harp=False, exact=True)
            want = rids[brute.top(q, masks[name])].tolist()
            assert [h.record_id for h in got] == want, f"filter {name} disagrees with numpy"
    log(f"N={n:,}: exact search agrees with numpy brute force (with and without filters)")

    lat = out["latency"]
    qs = queries

    def case(label: str, fn) -> None:
        lat[label] = t = timed_each(fn, qs)
        log(f"N={n:,}: {label:<44} p50 {t['p50_ms']:8.2f} ms  p95 {t['p95_ms']:8.2f} ms")

    # OpenBLAS wakes its threads per call: on 2 cores one thread is often faster; time both
    for threads in (1, None):
        tag = "1 thread" if threads == 1 else "all threads"
        with _blas_threads(threads):
            case(f"numpy brute force ({tag})", brute.top)
            case(f"numpy brute force ({tag}), one per HARP", brute.top_per_harp)
            for name in filters:
                case(
                    f"numpy brute force ({tag}), filter {name}",
                    lambda q, f=name: brute.top(q, numpy_mask(cols, f, harps)),
                )
    case("edge exact", lambda q: index.search(q, limit=K, group_by_harp=False, exact=True))
    case("edge exact, one per HARP", lambda q: index.search(q, limit=K, exact=True))
    for name, flt in filters.items():
        case(
            f"edge exact, filter {name}",
            lambda q, f=flt: index.search(q, limit=K, filter=f, group_by_harp=False, exact=True),
        )
    case(
        "edge exact, filter broad, one per HARP",
        lambda q: index.search(q, limit=K, filter=filters["broad"], exact=True),
    )

    if n > args.hnsw_max:
        log(f"N={n:,}: HNSW skipped (above --hnsw-max {args.hnsw_max:,})")
        out["hnsw"] = None
    else:
        log(f"N={n:,}: building the HNSW graph (optimize)")
        start = time.perf_counter()
        index.optimize()
        out["hnsw_build_s"] = round(time.perf_counter() - start, 1)
        log(f"N={n:,}: HNSW built in {out['hnsw_build_s']} s")
        # exact search again, now on optimized (immutable) segments
        for label, flt in (("", None), (", filter broad", filters["broad"])):
            case(
                f"edge exact after optimize{label}",
                lambda q, f=flt: index.search(
                    q, limit=K, filter=f, group_by_harp=False, exact=True
                ),
            )
        out["hnsw"] = hnsw_figures(index, queries, filters, args, n)
    out["disk_mb"] = round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20)
    index.close()
    shutil.rmtree(folder, ignore_errors=True)
    return out


def hnsw_figures(index, queries, filters, args, n) -> dict:
    rows = []
    sub = queries[: args.recall_queries]
    for ef in args.ef:
        t = timed_each(
            lambda q, e=ef: index.search(q, limit=K, group_by_harp=False, exact=False, hnsw_ef=e),
            queries,
        )
        r = recall_at_k(index, sub, k=K, hnsw_ef=ef)
        rf = recall_at_k(index, sub, k=K, hnsw_ef=ef, filter=filters["broad"])
        rows.append(
            {
                "hnsw_ef": ef,
                "recall_at_10": round(r, 4),
                "recall_at_10_filter_broad": round(rf, 4),
                **t,
            }
        )
        log(
            f"N={n:,}: HNSW ef={ef:<4} recall@10 {r:.3f} (filtered {rf:.3f})  "
            f"p50 {t['p50_ms']:.2f} ms  p95 {t['p95_ms']:.2f} ms"
        )
    chosen = args.chosen_ef
    extra = {
        "filter broad": timed_each(
            lambda q: index.search(
                q, limit=K, filter=filters["broad"], group_by_harp=False, exact=False
            ),
            queries,
        ),
        "one per HARP": timed_each(lambda q: index.search(q, limit=K, exact=False), queries),
    }
    for label, t in extra.items():
        log(
            f"N={n:,}: HNSW ef={chosen} {label:<14} "
            f"p50 {t['p50_ms']:.2f} ms  p95 {t['p95_ms']:.2f} ms"
        )
    return {"sweep": rows, "chosen_ef": chosen, "chosen_ef_latency": extra}


def clustered_recall(n: int, args: argparse.Namespace, workdir: Path) -> dict:
    """recall@10 on vectors clustered by HARP (frames of a region near each other)."""
    rng = np.random.default_rng(2)
    manifest = make_manifest(n, seed=3)
    harp = manifest["harpnum"].to_numpy()
    centres = rng.standard_normal((harp.max() + 1, DIM), dtype=np.float32)
    vectors = centres[harp] + 0.5 * rng.standard_normal((n, DIM), dtype=np.float32)
    picks = rng.choice(n, args.recall_queries, replace=False)
    queries = vectors[picks] + 0.5 * rng.standard_normal((len(picks), DIM), dtype=np.float32)
    folder = workdir / f"edge-clustered-{n}"
    index = EdgeIndex(folder, IndexConfig(hnsw_ef=args.chosen_ef))
    log(f"clustered N={n:,}: indexing and building HNSW")
    index.reindex("bench", iter_batches(manifest, vectors, 5000), dataset_version="bench")
    index.optimize()
    rows = []
    for ef in args.ef:
        r = recall_at_k(index, queries, k=K, hnsw_ef=ef)
        rows.append({"hnsw_ef": ef, "recall_at_10": round(r, 4)})
        log(f"clustered N={n:,}: HNSW ef={ef:<4} recall@10 {r:.3f}")
    index.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {"n": n, "sweep": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000])
    parser.add_argument("--queries", type=int, default=200, help="queries timed per case")
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--chosen-ef", type=int, default=IndexConfig().hnsw_ef)
    parser.add_argument("--hnsw-max", type=int, default=2_000_000, help="skip HNSW above this N")
    parser.add_argument(
        "--clustered", type=int, default=50_000, help="N for the clustered recall run (0: skip)"
    )
    parser.add_argument(
        "--min-free-gb", type=float, default=4.0, help="stop indexing below this much free RAM"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/index.json"))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-index-", dir=args.workdir))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the workdir on kill
    started = time.perf_counter()
    results = {
        "benchmark": "bench_index",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": __import__("os").cpu_count(),
        },
        "versions": {p: version(p) for p in ("qdrant-edge-py", "numpy", "pandas")},
        "k": K,
        "dim": DIM,
        "vectors": "i.i.d. standard normal, float32",
        "sizes": [],
    }
    try:
        for n in args.sizes:
            results["sizes"].append(bench_size(n, args, workdir))
            _write(args.out, results)  # keep what is measured even if a later size fails
        if args.clustered:
            results["clustered"] = clustered_recall(args.clustered, args, workdir)
    finally:
        results["total_s"] = round(time.perf_counter() - started, 1)
        _write(args.out, results)
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {results['total_s']} s; figures in {args.out}")


def _write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
