"""Figure rows of searches: a generated query and its k nearest regions, with their
parameters as titles (benchmarks/space_figure.py and benchmarks/rerank_figure.py)."""

from __future__ import annotations

import numpy as np

from sharpseek.science.plotting import magnetogram_grid
from sharpseek.search.searcher import Searcher


def with_retrieval(settings, **changes):
    """``settings`` with ``changes`` to its ``retrieval`` section."""
    return settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update=changes)})


def seed_row(settings, seed: int, label: str, k: int = 5) -> tuple[list, list[str]]:
    """(images, titles) of the generated query of ``seed`` (titled ``label``) and its ``k``
    nearest regions' best frames, searched with ``settings``."""
    with Searcher(settings) as searcher:
        query = searcher.latent_query(seed)
        p = query.parameters
        images = [query.image]
        titles = [f"{label}\nTUF {p['tuf']:.0f} R {p['r']:.0f} PSEP {p['psep']:.0f}"]
        for _, row in searcher.search(query, k=k).iterrows():
            images.append(searcher.record_image(row["record_id"]))
            titles.append(
                f"HARP {row['harpnum']} d={row['distance']:.2f}\n"
                f"TUF {row['match_tuf']:.0f} R {row['match_r']:.0f} PSEP {row['match_psep']:.0f}"
            )
    return images, titles


def draw_rows(rows: list[tuple[list, list[str]]], out: str, suptitle: str) -> None:
    """The rows of :func:`seed_row` as one magnetogram grid (k + 1 columns) at ``out``."""
    images = [image for row, _ in rows for image in row]
    titles = [title for _, row in rows for title in row]
    magnetogram_grid(np.stack(images), out, titles=titles, ncols=len(rows[0][0]), suptitle=suptitle)
    print(out)
