"""Small pictures the UI draws from data: the filter histograms over the indexed records."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["range_histogram_png"]


def range_histogram_png(
    values: np.ndarray,
    low: float,
    high: float,
    *,
    label: str,
    bins: int = 40,
    size: tuple[float, float] = (5.0, 1.2),
) -> bytes:
    """A PNG histogram of ``values`` (non-finite ones left out) with the bins that overlap
    the closed range [low, high] in red and the others grey, the range edges as lines.

    ``label`` names the quantity and its unit (the x axis). Drawn with matplotlib (Agg).
    """
    matplotlib.use("Agg")

    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    counts, edges = np.histogram(finite, bins=bins)
    inside = (edges[1:] >= low) & (edges[:-1] <= high)
    fig, ax = plt.subplots(figsize=size, dpi=100)
    try:
        ax.bar(
            edges[:-1],
            counts,
            width=np.diff(edges),
            align="edge",
            color=np.where(inside, "#c8102e", "#bbbbbb"),
            edgecolor="white",
            linewidth=0.3,
        )
        for edge in (low, high):
            ax.axvline(edge, color="#222222", linewidth=0.8)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("records", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout(pad=0.2)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()
