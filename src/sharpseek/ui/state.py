"""What a view of the UI is, and its shareable URL: a small typed state and its query string.

A :class:`ViewState` names everything needed to redraw a view: the page, the seed (or the
indexed record) the work started from, the shifts along physical directions, the held
quantities, the search filters (the library's own :class:`~sharpseek.search.index.SearchFilter`,
checked when built, the one the search takes) and result count, and the versions of the GAN,
the directions and the index it was made with. :func:`encode_query` writes it as
query-string parameters and :func:`decode_query` reads them back, checking every value (a
bad one raises ValueError naming the parameter). The format carries its own version
(``v``), so a link made by a later sharpseek is refused by name rather than misread.

Query string (format 1)::

    v=1&page=shift&seed=42&shift=tuf:1.5,psep:-0.5&hold=r&f.tuf=100000..&hemi=north
    &mu=0.5..1&time=2014-01-01..2014-06-01&harp=377,401&noaa=11158&k=12&per=1
    &gan=<gan version>&dirs=<directions version>&index=<collection>&record=<record id>
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sharpseek.science.directions import check_eps
from sharpseek.search.index.filters import SearchFilter, parse_bounds, parse_finite, to_tai

__all__ = [
    "PAGES",
    "URL_FORMAT",
    "ViewState",
    "address_to_follow",
    "decode_query",
    "encode_query",
    "link_to_write",
    "search_key",
    "time_text",
    "version_problems",
]

#: Version of the query-string format written by :func:`encode_query`.
URL_FORMAT = 1
#: The pages of the UI, in menu order.
PAGES = ("generate", "shift", "search", "export", "status")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
#: SearchFilter fields a link does not carry (the UI never sets them).
_UNLINKABLE = ("equals", "exclude_harpnums", "exclude_regions")
_KNOWN = {
    "v", "page", "seed", "shift", "hold", "hemi", "lat", "mu", "time", "harp", "noaa", "k",
    "per", "gan", "dirs", "index", "record", "hist", "out", "quiet",
}  # fmt: skip


@dataclass
class ViewState:
    """One view of the UI (see the module notes for its query string)."""

    page: str = "generate"
    seed: int | None = None
    record: str | None = None
    shifts: dict[str, float] = field(default_factory=dict)
    hold: list[str] = field(default_factory=list)
    filters: SearchFilter = field(default_factory=SearchFilter)
    limit: int = 12
    per_region: int = 1
    gan: str | None = None
    directions: str | None = None
    index: str | None = None


def _num(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (a range's bound rounded to
    fewer digits would drop the frame that sits on it when the link is opened)."""
    if value is None:
        return ""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _pair_text(pair) -> str:
    return f"{_num(pair[0])}..{_num(pair[1])}"


def encode_query(state: ViewState) -> dict[str, str]:
    """The query-string parameters of a view (only those that are set).

    A link made from a view reads back (:func:`decode_query`) as the same view and is
    written again byte for byte. Times are written as :func:`time_text` does.

    Raises
    ------
    ValueError
        The view's filter uses a condition a link cannot carry (``equals``,
        ``exclude_harpnums``, ``exclude_regions``).
    """
    out: dict[str, str] = {"v": str(URL_FORMAT), "page": state.page}
    if state.seed is not None:
        out["seed"] = str(state.seed)
    if state.record:
        out["record"] = state.record
    shifts = {k: v for k, v in state.shifts.items() if v}
    if shifts:
        out["shift"] = ",".join(f"{k}:{_num(v)}" for k, v in sorted(shifts.items()))
    if state.hold:
        out["hold"] = ",".join(sorted(state.hold))
    f = state.filters
    unlinkable = [name for name in _UNLINKABLE if getattr(f, name)]
    if unlinkable:
        raise ValueError(
            f"a link cannot carry the filter field(s) {', '.join(unlinkable)}; the UI sets "
            "only ranges, time, hemisphere, latitude, mu, HARP and NOAA numbers, flares"
        )
    for key, pair in sorted(f.ranges.items()):
        out[f"f.{key}"] = _pair_text(pair)
    if f.time is not None:
        out["time"] = f"{time_text(f.time[0])}..{time_text(f.time[1])}"
    if f.hemisphere:
        out["hemi"] = f.hemisphere
    if f.latitude is not None:
        out["lat"] = _pair_text(f.latitude)
    if f.mu is not None:
        out["mu"] = _pair_text(f.mu)
    if f.harpnums:
        out["harp"] = ",".join(str(h) for h in f.harpnums)
    if f.noaa:
        out["noaa"] = ",".join(str(n) for n in f.noaa)
    if f.history is not None:
        out["hist"] = f"{f.history[0]}:{f.history[1]}h"
    if f.outcome is not None:
        out["out"] = f"{f.outcome[0]}:{f.outcome[1]}h"
    if f.quiet is not None:
        out["quiet"] = f"{f.quiet[0]}h:{f.quiet[1]}"
    out["k"] = str(state.limit)
    out["per"] = str(state.per_region)
    for key, value in (("gan", state.gan), ("dirs", state.directions), ("index", state.index)):
        if value:
            out[key] = value
    return out


def decode_query(params: Mapping[str, Any]) -> ViewState:
    """Read a view from query-string parameters (as :func:`encode_query` writes them).

    Raises
    ------
    ValueError
        Naming the parameter and what is wrong: an unknown parameter, a format version this
        sharpseek cannot read, a number that is not one, an inverted range.
    """
    p = _plain(params)
    _check_link_format(p)
    state = ViewState()
    page = p.get("page", "generate")
    if page not in PAGES:
        raise ValueError(f"page={page!r}: choose one of {', '.join(PAGES)}")
    state.page = page
    if "seed" in p:
        state.seed = _int(p["seed"], "seed", minimum=0, maximum=2**63 - 1)  # as the protocol
    state.record = p.get("record") or None
    if p.get("shift"):
        state.shifts = _decode_shifts(p["shift"])
    if p.get("hold"):
        state.hold = _decode_hold(p["hold"])
    state.filters = _decode_filters(p)
    if "k" in p:
        state.limit = _int(p["k"], "k", minimum=1, maximum=100)
    if "per" in p:
        state.per_region = _int(p["per"], "per", minimum=1, maximum=20)
    state.gan = p.get("gan") or None
    state.directions = p.get("dirs") or None
    state.index = p.get("index") or None
    return state


def _check_link_format(p: Mapping[str, str]) -> None:
    """Refuse a link with a parameter this format does not have, or of another format
    version (``v``), by name."""
    unknown = sorted(k for k in p if k not in _KNOWN and not k.startswith("f."))
    if unknown:
        raise ValueError(f"link parameter(s) {', '.join(unknown)} not understood")
    version = p.get("v", str(URL_FORMAT))
    if version != str(URL_FORMAT):
        raise ValueError(
            f"link format v={version}: this sharpseek reads format {URL_FORMAT} only "
            "(the link was made by another version of sharpseek)"
        )


def _decode_shifts(text: str) -> dict[str, float]:
    """The ``shift`` parameter (``name:eps,...``) as {direction name: eps}, each eps checked
    by the protocol's rule (:func:`~sharpseek.science.directions.check_eps`)."""
    shifts: dict[str, float] = {}
    for item in text.split(","):
        name, sep, amount = item.partition(":")
        if not sep or not _NAME.fullmatch(name):
            raise ValueError(f"shift={text!r}: write name:eps pairs, e.g. tuf:1.5")
        eps = parse_finite(amount, f"shift of {name}")
        try:
            shifts[name] = check_eps(name, eps)  # the protocol's one rule
        except ValueError as err:
            raise ValueError(f"shift={text!r}: {err}") from None
    return shifts


def _decode_hold(text: str) -> list[str]:
    """The ``hold`` parameter (``name,...``) as the held parameter names, in link order."""
    hold = [h for h in text.split(",") if h]
    for h in hold:
        if not _NAME.fullmatch(h):
            raise ValueError(f"hold={text!r}: {h!r} is not a parameter name")
    return hold


def _decode_filters(p: Mapping[str, str]) -> SearchFilter:
    """The search filter a link names: ``f.<field>`` ranges, then time, hemisphere, latitude,
    mu, HARP and NOAA numbers, flare history, outcome and quiet (checked in that order)."""
    f: dict[str, Any] = {"ranges": {}}
    for key, text in p.items():
        if key.startswith("f."):
            name = key[2:]
            if not _NAME.fullmatch(name):
                raise ValueError(f"{key}: {name!r} is not a field name")
            f["ranges"][name] = parse_bounds(text, key, "..")
    if p.get("time"):
        start, sep, end = p["time"].partition("..")
        if not sep or not (start or end):
            raise ValueError(f"time={p['time']!r}: write start..end (ISO dates, TAI)")
        f["time"] = (_time(start, "time"), _time(end, "time"))
    if p.get("hemi"):
        if p["hemi"] not in ("north", "south"):
            raise ValueError(f"hemi={p['hemi']!r}: choose north or south")
        f["hemisphere"] = p["hemi"]
    if p.get("lat"):
        f["latitude"] = parse_bounds(p["lat"], "lat", "..")
    if p.get("mu"):
        f["mu"] = parse_bounds(p["mu"], "mu", "..")
    if p.get("harp"):
        f["harpnums"] = [_int(x, "harp", minimum=0) for x in p["harp"].split(",") if x] or None
    if p.get("noaa"):
        f["noaa"] = [_int(x, "noaa", minimum=0) for x in p["noaa"].split(",") if x] or None
    f.update(_decode_flares(p))
    try:
        return SearchFilter(**f)
    except ValueError as err:
        raise ValueError(f"link filters: {err}") from None


def _decode_flares(p: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The flare filters of a link as SearchFilter arguments: ``hist``/``out`` as
    (class, hours) pairs (``M+:24h``), ``quiet`` as (hours, class) (``48h:C``)."""
    f: dict[str, tuple[str, str]] = {}
    for key, name in (("hist", "history"), ("out", "outcome")):
        if p.get(key):
            cls, sep, hours = p[key].partition(":")
            if not sep:
                raise ValueError(f"{key}={p[key]!r}: write class:hours, e.g. M+:24h")
            f[name] = (cls, hours)
    if p.get("quiet"):
        hours, sep, cls = p["quiet"].partition(":")
        if not sep:
            raise ValueError(f"quiet={p['quiet']!r}: write hours:class, e.g. 48h:C")
        f["quiet"] = (hours, cls)
    return f


def _plain(params: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): (v[-1] if isinstance(v, list | tuple) else str(v)) for k, v in params.items()}


def link_to_write(address: Mapping[str, Any], wanted: Mapping[str, str]) -> dict[str, str] | None:
    """The query string to put in the address bar for a view, or None to leave it as it is.

    Streamlit pushes a browser history entry each time the app changes the query string
    (and replaces the entry during a Back/Forward rerun), so the app writes only when the view
    changed: one entry per view. ``address`` is what the address bar holds, ``wanted`` the
    view's :func:`encode_query`. A bare address (no query) is left alone while the view is a
    fresh one: it already names that view, and writing it would push an entry that Back
    returns to without any change on the page.

    >>> link_to_write({}, encode_query(ViewState())) is None
    True
    >>> link_to_write({}, encode_query(ViewState(seed=3)))["seed"]
    '3'
    """
    address, wanted = _plain(address), dict(wanted)
    if address == wanted or (not address and wanted == encode_query(ViewState())):
        return None
    return wanted


def address_to_follow(
    address: Mapping[str, Any], written: Mapping[str, Any] | None, *, history_navigation: bool
) -> bool:
    """Whether a rerun must open the view the address bar names instead of keeping its own.

    True on a Back or Forward press (Streamlit's ``is_history_navigation`` rerun) that brings
    an address other than the one this session last wrote (``written``; None before the
    first write). Any other rerun keeps the session's view: a click may reach the server
    before the address the previous run wrote has reached the browser, and that stale
    address is no navigation.
    """
    return history_navigation and written is not None and _plain(address) != _plain(written)


def search_key(state: ViewState) -> str:
    """What decides a search's results in a view: its base (seed or record), shifts, held
    quantities, filters, result count and per-region rule (not its page or versions). Two
    views with the same key show the same results, so moving between them need not search
    again."""
    query = encode_query(state)
    skip = ("page", "gan", "dirs", "index")
    return "&".join(f"{k}={v}" for k, v in query.items() if k not in skip)


def version_problems(state: ViewState, current: Mapping[str, str | None]) -> list[str]:
    """Plain sentences for each version a view names that this installation no longer has.

    ``current`` maps ``gan``, ``directions`` and ``index`` to the versions served now (None
    where there is none). A view made with another version cannot be reproduced: the same
    seed gives another image under another GAN, shifts mean other things under other
    directions, and another index holds other embeddings.
    """
    what = {
        "gan": ("GAN", "the same seed and shifts give a different image"),
        "directions": ("directions", "the shifts move along different directions"),
        "index": ("index", "search results come from a different index"),
    }
    named = {"gan": state.gan, "directions": state.directions, "index": state.index}
    out = []
    for key, version in named.items():
        if version and version != current.get(key):
            label, effect = what[key]
            now = current.get(key) or "none"
            out.append(
                f"This link names {label} version {version}, which is gone (this installation "
                f"has {now}): {effect}, so the view is not a reproduction."
            )
    return out


def time_text(value: Any) -> str:
    """A filter time as a link writes it (and the Search page shows it): the ISO date alone
    at midnight, else the ISO date and time; ``""`` for an open side. TAI, as T_REC.

    >>> time_text(pd.Timestamp("2014-01-01")), time_text(pd.Timestamp("2014-01-01 06:30"))
    ('2014-01-01', '2014-01-01T06:30:00')
    """
    if value is None:
        return ""
    ts = pd.Timestamp(value)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()


def _time(text: str, name: str) -> pd.Timestamp | None:
    if not text:
        return None
    try:
        return to_tai(text)
    except ValueError as err:
        raise ValueError(f"{name}={text!r}: {err}") from None


def _int(text: str, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={value} must be at most {maximum}")
    return value
