"""Flare catalogue: matching figures, coverage of the real frames, and load/update times.

- loads the flare table and the HARP table (``settings.flares``; the shared ones by default)
  into a copy of a demo home (the home itself is never written), timing the read + match +
  store, then the update of the index's flare payloads (``index_plans.update_flare_payloads``;
  the first one in a process includes importing qdrant-client and creating the flare
  fields' payload indexes), then both again with nothing new (the hourly flow's usual case),
  then a newer table (one flare more: a second version, every real frame rewritten);
- counts flares matched by HARPNUM, by NOAA number and unmatched (with the unmatched reasons),
  at the settings' lifetime margin and at a 24 h margin;
- the share of real frames whose windows are known: the demo index's real frames and the
  867 real SHARP headers of ../shared/data/sharp-samples (HARPNUM, T_REC);
- the time of ``flares.flare_windows`` over 100,000 frames (vectorised).

Usage: python benchmarks/bench_flares.py --home /work/demo-home-fresh
       [--out benchmarks/results/flares.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from sharpseek.config import get_settings
from sharpseek.data import flare_tables as FT
from sharpseek.data import flare_windows as FW
from sharpseek.data import flares as F
from sharpseek.pipeline import flare_steps, index_plans


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, round(time.perf_counter() - started, 3)


def known_shares(summary: pd.DataFrame, windows) -> dict[str, float]:
    return {
        w.name: round(float((summary[f"{w.name}_status"] == "known").mean()), 4) for w in windows
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="demo home (copied, not written)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/flares.json"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sharpseek-bench-flares-"))
    home = scratch / "home"
    shutil.copytree(args.home, home, symlinks=True)
    for path in [home, *home.rglob("*")]:  # the reference home may be read-only
        path.chmod(path.stat().st_mode | 0o200)
    try:
        settings = get_settings(home=home)
        windows = FW.configured_windows(settings.flares)
        loaded, load_s = timed(lambda: flare_steps.load_flares(settings))
        payloads, update_s = timed(lambda: index_plans.update_flare_payloads(settings))
        again, again_load_s = timed(lambda: flare_steps.load_flares(settings))
        payloads_again, again_update_s = timed(lambda: index_plans.update_flare_payloads(settings))
        # a newer table (one more flare): a second version, every real frame rewritten
        newer = scratch / "newer.csv"
        newer.write_text(
            Path(settings.flares.source).read_text()
            + "190520,1200,1210,,,C,10,1e-06,0,12740,7357\n"
        )
        second, second_load_s = timed(lambda: flare_steps.load_flares(settings, newer))
        payloads_second, second_update_s = timed(
            lambda: index_plans.update_flare_payloads(settings)
        )
        catalogue = loaded.catalogue
        reasons = (
            catalogue.unmatched["reason"]
            .str.replace(r"NOAA \d+", "NOAA n", regex=True)
            .value_counts()
            .to_dict()
        )
        wide = F.match_flares(
            FT.read_flare_table(settings.flares.source),
            catalogue.harps,
            margin=np.timedelta64(24 * 3600, "s"),
        )["matched_by"].value_counts()

        # the real frames: the demo index's, and the 867 real headers
        index = index_plans.open_settings_index(settings)
        try:
            real = [
                r for r in index.scan(["series", "harpnum", "t_rec"]) if r["series"] != "synthetic"
            ]
        finally:
            index.close()
        t_index = pd.to_datetime([str(r["t_rec"]).rstrip("Z") for r in real]).to_numpy("M8[s]")
        index_summary = FW.flare_windows(catalogue, [r["harpnum"] for r in real], t_index, windows)
        headers = pd.read_csv(settings.header_table, usecols=["HARPNUM", "T_REC"])
        t_headers = pd.to_datetime(
            headers["T_REC"].str.replace("_TAI", ""), format="%Y.%m.%d_%H:%M:%S"
        ).to_numpy("M8[s]")
        header_summary = FW.flare_windows(catalogue, headers["HARPNUM"], t_headers, windows)
        by_reason = header_summary["unknown_reason"].replace("", "covered").value_counts()

        rng = np.random.default_rng(0)
        harps = rng.choice(catalogue.harps["harpnum"].to_numpy(), 100_000)
        t_recs = np.datetime64("2010-05-01T00:00:00") + (
            rng.integers(0, 9 * 365 * 120, 100_000) * 720
        ).astype("timedelta64[s]")
        _, vector_s = timed(lambda: FW.flare_windows(catalogue, harps, t_recs, windows))

        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": platform.platform(),
            "command": "python benchmarks/bench_flares.py --home " + str(args.home),
            "catalogue": {
                "source": str(settings.flares.source),
                "version": catalogue.version,
                "coverage_tai": catalogue.info["coverage_tai"],
                "lifetime_margin_hours": settings.flares.lifetime_margin_hours,
                **loaded.counts,
                "unmatched_reasons": reasons,
                "with_24h_margin": {k: int(v) for k, v in wide.items()},
            },
            "seconds": {
                "load (read, match, store)": load_s,
                "update payloads (first)": update_s,
                "load again (unchanged)": again_load_s,
                "update payloads again (nothing to write)": again_update_s,
                "load a newer table (second version)": second_load_s,
                "update payloads for the second version": second_update_s,
                "flare_windows over 100,000 frames": vector_s,
            },
            "payloads": {
                "first": payloads,
                "again": payloads_again,
                "again_created": again.created,
                "second": payloads_second,
                "second_version": second.catalogue.version,
            },
            "real_frames": {
                "demo_index": {"frames": len(real), "known": known_shares(index_summary, windows)},
                "headers_867": {
                    "frames": len(headers),
                    "known": known_shares(header_summary, windows),
                    "harps": sorted(int(h) for h in headers["HARPNUM"].unique()),
                    "by_reason": {k: int(v) for k, v in by_reason.items()},
                },
            },
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
