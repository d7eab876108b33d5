"""Latent directions: labels, SVM boundaries, conditioning, shifts — on problems whose answer
is known (a parameter that is a linear function of z)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharpseek.directions import (
    Boundary,
    condition_direction,
    make_labels,
    project_2d,
    shift,
    train_boundary,
)


def test_median_split_with_ties_broken_by_rank_gives_equal_halves():
    values = np.array([1.0, 2.0, 2.0, 2.0, 2.0, 3.0, np.nan, 4.0])
    used, labels, rule = make_labels(values, "tuf")
    assert used.tolist() == [True] * 6 + [False, True]
    # 7 finite values: the 3 lowest by (value, position) are low, the 4 others high
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert rule.kind == "median" and rule.threshold == 2.0


def test_presence_labels_where_zeros_dominate():
    values = np.array([0.0] * 6 + [1.0, 5.0, 2.0, 7.0])
    used, labels, rule = make_labels(values, "r")
    assert rule.kind == "presence" and rule.class_weight == "balanced"
    assert labels.tolist() == [0] * 6 + [1] * 4


def test_orientation_labels_by_sign_leave_out_nan():
    used, labels, rule = make_labels(np.array([1.0, -1.0, np.nan, 1.0, -1.0]), "orientation")
    assert rule.kind == "sign" and labels.tolist() == [1, 0, 1, 0] and not used[2]


def test_too_few_values_is_an_error():
    with pytest.raises(ValueError, match="only 2 finite values"):
        make_labels(np.array([1.0, np.nan, 2.0]), "psep")


def _linear_problem(n=1200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)
    z = rng.normal(size=(n, d))
    values = z @ w + 0.05 * rng.normal(size=n)
    return z, values, w


def test_boundary_recovers_the_known_direction():
    z, values, w = _linear_problem()
    b = train_boundary(z, values, "tuf", seed=1)
    assert np.dot(b.normal, w) > 0.97
    assert b.accuracy > 0.9
    assert (b.n_train, b.n_validation) == (840, 360)
    assert np.isclose(np.linalg.norm(b.normal), 1.0)


def test_boundary_round_trips_through_a_dict():
    z, values, _ = _linear_problem(n=200)
    b = train_boundary(z, values, "psep")
    again = Boundary.from_dict(b.to_dict())
    np.testing.assert_array_equal(again.normal, b.normal)
    assert again.rule == b.rule and again.accuracy == b.accuracy


def test_boundary_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"z must have shape \(n, d\) with n = len\(values\) = 3"):
        train_boundary(np.zeros((4, 2)), np.zeros(3), "tuf")


@pytest.mark.filterwarnings("ignore:condition .* is redundant")
def test_conditioning_removes_the_condition_and_keeps_the_rest():
    rng = np.random.default_rng(3)
    n1, n2, n3 = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 10)))
    out, report = condition_direction(n1, np.stack([n2, n3]))
    assert abs(out @ n2) < 1e-10 and abs(out @ n3) < 1e-10
    assert np.isclose(np.linalg.norm(out), 1.0) and out @ n1 > 0
    np.testing.assert_allclose(report.cos_before, [n1 @ n2, n1 @ n3])


def test_single_condition_matches_the_papers_formula():
    rng = np.random.default_rng(4)
    n1, n2 = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 8)))
    expected = n1 - (n1 @ n2) * n2
    out, _ = condition_direction(n1, n2)
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected), atol=1e-12)


def test_condition_equal_to_the_direction_is_refused():
    n = np.eye(5)[0]
    with pytest.raises(ValueError, match="degenerates"):
        condition_direction(n, n)


def test_redundant_condition_warns():
    with pytest.warns(UserWarning, match="condition 0 is redundant"):
        condition_direction(np.eye(4)[0], np.eye(4)[1])


@given(st.floats(-5, 5), st.floats(-5, 5))
@settings(max_examples=30, deadline=None)
def test_shift_moves_along_each_direction_by_eps(e1, e2):
    z = np.zeros((3, 4))
    out = shift(z, np.eye(4)[:2], [e1, e2])
    np.testing.assert_allclose(out[:, :2], [[e1, e2]] * 3)
    np.testing.assert_allclose(out[:, 2:], 0)


def test_shift_checks_eps_per_direction():
    with pytest.raises(ValueError, match="one value per direction"):
        shift(np.zeros((1, 4)), np.eye(4)[:2], [1.0])


def test_2d_view_puts_the_boundary_on_a_line():
    z, values, _ = _linear_problem(n=400, d=6)
    b = train_boundary(z, values, "grad")
    view = project_2d(z, b.normal)
    side = np.sign(b.normal @ z.T + b.intercept)
    line = -(b.normal[0] * view[:, 0] + b.intercept) / b.normal[1]
    above = np.sign(view[:, 1] - line) * np.sign(b.normal[1])
    assert np.all(above == side)
