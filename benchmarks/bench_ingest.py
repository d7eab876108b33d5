"""Ingestion and dataset-reading throughput.

Writes N synthetic SHARP-like Br FITS files (Rice-compressed, as JSOC exports them), then:

- times ``sharpseek ingest fits``'s road end to end (``pipeline.plan_ingest_fits`` ->
  shards -> commit in one process; patches/s from local FITS to a dataset);
- splits that time by stage, each stage timed alone on the same files: FITS reading and
  decompression, resizing to model space, physical units at original resolution, the batched
  model-space physics, and the dataset writes;
- times ``PatchDataset`` reading (one core, local store; and from a moto S3 server as an
  illustration only — moto is not MinIO);
- reports the storage per 10,000 patches.

Usage: python benchmarks/bench_ingest.py [--n 600] [--out benchmarks/results/ingest.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import astropy.units as u
import numpy as np
import torch
from astropy.io import fits

from sharpseek.config import Settings
from sharpseek.data.dataset import PatchDataset, PatchRecord, load_dataset
from sharpseek.data.dataset_writer import append_records
from sharpseek.data.fits import read_sharp
from sharpseek.data.ingest_fits import fits_records
from sharpseek.data.local_store import LocalStore
from sharpseek.data.preprocess import to_model_space
from sharpseek.data.s3_store import S3Store
from sharpseek.physics.native import patch_quantities
from sharpseek.physics.parameters import compute_parameters
from sharpseek.pipeline.ingest_plans import plan_ingest_fits, run_ingest_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_servers import start_moto  # noqa: E402  (the tests' real S3 server process)
from sharpseek.data.synthetic import generate_frames


def write_fits_files(folder: Path, n: int) -> list[Path]:
    paths = []
    frames = generate_frames(regions=max(1, n // 6), frames=6, seed=7)
    for i, frame in zip(range(n), frames, strict=False):
        m = frame.meta
        name = f"hmi.sharp_cea_720s.{m['harpnum']}.{m['t_rec']:%Y%m%d_%H%M%S}_TAI.Br.fits"
        hdu = fits.CompImageHDU(frame.br, compression_type="RICE_1")
        for key, field in (
            ("HARPNUM", "harpnum"),
            ("CDELT1", "cdelt1"),
            ("LAT_FWT", "lat_fwt"),
            ("LON_FWT", "lon_fwt"),
            ("CRLT_OBS", "crlt_obs"),
            ("RSUN_REF", "rsun_ref"),
        ):
            hdu.header[key] = m[field]
        hdu.header["T_REC"] = f"{m['t_rec']:%Y.%m.%d_%H:%M:%S}_TAI"
        hdu.header["BUNIT"] = "Mx/cm^2"
        hdu.header["QUALITY"] = 0
        path = folder / name
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
        paths.append(path)
        if i + 1 >= n:
            break
    return paths


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="FITS files to ingest")
    parser.add_argument("--read-n", type=int, default=20000, help="patches read for the read rate")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ingest.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "fits").mkdir()
        paths = write_fits_files(tmp / "fits", args.n)
        n = len(paths)
        fits_bytes = sum(p.stat().st_size for p in paths)

        settings = Settings(home=tmp / "home", flows={"ingest_shard_size": n})  # one shard
        outcome, total = timed(
            lambda: run_ingest_plan(
                settings, plan_ingest_fits(settings, [tmp / "fits"]), progress=False
            )  # fmt: skip
        )
        added = outcome.outputs["added"]
        assert added == n, (added, outcome.outputs["quarantined"][:3])

        # stages, each alone on the same files
        sharps, t_read = timed(lambda: [read_sharp(p) for p in paths])
        patches, t_resize = timed(lambda: [to_model_space(s.data) for s in sharps])
        _, t_units = timed(
            lambda: [patch_quantities(s.data * u.G, pixel_scale=0.03 * u.deg) for s in sharps]
        )
        images = np.stack([p.image for p in patches])
        compute_parameters(images[:64])  # warm-up: thread pool and scratch buffers
        _, t_physics = timed(compute_parameters, images)
        records = list(fits_records(paths))
        _, t_write = timed(
            append_records, LocalStore(tmp / "writes"), "bench", records, provenance={}
        )

        ds = load_dataset(LocalStore(settings.home), "sharp")
        stored = sum(o.size for o in LocalStore(settings.home).list("datasets/sharp/") if o.size)
        per_10k_mb = stored / len(ds) * 10_000 / 1e6

        # read rate: a dataset big enough to measure (the same patches repeated in shards)
        reps = max(1, args.read_n // n)
        big = [  # distinct records (new HARP numbers) with the same images
            PatchRecord(
                r.image, {**r.meta, "harpnum": int(r.meta["harpnum"]) + 100_000 * rep}, r.columns
            )
            for rep in range(reps)
            for r in records
        ]
        big_ds = append_records(LocalStore(tmp / "read"), "read", big, provenance={}).dataset
        loader = PatchDataset(big_ds)
        start = time.perf_counter()
        for i in range(len(loader)):
            loader[i]
        read_rate = len(loader) / (time.perf_counter() - start)

        # the same from an S3 server process (moto, in memory) — an illustration only
        server = start_moto(tmp / "moto-logs")
        try:
            s3 = S3Store(server.endpoint, "bench", "bench", "bench", secure=False)
            s3_ds = append_records(s3, "read", big, provenance={}).dataset
            s3_loader = PatchDataset(s3_ds)
            start = time.perf_counter()
            for i in range(len(s3_loader)):
                s3_loader[i]
            s3_read_rate = len(s3_loader) / (time.perf_counter() - start)
        finally:
            server.stop()

    stage_total = t_read + t_resize + t_units + t_physics + t_write
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_files": n,
        "fits_mb": fits_bytes / 1e6,
        "ingest_patches_per_s": n / total,
        "ingest_seconds": total,
        "stages_seconds": {
            "fits_read_and_decompress": t_read,
            "resize_to_model_space": t_resize,
            "physical_units_original_resolution": t_units,
            "model_space_physics": t_physics,
            "dataset_writes": t_write,
        },
        "stages_share": {
            "fits_read_and_decompress": t_read / stage_total,
            "resize_to_model_space": t_resize / stage_total,
            "physical_units_original_resolution": t_units / stage_total,
            "model_space_physics": t_physics / stage_total,
            "dataset_writes": t_write / stage_total,
        },
        "read_patches_per_s_one_core_local": read_rate,
        "read_n": len(loader),
        "read_patches_per_s_one_core_s3_moto_illustration": s3_read_rate,
        "storage_mb_per_10k_patches": per_10k_mb,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"ingest from local FITS: {n / total:.0f} patches/s ({n} files, {total:.1f} s)")
    for stage, seconds in results["stages_seconds"].items():
        print(f"  {stage:<38} {seconds:6.2f} s  ({results['stages_share'][stage]:.0%})")
    print(f"dataset read (PatchDataset, local, 1 core): {read_rate:.0f} patches/s")
    print(f"dataset read from moto S3 (illustration only): {s3_read_rate:.0f} patches/s")
    print(f"storage: {per_10k_mb:.0f} MB per 10,000 patches   -> {args.out}")


if __name__ == "__main__":
    main()
