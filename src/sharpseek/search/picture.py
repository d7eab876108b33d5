"""Generated queries' candidates re-ranked by their picture (issue 17; docs/search.md,
"Picture re-ranking").

The encoder proposes, the picture decides among its proposals. A generated query's
``candidates`` nearest frames in its embedding space (one best frame per region, as the
search returns them) are put in order of

    score = d_embedding / median(d_embedding) + picture_weight * d_picture / median(d_picture)

(medians over the query's own candidates, so both terms are of order 1 whatever the
encoder's scale), where ``d_picture`` compares the *coarse pictures* of query and frame: each
image averaged over ``pool_px`` x ``pool_px`` blocks (a 16 x 16 grid at 8 px), then given
sign(b) sqrt(|b|) so that plage and weak flux count beside the strongest spots, and the
Euclidean distance taken between the frame's picture and the nearest of the 16 pictures that
rotations by 90 deg, reflections and the polarity flip make of the query's (the symmetries
of the symmetric space where generated queries search, :mod:`sharpseek.search.spaces`).

Why: the symmetric space holds where polarities sit relative to each other only as far as
the encoder learnt it from region pairs, and the generated queries' cloud is off the
frames' (docs/search.md, "Why PSEP lags"). Among a query's nearest frames there usually is
one laid out like it (same spot sizes, same separation); comparing the coarse pictures picks
it. No physical parameter is read: the pictures are the images, blurred and compressed.

Real queries (FITS patches, indexed records) are not re-ranked: they search the region space,
where the encoder already finds a region's own frames again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sharpseek.search.spaces import SYMMETRIES, symmetry

__all__ = [
    "PictureRerank",
    "coarse_pictures",
    "orbit_pictures",
    "picture_distances",
    "rerank_order",
]


def coarse_pictures(images: np.ndarray, pool_px: int) -> np.ndarray:
    """Model-space images (n, H, W) -> their coarse pictures (n, (H/pool_px)*(W/pool_px))
    float32: the mean of each ``pool_px`` x ``pool_px`` block, as sign(b) sqrt(|b|) (b in
    model units, so in [-1, 1])."""
    images = np.asarray(images, np.float32)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"images must be (n, H, W), got shape {images.shape}")
    n, h, w = images.shape
    if pool_px < 1 or h % pool_px or w % pool_px:
        raise ValueError(f"pool_px {pool_px} must divide the image size {h} x {w}")
    blocks = images.reshape(n, h // pool_px, pool_px, w // pool_px, pool_px).mean((2, 4))
    return (np.sign(blocks) * np.sqrt(np.abs(blocks))).reshape(n, -1).astype(np.float32)


def orbit_pictures(image: np.ndarray, pool_px: int) -> np.ndarray:
    """The coarse pictures (16, m) of the 16 images the symmetries of
    :data:`sharpseek.search.spaces.SYMMETRIES` make of one model-space image (H, W)."""
    image = np.asarray(image, np.float32)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"a query image must be square (H, H), got shape {image.shape}")
    return np.concatenate([coarse_pictures(symmetry(image[None], *g), pool_px) for g in SYMMETRIES])


def picture_distances(orbit: np.ndarray, frame_pictures: np.ndarray) -> np.ndarray:
    """For each frame picture (k, m), the Euclidean distance (k,) to the nearest of the
    query's 16 orbit pictures (16, m) (:func:`orbit_pictures`)."""
    orbit = np.asarray(orbit, np.float64)
    frames = np.asarray(frame_pictures, np.float64)
    if frames.ndim != 2 or orbit.ndim != 2 or orbit.shape[1] != frames.shape[1]:
        raise ValueError(
            f"orbit (16, m) and frame pictures (k, m) must share m: {orbit.shape}, {frames.shape}"
        )
    squared = ((orbit[:, None, :] - frames[None, :, :]) ** 2).sum(-1)  # (16, k)
    return np.sqrt(squared.min(0))


def _relative(distances: np.ndarray) -> np.ndarray:
    """Distances over their median (1 where the median is 0: nothing to compare)."""
    median = float(np.median(distances))
    return distances / median if median > 0 else np.ones_like(distances)


def rerank_order(
    embedding_distances: np.ndarray, picture_distance: np.ndarray, picture_weight: float
) -> np.ndarray:
    """Positions (k,) of a query's k candidates, best first, by the module's score; ties keep
    the embedding order (a stable sort of candidates given nearest first). ``picture_weight``
    0 leaves the embedding order."""
    d = np.asarray(embedding_distances, np.float64)
    p = np.asarray(picture_distance, np.float64)
    if d.shape != p.shape or d.ndim != 1:
        raise ValueError(f"distances must be two (k,) arrays, got {d.shape} and {p.shape}")
    if picture_weight < 0:
        raise ValueError(f"picture_weight must be >= 0, got {picture_weight}")
    if len(d) < 2 or picture_weight == 0:
        return np.arange(len(d))
    score = _relative(d) + picture_weight * _relative(p)
    return np.argsort(score, kind="stable")


@dataclass(frozen=True)
class PictureRerank:
    """The re-ranking of a generated query's nearest regions (module docstring): its
    ``candidates`` nearest (one best frame per region) in order of embedding and picture
    distance, pictures of ``pool_px`` blocks, the picture term weighted ``picture_weight``.
    The settings' ``retrieval.rerank_*`` (:meth:`from_settings`); the search
    (:meth:`sharpseek.search.searcher.Searcher.hits`) and ``sharpseek evaluate retrieval``
    both use it."""

    candidates: int = 20
    pool_px: int = 8
    picture_weight: float = 2.0

    @classmethod
    def from_settings(cls, settings) -> PictureRerank | None:
        """The re-ranking ``settings.retrieval`` asks for; None when it is off
        (``rerank_candidates`` 0)."""
        cfg = settings.retrieval
        if cfg.rerank_candidates == 0:
            return None
        return cls(cfg.rerank_candidates, cfg.rerank_pool_px, cfg.rerank_picture_weight)

    def pictures(self, images: np.ndarray) -> np.ndarray:
        """:func:`coarse_pictures` of frames (n, H, W) at this block size."""
        return coarse_pictures(images, self.pool_px)

    def order(
        self,
        query_image: np.ndarray,
        frame_pictures: np.ndarray,
        embedding_distances: np.ndarray,
    ) -> np.ndarray:
        """Positions (k,) of a query's candidates, best first: the query's model-space image
        (H, W), the candidates' pictures (k, m) (:meth:`pictures`) and their embedding
        distances (k,), nearest first."""
        distances = picture_distances(orbit_pictures(query_image, self.pool_px), frame_pictures)
        return rerank_order(embedding_distances, distances, self.picture_weight)
