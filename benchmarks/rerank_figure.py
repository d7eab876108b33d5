"""docs/images/search-rerank.png: generated queries and their five nearest regions by
embedding distance alone (re-ranking off), re-ranked with the signed picture of before
(20 candidates, weight 2) and with the gradient picture (the default now)
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
variants = {
    "embedding only": with_retrieval(base, rerank_candidates=0),
    "signed picture": with_retrieval(
        base, rerank_candidates=20, rerank_picture_weight=2.0, rerank_picture="signed"
    ),
    f"{base.retrieval.rerank_picture} picture": base,
}
rows = [
    seed_row(settings, seed, f"seed {seed} ({label})")
    for seed in seeds
    for label, settings in variants.items()
]
draw_rows(
    rows,
    out,
    "generated queries (left) and their 5 nearest regions: by embedding distance alone, "
    "re-ranked by the signed picture (before), by the gradient picture (now)",
)
