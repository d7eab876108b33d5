"""The dataset report behind ``sharpseek plot dataset``: pictures plus realism figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sharpseek.data.dataset import Dataset
from sharpseek.data.fits import read_sharp
from sharpseek.data.preprocess import to_model_space
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.plotting import magnetogram_grid, realism_histograms
from sharpseek.science.realism import Comparison, compare_with_headers, read_header_table

__all__ = ["DatasetReport", "dataset_report", "sample_rows"]

CENTROIDS = ["pos_x", "pos_y", "neg_x", "neg_y"]


@dataclass
class DatasetReport:
    """What ``plot dataset`` made: figure paths and the realism comparisons."""

    figures: dict[str, Path] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)


def sample_rows(dataset: Dataset, n: int, *, seed: int = 0) -> np.ndarray:
    """Row numbers of ``n`` frames, from distinct regions first (then other frames when
    there are fewer regions than ``n``), chosen reproducibly, ordered by total unsigned field
    so the grid reads weak to strong."""
    manifest = dataset.manifest
    rng = np.random.default_rng(seed)
    harps = manifest["harpnum"].unique()
    chosen_harps = rng.permutation(harps)[: min(n, len(harps))]
    rows = []
    for harp in chosen_harps:
        candidates = np.flatnonzero(manifest["harpnum"].to_numpy() == harp)
        rows.append(int(rng.choice(candidates)))
    if len(rows) < n:  # fewer regions than panels: fill with other frames
        others = np.setdiff1d(np.arange(len(manifest)), rows)
        rows += [int(r) for r in rng.permutation(others)[: n - len(rows)]]
    rows = np.array(rows, dtype=int)
    return rows[np.argsort(manifest["tuf"].to_numpy()[rows])]


def _title(row) -> str:
    t = row["t_rec"]
    stamp = t.strftime("%Y-%m-%d %H:%M") if hasattr(t, "strftime") else str(t)
    psep = row["psep"]
    psep_text = "n/a" if not np.isfinite(psep) else f"{psep:.0f}px"
    return (
        f"HARP {row['harpnum']} {stamp}\n"
        f"TUF {row['tuf']:.2e} G px, PSEP {psep_text}\nR {row['r']:.2e} G px, "
        f"lat {row['lat_fwt']:+.0f}"
    )


def dataset_report(
    dataset: Dataset,
    out_dir: str | Path,
    *,
    header_table: str | Path | None = None,
    real_sample_paths: Sequence[str | Path] = (),
    n_samples: int = 24,
    seed: int = 0,
) -> DatasetReport:
    """Write the dataset's pictures into ``out_dir``.

    - ``<name>-grid.png``: ``n_samples`` frames, in gauss, with polarity centroids;
    - ``<name>-realism.png``: histograms against real headers with KS distances (needs
      ``header_table``);
    - ``<name>-real-vs-dataset.png``: real Br samples through the same preprocessing and
      physics (top row) beside the dataset frame of nearest TUF (bottom row).
    """
    out_dir = Path(out_dir)
    stem = f"{dataset.name}-{dataset.version}"
    report = DatasetReport()
    manifest = dataset.manifest

    rows = sample_rows(dataset, n_samples, seed=seed)
    images = dataset.images(rows)
    report.figures["grid"] = magnetogram_grid(
        images,
        out_dir / f"{stem}-grid.png",
        titles=[_title(manifest.iloc[r]) for r in rows],
        centroids=manifest.iloc[rows][CENTROIDS].to_numpy(dtype=float),
        suptitle=f"{dataset.name} {dataset.version}: {len(manifest)} frames of "
        f"{manifest['harpnum'].nunique()} regions",
    )

    if header_table is not None:
        report.comparisons = compare_with_headers(manifest, read_header_table(header_table))
        report.figures["realism"] = realism_histograms(
            report.comparisons, out_dir / f"{stem}-realism.png", dataset_label=dataset.name
        )

    if real_sample_paths:
        files = [read_sharp(p) for p in real_sample_paths]
        real = np.stack([to_model_space(f.data).image for f in files])
        params = compute_parameters(real)
        tuf = manifest["tuf"].to_numpy()
        nearest = [int(np.nanargmin(np.abs(tuf - t))) for t in params["tuf"]]
        both = np.concatenate([real, dataset.images(nearest)])
        real_titles = [
            f"real HARP {f.meta['harpnum']} {f.meta['t_rec']:%Y-%m-%d}\n"
            f"TUF {params['tuf'][i]:.2e}, PSEP "
            f"{params['psep'][i]:.0f}px\nR {params['r'][i]:.2e}"
            for i, f in enumerate(files)
        ]
        centroids = np.concatenate(
            [
                np.stack([params[k] for k in CENTROIDS], axis=1),
                manifest.iloc[nearest][CENTROIDS].to_numpy(dtype=float),
            ]
        )
        report.figures["real"] = magnetogram_grid(
            both,
            out_dir / f"{stem}-real-vs-dataset.png",
            titles=real_titles + [_title(manifest.iloc[r]) for r in nearest],
            centroids=centroids,
            ncols=len(files),
            suptitle=f"top: real SHARPs; bottom: {dataset.name} frames of nearest TUF",
        )
    return report
