"""The two embedding spaces of the search: ``region`` and ``symmetric`` (issue 17).

``region``
    The SimSiam encoder's embedding of an image, as it is. The encoder learnt to find a
    region's other frames again, so it tells regions apart by what stays the same while a
    region evolves: where its polarities sit, which way the bipole points, which polarity
    leads. Real queries (a FITS patch, an indexed record) search here: it finds the same
    region and look-alikes in the same orientation.
``symmetric``
    The mean of the encoder's embeddings of the 16 images that the symmetries of the square
    patch and the polarity flip make of one image: 4 rotations by 90 deg, each with and
    without a reflection, each with B_r and -B_r. TUF, R, PSEP and GRAD are the same for
    all 16 (they depend neither on orientation nor on which polarity is which), and the mean
    over the group is the same for all 16 (a group average: ``symmetric(g x) =
    symmetric(x)`` exactly, up to float rounding). Generated queries search here: a
    generated active region has the generator's orientations, layouts and polarity order,
    not a real region's, and what should decide its match is what it holds.

Measured on the demo (docs/search.md, "Two spaces"): the symmetric space lifts the
query-match correlations of generated queries; same-region retrieval of real queries falls
in it (the symmetries are what tells a region's frames apart), so real queries keep the
region space. Every frame is indexed in both (Qdrant named vectors, docs/index.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

__all__ = [
    "SPACES",
    "SYMMETRIES",
    "SpaceEmbedder",
    "check_space",
    "space_vectors",
    "symmetry",
]

SPACES = ("region", "symmetric")

# (quarter turns, reflect (transpose after turning), polarity sign): the 16 elements
SYMMETRIES: tuple[tuple[int, bool, int], ...] = tuple(
    (turns, reflect, sign) for sign in (1, -1) for reflect in (False, True) for turns in range(4)
)


def check_space(space: str) -> str:
    """``space`` when it is one of :data:`SPACES`, else ``ValueError`` naming them."""
    if space not in SPACES:
        raise ValueError(f"unknown embedding space {space!r}: one of {', '.join(SPACES)}")
    return space


def symmetry(images: np.ndarray, turns: int, reflect: bool, sign: int) -> np.ndarray:
    """Images (n, H, W) with H = W turned by ``turns`` quarter turns, then transposed when
    ``reflect``, times ``sign`` (+1 or -1): one element of the group (C-contiguous copy)."""
    out = np.rot90(images, turns, axes=(-2, -1))
    if reflect:
        out = np.swapaxes(out, -2, -1)
    return np.ascontiguousarray(out if sign > 0 else -out)


def _orbit(images: np.ndarray) -> Iterator[np.ndarray]:
    for turns, reflect, sign in SYMMETRIES:
        yield symmetry(images, turns, reflect, sign)


def space_vectors(
    embed: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    spaces: Sequence[str] | str = SPACES,
) -> dict[str, np.ndarray] | np.ndarray:
    """Search vectors of model-space images (n, 128, 128) in each of ``spaces``.

    ``embed``: images (n, 128, 128) -> embeddings (n, dim) (a backend's ``embed``).
    Returns ``{space: (n, dim) float32}``, or one array when ``spaces`` is one name. The
    symmetric space costs 16 calls of ``embed`` on n images each (one image set in memory at
    a time); the region space reuses the first of them.
    """
    names = [spaces] if isinstance(spaces, str) else list(spaces)
    for name in names:
        check_space(name)
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    out: dict[str, np.ndarray] = {}
    if "symmetric" in names:
        total = None
        for k, image_set in enumerate(_orbit(images)):
            vectors = np.asarray(embed(image_set), np.float64)
            if k == 0:
                out["region"] = vectors.astype(np.float32)
            total = vectors if total is None else total + vectors
        out["symmetric"] = (total / len(SYMMETRIES)).astype(np.float32)
    elif "region" in names:
        out["region"] = np.asarray(embed(images), np.float32)
    out = {name: out[name] for name in names}
    return out[names[0]] if isinstance(spaces, str) else out


class SpaceEmbedder:
    """A backend seen through one space, or several: ``embed(images)`` gives that space's
    vectors (n, dim), or ``{space: (n, dim)}`` for a sequence of spaces (one pass; what
    :func:`sharpseek.search.index.build.embedded_batches` and the query map take)."""

    def __init__(self, backend, spaces: str | Sequence[str]) -> None:
        self.backend = backend
        names = [spaces] if isinstance(spaces, str) else list(spaces)
        for name in names:
            check_space(name)
        self.spaces = spaces if isinstance(spaces, str) else tuple(names)

    def embed(self, images: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        return space_vectors(self.backend.embed, images, self.spaces)
