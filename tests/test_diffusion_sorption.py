"""Diffusion-sorption (pdegen/families/diffusion_sorption.py), PDEBench's 1D set, against
oracles that share no code with it: PDEBench's right-hand side written out from its code,
scipy's BDF integration of that semi-discretisation, and `check --deep` re-running a sample."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.sparse.linalg import spsolve

from pdegen.families import family_from_recipe
from pdegen.recipe.schema import recipe_from_dict
from tests.helpers import assert_deep_check_catches_a_changed_frame, family_recipe


def family(grid=None, **problem):
    data = family_recipe("diffusion-sorption")
    data["grid"] = {**data["grid"], **(grid or {})}
    data["problem"] = {**data["problem"], **problem}
    return family_from_recipe(recipe_from_dict(data))


def pdebench_rhs(y: np.ndarray, n: int) -> np.ndarray:
    """PDEBench's `rc_ode` (src/sim_diff_sorp.py at 9754b4c), written out: D / R(y) times the
    [1, -2, 1] / dx^2 stencil, plus its ghost values on the first and last cells."""
    D, por, rho_s, k_f, n_f = 5e-4, 0.29, 2880.0, 3.5e-4, 0.874
    dx = 1.0 / n
    retardation = 1 + ((1 - por) / por) * rho_s * k_f * n_f * (y + 1e-6) ** (n_f - 1)
    lap = np.zeros(n)
    lap[1:-1] = (y[:-2] - 2 * y[1:-1] + y[2:]) / dx**2
    lap[0] = (-2 * y[0] + y[1]) / dx**2
    lap[-1] = (y[-2] - 2 * y[-1]) / dx**2
    rhs = np.zeros(n)
    rhs[0] = D / retardation[0] / dx**2 * 1.0
    rhs[-1] = D / retardation[-1] / dx**2 * ((y[-2] - y[-1]) / dx * D)
    return D / retardation * lap + rhs


def newton(F, J, x0):
    x = x0.copy()
    for _ in range(50):
        r = F(x)
        if np.linalg.norm(r) < 1e-13:
            break
        x = x - spsolve(J(x).tocsc(), r)
    return SimpleNamespace(x=x, converged=True)


def test_the_semi_discretisation_is_pdebenchs():
    fam = family({"n": 64})
    A, c = fam.operator()
    y = np.random.default_rng(0).uniform(0.0, 1.0, 64)
    np.testing.assert_allclose(fam.rate(A, c, y), pdebench_rhs(y, 64), rtol=1e-12, atol=1e-12)


def test_the_jacobian_is_the_residuals_derivative():
    fam = family({"n": 16})
    A, c = fam.operator()
    u = np.random.default_rng(1).uniform(0.05, 1.0, 16)
    F, J = fam.step_problem(A, c, u, 0.5)
    v = u + 0.01
    dv = np.random.default_rng(2).standard_normal(16) * 1e-6
    np.testing.assert_allclose(F(v + dv) - F(v), J(v) @ dv, rtol=1e-4, atol=1e-14)


@pytest.mark.parametrize("scheme,order", [("backward-euler", 1), ("crank-nicolson", 2)])
def test_the_theta_schemes_converge_to_scipys_bdf_at_their_order(scheme, order):
    """n = 32, t to 20 from the constant 0.1: errors against BDF (rtol 1e-11) halve (BE)
    or quarter (CN) with the step."""
    u0 = np.full(32, 0.1)
    times = np.linspace(0.0, 20.0, 3)
    exact = solve_ivp(lambda t, y: pdebench_rhs(y, 32), (0, 20), u0, method="BDF",
                      t_eval=times, rtol=1e-11, atol=1e-13).y.T  # fmt: skip

    def final(dt):
        fam = family({"n": 32}, scheme=scheme, t_end=20.0, frames=2, dt=dt)
        frames, _ = fam.trajectory(u0, newton)
        return np.abs(np.asarray(frames) - exact).max()

    errors = [final(dt) for dt in (0.4, 0.2, 0.1)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(order - 0.25 < p < order + 0.35 for p in orders), (errors, orders)


def test_samples_are_pdebenchs_constant_starts_and_stay_in_zero_one(tmp_path):
    fam = family({"n": 64})
    starts = [fam.sample(0, i).inputs["initial"] for i in range(200)]
    assert all(np.all(s == s[0]) for s in starts)
    values = np.array([s[0] for s in starts])
    assert values.min() > 0 and values.max() < 0.2 and abs(values.mean() - 0.1) < 0.01
    frames, _ = fam.trajectory(starts[0], newton)
    u = np.asarray(frames)
    assert u.min() > 0 and u.max() < 1 and u[-1, 0] > u[0, 0]  # filled from the left


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_generate_check_deep_reruns_and_finds_a_wrong_frame(tmp_path, dtype):
    data = family_recipe("diffusion-sorption", method="auto", pc="auto")
    data.update(samples=2, output={"shard_size": 2, "dtype": dtype})
    assert_deep_check_catches_a_changed_frame(data, tmp_path / "d", "solution", 1, 2, 1.01)
