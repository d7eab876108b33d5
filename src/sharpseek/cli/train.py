"""``sharpseek train gan|encoder`` and ``sharpseek evaluate models``: thin shells over
:mod:`sharpseek.training` and :mod:`sharpseek.training.evaluate_models` (parse, check, one call,
report).

Register in ``cli/app.py``::

    from sharpseek.cli.train import evaluate_app, train_app
    app.add_typer(train_app, name="train")
    app.add_typer(evaluate_app, name="evaluate")

Multi-GPU: ``torchrun --nproc_per_node 4 $(which sharpseek) train gan --preset paper``
(each process joins the group torchrun describes; only rank 0 writes).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sharpseek.cli.common import (
    DatasetOpt,
    DatasetVersionOpt,
    HomeOpt,
    PresetOpt,
    ProgressOpt,
    settings_from,
)

# The library is imported inside the commands, not here: `sharpseek --help` and every other
# command would otherwise load torch, pandas, astropy and qdrant first (sharpseek/cli/app.py).

train_app = typer.Typer(
    help="Train the GAN or the SimSiam encoder (checkpoints every epoch, resumable).",
    no_args_is_help=True,
)
evaluate_app = typer.Typer(help="Quality measures of trained models.", no_args_is_help=True)

console = Console()
log = logging.getLogger(__name__)

VersionOpt = Annotated[
    str | None,
    typer.Option("--version", help="run name under models/<kind>/ (default from preset, seed)"),
]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", min=1, help="override the preset")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", min=1, help="global batch size")]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="seed of weights, order, augmentations")
]
PrecisionOpt = Annotated[
    str | None, typer.Option("--precision", help="auto, 32, bf16 or fp16 (the last two need CUDA)")
]
WorkersOpt = Annotated[int | None, typer.Option("--num-workers", min=0, help="loader workers")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default auto)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue this version from last.pt")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="delete this version first")]


_settings = settings_from


def _open_dataset(settings, store, name: str, version: str | None):
    """The dataset ``name``/``version`` of the store (latest version by default)."""
    from sharpseek.data import dataset as ds_module

    if hasattr(ds_module, "load_dataset"):  # store-backed layout
        return ds_module.load_dataset(store, name, version)
    root = settings.datasets_dir
    path = root / name / version if version else ds_module.latest_version(root, name)
    if path is None:
        raise FileNotFoundError(f"no dataset {name!r} under {root}")
    return ds_module.open_dataset(path)


def _overrides(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _fail(err: BaseException) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
    return typer.Exit(code=2)


#: Short column labels, so the tables fit an 80-column terminal.
LABELS = {
    "retrieval_encoder": "retr. enc",
    "retrieval_pca": "retr. PCA",
    "retrieval_physics": "retr. phys",
    "augmentation_robustness": "aug. rob.",
    "collapse": "collapse",
    "seconds": "s",
}


def _print_history(history: list[dict[str, Any]], columns: list[str], title: str) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(LABELS.get(c, c), justify="right")
    for row in history:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    console.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


@train_app.command("gan")
def train_gan_cmd(
    preset: PresetOpt = None,
    home: HomeOpt = None,
    dataset: DatasetOpt = "synthetic",
    dataset_version: DatasetVersionOpt = None,
    version: VersionOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate")] = None,
    width: Annotated[
        float | None, typer.Option("--width", help="channel multiplier (paper 1)")
    ] = None,
    generator: Annotated[
        str | None, typer.Option("--generator", help="paper (transposed convs) or upsample")
    ] = None,
    internal_size: Annotated[
        int | None, typer.Option("--internal-size", help="px the upsample generator draws at")
    ] = None,
    internal_width: Annotated[
        int | None, typer.Option("--internal-width", help="px across (x) it draws at")
    ] = None,
    upsampling: Annotated[
        str | None, typer.Option("--upsampling", help="upsample G's x2: nearest or bilinear")
    ] = None,
    noise: Annotated[
        bool | None, typer.Option("--noise/--no-noise", help="upsample G's 128-px noise field")
    ] = None,
    spectral_norm: Annotated[
        bool | None, typer.Option("--spectral-norm/--no-spectral-norm", help="on D's layers")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="G's last step: tanh (paper) or clip")
    ] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="bce (paper) or hinge")] = None,
    lr_d: Annotated[float | None, typer.Option("--lr-d", help="D's learning rate")] = None,
    r1_gamma: Annotated[float | None, typer.Option("--r1", help="R1 penalty weight")] = None,
    ema_decay: Annotated[
        float | None, typer.Option("--ema", help="EMA decay of G's weights (0: off)")
    ] = None,
    augment: Annotated[
        str | None, typer.Option("--augment", help="D's inputs: none or translation")
    ] = None,
    codes: Annotated[
        int | None, typer.Option("--codes", help="latent coordinates of the physical codes")
    ] = None,
    blob_blur: Annotated[
        float | None,
        typer.Option("--blob-blur", help="px blur of the heavy-tailed noise's own image (0: off)"),
    ] = None,
    refine: Annotated[
        bool | None,
        typer.Option("--refine/--no-refine", help="a second conv after the 16 and 32 px doublings"),
    ] = None,
    code_gain: Annotated[
        float | None, typer.Option("--code-gain", help="the codes' factor at G's input")
    ] = None,
    code_weight: Annotated[
        float | None, typer.Option("--code-weight", help="physical code loss weight (0: off)")
    ] = None,
    code_marginals: Annotated[
        str | None,
        typer.Option("--code-marginals", help="codes ask for: gaussian or empirical quantiles"),
    ] = None,
    lr_decay: Annotated[
        str | None,
        typer.Option("--lr-decay", help="none, or linear over the second half of the epochs"),
    ] = None,
    balance_weight: Annotated[
        float | None,
        typer.Option("--balance-weight", help="flux balance loss weight (0: off)"),
    ] = None,
    seed: SeedOpt = None,
    precision: PrecisionOpt = None,
    num_workers: WorkersOpt = None,
    device: DeviceOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Train the GAN: the paper's recipe (``--preset paper``) or the tiny preset's options
    (docs/training.md); the "best" checkpoint is the paper's choice (lowest D accuracy on
    fixed generated images within the first half of training)."""
    from sharpseek.data.store import open_store
    from sharpseek.training.gan import gan_train_config, train_gan

    settings = _settings(preset, home)
    try:
        config = gan_train_config(
            settings.preset,
            model=_overrides(
                width=width,
                generator=generator,
                internal_size=internal_size,
                internal_width=internal_width,
                upsampling=upsampling,
                noise=noise,
                spectral_norm=spectral_norm,
                output=output,
                codes=codes,
                code_gain=code_gain,
                blob_blur_px=blob_blur,
                refine=refine,
            )
            or None,
            **_overrides(
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                lr_d=lr_d,
                loss=loss,
                r1_gamma=r1_gamma,
                ema_decay=ema_decay,
                augment=augment,
                code_weight=code_weight,
                code_marginals=code_marginals,
                lr_decay=lr_decay,
                balance_weight=balance_weight,
                seed=seed,
                precision=precision,
                num_workers=num_workers,
            ),
        )
        store = open_store(settings)
        ds = _open_dataset(settings, store, dataset, dataset_version)
        run = train_gan(
            config,
            ds,
            store,
            version=version,
            resume=resume,
            overwrite=overwrite,
            device=device or settings.device,
            progress=progress,
            tensorboard_dir=settings.home
            / "runs"
            / "gan"
            / (version or f"{config.preset}-seed{config.seed}"),
        )
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise _fail(err) from err
    _print_history(
        run.history,
        ["epoch", "loss_d", "loss_g", "acc_real", "acc_fake", "w1_mean", "ks_mean", "seconds"],
        f"GAN {run.prefix} on {ds.name}/{ds.version}",
    )
    if run.best:
        console.print(
            f"best: {run.prefix}best.pt = epoch {run.best['epoch']}: {run.best['reason']}"
        )
    console.print(f"checkpoints, metrics.csv and sample grids: {run.prefix} in {store.describe()}")


@train_app.command("encoder")
def train_encoder_cmd(
    preset: PresetOpt = None,
    home: HomeOpt = None,
    dataset: DatasetOpt = "synthetic",
    dataset_version: DatasetVersionOpt = None,
    version: VersionOpt = None,
    augment: Annotated[
        str | None,
        typer.Option(
            "--augment",
            help="augmentation set: paper, tilt-sensitive, none, no-zoom, flip, dihedral or blur",
        ),
    ] = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    base_lr: Annotated[
        float | None, typer.Option("--base-lr", help="lr = base_lr x batch / 256")
    ] = None,
    positive_pairs: Annotated[
        str | None,
        typer.Option(
            "--positive-pairs",
            help="augment (two views of one frame, the paper) or same-region (a frame and "
            "another frame of its HARP within --pair-window hours)",
        ),
    ] = None,
    pair_window: Annotated[
        float | None, typer.Option("--pair-window", help="same-region pairs: window [h]")
    ] = None,
    seed: SeedOpt = None,
    precision: PrecisionOpt = None,
    num_workers: WorkersOpt = None,
    device: DeviceOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Train the SimSiam encoder; reports loss, collapse level and same-region retrieval on
    held-out HARPs beside the PCA and physical-parameter baselines."""
    from sharpseek.data.store import open_store
    from sharpseek.training.encoder import default_version, encoder_train_config, train_encoder

    settings = _settings(preset, home)
    try:
        config = encoder_train_config(
            settings.preset,
            augment=augment,
            **_overrides(
                epochs=epochs,
                batch_size=batch_size,
                base_lr=base_lr,
                positive_pairs=positive_pairs,
                pair_window_hours=pair_window,
                seed=seed,
                precision=precision,
                num_workers=num_workers,
            ),
        )
        store = open_store(settings)
        ds = _open_dataset(settings, store, dataset, dataset_version)
        run = train_encoder(
            config,
            ds,
            store,
            version=version,
            resume=resume,
            overwrite=overwrite,
            device=device or settings.device,
            progress=progress,
            tensorboard_dir=settings.home
            / "runs"
            / "encoder"
            / (version or default_version(config)),
        )
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise _fail(err) from err
    _print_history(
        run.history,
        [
            "epoch",
            "loss",
            "collapse",
            "retrieval_encoder",
            "retrieval_pca",
            "retrieval_physics",
            "augmentation_robustness",
            "seconds",
        ],
        f"encoder {run.prefix} ({config.augment.name} augmentations) on {ds.name}/{ds.version}",
    )
    if run.best:
        console.print(
            f"best: {run.prefix}best.pt = epoch {run.best['epoch']}: {run.best['reason']}"
        )
    console.print(f"checkpoints and metrics.csv: {run.prefix} in {store.describe()}")


@train_app.command("augmentations")
def augmentations_cmd(
    out: Annotated[Path, typer.Option("--out", help="PNG to write")] = Path("augmented-pairs.png"),
    frames: Annotated[int, typer.Option("--frames", min=1, max=12, help="rows")] = 4,
    sets: Annotated[
        str, typer.Option("--sets", help="comma-separated augmentation sets")
    ] = "paper,tilt-sensitive",
    seed: Annotated[int, typer.Option("--seed", help="seed of the frames and views")] = 0,
    preset: PresetOpt = None,
    home: HomeOpt = None,
    dataset: DatasetOpt = "synthetic",
    dataset_version: DatasetVersionOpt = None,
) -> None:
    """Draw strong bipolar frames of a dataset beside two augmented views per set."""
    from sharpseek.data.store import open_store
    from sharpseek.science.plotting import augmented_pairs_figure, pick_showcase_rows

    settings = _settings(preset, home)
    try:
        store = open_store(settings)
        ds = _open_dataset(settings, store, dataset, dataset_version)
        rows = pick_showcase_rows(ds.manifest, frames, seed=seed)
        path = augmented_pairs_figure(ds.images(rows), out, sets=tuple(sets.split(",")), seed=seed)
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from err
    console.print(f"picture: {path}")


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """Nested report -> {"a.b.c": value} rows for a table."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _seed_blocks(text: str) -> tuple[int, ...]:
    try:
        blocks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(
            f"seed blocks must be integers like 0,100000, got {text!r}"
        ) from None
    if not blocks:
        raise typer.BadParameter("give at least one seed block")
    return blocks


SeedBlocksOpt = Annotated[
    str,
    typer.Option(
        "--seed-blocks",
        help="first seeds of the blocks of generated images (each block: --samples seeds)",
    ),
]


@evaluate_app.command("models")
def evaluate_models_cmd(
    gan: Annotated[
        str | None,
        typer.Option("--gan", help="GAN checkpoint: store key or file (default: the current)"),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder", help="encoder checkpoint: store key or file (default: the current)"
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", min=2, help="generated images per seed block")
    ] = 1000,
    seed_blocks: SeedBlocksOpt = "0,100000",
    seed: Annotated[int, typer.Option("--seed", help="seed of frame subsets, augmentations")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="write the report as JSON")] = None,
    preset: PresetOpt = None,
    home: HomeOpt = None,
) -> None:
    """Quality measures of the models (the settings' current GAN and encoder unless named):
    the GAN against the frames it trained on and the HARPs it held out, for each seed block
    (KS and Wasserstein per parameter, median PSEP ratio, bipolar share, median flux
    imbalance, spectral share beyond radius 32, memorisation in pixels and encoder space,
    Frechet in SimSiam space);
    the encoder's same-region retrieval on its held-out HARPs beside PCA and physics, and
    augmentation robustness."""
    from sharpseek.data.store import open_store
    from sharpseek.pipeline.stages import model_keys
    from sharpseek.training.evaluate_models import evaluate_checkpoints

    blocks = _seed_blocks(seed_blocks)
    settings = _settings(preset, home)
    store = open_store(settings)
    if gan is None and encoder is None:  # the current models
        gan, encoder = model_keys(settings)["gan"], model_keys(settings)["encoder"]
        missing = [key for key in (gan, encoder) if not store.exists(key)]
        if missing:
            raise _fail(
                FileNotFoundError(
                    f"no current models in {settings.home}: {', '.join(missing)} not found; "
                    "train them (`sharpseek demo` or `sharpseek train`) or give --gan/--encoder"
                )
            )
    try:
        report = evaluate_checkpoints(
            store,
            gan=gan,
            encoder=encoder,
            n_generated=samples,
            seed=seed,
            seed_blocks=blocks,
            open_dataset=lambda name, version: _open_dataset(settings, store, name, version),
        )
    except (ValueError, FileNotFoundError) as err:
        raise _fail(err) from err
    for section, values in report.items():
        table = Table(title=section)
        table.add_column("measure")
        table.add_column("value", justify="right")
        for k, v in _flatten(values).items():
            table.add_row(k, _fmt(v))
        console.print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"report: {out}")


def main() -> None:
    """``python -m sharpseek.cli.train train gan ...``: the sub-apps without cli/app.py."""
    app = typer.Typer(no_args_is_help=True, add_completion=False)
    app.add_typer(train_app, name="train")
    app.add_typer(evaluate_app, name="evaluate")
    app()


if __name__ == "__main__":
    main()
