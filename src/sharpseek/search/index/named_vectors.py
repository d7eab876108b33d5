"""Vector spaces of a collection: the embeddings a point holds, one per space (named vectors).

Each SHARP frame can carry several embeddings of one dimension, each in its own *space*:
``region`` (the SimSiam encoder's embedding of the frame) and, for example, ``symmetric``
(its mean over the frame's 16 rotations, reflections and polarity flips). The spaces of a
collection are fixed when it is created and recorded in its
:class:`~sharpseek.search.index.types.CollectionInfo`.

Storage rule: a collection whose spaces are exactly :data:`DEFAULT_SPACES` (``("region",)``)
stores one unnamed vector per point, as every collection did before spaces existed; any other
collection stores Qdrant named vectors, one per space. :func:`stored_as_named` says which.

Writes give the vectors of ``n`` rows as an array (n, dim), accepted where a collection has
one space, or as a mapping space -> array (n, dim) whose keys are exactly the collection's
spaces; :func:`vectors_by_space` checks either and returns the mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SPACES",
    "SpaceVectors",
    "check_spaces",
    "check_vectors",
    "slice_vectors",
    "vectors_by_space",
    "stored_as_named",
]

#: The spaces of a collection made before spaces existed, or with the default configuration:
#: one, ``region``, stored as the point's unnamed vector.
DEFAULT_SPACES: tuple[str, ...] = ("region",)
_SPACE_NAME = re.compile(r"[a-z][a-z0-9_]*")

#: Vectors as writes give them: an array (n, dim) (one space) or space -> array (n, dim).
SpaceVectors = np.ndarray | Mapping[str, np.ndarray]


def check_spaces(spaces: Sequence[str], what: str = "spaces") -> tuple[str, ...]:
    """``spaces`` as a tuple, checked: non-empty, unique names matching ``[a-z][a-z0-9_]*``.

    >>> check_spaces(["region", "symmetric"])
    ('region', 'symmetric')
    """
    if isinstance(spaces, str):
        raise ValueError(f"{what} must be a sequence of names, got the string {spaces!r}")
    names = tuple(spaces)
    if not names:
        raise ValueError(f"{what} must name at least one space")
    for name in names:
        if not isinstance(name, str) or not _SPACE_NAME.fullmatch(name):
            raise ValueError(f"{what}: space name {name!r} must match [a-z][a-z0-9_]*")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} {list(names)} name a space twice")
    return names


def stored_as_named(spaces: Sequence[str]) -> bool:
    """Whether a collection of these spaces stores Qdrant named vectors (else one unnamed
    vector per point: spaces exactly :data:`DEFAULT_SPACES`)."""
    return tuple(spaces) != DEFAULT_SPACES


def check_vectors(vectors: Any, n: int, dim: int, space: str | None = None) -> np.ndarray:
    """``vectors`` as float32 (n, dim), checked: numeric, of that shape, finite (``space``
    names them in the errors)."""
    what = "vectors" if space is None else f"{space!r} vectors"
    array = np.asarray(vectors)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape != (n, dim):
        raise ValueError(f"{what} have shape {array.shape}; expected ({n}, {dim}) for {n} rows")
    array = array.astype(np.float32)
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} {what[:-1]}(s) have NaN or infinite values (first at row "
            f"{int(np.flatnonzero(bad)[0])}); an embedding must be finite"
        )
    return array


def vectors_by_space(
    vectors: SpaceVectors,
    spaces: Sequence[str],
    *,
    n: int,
    dim: int,
    collection: str = "the collection",
) -> dict[str, np.ndarray]:
    """The vectors of ``n`` rows in each of ``spaces``: space -> float32 (n, dim), checked.

    Parameters
    ----------
    vectors : array-like (n, dim) or mapping space -> array-like (n, dim)
        An array (or anything :func:`numpy.asarray` makes one of) only where ``spaces`` has
        one space; a mapping must have exactly ``spaces`` as keys.
    spaces : sequence of str
        The spaces of the collection written to (the first is its default).
    collection : str
        Its name, for the error messages.

    Raises
    ------
    ValueError
        An array for several spaces, a mapping missing or adding a space (naming the
        collection, its spaces and those given), or an array of the wrong shape, not numeric
        or not finite.
    """
    spaces = tuple(spaces)
    if not isinstance(vectors, Mapping):
        if len(spaces) != 1:
            raise ValueError(
                f"collection {collection} has spaces {list(spaces)} but the vectors were "
                f"given as one unnamed array: give a mapping space -> (n, dim) array with "
                f"exactly these keys"
            )
        return {spaces[0]: check_vectors(vectors, n, dim)}
    given = [str(k) for k in vectors]
    missing = [s for s in spaces if s not in vectors]
    extra = [k for k in given if k not in spaces]
    if missing or extra:
        raise ValueError(
            f"collection {collection} has spaces {list(spaces)} but vectors were given for "
            f"{given} (missing {missing}, extra {extra})"
        )
    named = len(spaces) > 1
    return {s: check_vectors(vectors[s], n, dim, s if named else None) for s in spaces}


def slice_vectors(vectors: SpaceVectors, start: int, stop: int) -> SpaceVectors:
    """Rows ``start:stop`` of an array, or of each array of a mapping space -> array."""
    if isinstance(vectors, Mapping):
        return {space: array[start:stop] for space, array in vectors.items()}
    return vectors[start:stop]
