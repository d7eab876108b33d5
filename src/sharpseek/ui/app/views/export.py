"""Export: results as CSV, images as PNG and .npy, JSOC links, the shareable URL."""

from __future__ import annotations

import streamlit as st

from sharpseek.data.images import png_bytes
from sharpseek.search.results import jsoc_url as record_url
from sharpseek.ui import encode_query, export_stem, image_npy, results_table, share_url
from sharpseek.ui.app import common

PNG_HELP = (
    "sharpseek's magnetogram PNG: 16-bit grey (white positive, black negative, north up) "
    "with its gauss scale; upload it here or give it to `sharpseek search --image`"
)


def show(wb) -> None:
    """The Export page: the shareable link, the current image (and the real frame it
    inverts), then the last search's results and a match's image."""
    st.header("Export")
    common.show_messages()
    rendered, error = common.guarded(common.current_render, wb)
    if error:
        st.error(error)
    common.sync_url()
    _share_link()
    state = common.view()
    name, frame = _export_names(state)
    real = st.session_state.get("base_image") if state.seed is None else None
    if rendered is not None:
        st.subheader("Current image")
        _image_downloads(
            rendered.image,
            name,
            description=name,
            labels=("PNG", "Model-space .npy"),
            keys=("dl_png", "dl_npy"),
        )
    if real is not None and common.has_latent():  # the frame itself, beside its inversion
        stem = export_stem(**frame)
        _image_downloads(
            real,
            stem,
            description=stem,
            labels=("Real frame PNG", "Real frame .npy"),
            keys=("dl_real_png", "dl_real_npy"),
        )
    matches = st.session_state.get("matches")
    if not matches:
        st.info("Run a search to export its results.")
        return
    _search_results(wb, matches, name)


def _share_link() -> None:
    """The view's shareable URL (this server's address with the view's query string)."""
    base = st.context.url or "http://localhost:8501/"
    url = share_url(base, encode_query(common.view()))
    st.subheader("Shareable link")
    st.caption(
        "Seed, shifts, held quantities, filters, and the GAN, directions and index versions: "
        "opening it redraws this view, or says which version is gone."
    )
    st.code(url, language=None)


def _export_names(state) -> tuple[str, dict]:
    """The current image's file stem, and the real frame worked on as ``export_stem``'s
    series, harpnum, t_rec and fallback (the first three None for a seed's image)."""
    payload = {} if state.seed is not None else st.session_state.get("base_payload") or {}
    frame = {  # the real frame worked on, if any: as JSOC names it
        "series": payload.get("series"),
        "harpnum": payload.get("harpnum"),
        "t_rec": payload.get("t_rec"),
        "fallback": st.session_state.get("base_label") or "image",
    }
    name = export_stem(  # what the files hold: the seed or frame, with its shifts
        seed=state.seed,
        shifts=state.shifts,
        inverted=common.has_latent(),  # a real frame's GAN reconstruction, not the frame
        **frame,
    )
    return name, frame


def _image_downloads(
    image, stem: str, *, description: str, labels: tuple[str, str], keys: tuple[str, str]
) -> None:
    """Two download buttons side by side for one model-space image ((128, 128) gauss):
    sharpseek's magnetogram PNG and the array as .npy, both named ``stem``."""
    a, b = st.columns(2)
    a.download_button(
        labels[0],
        png_bytes(image, description=description),
        f"{stem}.png",
        "image/png",
        key=keys[0],
        help=PNG_HELP,
    )
    b.download_button(
        labels[1],
        image_npy(image),
        f"{stem}.npy",
        "application/octet-stream",
        key=keys[1],
    )


def _search_results(wb, matches, name: str) -> None:
    """The last search's results: the table as CSV, a JSOC link per match, and one picked
    match's image as PNG and .npy."""
    st.subheader("Search results")
    table = results_table(
        matches, st.session_state.get("query_params"), jsoc_url=wb.settings.jsoc.server_url
    )
    st.download_button(
        "Results CSV",
        table.to_csv(index=False).encode(),
        f"results-of-{name}.csv",  # the results of a search whose query is this image
        "text/csv",
        key="dl_csv",
    )
    lines = []
    for i, m in enumerate(matches, start=1):
        link = record_url(m.series, m.harpnum, m.t_rec, wb.settings.jsoc.server_url)
        where = f"[JSOC record]({link})" if link else "synthetic record: not in JSOC"
        lines.append(f"{i}. `{m.record_id}` — {where}")
    st.markdown("\n".join(lines))
    pick = st.selectbox(
        "Match image",
        range(len(matches)),
        key="export_match",
        format_func=lambda i: matches[i].record_id,
    )
    m = matches[pick]
    if m.image is not None:
        stem = export_stem(series=m.series, harpnum=m.harpnum, t_rec=m.t_rec, fallback=m.record_id)
        _image_downloads(
            m.image,
            stem,
            description=m.record_id,
            labels=("Match PNG", "Match .npy"),
            keys=("dl_match_png", "dl_match_npy"),
        )
