"""Search filters: a small typed spec, checked, then translated into one backend filter.

A :class:`SearchFilter` holds what a heliophysicist narrows a search by: ranges on any
indexed payload field (TUF, R, PSEP, flux in Mx, ...), a T_REC window, HARP or NOAA numbers,
a hemisphere or a latitude band, a range of mu (disk position), and exact values of keyword or
integer fields. All conditions must hold. The spec is checked when it is built (inverted or
empty ranges, NaN bounds, bad choices) and again against the collection's payload indexes
when a search runs (a field without a payload index is refused, by name). It becomes
backend-neutral :class:`Condition` objects, which each backend turns into its own ``Filter``
sent in the same request as the vector query.

Time
----
T_REC is TAI and is stored as the TAI clock reading. A naive datetime (or text without a
zone) is taken as TAI, as T_REC is; a datetime with a time zone is converted to UTC and then
to TAI (astropy, leap seconds included), so ``datetime(2014, 1, 1, tzinfo=UTC)`` means
2014-01-01T00:00:35 TAI.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

import pandas as pd
from astropy.time import Time

from sharpseek.data.flares import class_threshold
from sharpseek.search.index.points import rfc3339

__all__ = ["Condition", "SearchFilter", "parse_bounds", "parse_finite", "to_tai"]

Bound = float | int | datetime | str | None
HEMISPHERES = ("north", "south")


class Condition(NamedTuple):
    """One backend-neutral condition on a payload field.

    ``op`` is ``"range"`` (value: dict of gte/gt/lte/lt numbers), ``"datetime_range"``
    (value: dict of RFC 3339 texts) or ``"any"`` (value: tuple of ints or of strings; the
    point matches when its value, or any element of its list, is one of them).
    """

    key: str
    op: Literal["range", "datetime_range", "any"]
    value: Any


@dataclass(frozen=True)
class SearchFilter:
    """What to narrow a search by; every condition given must hold.

    Parameters
    ----------
    ranges : mapping of field -> (low, high)
        Closed ranges on float, integer or datetime payload fields, e.g.
        ``{"tuf": (2e5, None), "psep_mm": (10, 40)}``; None leaves a side open.
    time : (start, end)
        T_REC window, closed (see the module notes on TAI).
    harpnums : sequence of int
        Only these HARPs (in every series; add ``equals={"series": [...]}`` to pick one).
    noaa : sequence of int
        Only frames whose NOAA_ARS holds any of these NOAA numbers.
    hemisphere : "north" or "south"
        LAT_FWT > 0 or LAT_FWT < 0.
    latitude, mu : (low, high)
        Closed ranges on LAT_FWT [deg] and on mu = cos(heliocentric angle).
    equals : mapping of field -> value or sequence of values
        Keyword or integer fields equal to the value (or to any of the values), e.g.
        ``{"series": "hmi.sharp_cea_720s", "quality": 0}``.
    exclude_harpnums : sequence of int
        Leave these HARPs out (in every series).
    exclude_regions : sequence of str
        Leave these regions out (``region`` keys, e.g. ``synthetic:12`` or
        ``hmi.sharp_cea_720s:377``): the region a query frame came from.
    history : (class, hours)
        A flare of this class or above (``"M+"``) in the ``hours`` before T_REC
        (:mod:`sharpseek.data.flares`; frames whose window is unknown never match).
    outcome : (class, hours)
        A flare of this class or above in the ``hours`` from T_REC on. An outcome describes
        what happened after the observation: a label to filter by, never a feature.
    quiet : (hours, class)
        No flare of ``class`` or above (default C) in the ``hours`` from T_REC on; unknown
        windows never count as quiet.

    Examples
    --------
    >>> f = SearchFilter(ranges={"tuf": (1e5, None)}, hemisphere="south", mu=(0.5, 1))
    >>> [c.key for c in f.conditions({"tuf": "float", "lat_fwt": "float", "mu": "float"})[0]]
    ['tuf', 'lat_fwt', 'mu']
    """

    ranges: Mapping[str, tuple[Bound, Bound]] = field(default_factory=dict)
    time: tuple[Bound, Bound] | None = None
    harpnums: Sequence[int] | None = None
    noaa: Sequence[int] | None = None
    hemisphere: Literal["north", "south"] | None = None
    latitude: tuple[float | None, float | None] | None = None
    mu: tuple[float | None, float | None] | None = None
    equals: Mapping[str, Any] = field(default_factory=dict)
    exclude_harpnums: Sequence[int] | None = None
    exclude_regions: Sequence[str] | None = None
    history: tuple[str, int] | None = None
    outcome: tuple[str, int] | None = None
    quiet: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        for name in ("history", "outcome"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
                    raise ValueError(f"{name} must be a (class, hours) pair, got {value!r}")
                cls, hours = value
                class_threshold(cls)  # checks it
                object.__setattr__(self, name, (str(cls).strip().upper(), _hours(hours, name)))
        if self.quiet is not None:
            value = self.quiet
            if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
                raise ValueError(f"quiet must be an (hours, class) pair, got {value!r}")
            hours, cls = value
            class_threshold(cls)
            object.__setattr__(self, "quiet", (_hours(hours, "quiet"), str(cls).strip().upper()))
        ranges = {}
        for key, bounds in dict(self.ranges).items():
            ranges[str(key)] = _pair(bounds, f"range of {key!r}")
        object.__setattr__(self, "ranges", ranges)
        if self.time is not None:
            start, end = _pair(self.time, "time")
            start, end = (
                (to_tai(start) if start is not None else None),
                (to_tai(end) if end is not None else None),
            )
            if start is not None and end is not None and start > end:
                raise ValueError(f"inverted time range: start {start} is after end {end}")
            object.__setattr__(self, "time", (start, end))
        for name in ("harpnums", "noaa", "exclude_harpnums"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _ints(value, name))
        if self.hemisphere is not None and self.hemisphere not in HEMISPHERES:
            raise ValueError(
                f"unknown hemisphere {self.hemisphere!r}; choose one of {list(HEMISPHERES)}"
            )
        for name in ("latitude", "mu"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _pair(value, name))
        if self.exclude_regions is not None:
            regions = (
                (self.exclude_regions,)
                if isinstance(self.exclude_regions, str)
                else tuple(self.exclude_regions)
            )
            if not regions or not all(isinstance(r, str) and r for r in regions):
                raise ValueError(f"exclude_regions must be region keys (text), got {regions!r}")
            object.__setattr__(self, "exclude_regions", regions)
        equals = {}
        for key, value in dict(self.equals).items():
            if isinstance(value, str) or not isinstance(value, Iterable):
                values = (value,)
            else:
                values = tuple(value)
            if not values:
                raise ValueError(f"equals[{key!r}] is an empty list: it would match nothing")
            equals[str(key)] = values
        object.__setattr__(self, "equals", equals)

    def conditions(self, fields: Mapping[str, str]) -> tuple[list[Condition], list[Condition]]:
        """(must, must_not) conditions, checked against the indexed ``fields`` (name -> kind).

        Raises
        ------
        ValueError
            A field without a payload index, or a condition of the wrong kind for its field.
        """
        must: list[Condition] = []
        must_not: list[Condition] = []
        for key, (low, high) in self.ranges.items():
            must.append(_range(key, low, high, fields))
        if self.time is not None:
            must.append(_range("t_rec", *self.time, fields))
        if self.harpnums is not None:
            must.append(_any("harpnum", self.harpnums, fields))
        if self.noaa is not None:
            must.append(_any("noaa_ars", self.noaa, fields))
        if self.hemisphere is not None:
            _kind("lat_fwt", fields, ("float",))
            side = {"gt": 0.0} if self.hemisphere == "north" else {"lt": 0.0}
            must.append(Condition("lat_fwt", "range", side))
        if self.latitude is not None:
            must.append(_range("lat_fwt", *self.latitude, fields))
        if self.mu is not None:
            must.append(_range("mu", *self.mu, fields))
        for key, values in self.equals.items():
            must.append(_any(key, values, fields))
        if self.exclude_harpnums is not None:
            must_not.append(_any("harpnum", self.exclude_harpnums, fields))
        if self.exclude_regions is not None:
            must_not.append(_any("region", self.exclude_regions, fields))
        for kind in ("history", "outcome"):
            value = getattr(self, kind)
            if value is not None:
                cls, hours = value
                key = _flare_key(kind, hours, fields)
                must.append(Condition(key, "range", {"gte": class_threshold(cls) * (1 - 1e-9)}))
        if self.quiet is not None:
            hours, cls = self.quiet
            key = _flare_key("outcome", hours, fields)
            must.append(Condition(key, "range", {"lt": class_threshold(cls) * (1 - 1e-9)}))
        return must, must_not

    def is_empty(self) -> bool:
        """True when the filter has no condition at all."""
        return not (
            self.ranges
            or self.equals
            or any(
                getattr(self, name) is not None
                for name in (
                    "time",
                    "harpnums",
                    "noaa",
                    "hemisphere",
                    "latitude",
                    "mu",
                    "exclude_harpnums",
                    "exclude_regions",
                    "history",
                    "outcome",
                    "quiet",
                )
            )
        )


def to_tai(value: Bound) -> pd.Timestamp:
    """A time as a naive TAI timestamp: naive input is TAI already; aware input is converted.

    >>> from datetime import UTC
    >>> str(to_tai(datetime(2014, 1, 1, tzinfo=UTC)))
    '2014-01-01 00:00:35'
    """
    if isinstance(value, bool) or not isinstance(value, datetime | str | pd.Timestamp):
        raise ValueError(f"{value!r} is not a time (give a datetime or ISO 8601 text)")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{value!r} is not a time: {err}") from None
    if pd.isna(ts):
        raise ValueError(f"{value!r} is not a time")
    if ts.tzinfo is None:
        return ts

    utc = ts.tz_convert("UTC").tz_localize(None)
    return pd.Timestamp(Time(utc.to_pydatetime(), scale="utc").tai.to_datetime())


# ----------------------------------------------------------------------------------------------
def _hours(value: Any, what: str) -> int:
    """Whole hours from ``24``, ``"24"`` or ``"24h"``."""
    text = str(value).strip().lower().removesuffix("h").strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{what}: window {value!r} is not a whole number of hours (e.g. 24h)")
    return int(text)


def _flare_key(kind: str, hours: int, fields: Mapping[str, str]) -> str:
    key = f"{kind}_{hours}h_max_flux"
    if key not in fields:
        held = sorted({k.rsplit("_max_flux", 1)[0] for k in fields if k.endswith("_max_flux")})
        raise ValueError(
            f"the index holds no {hours} h {kind} window of flares "
            + (f"(it holds {held})" if held else "(load a catalogue: sharpseek flares load FILE)")
        )
    return key


def parse_bounds(text: str, name: str, separator: str = ":") -> tuple[float | None, float | None]:
    """``low<separator>high`` as typed by a user (the CLI's ``tuf=2e5:``, a link's
    ``f.tuf=2e5..``) -> (low, high) numbers, an empty side None. Errors name the input
    (``name``) and what is wrong with it; whether low <= high is :class:`SearchFilter`'s
    check, the same for every caller."""
    low, sep, high = str(text).partition(separator)
    if not sep:
        raise ValueError(f"{name} {text!r}: write low{separator}high (either side may be empty)")

    def number(part: str) -> float | None:
        part = part.strip()
        return parse_finite(part, f"{name} {text!r}") if part else None

    return number(low), number(high)


def parse_finite(text: str, name: str) -> float:
    """A finite number as typed by a user; errors name the input (``name``) and the text."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: {text!r} must be finite")
    return value


def _pair(bounds: Any, what: str) -> tuple[Bound, Bound]:
    if isinstance(bounds, str) or not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise ValueError(f"{what} must be a (low, high) pair, got {bounds!r}")
    low, high = bounds
    if low is None and high is None:
        raise ValueError(f"{what} has no bound: give low, high or both")
    for bound in (low, high):
        if isinstance(bound, float) and math.isnan(bound):
            raise ValueError(f"{what} has a NaN bound")
    if _is_number(low) and _is_number(high) and low > high:
        raise ValueError(f"inverted {what}: low {low} > high {high}")
    return low, high


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ints(values: Any, name: str) -> tuple[int, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        values = [values]  # one number
    out = []
    for v in values:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name}: {v!r} is not an integer")
        out.append(int(v))
    if not out:
        raise ValueError(f"{name} is an empty list: it would match nothing (give None instead)")
    return tuple(out)


def _kind(key: str, fields: Mapping[str, str], allowed: tuple[str, ...]) -> str:
    kind = fields.get(key)
    if kind is None:
        raise ValueError(
            f"unknown filter field {key!r}: it has no payload index in this collection; "
            f"filterable fields are {sorted(fields)}"
        )
    if kind not in allowed:
        raise ValueError(f"field {key!r} is a {kind} field; this condition needs {allowed}")
    return kind


def _range(key: str, low: Bound, high: Bound, fields: Mapping[str, str]) -> Condition:
    kind = _kind(key, fields, ("float", "integer", "datetime"))
    if kind == "datetime":
        lo = None if low is None else to_tai(low)
        hi = None if high is None else to_tai(high)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"inverted range of {key!r}: {lo} > {hi}")
        bounds = {
            "gte": None if lo is None else rfc3339(lo),
            "lte": None if hi is None else rfc3339(hi),
        }
        return Condition(key, "datetime_range", {k: v for k, v in bounds.items() if v is not None})
    for bound in (low, high):
        if bound is not None and not _is_number(bound):
            raise ValueError(f"range of {key!r}: bound {bound!r} is not a number")
    bounds = {"gte": low, "lte": high}
    return Condition(key, "range", {k: float(v) for k, v in bounds.items() if v is not None})


def _any(key: str, values: Sequence[Any], fields: Mapping[str, str]) -> Condition:
    kind = _kind(key, fields, ("integer", "keyword"))
    if kind == "integer":
        return Condition(key, "any", _ints(list(values), key))
    for v in values:
        if not isinstance(v, str):
            raise ValueError(f"{key!r} is a keyword field: {v!r} is not text")
    return Condition(key, "any", tuple(values))
