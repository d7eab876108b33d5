"""The measured hold (issue 17): a shift holding TUF, PSEP or R corrects the latent until the
held parameters measure what they did at the start — the pure Gauss-Newton step against a
linear problem whose answer is known, the whole correction on a differentiable toy
generator whose parameters are not linear in z, and the roads that use it."""

import numpy as np
import pytest
import torch

from sharpseek.config import Settings
from sharpseek.models.inference import GeneratorModel
from sharpseek.physics.parameters import compute_parameters
from sharpseek.science.directions import (
    DirectionMethod,
    DirectionSet,
    apply_shifts,
    fit_directions,
    measured_hold,
    shift_and_hold,
)
from sharpseek.science.directions.hold import gauss_newton_step
from sharpseek.serving.backends import InProcessBackend


# ---------------------------------------------------------------- the pure step
def test_the_step_solves_a_linear_problem_with_the_smallest_change():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 2, 7))  # 5 rows, 2 constraints, 7 latent dims
    r = rng.normal(size=(5, 2))
    step = gauss_newton_step(a, r, damping=1e-12, max_step=1e9)
    np.testing.assert_allclose(np.einsum("nkd,nd->nk", a, step), -r, atol=1e-8)
    # the smallest such step lies in the row space of A
    for row in range(5):
        coef, *_ = np.linalg.lstsq(a[row].T, step[row], rcond=None)
        np.testing.assert_allclose(a[row].T @ coef, step[row], atol=1e-8)


def test_the_step_keeps_off_fixed_directions_drops_nan_constraints_and_is_bounded():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 2, 6))
    r = np.array([[1.0, np.nan], [0.5, -0.5], [np.nan, np.nan]])
    fixed = rng.normal(size=(1, 6))
    step = gauss_newton_step(a, r, fixed=fixed, damping=1e-12, max_step=1e9)
    np.testing.assert_allclose(step @ fixed[0], 0.0, atol=1e-8)
    np.testing.assert_allclose(step[2], 0.0)  # nothing to hold: no step
    # row 0 meets its one finite constraint within the allowed subspace
    q = fixed[0] / np.linalg.norm(fixed[0])
    a0 = a[0, 0] - (a[0, 0] @ q) * q
    assert abs(a0 @ step[0] + 1.0) < 1e-8
    short = gauss_newton_step(a, r * 1e6, max_step=0.5)
    assert np.all(np.linalg.norm(short, axis=1) <= 0.5 + 1e-12)


# ---------------------------------------------------------------- a toy generator
LATENT = 6


class CoupledBipole(torch.nn.Module):
    """A bipole whose field strength, polarity separation and spot width follow z[0], z[1]
    and z[0] + z[2] through exponentials: TUF, PSEP and R are all non-linear in z and share
    z[0], so R moves when TUF does, as in a trained GAN. (Its three parameters are functions
    of three numbers tied by the Gaussian shape: it can hold one while moving another, not
    two; the GAN's three-way holds are measured in docs/directions.md.)"""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))  # a device for GeneratorModel

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        amplitude = 0.8 * torch.exp(0.3 * z[:, 0]) * self.scale
        separation = 12 * torch.exp(0.15 * z[:, 1])
        width = 4.5 * torch.exp(0.12 * (z[:, 0] + z[:, 2]))
        axis = torch.arange(128, dtype=torch.float32)
        y, x = axis[:, None], axis[None, :]

        def blob(cx):
            d2 = (x[None] - cx[:, None, None]) ** 2 + (y[None] - 64) ** 2
            return torch.exp(-d2 / (2 * width[:, None, None] ** 2))

        field = amplitude[:, None, None] * (blob(64 + separation / 2) - blob(64 - separation / 2))
        return field.clamp(-1, 1)[:, None]


@pytest.fixture(scope="module")
def toy():
    model = GeneratorModel(
        generator=CoupledBipole().eval(),
        version="toy-coupled",
        latent_dim=LATENT,
        source="test",
        dataset={},
    )
    directions = fit_directions(
        model.generate,
        gan_version=model.version,
        latent_dim=LATENT,
        n=300,
        parameters=("tuf", "psep", "r"),
        batch_size=200,
        method=DirectionMethod(fit="ridge", step="spread", hold="measured"),
    )
    z = np.random.default_rng(7).normal(size=(30, LATENT))
    return model, directions, z


def _iqr(directions, name):
    table = directions.distribution[name]
    return table[75] - table[25]


def _measured(model, z):
    return compute_parameters(model.generate(z.astype(np.float32)))


def test_a_measured_hold_keeps_the_held_and_moves_the_shifted_as_alone(toy):
    model, directions, z = toy
    before = _measured(model, z)
    alone = _measured(model, apply_shifts(directions, z, {"tuf": 1.5}))
    linear = _measured(model, apply_shifts(directions, z, {"tuf": 1.5}, hold=["r"]))
    z_held = shift_and_hold(model, directions, z, {"tuf": 1.5}, hold=["r"])
    held = _measured(model, z_held)
    for name in ("r",):
        moved = np.abs(held[name] - before[name]) / _iqr(directions, name)
        assert np.median(moved) < 0.02, name
        linear_moved = np.abs(linear[name] - before[name]) / _iqr(directions, name)
        assert np.median(moved) < np.median(linear_moved), name
    # eps means what it means alone: TUF reaches the plain shift's value
    np.testing.assert_allclose(held["tuf"], alone["tuf"], rtol=0.03)
    assert np.all(held["tuf"] > before["tuf"])


def test_measured_hold_reports_what_is_left_and_keeps_its_best_iterate(toy):
    model, directions, z = toy
    shifted = apply_shifts(directions, z, {"psep": 1.5})
    result = measured_hold(model, directions, z, shifted, keep=["psep"], hold=["tuf"])
    assert result.z.shape == z.shape and result.residual.shape == (len(z),)
    assert np.median(result.residual) < 0.02 and 1 <= result.iterations <= 8
    none = measured_hold(model, directions, z, shifted, keep=["psep"], hold=["r"], iterations=0)
    np.testing.assert_array_equal(none.z, shifted)  # no iteration: the plain shift
    with pytest.raises(ValueError, match="measured hold keeps tuf, psep, r; not \\['alpha'\\]"):
        measured_hold(model, directions, z, shifted, keep=[], hold=["alpha"])


def test_a_linear_set_and_a_hold_without_surrogates_take_the_linear_rule(toy):
    model, directions, z = toy
    linear = DirectionSet.from_json(directions.to_json())
    object.__setattr__(linear, "method", DirectionMethod(fit="ridge", step="spread"))
    expected = apply_shifts(linear, z, {"tuf": 1.0}, hold=["r"])
    np.testing.assert_array_equal(shift_and_hold(model, linear, z, {"tuf": 1.0}, ["r"]), expected)
    plain = apply_shifts(directions, z, {"tuf": 1.0})
    np.testing.assert_array_equal(shift_and_hold(model, directions, z, {"tuf": 1.0}), plain)


@pytest.mark.parametrize(
    ("shifts", "hold", "error", "match"),
    [
        ({"tuf": 1.0}, ["tuf"], ValueError, "cannot hold"),
        ({"tuf": 1.0}, ["nope"], KeyError, "no direction for 'nope'"),
        ({}, ["r"], ValueError, "without any shifts"),
        ({"tuf": float("nan")}, ["r"], ValueError, "finite number"),
    ],
)
def test_a_measured_hold_refuses_what_the_linear_rule_refuses(toy, shifts, hold, error, match):
    model, directions, z = toy
    with pytest.raises(error, match=match):
        shift_and_hold(model, directions, z, shifts, hold)


def test_the_hold_method_is_stored_and_a_linear_set_keeps_its_version(toy):
    _, directions, _ = toy
    assert directions.method.hold == "measured"
    assert "held by measurement" in directions.method.describe()
    loaded = DirectionSet.from_json(directions.to_json())
    assert loaded.method == directions.method and loaded.version == directions.version
    linear = DirectionSet.from_json(directions.to_json())
    object.__setattr__(linear, "method", DirectionMethod(fit="ridge", step="spread"))
    assert '"hold"' not in linear.to_json()  # stored as before the field existed
    assert linear.version != directions.version
    with pytest.raises(ValueError, match="direction hold 'exact' unknown"):
        DirectionMethod(hold="exact")


def test_the_backend_holds_by_measurement_where_the_generator_is(toy, tmp_path):
    model, directions, z = toy
    backend = InProcessBackend(
        Settings(home=tmp_path, preset="tiny"), generator=model, directions=directions
    )
    answer = backend.generate(z.astype(np.float32), shifts={"r": 1.5}, hold=["tuf"])
    before = _measured(model, z)
    for name in ("tuf",):
        moved = np.abs(answer.parameters[name] - before[name]) / _iqr(directions, name)
        assert np.median(moved) < 0.05, name
    assert np.median(answer.parameters["r"] / before["r"]) > 1.2


def test_the_backends_held_shift_is_its_generate_with_shifts_and_hold(toy, tmp_path):
    """The ``shift`` callable the CLI's target solver and direction figures take: one eps per
    named parameter (a bare number for one), the set's hold method applied by the backend."""
    model, directions, z = toy
    backend = InProcessBackend(
        Settings(home=tmp_path, preset="tiny"), generator=model, directions=directions
    )
    z0 = z[5].astype(np.float32)
    one = backend.held_shift(z0, ["r"], ["tuf"])
    answer = backend.generate(z0[None], shifts={"r": 1.5}, hold=["tuf"], parameters=False)
    np.testing.assert_allclose(one(1.5), answer.z[0])
    np.testing.assert_allclose(one(np.array([1.5])), answer.z[0])
    two = backend.held_shift(z0, ["r", "psep"], ["tuf"])
    both = backend.generate(z0[None], shifts={"r": 1.0, "psep": -0.5}, hold=["tuf"]).z[0]
    np.testing.assert_allclose(two(np.array([1.0, -0.5])), both)
    assert not np.allclose(two(np.array([1.0, -0.5])), one(1.0))
    with pytest.raises(ValueError):  # an eps per parameter, no more
        two(np.array([1.0, -0.5, 2.0]))


def test_a_target_with_a_measured_hold_solves_the_plain_shift_then_holds(toy):
    from sharpseek.science.directions import Target, solve_targets

    model, directions, z = toy
    z0 = z[3]

    def held_shift(eps):
        return shift_and_hold(model, directions, z0, {"tuf": float(eps[0])}, ["r"])

    result = solve_targets(
        model.generate, directions, z0, [Target.parse("tuf=x1.3")], hold=["r"], shift=held_shift
    )
    start = _measured(model, z0[None])
    assert result.converged
    assert abs(result.achieved["tuf"] / start["tuf"][0] - 1.3) < 0.05
    assert abs(result.held_end["r"] - result.held_start["r"]) < 0.05 * _iqr(directions, "r")
    np.testing.assert_allclose(result.z, held_shift(result.eps))


def test_a_measured_hold_works_inside_a_servers_inference_mode(toy):
    model, directions, z = toy
    expected = shift_and_hold(model, directions, z[:4], {"tuf": 1.0}, ["r"])
    with torch.inference_mode():
        inside = shift_and_hold(model, directions, z[:4], {"tuf": 1.0}, ["r"])
    np.testing.assert_allclose(inside, expected)
