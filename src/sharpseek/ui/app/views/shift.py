"""Shift: move the current AR along physical directions; hold others; solve targets.

The sliders, the pictures and the table live in one fragment (``st.fragment``): moving a
slider reruns only this view, not the whole page, so an update costs about one generate +
measure (docs/ui.md, "Speed").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from sharpseek.physics.definitions import PARAMETER_UNITS, SHOWN_PARAMETERS
from sharpseek.science.plotting import model_panel_rgb, polarity_rgb
from sharpseek.ui.app import common
from sharpseek.ui.targets import held_report, solve_for_view, target_examples

EPS_STEP = 0.1  # the sliders' step; a solved target is put on it


def _slider_bound(wb, eps: float) -> float:
    """The slider's +-range: the calibrated range (:meth:`Workbench.eps_limit`, the target
    solver's too), widened to hold a shift a link asks beyond it (at most
    sharpseek.science.directions.LATENT_LIMIT, decode_query's rule), so the view shows what the link
    says instead of failing on it."""
    return max(wb.eps_limit(), float(np.ceil(abs(eps))))


def _on_change(wb) -> None:
    state = common.view()
    state.shifts = {
        p: float(st.session_state.get(f"eps_{p}", 0.0))
        for p in wb.shift_parameters()
        if st.session_state.get(f"eps_{p}", 0.0)
    }
    state.hold = [p for p in wb.shift_parameters() if st.session_state.get(f"hold_{p}")]


def _solve(wb) -> None:
    state = common.view()
    z = None if state.seed is not None else st.session_state.get("base_z")
    outcome, error = common.guarded(
        solve_for_view,
        wb,
        st.session_state.get("targets", ""),
        seed=state.seed,
        z=z,
        hold=state.hold,
        step=EPS_STEP,
    )
    if error:
        st.session_state["solve_message"] = ("error", f"Targets not solved: {error}")
        return
    for p in wb.shift_parameters():
        if p not in state.hold:
            st.session_state[f"eps_{p}"] = float(outcome.shifts.get(p, 0.0))
    _on_change(wb)
    kind = "success" if outcome.reached else "warning"
    st.session_state["solve_message"] = (kind, "  \n".join(outcome.lines))


def _reset(wb) -> None:
    common.reset_shifts(wb)


def show(wb) -> None:
    st.header("Shift")
    common.show_messages()
    state = common.view()
    if state.seed is None and st.session_state.get("base_image") is None:
        st.info("Pick an active region on the Generate page first.")
        return
    inversion = st.session_state.get("inversion")
    if inversion:
        st.caption(
            f"{st.session_state.get('base_label')}: shifting its GAN inversion (reconstruction "
            f"rms error {inversion['rms_gauss']:.0f} G against the real patch)."
        )
    if common.has_latent() and wb.directions is None:
        st.warning(f"No directions for this GAN, so no sliders: {wb.directions_error}")
    elif not common.has_latent():
        st.info(
            "This view started from a real patch whose GAN inversion failed: it has no latent "
            "vector, so it cannot be shifted. It is still the search query as it is."
        )
    _shift_view(wb)


def _start_params(wb) -> dict[str, float] | None:
    """Parameters of the unshifted base, computed once per base (not on every update)."""
    state = common.view()
    z = st.session_state.get("base_z")
    key = ("seed", state.seed) if state.seed is not None else ("z", None if z is None else id(z))
    cached = st.session_state.get("start_params")
    if cached is None or cached[0] != key:
        rendered, _ = common.guarded(common.current_render, wb, shifted=False)
        cached = (key, None if rendered is None else rendered.params)
        st.session_state["start_params"] = cached
    return cached[1]


@st.fragment
def _shift_view(wb) -> None:
    """The sliders (when the view can be shifted) beside the pictures and the parameter
    table; the fragment's rerun then writes the view into the address bar."""
    state = common.view()
    shiftable = common.has_latent() and wb.directions is not None
    if shiftable:
        controls, pictures = st.columns([1, 3])
        with controls:
            _controls(wb, state)
    else:
        pictures = st.container()
    with pictures:
        if not _pictures(wb, state):
            return
    common.sync_url()  # the fragment's rerun keeps the address bar equal to the view


def _controls(wb, state) -> None:
    """The controls column: a hold box and an eps slider per direction, then the targets
    box with its Solve button (and its message), and Reset."""
    st.caption(
        "eps along each direction; the calibrated value is the median (16-84 %) "
        "of that parameter over typical ARs shifted by eps. A direction marked weak "
        "does not reliably move its parameter (validation accuracy and calibration "
        "beside it)."
    )
    for p in wb.shift_parameters():
        _direction_control(wb, state, p)
    first, *others = target_examples(wb.directions) or ["tuf=1.2x"]
    st.text_input(
        "Targets",
        key="targets",
        placeholder=f"e.g. {first}" + "".join(f" or {o}" for o in others),
        help="one target, or several separated by commas; the examples are what a "
        "typical AR reaches by the calibration. Solved within the sliders' range, "
        f"eps ±{wb.eps_limit():g}, and put on the sliders.",
    )
    st.button("Solve targets", key="solve", on_click=_solve, args=(wb,))
    message = st.session_state.pop("solve_message", None)
    if message:  # beside the control that asked, in a warning colour unless reached
        getattr(st, message[0])(message[1])
    st.button("Reset shifts", key="reset", on_click=_reset, args=(wb,))


def _direction_control(wb, state, p: str) -> None:
    """Parameter ``p``'s hold box and eps slider (dimensionless, step EPS_STEP), with the
    calibrated value of ``p`` at that eps (median and 16-84 %, in its unit) and the
    direction's strength (a warning when weak)."""
    st.session_state.setdefault(f"eps_{p}", float(state.shifts.get(p, 0.0)))
    st.session_state.setdefault(f"hold_{p}", p in state.hold)
    held = st.checkbox(f"hold {p.upper()}", key=f"hold_{p}", on_change=_on_change, args=(wb,))
    strength = wb.strength(p)
    weak = strength is not None and strength.weak
    bound = _slider_bound(wb, float(st.session_state[f"eps_{p}"]))
    eps = st.slider(
        f"{p.upper()} eps" + (" · weak" if weak else ""),
        -bound,
        bound,
        step=EPS_STEP,
        key=f"eps_{p}",
        disabled=held,
        on_change=_on_change,
        args=(wb,),
    )
    cal = wb.calibrated(p, eps)
    if cal is not None:
        unit = PARAMETER_UNITS.get(p, "")
        st.caption(f"{p.upper()} ≈ {cal[0]:.3g} ({cal[1]:.3g}–{cal[2]:.3g}) {unit}")
    if strength is not None:
        line = f"{p.upper()} direction: {strength.summary()}"
        (st.warning if weak else st.caption)(line)


def _pictures(wb, state) -> bool:
    """The current image (B_r) and its polarity mask side by side, the parameter table
    (now, and at the start when shifted) with warnings for held parameters that moved, and
    the drawing time; False (after an error message) when the view cannot be drawn."""
    rendered, error = common.guarded(common.current_render, wb)
    if error:
        st.error(f"Could not draw the view: {error}")
        return False
    start = _start_params(wb) if common.has_latent() and state.shifts else None
    a, b = st.columns(2)
    a.image(model_panel_rgb(rendered.image), caption="B_r (red +, blue −), north up, west right")
    b.image(
        polarity_rgb(rendered.pos, rendered.neg, rendered.region, centroids=rendered.centroids),
        caption="|B| > 150 G (red +, blue −), R region M (yellow), centroids (cyan)",
    )
    rows = []
    for p in SHOWN_PARAMETERS:
        row = {
            "parameter": p.upper(),
            "unit": PARAMETER_UNITS.get(p, ""),
            "now": rendered.params[p],
        }
        if start is not None:
            row["start"] = start[p]
        rows.append(row)
    # a static table: an interactive data grid costs the browser more on every update
    table = pd.DataFrame(rows).set_index("parameter")
    st.table(table.style.format({c: "{:#.3g}" for c in ("now", "start") if c in table}))
    if start is not None:
        for line in held_report(start, rendered.params, state.hold):
            st.warning(line)
    st.caption(
        f"Drawn in {rendered.seconds * 1000:.0f} ms (generate + measure, {wb.model_backend()})."
    )
    st.session_state["last_render_ms"] = rendered.seconds * 1000
    return True
