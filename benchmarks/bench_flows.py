"""Sharded work on a Dask cluster: the speed-up from 1 to 2 workers, for the two kinds of
shard the flows map over workers.

- **ingest**: the ingest flows' ``ingest shard`` task (synthetic regions generated,
  converted to model space, and the batched physics computed on the float16 images; the
  staged records written to the store), over the regions of a synthetic recipe;
- **embed**: the index flow's ``embed shard`` task over the frames of that dataset
  (untrained ``tiny`` encoder: the cost of an embedding does not depend on what the
  weights learned).

Each is mapped by Prefect's DaskTaskRunner on a LocalCluster of 1, then 2, single-threaded
process workers (Prefect's ephemeral API). The cluster is started and warmed up before the
clock starts; each run starts from an empty shard cache. The machine must be quiet: before
each timed run the benchmark waits (up to ``--wait`` seconds) for the 1-minute load average
to fall below ``--max-load``, and records the load it saw and how many cores other
processes used while the clock ran (a load average can be low while another job holds a
core).

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


def wait_for_quiet(max_load: float, wait_s: float) -> float:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``wait_s``
    seconds); return the load average when the wait ended."""
    deadline = time.monotonic() + wait_s
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle
    and iowait; guest time is already in user)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its live descendants (the Dask workers, the
    ephemeral Prefect server)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/flows.json")
    parser.add_argument("--regions", type=int, default=120)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--shard-size", type=int, default=120, help="frames per shard (both)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--wait", type=float, default=600.0)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-flows-"))
    os.environ.update(
        {
            "SHARPSEEK_HOME": str(home),
            "SHARPSEEK_FLOWS__TASK_RUNNER": "dask",
            "SHARPSEEK_FLOWS__SHARD_SIZE": str(args.shard_size),
            "SHARPSEEK_FLOWS__INGEST_SHARD_SIZE": str(args.shard_size),
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
    from sharpseek.config import Settings
    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.ingest import INGEST_SHARDS_PREFIX, plan_synthetic_shards
    from sharpseek.data.store import open_store
    from sharpseek.pipeline import index_plans, ingest_plans, runs

    settings = Settings()
    write_untrained_checkpoints(settings)
    recipe = {
        "regions": args.regions,
        "frames": args.frames,
        "cadence_hours": settings.synthetic.cadence_hours,
        "seed": settings.synthetic.seed,
    }
    made = ingest_plans.run_ingest_plan(
        settings, ingest_plans.plan_ingest_synthetic(settings, **recipe)
    )
    ds = load_dataset(open_store(settings), "synthetic", made.outputs["version"])
    ingest_shards = plan_synthetic_shards(**recipe, shard_frames=args.shard_size)
    flows = runs.load_flows()
    plan = index_plans.plan_index(settings, datasets=["synthetic"])
    store = open_store(settings)

    @task
    def warm_up() -> int:
        return os.getpid()

    work = {
        "ingest": (flows.ingest_shard_task, ingest_shards, [], INGEST_SHARDS_PREFIX),
        "embed": (
            flows.embed_shard_task,
            plan.shards,
            [plan.encoder_key],
            index_plans.EMBEDDINGS_PREFIX,
        ),
    }
    loads: list[dict[str, float | str | int]] = []

    def timed(what: str, workers: int) -> float:
        s = settings.model_copy(
            update={"flows": settings.flows.model_copy(update={"dask_workers": workers})}
        )
        shard_task, shards, extra, prefix = work[what]

        @flow(name=f"bench-{what}-{workers}", task_runner=flows.task_runner_for(s))
        def run_all() -> float:
            pids = {f.result() for f in [warm_up.submit() for _ in range(4 * workers)]}
            print(f"{workers} worker(s) up: {len(pids)} process(es)")
            store.delete_prefix(prefix)  # every shard computed, none reused
            before = wait_for_quiet(args.max_load, args.wait)
            busy, own = busy_cpu_seconds(), own_cpu_seconds()
            start = time.perf_counter()
            futures = shard_task.map(unmapped(s), shards, *map(unmapped, extra))
            done = futures.result()
            seconds = time.perf_counter() - start
            busy, own = busy_cpu_seconds() - busy, own_cpu_seconds() - own
            assert not any(d["cached"] for d in done)
            loads.append(
                {"run": what, "workers": workers, "load_1min_before": round(before, 2),
                 "load_1min_after": round(os.getloadavg()[0], 2),
                 "cores_used_by_this_benchmark": round(own / seconds, 2),
                 "cores_used_by_other_processes": round(max(busy - own, 0.0) / seconds, 2)}
            )  # fmt: skip
            return seconds

        return run_all()

    results = {what: {"1": [], "2": []} for what in work}
    for _ in range(args.repeats):
        for what in work:
            for workers in (1, 2):
                seconds = timed(what, workers)
                results[what][str(workers)].append(seconds)
                print(f"{what}, {workers} worker(s): {len(ds)} frames in {seconds:.1f} s")
    report = {
        "what": {
            "ingest": "ingest flows' shard task (ingest shard: synthetic regions generated, "
            "model space, batched physics on the float16 images, records staged in the store)",
            "embed": "index flow's shard task (embed shard), untrained tiny encoder",
            "runner": "Prefect DaskTaskRunner on a LocalCluster of single-threaded process "
            "workers, warmed up before the clock",
        },
        "command": "python benchmarks/bench_flows.py --out benchmarks/results/flows.json",
        "frames": len(ds),
        "shard_size_frames": args.shard_size,
        "shards": {what: len(w[1]) for what, w in work.items()},
    }
    for what, by_workers in results.items():
        best = {k: min(v) for k, v in by_workers.items()}
        report[what] = {
            "seconds_by_workers": by_workers,
            "best_seconds_by_workers": best,
            "frames_per_s_by_workers": {k: len(ds) / v for k, v in best.items()},
            "speedup_1_to_2": best["1"] / best["2"],
        }
    report.update(
        {
            "max_load_wanted": args.max_load,
            "load_average_1min_by_run": loads,
            "cpu_count": os.cpu_count(),
            "machine": platform.platform(),
            "python": platform.python_version(),
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
