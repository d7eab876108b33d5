"""docs/images/search-spaces.png: a generated query and its five nearest regions in the
region space (top) and in the symmetric space (bottom) (docs/search.md, "Two spaces").

    SHARPSEEK_HOME=<demo home> .venv/bin/python benchmarks/space_figure.py \\
        7 docs/images/search-spaces.png
"""

import sys

import numpy as np

from sharpseek.config import get_settings
from sharpseek.science.plotting import magnetogram_grid
from sharpseek.search.searcher import Searcher

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 7
out = sys.argv[2] if len(sys.argv) > 2 else "docs/images/search-spaces.png"
base = get_settings()
images, titles = [], []
for space in ("region", "symmetric"):
    settings = base.model_copy(
        update={"retrieval": base.retrieval.model_copy(update={"generated_space": space})}
    )
    with Searcher(settings) as searcher:
        q = searcher.latent_query(seed)
        table = searcher.search(q, k=5)
        p = q.parameters
        images.append(q.image)
        titles.append(
            f"seed {seed} ({space} space)\nTUF {p['tuf']:.0f} R {p['r']:.0f} PSEP {p['psep']:.0f}"
        )
        for _, row in table.iterrows():
            images.append(searcher.record_image(row["record_id"]))
            titles.append(
                f"HARP {row['harpnum']} d={row['distance']:.2f}\n"
                f"TUF {row['match_tuf']:.0f} R {row['match_r']:.0f} PSEP {row['match_psep']:.0f}"
            )
magnetogram_grid(
    np.stack(images),
    out,
    titles=titles,
    ncols=6,
    suptitle="a generated query (left) and its 5 nearest regions: "
    "region space (top), symmetric space (bottom)",
)
print(out)
