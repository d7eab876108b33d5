"""Tests of sharpseek.search.picture: the picture re-ranking of generated queries' candidates
(issue 17). Expected values come from slow obvious loops (block means pixel by pixel, the
gradient as differences of neighbouring pixels written out, the 16 symmetries with numpy's
rot90/transpose/negation) and from cases with a known answer (a frame is at distance 0 from
every symmetric copy of itself; a uniform field has no gradient, a ramp a constant one)."""

from __future__ import annotations

import numpy as np
import pytest

from sharpseek.config import Settings
from sharpseek.search.picture import (
    PICTURES,
    PictureRerank,
    coarse_pictures,
    orbit_pictures,
    picture_distances,
    rerank_order,
)


def slow_gradient_magnitude(image):
    """|grad b| per pixel written out: half the difference of the two neighbours inside, the
    difference with the one neighbour on the border (rows: y, columns: x)."""
    x = image.astype(np.float64)
    gy, gx = np.empty_like(x), np.empty_like(x)
    gy[1:-1], gy[0], gy[-1] = (x[2:] - x[:-2]) / 2, x[1] - x[0], x[-1] - x[-2]
    gx[:, 1:-1], gx[:, 0], gx[:, -1] = (
        (x[:, 2:] - x[:, :-2]) / 2,
        x[:, 1] - x[:, 0],
        x[:, -1] - x[:, -2],
    )
    return np.sqrt(gx**2 + gy**2)


def slow_picture(image, pool, picture="signed"):
    """Block means by loops, then sign * sqrt(|.|) (signed), or the square root of the block
    means of |grad b| (gradient); flattened row by row."""
    h, w = image.shape
    field = slow_gradient_magnitude(image) if picture == "gradient" else image
    out = []
    for i in range(0, h, pool):
        for j in range(0, w, pool):
            m = float(np.mean(field[i : i + pool, j : j + pool], dtype=np.float64))
            out.append(np.sign(m) * np.sqrt(abs(m)))
    return np.array(out)


def slow_symmetries(image):
    """The 16 images of rotations by 90 deg, with and without a transpose, times +-1."""
    out = []
    for sign in (1, -1):
        for reflect in (False, True):
            for turns in range(4):
                x = np.rot90(image, turns)
                out.append(sign * (x.T if reflect else x))
    return out


def slow_picture_distance(query, frame, pool, picture="signed"):
    target = slow_picture(frame, pool, picture)
    return min(
        np.linalg.norm(slow_picture(g, pool, picture) - target) for g in slow_symmetries(query)
    )


def _images(n, seed=0, size=32):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, size, size)).astype(np.float32)


@pytest.mark.parametrize("picture", PICTURES)
def test_coarse_pictures_are_the_slow_block_loops(picture):
    images = _images(3)
    for pool in (1, 4, 8):
        got = coarse_pictures(images, pool, picture)
        assert got.shape == (3, (32 // pool) ** 2) and got.dtype == np.float32
        for image, row in zip(images, got, strict=True):
            assert np.allclose(row, slow_picture(image, pool, picture), atol=1e-5)


def test_gradient_pictures_of_a_uniform_field_and_a_ramp():
    """No gradient in a uniform field; a ramp rising 0.01 per pixel along x has |grad b| =
    0.01 everywhere (borders included), so every block reads sqrt(0.01) = 0.1."""
    uniform = np.full((1, 32, 32), 0.7, np.float32)
    assert np.allclose(coarse_pictures(uniform, 8, "gradient"), 0, atol=1e-6)
    ramp = np.tile(np.arange(32, dtype=np.float32) * 0.01, (32, 1))[None]
    assert np.allclose(coarse_pictures(ramp, 8, "gradient"), 0.1, atol=1e-5)
    assert np.allclose(coarse_pictures(-ramp, 8, "gradient"), 0.1, atol=1e-5)  # sign-blind


@pytest.mark.parametrize("picture", PICTURES)
def test_picture_distance_is_the_nearest_of_the_querys_sixteen_symmetries(picture):
    query, *others = _images(4, seed=1)
    frames = np.stack([*slow_symmetries(query), *others])  # 16 copies, then 3 other images
    got = picture_distances(orbit_pictures(query, 4, picture), coarse_pictures(frames, 4, picture))
    assert np.allclose(got[:16], 0, atol=1e-5)  # every symmetric copy is the same picture
    expected = [slow_picture_distance(query, f, 4, picture) for f in others]
    assert np.allclose(got[16:], expected, rtol=1e-5) and (got[16:] > 0.1).all()


def test_a_signed_picture_ignores_structure_finer_than_its_blocks():
    flat = np.full((1, 32, 32), 0.25, np.float32)
    parity = np.indices((32, 32)).sum(0) % 2
    checker = flat + np.where(parity, 0.2, -0.2).astype(np.float32)[None]  # +-0.2 per pixel
    d = picture_distances(
        orbit_pictures(flat[0], 8, "signed"), coarse_pictures(checker, 8, "signed")
    )
    assert d[0] == pytest.approx(0, abs=1e-6)  # same 8 x 8 means: the same picture


def test_a_gradient_picture_sees_where_opposite_polarities_meet():
    """Two bipoles of the same flux, one with its polarities touching and one with them 12 px
    apart: the gradient picture of the touching pair is bright on their shared boundary, that
    of the separated pair on the spots' outer edges. A weaker copy of the touching pair is
    nearer to it than to the separated pair."""
    touching = np.zeros((32, 32), np.float32)
    touching[12:20, 8:16], touching[12:20, 16:24] = 0.8, -0.8
    apart = np.zeros((32, 32), np.float32)
    apart[12:20, 2:10], apart[12:20, 22:30] = 0.8, -0.8
    query = touching * 0.9
    d = picture_distances(
        orbit_pictures(query, 8, "gradient"),
        coarse_pictures(np.stack([touching, apart]), 8, "gradient"),
    )
    assert d[0] < d[1]


def test_rerank_order_weighs_relative_distances_and_keeps_ties_in_embedding_order():
    embedding = np.array([1.0, 1.1, 1.2, 3.0])
    picture = np.array([4.0, 1.0, 4.0, 0.0])
    # weight 0: the embedding order, whatever the pictures
    assert rerank_order(embedding, picture, 0.0).tolist() == [0, 1, 2, 3]
    # score = d / median(d) + w p / median(p), medians 1.15 and 2.5
    for w in (0.5, 2.0, 10.0):
        score = embedding / 1.15 + w * picture / 2.5
        expected = np.argsort(score, kind="stable")
        assert rerank_order(embedding, picture, w).tolist() == expected.tolist()
    assert rerank_order(embedding, picture, 2.0)[0] == 1  # close in both
    assert rerank_order(embedding, picture, 10.0)[0] == 3  # the same picture, farther
    same = np.ones(4)
    assert rerank_order(same, same, 2.0).tolist() == [0, 1, 2, 3]  # ties: embedding order
    assert rerank_order(np.zeros(4), np.zeros(4), 2.0).tolist() == [0, 1, 2, 3]  # medians 0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: coarse_pictures(_images(1), 5, "signed"), "pool_px 5 must divide"),
        (lambda: coarse_pictures(np.zeros(5), 1, "gradient"), r"\(n, H, W\)"),
        (lambda: coarse_pictures(np.zeros((1, 1, 1)), 1, "gradient"), "2 x 2 px or more"),
        (lambda: coarse_pictures(_images(1), 4, "flux"), "unknown picture 'flux'"),
        (lambda: PictureRerank(picture="flux"), "unknown picture 'flux': one of gradient"),
        (lambda: orbit_pictures(np.zeros((8, 16)), 4, "signed"), "must be square"),
        (lambda: picture_distances(np.zeros((16, 4)), np.zeros((3, 5))), "share m"),
        (lambda: rerank_order(np.zeros(3), np.zeros(4), 1.0), r"two \(k,\) arrays"),
        (lambda: rerank_order(np.zeros(3), np.zeros(3), -1.0), "picture_weight must be >= 0"),
    ],
)
def test_bad_inputs_are_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_settings_give_the_rerank_or_none_and_refuse_a_block_that_does_not_divide(tmp_path):
    settings = Settings(home=tmp_path)
    assert PictureRerank.from_settings(settings) == PictureRerank(10, 8, 3.0, "gradient")
    signed = Settings(home=tmp_path, retrieval={"rerank_picture": "signed"})
    assert PictureRerank.from_settings(signed).picture == "signed"
    with pytest.raises(ValueError, match="rerank_picture"):
        Settings(home=tmp_path, retrieval={"rerank_picture": "flux"})
    off = Settings(home=tmp_path, retrieval={"rerank_candidates": 0})
    assert PictureRerank.from_settings(off) is None
    with pytest.raises(ValueError, match="rerank_pool_px 12 must divide the patch size 128"):
        Settings(home=tmp_path, retrieval={"rerank_pool_px": 12})


@pytest.mark.parametrize("picture", PICTURES)
def test_order_puts_the_candidate_laid_out_like_the_query_first(picture):
    """Three candidates nearly equidistant in the embedding: the one that is the query turned
    by 90 deg wins over two of another layout."""
    rng = np.random.default_rng(3)
    query = np.zeros((32, 32), np.float32)
    query[8:12, 4:8], query[20:24, 24:28] = 0.9, -0.9  # a bipole along the diagonal
    turned = np.rot90(query).copy()
    other = rng.uniform(-0.3, 0.3, (2, 32, 32)).astype(np.float32)
    frames = np.stack([other[0], other[1], turned])
    rerank = PictureRerank(candidates=3, pool_px=4, picture_weight=2.0, picture=picture)
    order = rerank.order(query, rerank.pictures(frames), np.array([1.0, 1.01, 1.02]))
    assert order[0] == 2
