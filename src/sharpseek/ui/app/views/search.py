"""Search: the current image as the query, filters over histograms, results, compare."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from sharpseek.data.flare_windows import flare_summary
from sharpseek.physics.definitions import (
    NATIVE_PARAMETERS,
    NATIVE_UNITS,
    PARAMETER_UNITS,
    SHOWN_PARAMETERS,
)
from sharpseek.science.plotting import colour_bar_rgb, magnetogram_rgb, model_panel_rgb
from sharpseek.search.index import SearchFilter
from sharpseek.ui import summary, time_text
from sharpseek.ui.app import common
from sharpseek.ui.charts import range_histogram_png
from sharpseek.ui.workbench import FILTER_FIELDS

COLUMNS = 4


def _int_list(text: str, what: str) -> list[int] | None:
    items = [t for t in text.replace(",", " ").split() if t]
    try:
        return [int(t) for t in items] or None
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a list of whole numbers") from None


def _filters(wb, values: pd.DataFrame) -> SearchFilter:
    """Draw the filter widgets; return the filter they say (checked by the library: a bad
    value raises ValueError naming it)."""
    state = common.view()
    ranges: dict[str, tuple[float, float]] = {}
    st.session_state.setdefault("filter_fields", list(state.filters.ranges) or [])
    fields = [c for c in FILTER_FIELDS if c in values.columns]
    native = [f for f in fields if f in NATIVE_UNITS or f == "flux_mx"]
    chosen = st.multiselect(
        "Filter on",
        fields,
        key="filter_fields",
        help="native, a real frame on its own CEA grid (quote these): "
        + ", ".join(native)
        + "; model space, the squashed 128x128 image: the others",
    )
    for field in chosen:
        column = pd.to_numeric(values[field], errors="coerce").astype(float)
        finite = column[np.isfinite(column)]
        if not len(finite):
            st.caption(f"{field}: no indexed values")
            continue
        lo, hi = float(finite.min()), float(finite.max())
        saved = state.filters.ranges.get(field)
        key = f"range_{field}"
        if key not in st.session_state:
            start = (
                saved[0] if saved and saved[0] is not None else lo,
                saved[1] if saved and saved[1] is not None else hi,
            )
            st.session_state[key] = (max(lo, min(hi, start[0])), max(lo, min(hi, start[1])))
        low, high = st.session_state[key]
        unit = PARAMETER_UNITS.get(field, NATIVE_UNITS.get(field, ""))
        st.image(
            range_histogram_png(column.to_numpy(), low, high, label=f"{field} {unit}".strip()),
            width="stretch",
        )
        step = (hi - lo) / 200 if hi > lo else None  # 0.5 % of the indexed span per key press
        low, high = st.slider(field, lo, hi, key=key, format="%.4g", step=step)
        ranges[field] = (low, high)
    c1, c2 = st.columns(2)
    hemi = c1.radio(
        "Hemisphere",
        ["any", "north", "south"],
        horizontal=True,
        key="hemi",
        index=["any", "north", "south"].index(state.filters.hemisphere or "any"),
    )
    mu = None
    if c2.checkbox("Limit mu (disk position)", key="use_mu", value=state.filters.mu is not None):
        saved_mu = state.filters.mu or (0.0, 1.0)
        mu = st.slider(
            "mu = cos(heliocentric angle)",
            0.0,
            1.0,
            (saved_mu[0] or 0.0, saved_mu[1] or 1.0),
            key="mu",
        )
    t1, t2 = st.columns(2)
    time = state.filters.time or (None, None)
    start = t1.text_input("T_REC from (TAI, ISO)", value=time_text(time[0]), key="time_from")
    end = t2.text_input("T_REC to (TAI, ISO)", value=time_text(time[1]), key="time_to")
    h1, h2 = st.columns(2)
    harps = h1.text_input(
        "HARP numbers", key="harps", value=" ".join(map(str, state.filters.harpnums or []))
    )
    noaa = h2.text_input(
        "NOAA numbers", key="noaa", value=" ".join(map(str, state.filters.noaa or []))
    )
    history, outcome, quiet = _flare_filters(wb, state.filters)
    return SearchFilter(
        ranges=ranges,
        time=(start or None, end or None) if (start or end) else None,
        hemisphere=None if hemi == "any" else hemi,
        mu=mu,
        harpnums=_int_list(harps, "HARP numbers"),
        noaa=_int_list(noaa, "NOAA numbers"),
        history=history,
        outcome=outcome,
        quiet=quiet,
    )


def _flare_filters(wb, saved: SearchFilter):
    """Widgets of the flare filters (real frames with a flare catalogue loaded; unknown
    windows never match). Outcomes happened after the observation: labels, not features."""
    cfg = wb.settings.flares
    st.caption(
        "Flares (GOES, event time = start; `sharpseek flares load`): outcomes describe what "
        "happened after the observation, never a feature of it"
    )
    f1, f2, f3 = st.columns(3)
    history = f1.text_input(
        "Flare before (class, e.g. M+)",
        value=saved.history[0] if saved.history else "",
        key="flare_history",
    )
    history_h = f1.selectbox("within (h before)", cfg.history_hours, key="flare_history_h")
    outcome = f2.text_input(
        "Flare after (class, e.g. M+)",
        value=saved.outcome[0] if saved.outcome else "",
        key="flare_outcome",
    )
    outcome_h = f2.selectbox("within (h after)", cfg.outcome_hours, key="flare_outcome_h")
    quiet_choices = ["off", *cfg.outcome_hours]
    quiet = f3.selectbox(
        f"Quiet after (no flare >= {cfg.quiet_class})",
        quiet_choices,
        index=quiet_choices.index(saved.quiet[0]) if saved.quiet else 0,
        key="flare_quiet",
    )
    return (
        (history, history_h) if history.strip() else None,
        (outcome, outcome_h) if outcome.strip() else None,
        (quiet, cfg.quiet_class) if quiet != "off" else None,
    )


def show(wb) -> None:
    """The Search page: the current image (or the real patch) as the query, the filters and
    the search button beside it, then the results: flare outlook, thumbnails, parameter
    table and a match compared with the query."""
    st.header("Search")
    common.show_messages()
    state = common.view()
    source = _query_source()
    rendered = _query_render(wb, source)
    if rendered is None:
        return
    values, error = common.guarded(wb.indexed_values)
    if error:
        st.error(f"The index cannot be read: {error}")
        return
    filters, limit, one, go = _search_form(wb, state, rendered, values)
    if go and filters is not None:
        before = (state.filters, state.limit, state.per_region)
        state.filters, state.limit, state.per_region = filters, int(limit), 1
        error = common.run_search(wb, rendered, real=source == "real", group=one)
        if error:
            state.filters, state.limit, state.per_region = before
            st.error(error)
        elif st.session_state.get("outlook_error"):
            st.warning(f"No flare outlook: {st.session_state['outlook_error']}")
    matches = st.session_state.get("matches")
    if matches is None:
        return
    look = st.session_state.get("outlook")
    if look is not None:
        st.markdown(f"**Flare outlook of look-alikes:** {look.text()}")
        st.caption(look.caveat + " See docs/outlook.md.")
    st.subheader(f"{len(matches)} result(s)")
    if not matches:
        st.info("No indexed record matches these filters.")
        return
    if source != "real" and wb.settings.retrieval.rerank_candidates:
        st.caption(
            f"A generated query: its {wb.settings.retrieval.rerank_candidates} nearest regions "
            "re-ranked by embedding and picture distance together (the "
            f"{wb.settings.retrieval.rerank_picture} picture); the distance shown is the "
            "embedding's (docs/search.md, 'Picture re-ranking')."
        )
    _thumbnails(matches)
    _parameter_table(matches)
    _compare(matches)


def _query_source() -> str:
    """What the search looks for: "real" (the real patch itself) or "generated" (the GAN's
    image with the shifts); the choice is offered only for a real patch with a latent."""
    if st.session_state.get("base_image") is not None and common.has_latent():
        choice = st.radio(
            "Query",
            ["the real patch", "its GAN inversion, with the shifts"],
            horizontal=True,
            key="query_source",
        )
        return "real" if choice == "the real patch" else "generated"
    return "generated"


def _query_render(wb, source: str):
    """The query image drawn from ``source`` ("real" or "generated"), or None after saying
    why there is none (an error, or no active region picked yet)."""
    if source == "real":
        rendered, error = common.guarded(common.real_render)
    else:
        rendered, error = common.guarded(common.current_render, wb)
    if error:
        st.error(f"Could not draw the query: {error}")
        return None
    if rendered is None:
        st.info("Pick an active region on the Generate page first: it becomes the query.")
    return rendered


def _search_form(
    wb, state, rendered, values: pd.DataFrame
) -> tuple[SearchFilter | None, int, bool, bool]:
    """The query image beside the filters, result count, one-per-region box and Search
    button, their start values from the view ``state``; returns (the filter, or None if a
    widget's value is bad; the result count; one result per region; Search pressed)."""
    left, right = st.columns([1, 2])
    with left:
        st.image(model_panel_rgb(rendered.image), caption="query (the current image)")
    with right:
        try:
            filters = _filters(wb, values)
        except ValueError as err:
            st.error(f"Filter not applied: {err}")
            filters = None
        k1, k2 = st.columns(2)
        st.session_state.setdefault("limit", state.limit)
        limit = k1.number_input("Results", 1, 100, key="limit")
        one = k2.checkbox("One result per region", value=state.per_region == 1, key="one_per")
        go = st.button("Search", key="search", type="primary", disabled=filters is None)
    return filters, limit, one, go


def _thumbnails(matches) -> None:
    """The matches as a grid of thumbnails, COLUMNS wide, each with its HARP, T_REC, NOAA
    numbers, similarity, labelled values and flares around T_REC."""
    st.image(colour_bar_rgb(), caption="the thumbnails' scale: B_r, north up, west right")
    for row in range(0, len(matches), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, (i, m) in zip(cols, list(enumerate(matches))[row : row + COLUMNS], strict=False):
            with col:
                if m.image is not None:
                    st.image(magnetogram_rgb(m.image, zoom=1), width="stretch")
                noaa = ", ".join(map(str, m.noaa_ars)) or "none"
                shown = summary(m.payload)  # native values of a real frame, labelled
                flares = flare_summary(m.payload)  # what happened around T_REC (labels)
                st.markdown(
                    f"**{i + 1}. HARP {m.harpnum}** ({m.series})  \nT_REC {m.t_rec} TAI  \n"
                    f"NOAA {noaa}  \nsimilarity {m.similarity:.3f} (distance {m.distance:.3f})"
                    f"  \n{shown}" + (f"  \nflares: {flares}" if flares else "")
                )


def _parameter_table(matches) -> None:
    """One row per parameter (model space, then native), with its unit, the query's value
    and each match's."""
    query = st.session_state.get("query_params", {})
    rows = (*SHOWN_PARAMETERS, *NATIVE_PARAMETERS)
    table = pd.DataFrame(
        {
            # model-space rows as the paper names them; native rows say so
            "parameter": [p.upper() if p in SHOWN_PARAMETERS else f"{p} (native)" for p in rows],
            "unit": [PARAMETER_UNITS.get(p, NATIVE_UNITS.get(p, "")) for p in rows],
            "query": [query.get(p) for p in rows],
            **{
                f"{i + 1}. HARP {m.harpnum}": [m.parameter(p) for p in rows]
                for i, m in enumerate(matches)
            },
        }
    )
    st.dataframe(table, hide_index=True, key="results_table")


def _compare(matches) -> None:
    """One picked match beside the query: its pictures and values, then query, match and
    match − query on one scale (model space, gauss)."""
    st.subheader("Compare")
    pick = st.selectbox(
        "Match",
        range(len(matches)),
        key="compare",
        format_func=lambda i: f"{i + 1}. {matches[i].record_id}",
    )
    m = matches[pick]
    q_image = st.session_state.get("query_image")
    if m.image is None or q_image is None:
        st.warning("This match's image is not in the store any more.")
        return
    common.frame_pictures(m.image, m.payload, label=f"match {pick + 1}: HARP {m.harpnum}")
    st.caption(summary(m.payload))  # its native values, model values and position, labelled
    a, b, c = st.columns(3)
    a.image(model_panel_rgb(q_image), caption="query")
    b.image(model_panel_rgb(m.image), caption=f"match: {m.record_id}")
    c.image(model_panel_rgb(m.image - q_image), caption="match − query (same scale, ±1000 G)")
