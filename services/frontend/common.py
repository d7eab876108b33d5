"""Session state shared by the pages: the workbench, the view, the current image."""

from __future__ import annotations

import numpy as np
import streamlit as st

from sharpseek.config import Settings
from sharpseek.ui import (
    ViewState,
    Workbench,
    decode_query,
    encode_query,
    version_problems,
)


@st.cache_resource(show_spinner="Loading models ...")
def _workbench(settings_json: str) -> Workbench:
    return Workbench(Settings.model_validate_json(settings_json))


def workbench() -> Workbench | None:
    """The deployment's workbench (cached per settings), or None after showing why not."""
    try:
        wb = _workbench(Settings().model_dump_json())
        wb.model_versions()  # ask now: a missing model or a down server is a message here
        return wb
    except Exception as err:  # noqa: BLE001 - whatever it is, the page says it
        st.error(f"sharpseek cannot start: {err}")
        return None


def view() -> ViewState:
    return st.session_state["view"]


def init_state(wb: Workbench) -> None:
    """Once per session: the view from the URL (checked), else a fresh one."""
    if "view" in st.session_state:
        return
    st.session_state["messages"] = []
    try:
        state = decode_query(st.query_params.to_dict())
    except ValueError as err:
        st.session_state["messages"].append(f"This link could not be read: {err}")
        state = ViewState()
    problems = version_problems(state, wb.versions())
    st.session_state["messages"].extend(problems)
    st.session_state["view"] = state
    for name, eps in state.shifts.items():
        st.session_state[f"eps_{name}"] = float(eps)
    for name in state.hold:
        st.session_state[f"hold_{name}"] = True
    if state.record:
        try:
            image, payload = wb.record(state.record)
            set_base_image(image, f"record {state.record}", payload)
            invert_base(wb)
        except Exception as err:  # noqa: BLE001
            st.session_state["messages"].append(f"record {state.record}: {err}")
            state.record = None


def show_messages() -> None:
    for message in st.session_state.get("messages", []):
        st.error(message)


def set_seed(wb: Workbench, seed: int) -> None:
    """Work on a generated AR: its seed becomes the base; shifts start at zero."""
    state = view()
    state.seed = int(seed)
    state.record = None
    st.session_state["base_image"] = None
    st.session_state["base_z"] = None
    st.session_state["inversion"] = None
    st.session_state["base_label"] = f"seed {seed}"
    st.session_state["base_payload"] = {}  # nothing of a real frame worked on before
    st.session_state["base_native"] = None
    reset_shifts(wb)


def set_base_image(image: np.ndarray, label: str, payload: dict | None = None) -> None:
    """Work on a real patch (upload or indexed record); its z comes from :func:`invert_base`."""
    state = view()
    state.seed = None
    state.record = None
    st.session_state["base_image"] = image
    st.session_state["base_z"] = None
    st.session_state["inversion"] = None
    st.session_state["base_label"] = label
    st.session_state["base_payload"] = payload or {}


def invert_base(wb: Workbench) -> str | None:
    """GAN inversion of the real base patch: its z_hat becomes the latent vector the Shift
    page moves. Returns an error message, or None when it worked."""
    image = st.session_state.get("base_image")
    if image is None:
        return None
    with st.spinner("GAN inversion: finding the latent vector of this patch ..."):
        result, error = guarded(wb.invert, image)
    if error:
        return f"GAN inversion failed, so this patch cannot be shifted: {error}"
    st.session_state["base_z"] = result.z
    st.session_state["inversion"] = {
        "rms_gauss": result.rms_gauss,
        "reconstruction": result.reconstruction,
    }
    return None


def reset_shifts(wb: Workbench) -> None:
    state = view()
    state.shifts = {}
    state.hold = []
    for name in wb.shift_parameters():
        st.session_state[f"eps_{name}"] = 0.0
        st.session_state[f"hold_{name}"] = False


def has_latent() -> bool:
    """Whether the current view has a latent vector (a seed, or an inverted real patch)."""
    return view().seed is not None or st.session_state.get("base_z") is not None


def current_render(wb: Workbench, *, shifted: bool = True):
    """The current image rendered: generated from the seed or the inverted patch's z with
    the view's shifts (``shifted=False``: without them), else the real patch; or None."""
    state = view()
    shifts = state.shifts if shifted and wb.directions is not None else {}
    hold = state.hold if shifts else []
    if state.seed is not None:
        return wb.render(seed=state.seed, shifts=shifts, hold=hold)
    z = st.session_state.get("base_z")
    if z is not None:
        return wb.render(z=z, shifts=shifts, hold=hold)
    return real_render()


def real_render():
    """The real base patch (upload or record) measured as it is, or None."""
    image = st.session_state.get("base_image")
    if image is None:
        return None
    from sharpseek.ui import render

    return render(image)


def sync_url() -> None:
    """Keep the address bar equal to the view, so it can be copied at any time."""
    state = st.session_state.get("view")
    if state is None:
        return
    wb = _workbench(Settings().model_dump_json())
    versions = wb.versions()
    state.gan = versions["gan"] if has_latent() else None
    state.directions = versions["directions"] if state.shifts else None
    state.index = versions["index"] if st.session_state.get("matches") is not None else None
    wanted = encode_query(state)
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def sidebar_summary(wb: Workbench) -> None:
    state = view()
    label = st.session_state.get("base_label") or (
        f"seed {state.seed}" if state.seed is not None else "nothing yet"
    )
    st.sidebar.caption(f"Working on: **{label}**")
    if state.shifts:
        st.sidebar.caption(
            "Shifts: " + ", ".join(f"{k.upper()} {v:+.2f}" for k, v in state.shifts.items())
        )
    st.sidebar.caption(f"GAN {wb.gan_version}")


def definitions_panel() -> None:
    """Every parameter the pages show, with its unit and definition (docs/physics.md)."""
    from sharpseek.physics import parameter_definitions

    with st.sidebar.expander("Parameter definitions"):
        rows = [
            f"**{key.upper() if kind == 'model space' else key}** [{unit or '-'}], {kind}: {text}"
            for key, unit, kind, text in parameter_definitions()
        ]
        st.markdown("  \n".join(rows))
        st.caption(
            "P = {B > 150 G}, N = {B < -150 G}. TUF sums |B| over every pixel, TPF and TNF only "
            "over P and N, so TUF exceeds TPF + TNF by the weak field. See docs/physics.md."
        )


def guarded(action, *args, **kwargs):
    """Run a library call; a failure becomes a message in the page and changes nothing."""
    try:
        return action(*args, **kwargs), None
    except Exception as err:  # noqa: BLE001 - the user sees it; the session keeps its state
        return None, str(err) or type(err).__name__
