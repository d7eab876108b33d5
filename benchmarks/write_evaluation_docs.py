"""Write the figures of benchmarks/results/evaluation.json into the docs (issue 16).

    .venv/bin/python benchmarks/write_evaluation_docs.py [--check]

Each doc holds marked sections, ``<!-- BEGIN evaluation.json: NAME -->`` ...
``<!-- END evaluation.json: NAME -->``; everything between the markers is rewritten from the
committed file, nothing outside them is touched. ``--check`` exits 1 when a doc differs from
what the file gives (the docs are stale). No figure in these sections is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

PARAMS = ("tuf", "tpf", "tnf", "psep", "r", "sigma", "alpha", "grad")
RETRIEVAL_PARAMS = ("tuf", "r", "psep", "tpf", "tnf", "sigma", "alpha", "grad")
METHODS = {
    "simsiam": "SimSiam",
    "euclidean": "(TUF, R, PSEP) Euclidean",
    "mahalanobis": "(TUF, R, PSEP) Mahalanobis",
    "pca": "PCA of the pixels",
}


def _imbalance(m: dict) -> str:
    """Median |TPF - TNF| / (TPF + TNF), generated / real ("-" in reports from before it)."""
    if m.get("flux_imbalance_generated") is None:
        return "-"
    return f"{m['flux_imbalance_generated']:.2f} / {m['flux_imbalance_real']:.2f}"


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _blocks(data: dict) -> str:
    return " and ".join(f"{a}..{b}" for a, b in (e["seeds"] for e in data["blocks"].values()))


def _source(report: dict, name: str) -> list[str]:
    return [
        f"Command: `SHARPSEEK_HOME=<demo home> {report['environment'].split(' ', 1)[1]} "
        f"{report['commands'][name]}` ({report['seconds'][name]:.0f} s), gathered by "
        "`benchmarks/bench_evaluation.py` on "
        f"{report['date'][:10]} ({report['machine']['cpus']} CPUs, load "
        f"{report['machine']['load_average'][0]:.1f}); figures from "
        "`benchmarks/results/evaluation.json`.",
        "",
    ]


def section_models(report: dict) -> str:
    gan = report["models"]["gan"]
    enc = report["models"].get("encoder", {})
    lines = _source(report, "models")
    lines += [
        f"GAN `{gan['checkpoint']}` (epoch {gan['epoch']}), dataset `{gan['dataset']}`: "
        f"{gan['n_generated']:,} generated images per seed block against the "
        f"{gan['n_train']:,} frames of the regions it trained on (train) and the "
        f"{gan['n_held_out']:,} frames of the {gan['held_out_regions']} regions it held out "
        "(held out).",
        "",
        "KS statistic (W1 / std of the real values) per parameter, 0 = identical:",
        "",
        "| seeds | against | " + " | ".join(p.upper() for p in PARAMS) + " | mean |",
        "|---|---|" + "---|" * (len(PARAMS) + 1),
    ]
    for block in gan["blocks"].values():
        for side in ("train", "held_out"):
            m = block[side]
            cells = [f"{_f(m[f'ks_{p}'])} ({_f(m[f'w1_{p}'])})" for p in PARAMS]
            lines.append(
                f"| {block['seeds'][0]}.. | {side.replace('_', ' ')} | "
                + " | ".join(cells)
                + f" | {_f(m['ks_mean'])} ({_f(m['w1_mean'])}) |"
            )
    lines += [
        "",
        "| seeds | against | median PSEP ratio | bipolar: generated / real | median flux "
        "imbalance: generated / real | spectral share beyond r = 32: generated / real (ratio) "
        "| Frechet (SimSiam) |",
        "|---|---|---|---|---|---|---|",
    ]
    for block in gan["blocks"].values():
        for side in ("train", "held_out"):
            m = block[side]
            lines.append(
                f"| {block['seeds'][0]}.. | {side.replace('_', ' ')} | "
                f"{_f(m['psep_median_ratio'])} | {m['bipolar_share_generated']:.1%} / "
                f"{m['bipolar_share_real']:.1%} | {_imbalance(m)} | "
                f"{m['spectral_high_share_generated']:.2e} / "
                f"{m['spectral_high_share_real']:.2e} ({_f(m['spectral_high_ratio'])}) | "
                f"{_f(m.get('frechet_simsiam'), 1)} |"
            )
    lines += [
        "",
        "Memorisation: median distance to the nearest training frame, of the generated "
        "images and of the held-out frames (ratio < 1: generated images sit nearer the "
        "training frames than unseen real regions do):",
        "",
        "| seeds | space | generated | held-out frames | ratio |",
        "|---|---|---|---|---|",
    ]
    for block in gan["blocks"].values():
        for space, m in block["memorisation"].items():
            lines.append(
                f"| {block['seeds'][0]}.. | {space} | {_f(m['generated_median'])} | "
                f"{_f(m['held_out_median'])} | {_f(m['ratio'])} |"
            )
    if enc:
        lines += [
            "",
            f"Encoder `{enc['checkpoint']}` (epoch {enc['epoch']}, trained with "
            f"`{enc['augmentations']}` augmentations), same-region retrieval on its "
            f"{enc['n_frames']:,} held-out frames of {enc['n_regions']} regions (the share of a "
            "frame's 10 nearest that are its own region within 24 h; no seeds involved):",
            "",
            "| encoder | PCA of the pixels | physics (8 parameters) | augmentation robustness |",
            "|---|---|---|---|",
            f"| {_f(enc['retrieval_encoder'], 3)} | {_f(enc['retrieval_pca'], 3)} | "
            f"{_f(enc['retrieval_physics'], 3)} | {_f(enc['augmentation_robustness'], 3)} |",
        ]
    return "\n".join(lines)


def section_directions(report: dict) -> str:
    d = report["directions"]
    names = d["parameters"]
    lines = _source(report, "directions")
    lines += [
        f"GAN `{d['gan']}`, directions `{d['directions']}`; shift eps = {d['eps']:+g} "
        f"({d.get('method', 'latent units')}). Interquartile ranges of the dataset: "
        + ", ".join(f"{n.upper()} {d['iqr'][n]:.4g}" for n in names)
        + ".",
        "",
        "| seeds (selected) | direction | mode | rises | median relative change | "
        + " | ".join(f"{n.upper()} median change / IQR" for n in names)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(names),
    ]
    for block in d["blocks"].values():
        for name in names:
            if name not in block:
                continue
            for mode in ("alone", "held"):
                e = block[name][mode]
                cells = [
                    "(shifted)" if o == name else _f(e[f"{o}_median_change_iqr"]) for o in names
                ]
                lines.append(
                    f"| {block['seeds'][0]}.. ({block['selected']}) | {name.upper()} | {mode} | "
                    f"{e['rises']:.0%} | {e['median_relative_change']:+.1%} | "
                    + " | ".join(cells)
                    + " |"
                )
    return "\n".join(lines)


def section_retrieval(report: dict) -> str:
    r = report["retrieval"]
    meta = r["meta"]
    lines = _source(report, "retrieval")
    lines += [
        f"Dataset `{meta['dataset']}` ({meta['data_kind']}: {meta['real_frames']:,} frames of "
        f"{meta['real_regions']} regions), {meta['queries']:,} queries per seed block from "
        f"`{meta['generator']}`, embeddings by `{meta['encoder']}`.",
        "",
    ]
    paper = r["paper"]
    for block in r["blocks"].values():
        corr = {(c["method"], c["parameter"]): c for c in block["correlations"]}
        lines += [
            f"**Seeds {block['seeds'][0]}..{block['seeds'][1]}**: Pearson [bootstrap 95 % "
            "interval], Spearman below",
            "",
            "| method | " + " | ".join(p.upper() for p in RETRIEVAL_PARAMS) + " |",
            "|---|" + "---|" * len(RETRIEVAL_PARAMS),
            "| paper: SimSiam, real SHARPs | "
            + " | ".join(
                f"{paper[p]['pearson']:.2f} ({paper[p]['spearman']:.2f})" for p in RETRIEVAL_PARAMS
            )
            + " |",
        ]
        for method in ("simsiam", "euclidean", "mahalanobis"):
            for kind in ("pearson", "spearman"):
                cells = []
                for p in RETRIEVAL_PARAMS:
                    c = corr[(method, p)]
                    cells.append(
                        f"{_f(c[kind])} [{_f(c.get(f'{kind}_lo'))}, {_f(c.get(f'{kind}_hi'))}]"
                    )
                lines.append(f"| {METHODS[method]}, {kind} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| method | distinct nearest frames | top-5 share | 10-occurrence skewness | "
            "max N_10 | frames in no top 10 |",
            "|---|---|---|---|---|---|",
        ]
        for method in ("simsiam", "euclidean", "mahalanobis"):
            h = block["hubness"][method]
            lines.append(
                f"| {METHODS[method]} | {h['distinct_nearest']:,} of {h['n_base']:,} | "
                f"{h['top5_share']:.1%} | {h['k_occurrence_skewness']:.2f} | "
                f"{h['max_k_occurrence']} | {h['zero_k_occurrence_share']:.1%} |"
            )
        lines.append("")
    held = r.get("same_region_held_out") or {}
    lines += [
        "Same-region retrieval (share of a frame's 10 nearest that are its own region within "
        "24 h; no seeds involved):",
        "",
        "| method | all frames (most trained the encoder) | held-out regions only |",
        "|---|---|---|",
    ]
    for method, label in METHODS.items():
        all_frames = r["same_region"].get(method)
        lines.append(f"| {label} | {_f(all_frames, 3)} | {_f(held.get(method), 3)} |")
    if held:
        lines += [
            "",
            f"Held out: {held['frames']:,} frames of {held['regions']} regions; PCA fitted on "
            f"{held['pca_fit_frames']:,} frames of the other regions.",
        ]
    return "\n".join(lines)


SECTIONS = {
    "models": section_models,
    "directions": section_directions,
    "retrieval": section_retrieval,
}
PATTERN = re.compile(
    r"(<!-- BEGIN evaluation\.json: (\w+) -->\n)(.*?)(<!-- END evaluation\.json: \2 -->)",
    re.DOTALL,
)


def render(text: str, report: dict) -> str:
    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; known: {', '.join(SECTIONS)}")
        return f"{match.group(1)}{SECTIONS[name](report)}\n{match.group(4)}"

    return PATTERN.sub(fill, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/evaluation.json"))
    parser.add_argument(
        "--docs",
        type=Path,
        nargs="+",
        default=[Path("docs/evaluation.md"), Path("docs/training.md")],
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a doc is stale")
    args = parser.parse_args()
    report = json.loads(args.results.read_text())
    stale = []
    for doc in args.docs:
        text = doc.read_text()
        if not PATTERN.search(text):
            raise SystemExit(f"{doc}: no <!-- BEGIN evaluation.json: NAME --> section")
        new = render(text, report)
        if new != text:
            stale.append(str(doc))
            if not args.check:
                doc.write_text(new)
                print(f"wrote {doc}")
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run benchmarks/write_evaluation_docs.py")
        sys.exit(1)


if __name__ == "__main__":
    main()
