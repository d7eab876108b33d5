"""sharpseek.search.spaces: the region and symmetric embedding spaces (issue 17), with a real
(untrained) SimSiam encoder and the physics module."""

import json

import numpy as np
import pytest
import torch

from sharpseek.models.simsiam import SimSiam, simsiam_config
from sharpseek.physics.parameters import compute_parameters
from sharpseek.search.query_map import GeneratedQueryMap, generated_vectors
from sharpseek.search.spaces import (
    SPACES,
    SYMMETRIES,
    SpaceEmbedder,
    check_space,
    space_vectors,
    symmetry,
)
from test_physics import bipole


@pytest.fixture(scope="module")
def embed():
    torch.manual_seed(0)
    model = SimSiam(simsiam_config("tiny")).eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(np.ascontiguousarray(images), dtype=torch.float32)[:, None]
            return model.represent(x).double().numpy()

    return run


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = [
        bipole(rng.uniform(-60, 60), separation=rng.uniform(15, 45), width=rng.uniform(2, 6))
        + rng.normal(0, 0.02, (128, 128))
        for _ in range(n)
    ]
    return np.clip(out, -1, 1).astype(np.float32)


def test_the_sixteen_symmetries_are_distinct_and_a_group():
    image = _images(1)[0]
    orbit = [symmetry(image[None], *g)[0] for g in SYMMETRIES]
    assert len(SYMMETRIES) == 16
    assert len({o.tobytes() for o in orbit}) == 16  # a generic image: 16 different images
    # closed under composition: g(h(x)) is again in the orbit
    keys = {o.tobytes() for o in orbit}
    for g in SYMMETRIES[::3]:
        for h in SYMMETRIES[::5]:
            assert symmetry(symmetry(image[None], *h), *g)[0].tobytes() in keys


def test_symmetric_vectors_are_the_same_for_every_symmetry_of_the_image(embed):
    images = _images()
    base = space_vectors(embed, images, "symmetric")
    region = space_vectors(embed, images, "region")
    moved_far = 0.0
    for g in SYMMETRIES:
        moved = symmetry(images, *g)
        assert np.allclose(space_vectors(embed, moved, "symmetric"), base, atol=1e-5)
        moved_far = max(
            moved_far, float(np.abs(space_vectors(embed, moved, "region") - region).max())
        )
    # the region space does tell them apart (the test would pass for any constant otherwise)
    assert moved_far > 100 * 1e-5


def test_region_vectors_are_the_encoders_embedding_and_both_come_from_one_pass(embed):
    images = _images()
    calls = []

    def counted(x):
        calls.append(len(x))
        return embed(x)

    both = space_vectors(counted, images, SPACES)
    assert set(both) == set(SPACES) and len(calls) == 16  # the region space reuses g = 1
    assert np.allclose(both["region"], embed(images), atol=1e-6)
    assert both["region"].dtype == np.float32 and both["symmetric"].shape == both["region"].shape
    assert np.allclose(
        both["symmetric"], np.mean([embed(symmetry(images, *g)) for g in SYMMETRIES], 0), atol=1e-5
    )


def test_tuf_r_psep_grad_are_the_same_under_every_symmetry():
    """Why the symmetric space is a space for physics: the target parameters do not change."""
    images = _images(2, seed=3)
    ref = compute_parameters(images)
    for g in SYMMETRIES:
        got = compute_parameters(symmetry(images, *g))
        for name in ("tuf", "r", "psep", "grad"):
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, err_msg=f"{name} {g}")


def test_an_unknown_space_is_refused_by_name():
    with pytest.raises(ValueError, match="'sym'.*region, symmetric"):
        check_space("sym")
    with pytest.raises(ValueError, match="unknown embedding space"):
        space_vectors(lambda x: x.reshape(len(x), -1)[:, :4], _images(1), ("region", "sym"))
    with pytest.raises(ValueError, match="unknown embedding space"):
        SpaceEmbedder(object(), "physics")


class _Backend:
    """A backend whose embedding is the first 8 pixels of the top row."""

    def embed(self, images):
        return np.asarray(images)[:, 0, :8].astype(np.float32)

    def versions(self):
        return {"encoder": "enc-e0001-aaaa", "gan": "gan-e0001-bbbb"}


def test_a_query_map_carries_its_space_and_generated_vectors_follow_it(tmp_path):
    rng = np.random.default_rng(0)
    frames, generated = rng.standard_normal((50, 8)), 2 + rng.standard_normal((40, 8))
    fitted = GeneratedQueryMap.fit(
        frames, generated, encoder_version="enc-e0001-aaaa", generator_version="gan-e0001-bbbb",
        frames={"dataset": "d/v1", "count": 50}, first_seed=10**6, space="symmetric",
    )  # fmt: skip
    again = GeneratedQueryMap.from_json(fitted.to_json())
    assert again.space == "symmetric"
    images = rng.uniform(-1, 1, (3, 128, 128)).astype(np.float32)
    expected = fitted.apply(space_vectors(_Backend().embed, images, "symmetric"))
    assert np.allclose(generated_vectors(_Backend(), images, again), expected, atol=1e-6)
    # a map stored before there were spaces reads as the region space's
    legacy = json.loads(fitted.to_json())
    del legacy["space"]
    assert GeneratedQueryMap.from_json(json.dumps(legacy)).space == "region"
    key = GeneratedQueryMap.key("enc", "gan", "d/v1")
    assert key == "query-maps/enc/gan--d-v1.json"  # the region map's key is the old key
    assert GeneratedQueryMap.key("enc", "gan", "d/v1", "symmetric") == (
        "query-maps/enc/gan--d-v1--symmetric.json"
    )


class _Dataset:
    """The frames of :func:`test_index.make_rows`, each image a constant row of its vector."""

    def __init__(self, rows, images):
        self.manifest, self._images, self.name, self.version = rows, images, "d", "v1"

    def images(self, rows):
        return self._images[np.asarray(rows, int)]


class _GeneratingBackend(_Backend):
    def generate(self, seeds, parameters=False):
        rng = np.random.default_rng(seeds[0])
        images = rng.uniform(-1, 1, (len(seeds), 128, 128)).astype(np.float32)
        return type("G", (), {"images": images})()


def test_the_map_reads_the_frames_vectors_from_the_index_and_gets_the_same_map(tmp_path):
    from sharpseek.search.index import IndexConfig, iter_batches, open_index
    from sharpseek.search.query_map import fit_query_map
    from test_index import make_rows

    rows = make_rows(regions=6, frames=5)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (len(rows), 128, 128)).astype(np.float32)
    dataset, backend = _Dataset(rows, images), _GeneratingBackend()
    vectors = space_vectors(backend.embed, images)
    config = IndexConfig(dim=8, spaces=SPACES)
    with open_index("embedded", path=tmp_path / "index", config=config) as index:
        index.reindex("enc-e0001-aaaa", iter_batches(rows, vectors), dataset_version="v1")
        calls = []
        counting = _GeneratingBackend()
        counting.embed = lambda x: calls.append(len(x)) or backend.embed(x)
        kwargs = {"frames": 20, "generated": 4, "first_seed": 10**6, "space": "symmetric"}
        from_index = fit_query_map(counting, dataset, index=index, **kwargs)
        embedded_again = fit_query_map(backend, dataset, **kwargs)
        assert sum(calls) == 16 * 4  # only the generated images were embedded
        # another encoder's backend does not read this collection: it embeds the frames
        calls.clear()
        counting.versions = lambda: {"encoder": "enc-e0002-cccc", "gan": "gan-e0001-bbbb"}
        fit_query_map(counting, dataset, index=index, **kwargs)
        assert sum(calls) == 16 * (20 + 4)
    for name in ("mean_frames", "std_frames", "mean_generated", "std_generated"):
        assert np.allclose(getattr(from_index, name), getattr(embedded_again, name), atol=1e-6)
