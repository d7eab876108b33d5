"""sharpseek.search.query_map: generated queries moved onto the indexed frames' embedding
distribution (issue 17's hubness cure), on micro arrays."""

import numpy as np
import pytest

from sharpseek.science.evaluate import hubness
from sharpseek.search.evaluate_retrieval import _nearest
from sharpseek.search.query_map import GeneratedQueryMap, generated_vectors

META = {"encoder_version": "enc-e0001-aaaa", "generator_version": "gan-e0001-bbbb"}


def _fit(frames, generated):
    return GeneratedQueryMap.fit(
        frames, generated, frames={"dataset": "d/v1", "count": len(frames)}, first_seed=10**6,
        **META,
    )  # fmt: skip


def _clouds(seed=0, n_frames=400, n_generated=300, dim=8):
    """Frames ~ N(0, I); generated embeddings a narrow cloud off to one side (what an encoder
    makes of a GAN's off-data texture): mean 3 e_0, spread 0.2."""
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((n_frames, dim))
    offset = np.zeros(dim)
    offset[0] = 3.0

    def generated(n):
        return offset + 0.2 * rng.standard_normal((n, dim))

    return frames, generated(n_generated), generated(n_generated)


def test_the_map_gives_generated_embeddings_the_frames_mean_and_spread():
    frames, reference, _ = _clouds()
    moved = _fit(frames, reference).apply(reference)
    assert moved.dtype == np.float32 and moved.shape == reference.shape
    assert np.allclose(moved.mean(0), frames.mean(0), atol=1e-5)
    assert np.allclose(moved.std(0), frames.std(0), rtol=1e-4)


def test_the_map_is_the_identity_when_the_generator_matches_the_frames():
    frames, _, _ = _clouds()
    same = _fit(frames, frames)
    assert np.allclose(same.apply(frames[:7]), frames[:7], atol=1e-5)


def test_the_map_breaks_the_hubs_of_an_offset_narrow_query_cloud():
    # queries (seeds outside the map's) of the same generator as the reference it is fitted on
    frames, reference, queries = _clouds()
    raw = hubness(_nearest(queries, frames, k=10), len(frames))
    moved = hubness(_nearest(_fit(frames, reference).apply(queries), frames, k=10), len(frames))
    assert raw["top5_share"] > 0.5 and raw["distinct_nearest"] < 40  # a few frames take all
    assert moved["distinct_nearest"] > 3 * raw["distinct_nearest"]
    assert moved["top5_share"] < raw["top5_share"] / 3
    assert moved["max_k_occurrence"] < raw["max_k_occurrence"] / 2


def test_a_constant_dimension_keeps_scale_one():
    frames, reference, _ = _clouds()
    frames[:, 3] = 1.5
    reference[:, 3] = 0.5
    moved = _fit(frames, reference).apply(reference)
    assert np.allclose(moved[:, 3], 1.5)  # shifted onto the frames' value, not divided by 0


def test_the_stored_map_round_trips_and_names_its_models():
    frames, reference, _ = _clouds()
    fitted = _fit(frames, reference)
    again = GeneratedQueryMap.from_json(fitted.to_json())
    assert np.array_equal(again.apply(reference), fitted.apply(reference))
    assert (again.frames, again.first_seed, again.generated) == (
        {"dataset": "d/v1", "count": 400},
        10**6,
        300,
    )
    key = GeneratedQueryMap.key("enc-e0001-aaaa", "gan-e0001-bbbb", "synthetic/v0002")
    assert key == "query-maps/enc-e0001-aaaa/gan-e0001-bbbb--synthetic-v0002.json"
    again.check(**{"encoder_version": "enc-e0001-aaaa", "generator_version": "gan-e0001-bbbb"})
    with pytest.raises(ValueError, match="fitted for encoder enc-e0001-aaaa"):
        again.check("enc-e0002-cccc", "gan-e0001-bbbb")


class _Backend:
    """Embeds an image as its first 8 pixels; reports fixed versions."""

    def __init__(self, gan="gan-e0001-bbbb"):
        self.gan = gan

    def embed(self, images):
        return np.asarray(images, np.float32).reshape(len(images), -1)[:, :8]

    def versions(self):
        return {"encoder": "enc-e0001-aaaa", "gan": self.gan}


def test_generated_vectors_embed_then_move_with_the_backends_own_map():
    frames, reference, _ = _clouds()
    fitted = _fit(frames, reference)
    images = np.zeros((2, 128, 128), np.float32)
    images[:, 0, :8] = reference[:2]
    assert np.allclose(generated_vectors(_Backend(), images, fitted), fitted.apply(reference[:2]))
    assert np.allclose(generated_vectors(_Backend(), images, None), reference[:2], atol=1e-6)
    with pytest.raises(ValueError, match="GAN gan-e0002"):  # another GAN: refused, not misused
        generated_vectors(_Backend("gan-e0002"), images, fitted)


@pytest.mark.parametrize(
    "frames, generated, message",
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "one dim"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 frames"),
    ],
)
def test_bad_embeddings_are_refused(frames, generated, message):
    with pytest.raises(ValueError, match=message):
        _fit(frames, generated)
