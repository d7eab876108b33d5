"""Status: backends in use, model and index versions, records indexed, last ingest."""

from __future__ import annotations

import streamlit as st

from sharpseek.ui.app import common


def show(wb) -> None:
    st.header("Status")
    common.show_messages()
    info, error = common.guarded(wb.status)
    if error:
        st.error(error)
        return
    index = info["index"]
    models = info["models"]
    a, b, c, d = st.columns(4)
    a.metric("SHARPs indexed", index.get("records", "—"))
    b.metric("Model backend", models["backend"].split(" ")[0])  # in full in the table
    c.metric("Index backend", index.get("backend", "unavailable"))
    last = info.get("last_ingest")
    d.metric("Last ingest (UTC)", (last or {}).get("created", "never")[:19].replace("T", " "))
    if "error" in models:
        st.error(f"Models unavailable: {models['error']}")
    if "error" in index:
        st.error(index["error"])
    rows = [
        ("model backend", models["backend"]),
        ("GAN version", models.get("gan", "unavailable")),
        ("encoder version", models.get("encoder", "unavailable")),
        ("directions version", info["directions"] or "none"),
        ("index", f"{index.get('backend', '—')} at {index.get('where', '—')}"),
        ("live index collection", index.get("live") or "none"),
        ("indexed dataset versions", ", ".join(index.get("dataset_versions", [])) or "none"),
        ("last ingest", f"{last['dataset']}/{last['version']}" if last else "none"),
        ("object store", info["store"]),
    ]
    st.table({"part": [r[0] for r in rows], "in use": [str(r[1]) for r in rows]})
    if "last_render_ms" in st.session_state:
        st.caption(f"Last Shift update drawn in {st.session_state['last_render_ms']:.0f} ms.")
