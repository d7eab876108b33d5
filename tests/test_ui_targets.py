"""Targets, sliders and holds of the Shift page as one state with one range
(sharpseek.ui.targets), on the small UI home (untrained models, fitted directions)."""

from __future__ import annotations

import pytest
import torch

from sharpseek.cli.ui import app_path
from sharpseek.ui import Workbench
from sharpseek.ui.targets import held_report, solve_for_view, target_examples

pytest_plugins = ["model_fixtures", "ui_fixtures"]
torch.set_num_threads(1)
APP = str(app_path())  # the Streamlit script shipped in the package


@pytest.fixture
def wb(ui_home):
    bench = Workbench(ui_home)
    yield bench
    bench.close()


def test_the_range_is_the_calibrated_one(wb):
    grid = wb.directions.calibration["tuf"]["eps"]
    assert wb.eps_limit() == pytest.approx(max(abs(e) for e in grid))


def test_what_a_target_reports_is_what_its_slider_positions_draw(wb):
    outcome = solve_for_view(wb, "tuf=1.2x", seed=4)
    drawn = wb.render(seed=4, shifts=outcome.shifts)
    reported = float(outcome.lines[0].split("reached ")[1].split()[0].rstrip(":"))
    assert reported == pytest.approx(drawn.params["tuf"], rel=5e-3)  # 3 significant digits
    assert all(abs(e) <= wb.eps_limit() for e in outcome.shifts.values())
    assert all(round(e * 10) == pytest.approx(e * 10) for e in outcome.shifts.values())


def test_a_target_beyond_the_range_says_so_and_stays_in_it(wb):
    outcome = solve_for_view(wb, "tuf=50x", seed=4)
    assert not outcome.reached
    assert "beyond the calibrated range" in outcome.lines[0]
    assert abs(outcome.shifts["tuf"]) <= wb.eps_limit()


def test_placeholder_examples_come_from_the_calibration(wb):
    examples = target_examples(wb.directions)
    assert examples and all("=" in e or ">" in e for e in examples)
    for example in examples:
        solve_for_view(wb, example, seed=4)  # each parses and names a calibrated direction


def test_a_held_quantity_that_moved_says_by_how_much():
    assert held_report({"r": 100.0}, {"r": 130.0}, ["r"]) == [
        "held R could not be kept: 100 -> 130 (+30 %)"
    ]
    assert held_report({"r": 100.0}, {"r": 102.0}, ["r"]) == []
    assert held_report({"r": 100.0}, {"r": float("nan")}, ["r"]) == []


def test_the_shift_page_shows_an_unreachable_target_as_a_warning(ui_home):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.button(key="pick_4").click().run()
    at.sidebar.radio(key="page_choice").set_value("shift").run()
    at.text_input(key="targets").input("tuf=50x").run()
    at.button(key="solve").click().run()
    assert not at.exception and not at.success
    warning = next(w.value for w in at.warning if "TUF: start" in w.value)
    assert "beyond the calibrated range" in warning
    # the message's value is the table's, to the message's three significant digits
    reached = float(warning.split("reached ")[1].split(":")[0])
    assert reached == float(f"{at.table[0].value['now']['TUF']:.3g}")
    assert abs(at.slider(key="eps_tuf").value) <= 3.0
