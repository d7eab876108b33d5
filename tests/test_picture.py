"""Tests of sharpseek.search.picture: the picture re-ranking of generated queries' candidates
(issue 17). Expected values come from slow obvious loops (block means pixel by pixel, the 16
symmetries written out with numpy's rot90/transpose/negation) and from cases with a known
answer (a frame is at distance 0 from every symmetric copy of itself)."""

from __future__ import annotations

import numpy as np
import pytest

from sharpseek.config import Settings
from sharpseek.search.picture import (
    PictureRerank,
    coarse_pictures,
    orbit_pictures,
    picture_distances,
    rerank_order,
)


def slow_picture(image, pool):
    """Block means by loops, then sign * sqrt(|.|), flattened row by row."""
    h, w = image.shape
    out = []
    for i in range(0, h, pool):
        for j in range(0, w, pool):
            m = float(np.mean(image[i : i + pool, j : j + pool], dtype=np.float64))
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


def slow_picture_distance(query, frame, pool):
    target = slow_picture(frame, pool)
    return min(np.linalg.norm(slow_picture(g, pool) - target) for g in slow_symmetries(query))


def _images(n, seed=0, size=32):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, size, size)).astype(np.float32)


def test_coarse_pictures_are_block_means_with_a_signed_square_root():
    images = _images(3)
    for pool in (1, 4, 8):
        got = coarse_pictures(images, pool)
        assert got.shape == (3, (32 // pool) ** 2) and got.dtype == np.float32
        for image, row in zip(images, got, strict=True):
            assert np.allclose(row, slow_picture(image, pool), atol=1e-6)


def test_picture_distance_is_the_nearest_of_the_querys_sixteen_symmetries():
    query, *others = _images(4, seed=1)
    frames = np.stack([*slow_symmetries(query), *others])  # 16 copies, then 3 other images
    got = picture_distances(orbit_pictures(query, 4), coarse_pictures(frames, 4))
    assert np.allclose(got[:16], 0, atol=1e-6)  # every symmetric copy is the same picture
    expected = [slow_picture_distance(query, f, 4) for f in others]
    assert np.allclose(got[16:], expected, rtol=1e-5) and (got[16:] > 0.1).all()


def test_a_picture_ignores_structure_finer_than_its_blocks():
    flat = np.full((1, 32, 32), 0.25, np.float32)
    parity = np.indices((32, 32)).sum(0) % 2
    checker = flat + np.where(parity, 0.2, -0.2).astype(np.float32)[None]  # +-0.2 per pixel
    d = picture_distances(orbit_pictures(flat[0], 8), coarse_pictures(checker, 8))
    assert d[0] == pytest.approx(0, abs=1e-6)  # same 8 x 8 means: the same picture


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
        (lambda: coarse_pictures(_images(1), 5), "pool_px 5 must divide"),
        (lambda: coarse_pictures(np.zeros(5), 1), r"\(n, H, W\)"),
        (lambda: orbit_pictures(np.zeros((8, 16)), 4), "must be square"),
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
    assert PictureRerank.from_settings(settings) == PictureRerank(20, 8, 2.0)
    off = Settings(home=tmp_path, retrieval={"rerank_candidates": 0})
    assert PictureRerank.from_settings(off) is None
    with pytest.raises(ValueError, match="rerank_pool_px 12 must divide the patch size 128"):
        Settings(home=tmp_path, retrieval={"rerank_pool_px": 12})


def test_order_puts_the_candidate_laid_out_like_the_query_first():
    """Three candidates nearly equidistant in the embedding: the one that is the query turned
    by 90 deg wins over two of another layout."""
    rng = np.random.default_rng(3)
    query = np.zeros((32, 32), np.float32)
    query[8:12, 4:8], query[20:24, 24:28] = 0.9, -0.9  # a bipole along the diagonal
    turned = np.rot90(query).copy()
    other = rng.uniform(-0.3, 0.3, (2, 32, 32)).astype(np.float32)
    frames = np.stack([other[0], other[1], turned])
    rerank = PictureRerank(candidates=3, pool_px=4, picture_weight=2.0)
    order = rerank.order(query, rerank.pictures(frames), np.array([1.0, 1.01, 1.02]))
    assert order[0] == 2
