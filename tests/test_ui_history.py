"""Browser history and links of the UI: when the app writes the address bar (one history
entry per view), when it follows it (Back and Forward), and a link that lands with its
results (a search link searches again). The browser side is in tests/e2e."""

from __future__ import annotations

import pytest
import torch

from sharpseek.cli.ui import app_path
from sharpseek.search.index import SearchFilter
from sharpseek.ui import (
    ViewState,
    Workbench,
    address_to_follow,
    encode_query,
    link_to_write,
    search_key,
)

pytest_plugins = ["model_fixtures", "ui_fixtures"]
torch.set_num_threads(1)
APP = str(app_path())  # the Streamlit script shipped in the package


def test_the_address_is_written_only_when_the_view_changed():
    seed3 = encode_query(ViewState(seed=3))
    assert link_to_write(seed3, seed3) is None  # the same view: no new history entry
    assert link_to_write({k: [v] for k, v in seed3.items()}, seed3) is None  # as lists
    assert link_to_write(seed3, encode_query(ViewState(seed=4))) == encode_query(ViewState(seed=4))
    # a bare address already names a fresh view: no entry that Back returns to unchanged
    assert link_to_write({}, encode_query(ViewState())) is None
    assert link_to_write({}, encode_query(ViewState(page="search"))) is not None


def test_the_address_is_followed_only_on_back_or_forward():
    written = encode_query(ViewState(seed=3, shifts={"tuf": 1.0}))
    earlier = encode_query(ViewState(seed=3))
    assert address_to_follow(earlier, written, history_navigation=True)
    # a click that reached the server before the last written address reached the browser
    assert not address_to_follow(earlier, written, history_navigation=False)
    assert not address_to_follow(written, written, history_navigation=True)
    assert not address_to_follow(earlier, None, history_navigation=True)  # first run


def test_search_key_names_what_decides_the_results():
    a = ViewState(page="search", seed=3, shifts={"tuf": 1.0}, index="one")
    b = ViewState(page="export", seed=3, shifts={"tuf": 1.0}, index="other", gan="g")
    assert search_key(a) == search_key(b)
    assert search_key(a) != search_key(ViewState(page="search", seed=3))
    filtered = ViewState(seed=3, shifts={"tuf": 1.0}, filters=SearchFilter(hemisphere="north"))
    assert search_key(a) != search_key(filtered)


@pytest.fixture
def index_version(ui_home):
    bench = Workbench(ui_home)
    try:
        yield bench.versions()["index"]
    finally:
        bench.close()


def test_a_search_link_lands_with_its_results(ui_home, index_version):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    link = {"v": "1", "page": "search", "seed": "5", "f.tuf": "0..", "k": "4", "per": "1"}
    at.query_params.update({**link, "index": index_version})
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    headings = [h.value for h in at.subheader]
    assert any(h.endswith("result(s)") and not h.startswith("0") for h in headings), headings
    assert len(at.session_state["matches"]) <= 4
    # a generated query's results say they are re-ranked by their picture
    assert any("re-ranked by embedding and picture" in c.value for c in at.caption)
    # the same link without index= names a view before any search: no results
    fresh = AppTest.from_file(APP, default_timeout=120)
    fresh.query_params.update(link)
    fresh.run()
    assert fresh.session_state["matches"] is None


def test_the_sidebar_names_the_seed_picked_in_the_same_run(ui_home):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert "nothing yet" in " ".join(c.value for c in at.sidebar.caption)
    at.button(key="pick_7").click().run()
    assert "seed 7" in " ".join(c.value for c in at.sidebar.caption)
    at.button(key="pick_2").click().run()
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "seed 2" in captions and "seed 7" not in captions
