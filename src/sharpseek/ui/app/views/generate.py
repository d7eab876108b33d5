"""Generate: a grid of generated active regions from seeds; pick one, or start from a real SHARP."""

from __future__ import annotations

import numpy as np
import streamlit as st

from sharpseek.science.plotting import (
    colour_bar_rgb,
    magnetogram_rgb,
    model_panel_rgb,
)
from sharpseek.ui import NATIVE_FRAME_KEY, has_native, read_upload, summary
from sharpseek.ui.app import common

GRID_SIZE = 12
COLUMNS = 6


def show(wb) -> None:
    st.header("Generate")
    common.show_messages()
    st.caption(
        "Each picture is a generated active region: B_r on a diverging scale (red +, blue -, "
        "±1000 G), north up. A seed names its latent vector, so a seed is a shareable name."
    )
    if "grid_seeds" not in st.session_state:
        st.session_state["grid_seeds"] = list(range(GRID_SIZE))
    left, right = st.columns([1, 2])
    with left:
        if st.button("New random seeds", key="new_seeds"):
            rng = np.random.default_rng()
            st.session_state["grid_seeds"] = sorted(
                int(s) for s in rng.choice(1_000_000, GRID_SIZE, replace=False)
            )
    with right:
        typed = st.number_input("Seed", min_value=0, step=1, value=0, key="typed_seed")
        if st.button("Work on this seed", key="use_typed_seed"):
            common.set_seed(wb, int(typed))
            st.success(f"Working on seed {int(typed)}: open Shift to move it, Search to query.")

    seeds = st.session_state["grid_seeds"]
    images, error = common.guarded(wb.grid, seeds)
    if error:
        st.error(f"Could not generate: {error}")
        return
    st.image(colour_bar_rgb(), caption="the thumbnails' scale: B_r, north up, west right")
    for row in range(0, len(seeds), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, seed, image in zip(cols, seeds[row : row + COLUMNS], images[row:], strict=False):
            with col:
                st.image(magnetogram_rgb(image, zoom=1), caption=f"seed {seed}", width="stretch")
                if st.button("Work on it", key=f"pick_{seed}"):
                    common.set_seed(wb, seed)
                    st.success(f"Working on seed {seed}.")

    st.subheader("Start from a real SHARP")
    st.caption(
        "Upload a SHARP Br FITS file, a (128, 128) model-space .npy, or a 128 x 128 grayscale "
        "PNG; or pick a record from the index. GAN inversion finds the latent vector whose "
        "generated image is closest to it, so it can be shifted like a generated AR; the real "
        "patch itself stays available as the search query."
    )
    upload = st.file_uploader("Upload FITS / .npy / PNG", key="upload")
    if upload is not None and st.session_state.get("upload_done") != upload.file_id:
        st.session_state["upload_done"] = upload.file_id
        result, error = common.guarded(
            read_upload,
            upload.name,
            upload.getvalue(),
            field_clip_gauss=wb.settings.quality.field_clip_gauss,
        )
        if error:
            st.error(f"Upload refused: {error}")
        else:
            image, meta = result
            native = meta.pop(NATIVE_FRAME_KEY, None)
            common.set_base_image(image, f"upload {upload.name}", meta)
            st.session_state["base_native"] = native
            _invert(wb, upload.name)
            common.keep_upload()
    values, error = common.guarded(wb.indexed_values, ())
    if error:
        st.warning(error)
    elif len(values):
        record = st.selectbox(
            "Indexed record", values["record_id"].tolist(), index=None, key="pick_record"
        )
        if record and st.button("Work on this record", key="use_record"):
            error = common.open_record(wb, record)
            if error:
                st.warning(error)
            else:
                st.success(
                    f"Working on {record} (inverted: open Shift to move it, Search to query)."
                )
    _show_inversion()


def _invert(wb, name: str) -> None:
    """Invert the new real base patch; say what came of it."""
    error = common.invert_base(wb)
    if error:
        st.warning(error)
    else:
        st.success(f"Working on {name} (inverted: open Shift to move it, Search to query).")


def _show_inversion() -> None:
    """The real patch beside its GAN reconstruction, with the reconstruction error."""
    inversion = st.session_state.get("inversion")
    real = st.session_state.get("base_image")
    if not inversion or real is None:
        return
    payload = st.session_state.get("base_payload") or {}
    label = st.session_state.get("base_label") or "real frame"
    common.frame_pictures(real, payload, st.session_state.get("base_native"), label=label)
    if has_native(payload):  # the real frame's own values, before any shift
        st.markdown(f"**{st.session_state.get('base_label')}**: {summary(payload)}")
    a, b, c = st.columns([1, 1, 1])
    a.image(
        model_panel_rgb(real),
        caption=f"real, model space (128 x 128): {st.session_state.get('base_label')}",
    )
    b.image(model_panel_rgb(inversion["reconstruction"]), caption="GAN inversion G(z_hat)")
    c.metric("Reconstruction rms error", f"{inversion['rms_gauss']:.0f} G")
    c.caption(
        f"Root-mean-square of real − reconstruction over the patch: "
        f"{inversion['relative_error']:.0%} of the patch's own rms field. Large errors "
        "(typical toward the limb) mean the shifted images are far from this real region."
    )
    if inversion.get("warning"):
        st.warning(inversion["warning"])
