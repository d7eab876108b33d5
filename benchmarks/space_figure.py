"""docs/images/search-spaces.png: a generated query and its five nearest regions in the
region space (top) and in the symmetric space (bottom) (docs/search.md, "Two spaces").

    SHARPSEEK_HOME=<demo home> .venv/bin/python benchmarks/space_figure.py \\
        7 docs/images/search-spaces.png
"""

import sys

from search_rows import draw_rows, seed_row, with_retrieval
from sharpseek.config import get_settings

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 7
out = sys.argv[2] if len(sys.argv) > 2 else "docs/images/search-spaces.png"
base = get_settings()
rows = [
    seed_row(with_retrieval(base, generated_space=space), seed, f"seed {seed} ({space} space)")
    for space in ("region", "symmetric")
]
draw_rows(
    rows,
    out,
    "a generated query (left) and its 5 nearest regions: "
    "region space (top), symmetric space (bottom)",
)
