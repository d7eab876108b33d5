"""The pipeline's flare steps: a flare table (or the synthetic regions' ground truth) loaded
as a catalogue version, the windows of any frames, and the ``flares`` stage that brings the
index's flare payloads up to date (docs/flares.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sharpseek.config import Settings
from sharpseek.data.dataset import latest_version, load_dataset
from sharpseek.data.flare_tables import read_flare_table, read_harp_table, read_source
from sharpseek.data.flare_windows import configured_windows, flare_windows
from sharpseek.data.flares import (
    SYNTHETIC_PREFIX,
    LoadResult,
    load_flare_catalogue,
    save_flare_catalogue,
)
from sharpseek.data.store import open_store
from sharpseek.data.synthetic_flares import SyntheticFlareLaw, synthetic_flare_tables
from sharpseek.pipeline.index_plans import update_flare_payloads
from sharpseek.pipeline.ledger import StageOutcome

__all__ = ["flares_stage", "frame_flares", "load_flares"]


# ----------------------------------------------------------------------------------------------
# flares: the catalogue and the index payloads
# ----------------------------------------------------------------------------------------------
def load_flares(
    settings: Settings, source: str | Path | None = None, *, harps: str | Path | None = None
) -> LoadResult:
    """Read a flare table (``source``, default ``settings.flares.source``: a path or URL) and
    the HARP table (``settings.flares.harps``), match them and store a new catalogue version
    when the content changed. A bad file raises :class:`~sharpseek.data.flares.FlareCatalogueError`
    before anything is written."""
    location = source if source is not None else settings.flares.source
    if location is None:
        raise ValueError("no flare table: give FILE or set SHARPSEEK_FLARES__SOURCE")
    harps_location = harps if harps is not None else settings.flares.harps
    timeout = settings.flares.timeout_s
    flares = read_flare_table(read_source(location, timeout_s=timeout), str(location))
    harp_table = read_harp_table(
        read_source(harps_location, timeout_s=timeout), str(harps_location)
    )
    return save_flare_catalogue(
        open_store(settings),
        flares,
        harp_table,
        source=str(location),
        harps_source=str(harps_location),
        margin_hours=settings.flares.lifetime_margin_hours,
    )


def frame_flares(settings: Settings, harpnums: Any, t_recs: Any, *, version: str | None = None):
    """History and outcome (:func:`sharpseek.data.flare_windows.flare_windows`) of any frames, from
    the store's catalogue (latest, or ``version``) and the settings' windows."""
    catalogue = load_flare_catalogue(open_store(settings), version)
    return flare_windows(catalogue, harpnums, t_recs, configured_windows(settings.flares))


def load_synthetic_flares(settings: Settings, *, out: Path | None = None) -> LoadResult | None:
    """Draw the ground-truth flares of the latest synthetic dataset
    (:func:`sharpseek.data.synthetic_flares.synthetic_flare_tables`, deterministic from
    ``settings.synthetic``), read them back as the shared catalogue's file format and store
    them as the synthetic catalogue (a new version only when they changed); ``out``: also
    write them there (``flares.csv``, ``harps.csv``: ``sharpseek flares load`` reads them).
    None when there is no synthetic dataset."""
    store = open_store(settings)
    version = latest_version(store, "synthetic")
    if version is None:
        return None
    manifest = load_dataset(store, "synthetic", version).manifest
    # the dataset's own cadence (its frames' spacing), not the settings' (another recipe)
    steps = manifest.sort_values("t_rec").groupby("harpnum")["t_rec"].diff().dropna()
    cadence = (
        steps.median() / pd.Timedelta(hours=1) if len(steps) else settings.synthetic.cadence_hours
    )
    flares_csv, harps_csv = synthetic_flare_tables(
        manifest,
        seed=settings.synthetic.seed,
        cadence_hours=cadence,
        law=SyntheticFlareLaw.from_settings(settings.synthetic),
    )
    source = f"synthetic:{version}"
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "flares.csv").write_text(flares_csv)
        (Path(out) / "harps.csv").write_text(harps_csv)
    return save_flare_catalogue(
        store,
        read_flare_table(flares_csv.encode(), f"{source} flares"),
        read_harp_table(harps_csv.encode(), f"{source} HARPs"),
        source=source,
        harps_source=source,
        root=SYNTHETIC_PREFIX,
    )


def flares_stage(settings: Settings, source: str | Path | None = None) -> StageOutcome:
    """Load the flare table (``source`` or ``settings.flares.source``; a new catalogue
    version only when its content changed) and the synthetic regions' ground-truth flares
    (when a synthetic dataset exists), then bring the live index's flare payloads up to
    date. Used by ``sharpseek flares load`` and the hourly flow."""
    location = source if source is not None else settings.flares.source
    have_file = location is not None and (
        str(location).startswith(("http://", "https://")) or Path(location).is_file()
    )
    loaded = load_flares(settings, location) if have_file else None
    synthetic = load_synthetic_flares(settings) if source is None else None
    if loaded is None and synthetic is None:
        return StageOutcome("flares", True, "", {}, f"no flare table at {location}; skipped")
    payloads = update_flare_payloads(settings)
    outputs: dict[str, Any] = {"payloads": payloads}
    words = []
    if loaded is not None:
        outputs |= {
            "version": loaded.catalogue.version,
            "created": loaded.created,
            **{f"flares_{k}": v for k, v in loaded.counts.items()},
        }
        verb = "new catalogue version" if loaded.created else "catalogue unchanged"
        words.append(
            f"{verb} {loaded.catalogue.version}: {loaded.counts['flares']} flares, "
            f"{loaded.counts['by_harpnum']} matched by HARPNUM, {loaded.counts['by_noaa']} by "
            f"NOAA, {loaded.counts['unmatched']} unmatched"
        )
    if synthetic is not None:
        outputs |= {
            "synthetic_version": synthetic.catalogue.version,
            "synthetic_created": synthetic.created,
            "synthetic_flares": synthetic.counts["flares"],
        }
        words.append(
            f"synthetic ground truth {synthetic.catalogue.version}: "
            f"{synthetic.counts['flares']} flares"
        )
    written = payloads["written"] + ((payloads["synthetic"] or {}).get("written") or 0)
    frames = payloads["frames"] + ((payloads["synthetic"] or {}).get("frames") or 0)
    message = "; ".join(words) + f"; {written} of {frames} frames' payloads written"
    created = any(x is not None and x.created for x in (loaded, synthetic))
    digest = "+".join(x.catalogue.info.get("digest", "") for x in (loaded, synthetic) if x)
    return StageOutcome("flares", not created and not written, digest, outputs, message)
