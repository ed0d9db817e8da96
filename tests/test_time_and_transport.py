"""Heat (stability, order in time) and convection-diffusion (order in space, monotonicity)."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pdegen.errors import RecipeError
from pdegen.families import ConvectionDiffusion, Heat
from pdegen.families.convection import ConvectionProblem
from pdegen.families.heat import HeatProblem
from pdegen.recipe.schema import recipe_from_dict
from tests.helpers import small_recipe_dict

PI = math.pi


def direct_solve(A, b, x0=None):
    class Result:
        pass

    r = Result()
    r.x = spla.spsolve(A.tocsc(), b)
    return r


@pytest.mark.parametrize("scheme", ["backward-euler", "crank-nicolson"])
def test_heat_energy_never_grows_without_a_source(scheme):
    family = Heat(15, 2, HeatProblem(scheme=scheme, dt=0.05, steps=30))  # large steps
    sample = family.sample(3, 0)
    u, _ = family.trajectory(sample.inputs["coefficient"], sample.inputs["initial"], direct_solve)
    energy = np.linalg.norm(u.reshape(u.shape[0], -1), axis=1)
    assert energy[0] > 0
    assert np.all(np.diff(energy) <= 1e-12 * energy[0])
    assert energy[-1] < 0.5 * energy[0]


def time_error(scheme: str, steps: int) -> float:
    """Error at T = 0.1 against the exact semi-discrete solution exp(-lambda_h t) u0."""
    n, T = 15, 0.1
    family = Heat(n, 2, HeatProblem(scheme=scheme, dt=T / steps, steps=steps))
    X, Y = np.meshgrid(family.x, family.x, indexing="ij")
    u0 = np.sin(PI * X) * np.sin(PI * Y)
    h = family.h
    lam = 2 * (4 / h**2) * math.sin(PI * h / 2) ** 2  # discrete eigenvalue of -Laplacian
    u, _ = family.trajectory(np.ones_like(u0), u0, direct_solve)
    return float(np.abs(u[-1] - math.exp(-lam * T) * u0).max())


def test_crank_nicolson_is_second_order_and_backward_euler_first_order_in_time():
    cn = [time_error("crank-nicolson", s) for s in (10, 20, 40)]
    be = [time_error("backward-euler", s) for s in (10, 20, 40)]
    cn_orders = [math.log2(a / b) for a, b in zip(cn, cn[1:], strict=False)]
    be_orders = [math.log2(a / b) for a, b in zip(be, be[1:], strict=False)]
    print("CN errors", cn, "orders", cn_orders, "BE errors", be, "orders", be_orders)
    assert all(1.9 < p < 2.1 for p in cn_orders)
    assert all(0.9 < p < 1.15 for p in be_orders)


def convection_error(n: int, scheme: str) -> float:
    eps = 0.1
    family = ConvectionDiffusion(n, 2, ConvectionProblem(epsilon=eps, scheme=scheme))
    X, Y = np.meshgrid(family.x, family.x, indexing="ij")
    vx, vy = 1.0 + 0.5 * Y, -0.5 + 0.3 * X  # smooth (not divergence-free: the test needs none)
    u = np.sin(PI * X) * np.sin(2 * PI * Y) + X * Y
    ux = PI * np.cos(PI * X) * np.sin(2 * PI * Y) + Y
    uy = 2 * PI * np.sin(PI * X) * np.cos(2 * PI * Y) + X
    lap = -5 * PI**2 * np.sin(PI * X) * np.sin(2 * PI * Y)
    f = -eps * lap + vx * ux + vy * uy
    A, b = family.assemble([vx, vy], f, u)
    x = spla.spsolve(A.tocsc(), b)
    return float(np.abs(x - family.interior(u).ravel()).max())


@pytest.mark.parametrize("scheme,order", [("central", 2.0), ("upwind", 1.0)])
def test_convection_diffusion_manufactured_solution_order(scheme, order):
    errors = [convection_error(n, scheme) for n in (31, 63, 127)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    print(scheme, "errors", errors, "orders", orders)
    assert all(abs(p - order) < 0.2 for p in orders)


def test_upwind_matrix_is_nonsymmetric_m_matrix_at_high_peclet():
    family = ConvectionDiffusion(31, 2, ConvectionProblem(epsilon=1e-4, speed=10.0))
    A, _ = family.system(family.sample(0, 0))
    assert abs(A - A.T).max() > 0
    off = A - sp.diags(A.diagonal())
    assert off.max() <= 0 and A.diagonal().min() > 0
    assert np.all(A.diagonal() >= -off.sum(axis=1).A.ravel() - 1e-9)  # diagonally dominant
    v = [family.sample(0, 0).inputs[f"velocity_{a}"] for a in "xy"]
    div = np.gradient(v[0], family.h, axis=0) + np.gradient(v[1], family.h, axis=1)
    assert np.abs(family.interior(div)).max() < 1e-8 * 10.0 / family.h
    assert math.isclose(np.sqrt(v[0] ** 2 + v[1] ** 2).max(), 10.0)


def test_central_scheme_at_high_peclet_is_rejected():
    data = small_recipe_dict(family="convection-diffusion")
    data["problem"] = {"epsilon": 0.001, "speed": 1.0, "scheme": "central"}
    with pytest.raises(RecipeError, match=r"problem\.scheme: central differences oscillate"):
        recipe_from_dict(data)
