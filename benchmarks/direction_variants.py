"""Direction methods compared on one home (issue 17): each variant fitted and evaluated as a
user would, its targets checked, one figure and one JSON.

    .venv/bin/python benchmarks/direction_variants.py --home <demo home> \\
        --out benchmarks/results/direction_variants.json \\
        --figure docs/images/directions-variants.png

For each variant (a ``directions`` settings override: ``fit``, ``step``, ``--n``) the home is
copied to a temporary folder (the home itself is never written), then
``sharpseek directions fit`` and ``sharpseek evaluate directions --dataset synthetic`` run
with ``SHARPSEEK_DIRECTIONS__*`` set, on both seed blocks. The figure shows, per variant, how
often each of TUF, PSEP, R rises at +1.5 alone and held, its median relative change, and how
far the held ones move (median |change| / IQR); ``benchmarks/direction_targets.py`` names the
misses of each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from direction_targets import HELD_MAX_IQR, direction_misses, direction_rows

#: name -> (directions settings, extra `directions fit` options)
VARIANTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "svm-latent (paper)": ({"fit": "svm", "step": "latent"}, []),
    "svm-sigma": ({"fit": "svm", "step": "sigma"}, []),
    "ridge-latent": ({"fit": "ridge", "step": "latent"}, []),
    "ridge-sigma": ({"fit": "ridge", "step": "sigma"}, []),
    "ridge-sigma N=10k": ({"fit": "ridge", "step": "sigma"}, ["--n", "10000"]),
    "ridge-spread": ({"fit": "ridge", "step": "spread"}, []),
}


def run_variant(home: Path, name: str, scratch: Path) -> dict:
    """Fit and evaluate one variant on a copy of ``home``; the report with its commands."""
    settings, options = VARIANTS[name]
    copy = scratch / "home"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("prefect", "serve"))
    env = dict(os.environ, SHARPSEEK_HOME=str(copy), OMP_NUM_THREADS="1")
    env.update({f"SHARPSEEK_DIRECTIONS__{k.upper()}": v for k, v in settings.items()})
    exe = str(Path(sys.executable).with_name("sharpseek"))
    report = scratch / "directions.json"
    commands = [
        ["directions", "fit", "--no-progress", *options],
        ["evaluate", "directions", "--dataset", "synthetic", "--out", str(report)],
    ]
    t0 = time.perf_counter()
    for argv in commands:
        done = subprocess.run([exe, *argv], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"{name}: `sharpseek {' '.join(argv)}` exited {done.returncode}")
    prefix = " ".join(f"SHARPSEEK_DIRECTIONS__{k.upper()}={v}" for k, v in settings.items())
    return {
        "settings": settings,
        "commands": [
            f"{prefix} sharpseek {' '.join(a)}".replace(str(report), "<out>") for a in commands
        ],
        "seconds": round(time.perf_counter() - t0, 1),
        "report": json.loads(report.read_text()),
    }


def variants_table(results: dict[str, dict]) -> str:
    """Markdown, one row per (variant, seed block); a cell per (direction, mode): share of
    seeds where it rises / median relative change / the largest median |change| / IQR of
    the other two; a missed target in bold."""
    cells = [(p, m) for p in ("tuf", "psep", "r") for m in ("alone", "held")]
    lines = [
        "| variant | seeds | " + " | ".join(f"{p.upper()} {m}" for p, m in cells) + " |",
        "|---|---|" + "---|" * len(cells),
    ]
    for name, result in results.items():
        rows = direction_rows(result["report"])
        for block in dict.fromkeys(r["block"] for r in rows):
            get = {(r["direction"], r["mode"]): r for r in rows if r["block"] == block}
            out = []
            for key in cells:
                r = get[key]
                moved = max(m for _, m in r["others"].values())
                text = f"{r['rises']:.0%} / {r['median_relative_change']:+.0%} / {moved:.2f}"
                out.append(f"**{text}**" if r["misses"] else text)
            lines.append(f"| {name} | {block} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def plot(results: dict[str, dict], path: Path) -> None:
    """Per variant and seed block: rises, median change, held movement of TUF, PSEP, R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results)
    params = ["tuf", "psep", "r"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        rows = [r for r in direction_rows(results[name]["report"]) if r["block"].startswith("0..")]
        get = {(r["direction"], r["mode"]): r for r in rows}
        x = np.arange(2 * len(params)) + (i - len(names) / 2 + 0.5) * width
        keys = [(p, m) for p in params for m in ("alone", "held")]
        axes[0].bar(x, [get[k]["rises"] for k in keys], width, label=name)
        axes[1].bar(x, [get[k]["median_relative_change"] for k in keys], width)
        held = [max(moved for _, moved in get[k]["others"].values()) for k in keys]
        axes[2].bar(x, held, width)
    ticks = [f"{p.upper()}\n{m}" for p in params for m in ("alone", "held")]
    for ax, title, line in (
        (axes[0], "share of seeds where it rises", 0.9),
        (axes[1], "median relative change", 0.2),
        (axes[2], "largest other parameter's median |change| / IQR", HELD_MAX_IQR),
    ):
        ax.set_xticks(np.arange(len(ticks)), ticks, fontsize=8)
        ax.axhline(line, color="k", lw=0.8, ls="--")
        ax.set_title(title, fontsize=9)
    for ax in axes[1:]:
        ax.set_yscale("symlog", linthresh=1)
        ax.set_yticks([0, 0.25, 0.5, 1, 2, 4], ["0", "0.25", "0.5", "1", "2", "4"])
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("+1.5 along TUF, PSEP, R on seeds 0..999 (bipolar, R > 0); dashed: targets")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, help="a trained home (only read; required to run)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/direction_variants.json")
    )
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--table",
        type=Path,
        default=None,
        help="print the table (and draw --figure) of an earlier --out and stop",
    )
    args = parser.parse_args()
    if args.table is not None:
        results = json.loads(args.table.read_text())["variants"]
        if args.figure is not None:
            plot(results, args.figure)
        print(variants_table(results))
        return
    if args.home is None:
        parser.error("--home is required to run the variants")
    results = {}
    with tempfile.TemporaryDirectory(prefix="sharpseek-directions-") as scratch:
        for name in args.variants:
            results[name] = run_variant(args.home, name, Path(scratch))
            misses = direction_misses(results[name]["report"])
            results[name]["misses"] = misses
            print(f"{name}: {results[name]['seconds']} s, {len(misses)} miss(es)", flush=True)
            for miss in misses:
                print(f"  {miss}", flush=True)
    out = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "variants": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")
    if args.figure is not None:
        plot(results, args.figure)
        print(f"figure {args.figure}")
    print(variants_table(results))


if __name__ == "__main__":
    main()
