"""The look-alike flare outlook: how often regions like a query flared next (issue 23).

For a query (a generated active region, an uploaded image, an indexed record) the outlook is
the share of its ``k`` nearest real regions (one frame each, the nearest) whose outcome
window ([T_REC, T_REC + hours), :mod:`sharpseek.data.flares`) held a flare of the threshold class
or above. The counts behind the share come with it; neighbours whose outcome is unknown
(outside the catalogue's coverage or the HARP's lifetime) are left out of the share and
counted.

**No leakage.** For a query that is itself an observed frame (a record, at T_REC t) only
neighbours whose outcome window had closed when the query was observed can count: a
neighbour's T_REC + hours <= t. Its own region never counts. Generated and uploaded images
carry no observation time: every frame with flare outcomes is a candidate.

The outcome is a label beside a frame, never a feature: the neighbours are found by their
embeddings alone; the outcome is read afterwards. :func:`look_alike_outlook` is the rule on
a table of candidates (pure: tested over random timelines); :func:`query_outlook` asks the
index for the candidates with the same conditions in the request. See docs/outlook.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.data.dataset import DEFINITIVE_SERIES, NRT_SERIES
from sharpseek.data.flares import class_threshold
from sharpseek.search.index import SearchFilter

__all__ = ["Outlook", "look_alike_outlook", "outlook_cutoff", "query_outlook"]

CAVEAT = (
    "How often look-alike regions flared next, not a forecast: a share of few neighbours, "
    "limited by what the index holds and by the flare catalogue's coverage; compare it with "
    "the base rate (sharpseek evaluate outlook measures its skill)."
)


@dataclass(frozen=True)
class Outlook:
    """What a query's look-alikes did next.

    Attributes
    ----------
    threshold : str
        The class counted, e.g. ``"M"`` (a flare of M1.0 or above).
    hours : int
        The outcome window [T_REC, T_REC + hours) of each neighbour.
    k : int
        Regions asked for.
    flared, known, unknown : int
        Neighbours (regions) whose outcome held a flare >= threshold; with a known outcome
        (flared ones included); with an unknown outcome (left out of the share).
    cutoff : Timestamp or None
        For a record query: the latest neighbour T_REC allowed (query T_REC - hours, TAI).
    neighbours : list of dict
        Per neighbour, nearest first: ``record_id``, ``region``, ``t_rec``, ``distance``,
        ``status`` (known/unknown), ``max_class``, ``flared`` (bool, None when unknown).
    kind : str or None
        The frames counted: ``real`` or ``synthetic`` (a record query counts its own kind),
        or None for both (a generated or uploaded image).
    """

    threshold: str
    hours: int
    k: int
    flared: int
    known: int
    unknown: int
    cutoff: pd.Timestamp | None = None
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    kind: str | None = None

    @property
    def share(self) -> float | None:
        """flared / known, in [0, 1]; None when no neighbour's outcome is known."""
        return self.flared / self.known if self.known else None

    @property
    def caveat(self) -> str:
        return CAVEAT

    def text(self) -> str:
        """The outlook in plain words, e.g. ``"3 of 17 look-alike regions (18 %) had a flare
        >= M within 24 h of the frame found; 3 more with unknown outcome left out."``."""
        regions = self.known + self.unknown
        if not regions:
            return (
                "no look-alike region with flare outcomes in the index"
                + (f" before {self.cutoff} TAI" if self.cutoff is not None else "")
                + " (load a flare catalogue: sharpseek flares load)"
            )
        head = (
            f"{self.flared} of {self.known} look-alike regions ({100 * self.share:.0f} %)"
            if self.known
            else "no look-alike region with a known outcome"
        )
        words = [f"{head} had a flare >= {self.threshold} within {self.hours} h of the frame found"]
        if self.unknown:
            words.append(f"{self.unknown} more with an unknown outcome left out")
        synthetic = sum(str(n["region"]).startswith("synthetic:") for n in self.neighbours)
        if self.kind is not None:
            words.append(f"{self.kind} regions only")
        elif synthetic:
            words.append(f"{synthetic} of the {regions} are synthetic regions (ground truth)")
        if self.cutoff is not None:
            words.append(f"only frames observed by {self.cutoff} TAI (outcome closed)")
        return "; ".join(words) + "."

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "hours": self.hours,
            "k": self.k,
            "share": self.share,
            "flared": self.flared,
            "known": self.known,
            "unknown": self.unknown,
            "cutoff": None if self.cutoff is None else self.cutoff.isoformat(),
            "kind": self.kind,
            "text": self.text(),
            "caveat": self.caveat,
            "neighbours": [
                n | {"t_rec": pd.Timestamp(n["t_rec"]).isoformat()} for n in self.neighbours
            ],
        }


def outlook_cutoff(query_t_rec: Any, hours: int) -> pd.Timestamp:
    """The latest neighbour T_REC whose outcome window had closed at ``query_t_rec``
    (naive TAI): T_REC + hours <= query T_REC."""
    return pd.Timestamp(query_t_rec) - pd.Timedelta(hours=int(hours))


def look_alike_outlook(
    candidates: pd.DataFrame,
    *,
    k: int,
    threshold: str = "M",
    hours: int = 24,
    query_t_rec: Any = None,
    query_region: str | None = None,
) -> Outlook:
    """The outlook from candidate frames (any order; nearest first is used).

    Parameters
    ----------
    candidates : DataFrame
        One row per frame: ``record_id``, ``region``, ``t_rec`` (naive TAI), ``distance``
        (smaller is closer), ``outcome_<hours>h_status`` and ``outcome_<hours>h_max_flux``
        [W m^-2]; a missing or empty status counts as unknown.
    k : int
        Regions used: the ``k`` nearest eligible regions, one frame (the nearest) each.
    threshold : str
        A GOES class (``"M"``, ``"M5"``, ``"X+"``): a neighbour flared when its largest flare
        in the window is at least this.
    hours : int
        The outcome window.
    query_t_rec : datetime or None
        The query's observation time (a record): only frames with T_REC + hours <= it.
    query_region : str or None
        The query's region: never a neighbour.
    """
    if int(k) < 1:
        raise ValueError(f"outlook k {k!r}: give at least 1 region")
    floor = class_threshold(threshold) * (1 - 1e-9)
    name = f"outcome_{int(hours)}h"
    frame = candidates.sort_values("distance", kind="stable")
    keep = np.ones(len(frame), bool)
    cutoff = None
    if query_t_rec is not None:
        cutoff = outlook_cutoff(query_t_rec, hours)
        keep &= pd.to_datetime(frame["t_rec"]).to_numpy() <= cutoff.to_datetime64()
    if query_region is not None:
        keep &= frame["region"].astype(str).to_numpy() != str(query_region)
    frame = frame[keep].drop_duplicates("region", keep="first").head(int(k))
    neighbours = []
    for row in frame.to_dict("records"):
        status = row.get(f"{name}_status")
        known = status == "known"
        flux = row.get(f"{name}_max_flux")
        flared = bool(known and flux is not None and float(flux) >= floor) if known else None
        neighbours.append(
            {
                "record_id": str(row["record_id"]),
                "region": str(row["region"]),
                "t_rec": pd.Timestamp(row["t_rec"]),
                "distance": float(row["distance"]),
                "status": "known" if known else "unknown",
                "max_class": row.get(f"{name}_max_class") if known else None,
                "flared": flared,
            }
        )
    known = sum(n["status"] == "known" for n in neighbours)
    return Outlook(
        threshold=str(threshold).strip().upper().rstrip("+"),
        hours=int(hours),
        k=int(k),
        flared=sum(bool(n["flared"]) for n in neighbours),
        known=known,
        unknown=len(neighbours) - known,
        cutoff=cutoff,
        neighbours=neighbours,
    )


def query_outlook(
    index: Any,
    vector: np.ndarray,
    *,
    k: int,
    threshold: str = "M",
    hours: int = 24,
    query_t_rec: Any = None,
    query_region: str | None = None,
    encoder_version: str | None = None,
    kind: str | None = None,
    space: str | None = None,
) -> Outlook:
    """:func:`look_alike_outlook` of a query embedding on a
    :class:`~sharpseek.search.index.VectorIndex`.

    One request: the ``k`` nearest regions among frames that carry the outcome window (a
    flare catalogue wrote it), observed by the cutoff, not of the query's region, of
    ``kind`` (``real``: the SHARP series; ``synthetic``; None: both), nearest in the
    embedding ``space`` of ``vector`` (None: the collection's first, ``region``); the rule
    is applied again to what comes back.
    """
    series = {"real": [DEFINITIVE_SERIES, NRT_SERIES], "synthetic": ["synthetic"], None: None}
    if kind not in series:
        raise ValueError(f"outlook kind {kind!r}: choose real, synthetic or None")

    status = f"outcome_{int(hours)}h_status"
    live = index.live()
    if live is None or status not in live.fields:  # no catalogue loaded: nothing to count
        empty = look_alike_outlook(
            hits_candidates([]), k=k, threshold=threshold, hours=hours, query_t_rec=query_t_rec
        )
        return replace(empty, kind=kind)
    spec = SearchFilter(
        equals={status: ["known", "unknown"]} | ({"series": series[kind]} if kind else {}),
        time=(None, outlook_cutoff(query_t_rec, hours)) if query_t_rec is not None else None,
        exclude_regions=[query_region] if query_region is not None else None,
    )
    hits = index.search(
        vector,
        limit=int(k),
        filter=spec,
        group_by_harp=True,
        encoder_version=encoder_version,
        space=space,
    )
    found = look_alike_outlook(
        hits_candidates(hits),
        k=k,
        threshold=threshold,
        hours=hours,
        query_t_rec=query_t_rec,
        query_region=query_region,
    )
    return replace(found, kind=kind)


def hits_candidates(hits: Any) -> pd.DataFrame:
    """Index hits (:class:`~sharpseek.search.index.SearchHit`) as the candidates table of
    :func:`look_alike_outlook`."""
    rows = []
    for hit in hits:
        p: Mapping[str, Any] = hit.payload
        rows.append(
            {
                "record_id": hit.record_id,
                "region": hit.region,
                "t_rec": pd.Timestamp(hit.t_rec),
                "distance": float(hit.distance),
            }
            | {key: value for key, value in p.items() if str(key).startswith("outcome_")}
        )
    columns = ["record_id", "region", "t_rec", "distance"]
    return pd.DataFrame(rows, columns=None if rows else columns)
