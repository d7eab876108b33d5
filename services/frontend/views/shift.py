"""Shift: move the current AR along physical directions; hold others; solve targets."""

from __future__ import annotations

import common
import pandas as pd
import streamlit as st

from sharpseek.physics import PARAMETER_UNITS
from sharpseek.plotting import magnetogram_rgb, polarity_rgb
from sharpseek.ui.workbench import SHOWN_PARAMETERS

EPS_RANGE = 3.0


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
    z0 = wb.latent(state.seed)
    result, error = common.guarded(wb.solve, z0, st.session_state.get("targets", ""), state.hold)
    if error:
        st.session_state["solve_message"] = ("error", f"Targets not solved: {error}")
        return
    names = list(result.requested)
    for p in wb.shift_parameters():
        if p not in state.hold:
            st.session_state[f"eps_{p}"] = 0.0
    for name, eps in zip(names, result.eps, strict=True):
        st.session_state[f"eps_{name}"] = max(-EPS_RANGE, min(EPS_RANGE, round(float(eps), 2)))
    _on_change(wb)
    lines = [
        f"{n.upper()}: start {result.start[n]:.4g}, requested {result.requested[n]:.4g}, "
        f"reached {result.achieved[n]:.4g}"
        for n in names
    ]
    lines += [
        f"held {h.upper()}: {result.held_start[h]:.4g} -> {result.held_end[h]:.4g}"
        for h in result.held_start
    ]
    lines += result.warnings
    kind = "success" if result.converged else "warning"
    st.session_state["solve_message"] = (kind, "  \n".join(lines))


def show(wb) -> None:
    st.header("Shift")
    common.show_messages()
    state = common.view()
    if state.seed is None and st.session_state.get("base_image") is None:
        st.info("Pick an active region on the Generate page first.")
        return
    params_left = st.container()
    if state.seed is not None and wb.directions is None:
        st.warning(f"No directions for this GAN, so no sliders: {wb.directions_error}")
    elif state.seed is None:
        st.info(
            "This view started from a real patch: it has no latent vector, so it cannot be "
            "shifted (GAN inversion would give one)."
        )
    else:
        with st.sidebar:
            st.subheader("Directions")
            st.caption(
                "eps along each direction; the calibrated value is the median (16-84 %) "
                "of that parameter over typical ARs shifted by eps."
            )
            for p in wb.shift_parameters():
                st.session_state.setdefault(f"eps_{p}", float(state.shifts.get(p, 0.0)))
                st.session_state.setdefault(f"hold_{p}", p in state.hold)
                held = st.checkbox(
                    f"hold {p.upper()}", key=f"hold_{p}", on_change=_on_change, args=(wb,)
                )
                eps = st.slider(
                    f"{p.upper()} eps",
                    -EPS_RANGE,
                    EPS_RANGE,
                    step=0.1,
                    key=f"eps_{p}",
                    disabled=held,
                    on_change=_on_change,
                    args=(wb,),
                )
                cal = wb.calibrated(p, eps)
                if cal is not None:
                    unit = PARAMETER_UNITS.get(p, "")
                    st.caption(f"{p.upper()} ≈ {cal[0]:.3g} ({cal[1]:.3g}–{cal[2]:.3g}) {unit}")
            st.text_input("Targets", key="targets", placeholder="tuf=2x, psep=40, r>p90")
            st.button("Solve targets", key="solve", on_click=_solve, args=(wb,))
            if st.button("Reset shifts", key="reset"):
                common.reset_shifts(wb)
                st.rerun()
    message = st.session_state.pop("solve_message", None)
    if message:
        getattr(st, message[0])(message[1])

    rendered, error = common.guarded(common.current_render, wb)
    if error:
        st.error(f"Could not draw the view: {error}")
        return
    start = None
    if state.seed is not None and state.shifts:
        start_render, _ = common.guarded(wb.render_latent, wb.latent(state.seed))
        start = start_render.params if start_render else None
    with params_left:
        a, b, c = st.columns([1, 1, 1])
        a.image(magnetogram_rgb(rendered.image), caption="B_r (red +, blue −, ±1000 G)")
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
        c.dataframe(pd.DataFrame(rows), hide_index=True, key="params_table")
        c.caption(f"Drawn in {rendered.seconds * 1000:.0f} ms (generate + measure).")
        st.session_state["last_render_ms"] = rendered.seconds * 1000
