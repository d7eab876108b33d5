"""sharpseek.training (GAN and encoder loops, checkpoints, resume, DDP) and
sharpseek.science.evaluate and sharpseek.training.evaluate_models (quality measures), on a tiny
synthetic dataset.

The quality margins asserted at the end were measured first with these fixed seeds
(docs/training.md gives the figures); they test consistency of training, not accuracy.
"""

import gc
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from ingest_fixtures import synthetic_dataset
from sharpseek.config import Settings
from sharpseek.data.dataset import open_dataset
from sharpseek.data.local_store import LocalStore
from sharpseek.models.checkpoints import load_checkpoint, load_encoder, load_generator
from sharpseek.science.evaluate import (
    frechet_distance,
    parameter_distances,
    physics_features,
    same_region_retrieval,
)
from sharpseek.training import (
    CollapseWarning,
    encoder_train_config,
    gan_train_config,
    split_by_harp,
    train_encoder,
    train_gan,
)
from sharpseek.training.common import (
    MixedPrecision,
    epoch_batches,
    epoch_generator,
    pick_partners,
    same_region_partners,
)
from sharpseek.training.evaluate_models import evaluate_checkpoints
from sharpseek.training.loop import Task, fit, optimiser_step

MICRO_ENCODER = {
    "widths": (8, 8, 8, 8),
    "blocks": (1, 1, 1, 1),
    "stem_width": 8,
    "proj_hidden": 16,
    "pred_hidden": 8,
    # the tiny preset indexes a 100-channel backbone; these 8 channels index the projection
    "representation": "projection",
}


def gan_cfg(**kw):
    base = dict(epochs=2, batch_size=8, fixed_size=16, grid_size=4)
    return gan_train_config("tiny", model={"width": 0.25}, **{**base, **kw})


def enc_cfg(**kw):
    base = dict(epochs=2, batch_size=8, eval_max_frames=40)
    augment = kw.pop("augment", "paper")
    return encoder_train_config("tiny", model=MICRO_ENCODER, augment=augment, **{**base, **kw})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, two threads waiting on each other at
    every operation made these tests up to 10x slower; one thread is steady."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    ds = synthetic_dataset(Settings(home=home, preset="tiny"), regions=24, frames=4, seed=0)
    return open_dataset(home / "datasets" / ds.name / ds.version)


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


@pytest.fixture(scope="module")
def gan_run(dataset, tmp_path_factory):
    store = LocalStore(tmp_path_factory.mktemp("ganstore"))
    return store, train_gan(gan_cfg(epochs=4), dataset, store, progress=False)


@pytest.fixture(scope="module")
def encoder_run(dataset, tmp_path_factory):
    store = LocalStore(tmp_path_factory.mktemp("encstore"))
    return store, train_encoder(enc_cfg(), dataset, store, progress=False)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _numbers(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# ------------------------------------------------------------------------- data order, splits


def test_data_order_is_a_function_of_seed_and_epoch():
    a = epoch_batches(100, 10, seed=3, epoch=2)
    assert a == epoch_batches(100, 10, seed=3, epoch=2)
    assert a != epoch_batches(100, 10, seed=3, epoch=3)
    assert a != epoch_batches(100, 10, seed=4, epoch=2)


def test_ranks_split_each_global_batch():
    whole = epoch_batches(64, 8, seed=0, epoch=1)
    r0 = epoch_batches(64, 8, seed=0, epoch=1, rank=0, world_size=2)
    r1 = epoch_batches(64, 8, seed=0, epoch=1, rank=1, world_size=2)
    assert [a + b for a, b in zip(r0, r1, strict=True)] == whole


def test_batch_not_divisible_by_processes_is_refused():
    with pytest.raises(
        ValueError, match="batch_size 9 must be a multiple of the number of processes 2"
    ):
        epoch_batches(64, 9, seed=0, epoch=1, world_size=2)


def test_split_never_puts_one_region_on_both_sides(dataset):
    train, held = split_by_harp(dataset.manifest, 0.2, seed=0)
    harp = dataset.manifest["harpnum"].to_numpy()
    assert set(harp[train]).isdisjoint(harp[held])
    assert len(train) + len(held) == len(harp) and len(set(harp[held])) == 5


def test_same_region_partners_are_the_region_within_the_window():
    harp = np.array([7, 7, 7, 9, 9, 7])
    hours = np.array([0.0, 6.0, 30.0, 0.0, 24.0, 24.0])
    partners = same_region_partners(harp, hours, 24.0)
    # a slow per-frame check of the definition
    for i in range(len(harp)):
        want = [
            j for j in range(len(harp)) if harp[j] == harp[i] and abs(hours[j] - hours[i]) <= 24
        ]
        assert sorted(partners[i].tolist()) == want
    assert sorted(partners[0].tolist()) == [0, 1, 5]  # 30 h away is outside


def test_partner_choice_is_seeded_and_within_the_candidates():
    partners = same_region_partners(
        np.repeat(np.arange(10), 5), np.tile(np.arange(5.0) * 6, 10), 12
    )
    batch = list(range(0, 50, 3))
    draw = lambda: pick_partners(batch, partners, torch.Generator().manual_seed(4))  # noqa: E731
    first = draw()
    assert first == draw()
    assert all(p in partners[i] for i, p in zip(batch, first, strict=True))
    assert any(p != i for i, p in zip(batch, first, strict=True))


def test_reduced_precision_on_cpu_is_refused():
    with pytest.raises(ValueError, match="precision 'bf16' needs a CUDA device; on cpu"):
        MixedPrecision("bf16", torch.device("cpu"))


def test_unknown_training_preset_is_named():
    with pytest.raises(ValueError, match="unknown GAN training preset 'huge'"):
        gan_train_config("huge")


# ------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class ToyConfig:
    """The fields fit reads from a training config."""

    preset: str = "toy"
    seed: int = 0
    epochs: int = 3
    batch_size: int = 8
    holdout_fraction: float = 0.2
    precision: str = "32"
    num_workers: int = 0

    def to_dict(self):
        return asdict(self)


class ToyTask(Task):
    """A linear regressor on the pixels: weights, SGD momentum, a per-epoch generator and
    draws from the global generator, all of which resume must carry over."""

    kind = "encoder"

    def __init__(self, context):
        self.context = context
        self.net = torch.nn.Linear(128 * 128, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=1e-4, momentum=0.9)
        self.scaler = context.amp.scaler()
        self.state = {"model": self.net, "optimizer": self.opt, "scaler": self.scaler}

    def begin_epoch(self, epoch):
        self.noise = epoch_generator(self.context.config.seed, epoch, 99)
        return {"lr": 1e-4}

    def step(self, x):
        target = torch.randn(len(x), generator=self.noise) + torch.rand(len(x))
        loss = ((self.net(x.flatten(1))[:, 0] - target) ** 2).mean()
        optimiser_step(loss, self.opt, self.scaler)
        return {"loss": loss.item()}

    def measure(self, epoch):
        return {"weight_norm": float(self.net.weight.detach().norm())}

    def update_best(self, row, best):
        if best is not None and best["loss"] < row["loss"]:
            return best
        return {"epoch": row["epoch"], "loss": row["loss"], "reason": "lowest loss"}


def test_fit_resumed_after_interruption_equals_uninterrupted_run(dataset, store):
    whole = fit(ToyTask, ToyConfig(), dataset, store, version="whole", progress=False)

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            ToyTask,
            ToyConfig(),
            dataset,
            store,
            version="cut",
            on_epoch_end=interrupt,
            progress=False,
        )
    resumed = fit(ToyTask, ToyConfig(), dataset, store, version="cut", resume=True, progress=False)
    assert _same_state(whole.task.net.state_dict(), resumed.task.net.state_dict())
    momentum = [f.task.opt.state_dict()["state"][0]["momentum_buffer"] for f in (whole, resumed)]
    assert torch.equal(*momentum)
    np.testing.assert_equal(_numbers(resumed.history), _numbers(whole.history))
    assert resumed.best == whole.best and len(whole.history) == 4  # epochs 0-3


def test_fit_checkpoints_every_epoch_and_the_best(dataset, store):
    fitted = fit(ToyTask, ToyConfig(epochs=2), dataset, store, version="toy", progress=False)
    names = {info.key.removeprefix(fitted.prefix) for info in store.list(fitted.prefix)}
    assert names == {"epoch-0001.pt", "epoch-0002.pt", "best.pt", "last.pt", "metrics.csv"}
    best = load_checkpoint(fitted.prefix + "best.pt", store=store, kind="encoder")
    assert best["epoch"] == fitted.best["epoch"] and best["best"] == fitted.best


# ------------------------------------------------------------------------- GAN runs


def test_gan_writes_a_checkpoint_every_epoch_through_the_store(gan_run):
    store, run = gan_run
    keys = {info.key.removeprefix(run.prefix) for info in store.list(run.prefix)}
    assert {f"epoch-000{e}.pt" for e in range(1, 5)} | {"best.pt", "last.pt", "metrics.csv"} <= keys
    assert {f"samples/epoch-000{e}.png" for e in range(1, 5)} <= keys
    assert run.prefix == "models/gan/tiny-seed0/"


def test_gan_checkpoint_records_provenance(gan_run, dataset):
    store, run = gan_run
    ckpt = load_checkpoint(run.prefix + "last.pt", store=store, kind="gan")
    assert ckpt["dataset"] == {"name": dataset.name, "version": dataset.version}
    assert (ckpt["preset"], ckpt["code_version"], ckpt["epoch"]) == ("tiny", "0.1.0", 4)
    assert {"loss_d", "loss_g", "acc_real", "acc_fake", "w1_mean"} <= ckpt["metrics"].keys()
    assert ckpt["config"]["model"]["width"] == 0.25


def test_gan_best_is_lowest_fake_accuracy_in_the_first_half(gan_run):
    _, run = gan_run
    first_half = [r for r in run.history if 1 <= r["epoch"] <= 2]
    lowest = min(r["acc_fake"] for r in first_half)
    assert run.best["epoch"] == max(r["epoch"] for r in first_half if r["acc_fake"] == lowest)
    assert "lowest discriminator accuracy on the 16 fixed generated images" in run.best["reason"]


def test_gan_metrics_csv_has_a_row_per_epoch_from_zero(gan_run):
    store, run = gan_run
    import io

    table = pd.read_csv(io.BytesIO(store.get_bytes(run.prefix + "metrics.csv")))
    assert table["epoch"].tolist() == [0, 1, 2, 3, 4]


def test_generator_is_rebuilt_from_the_checkpoint_alone(gan_run, tmp_path):
    store, run = gan_run
    path = store.get_file(run.prefix + "best.pt", tmp_path / "best.pt")
    G = load_generator(path)
    z = torch.randn(2, 100)
    ckpt = load_checkpoint(path, kind="gan")
    reference = type(run.generator)(run.generator.config)
    reference.load_state_dict(ckpt["generator"])
    assert torch.equal(G(z), reference.eval()(z))


@pytest.mark.slow
def test_gan_resume_after_interruption_equals_uninterrupted_run(dataset, store, tmp_path):
    whole = train_gan(gan_cfg(epochs=3), dataset, store, version="whole", progress=False)

    def interrupt(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(
            gan_cfg(epochs=3), dataset, store, version="cut", progress=False, on_epoch_end=interrupt
        )
    resumed = train_gan(
        gan_cfg(epochs=3), dataset, store, version="cut", resume=True, progress=False
    )
    assert _same_state(whole.generator.state_dict(), resumed.generator.state_dict())
    assert _same_state(whole.discriminator.state_dict(), resumed.discriminator.state_dict())
    np.testing.assert_equal(_numbers(resumed.history), _numbers(whole.history))


def test_existing_run_without_resume_is_an_error(gan_run, dataset):
    store, _ = gan_run
    with pytest.raises(
        FileExistsError, match="already holds checkpoints under models/gan/tiny-seed0/"
    ):
        train_gan(gan_cfg(epochs=4), dataset, store, progress=False)


def test_resume_with_another_config_is_refused(gan_run, dataset):
    store, _ = gan_run
    with pytest.raises(ValueError, match=r"its config differs in \['lr'\]"):
        train_gan(gan_cfg(epochs=4, lr=3e-4), dataset, store, resume=True, progress=False)


def test_missing_checkpoint_names_the_key(store):
    with pytest.raises(FileNotFoundError, match="no checkpoint at 'models/gan/nope/best.pt'"):
        load_generator("models/gan/nope/best.pt", store=store)


def test_checkpoint_of_the_other_kind_is_refused(gan_run):
    store, run = gan_run
    with pytest.raises(ValueError, match="is a gan checkpoint, not the encoder checkpoint"):
        load_encoder(run.prefix + "best.pt", store=store)


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="is not a sharpseek checkpoint"):
        load_checkpoint(path)


# ------------------------------------------------------------------------- encoder runs


def test_encoder_checkpoint_records_its_augmentation_set(encoder_run):
    store, run = encoder_run
    ckpt = load_checkpoint(run.prefix + "best.pt", store=store)
    assert ckpt["augment"]["name"] == "paper" and ckpt["augment"]["vflip"] is True
    _, augment = load_encoder(run.prefix + "best.pt", store=store)
    assert augment.name == "paper"


def test_encoder_metrics_have_loss_collapse_and_retrieval(encoder_run):
    _, run = encoder_run
    row = run.history[-1]
    assert -1 <= row["loss"] <= 1 and row["collapse"] > 0.1
    for key in ("retrieval_encoder", "retrieval_pca", "retrieval_physics"):
        assert 0 <= row[key] <= 1
    assert row["augmentation_robustness"] > 0


def test_encoder_is_rebuilt_from_the_checkpoint_alone(encoder_run):
    store, run = encoder_run
    model, _ = load_encoder(run.prefix + "last.pt", store=store)
    x = torch.rand(3, 1, 128, 128)
    assert torch.allclose(model.encode(x), run.model.encode(x), atol=1e-6)


def test_collapse_below_the_threshold_warns(dataset, store):
    with pytest.warns(CollapseWarning, match="collapse level .* is below 5"):
        train_encoder(enc_cfg(epochs=1, collapse_warning=5.0), dataset, store, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("pairs", ["augment", "same-region"])
def test_encoder_resume_after_interruption_equals_uninterrupted_run(dataset, store, pairs):
    cfg = enc_cfg(epochs=3, positive_pairs=pairs)
    whole = train_encoder(cfg, dataset, store, version="whole", progress=False)

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_encoder(cfg, dataset, store, version="cut", progress=False, on_epoch_end=interrupt)
    resumed = train_encoder(cfg, dataset, store, version="cut", resume=True, progress=False)
    assert _same_state(whole.model.state_dict(), resumed.model.state_dict())
    np.testing.assert_equal(_numbers(resumed.history), _numbers(whole.history))


# ------------------------------------------------------------------------- DDP (gloo, 2 CPUs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, dataset_path, store_root, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        ds = open_dataset(dataset_path)
        store = LocalStore(store_root)
        gan = train_gan(gan_cfg(epochs=1), ds, store, version="ddp", progress=False)
        enc = train_encoder(enc_cfg(epochs=1), ds, store, version="ddp", progress=False)
        for name, model in (("gan", gan.generator), ("encoder", enc.model)):
            flat = torch.cat([p.detach().flatten() for p in model.parameters()])
            gathered = [torch.zeros_like(flat) for _ in range(world_size)]
            dist.all_gather(gathered, flat)
            torch.save(gathered, os.path.join(out_dir, f"{name}-rank{rank}.pt"))
        # fit lets go of its DDP wrappers: one alive when the group goes aborts the process
        # at exit now and then (gloo: "terminate called without an active exception")
        wrappers = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
        Path(out_dir, f"wrappers-rank{rank}.txt").write_text(str(wrappers))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_result(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    mp.spawn(
        _ddp_worker,
        args=(2, _free_port(), str(dataset.path), str(root / "store"), str(root)),
        nprocs=2,
        join=True,
    )
    return root


@pytest.mark.slow
def test_ddp_gan_on_two_gloo_processes_equals_one_process(ddp_result, dataset, store):
    config = gan_cfg(epochs=1)
    single = train_gan(config, dataset, store, progress=False)
    ddp = load_checkpoint(ddp_result / "store/models/gan/ddp/last.pt", kind="gan")
    # Not bit-equal: gloo sums the ranks' float32 gradients in another order, and Adam's
    # division by sqrt(v) magnifies that noise where a gradient is near zero, up to a step of
    # the learning rate (at most 1.2e-5 in fc.weight at G's rate 2e-4, 2.8e-4 at 1e-3; the
    # mean over fc.weight 5e-6). A loss averaged per rank instead of over the global batch
    # (the codes' PSEP term before it was fixed) moved fc.weight by 6.4e-4 at 2e-4: 3.2 steps.
    # So: no weight more than half a step apart, and the mean a hundredth of a step.
    for key, value in single.generator.state_dict().items():
        difference = (ddp["generator"][key] - value).abs()
        assert difference.max() <= 0.5 * config.lr, key
        assert difference.mean() <= 0.01 * config.lr, key


@pytest.mark.slow
def test_ddp_keeps_the_replicas_identical(ddp_result):
    for name in ("gan", "encoder"):
        rank0, rank1 = torch.load(ddp_result / f"{name}-rank0.pt")
        assert torch.equal(rank0, rank1), name
    assert (ddp_result / "store/models/encoder/ddp/last.pt").is_file()
    for rank in (0, 1):
        assert (ddp_result / f"wrappers-rank{rank}.txt").read_text() == "0", rank


# ------------------------------------------------------------------------- quality measures


def test_retrieval_of_perfect_features_reaches_the_share_available():
    harp = np.repeat(np.arange(5), 12)
    t = np.tile(pd.date_range("2020-01-01", periods=12, freq="6h"), 5)
    features = harp[:, None] * 100.0 + np.arange(60)[:, None] % 12  # regions far apart
    share = same_region_retrieval(features, harp, t, k=10, window_hours=24)
    # the 10 nearest are the region's other frames: those within 24 h count (4 either side)
    expected = np.mean([sum(0 < abs(j - i) <= 4 for j in range(12)) for i in range(12)]) / 10
    assert share == pytest.approx(expected)


def test_retrieval_needs_more_frames_than_neighbours():
    with pytest.raises(ValueError, match="needs more than 10 frames, got 5"):
        same_region_retrieval(np.zeros((5, 3)), np.arange(5), pd.date_range("2020", periods=5))


def test_parameter_distances_are_zero_for_identical_distributions():
    rng = np.random.default_rng(0)
    table = {name: rng.normal(size=200) for name in ("tuf", "psep")}
    out = parameter_distances(table, table, names=("tuf", "psep"))
    assert out["w1_mean"] == pytest.approx(0) and out["ks_mean"] == pytest.approx(0)


def test_frechet_distance_of_a_shift_is_its_squared_length():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 3))
    assert frechet_distance(a, a + [3.0, 0, 4.0]) == pytest.approx(25.0, rel=1e-6)


def test_physics_features_are_standardised_with_nan_as_the_mean():
    out = physics_features({"tuf": np.array([1.0, 3.0, np.nan])}, names=("tuf",))
    assert np.allclose(out[:, 0], [-1.0, 1.0, 0.0])


def test_checkpoints_are_evaluated_on_the_regions_they_held_out(
    gan_run, encoder_run, dataset, tmp_path
):
    (gan_store, gan), (enc_store, enc) = gan_run, encoder_run
    gan_path = gan_store.get_file(gan.prefix + "best.pt", tmp_path / "gan.pt")
    enc_path = enc_store.get_file(enc.prefix + "best.pt", tmp_path / "enc.pt")
    report = evaluate_checkpoints(
        LocalStore(tmp_path / "empty"),
        gan=gan_path,
        encoder=enc_path,
        open_dataset=lambda name, version: dataset,
        n_generated=32,
        seed_blocks=(0, 100000),
    )
    held = load_checkpoint(gan_path)["splits"]["holdout_harpnums"]
    n_held = int(dataset.manifest["harpnum"].isin(held).sum())
    gan = report["gan"]
    assert (gan["n_generated"], gan["n_held_out"]) == (32, n_held)
    assert gan["n_train"] + n_held == len(dataset.manifest)  # the two sides are disjoint
    assert list(gan["blocks"]) == ["0", "100000"]
    first, second = gan["blocks"]["0"], gan["blocks"]["100000"]
    assert first["seeds"] == [0, 31] and second["seeds"] == [100000, 100031]
    for side in ("train", "held_out"):
        assert 0 <= first[side]["ks_mean"] <= 1 and first[side]["spectral_high_ratio"] > 0
    assert first["held_out"]["w1_tuf"] != second["held_out"]["w1_tuf"]  # other images
    assert first["held_out"]["frechet_simsiam"] > 0
    for space in ("pixels", "encoder"):
        assert first["memorisation"][space]["held_out_median"] > 0
    assert report["encoder"]["augmentations"] == "paper"
    assert report["encoder"]["n_frames"] == n_held and 0 <= report["encoder"]["retrieval_pca"] <= 1


# ------------------------------------------------------------------------- the "done when"


@pytest.fixture(scope="module")
def larger_dataset(tmp_path_factory):
    """60 regions x 6 frames: enough steps for the GAN to move (about 13 s to make)."""
    home = tmp_path_factory.mktemp("home60")
    ds = synthetic_dataset(Settings(home=home, preset="tiny"), regions=60, frames=6, seed=0)
    return open_dataset(home / "datasets" / ds.name / ds.version)


@pytest.mark.slow
def test_gan_parameter_distributions_end_closer_to_real_than_at_start(larger_dataset, store):
    config = gan_train_config("tiny", epochs=16, batch_size=8, fixed_size=64, grid_size=4, seed=0)
    run = train_gan(config, larger_dataset, store, progress=False)
    start = run.history[0]
    end = run.history[-3:]  # the last three epochs: a GAN's metrics swing from epoch to epoch
    w1_end = np.mean([r["w1_mean"] for r in end])
    ks_end = np.mean([r["ks_mean"] for r in end])
    # Measured with seed 0 on this machine (one thread), the tiny preset of issue 17 (its
    # noise field starts near the data's level, so W1 starts low): W1/std 1.57 -> 0.97, KS
    # 0.77 -> 0.55. The margins asserted are about half the changes measured.
    assert w1_end < 0.8 * start["w1_mean"]
    assert ks_end < start["ks_mean"] - 0.1


@pytest.fixture(scope="module")
def regions_120x12(tmp_path_factory):
    """120 regions x 12 frames at 6 h: 96 training regions, 24 held out (288 frames)."""
    home = tmp_path_factory.mktemp("home120x12")
    ds = synthetic_dataset(Settings(home=home, preset="tiny"), regions=120, frames=12, seed=0)
    return open_dataset(home / "datasets" / ds.name / ds.version)


@pytest.mark.slow
def test_tiny_encoder_beats_both_baselines_at_finding_the_same_region(regions_120x12, store):
    """The trained tiny encoder (same-region pairs, backbone features indexed) finds frames of
    the same region within 24 h more often than PCA of the pixels and than nearest
    neighbours in standardised physical-parameter space, on held-out regions."""
    run = train_encoder(
        encoder_train_config("tiny", epochs=10), regions_120x12, store, progress=False
    )
    start, end = run.history[0], run.history[-1]
    # Measured with seed 0 (one thread): untrained 0.342 -> trained 0.467, PCA 0.428, physical
    # parameters 0.284 on the machine of 2026-11; trained 0.446 on the AVX2 machine of
    # 2026-12-07 (torch's CPU kernels round differently there, and the run follows). The
    # margins asserted are about half the smaller of those measured; the encoder must beat
    # PCA on either.
    figures = {k: round(v, 3) for k, v in end.items() if k.startswith("retrieval")}
    assert end["retrieval_encoder"] > start["retrieval_encoder"] + 0.05, (start, figures)
    assert end["retrieval_encoder"] > end["retrieval_pca"] + 0.008, figures
    assert end["retrieval_encoder"] > end["retrieval_physics"] + 0.08, figures


# ------------------------------------------------------------------------- the sub-app


@pytest.fixture(scope="module")
def cli():
    import typer
    from typer.testing import CliRunner

    from sharpseek.cli.train import evaluate_app, train_app

    app = typer.Typer()
    app.add_typer(train_app, name="train")
    app.add_typer(evaluate_app, name="evaluate")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "command",
    [["train", "gan"], ["train", "encoder"], ["train", "augmentations"], ["evaluate", "models"]],
)
def test_every_training_command_has_help(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_cli_trains_a_gan_and_names_the_best_checkpoint(cli, dataset):
    home = dataset.path.parents[2]
    result = cli(
        "train",
        "gan",
        "--home",
        home,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--width",
        "0.25",
        "--version",
        "cli",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "best: models/gan/cli/best.pt = epoch 1" in " ".join(result.output.split())


def test_cli_unknown_augmentation_set_is_named(cli, dataset):
    result = cli("train", "encoder", "--home", dataset.path.parents[2], "--augment", "wild")
    assert result.exit_code == 2
    assert "unknown augmentation set 'wild'" in " ".join(result.output.split())


def test_cli_evaluate_without_models_names_the_missing_current_ones(cli, tmp_path):
    result = cli("evaluate", "models", "--home", tmp_path)
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "no current models" in output
    assert "models/gan/tiny-seed0/last.pt" in output
