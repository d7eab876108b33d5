"""Session state shared by the pages: the workbench, the view, the current image."""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from sharpseek.config import Settings
from sharpseek.physics.definitions import parameter_definitions
from sharpseek.science.plotting import magnetogram_panel_rgb, model_panel_rgb
from sharpseek.ui import (
    ViewState,
    Workbench,
    address_to_follow,
    decode_query,
    encode_query,
    link_to_write,
    render,
    search_key,
    true_aspect,
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
    """At the start of every run: on the first, the view the link names (checked); on a
    Back or Forward press, the view of the history entry the browser moved to (with its
    results: a search re-runs, or comes back from the session's last results)."""
    address = st.query_params.to_dict()
    if "view" not in st.session_state:
        st.session_state["view"] = ViewState()
        open_view(wb, address)
        return
    ctx = get_script_run_ctx()
    navigated = ctx is not None and ctx.is_history_navigation
    written = st.session_state.get("url_written")
    if address_to_follow(address, written, history_navigation=navigated):
        open_view(wb, address)


def open_view(wb: Workbench, address: dict) -> None:
    """Make the session's view the one ``address`` (query parameters) names: its base AR
    (loaded again only when it changed), shifts, held quantities, filters, page and results.
    A parameter that cannot be read is a message, and the view opens fresh."""
    st.session_state["messages"] = []
    try:
        state = decode_query(address)
    except ValueError as err:
        st.session_state["messages"].append(f"This link could not be read: {err}")
        state = ViewState()
    st.session_state["messages"].extend(version_problems(state, wb.versions()))
    current = view()
    if (state.seed, state.record) != (current.seed, current.record) or not has_base():
        if state.seed is not None:
            set_seed(wb, state.seed)
        elif state.record:
            error = open_record(wb, state.record)
            if error:
                st.session_state["messages"].append(error)
                state.record = None
        elif not restore_upload():
            clear_base()
    for name in wb.shift_parameters():
        st.session_state[f"eps_{name}"] = float(state.shifts.get(name, 0.0))
        st.session_state[f"hold_{name}"] = name in state.hold
    current.page, current.shifts, current.hold = state.page, dict(state.shifts), list(state.hold)
    current.filters, current.limit, current.per_region = (
        state.filters,
        state.limit,
        state.per_region,
    )
    st.session_state["page_choice"] = state.page
    for key in FILTER_WIDGETS:  # the Search page's widgets start again from the view's filters
        st.session_state.pop(key, None)
    for key in [k for k in st.session_state if str(k).startswith("range_")]:
        del st.session_state[key]
    st.session_state.pop("solve_message", None)
    if state.index:  # the view had results: show them again
        error = run_search(wb)
        if error:
            st.session_state["messages"].append(error)
    else:
        st.session_state["matches"] = None


#: Keys of the Search page's filter widgets (besides one ``range_<field>`` per range).
FILTER_WIDGETS = (
    "filter_fields", "hemi", "use_mu", "mu", "time_from", "time_to", "harps", "noaa",
    "flare_history", "flare_history_h", "flare_outcome", "flare_outcome_h", "flare_quiet",
    "limit", "one_per",
)  # fmt: skip


def run_search(
    wb: Workbench, rendered=None, *, real: bool | None = None, group: bool = True
) -> str | None:
    """Search with the view's query, filters and result count, and keep the results in the
    session (the Search and Export pages show them). The query is ``rendered`` or the view's
    current image: the real patch itself when there is one (``real``; the Search page's
    default), else the generated image with its shifts. A view searched before (same
    :func:`~sharpseek.ui.search_key`) gets its results back without searching again.
    Returns an error message (the results are then cleared), or None."""
    state = view()
    key = search_key(state)
    cached = st.session_state.get("search_cache")
    if rendered is None and cached is not None and cached[0] == key:
        _keep_results(cached[1])
        return None
    if real is None:
        real = st.session_state.get("base_image") is not None
    if rendered is None:
        rendered, error = guarded(real_render if real else current_render, wb)
        if error or rendered is None:
            st.session_state["matches"] = None
            return f"The search could not run again: {error or 'no query image'}"
    result, error = guarded(
        wb.search_view,
        rendered,
        state.filters,
        limit=state.limit,
        group_by_region=group,
        real=real,
        base_payload=st.session_state.get("base_payload"),
    )
    if error:
        st.session_state["matches"] = None
        return f"Search failed: {error}"
    st.session_state["search_cache"] = (key, result)
    _keep_results(result)
    return None


def _keep_results(result) -> None:
    st.session_state["matches"] = result.matches
    st.session_state["query_params"] = result.query_params
    st.session_state["query_image"] = result.query_image
    st.session_state["outlook"] = result.outlook
    st.session_state["outlook_error"] = result.outlook_error


def open_record(wb: Workbench, record: str) -> str | None:
    """Work on an indexed record: its image becomes the base and is inverted. Returns an
    error message, or None when it worked."""
    result, error = guarded(wb.record, record)
    if error:
        return f"record {record}: {error}"
    set_base_image(result[0], f"record {record}", result[1])
    st.session_state["base_native"] = None
    view().record = record
    return invert_base(wb)


def has_base() -> bool:
    return view().seed is not None or st.session_state.get("base_image") is not None


_BASE_KEYS = ("base_image", "base_z", "inversion", "base_label", "base_payload", "base_native")


def keep_upload() -> None:
    """Remember the session's upload (after its inversion): a link cannot name an upload, so
    a Back or Forward to a view without a seed or record returns to it."""
    st.session_state["upload_base"] = {k: st.session_state.get(k) for k in _BASE_KEYS}


def restore_upload() -> bool:
    saved = st.session_state.get("upload_base")
    if not saved:
        return False
    state = view()
    state.seed, state.record = None, None
    st.session_state.update(saved)
    return True


def clear_base() -> None:
    state = view()
    state.seed, state.record = None, None
    for key in _BASE_KEYS:
        st.session_state[key] = None


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
        "relative_error": result.relative_error,
        "reconstruction": result.reconstruction,
        "warning": wb.representation_warning(result),  # None when the GAN can draw it
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
    address = st.query_params.to_dict()
    wanted = link_to_write(address, encode_query(state))
    if wanted is not None:
        st.query_params.from_dict(wanted)  # Streamlit pushes one history entry
    st.session_state["url_written"] = address if wanted is None else wanted


def sidebar_summary(wb: Workbench, where) -> None:
    """What the session works on, written into ``where`` (a sidebar slot the app fills after
    the page ran, so a seed picked or a patch uploaded on this run is already named)."""
    state = view()
    label = st.session_state.get("base_label") or (
        f"seed {state.seed}" if state.seed is not None else "nothing yet"
    )
    with where.container():
        st.caption(f"Working on: **{label}**")
        st.caption(f"GAN {wb.gan_version}")


def definitions_panel() -> None:
    """Every parameter the pages show, with its unit and definition (docs/physics.md)."""
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


def frame_pictures(image: np.ndarray, meta: dict, native=None, *, label: str = "") -> None:
    """A real frame as a physicist reads it: at its true aspect in Mm (its own data for an
    uploaded FITS, else resampled from the stored model image) beside its 128 x 128
    model-space square; nothing at true aspect when ``meta`` does not say the frame's size."""
    frame = true_aspect(image, meta, native)
    if frame is None:
        st.image(model_panel_rgb(image), caption=f"{label}, model space (128 x 128)")
        return
    wide, square = st.columns([2, 1])
    wide.image(
        magnetogram_panel_rgb(
            frame.image_gauss,
            zoom=max(1, round(384 / max(frame.image_gauss.shape))),
            pixel_size=frame.pixel_mm,
            axis_unit="Mm",
            title=f"{label}, CEA frame",
        ),
        caption=frame.caption(),
    )
    square.image(model_panel_rgb(image), caption=f"{label}, model space (128 x 128, squeezed)")


def guarded(action, *args, **kwargs):
    """Run a library call; a failure becomes a message in the page and changes nothing."""
    try:
        return action(*args, **kwargs), None
    except Exception as err:  # noqa: BLE001 - the user sees it; the session keeps its state
        return None, str(err) or type(err).__name__
