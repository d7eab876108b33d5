"""The GPU path, end to end, on one CUDA machine: the figures issue 4 asks of a GPU node.

Run from the repository root on a machine with a CUDA device (``make bench`` does not run
it; CI has no GPU)::

    python benchmarks/bench_gpu.py --out benchmarks/results/gpu.json

Steps, each timed and written to ``--out`` as soon as it ends (a step that fails records its
error and the rest go on):

1. ``cuda_physics``: the physics test that compares CUDA with CPU results
   (``tests/test_physics.py::test_cuda_results_equal_cpu_results``).
2. ``throughput``: ``bench_models.py`` at ``tiny`` and ``paper`` sizes on CUDA, in fp32 and in
   bf16 (training and inference images/s).
3. ``synthetic``: the ``paper`` synthetic recipe (2,000 regions x 27 frames = 54,000 patches)
   made through the same sharded ingest the Prefect flow maps over workers
   (:func:`sharpseek.data.ingest.ingest_shard` in a process pool, then one commit).
4. ``train_gan`` and ``train_encoder``: ``sharpseek train gan|encoder --preset paper --epochs 1
   --precision bf16 --device cuda`` on that dataset: one epoch over its training split, with
   each epoch's measures and checkpoint, as a user runs it.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from sharpseek.cli.app import app; app()", *args]


def _make_shard(home: str, shard) -> dict:
    import torch

    from sharpseek.config import Settings
    from sharpseek.data.ingest import ingest_shard

    torch.set_num_threads(1)
    settings = Settings(home=home, preset="paper", device="cpu")
    return ingest_shard(settings, shard)


def make_synthetic(home: Path, workers: int, regions: int | None) -> dict:
    """The paper recipe (or its first ``regions``) through the pipeline's own ingest plan,
    its shards made by a process pool, then the one commit."""
    from sharpseek.config import Settings
    from sharpseek.pipeline.ingest_plans import commit_ingest, plan_ingest_synthetic

    settings = Settings(
        home=home,
        preset="paper",
        device="cpu",
        synthetic={"regions": regions} if regions else {},
        flows={"ingest_shard_size": 27 * 32},  # ~32 regions a shard: work for every worker
    )
    plan = plan_ingest_synthetic(settings)
    # One BLAS/OpenMP thread per worker process: 16 workers each starting 16 threads on a
    # 16-core node did not finish the 54,000-frame recipe in 500 s (the first GPU run).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        made = list(pool.map(_make_shard, [str(home)] * len(plan.shards), plan.shards))
    made_s = time.perf_counter() - start
    outcome = commit_ingest(settings, plan)
    return {
        "frames": sum(m["records"] for m in made),
        "shards": len(plan.shards),
        "workers": workers,
        "make_s": round(made_s, 1),
        "commit_s": round(time.perf_counter() - start - made_s, 1),
        "version": outcome.outputs["dataset"]["version"],
    }


def run_step(results: dict, name: str, out: Path, fn) -> None:
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
        results["steps"][name] = {"ok": True, **(fn() or {})}
    except Exception as error:  # noqa: BLE001 - a failed step is a figure too
        results["steps"][name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    results["steps"][name]["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results["steps"][name])[:2000], flush=True)
    out.write_text(json.dumps(results, indent=2))


def sh(cmd: list[str], env: dict | None = None, log: Path | None = None) -> dict:
    completed = subprocess.run(
        cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    text = completed.stdout + completed.stderr
    if log:
        log.write_text(text)
    if completed.returncode != 0:
        raise RuntimeError(f"exit {completed.returncode}: {text[-1500:]}")
    return {"tail": text[-1500:]}


def throughput(logs: Path) -> dict:
    """bench_models.py on CUDA in fp32 and bf16: training and inference images/s."""
    runs = {}
    for precision in ("32", "bf16"):
        path = logs / f"models-cuda-{precision}.json"
        sh(
            [
                sys.executable,
                "benchmarks/bench_models.py",
                "--device",
                "cuda",
                "--precision",
                precision,
                "--steps",
                "20",
                "--threads",
                "4",
                "--out",
                str(path),
            ]
        )
        runs[precision] = json.loads(path.read_text())["runs"][0]
    return runs


def train_one_epoch(kind: str, args: argparse.Namespace, env: dict, logs: Path) -> dict:
    """``sharpseek train <kind> --preset paper --epochs 1`` as a user runs it."""
    options = ["--preset", "paper", "--epochs", "1", "--precision", args.precision]
    options += ["--device", args.device, "--no-progress", "--overwrite"]
    return sh(_cli("train", kind, *options), env, logs / f"train-{kind}.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gpu.json")
    parser.add_argument("--home", type=Path, default=Path("/tmp/sharpseek-gpu"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--regions", type=int, help="synthetic regions (default: paper's)")
    parser.add_argument("--device", default="cuda", help="cpu only for a dry run of this script")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument(
        "--steps", default="cuda_physics,throughput,synthetic,train_gan,train_encoder"
    )
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_gpu.py: no CUDA device (torch.cuda.is_available() is False)")
    logs = args.out.parent
    results: dict = {
        "benchmark": "bench_gpu",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "steps": {},
    }
    wanted = args.steps.split(",")
    env = {"SHARPSEEK_HOME": str(args.home), "SHARPSEEK_PRESET": "paper"}
    steps = {
        "cuda_physics": lambda: sh(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_physics.py::test_cuda_results_equal_cpu_results",
            ]
        ),
        "throughput": lambda: throughput(logs),
        "synthetic": lambda: make_synthetic(args.home, args.workers, args.regions),
        "train_gan": lambda: train_one_epoch("gan", args, env, logs),
        "train_encoder": lambda: train_one_epoch("encoder", args, env, logs),
    }
    for name in wanted:
        run_step(results, name, args.out, steps[name])


if __name__ == "__main__":
    main()
