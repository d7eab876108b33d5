"""The ``sharpseek`` command: a thin shell over the library (parse, check, call, report)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import HomeOpt, PresetOpt, dataset_name, settings_from
from sharpseek.cli.demo import run_demo
from sharpseek.cli.directions import evaluate_directions_cmd
from sharpseek.cli.directions import register as register_directions
from sharpseek.cli.errors import GuardedGroup, classify
from sharpseek.cli.flares import evaluate_outlook_cmd
from sharpseek.cli.flares import register as register_flares
from sharpseek.cli.index import register as register_index
from sharpseek.cli.serve import serve_app
from sharpseek.cli.train import evaluate_app, train_app
from sharpseek.cli.ui import ui
from sharpseek.config import Settings, shown_settings

# The library is imported inside each command below, not here: it loads torch, pandas,
# astropy and qdrant (0.8 s for the command tree against 12 s with the library, on 2 cores),
# which `sharpseek --help` and a mistyped command should not wait for. The command modules
# (sharpseek.cli.*) follow the same rule; tests/test_architecture.py keeps it.

app = typer.Typer(
    name="sharpseek",
    cls=GuardedGroup,  # one error rule for every command (sharpseek.cli.errors)
    help="Generate solar active regions from physical quantities and search real SHARPs.",
    no_args_is_help=True,
    add_completion=False,
)
ingest_app = typer.Typer(
    help="Bring SHARPs (or synthetic ones) into a versioned dataset.", no_args_is_help=True
)
plot_app = typer.Typer(help="Pictures of datasets.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
dataset_app = typer.Typer(help="Datasets and their versions.", no_args_is_help=True)
app.add_typer(plot_app, name="plot")
app.add_typer(dataset_app, name="dataset")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
register_index(app, evaluate_app)  # index, search, evaluate retrieval
app.add_typer(serve_app, name="serve")
app.command("ui")(ui)
register_directions(app, plot_app)
evaluate_app.command("directions")(evaluate_directions_cmd)
register_flares(app)
evaluate_app.command("outlook")(evaluate_outlook_cmd)

console = Console()


_settings = settings_from


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@ingest_app.command("synthetic")
def ingest_synthetic_cmd(
    regions: Annotated[int | None, typer.Option(min=1, help="synthetic HARPs")] = None,
    frames: Annotated[int | None, typer.Option(min=1, help="frames per region")] = None,
    cadence_hours: Annotated[
        float | None, typer.Option(min=0.01, help="hours between frames")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (same seed, same data)")] = None,
    overwrite: Annotated[bool, typer.Option(help="regenerate even if this version exists")] = False,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Generate synthetic active regions (time sequences with ground truth) as a dataset.

    Unset sizes come from the preset (tiny: 300 regions x 12 frames, 6 h cadence).
    """
    from sharpseek.pipeline.ingest_plans import plan_ingest_synthetic

    settings = _settings(preset, home)
    _run_ingest(
        settings,
        lambda: plan_ingest_synthetic(
            settings,
            regions=regions,
            frames=frames,
            cadence_hours=cadence_hours,
            seed=seed,
            overwrite=overwrite,
        ),
        errors=(),
    )


def _run_ingest(settings: Settings, plan, *, errors: tuple[type[BaseException], ...]) -> None:
    """Plan (``plan()``), make the shards and commit in this process
    (:func:`sharpseek.pipeline.ingest_plans.run_ingest_plan`, recorded in the pipeline's ledger),
    then report; exit status 3 when something was quarantined, 2 on an error the user can fix."""
    from sharpseek.data.dataset_writer import CommitConflict
    from sharpseek.data.object_store import StoreError
    from sharpseek.pipeline.ingest_plans import QualityMismatch, run_ingest_plan

    started = time.perf_counter()
    try:
        outcome = run_ingest_plan(settings, plan())
    except (*errors, StoreError, QualityMismatch, CommitConflict) as err:
        console.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(code=classify(err)) from err
    seconds = time.perf_counter() - started
    if outcome.skipped:
        console.print(f"{escape(outcome.message)} ({seconds:.1f} s)")
        return
    out, ds = outcome.outputs, outcome.outputs["dataset"]
    console.print(
        f"dataset [bold]{ds['name']}/{ds['version']}[/]: {ds['n_records']} frames of "
        f"{ds['n_regions']} regions; {out['added']} added, {out['skipped']} already there, "
        f"{out['replaced']} near-real-time replaced, {out['recovered']} taken up from an "
        f"interrupted run ({seconds:.1f} s)"
    )
    if out.get("rebased_onto"):
        console.print(
            f"built on {', '.join(out['rebased_onto'])}, committed meanwhile by another "
            "writer: its records are kept, this run's added to them"
        )
    if out["quarantined"]:
        table = Table(title=f"quarantined ({len(out['quarantined'])}): not ingested")
        table.add_column("file or record", overflow="fold")
        table.add_column("reason", overflow="fold")
        for source, reason, record_id in out["quarantined"]:
            table.add_row(escape(record_id or source), escape(reason))
        console.print(table)
        raise typer.Exit(code=3)


@ingest_app.command("fits")
def ingest_fits_cmd(
    paths: Annotated[list[Path], typer.Argument(help="SHARP Br FITS files or folders of them")],
    dataset: Annotated[str, typer.Option(help="dataset name", callback=dataset_name)] = "sharp",
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Ingest SHARP FITS files as JSOC exports them (Br segments; other segments are left
    aside). Bad files are quarantined with their reason (exit status 3); the rest go in.
    Exactly the same files ingested again are skipped as up to date."""
    from sharpseek.pipeline.ingest_plans import plan_ingest_fits

    settings = _settings(preset, home)
    _run_ingest(settings, lambda: plan_ingest_fits(settings, paths, dataset=dataset), errors=())


@ingest_app.command("jsoc")
def ingest_jsoc_cmd(
    start: Annotated[
        str | None, typer.Option(help="start T_REC (TAI), e.g. 2014.01.31_00:00")
    ] = None,
    end: Annotated[str | None, typer.Option(help="end T_REC (TAI)")] = None,
    harp: Annotated[list[int] | None, typer.Option(help="HARPNUM (repeatable)")] = None,
    noaa: Annotated[list[int] | None, typer.Option(help="NOAA AR number (repeatable)")] = None,
    nrt: Annotated[bool, typer.Option(help="near-real-time series hmi.sharp_cea_720s_nrt")] = False,
    cadence: Annotated[str | None, typer.Option(help="record cadence: 12m, 1h, 12h, 1d")] = None,
    strict_quality: Annotated[bool, typer.Option(help="QUALITY == 0 instead of < 65536")] = False,
    incremental: Annotated[
        bool, typer.Option(help="only records after the newest T_REC already held, per HARP")
    ] = False,
    dataset: Annotated[str, typer.Option(help="dataset name", callback=dataset_name)] = "sharp",
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Query JSOC (drms), export with your registered email (SHARPSEEK_JSOC__EMAIL), download
    the Br segments resumably, and ingest them."""
    from sharpseek.data.jsoc import JsocError
    from sharpseek.pipeline.ingest_plans import plan_ingest_jsoc

    settings = _settings(preset, home)
    _run_ingest(
        settings,
        lambda: plan_ingest_jsoc(
            settings,
            start=start,
            end=end,
            harpnums=harp,
            noaa=noaa,
            nrt=nrt,
            cadence=cadence,
            strict_quality=strict_quality,
            incremental=incremental,
            dataset=dataset,
            progress=True,
        ),
        errors=(ValueError, JsocError),
    )


@dataset_app.command("list")
def dataset_list_cmd(preset: PresetOpt = None, home: HomeOpt = None) -> None:
    """List datasets and their versions (the latest marked *)."""
    from sharpseek.data.dataset import dataset_names, dataset_versions, latest_version, load_dataset
    from sharpseek.data.store import open_store

    store = open_store(_settings(preset, home))
    table = Table(title=f"datasets in {escape(store.describe())}")
    for column in ("dataset", "version", "records", "regions", "quarantined", "created"):
        table.add_column(column)
    for name in dataset_names(store):
        latest = latest_version(store, name)
        for version in dataset_versions(store, name):
            info = load_dataset(store, name, version).info
            table.add_row(
                name,
                version + (" *" if version == latest else ""),
                str(info["n_records"]),
                str(info["n_regions"]),
                str(info.get("n_quarantined", 0)),
                info["created"],
            )
    console.print(table)


@dataset_app.command("show")
def dataset_show_cmd(
    name: Annotated[
        str, typer.Argument(help="dataset name, e.g. sharp or synthetic", callback=dataset_name)
    ],
    version: Annotated[str | None, typer.Option(help="version (default: the latest)")] = None,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """A dataset version: provenance, parameter ranges and its quarantine list."""
    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store
    from sharpseek.physics.definitions import PARAMETER_UNITS

    store = open_store(_settings(preset, home))
    try:
        ds = load_dataset(store, name, version)
    except FileNotFoundError as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(code=2) from err
    console.print(
        f"[bold]{ds.name}/{ds.version}[/]: {len(ds)} records, "
        f"{ds.info['n_regions']} regions, created {ds.info['created']}"
    )
    console.print_json(data=ds.info["provenance"])
    from sharpseek.data.exclusion import exclusion_counts, usable_rows

    rule = ds.info["provenance"].get("quality")
    kept = int(usable_rows(ds.manifest).sum())
    counts = exclusion_counts(ds.manifest)
    console.print(
        f"left out of training and the index: {len(ds) - kept} of {len(ds)} frames"
        + (f" ({', '.join(f'{k}: {v}' for k, v in counts.items())})" if counts else "")
        + (
            f"; rule: NaN fraction > {rule['max_nan_fraction']:g} or mu < {rule['min_mu']:g};"
            f" model space clipped at +-{rule['field_clip_gauss']:g} G"
            if rule
            else "; this version predates the rule (every frame kept)"
        ),
        soft_wrap=True,
    )
    table = Table(title="parameters (5th, 50th, 95th percentile)")
    for column in ("parameter", "unit", "p5", "median", "p95"):
        table.add_column(column)
    for key in (
        "tuf",
        "tpf",
        "tnf",
        "psep",
        "r",
        "tilt",
        "sigma",
        "alpha",
        "grad",
        "flux_mx",
        "flux_strong_mx",
        "psep_mm",
        "tilt_cea",
        "joy_tilt_cea",
        "r_jsoc",
        "flux_imbalance",
        "mu",
    ):
        if key in ds.manifest:
            values = ds.manifest[key].astype(float).dropna()
            if len(values):
                p5, p50, p95 = values.quantile([0.05, 0.5, 0.95])
                unit = PARAMETER_UNITS.get(key, MEASURE_UNITS.get(key, ""))
                table.add_row(key, unit, _fmt(p5), _fmt(p50), _fmt(p95))
    console.print(table)
    if len(ds.quarantine):
        q = Table(title=f"quarantine ({len(ds.quarantine)})")
        q.add_column("file or record", overflow="fold")
        q.add_column("reason", overflow="fold")
        for row in ds.quarantine.itertuples():
            q.add_row(escape(row.record_id or row.source), escape(row.reason))
        console.print(q)


@plot_app.command("dataset")
def plot_dataset_cmd(
    name: Annotated[
        str, typer.Option("--dataset", "--name", help="dataset name", callback=dataset_name)
    ] = "synthetic",
    version: Annotated[str | None, typer.Option(help="version (default: the latest)")] = None,
    out: Annotated[
        Path | None, typer.Option(help="output folder (default: <home>/figures)")
    ] = None,
    samples: Annotated[int, typer.Option(min=1, max=120, help="frames in the grid")] = 24,
    seed: Annotated[int, typer.Option(help="seed of the frame selection")] = 0,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Write a grid of samples, realism histograms (with KS distances against real SHARP
    headers) and the real samples beside their nearest dataset frames."""
    from sharpseek.data.dataset import load_dataset
    from sharpseek.data.store import open_store
    from sharpseek.science.report import dataset_report

    settings = _settings(preset, home)
    store = open_store(settings)
    try:
        ds = load_dataset(store, name, version)
    except FileNotFoundError as err:
        console.print(
            f"[red]{escape(str(err))}[/]; make one with `sharpseek ingest synthetic` "
            "(or `ingest fits`, `ingest jsoc`)"
        )
        raise typer.Exit(code=2) from err
    report = dataset_report(
        ds,
        out or settings.figures_dir,
        header_table=settings.header_table,
        real_sample_paths=settings.real_sample_paths,
        n_samples=samples,
        seed=seed,
    )
    _print_report(report, settings)


def _print_report(report, settings: Settings) -> None:
    if report.comparisons:
        table = Table(title="realism: dataset vs real SHARP headers (KS distance; 0 = same)")
        table.add_column("quantity")
        table.add_column("KS", justify="right")
        table.add_column("n dataset / real", justify="right")
        for c in report.comparisons:
            table.add_row(escape(c.label), f"{c.ks:.3f}", f"{c.n[0]} / {c.n[1]}")
        console.print(table)
    else:
        console.print(f"[yellow]no header table at {settings.samples_dir}: realism skipped[/]")
    for kind, path in report.figures.items():
        console.print(f"{kind:>8}: {path}")


@app.command("measure")
def measure_cmd(
    files: Annotated[
        list[Path], typer.Argument(help="SHARP Br FITS files or .npy model-space arrays")
    ],
    plot: Annotated[
        Path | None,
        typer.Option(help="folder for a picture per image: field, polarities + PSEP, R region"),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="print one JSON array: an object per image, every parameter and units"
        ),
    ] = False,
) -> None:
    """Print the physical parameters of SHARP FITS files (or model-space .npy arrays): the
    model-space ones of the 128x128 image and, for a real SHARP, the native ones measured on
    its CEA grid (docs/physics.md says which to quote)."""
    import json

    from sharpseek.physics.definitions import PARAMETER_UNITS
    from sharpseek.science.measure import MEASURE_UNITS, load_model_images, measure_files
    from sharpseek.science.plotting import polarity_panels

    try:
        results = measure_files(files)
        if plot is not None:
            for path in files:
                labels, images, _ = load_model_images(path)
                for label, image in zip(labels, images, strict=True):
                    stem = label.replace("[", "-").replace("]", "").removesuffix(".fits")
                    out = polarity_panels(image, plot / f"{stem}.png", title=label)
                    console.print(f"picture: {out}", soft_wrap=True)
    except (ValueError, FileNotFoundError, OSError) as err:
        console.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(code=2) from err
    if as_json:
        typer.echo(json.dumps([{**r, "units": MEASURE_UNITS} for r in results], indent=1))
        return
    # One column per file, one row per parameter: readable in any terminal width.
    for start in range(0, len(results), 4):
        chunk = results[start : start + 4]
        table = Table(
            title="physical parameters: model space (the 128x128 image; all a generated image"
            " has) and native (a real SHARP on its CEA grid: quote these)"
        )
        table.add_column("parameter")
        table.add_column("space")
        table.add_column("unit")
        for r in chunk:
            table.add_column(r["file"], justify="right", overflow="fold")
        for key in chunk[0]:
            if key in ("file", "space"):
                continue
            space = (
                "model"
                if key in PARAMETER_UNITS
                else "JSOC"
                if key in ("usflux_jsoc_mx", "r_value_jsoc")
                else "native"
            )
            table.add_row(
                key, space, MEASURE_UNITS.get(key, ""), *[_fmt(r.get(key)) for r in chunk]
            )
        console.print(table)


#: Units of the manifest's columns beyond the model-space parameters (``dataset show``).
MEASURE_UNITS = {
    "flux_mx": "Mx",
    "flux_strong_mx": "Mx",
    "psep_mm": "Mm",
    "tilt_cea": "deg",
    "joy_tilt_cea": "deg",
    "r_jsoc": "",
    "flux_imbalance": "",
    "mu": "",
}


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("demo")
def demo_cmd(
    preset: PresetOpt = None,
    home: HomeOpt = None,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="serve the UI afterwards")] = True,
    samples: Annotated[
        bool, typer.Option("--samples/--no-samples", help="ingest the real samples when present")
    ] = True,
) -> None:
    """The main job on the embedded default: the Prefect pipeline (synthetic data + real
    samples, GAN, encoder, directions, index, evaluation; what is up to date is reused),
    the dataset pictures, then the UI (docs/pipeline.md)."""
    import importlib.util

    settings = _settings(preset, home)
    if importlib.util.find_spec("prefect") is None:  # found, not imported: Prefect's
        # settings (PREFECT_HOME) are set by the demo before its first import
        console.print("[red]the demo needs the flows extra:[/] pip install -e '.[flows]'")
        raise typer.Exit(code=2)
    code = run_demo(
        app,
        settings,
        ui=ui,
        samples=samples,
        console=console,
        pictures=lambda: plot_dataset_cmd(preset=preset, home=home),
    )
    raise typer.Exit(code=code)


@app.command("config")
def config_cmd(preset: PresetOpt = None, home: HomeOpt = None) -> None:
    """Show the settings in force (environment SHARPSEEK_* plus preset); secrets hidden and
    the JSOC e-mail masked."""
    import json

    console.print_json(json.dumps(shown_settings(_settings(preset, home))))


if __name__ == "__main__":
    app()
