"""Sharded embedding on a Dask cluster: the speed-up from 1 to 2 workers.

The index flow's shard task (``embed shard``) mapped over the frames of a synthetic dataset
by Prefect's DaskTaskRunner on a LocalCluster of 1, then 2, single-threaded process workers
(Prefect's ephemeral API). The cluster is started and warmed up before the clock starts;
each run starts from an empty embedding cache. The encoder is the untrained ``tiny`` one
(the cost of an embedding does not depend on what the weights learned).

    python benchmarks/bench_flows.py --out benchmarks/results/flows.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/flows.json")
    parser.add_argument("--regions", type=int, default=120)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--shard-size", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-flows-"))
    os.environ.update(
        {
            "SHARPSEEK_HOME": str(home),
            "SHARPSEEK_FLOWS__TASK_RUNNER": "dask",
            "SHARPSEEK_FLOWS__SHARD_SIZE": str(args.shard_size),
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    (home / "prefect").mkdir(parents=True)
    sys.path.insert(0, str(ROOT / "tests"))
    from prefect import flow, task, unmapped

    from model_fixtures import write_untrained_checkpoints
    from sharpseek import pipeline as lib
    from sharpseek.config import Settings
    from sharpseek.ingest import ingest_synthetic
    from sharpseek.store import open_store

    settings = Settings()
    write_untrained_checkpoints(settings)
    ds = ingest_synthetic(settings, regions=args.regions, frames=args.frames, progress=True)
    flows = lib.load_flows()
    plan = lib.plan_index(settings, datasets=["synthetic"])
    store = open_store(settings)

    @task
    def warm_up() -> int:
        return os.getpid()

    def timed(workers: int) -> float:
        s = settings.model_copy(
            update={"flows": settings.flows.model_copy(update={"dask_workers": workers})}
        )

        @flow(name=f"bench-embed-{workers}", task_runner=flows.task_runner_for(s))
        def embed_all() -> float:
            pids = {f.result() for f in [warm_up.submit() for _ in range(4 * workers)]}
            print(f"{workers} worker(s) up: {len(pids)} process(es)")
            store.delete_prefix(lib.EMBEDDINGS_PREFIX)  # every shard computed, none reused
            start = time.perf_counter()
            futures = flows.embed_shard_task.map(
                unmapped(s), plan.shards, unmapped(plan.encoder_key)
            )
            done = futures.result()
            assert not any(d["cached"] for d in done)
            return time.perf_counter() - start

        return embed_all()

    results: dict[str, list[float]] = {"1": [], "2": []}
    for _ in range(args.repeats):
        for workers in (1, 2):
            seconds = timed(workers)
            results[str(workers)].append(seconds)
            print(f"{workers} worker(s): {len(ds)} frames in {seconds:.1f} s")
    best = {k: min(v) for k, v in results.items()}
    report = {
        "what": "index flow shard task (embed shard) mapped by Prefect's DaskTaskRunner over a "
        "LocalCluster of single-threaded process workers; untrained tiny encoder",
        "frames": len(ds),
        "shards": len(plan.shards),
        "shard_size": args.shard_size,
        "seconds_by_workers": results,
        "best_seconds_by_workers": best,
        "frames_per_s_by_workers": {k: len(ds) / v for k, v in best.items()},
        "speedup_1_to_2": best["1"] / best["2"],
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
