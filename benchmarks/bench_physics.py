"""Throughput of ``sharpseek.physics.parameters.compute_parameters`` against the per-image oracle.

Run from the repository root::

    .venv/bin/python benchmarks/bench_physics.py            # 10,000 images, oracle on 1,000
    .venv/bin/python benchmarks/bench_physics.py --n 2000 --oracle-n 200

The images are seeded synthetic "realistic-ish" patches (smooth bipoles on weak correlated noise,
clipped to [-1, 1], float32 like a generator's output). The batched version is warmed up and
timed best-of-3 on all ``--n`` images; the oracle (``tests/oracle_physics.py``, one image at a
time with numpy/scipy) is timed once on the first ``--oracle-n`` of them and its rate is
extrapolated to the whole set. Both run in the same process, one after the other, and the batched
results on that subset are checked against the oracle's. Results go to a JSON file
(``--out``) and a short table is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))  # for oracle_physics (a test helper, not package)

from oracle_physics import oracle_batch  # noqa: E402
from sharpseek.physics.parameters import compute_parameters  # noqa: E402


def synthetic_images(n: int, *, seed: int = 0, size: int = 128) -> np.ndarray:
    """(n, size, size) float32 model-space images: 1-3 Gaussian bipoles on smoothed noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, size, size), dtype=np.float32)
    # weak correlated background: white noise smoothed by a 3-tap kernel along both axes
    for start in range(0, n, 256):
        m = min(256, n - start)
        noise = rng.normal(0.0, 0.03, (m, size, size)).astype(np.float32)
        noise = (noise + np.roll(noise, 1, 1) + np.roll(noise, -1, 1)) / 3
        noise = (noise + np.roll(noise, 1, 2) + np.roll(noise, -1, 2)) / 3
        out[start : start + m] = noise
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cx, cy = rng.uniform(24, size - 24, 2)
            sep, angle = rng.uniform(6, 40), rng.uniform(0, 2 * np.pi)
            amp, width = rng.uniform(0.2, 2.0), rng.uniform(2.0, 8.0)
            for sign in (1.0, -1.0):
                px = cx + sign * sep / 2 * np.cos(angle)
                py = cy + sign * sep / 2 * np.sin(angle)
                r2 = (xx - px) ** 2 + (yy - py) ** 2
                out[i] += sign * amp * np.exp(-r2 / (2 * width**2))
    return np.clip(out, -1.0, 1.0)


def time_batched(images, *, chunk_size: int, device: str, repeats: int = 3) -> float:
    """Best wall time [s] of ``repeats`` runs over all images, after one warm-up chunk."""
    data = torch.from_numpy(images).to(device)
    compute_parameters(data[:chunk_size], chunk_size=chunk_size)  # warm-up (allocator, caches)
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        compute_parameters(data, chunk_size=chunk_size)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images for the batched version")
    parser.add_argument("--oracle-n", type=int, default=1_000, help="images for the oracle")
    parser.add_argument("--chunk-size", type=int, default=256, help="chunk size (batched)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/physics.json")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    images = synthetic_images(args.n, seed=args.seed)
    oracle_n = min(args.oracle_n, args.n)

    t_batched = time_batched(images, chunk_size=args.chunk_size, device="cpu")
    start = time.perf_counter()
    reference = oracle_batch(images[:oracle_n])
    t_oracle = time.perf_counter() - start
    # the same numbers? (worst relative difference on the oracle's subset, NaN patterns equal)
    batched = compute_parameters(images[:oracle_n], chunk_size=args.chunk_size)
    worst = {}
    for key, ref in reference.items():
        got, ref = batched[key].astype(float), ref.astype(float)
        if not np.array_equal(np.isnan(got), np.isnan(ref)):
            raise SystemExit(f"NaN pattern of {key} differs from the oracle")
        both = ~np.isnan(ref)
        diff = np.abs(got[both] - ref[both]) / np.maximum(np.abs(ref[both]), 1e-9)
        worst[key] = float(diff.max()) if diff.size else 0.0

    rate_batched = args.n / t_batched
    rate_oracle = oracle_n / t_oracle
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "n_images": args.n,
        "oracle_n_images": oracle_n,
        "oracle_extrapolated": oracle_n < args.n,
        "chunk_size": args.chunk_size,
        "batched_images_per_s": rate_batched,
        "oracle_images_per_s": rate_oracle,
        "speedup": rate_batched / rate_oracle,
        "batched_best_of": 3,
        "max_rel_diff_vs_oracle": worst,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy_version": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        t_cuda = time_batched(images, chunk_size=max(args.chunk_size, 1024), device="cuda")
        result["cuda_device"] = torch.cuda.get_device_name()
        result["cuda_chunk_size"] = max(args.chunk_size, 1024)
        result["cuda_images_per_s"] = args.n / t_cuda

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"sharpseek.physics benchmark ({result['cpu_model']}, {result['torch_threads']} threads)")
    print(f"{'version':<10}{'images':>9}{'images/s':>12}")
    print(f"{'batched':<10}{args.n:>9}{rate_batched:>12.0f}   chunk {args.chunk_size}, best of 3")
    note = "   extrapolated from this subset" if oracle_n < args.n else ""
    print(f"{'oracle':<10}{oracle_n:>9}{rate_oracle:>12.0f}{note}")
    if "cuda_images_per_s" in result:
        print(
            f"{'cuda':<10}{args.n:>9}{result['cuda_images_per_s']:>12.0f}   {result['cuda_device']}"
        )
    print(f"speed-up batched / oracle: {result['speedup']:.1f}x   -> {args.out}")
    key = max(worst, key=worst.get)
    print(f"worst relative difference from the oracle: {worst[key]:.1e} ({key})")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
