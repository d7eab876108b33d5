"""Draw the network flows the chart's NetworkPolicies allow (docs/images/deploy-network.png).

Renders charts/sharpseek with helm (deploy/helm.py), reads every NetworkPolicy and draws
one arrow per allowed (source, destination) pair with its ports. Nothing is typed in by
hand: a flow appears only if the rendered policies allow it.

    python deploy/plot_network.py --values charts/sharpseek/values-production.yaml \
        --out docs/images/deploy-network.png
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
import helm as helm_tool  # noqa: E402

# Where each component sits in the picture (x, y); CIDR destinations go by their values.
LAYOUT = {
    "ingress-controller": (-0.3, 3.0),
    "frontend": (1.5, 3.0),
    "torchserve": (4.0, 3.0),
    "qdrant": (4.0, 1.5),
    "minio": (6.5, 2.2),
    "minio-setup": (8.5, 3.2),
    "prefect-worker": (1.5, 0.5),
    "flow-run": (1.5, -0.8),
    "prefect-server": (4.0, -0.3),
    "postgresql": (6.5, -0.3),
    "jsoc": (-0.5, -0.2),
    "kube-api": (-0.5, 1.2),
}
APP = {"frontend", "torchserve", "qdrant", "minio", "prefect-worker", "flow-run"}
APP |= {"prefect-server", "postgresql", "jsoc"}


def allowed_flows(docs: list[dict], values: dict) -> dict[tuple[str, str], set[int]]:
    """(source, destination) -> ports, from egress rules (ingress rules mirror them)."""
    names = {c: "jsoc" for c in values["networkPolicy"]["jsocCidrs"]}
    names |= {c: "kube-api" for c in values["networkPolicy"]["kubeApiCidrs"]}
    flows: dict[tuple[str, str], set[int]] = defaultdict(set)
    for p in docs:
        if p.get("kind") != "NetworkPolicy":
            continue
        spec = p["spec"]
        own = spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
        for rule in spec.get("egress", []):
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    dst = names.get(peer["ipBlock"]["cidr"], peer["ipBlock"]["cidr"])
                else:
                    dst = peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
                if dst is None:  # DNS
                    continue
                flows[(own, dst)] |= {pt["port"] for pt in rule["ports"]}
        for rule in spec.get("ingress", []):
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    flows[("ingress-controller", own)] |= {pt["port"] for pt in rule["ports"]}
    return flows


def draw(flows: dict[tuple[str, str], set[int]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.6))
    for name, (x, y) in LAYOUT.items():
        external = name in ("jsoc", "kube-api", "ingress-controller")
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=10,
            bbox={
                "boxstyle": "round,pad=0.4",
                "fc": "#f2f2f2" if external else "#dbe9f6",
                "ec": "#888888" if external else "#2b6cb0",
            },
            zorder=3,
        )
    for (src, dst), ports in sorted(flows.items()):
        if src not in LAYOUT or dst not in LAYOUT:
            continue
        (x0, y0), (x1, y1) = LAYOUT[src], LAYOUT[dst]
        app = src in APP and dst in APP and src != dst
        style = (
            {"color": "#2b6cb0", "lw": 1.6} if app else {"color": "#999999", "lw": 1.2, "ls": "--"}
        )
        if src == dst:  # peers of a replicated StatefulSet
            ax.annotate(
                "",
                xy=(x0 + 0.35, y0 + 0.25),
                xytext=(x0 - 0.35, y0 + 0.25),
                arrowprops={"arrowstyle": "->", "connectionstyle": "arc3,rad=-1.2", **style},
            )
            ax.text(
                x0,
                y0 + 0.75,
                "/".join(map(str, sorted(ports))),
                ha="center",
                fontsize=8,
                color=style["color"],
            )
            continue
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "->",
                "shrinkA": 28,
                "shrinkB": 28,
                "connectionstyle": "arc3,rad=0.06",
                **style,
            },
        )
        ax.text(
            x0 + 0.7 * (x1 - x0),
            y0 + 0.7 * (y1 - y0) + 0.08,
            "/".join(map(str, sorted(ports))),
            fontsize=8,
            color=style["color"],
            ha="center",
            bbox={"fc": "white", "ec": "none", "pad": 0.5},
            zorder=2,
        )
    ax.set_xlim(-1.4, 9.4)
    ax.set_ylim(-1.4, 4.2)
    ax.axis("off")
    ax.set_title(
        "sharpseek on Kubernetes: flows the NetworkPolicies allow (TCP ports); all else denied",
        fontsize=11,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=Path, default=None, help="a values file")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/images/deploy-network.png")
    args = parser.parse_args(argv)
    chart = ROOT / "charts" / "sharpseek"
    cmd = [str(helm_tool.helm_path()), "template", "rel", str(chart)]
    values = yaml.safe_load((chart / "values.yaml").read_text())
    if args.values:
        cmd += ["-f", str(args.values)]
    rendered = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    draw(allowed_flows(docs, values), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
