"""Figures of issue 18 (native-scale physics of real SHARPs), measured, not typed in.

Run from the repository root::

    .venv/bin/python benchmarks/native_figures.py --out benchmarks/results/native.json

Measured:

- tilt error before (model-space ``tilt`` of the squashed 128 x 128 image) and after
  (``tilt_cea`` on the native grid) for analytic bipoles on 600 x 200, 200 x 600 and
  300 x 300 grids, written as JSOC writes a Br segment and read through ``measure_files``
  (the path of ``sharpseek measure``);
- on every real sample in ../shared/data/sharp-samples: ``r_jsoc`` (and its segment) against
  R_VALUE, with the log10 difference, and the fluxes against USFLUX;
- frames/s of the native measurement (``sharpseek.data.native.native_columns``, per frame) beside
  the rate of a whole FITS ingest of the same samples (plan, shards, commit) into a fresh home.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "sharp-samples"
sys.path.insert(0, str(ROOT / "tests"))

from sharpseek.config import Settings  # noqa: E402
from sharpseek.data.fits import read_sharp  # noqa: E402
from sharpseek.data.native import magnetogram_beside, native_columns  # noqa: E402
from sharpseek.pipeline.ingest_plans import plan_ingest_fits, run_ingest_plan  # noqa: E402
from sharpseek.science.measure import measure_files  # noqa: E402
from test_measure_native import ANISOTROPIC, analytic_bipole, write_jsoc_br  # noqa: E402


def tilt_errors() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for (nx, ny), tilt, separation in ANISOTROPIC:
            path = write_jsoc_br(Path(tmp) / f"bipole_{nx}x{ny}.fits",
                                 analytic_bipole(nx, ny, tilt, separation))  # fmt: skip
            (row,) = measure_files([path])
            rows.append({
                "grid": f"{nx}x{ny}", "true_tilt": tilt, "model_tilt": row["tilt"],
                "tilt_cea": row["tilt_cea"], "error_before": row["tilt"] - tilt,
                "error_after": row["tilt_cea"] - tilt,
            })  # fmt: skip
    return rows


def real_samples() -> list[dict]:
    rows = []
    for row in measure_files(sorted(SAMPLES.glob("*.Br.fits"))):
        r_value = row["r_value_jsoc"]
        rows.append({
            "file": row["file"], "segment": row["r_jsoc_segment"], "r_jsoc": row["r_jsoc"],
            "r_value": r_value,
            "log10_difference": None if r_value is None else row["r_jsoc"] - r_value,
            "flux_mx": row["flux_mx"], "flux_strong_mx": row["flux_strong_mx"],
            "usflux": row["usflux_jsoc_mx"],
            "flux_over_usflux": row["flux_mx"] / row["usflux_jsoc_mx"],
            "strong_over_usflux": row["flux_strong_mx"] / row["usflux_jsoc_mx"],
            "tilt_model": row["tilt"], "tilt_cea": row["tilt_cea"],
        })  # fmt: skip
    return rows


def rates(repeats: int) -> dict:
    paths = sorted(SAMPLES.glob("*.Br.fits"))
    frames = [read_sharp(p) for p in paths]
    los = [magnetogram_beside(p, s.data.shape) for p, s in zip(paths, frames, strict=True)]
    start = time.perf_counter()
    for _ in range(repeats):
        for sharp, field in zip(frames, los, strict=True):
            native_columns(sharp.data, {**sharp.meta, "dsun_obs": sharp.header["DSUN_OBS"]},
                           los=field)  # fmt: skip
    native_s = time.perf_counter() - start
    pixels = float(np.mean([s.data.size for s in frames]))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        start = time.perf_counter()
        run_ingest_plan(settings, plan_ingest_fits(settings, [SAMPLES]), progress=False)
        ingest_s = time.perf_counter() - start
    return {
        "native_frames_per_s": repeats * len(frames) / native_s,
        "ingest_frames_per_s": len(frames) / ingest_s,
        "frames": len(frames),
        "mean_pixels_per_frame": pixels,
        "native_repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    result = {
        "machine": f"{platform.machine()}, python {platform.python_version()}",
        "tilt": tilt_errors(),
        "samples": real_samples(),
        "rates": rates(args.repeats),
    }
    print("tilt error on anisotropic grids (deg): before = model space, after = tilt_cea")
    for r in result["tilt"]:
        print(f"  {r['grid']:>8} true {r['true_tilt']:+6.1f}  model {r['model_tilt']:+7.2f} "
              f"(error {r['error_before']:+6.2f})  native {r['tilt_cea']:+7.2f} "
              f"(error {r['error_after']:+6.2f})")  # fmt: skip
    print("real samples: r_jsoc vs R_VALUE, flux vs USFLUX")
    for r in result["samples"]:
        diff = r["log10_difference"]
        print(f"  {r['file']:<52} {r['segment']:<11} r_jsoc {r['r_jsoc']:.3f}  R_VALUE "
              f"{'-' if r['r_value'] is None else format(r['r_value'], '.3f')}  "
              f"diff {'-' if diff is None else format(diff, '+.3f')}  flux/USFLUX "
              f"{r['flux_over_usflux']:.2f} (>100 G: {r['strong_over_usflux']:.2f})")  # fmt: skip
    rr = result["rates"]
    print(f"native measurement {rr['native_frames_per_s']:.1f} frames/s; whole FITS ingest "
          f"{rr['ingest_frames_per_s']:.2f} frames/s ({rr['frames']} frames, "
          f"{rr['mean_pixels_per_frame']:.0f} px each)")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=lambda v: None if
                            isinstance(v, float) and math.isnan(v) else v))  # fmt: skip


if __name__ == "__main__":
    main()
