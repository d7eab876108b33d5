"""Library side of the Streamlit UI (:mod:`.app`): view state and shareable URLs
(:mod:`.state`), the view model the pages call (:mod:`.workbench`), exports (:mod:`.exports`),
real frames at their true aspect (:mod:`.frames`).

Nothing here imports Streamlit: the pages are thin shells over these calls, and the logic is
tested without a browser. See docs/ui.md.
"""

from sharpseek.ui.exports import (
    export_stem,
    has_native,
    image_npy,
    results_table,
    share_url,
    summary,
)
from sharpseek.ui.frames import TrueAspect, cea_pixel_mm, true_aspect
from sharpseek.ui.state import (
    PAGES,
    URL_FORMAT,
    ViewState,
    address_to_follow,
    decode_query,
    encode_query,
    link_to_write,
    search_key,
    time_text,
    version_problems,
)
from sharpseek.ui.upload import NATIVE_FRAME_KEY, read_upload
from sharpseek.ui.workbench import (
    Rendered,
    SearchView,
    Workbench,
    render,
)

__all__ = [
    "PAGES",
    "URL_FORMAT",
    "Rendered",
    "TrueAspect",
    "SearchView",
    "ViewState",
    "Workbench",
    "address_to_follow",
    "cea_pixel_mm",
    "decode_query",
    "encode_query",
    "export_stem",
    "has_native",
    "image_npy",
    "link_to_write",
    "NATIVE_FRAME_KEY",
    "read_upload",
    "render",
    "results_table",
    "search_key",
    "share_url",
    "summary",
    "time_text",
    "true_aspect",
    "version_problems",
]
