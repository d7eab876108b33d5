"""End to end in a real browser: `sharpseek ui` serves the app, Debian's headless chromium
(driven by Playwright through executable_path) generates, moves a slider, searches with a
filter and checks the results. Explicit waits throughout; no sleeps.

With SHARPSEEK_UI_SCREENSHOTS=<folder> it also saves a screenshot of each page there (the
docs' pictures are taken this way on the trained demo models; see docs/ui.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytest_plugins = ["model_fixtures", "ui_fixtures"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(ui_home):
    home = os.environ.get("SHARPSEEK_UI_E2E_HOME") or str(ui_home.home)
    port = _free_port()
    env = {**os.environ, "SHARPSEEK_HOME": home, "OMP_NUM_THREADS": "1"}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpseek.cli", "ui", "--port", str(port), "--address",
         "127.0.0.1", "--no-browser"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "_stcore/health", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                pytest.fail(f"the UI did not start:\n{log.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_generate_shift_search_in_chromium(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots = os.environ.get("SHARPSEEK_UI_SCREENSHOTS")
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1500, "height": 1100},
        )  # fmt: skip
        page = browser.new_page()
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)

        def snap(name):
            if shots:
                page.wait_for_timeout(600)  # let images finish painting
                page.screenshot(path=str(Path(shots) / f"ui-{name}.png"), full_page=True)

        page.goto(server)
        # Generate: the grid, then work on one seed
        expect(page.get_by_text("seed 3", exact=True)).to_be_visible()
        page.get_by_role("button", name="Work on it").nth(3).click()
        expect(page.get_by_text("Working on seed 3.")).to_be_visible()
        snap("generate")

        # Shift: move the TUF slider with the keyboard and wait for the table to change
        page.get_by_text("Shift", exact=True).click()
        expect(page.get_by_text("Drawn in")).to_be_visible()
        slider = page.get_by_role("slider", name="TUF eps").first
        expect(slider).to_have_value("0")
        slider.focus()
        started = time.perf_counter()
        page.keyboard.press("ArrowRight")  # one step: one rerun of the page
        page.wait_for_function("() => window.location.search.includes('shift=tuf%3A0.1')")
        elapsed = time.perf_counter() - started
        print(f"one slider step: page redrawn and URL updated in {elapsed * 1000:.0f} ms")
        for _ in range(9):
            page.keyboard.press("ArrowRight")
        expect(slider).to_have_value("1")
        page.wait_for_function("() => window.location.search.includes('shift=tuf%3A1&')")
        snap("shift")

        # Search with a TUF filter; every result's TUF must lie in the range
        page.get_by_text("Search", exact=True).first.click()
        page.get_by_role("combobox").first.click()
        page.get_by_role("option", name="tuf", exact=True).click()
        page.keyboard.press("Escape")
        range_slider = page.get_by_role("slider").first
        expect(range_slider).to_be_visible()
        range_slider.focus()
        for _ in range(15):
            page.keyboard.press("ArrowRight")
        idle = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        page.wait_for_function(idle)  # the reruns of the slider steps are over
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.get_by_text("result(s)")).to_be_visible(timeout=60_000)
        low = float(page.get_by_role("slider").first.input_value())
        header = page.get_by_text("result(s)").inner_text()
        count = int(header.split()[0])
        assert count >= 1
        expect(page.get_by_text("similarity").first).to_be_visible()
        assert "f.tuf=" in page.url
        snap("search")

        # The shareable link on Export names the filter and the versions
        page.get_by_text("Export", exact=True).click()
        code = page.locator("code").filter(has_text="seed=3")
        expect(code).to_be_visible()
        link = code.inner_text()
        assert "gan=" in link and "dirs=" in link and "index=" in link and "f.tuf=" in link
        snap("export")
        page.get_by_text("Status", exact=True).click()
        expect(page.get_by_text("SHARPs indexed")).to_be_visible()
        snap("status")
        browser.close()
    assert low > 0
