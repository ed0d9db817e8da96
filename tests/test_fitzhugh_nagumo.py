"""FitzHugh-Nagumo (pdegen/families/fitzhugh_nagumo.py), PDEBench's 2D diffusion-reaction, against
oracles that share no code with it: the cell-centred Neumann Laplacian's known eigenpairs, a
spatially uniform state against scipy's ODE solver, the scheme's measured second order, and
`check --deep` re-running a sample with scipy's sparse LU."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from pdegen.families import family_from_recipe
from pdegen.families.fitzhugh_nagumo import neumann_laplacian_1d
from pdegen.recipe.schema import recipe_from_dict
from tests.helpers import assert_deep_check_catches_a_changed_frame, family_recipe


def family(grid=None, **problem):
    data = family_recipe("fitzhugh-nagumo")
    data["grid"] = {**data["grid"], **(grid or {})}
    data["problem"] = {**data["problem"], **problem}
    return family_from_recipe(recipe_from_dict(data))


class Direct:
    """A chain stand-in for the family's trajectory: scipy's dense solve (tests only)."""

    def __init__(self):
        from types import SimpleNamespace

        self.result = SimpleNamespace

    def solve(self, A, b, x0=None):
        from scipy.sparse.linalg import spsolve

        return self.result(x=spsolve(A.tocsc(), b), converged=True)


@pytest.mark.parametrize("n", [5, 8])
def test_the_neumann_laplacian_has_the_cosine_eigenpairs(n):
    """Cell centres x_i = (i + 1/2) h: cos(pi k x_i / L) is an eigenvector with eigenvalue
    -(2 / h^2)(1 - cos(pi k / n)); the constants are its null space; it is symmetric."""
    h = 2.0 / n
    lap = neumann_laplacian_1d(n, h).toarray()
    assert np.array_equal(lap, lap.T)
    i = np.arange(n) + 0.5
    for k in range(n):
        mode = np.cos(math.pi * k * i / n)
        eigenvalue = -(2.0 / h**2) * (1.0 - math.cos(math.pi * k / n))
        np.testing.assert_allclose(lap @ mode, eigenvalue * mode, atol=1e-10)


def test_a_uniform_state_follows_the_fitzhugh_nagumo_ode():
    """No gradients, no flux: both species follow u' = u - u^3 - k - v, v' = u - v, which
    scipy integrates to 1e-12; the scheme's second-order error at dt = 1e-3 is far below 1e-5."""
    fam = family({"n": 4}, t_end=1.0, frames=4, dt=1e-3)
    u0, v0 = 0.8, -0.3
    m = 16
    frames, _ = fam.trajectory(np.concatenate([np.full(m, u0), np.full(m, v0)]), Direct().solve)
    k = fam.problem.k
    ode = solve_ivp(
        lambda t, y: [y[0] - y[0] ** 3 - k - y[1], y[0] - y[1]],
        (0.0, 1.0), [u0, v0], t_eval=fam.times, rtol=1e-12, atol=1e-12,
    )  # fmt: skip
    for j, w in enumerate(frames):
        assert np.abs(w[:m] - ode.y[0, j]).max() < 1e-5 and np.abs(w[m:] - ode.y[1, j]).max() < 1e-5


def test_cnab2_is_second_order_in_time():
    fam = family({"n": 8}, t_end=0.4, frames=2, dt=0.02)
    rng = np.random.default_rng(3)
    w0 = 0.5 * rng.standard_normal(128)

    def final(dt):
        f = family({"n": 8}, t_end=0.4, frames=2, dt=dt)
        frames, _ = f.trajectory(w0, Direct().solve)
        return frames[-1]

    reference = final(0.02 / 64)
    errors = [np.abs(final(dt) - reference).max() for dt in (0.02, 0.01, 0.005)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(1.8 < p < 2.3 for p in orders), (errors, orders)
    assert fam.time_stepping.description.startswith("CNAB2")


def test_samples_are_pdebenchs_normal_starts_on_cell_centres():
    fam = family({"n": 64}, frames=1)
    assert fam.coordinates["x"][0] == -1 + 1 / 64 and fam.coordinates["x"][-1] == 1 - 1 / 64
    draws = np.array([fam.sample(0, i).inputs["initial_u"] for i in range(20)])
    assert abs(draws.mean()) < 0.01 and abs(draws.std() - 1.0) < 0.01


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_generate_check_deep_reruns_the_sample_and_finds_a_wrong_frame(tmp_path, dtype):
    data = family_recipe("fitzhugh-nagumo", method="auto", pc="auto")
    data.update(samples=2, output={"shard_size": 2, "dtype": dtype})
    assert_deep_check_catches_a_changed_frame(data, tmp_path / "d", "v", 0, 2, 1.001)
