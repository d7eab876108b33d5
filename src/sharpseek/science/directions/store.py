"""The stored direction set of one generator version (JSON in the store, compare-and-swap).

:class:`DirectionSet` holds the boundaries with their provenance, calibration curves and
distribution; its :attr:`~DirectionSet.version` names it everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sharpseek.data.object_store import ObjectNotFound, PreconditionFailed
from sharpseek.science.directions.algebra import condition_direction, step_scale
from sharpseek.science.directions.boundary import Boundary, DirectionMethod

#: Format of a stored direction set. 1: SVM normals, eps in latent units (no ``format`` key);
#: 2: the :class:`DirectionMethod` is stored with the set.
DIRECTIONS_FORMAT = 2


class DirectionsConflict(RuntimeError):
    """Another writer saved directions of the same GAN while this fit ran (names theirs)."""


@dataclass
class DirectionSet:
    """The boundaries of one generator version, with their provenance and calibration.

    Stored as JSON at ``directions/<gan_version>/directions.json`` in the store: a retrained
    generator needs its own directions, and :meth:`check_gan` refuses a mismatch.
    """

    gan_version: str
    boundaries: dict[str, Boundary]
    n_samples: int
    seed: int
    latent_dim: int
    calibration: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    #: percentiles 0..100 of each parameter over the fitting sample (for "above p90" targets)
    distribution: dict[str, list[float]] = field(default_factory=dict)
    #: how the boundaries were fitted and what eps means (format 1 sets: the paper's SVM,
    #: eps in latent units)
    method: DirectionMethod = field(default_factory=DirectionMethod)
    #: :data:`DIRECTIONS_FORMAT` of the stored JSON (1: written before methods existed)
    format: int = DIRECTIONS_FORMAT

    def __getitem__(self, parameter: str) -> Boundary:
        if parameter not in self.boundaries:
            raise KeyError(
                f"no direction for {parameter!r}; known: {', '.join(sorted(self.boundaries))}"
            )
        return self.boundaries[parameter]

    def check_gan(self, gan_version: str) -> None:
        """Raise when these directions were fitted on another generator version."""
        if gan_version != self.gan_version:
            raise ValueError(
                f"directions were fitted for GAN version {self.gan_version!r}, not "
                f"{gan_version!r}: fit directions for this GAN (`sharpseek directions fit`)"
            )

    def direction(self, parameter: str, hold: tuple[str, ...] | list[str] = ()) -> np.ndarray:
        """The unit direction of ``parameter``, conditioned on holding the ``hold`` ones."""
        normal = self[parameter].normal
        if not hold:
            return normal
        if parameter in hold:
            raise ValueError(f"cannot hold {parameter!r} while shifting along it")
        conditioned, _ = condition_direction(normal, np.stack([self[h].normal for h in hold]))
        return conditioned

    def step(self, parameter: str, hold: tuple[str, ...] | list[str] = ()) -> np.ndarray:
        """The latent vector (d,) of a shift eps = 1 along ``parameter`` holding ``hold``: the
        conditioned unit direction times :func:`step_scale` in this set's unit of eps."""
        conditioned = self.direction(parameter, hold)
        boundary = self[parameter]
        gain = boundary.extra.get("gain")
        return conditioned * step_scale(boundary.normal, conditioned, self.method.step, gain)

    def _data(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.format >= 2:  # a format-1 set keeps its stored form, hence its version
            method = asdict(self.method)
            if method["hold"] == "linear":
                # the rule of every set stored before the field existed: their versions stay
                del method["hold"]
            extra = {"format": self.format, "method": method}
        return {
            **extra,
            "gan_version": self.gan_version,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "latent_dim": self.latent_dim,
            "boundaries": {k: b.to_dict() for k, b in self.boundaries.items()},
            "calibration": self.calibration,
            "distribution": self.distribution,
        }

    def to_json(self) -> str:
        return json.dumps(self._data(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> DirectionSet:
        data = json.loads(text)
        stored = data.get("format", 1)
        if not isinstance(stored, int) or not 1 <= stored <= DIRECTIONS_FORMAT:
            raise ValueError(
                f"directions of GAN {data.get('gan_version')!r} are stored in format {stored!r}, "
                f"which this sharpseek does not read (it reads 1..{DIRECTIONS_FORMAT}): "
                "upgrade sharpseek, or refit them with `sharpseek directions fit`"
            )
        data["format"] = stored
        data["method"] = DirectionMethod(**data.get("method", {}))
        data["boundaries"] = {k: Boundary.from_dict(b) for k, b in data["boundaries"].items()}
        return cls(**data)

    @staticmethod
    def key(gan_version: str) -> str:
        return f"directions/{gan_version}/directions.json"

    @property
    def version(self) -> str:
        """``<gan_version>-d<8 hex>``: the one name of this stored set, everywhere (serving
        answers, archives, catalogues, the UI).

        The digest is SHA-256 of everything :meth:`save` stores (boundaries with their
        normals, intercepts, rules and accuracies, N, seed, calibration curves and
        distribution), as JSON with sorted keys: any change of the stored set — a refit
        with another N or seed, a recalibration — changes the version, and equal sets
        (whatever the order they were built in) have equal versions. It is computed on
        each call (~10 ms for a calibrated set), so a set changed in place is named anew.
        """
        text = json.dumps(self._data(), sort_keys=True, separators=(",", ":"))
        return f"{self.gan_version}-d{hashlib.sha256(text.encode()).hexdigest()[:8]}"

    @classmethod
    def stored_version(cls, store, gan_version: str) -> str | None:
        """:attr:`version` of the set stored for ``gan_version``, or None when none is."""
        try:
            return cls.load(store, gan_version).version
        except FileNotFoundError:
            return None

    @staticmethod
    def stored_versions(store) -> list[str]:
        """GAN versions that have directions in ``store``."""
        return sorted(
            info.key.split("/")[1]
            for info in store.list("directions/")
            if info.key.endswith("/directions.json") and info.key.count("/") == 2
        )

    def calibrated_range(self, parameter: str) -> tuple[float, float] | None:
        """Lowest 16th and highest 84th percentile of ``parameter`` over the calibration
        curves (any direction, any eps): what shifting was seen to reach. None uncalibrated."""
        lows, highs = [], []
        for curves in self.calibration.values():
            c = curves.get(parameter)
            if c:
                lows.extend(v for v in c["p16"] if np.isfinite(v))
                highs.extend(v for v in c["p84"] if np.isfinite(v))
        if not lows:
            return None
        return float(min(lows)), float(max(highs))

    def save(self, store, *, replaces: str | None | bool = True) -> str:
        """Store the set under :meth:`key`; return the key.

        ``replaces``: the store token (``store.get_versioned``) of the set this one was
        fitted to replace, read before the fit, or None when there was none: then the set
        is written only if that is still so (compare-and-swap), else
        :class:`DirectionsConflict` names the version another writer saved meanwhile.
        ``True`` (the default) replaces whatever is there.
        """
        key = self.key(self.gan_version)
        data = self.to_json().encode()
        if replaces is True:
            store.put_bytes(key, data, content_type="application/json")
            return key
        try:
            store.put_if(key, data, match=replaces or None, content_type="application/json")
        except PreconditionFailed:
            other = DirectionSet.from_json(store.get_bytes(key).decode())
            if other.version == self.version:
                return key  # the same set, saved by another run of the same fit
            raise DirectionsConflict(
                f"directions of GAN {self.gan_version} were saved by another writer while "
                f"this fit ran (their version {other.version}); this fit ({self.version}) "
                "was not saved: use theirs, or fit again"
            ) from None
        return key

    @staticmethod
    def token(store, gan_version: str) -> str | None:
        """The store token of the saved set of ``gan_version`` (None when there is none),
        to pass as ``save(replaces=...)`` after a fit."""
        try:
            return store.get_versioned(DirectionSet.key(gan_version))[1]
        except ObjectNotFound:
            return None

    @classmethod
    def load(cls, store, gan_version: str) -> DirectionSet:
        try:
            loaded = cls.from_json(store.get_bytes(cls.key(gan_version)).decode())
        except ObjectNotFound:
            others = cls.stored_versions(store)
            stored = (
                f" (stored only for other GAN versions: {', '.join(others)}; a retrained GAN "
                "needs its own)"
                if others
                else ""
            )
            raise FileNotFoundError(
                f"no directions for GAN version {gan_version!r} in {store.describe()}{stored}; "
                "fit them with `sharpseek directions fit`"
            ) from None
        loaded.check_gan(gan_version)
        return loaded
