"""Latent directions: labels, SVM boundaries, conditioning, shifts — on problems whose answer
is known (a parameter that is a linear function of z)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharpseek.science.directions import (
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


# ---------------------------------------------------------------- a generator with known physics
LATENT = 8
AMPLITUDE_AXIS = np.eye(LATENT)[0] * 0.8 + np.eye(LATENT)[2] * 0.6  # TUF grows along this
SEPARATION_AXIS = np.eye(LATENT)[1]  # PSEP grows along this


def toy_generate(z: np.ndarray) -> np.ndarray:
    """A bipole whose field strength follows z . AMPLITUDE_AXIS and whose separation follows
    z . SEPARATION_AXIS: the directions of TUF and PSEP are known."""
    z = np.asarray(z, dtype=np.float64)
    amplitude = 0.2 + 0.7 / (1 + np.exp(-(z @ AMPLITUDE_AXIS)))  # (n,) in b units
    separation = 30 + 12 * np.tanh(z @ SEPARATION_AXIS / 2)  # (n,) model px
    y, x = np.mgrid[:128, :128].astype(np.float64)
    xp = (64 + separation / 2)[:, None, None]
    xn = (64 - separation / 2)[:, None, None]
    blob = lambda cx: np.exp(-((x - cx) ** 2 + (y - 64) ** 2) / (2 * 4.0**2))  # noqa: E731
    return (amplitude[:, None, None] * (blob(xp) - blob(xn))).astype(np.float32)


@pytest.fixture(scope="module")
def toy_directions():
    from sharpseek.science.directions import fit_directions

    return fit_directions(
        toy_generate,
        gan_version="toy-1",
        latent_dim=LATENT,
        n=600,
        parameters=("tuf", "psep", "tpf"),
        batch_size=128,
    )


def test_fitted_directions_point_along_the_known_axes(toy_directions):
    assert toy_directions["tuf"].normal @ AMPLITUDE_AXIS > 0.9
    assert toy_directions["psep"].normal @ SEPARATION_AXIS > 0.9
    assert toy_directions["tuf"].accuracy > 0.9 and toy_directions["psep"].accuracy > 0.9


def test_calibration_curves_rise_along_their_own_direction(toy_directions):
    from sharpseek.science.directions import calibrate

    curves = calibrate(
        toy_generate, toy_directions, along=("tuf", "psep"), n_z=40, eps=np.linspace(-2, 2, 5)
    )
    assert np.all(np.diff(curves["tuf"]["tuf"]["median"]) > 0)
    assert np.all(np.diff(curves["psep"]["psep"]["median"]) > 0)
    # PSEP barely moves along the TUF direction (the axes are orthogonal here)
    psep_along_tuf = curves["tuf"]["psep"]["median"]
    assert max(psep_along_tuf) - min(psep_along_tuf) < 0.2 * (
        max(curves["psep"]["psep"]["median"]) - min(curves["psep"]["psep"]["median"])
    )


def test_direction_set_round_trips_through_the_store(toy_directions, tmp_path):
    from sharpseek.data.local_store import LocalStore
    from sharpseek.science.directions import DirectionSet

    store = LocalStore(tmp_path)
    toy_directions.save(store)
    again = DirectionSet.load(store, "toy-1")
    np.testing.assert_array_equal(again["tuf"].normal, toy_directions["tuf"].normal)
    with pytest.raises(FileNotFoundError, match="no directions for GAN version 'other'"):
        DirectionSet.load(store, "other")


def test_directions_refuse_another_gan_version(toy_directions):
    with pytest.raises(ValueError, match="fitted for GAN version 'toy-1', not 'toy-2'"):
        toy_directions.check_gan("toy-2")


def test_unknown_parameter_names_the_known_ones(toy_directions):
    with pytest.raises(KeyError, match="no direction for 'flux'; known: psep, tpf, tuf"):
        toy_directions["flux"]


@pytest.mark.filterwarnings("ignore:condition .* is redundant")
def test_holding_a_parameter_removes_its_direction(toy_directions):
    n = toy_directions.direction("tuf", hold=["tpf"])
    assert abs(n @ toy_directions["tpf"].normal) < 1e-10
    with pytest.raises(ValueError, match="cannot hold 'tuf' while shifting along it"):
        toy_directions.direction("tuf", hold=["tuf"])


# ---------------------------------------------------------------- targets in physical terms
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tuf=2x", ("tuf", "factor", 2.0)),
        ("PSEP = 40", ("psep", "value", 40.0)),
        ("r>p90", ("r", "above", 90.0)),
        ("tilt<p10", ("tilt", "below", 10.0)),
    ],
)
def test_target_strings(text, expected):
    from sharpseek.science.directions import Target

    t = Target.parse(text)
    assert (t.parameter, t.kind, t.amount) == expected


def test_target_string_that_cannot_be_read_says_how_to_write_one():
    from sharpseek.science.directions import Target

    with pytest.raises(ValueError, match="write e.g. 'tuf=x2'"):
        Target.parse("make it bigger")
    with pytest.raises(ValueError, match="a bound needs a percentile"):
        Target.parse("r>5")


def test_solver_reaches_a_flux_factor_and_a_separation_at_once(toy_directions):
    from sharpseek.science.directions import Target, solve_targets

    z0 = np.zeros(LATENT)
    result = solve_targets(
        toy_generate, toy_directions, z0, [Target.parse("tuf=1.5x"), Target.parse("psep=36")]
    )
    assert result.converged, result
    errors = result.relative_errors()
    assert errors["tuf"] < 0.03 and errors["psep"] < 0.03
    assert result.requested["tuf"] == pytest.approx(1.5 * result.start["tuf"])


def test_solver_reaches_a_percentile_bound(toy_directions):
    from sharpseek.science.directions import Target, solve_targets

    result = solve_targets(
        toy_generate, toy_directions, np.zeros(LATENT), [Target.parse("psep>p90")]
    )
    assert result.converged
    assert result.achieved["psep"] >= toy_directions.distribution["psep"][90]


@pytest.mark.filterwarnings("ignore:stopped at")
def test_solver_warns_when_a_target_is_beyond_what_the_generator_makes(toy_directions):
    from sharpseek.science.directions import Target, solve_targets

    with pytest.warns(UserWarning, match="outside what the generator produced"):
        result = solve_targets(
            toy_generate, toy_directions, np.zeros(LATENT), [Target.parse("psep=80")]
        )
    assert not result.converged


def test_solver_refuses_to_target_and_hold_the_same_parameter(toy_directions):
    from sharpseek.science.directions import Target, solve_targets

    with pytest.raises(ValueError, match=r"cannot both target and hold \['tuf'\]"):
        solve_targets(
            toy_generate, toy_directions, np.zeros(LATENT), [Target.parse("tuf=2x")], hold=["tuf"]
        )


def test_target_times_written_before_the_number():
    from sharpseek.science.directions import Target

    t = Target.parse("tuf=x2")
    assert (t.parameter, t.kind, t.amount) == ("tuf", "factor", 2.0)


def test_apply_shifts_moves_along_the_conditioned_directions(toy_directions):
    from sharpseek.science.directions import apply_shifts

    z = np.zeros((2, LATENT))
    with pytest.warns(UserWarning, match="redundant"):  # tuf and psep axes are orthogonal
        out = apply_shifts(toy_directions, z, {"tuf": 1.5}, hold=["psep"])
        n = toy_directions.direction("tuf", hold=("psep",))
    assert abs(n @ toy_directions["psep"].normal) < 1e-10
    assert out.shape == (2, LATENT)
    np.testing.assert_allclose(out, 1.5 * np.stack([n, n]))


def test_apply_shifts_adds_several_directions_to_one_vector(toy_directions):
    from sharpseek.science.directions import apply_shifts

    z = np.arange(LATENT, dtype=float)
    out = apply_shifts(toy_directions, z, {"tuf": 1.0, "psep": -2.0})
    expected = z + toy_directions["tuf"].normal - 2.0 * toy_directions["psep"].normal
    assert out.shape == (LATENT,)
    np.testing.assert_allclose(out, expected)


def test_apply_shifts_without_shifts_returns_z(toy_directions):
    from sharpseek.science.directions import apply_shifts

    z = np.ones((3, LATENT), np.float32)
    np.testing.assert_array_equal(apply_shifts(toy_directions, z, {}), z)


def test_apply_shifts_refuses_an_unknown_direction_listing_the_known(toy_directions):
    from sharpseek.science.directions import apply_shifts

    with pytest.raises(KeyError, match="no direction for 'flux'; known: psep, tpf, tuf"):
        apply_shifts(toy_directions, np.zeros(LATENT), {"flux": 1.0})
    with pytest.raises(KeyError, match="no direction for 'flux'"):
        apply_shifts(toy_directions, np.zeros(LATENT), {"tuf": 1.0}, hold=["flux"])


@pytest.mark.parametrize("eps", [float("nan"), float("inf"), "big", True])
def test_apply_shifts_refuses_a_non_finite_eps(toy_directions, eps):
    from sharpseek.science.directions import apply_shifts

    with pytest.raises(ValueError, match="shift of 'tuf' must be a finite number"):
        apply_shifts(toy_directions, np.zeros(LATENT), {"tuf": eps})


def test_apply_shifts_refuses_a_parameter_both_held_and_shifted(toy_directions):
    from sharpseek.science.directions import apply_shifts

    with pytest.raises(ValueError, match=r"cannot hold \['psep'\] while shifting along them"):
        apply_shifts(toy_directions, np.zeros(LATENT), {"psep": 1.0}, hold=["psep"])


def test_apply_shifts_refuses_hold_without_shifts(toy_directions):
    from sharpseek.science.directions import apply_shifts

    with pytest.raises(ValueError, match="without any shifts"):
        apply_shifts(toy_directions, np.zeros(LATENT), {}, hold=["psep"])


def test_apply_shifts_refuses_conditions_spanning_the_direction(toy_directions):
    import dataclasses

    from sharpseek.science.directions import DirectionSet, apply_shifts

    twin = DirectionSet.from_json(toy_directions.to_json())
    twin.boundaries["tpf"] = dataclasses.replace(
        twin.boundaries["tpf"], normal=twin.boundaries["tuf"].normal.copy()
    )
    with pytest.raises(ValueError, match="degenerates"):
        apply_shifts(twin, np.zeros(LATENT), {"tuf": 1.0}, hold=["tpf"])


def test_apply_shifts_checks_the_shape_of_z(toy_directions):
    from sharpseek.science.directions import apply_shifts

    with pytest.raises(
        ValueError, match=rf"z must have shape \(n, {LATENT}\) or \({LATENT},\), got \(3,\)"
    ):
        apply_shifts(toy_directions, np.zeros(3), {"tuf": 1.0})


def test_directions_version_changes_with_the_boundaries(toy_directions):
    import dataclasses

    from sharpseek.science.directions import DirectionSet

    other = DirectionSet.from_json(toy_directions.to_json())
    assert other.version == toy_directions.version and other.version.startswith("toy-1-d")
    b = other.boundaries["tuf"]
    other.boundaries["tuf"] = dataclasses.replace(b, normal=-b.normal)
    assert other.version != toy_directions.version


def test_directions_version_changes_with_a_recalibration(toy_directions):
    from sharpseek.science.directions import DirectionSet

    other = DirectionSet.from_json(toy_directions.to_json())
    before = other.version
    other.calibration["tuf"] = {"eps": [0.0, 1.0], "tuf": {"median": [1.0, 2.0], "p16": [0.5, 1.5],
                                                         "p84": [1.5, 2.5]}}  # fmt: skip
    assert other.version != before


def test_directions_version_ignores_the_order_of_the_boundaries(toy_directions):
    from sharpseek.science.directions import DirectionSet

    other = DirectionSet.from_json(toy_directions.to_json())
    other.boundaries = dict(reversed(other.boundaries.items()))
    assert list(other.boundaries) != list(toy_directions.boundaries)
    assert other.version == toy_directions.version


def test_held_changes_measure_what_a_condition_keeps_still(toy_directions):
    """TPF follows TUF's axis in the toy (same amplitude), so holding TPF while shifting
    along TUF stops TUF moving too; PSEP's axis is orthogonal, so holding it changes nothing."""
    from sharpseek.science.directions import held_changes

    report = held_changes(toy_generate, toy_directions, "tuf", ["tpf"], n_z=20)
    plain, cond = report["plain"], report["conditioned"]
    assert plain["tuf"]["spearman"] > 0.7 and plain["tpf"]["spearman"] > 0.7
    assert cond["tpf"]["change"] < 0.3 * plain["tpf"]["change"]
    assert report["cos_before"]["tpf"] > 0.9


def test_solver_warns_when_a_target_is_beyond_the_calibration(toy_directions):
    from sharpseek.science.directions import DirectionSet, Target, solve_targets

    ds = DirectionSet.from_json(toy_directions.to_json())
    ds.calibration = {"psep": {"eps": [-1, 0, 1], "psep": {
        "median": [30, 31, 32], "p16": [29, 30, 31], "p84": [31, 32, 33]}}}  # fmt: skip
    with pytest.warns(UserWarning, match="outside what the calibration reached"):
        solve_targets(toy_generate, ds, np.zeros(LATENT), [Target.parse("psep=36")])
