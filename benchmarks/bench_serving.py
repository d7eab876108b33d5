"""Latency (p50, p95) and throughput of the two models, TorchServe against in-process, at
batch 1 and 32, on this machine (CPU; pass ``--device``-free: TorchServe workers use the CPU
unless a GPU is present).

Run from the repository root::

    .venv/bin/python benchmarks/bench_serving.py --out benchmarks/results/serving.json

What is timed: one client calling :mod:`sharpseek.serving.backends` in a loop — ``generate`` (seeds
-> images and all their physical parameters) and ``embed`` (images -> embeddings) — so the
TorchServe numbers include HTTP, the float16 .npy/.npz encoding and TorchServe's batching
delay (``serve.max_batch_delay_ms``). A last row sends batch-1 generator requests from 4
client threads at once, where TorchServe batches them. Both sides use one torch thread
(in-process ``torch.set_num_threads(1)``, TorchServe ``serve.threads_per_worker=1``) and one
worker. Model weights do not change the speed: by default the tiny architecture with
untrained weights (``--home`` to time a trained home instead).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from sharpseek import __version__
from sharpseek.config import Settings
from sharpseek.serving import archives as model_archives
from sharpseek.serving import torchserve as serving
from sharpseek.serving.backends import InProcessBackend, TorchServeBackend


def _ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _percentiles(seconds: list[float], items: int) -> dict:
    a = np.asarray(seconds)
    return {
        "p50_ms": round(float(np.percentile(a, 50)) * 1e3, 2),
        "p95_ms": round(float(np.percentile(a, 95)) * 1e3, 2),
        "throughput_items_per_s": round(items * len(a) / float(a.sum()), 1),
        "requests": len(a),
    }


def _time_calls(call, repeats: int) -> list[float]:
    call()
    call()  # warm-up (first calls allocate, JIT paths, connections)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def _concurrent(call, clients: int, per_client: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()

    def run():
        for _ in range(per_client):
            start = time.perf_counter()
            call()
            with lock:
                latencies.append(time.perf_counter() - start)

    call()
    threads = [threading.Thread(target=run) for _ in range(clients)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    stats = _percentiles(latencies, 1)
    stats["throughput_items_per_s"] = round(clients * per_client / wall, 1)
    stats["clients"] = clients
    return stats


def bench(backend, repeats: dict[int, int]) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for batch, n in repeats.items():
        seeds = list(range(batch))
        images = rng.uniform(-1, 1, (batch, 128, 128)).astype(np.float32)
        out[f"generator_batch{batch}"] = _percentiles(
            _time_calls(lambda s=seeds: backend.generate(seeds=s), n), batch
        )
        out[f"encoder_batch{batch}"] = _percentiles(
            _time_calls(lambda x=images: backend.embed(x), n), batch
        )
        print(f"  batch {batch}: {out[f'generator_batch{batch}']} {out[f'encoder_batch{batch}']}")
    out["generator_batch1_4clients"] = _concurrent(lambda: backend.generate(seeds=[1]), 4, n)
    return out


def served_figure(client, path: Path) -> None:
    """Six magnetograms generated through TorchServe, titled with parameters it measured."""
    from sharpseek.science.plotting import magnetogram_grid

    result = client.generate(seeds=list(range(6)))
    p = result.parameters
    titles = [
        f"seed {s}: TUF {p['tuf'][i] / 1e6:.2f} MG px\nPSEP {p['psep'][i]:.0f} px, "
        f"R {p['r'][i] / 1e3:.0f} kG px"
        for i, s in enumerate(range(6))
    ]
    centroids = np.stack([p["pos_x"], p["pos_y"], p["neg_x"], p["neg_y"]], axis=1)
    magnetogram_grid(
        result.images,
        path,
        titles=titles,
        centroids=centroids,
        ncols=3,
        suptitle=f"served by TorchServe: generator {result.gan_version}",
    )


def latency_figure(report: dict, path: Path) -> None:
    """p50 (bar) and p95 (whisker) latency per call, TorchServe against in-process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["generator_batch1", "generator_batch32", "encoder_batch1", "encoder_batch32"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ["latency", "throughput"], strict=True):
        x = np.arange(len(keys))
        for offset, (name, label) in zip(
            (-0.2, 0.2), (("inprocess", "in-process"), ("torchserve", "TorchServe")), strict=True
        ):
            rows = [report["results"][name][k] for k in keys]
            if metric == "latency":
                p50 = np.array([r["p50_ms"] for r in rows])
                p95 = np.array([r["p95_ms"] for r in rows])
                ax.bar(x + offset, p50, 0.4, label=label, yerr=[np.zeros_like(p50), p95 - p50])
            else:
                ax.bar(x + offset, [r["throughput_items_per_s"] for r in rows], 0.4, label=label)
        ax.set_xticks(x, [k.replace("_batch", "\nbatch ") for k in keys])
        ax.set_ylabel("ms per call (bar p50, whisker p95)" if metric == "latency" else "items/s")
        ax.set_yscale("log")
        ax.legend()
    cpus = report["machine"]["cpus"]
    fig.suptitle(
        f"sharpseek serving on {cpus} shared CPU cores, one client, 1 torch thread "
        f"(generator = images + physical parameters)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serving.json"))
    parser.add_argument("--home", type=Path, help="a home with trained checkpoints")
    parser.add_argument("--repeats1", type=int, default=40, help="timed requests at batch 1")
    parser.add_argument("--repeats32", type=int, default=12, help="timed requests at batch 32")
    parser.add_argument(
        "--figures", type=Path, help="also draw serving-latency.png and serving-generated.png here"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    tmp = tempfile.TemporaryDirectory(prefix="bench-serving-")
    home = args.home or Path(tmp.name) / "home"
    inference, management, metrics, *grpc = _ports(5)
    settings = Settings(
        home=home,
        serve={
            "grpc_ports": tuple(grpc),
            "inference_url": f"http://127.0.0.1:{inference}",
            "management_url": f"http://127.0.0.1:{management}",
            "metrics_url": f"http://127.0.0.1:{metrics}",
            "threads_per_worker": 1,
            "model_store": Path(tmp.name) / "model-store",
        },
    )
    if args.home is None:
        from model_fixtures import write_untrained_checkpoints

        write_untrained_checkpoints(settings)
    repeats = {1: args.repeats1, 32: args.repeats32}
    load_before = os.getloadavg()
    print("in-process")
    results = {"inprocess": bench(InProcessBackend(settings), repeats)}
    model_archives.build_archives(settings, upload=False)
    started = time.perf_counter()
    serving.start(settings)
    startup = time.perf_counter() - started
    try:
        print(f"TorchServe (ready after {startup:.1f} s)")
        with TorchServeBackend(settings) as client:
            results["torchserve"] = bench(client, repeats)
            if args.figures:
                served_figure(client, args.figures / "serving-generated.png")
    finally:
        serving.stop(settings)
    ratios = {
        key: round(results["torchserve"][key]["p50_ms"] / results["inprocess"][key]["p50_ms"], 2)
        for key in results["inprocess"]
    }
    report = {
        "benchmark": "serving",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sharpseek": __version__,
        "torch": torch.__version__,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "models": "trained, " + str(args.home) if args.home else "tiny architecture, untrained",
        "settings": {
            "batch_size": settings.serve.batch_size,
            "max_batch_delay_ms": settings.serve.max_batch_delay_ms,
            "workers": settings.serve.workers,
            "torch_threads": 1,
        },
        "torchserve_startup_s": round(startup, 1),
        "results": results,
        "p50_ratio_torchserve_over_inprocess": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(ratios, indent=1))
    if args.figures:
        latency_figure(report, args.figures / "serving-latency.png")
    tmp.cleanup()


if __name__ == "__main__":
    main()
