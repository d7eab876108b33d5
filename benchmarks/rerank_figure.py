"""docs/images/search-rerank.png: generated queries and their five nearest regions by
embedding distance alone (re-ranking off) and re-ranked by their picture (the default)
(docs/search.md, "Picture re-ranking").

    SHARPSEEK_HOME=<demo home> .venv/bin/python benchmarks/rerank_figure.py \\
        docs/images/search-rerank.png 7 12
"""

import sys

import numpy as np

from sharpseek.config import get_settings
from sharpseek.science.plotting import magnetogram_grid
from sharpseek.search.searcher import Searcher

out = sys.argv[1] if len(sys.argv) > 1 else "docs/images/search-rerank.png"
seeds = [int(s) for s in sys.argv[2:]] or [7, 12]
base = get_settings()
images, titles = [], []
for seed in seeds:
    for candidates in (0, base.retrieval.rerank_candidates):
        settings = base.model_copy(
            update={
                "retrieval": base.retrieval.model_copy(update={"rerank_candidates": candidates})
            }
        )
        with Searcher(settings) as searcher:
            q = searcher.latent_query(seed)
            table = searcher.search(q, k=5)
            p = q.parameters
            how = "re-ranked" if candidates else "embedding only"
            images.append(q.image)
            titles.append(
                f"seed {seed} ({how})\nTUF {p['tuf']:.0f} R {p['r']:.0f} PSEP {p['psep']:.0f}"
            )
            for _, row in table.iterrows():
                images.append(searcher.record_image(row["record_id"]))
                titles.append(
                    f"HARP {row['harpnum']} d={row['distance']:.2f}\n"
                    f"TUF {row['match_tuf']:.0f} R {row['match_r']:.0f} "
                    f"PSEP {row['match_psep']:.0f}"
                )
magnetogram_grid(
    np.stack(images),
    out,
    titles=titles,
    ncols=6,
    suptitle="generated queries (left) and their 5 nearest regions: by embedding distance "
    "alone, then re-ranked by their picture",
)
print(out)
