"""The flare-productive direction (issue 23): the classifier, its held-out-region validation,
and the direction fitted from its labels on a toy generator with a known flare axis."""

from __future__ import annotations

import numpy as np
import pytest

from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions import DirectionMethod, DirectionSet, configured_strength
from sharpseek.science.flare_direction import (
    FLARE_DIRECTION,
    FLARE_FEATURES,
    FlareClassifier,
    fit_flare_direction,
    flare_classifier_of,
    region_split,
    train_flare_classifier,
)
from test_outlook import flare_settings  # noqa: F401  (the fixture: an index with flares)

LATENT = 8
#: The toy's field strength (hence TUF, R, ... and its flares) grows along this axis.
FLARE_AXIS = np.eye(LATENT)[0] * 0.6 + np.eye(LATENT)[3] * 0.8
#: Its polarity separation grows along this one (no effect on flares).
SEPARATION_AXIS = np.eye(LATENT)[1]
#: A fixed random projection of the pooled image: the toy's "encoder".
_PROJECTION = np.random.default_rng(5).standard_normal((256, 6)) / 16


def toy_generate(z: np.ndarray) -> np.ndarray:
    """A bipole whose amplitude follows z . FLARE_AXIS and separation z . SEPARATION_AXIS."""
    z = np.asarray(z, dtype=np.float64)
    amplitude = 0.2 + 0.7 / (1 + np.exp(-(z @ FLARE_AXIS)))  # (n,) in b units
    separation = 24 + 10 * np.tanh(z @ SEPARATION_AXIS / 2)  # (n,) model px
    y, x = np.mgrid[:128, :128].astype(np.float64)
    xp = (64 + separation / 2)[:, None, None]
    xn = (64 - separation / 2)[:, None, None]
    blob = lambda cx: np.exp(-((x - cx) ** 2 + (y - 64) ** 2) / (2 * 5.0**2))  # noqa: E731
    return (amplitude[:, None, None] * (blob(xp) - blob(xn))).astype(np.float32)


def toy_embed(images: np.ndarray) -> np.ndarray:
    """(n, 6): the 16x16 mean-pooled image through a fixed random projection."""
    pooled = np.asarray(images, np.float64).reshape(-1, 16, 8, 16, 8).mean(axis=(2, 4))
    return pooled.reshape(len(pooled), -1) @ _PROJECTION


def toy_frames(n_regions: int = 60, frames: int = 5, seed: int = 0):
    """Observed "frames" of the toy: regions of a few frames near one z each; a region flares
    (>= M within 24 h) with a probability rising with its field strength."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_regions, LATENT))
    z = np.repeat(centres, frames, axis=0) + 0.2 * rng.standard_normal((n_regions * frames, LATENT))
    regions = np.repeat([f"toy:{i}" for i in range(n_regions)], frames)
    images = toy_generate(z)
    chance = 1 / (1 + np.exp(-(3 * (z @ FLARE_AXIS) - 1)))
    flared = rng.random(len(z)) < chance
    return compute_parameters(images), toy_embed(images), flared, regions


@pytest.fixture(scope="module")
def toy_set():
    """Physical directions of the toy (TUF, R, PSEP), then its flare direction."""
    from sharpseek.science.directions import fit_directions

    method = DirectionMethod(fit="ridge", step="spread")
    directions = fit_directions(
        toy_generate,
        gan_version="toy-1",
        latent_dim=LATENT,
        n=600,
        parameters=("tuf", "r", "psep"),
        batch_size=200,
        method=method,
    )
    parameters, vectors, flared, regions = toy_frames()
    classifier = train_flare_classifier(parameters, vectors, flared, regions, components=4)
    boundary = fit_flare_direction(
        toy_generate,
        toy_embed,
        classifier,
        directions,
        n=600,
        batch_size=200,
        calibration_eps=np.linspace(-2, 2, 5),
        calibration_n_z=40,
    )
    return directions, classifier, boundary


@pytest.mark.slow
def test_the_flare_direction_recovers_the_toy_flare_axis(toy_set):
    directions, classifier, boundary = toy_set
    cosine = float(boundary.normal @ FLARE_AXIS)
    print(f"cosine of the fitted flare direction with the toy's flare axis: {cosine:.3f}")
    assert cosine > 0.9
    assert abs(boundary.normal @ SEPARATION_AXIS) < 0.3
    assert boundary.accuracy > 0.8
    assert classifier.validation["auc"] > 0.7  # held-out regions: the toy's flares are learnable
    assert boundary.extra["cosines"]["tuf"] == pytest.approx(
        directions["tuf"].normal @ boundary.normal
    )


@pytest.mark.slow
def test_the_flare_direction_is_calibrated_and_judged_like_the_others(toy_set, tmp_path):
    directions, _, _ = toy_set
    curves = directions.calibration[FLARE_DIRECTION]
    median = np.asarray(curves[FLARE_DIRECTION]["median"])
    assert np.all(np.diff(median) > 0)  # the probability rises along +eps
    strength = configured_strength(directions, FLARE_DIRECTION, _strong())
    assert not strength.weak, strength.reason
    from sharpseek.data.local_store import LocalStore

    store = LocalStore(tmp_path)
    directions.save(store)
    again = DirectionSet.load(store, "toy-1")
    assert FLARE_DIRECTION in again.boundaries
    reloaded = flare_classifier_of(again)
    images = toy_generate(np.random.default_rng(3).standard_normal((5, LATENT)))
    np.testing.assert_allclose(
        reloaded.label_images(images, toy_embed),
        flare_classifier_of(directions).label_images(images, toy_embed),
    )


def _strong():
    from sharpseek.config import DirectionsSettings

    return DirectionsSettings()


def test_validation_regions_are_never_trained_on():
    """Labels that are pure noise per region, with features that identify the region: a
    classifier that saw a validation region would score it far above chance; one that did
    not cannot."""
    rng = np.random.default_rng(1)
    n_regions, frames = 80, 6
    regions = np.repeat([f"r{i}" for i in range(n_regions)], frames)
    region_code = rng.standard_normal((n_regions, 64))
    vectors = np.repeat(region_code, frames, axis=0) + 0.01 * rng.standard_normal(
        (n_regions * frames, 64)
    )
    flared = np.repeat(rng.random(n_regions) < 0.5, frames)
    parameters = {p: rng.random(len(regions)) for p in FLARE_FEATURES}
    leaky = train_flare_classifier(
        parameters, vectors, flared, regions, components=64, C=100.0, validation_fraction=0.3
    )
    assert leaky.validation["auc"] < 0.75  # chance, give or take 24 regions' noise
    val = region_split(regions, 0.3, 0)
    assert not set(regions[val]) & set(regions[~val])
    assert leaky.validation["validation_regions"] == len(set(regions[val]))
    # the same features do identify a region the classifier trained on (the check can fail)
    train = ~val
    p = leaky.probability({k: v[train] for k, v in parameters.items()}, vectors[train])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(flared[train], p) > 0.9


def test_region_split_keeps_regions_whole_and_is_seeded():
    regions = np.repeat(np.arange(10).astype(str), 3)
    a, b = region_split(regions, 0.3, 7), region_split(regions, 0.3, 7)
    np.testing.assert_array_equal(a, b)
    for r in np.unique(regions):
        assert len(set(a[regions == r])) == 1
    assert len(np.unique(regions[a])) == 3


def _frames(n: int = 40, regions: int = 8):
    rng = np.random.default_rng(0)
    parameters = {p: rng.random(n) for p in FLARE_FEATURES}
    return parameters, rng.standard_normal((n, 5)), rng.random(n) < 0.3, np.arange(n) % regions


def test_one_outcome_class_is_refused_naming_it():
    parameters, vectors, _, regions = _frames()
    with pytest.raises(ValueError, match=r"all 40 frames had no flare >= M .*one class"):
        train_flare_classifier(parameters, vectors, np.zeros(40, bool), regions)


def test_too_few_frames_are_refused_naming_them():
    parameters, vectors, flared, regions = _frames(n=10)
    with pytest.raises(ValueError, match="only 10 frames with a known 24 h outcome"):
        train_flare_classifier(parameters, vectors, flared, regions)


def test_too_few_regions_are_refused():
    parameters, vectors, flared, _ = _frames()
    with pytest.raises(ValueError, match="frames of only 2 region"):
        train_flare_classifier(parameters, vectors, flared, np.arange(40) % 2)


def test_a_missing_parameter_is_named():
    parameters, vectors, flared, regions = _frames()
    del parameters["r"]
    with pytest.raises(ValueError, match=r"parameters \['r'\] missing"):
        train_flare_classifier(parameters, vectors, flared, regions)


def test_no_flare_catalogue_gives_one_line_naming_it(tmp_path):
    """An index whose frames carry no outcome (no catalogue loaded): the stage's frames
    refuse with the outlook's own message."""
    from sharpseek.config import Settings
    from sharpseek.pipeline.flare_direction_stage import flare_training_frames

    class NoOutcomes:
        def scan(self, keys):
            yield {"record_id": "a", "series": "synthetic", "outcome_24h_status": None}

    with pytest.raises(ValueError, match="no synthetic frame of the index has a 24 h outcome"):
        flare_training_frames(NoOutcomes(), Settings(home=tmp_path, preset="tiny"))


def test_the_classifier_refuses_another_encoders_embedding():
    parameters, vectors, flared, regions = _frames()
    classifier = train_flare_classifier(parameters, vectors, flared, regions, components=2)
    assert isinstance(FlareClassifier.from_dict(classifier.to_dict()), FlareClassifier)
    with pytest.raises(ValueError, match="reads 5-d embeddings"):
        classifier.probability(parameters, vectors[:, :3])


def test_the_frames_are_the_indexed_known_outcomes(flare_settings):  # noqa: F811
    """On tests/test_flares.py's frames: known outcomes only, flared = a flare >= M within
    24 h, with their regions and embeddings (the catalogue's version named)."""
    from sharpseek.pipeline.flare_direction_stage import flare_training_frames
    from sharpseek.pipeline.index_plans import open_settings_index

    settings_ = flare_settings.model_copy(
        update={"flares": flare_settings.flares.model_copy(update={"direction_frames": "real"})}
    )
    with open_settings_index(settings_) as index:
        frames = flare_training_frames(index, settings_)
    assert frames["vectors"].shape == (3, 4)  # 101 and 104: outcome unknown, left out
    # 100: M1.0 at its first T_REC, C1.0 only after its second; 102: X9.3 after
    assert sorted(zip(frames["regions"], frames["flared"].tolist(), strict=True)) == [
        ("hmi.sharp_cea_720s:100", False),
        ("hmi.sharp_cea_720s:100", True),
        ("hmi.sharp_cea_720s:102", True),
    ]
    assert frames["catalogues"]


@pytest.mark.slow
def test_the_flare_direction_is_no_physical_target(toy_set):
    """Targets are measured parameters; the flare direction is shifted along, not solved."""
    from sharpseek.science.directions import Target, solve_targets

    directions, _, _ = toy_set
    with pytest.raises(ValueError, match=r"targets are physical parameters .* not \['flare'\]"):
        solve_targets(toy_generate, directions, np.zeros(LATENT), [Target.parse("flare=x2")])


@pytest.mark.slow
def test_the_ui_offers_the_flare_slider_last_with_its_strength(toy_set, tmp_path):
    from sharpseek.config import Settings
    from sharpseek.ui.workbench import Workbench

    class Backend:  # only what the Shift page's list asks: the stored set
        def load_directions(self):
            return toy_set[0]

    bench = Workbench(Settings(home=tmp_path, preset="tiny"), backend=Backend())
    assert bench.shift_parameters() == [
        "tuf",
        "psep",
        "r",
        FLARE_DIRECTION,
    ]  # SHIFT_PARAMETERS' order
    strength = bench.strength(FLARE_DIRECTION)
    assert strength is not None and not strength.weak
    median, low, high = bench.calibrated(FLARE_DIRECTION, 1.0)
    assert 0 < low <= median <= high < 1  # the classifier's probability, not a parameter
