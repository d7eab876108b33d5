"""Training and inference throughput (images/s) of the GAN and the SimSiam encoder, at the
``tiny`` and ``paper`` sizes, on this machine's CPU (or a GPU with ``--device cuda``).

Run from the repository root::

    .venv/bin/python benchmarks/bench_models.py --out benchmarks/results/models.json
    .venv/bin/python benchmarks/bench_models.py --device cuda --precision bf16   # GPU nodes

What one "training image" is:

- GAN: one real image in a step of the paper's loop (G forward, D on real + detached fake,
  Adam step on D, D on fake, Adam step on G), batch 32 at both sizes.
- Encoder: one image turned into two augmented views (batched affine augmentation included)
  through the SimSiam forward, loss, backward and SGD step; batch 64 (tiny) and 16 (paper,
  to keep the CPU run short; the rate per image barely depends on the batch on a CPU).

Inference: the generator producing images from z (GAN) and ``SimSiam.encode`` (encoder),
batch 256 (tiny) / 64 (paper). Each measurement is warmed up with one step, then timed over
``--steps`` steps (best of those), with 2 torch threads and then 1 (``--threads``): on a
2-core machine shared with other jobs, one thread is often the faster. The whole run takes
one to two minutes on 2 CPU cores. The load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import torch

from sharpseek import __version__
from sharpseek.models import (
    Discriminator,
    Generator,
    SimSiam,
    augment,
    augmentation_set,
    discriminator_loss,
    gan_config,
    generator_loss,
    simsiam_config,
)

TRAIN_BATCH = {"gan": {"tiny": 32, "paper": 32}, "encoder": {"tiny": 64, "paper": 16}}
INFER_BATCH = {"tiny": 256, "paper": 64}


def _timed(step, steps: int, device) -> float:
    """Best seconds of one call of ``step`` over ``steps`` calls, after one warm-up."""
    step()
    best = float("inf")
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def _autocast(device, precision):
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def bench_gan(size: str, device, steps: int, precision: str) -> dict:
    cfg = gan_config(size)
    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 5e-4, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 5e-4, betas=(0.9, 0.999))
    b = TRAIN_BATCH["gan"][size]
    real = torch.rand(b, 1, 128, 128, device=device) * 2 - 1

    def train_step():
        z = torch.randn(b, cfg.latent_dim, device=device)
        with _autocast(device, precision):
            fake = G(z)
            logits = D(torch.cat([real, fake.detach()]))
            loss_d = discriminator_loss(logits[:b], logits[b:])
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        with _autocast(device, precision):
            loss_g = generator_loss(D(fake))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    n = INFER_BATCH[size]
    z = torch.randn(n, cfg.latent_dim, device=device)

    @torch.no_grad()
    def infer_step():
        with _autocast(device, precision):
            G(z)

    t_train, t_infer = _timed(train_step, steps, device), _timed(infer_step, steps, device)
    return {
        "params_g": sum(p.numel() for p in G.parameters()),
        "params_d": sum(p.numel() for p in D.parameters()),
        "train_batch": b,
        "train_images_per_s": b / t_train,
        "infer_batch": n,
        "infer_images_per_s": n / t_infer,
    }


def bench_encoder(size: str, device, steps: int, precision: str) -> dict:
    model = SimSiam(simsiam_config(size)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.0125, momentum=0.9, weight_decay=1e-4)
    aug = augmentation_set("paper")
    gen = torch.Generator().manual_seed(0)
    b = TRAIN_BATCH["encoder"][size]
    x = torch.rand(b, 1, 128, 128, device=device) * 2 - 1

    def train_step():
        v1, v2 = augment(x, aug, gen), augment(x, aug, gen)
        with _autocast(device, precision):
            loss = model(v1, v2).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    n = INFER_BATCH[size]
    xi = torch.rand(n, 1, 128, 128, device=device)

    def infer_step():
        with _autocast(device, precision):
            model.encode(xi, batch_size=n)

    t_train, t_infer = _timed(train_step, steps, device), _timed(infer_step, steps, device)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "train_batch": b,
        "train_images_per_s": b / t_train,
        "infer_batch": n,
        "infer_images_per_s": n / t_infer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--sizes", default="tiny,paper")
    parser.add_argument(
        "--threads",
        default=f"{torch.get_num_threads()},1",
        help="torch thread counts to measure, comma-separated (one run each)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/models.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        },
        "versions": {"sharpseek": __version__, "torch": torch.__version__},
        "date": dt.date.today().isoformat(),
        "precision": args.precision,
        "load_average_before": os.getloadavg(),
        "steps": args.steps,
        "runs": [],
    }
    start = time.perf_counter()
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        run: dict = {"torch_threads": threads, "gan": {}, "encoder": {}}
        for size in args.sizes.split(","):
            run["gan"][size] = bench_gan(size, device, args.steps, args.precision)
            run["encoder"][size] = bench_encoder(size, device, args.steps, args.precision)
        results["runs"].append(run)
    results["seconds"] = time.perf_counter() - start
    results["load_average_after"] = os.getloadavg()

    print(f"{'threads':<8} {'model':<8} {'size':<6} {'train img/s':>12} {'infer img/s':>12}")
    for run in results["runs"]:
        for model in ("gan", "encoder"):
            for size, r in run[model].items():
                print(
                    f"{run['torch_threads']:<8} {model:<8} {size:<6} "
                    f"{r['train_images_per_s']:>12.1f} {r['infer_images_per_s']:>12.1f}"
                )
    print(f"({results['seconds']:.0f} s; load average {results['load_average_after'][0]:.1f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
