"""docs/images/search-rerank.png: generated queries and their five nearest regions by
embedding distance alone (re-ranking off) and re-ranked by their picture (the default)
(docs/search.md, "Picture re-ranking").

    SHARPSEEK_HOME=<demo home> .venv/bin/python benchmarks/rerank_figure.py \\
        docs/images/search-rerank.png 7 11 12
"""

import sys

from search_rows import draw_rows, seed_row, with_retrieval
from sharpseek.config import get_settings

out = sys.argv[1] if len(sys.argv) > 1 else "docs/images/search-rerank.png"
seeds = [int(s) for s in sys.argv[2:]] or [7, 11, 12]
base = get_settings()
rows = [
    seed_row(
        with_retrieval(base, rerank_candidates=n),
        seed,
        f"seed {seed} ({'re-ranked' if n else 'embedding only'})",
    )
    for seed in seeds
    for n in (0, base.retrieval.rerank_candidates)
]
draw_rows(
    rows,
    out,
    "generated queries (left) and their 5 nearest regions: by embedding distance alone, "
    "then re-ranked by their picture",
)
