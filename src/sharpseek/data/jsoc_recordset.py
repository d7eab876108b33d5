"""DRMS record-set strings that select SHARP records, and the times and cadences in them.

:func:`build_query` writes a record set (series, HARP numbers, a T_REC range at a cadence,
a QUALITY and a NOAA where-clause); :func:`parse_cadence` checks a DRMS step against the
native 12-minute cadence; :func:`format_t_rec` and :func:`as_tai` write and read T_REC
times (naive datetimes in TAI); :func:`series_of` names the series of a record set.
Pure string work: nothing here talks to JSOC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sharpseek.data.fits import SHARP_SERIES, parse_t_rec

__all__ = [
    "NATIVE_CADENCE",
    "QUALITY_CLAUSES",
    "as_tai",
    "build_query",
    "format_t_rec",
    "parse_cadence",
    "series_of",
]

#: QUALITY where-clauses (SCIENCE.md "Data"): JSOC users keep QUALITY < 65536 (the low bits
#: are informational); "strict" keeps only flawless records.
QUALITY_CLAUSES: dict[str, str] = {"usable": "QUALITY < 65536", "strict": "QUALITY = 0"}

#: The native cadence of the SHARP series (T_REC slots of 720 s).
NATIVE_CADENCE = timedelta(minutes=12)

_CADENCE_UNITS = {"m": 60, "h": 3600, "d": 86400}
_CADENCE = re.compile(r"^(\d+)([mhd])$")


def format_t_rec(t: datetime) -> str:
    """A naive TAI datetime as JSOC writes T_REC: ``2014.01.31_02:48:00_TAI``.

    Examples
    --------
    >>> format_t_rec(datetime(2014, 1, 31, 2, 48))
    '2014.01.31_02:48:00_TAI'
    """
    return t.strftime("%Y.%m.%d_%H:%M:%S_TAI")


def parse_cadence(cadence: str) -> timedelta:
    """A DRMS step such as ``12m``, ``1h``, ``12h`` or ``1d`` as a timedelta.

    Raises
    ------
    ValueError
        If ``cadence`` is not a positive whole number of minutes/hours/days, or is not a
        multiple of the native 12-minute cadence.

    Examples
    --------
    >>> parse_cadence("12h")
    datetime.timedelta(seconds=43200)
    """
    m = _CADENCE.match(str(cadence).strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(
            f"cadence {cadence!r} is not like 12m, 1h, 12h or 1d (a positive whole number "
            "followed by m, h or d)"
        )
    step = timedelta(seconds=int(m.group(1)) * _CADENCE_UNITS[m.group(2)])
    if step % NATIVE_CADENCE:
        raise ValueError(
            f"cadence {cadence!r} is not a multiple of the native SHARP cadence of 12 minutes"
        )
    return step


def build_query(
    series: str,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    harpnums: Iterable[int] | None = None,
    noaa: int | Iterable[int] | None = None,
    cadence: str = "1h",
    quality: str = "usable",
) -> str:
    """A DRMS record-set string selecting SHARP records.

    Parameters
    ----------
    series : {'hmi.sharp_cea_720s', 'hmi.sharp_cea_720s_nrt'}
        Definitive or near-real-time SHARPs (CEA).
    start, end : datetime or str, optional
        Time range of T_REC, both ends included; naive datetimes in TAI, or JSOC strings
        (``2014.01.31_00:00:00_TAI``) or ISO strings. Give both or neither.
    harpnums : iterable of int, optional
        HARP numbers (a non-empty list when given).
    noaa : int or iterable of int, optional
        NOAA active-region numbers; a record matches when its ``NOAA_ARS`` (the list of
        NOAA regions inside the HARP) contains any of them.
    cadence : str
        Step through the time range (``12m`` is every record, ``1h``, ``12h``, ``1d``); it
        applies to a time range only, so without ``start``/``end`` every record of the HARPs
        is selected.
    quality : {'usable', 'strict'}
        ``usable``: ``QUALITY < 65536``; ``strict``: ``QUALITY = 0``.

    Returns
    -------
    str
        The record set: series, HARPNUM slot, T_REC slot with ``@cadence``, then one
        where-clause per filter (see the examples).

    Raises
    ------
    ValueError
        For an unknown series, quality or cadence, an empty HARP list, ``end`` before
        ``start``, only one of ``start``/``end``, or no selection at all (the whole series).

    Examples
    --------
    >>> build_query("hmi.sharp_cea_720s", harpnums=[377, 7115])
    'hmi.sharp_cea_720s[377,7115][? QUALITY < 65536 ?]'
    >>> query = build_query(
    ...     "hmi.sharp_cea_720s",
    ...     start="2014.01.31_00:00:00_TAI",
    ...     end="2014.02.04_00:00:00_TAI",
    ...     noaa=11969,
    ...     quality="strict",
    ... )
    >>> print(query.replace("][", "]\\n["))
    hmi.sharp_cea_720s[]
    [2014.01.31_00:00:00_TAI-2014.02.04_00:00:00_TAI@1h]
    [? QUALITY = 0 ?]
    [? NOAA_ARS ~ "11969" ?]
    """
    _check_series(series)
    parse_cadence(cadence)
    if quality not in QUALITY_CLAUSES:
        raise ValueError(f"quality {quality!r} is not one of {sorted(QUALITY_CLAUSES)}")
    harp_slot = ""
    if harpnums is not None:
        harp_slot = ",".join(str(h) for h in _check_harpnums(harpnums))
    time_slot = ""
    if (start is None) != (end is None):
        raise ValueError(f"give both start and end, or neither (start={start!r}, end={end!r})")
    if start is not None and end is not None:
        t0, t1 = as_tai(start, "start"), as_tai(end, "end")
        if t1 < t0:
            raise ValueError(f"end {format_t_rec(t1)} is before start {format_t_rec(t0)}")
        time_slot = f"{format_t_rec(t0)}-{format_t_rec(t1)}@{cadence}"
    where = [QUALITY_CLAUSES[quality]]
    if noaa is not None:
        where.append(_noaa_clause(noaa))
    if not harp_slot and not time_slot and noaa is None:
        raise ValueError("the query selects the whole series: give harpnums, start/end or noaa")
    query = f"{series}[{harp_slot}]"
    if time_slot:
        query += f"[{time_slot}]"
    return query + "".join(f"[? {clause} ?]" for clause in where)


def _check_series(series: str) -> None:
    if series not in SHARP_SERIES:
        raise ValueError(f"series {series!r} is not one of {list(SHARP_SERIES)}")


def _check_harpnums(harpnums: Iterable[int]) -> list[int]:
    if isinstance(harpnums, (str, bytes)):
        raise ValueError(f"harpnums {harpnums!r} must be a list of integers, not a string")
    harps = list(harpnums)
    if not harps:
        raise ValueError("harpnums is an empty list: give at least one HARP number, or None")
    out = []
    for h in harps:
        if isinstance(h, bool) or int(h) != h or int(h) <= 0:
            raise ValueError(f"harpnums: {h!r} is not a positive integer HARP number")
        out.append(int(h))
    return sorted(set(out))


def _noaa_clause(noaa: int | Iterable[int]) -> str:
    numbers = [noaa] if isinstance(noaa, int) else list(noaa)
    if not numbers:
        raise ValueError("noaa is an empty list: give at least one NOAA number, or None")
    for n in numbers:
        # NOAA numbers of the SDO era (SHARPs start in 2010) have five digits; a shorter
        # number would match inside longer ones in the regular expression below.
        if isinstance(n, bool) or int(n) != n or not 10000 <= int(n) <= 99999:
            raise ValueError(f"noaa: {n!r} is not a five-digit NOAA active-region number")
    pattern = "|".join(str(int(n)) for n in numbers)
    return f'NOAA_ARS ~ "{pattern}"'


def as_tai(value: datetime | str, name: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError(
                f"{name} {value!r} has a time zone: pass a naive datetime in TAI (JSOC's T_REC)"
            )
        return value
    if isinstance(value, str):
        try:
            return parse_t_rec(value)
        except ValueError:
            pass
        try:
            return as_tai(datetime.fromisoformat(value), name)
        except ValueError:
            pass
    raise ValueError(
        f"{name} {value!r} is not a datetime, a JSOC time (2014.01.31_00:00:00_TAI) or ISO time"
    )


def series_of(query: str) -> str:
    m = re.match(r"^\s*([\w.]+)", query)
    if not m:
        raise ValueError(f"query {query!r} does not start with a series name")
    name = m.group(1)
    for series in SHARP_SERIES:
        if series.lower() == name.lower():
            return series
    return name
