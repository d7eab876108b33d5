"""``sharpseek evaluate directions``: do the latent directions move what they name (issue 16)?

For each seed block (seeds ``b .. b + n - 1``), the seeds whose start image is bipolar with
R > 0 are shifted by ``eps`` (default +1.5, in the directions' unit of eps,
:func:`sharpseek.science.directions.apply_shifts`) along TUF, PSEP and R, once alone and once with
the other two held (conditional manipulation). For each: the share of seeds where the
parameter rises, its median relative change, and the other two's median change in units of
the dataset's interquartile range (:func:`sharpseek.science.evaluate.shift_effects`). The models
come through :mod:`sharpseek.serving.backends`; nothing here trains or fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.physics.definitions import BASELINE_PARAMETERS
from sharpseek.science.evaluate import SEED_BLOCKS, shift_effects

__all__ = ["DIRECTION_CHECK_PARAMETERS", "evaluate_directions", "interquartile_ranges"]

#: The issue's three: TUF, PSEP and R (the paper's Fig. 5 and its (TUF, R, PSEP) space).
DIRECTION_CHECK_PARAMETERS = tuple(BASELINE_PARAMETERS)


def interquartile_ranges(table: pd.DataFrame, names: Sequence[str]) -> dict[str, float]:
    """IQR (q75 - q25) of each parameter over the finite values of ``table``."""
    out = {}
    for name in names:
        v = np.asarray(table[name], np.float64)
        v = v[np.isfinite(v)]
        out[name] = float(np.subtract(*np.percentile(v, [75, 25]))) if len(v) else float("nan")
    return out


def evaluate_directions(
    backend,
    reference: pd.DataFrame,
    *,
    n: int = 1000,
    seed_blocks: Sequence[int] = SEED_BLOCKS,
    eps: float = 1.5,
    names: Sequence[str] = DIRECTION_CHECK_PARAMETERS,
) -> dict[str, Any]:
    """The directions check of ``backend``'s generator on each seed block.

    Parameters
    ----------
    backend : :class:`sharpseek.serving.backends.ModelBackend` with directions fitted
    reference : the dataset's manifest (parameters), for the interquartile ranges
    n : seeds per block (before the bipolar, R > 0 selection)

    Returns
    -------
    ``{"eps", "iqr", "gan", "directions", "method", "blocks": {str(b): {"seeds", "selected",
    "<p>": {"alone": {...}, "held": {...}}}}}``, each inner dict from
    :func:`sharpseek.science.evaluate.shift_effects`.
    """
    iqr = interquartile_ranges(reference, names)
    versions = backend.versions()
    out: dict[str, Any] = {
        "eps": eps,
        "parameters": list(names),
        "iqr": iqr,
        "gan": versions.get("gan"),
        "directions": versions.get("directions"),
        "method": backend.load_directions().method.describe(),
        "blocks": {},
    }
    for block in seed_blocks:
        seeds = np.arange(block, block + n)
        start = backend.generate(seeds=seeds.tolist()).parameters
        keep = np.isfinite(np.asarray(start["psep"], np.float64)) & (
            np.asarray(start["r"], np.float64) > 0
        )
        chosen = seeds[keep].tolist()
        entry: dict[str, Any] = {"seeds": [int(block), int(block + n - 1)], "selected": len(chosen)}
        if chosen:
            before = {k: np.asarray(v)[keep] for k, v in start.items()}
            for name in names:
                others = [o for o in names if o != name]
                entry[name] = {}
                for mode, hold in (("alone", []), ("held", others)):
                    after = backend.generate(seeds=chosen, shifts={name: eps}, hold=hold).parameters
                    entry[name][mode] = shift_effects(before, after, name, others, iqr)
        out["blocks"][str(block)] = entry
    return out
