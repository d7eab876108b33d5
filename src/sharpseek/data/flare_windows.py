"""Flare history and outcome windows of frames: :class:`FlareWindow` (history before T_REC,
outcome after it, on the TAI clock), the statistics of each window computed for any frames in
one vectorised pass (:func:`flare_windows`), their index payload fields, and their text for
people. Outcomes are labels beside a frame, never features (docs/flares.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sharpseek.config import FlareSettings
from sharpseek.data.flares import _HARP_SHIFT, CLASS_FLUX, FlareCatalogue, class_name

__all__ = [
    "FLARE_COLUMN",
    "FlareWindow",
    "flare_columns",
    "flare_fields",
    "flare_payloads",
    "flare_summary",
    "flare_windows",
    "parse_record_id",
    "payload_windows",
    "window_text",
]


# ----------------------------------------------------------------------------------------------
# windows
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlareWindow:
    """A window around T_REC: ``history`` [T_REC - hours, T_REC) or ``outcome``
    [T_REC, T_REC + hours), on the TAI clock."""

    kind: str
    hours: int

    def __post_init__(self) -> None:
        if self.kind not in ("history", "outcome"):
            raise ValueError(f"flare window kind {self.kind!r}: choose history or outcome")
        if int(self.hours) != self.hours or self.hours <= 0:
            raise ValueError(f"flare window of {self.hours!r} h: give a positive whole number")

    @property
    def name(self) -> str:
        """``history_24h``, ``outcome_48h``: the prefix of its payload fields."""
        return f"{self.kind}_{int(self.hours)}h"

    def offsets(self) -> tuple[np.timedelta64, np.timedelta64]:
        """(start, end) relative to T_REC, half-open [start, end)."""
        span = np.timedelta64(int(self.hours) * 3600, "s")
        zero = np.timedelta64(0, "s")
        return (-span, zero) if self.kind == "history" else (zero, span)


def configured_windows(settings: FlareSettings) -> list[FlareWindow]:
    """The windows of ``settings`` (``settings.flares``): history windows, then outcomes."""
    return [FlareWindow("history", h) for h in settings.history_hours] + [
        FlareWindow("outcome", h) for h in settings.outcome_hours
    ]


#: Statistics of a window in the payload: name -> index field kind.
WINDOW_STATS = {
    "status": "keyword",  # known | unknown
    "max_class": "keyword",  # "X9.3", or "none" when no flare
    "max_flux": "float",  # W m^-2, 0 when no flare
    "c": "integer",  # flares >= C1.0
    "m": "integer",  # flares >= M1.0
}
CATALOGUE_FIELD = "flare_catalogue"


def flare_fields(windows: Sequence[FlareWindow]) -> dict[str, str]:
    """Payload fields (name -> index kind) the windows write into the index."""
    fields = {CATALOGUE_FIELD: "keyword"}
    for window in windows:
        for stat, kind in WINDOW_STATS.items():
            fields[f"{window.name}_{stat}"] = kind
    return fields


def parse_record_id(rid: str) -> tuple[str, int, np.datetime64]:
    """``series:HARPNUM:YYYYMMDD_HHMMSS_TAI`` -> (series, harpnum, T_REC as datetime64[s])."""
    match = re.fullmatch(r"([^:]+):(\d+):(\d{8})_(\d{6})_TAI", rid.strip())
    if not match:
        raise ValueError(
            f"record id {rid!r}: expected series:HARPNUM:YYYYMMDD_HHMMSS_TAI "
            "(e.g. hmi.sharp_cea_720s:377:20110215_020000_TAI)"
        )
    series, harp, day, clock = match.groups()
    text = f"{day[:4]}-{day[4:6]}-{day[6:]}T{clock[:2]}:{clock[2:4]}:{clock[4:]}"
    try:
        return series, int(harp), np.datetime64(text, "s")
    except ValueError:
        raise ValueError(f"record id {rid!r}: T_REC {day}_{clock} is not a time") from None


def flare_windows(
    catalogue: FlareCatalogue,
    harpnums: Iterable[int],
    t_recs: Any,
    windows: Sequence[FlareWindow],
) -> pd.DataFrame:
    """History and outcome of any set of frames, vectorised over frames.

    Parameters
    ----------
    harpnums : iterable of int, shape (n,)
    t_recs : array-like of naive TAI datetimes, shape (n,)
    windows : FlareWindow sequence

    Returns
    -------
    DataFrame (n rows, in input order): ``flare_catalogue``, ``unknown_reason`` (per frame;
    empty when the HARP is covered) and per window ``<name>_status`` (known/unknown),
    ``<name>_max_class``, ``<name>_max_flux`` [W m^-2], ``<name>_c``, ``<name>_m``, and
    ``<name>_reason``; the statistics are None where the window is unknown.
    """
    harp = np.asarray(list(harpnums), dtype=np.int64)
    t = np.asarray(t_recs, dtype="datetime64[s]")
    if harp.shape != t.shape:
        raise ValueError(f"{harp.size} HARP numbers but {t.size} T_REC values")
    n = harp.size
    key, flux = _flare_keys(catalogue)
    cum_c = np.concatenate([[0], np.cumsum(flux >= CLASS_FLUX["C"] * (1 - 1e-9))])
    cum_m = np.concatenate([[0], np.cumsum(flux >= CLASS_FLUX["M"] * (1 - 1e-9))])
    padded = np.concatenate([flux, [0.0]])  # reduceat needs every index < len
    harp_reason, alive_from, alive_until = _harp_coverage(catalogue, harp)
    out: dict[str, Any] = {
        "flare_catalogue": [catalogue.version] * n,
        "unknown_reason": harp_reason,
    }
    seconds = t.astype(np.int64)
    for window in windows:
        lo_off, hi_off = window.offsets()
        start, end = t + lo_off, t + hi_off
        base = harp * _HARP_SHIFT + seconds
        lo = np.searchsorted(key, base + lo_off.astype(np.int64), side="left")
        hi = np.searchsorted(key, base + hi_off.astype(np.int64), side="left")
        bounds = np.empty(2 * n, np.int64)
        bounds[0::2], bounds[1::2] = lo, hi
        peak = np.maximum.reduceat(padded, bounds)[0::2] if n else np.zeros(0)
        peak = np.where(hi > lo, peak, 0.0)
        reason = _window_reason(
            catalogue, harp_reason, start, end, alive_from=alive_from, alive_until=alive_until
        )
        known = reason == ""
        name = window.name
        out[f"{name}_status"] = np.where(known, "known", "unknown")
        out[f"{name}_max_class"] = [
            (class_name(p) if p > 0 else "none") if k else None
            for p, k in zip(peak, known, strict=True)
        ]
        out[f"{name}_max_flux"] = [
            float(p) if k else None for p, k in zip(peak, known, strict=True)
        ]
        out[f"{name}_c"] = [
            int(v) if k else None for v, k in zip(cum_c[hi] - cum_c[lo], known, strict=True)
        ]
        out[f"{name}_m"] = [
            int(v) if k else None for v, k in zip(cum_m[hi] - cum_m[lo], known, strict=True)
        ]
        out[f"{name}_reason"] = reason
    return pd.DataFrame({k: pd.Series(list(v), dtype=object) for k, v in out.items()})


def _flare_keys(catalogue: FlareCatalogue) -> tuple[np.ndarray, np.ndarray]:
    """The matched flares sorted by (HARPNUM, start): their search keys (HARPNUM *
    ``_HARP_SHIFT`` + start in TAI seconds, int64, shape (m,)) and peak fluxes [W m^-2]."""
    flares = catalogue.matched.sort_values(["harpnum", "start_tai"], kind="stable")
    key = flares["harpnum"].to_numpy(np.int64) * _HARP_SHIFT + flares["start_tai"].to_numpy(
        "datetime64[s]"
    ).astype(np.int64)
    return key, flares["peak_flux"].to_numpy(float)


def _harp_coverage(
    catalogue: FlareCatalogue, harp: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame (``harp``: HARPNUMs, shape (n,)): why its HARP is not covered ("" when it
    is; object array), and the HARP's lifetime widened by the catalogue's margin
    (datetime64[s], NaT where unknown)."""
    covered = {
        int(h): bool(len(ars))
        for h, ars in zip(catalogue.harps["harpnum"], catalogue.harps["noaa_ars"], strict=True)
    }
    harp_reason = np.array(
        [
            ""
            if covered.get(int(h))
            else (
                "HARP has no NOAA number"
                if int(h) in covered
                else "HARP not in the catalogue's HARP table"
            )
            for h in harp
        ],
        dtype=object,
    )
    # flares are attributed to a HARP only within its lifetime (+- the catalogue's margin):
    # outside it the catalogue says nothing about the region (e.g. behind the limb)
    margin = np.timedelta64(int(round(3600 * catalogue.info.get("lifetime_margin_hours", 0))), "s")
    lifetimes = catalogue.harps.drop_duplicates("harpnum").set_index("harpnum")
    alive_from = lifetimes["t_start"].reindex(harp).to_numpy("datetime64[s]") - margin
    alive_until = lifetimes["t_end"].reindex(harp).to_numpy("datetime64[s]") + margin
    no_lifetime = (harp_reason == "") & (np.isnat(alive_from) | np.isnat(alive_until))
    harp_reason[no_lifetime] = "HARP's lifetime is blank in the HARP table"
    return harp_reason, alive_from, alive_until


def _window_reason(
    catalogue: FlareCatalogue,
    harp_reason: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    *,
    alive_from: np.ndarray,
    alive_until: np.ndarray,
) -> np.ndarray:
    """Why each frame's window [start, end) is unknown ("" when known; object array, shape
    (n,)): its HARP's reason first, then the catalogue's coverage, then the HARP's
    lifetime."""
    first, last = catalogue.coverage
    reason = harp_reason.copy()
    past = (reason == "") & (end > last)
    reason[past] = f"window ends after the catalogue's last flare ({last} TAI)"
    before = (reason == "") & (start < first)
    reason[before] = f"window starts before the catalogue's first flare ({first} TAI)"
    # a window reaching the HARP's last record + margin is still covered: a flare that
    # starts exactly then is matched (the lifetime test is closed)
    late = (reason == "") & (end - np.timedelta64(1, "s") > alive_until)
    reason[late] = "window reaches past the HARP's lifetime (T_END + margin)"
    early = (reason == "") & (start < alive_from)
    reason[early] = "window starts before the HARP's lifetime (T_START - margin)"
    return reason


def flare_payloads(summary: pd.DataFrame, windows: Sequence[FlareWindow]) -> list[dict[str, Any]]:
    """Index payload fields (:func:`flare_fields`) of each row of :func:`flare_windows`."""
    keys = list(flare_fields(windows))
    columns = [summary[k].tolist() for k in keys]
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


_WINDOW_KEY = re.compile(r"^(history|outcome)_(\d+)h_(status|max_class|max_flux|c|m)$")


def payload_windows(payload: Mapping[str, Any]) -> list[FlareWindow]:
    """The flare windows a payload (or a hit's row) holds fields of, history first."""
    found = {(m.group(1), int(m.group(2))) for m in map(_WINDOW_KEY.match, map(str, payload)) if m}
    return [FlareWindow(kind, hours) for kind, hours in sorted(found)]


def window_text(payload: Mapping[str, Any], window: FlareWindow) -> str:
    """One window in words: ``"X9.3 (3 >=M, 10 >=C)"``, ``"no flare >=C"`` or ``"unknown"``.

    >>> window_text({"outcome_24h_status": "known", "outcome_24h_max_class": "M7.3",
    ...              "outcome_24h_m": 5, "outcome_24h_c": 7}, FlareWindow("outcome", 24))
    'M7.3 (5 >=M, 7 >=C)'
    """
    name = window.name
    if payload.get(f"{name}_status") != "known":
        return "unknown"
    c, m = payload.get(f"{name}_c") or 0, payload.get(f"{name}_m") or 0
    largest = payload.get(f"{name}_max_class") or "none"
    if not c:
        return "no flare >=C" if largest == "none" else f"{largest} (no flare >=C)"
    return f"{largest} ({int(m)} >=M, {int(c)} >=C)"


def flare_summary(payload: Mapping[str, Any]) -> str:
    """Every window of a payload in one line (``""`` when it holds no flare fields), e.g.
    ``"24 h before: X9.3 (3 >=M, 10 >=C); 24 h after: M7.3 (5 >=M, 7 >=C)"``."""
    parts = []
    for window in payload_windows(payload):
        side = "before" if window.kind == "history" else "after"
        parts.append(f"{window.hours} h {side}: {window_text(payload, window)}")
    return "; ".join(parts)


#: Payload fields shown with a search hit (cards, CSV, JSON): the catalogue version and each
#: window's status, largest class and counts.
FLARE_COLUMN = re.compile(r"^(flare_catalogue|(history|outcome)_\d+h_(status|max_class|c|m))$")


def flare_columns(payload: Mapping[str, Any]) -> list[str]:
    """The flare fields of a payload shown with a hit (:data:`FLARE_COLUMN`), in payload
    order."""
    return [k for k in payload if FLARE_COLUMN.match(str(k))]
