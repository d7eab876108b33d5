"""sharpseek's Streamlit app: a thin shell over ``sharpseek.ui`` (run it with `sharpseek ui`).

Each page lives in ``views/`` and only calls the library: the view state, its shareable URL,
the models, directions, index and exports are all in :mod:`sharpseek.ui`.
"""

import streamlit as st

from sharpseek.ui.app import common
from sharpseek.ui.app.views import export, generate, search, shift, status

st.set_page_config(page_title="sharpseek", page_icon=":sunny:", layout="wide")

PAGES = {
    "generate": ("Generate", generate.show),
    "shift": ("Shift", shift.show),
    "search": ("Search", search.show),
    "export": ("Export", export.show),
    "status": ("Status", status.show),
}

wb = common.workbench()
if wb is not None:
    common.init_state(wb)
    view = common.view()
    st.sidebar.title("sharpseek")
    choice = st.sidebar.radio(
        "Page", list(PAGES), format_func=lambda k: PAGES[k][0], key="page_choice"
    )
    view.page = choice
    summary = st.sidebar.empty()  # filled after the page: it may pick a seed or an upload
    common.definitions_panel()
    try:
        PAGES[choice][1](wb)
    finally:
        common.sidebar_summary(wb, summary)
        common.sync_url()
