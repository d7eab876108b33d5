"""Generated queries' candidates re-ranked by their picture (issue 17; docs/search.md,
"Picture re-ranking").

The encoder proposes, the picture decides among its proposals. A generated query's
``candidates`` nearest frames in its embedding space (one best frame per region, as the
search returns them) are put in order of

    score = d_embedding / median(d_embedding) + picture_weight * d_picture / median(d_picture)

(medians over the query's own candidates, so both terms are of order 1 whatever the
encoder's scale), where ``d_picture`` compares the *coarse pictures* of query and frame: each
image reduced to a grid of ``pool_px`` x ``pool_px`` blocks (a 16 x 16 grid at 8 px), and the
Euclidean distance taken between the frame's picture and the nearest of the 16 pictures that
rotations by 90 deg, reflections and the polarity flip make of the query's (the symmetries
of the symmetric space where generated queries search, :mod:`sharpseek.search.spaces`).

Two pictures (:data:`PICTURES`; ``retrieval.rerank_picture``):

- ``gradient`` (the default): sqrt of each block's mean |grad b| (b in model units, the
  gradient per pixel by central differences). It is bright at spot edges and between
  opposite polarities, where Schrijver's R counts its flux, and dark in spot interiors and
  the quiet background; it marks where the structures sit and how far apart, whatever
  their sign.
- ``signed``: each block's mean b as sign(b) sqrt(|b|), so plage and weak flux count beside
  the strongest spots (the first re-ranking: it lifted PSEP and cost R; docs/search.md).

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
    "PICTURES",
    "PictureRerank",
    "coarse_pictures",
    "orbit_pictures",
    "picture_distances",
    "rerank_order",
]


#: The coarse pictures a re-ranking can compare (module docstring).
PICTURES: tuple[str, ...] = ("gradient", "signed")


def _check_picture(picture: str) -> str:
    if picture not in PICTURES:
        raise ValueError(f"unknown picture {picture!r}: one of {', '.join(PICTURES)}")
    return picture


def _block_means(images: np.ndarray, pool_px: int) -> np.ndarray:
    n, h, w = images.shape
    return images.reshape(n, h // pool_px, pool_px, w // pool_px, pool_px).mean((2, 4))


def coarse_pictures(images: np.ndarray, pool_px: int, picture: str) -> np.ndarray:
    """Model-space images (n, H, W) -> their coarse pictures (n, (H/pool_px)*(W/pool_px))
    float32, one value per ``pool_px`` x ``pool_px`` block (b in model units, in [-1, 1]):
    ``gradient``: sqrt of the block's mean |grad b| [model units per pixel], the gradient by
    central differences (one-sided on the border); ``signed``: the block's mean b as
    sign(b) sqrt(|b|)."""
    _check_picture(picture)
    images = np.asarray(images, np.float32)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"images must be (n, H, W), got shape {images.shape}")
    n, h, w = images.shape
    if pool_px < 1 or h % pool_px or w % pool_px:
        raise ValueError(f"pool_px {pool_px} must divide the image size {h} x {w}")
    if picture == "gradient":
        if min(h, w) < 2:
            raise ValueError(f"a gradient picture needs images of 2 x 2 px or more, got {h} x {w}")
        along_y, along_x = np.gradient(images, axis=(1, 2))
        pictures = np.sqrt(_block_means(np.hypot(along_x, along_y), pool_px))
    else:
        blocks = _block_means(images, pool_px)
        pictures = np.sign(blocks) * np.sqrt(np.abs(blocks))
    return pictures.reshape(n, -1).astype(np.float32)


def orbit_pictures(image: np.ndarray, pool_px: int, picture: str) -> np.ndarray:
    """The coarse pictures of kind ``picture`` (16, m) of the 16 images the symmetries of
    :data:`sharpseek.search.spaces.SYMMETRIES` make of one model-space image (H, W)."""
    image = np.asarray(image, np.float32)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"a query image must be square (H, H), got shape {image.shape}")
    return np.concatenate(
        [coarse_pictures(symmetry(image[None], *g), pool_px, picture) for g in SYMMETRIES]
    )


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
    distance, pictures of kind ``picture`` (:data:`PICTURES`) of ``pool_px`` blocks, the
    picture term weighted ``picture_weight``.
    The settings' ``retrieval.rerank_*`` (:meth:`from_settings`); the search
    (:meth:`sharpseek.search.searcher.Searcher.hits`) and ``sharpseek evaluate retrieval``
    both use it."""

    candidates: int = 10
    pool_px: int = 8
    picture_weight: float = 3.0
    picture: str = "gradient"

    def __post_init__(self) -> None:
        _check_picture(self.picture)

    @classmethod
    def from_settings(cls, settings) -> PictureRerank | None:
        """The re-ranking ``settings.retrieval`` asks for; None when it is off
        (``rerank_candidates`` 0)."""
        cfg = settings.retrieval
        if cfg.rerank_candidates == 0:
            return None
        return cls(
            cfg.rerank_candidates, cfg.rerank_pool_px, cfg.rerank_picture_weight, cfg.rerank_picture
        )

    def pictures(self, images: np.ndarray) -> np.ndarray:
        """:func:`coarse_pictures` of frames (n, H, W): this picture, this block size."""
        return coarse_pictures(images, self.pool_px, self.picture)

    def order(
        self,
        query_image: np.ndarray,
        frame_pictures: np.ndarray,
        embedding_distances: np.ndarray,
    ) -> np.ndarray:
        """Positions (k,) of a query's candidates, best first: the query's model-space image
        (H, W), the candidates' pictures (k, m) (:meth:`pictures`) and their embedding
        distances (k,), nearest first."""
        orbit = orbit_pictures(query_image, self.pool_px, self.picture)
        distances = picture_distances(orbit, frame_pictures)
        return rerank_order(embedding_distances, distances, self.picture_weight)
