"""The Stokes family: MAC discretisation, saddle-point solvers and recipe checks.

Oracles: an exact divergence-free flow with variable viscosity (its force computed by hand),
Sylvester's law of inertia for the saddle point, and scipy's SuperLU for every method. That
the serial, Dask and MPI engines write the same Stokes dataset: tests/test_engines.py.
"""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse.linalg as spl

from pdegen.errors import RecipeError
from pdegen.families import Sample, Stokes
from pdegen.families.stokes import StokesProblem, ViscositySpec, trapezoid_mean
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.batch import solve_batch
from pdegen.run.generate import generate
from solvers.registry import METHODS, PRECONDITIONERS
from solvers.sequence import ChainSolver
from tests.helpers import small_recipe_dict, stokes_recipe

PI = np.pi


# -- the manufactured solution: stream function psi = sin^2(pi x) sin^2(pi y) ------------------


def exact(x, y):
    u = PI * np.sin(PI * x) ** 2 * np.sin(2 * PI * y)
    v = -PI * np.sin(2 * PI * x) * np.sin(PI * y) ** 2
    p = np.cos(PI * x) * np.cos(PI * y)  # mean zero over the square
    return u, v, p


def viscosity(x, y):
    return 2.0 + np.sin(PI * x + 0.3) * np.cos(2 * PI * y)


def force(x, y):
    """f = -div(nu grad u) + grad p, by hand for the fields above."""
    nu = viscosity(x, y)
    nu_x = PI * np.cos(PI * x + 0.3) * np.cos(2 * PI * y)
    nu_y = -2 * PI * np.sin(PI * x + 0.3) * np.sin(2 * PI * y)
    u_x = PI**2 * np.sin(2 * PI * x) * np.sin(2 * PI * y)
    u_y = 2 * PI**2 * np.sin(PI * x) ** 2 * np.cos(2 * PI * y)
    lap_u = 2 * PI**3 * np.cos(2 * PI * x) * np.sin(2 * PI * y) - 4 * PI**3 * np.sin(
        PI * x
    ) ** 2 * np.sin(2 * PI * y)
    v_x = -2 * PI**2 * np.cos(2 * PI * x) * np.sin(PI * y) ** 2
    v_y = -(PI**2) * np.sin(2 * PI * x) * np.sin(2 * PI * y)
    lap_v = 4 * PI**3 * np.sin(2 * PI * x) * np.sin(PI * y) ** 2 - 2 * PI**3 * np.sin(
        2 * PI * x
    ) * np.cos(2 * PI * y)
    p_x = -PI * np.sin(PI * x) * np.cos(PI * y)
    p_y = -PI * np.cos(PI * x) * np.sin(PI * y)
    fx = -(nu * lap_u + nu_x * u_x + nu_y * u_y) + p_x
    fy = -(nu * lap_v + nu_x * v_x + nu_y * v_y) + p_y
    return fx, fy


def test_the_manufactured_force_is_the_operator_applied_to_the_exact_fields():
    """Guard the oracle: its force against central differences of nu grad u and p."""
    x, y, e = 0.31, 0.67, 1e-4

    def flux(axis, comp, at_x, at_y):
        shift = (e / 2, 0) if axis == 0 else (0, e / 2)
        hi = exact(at_x + shift[0], at_y + shift[1])[comp]
        lo = exact(at_x - shift[0], at_y - shift[1])[comp]
        return viscosity(at_x, at_y) * (hi - lo) / e

    for comp in (0, 1):
        div = (flux(0, comp, x + e / 2, y) - flux(0, comp, x - e / 2, y)) / e
        div += (flux(1, comp, x, y + e / 2) - flux(1, comp, x, y - e / 2)) / e
        dx = (e, 0) if comp == 0 else (0, e)
        grad_p = (exact(x + dx[0], y + dx[1])[2] - exact(x - dx[0], y - dx[1])[2]) / (2 * e)
        assert force(x, y)[comp] == pytest.approx(-div + grad_p, rel=1e-5)


def solve_manufactured(n: int):
    family = Stokes(n, 2, StokesProblem())
    X, Y = np.meshgrid(family.x, family.x, indexing="ij")
    K, b = family.assemble(viscosity(X, Y), *force(X, Y))
    x = spl.spsolve(K.tocsc(), b)  # SuperLU: independent of the PETSc path
    u, v, p = family.mac_fields(x)
    return family, (X, Y), (u, v, p), family.node_fields(u, v, p)


def test_manufactured_solution_converges_at_second_order_in_the_max_norm():
    """Velocity and pressure, as stored on the nodes: measured orders 2.00 and 1.99 from
    n = 63 to 127 (docs/format.md)."""
    errors = []
    for n in (15, 31, 63, 127):
        _, (X, Y), _, fields = solve_manufactured(n)
        u, v, p = exact(X, Y)
        velocity = max(
            np.abs(fields["velocity_x"] - u).max(), np.abs(fields["velocity_y"] - v).max()
        )
        errors.append((velocity, np.abs(fields["pressure"] - p).max()))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders[-2:, 0] > 1.95), orders
    assert np.all(orders[-2:, 1] > 1.9), orders
    assert errors[-1][0] < 2e-3 and errors[-1][1] < 6e-3  # converging to this flow


def exact_3d(x, y, z):
    """u = (dpsi/dy, -dpsi/dx, 0) sin(pi z): divergence-free, zero on every wall."""
    u, v, _ = exact(x, y)
    s = np.sin(PI * z)
    return [u * s, v * s, 0 * x], np.cos(PI * x) * np.cos(PI * y) * np.cos(PI * z)


def viscosity_3d(x, y, z):
    return 2.0 + np.sin(PI * x + 0.3) * np.cos(2 * PI * y) * np.cos(PI * z)


def force_3d(points, e=1e-4):
    """-div(nu grad u) + grad p by nested central differences of the exact fields (error
    about 1e-5, far below the discretisation error tested)."""
    out = []
    for a in range(3):
        total = 0.0
        for b in range(3):
            step = [e if i == b else 0.0 for i in range(3)]

            def at(k, points=points, step=step):
                return [p + k * s for p, s in zip(points, step, strict=True)]

            u = [exact_3d(*at(k))[0][a] for k in (-1, 0, 1)]
            nu_lo, nu_hi = viscosity_3d(*at(-0.5)), viscosity_3d(*at(0.5))
            total = total + (nu_hi * (u[2] - u[1]) - nu_lo * (u[1] - u[0])) / e**2
        step = [e if i == a else 0.0 for i in range(3)]
        hi = exact_3d(*[p + s for p, s in zip(points, step, strict=True)])[1]
        lo = exact_3d(*[p - s for p, s in zip(points, step, strict=True)])[1]
        out.append(-total + (hi - lo) / (2 * e))
    return out


def test_3d_manufactured_solution_converges_at_second_order_in_the_max_norm():
    """Measured orders 1.98 (velocity) and 1.85 (pressure) from n = 15 to 23."""
    errors, spacing = [], []
    for n in (7, 15, 23):
        family = Stokes(n, 3, StokesProblem())
        points = np.meshgrid(family.x, family.x, family.x, indexing="ij")
        nu = viscosity_3d(*points)
        A, b = family.assemble(nu, *force_3d(points))
        chain = ChainSolver("minres", "fieldsplit", rtol=1e-12)
        chain.use_field_splits(family.field_splits(), velocity_pc="gamg")
        sample = Sample(0, {"viscosity": nu})
        result = chain.solve(A, b, P=family.preconditioner_operator(sample, A))
        assert result.converged
        *velocity, p = family.mac_fields(result.x)
        assert np.abs(family.divergence(*velocity)).max() < 1e-8
        fields = family.node_fields(*velocity, p)
        u, p_exact = exact_3d(*points)
        errors.append(
            (
                max(np.abs(fields[f"velocity_{c}"] - u[i]).max() for i, c in enumerate("xyz")),
                np.abs(fields["pressure"] - p_exact).max(),
            )
        )
        spacing.append(family.h)
    orders = (
        np.log(np.array(errors[:-1]) / np.array(errors[1:]))
        / np.log(np.array(spacing[:-1]) / np.array(spacing[1:]))[:, None]
    )
    assert np.all(orders[:, 0] > 1.9), orders
    assert np.all(orders[:, 1] > 1.8), orders


def test_3d_operator_has_the_inertia_of_a_saddle_point_and_stores_three_components():
    family = Stokes(3, 3, StokesProblem())
    sample = family.sample(0, 0)
    assert set(sample.inputs) == {"viscosity", "force_x", "force_y", "force_z"}
    A, _ = family.system(sample)
    assert abs(A - A.T).max() == 0
    eigs = np.linalg.eigvalsh(A.toarray())
    assert (eigs > 0).sum() == family.velocity_unknowns == 3 * 3 * 4**2
    assert (eigs < 0).sum() == family.pressure_unknowns == 4**3 - 1
    fields, (result,) = family.solve_sample(sample, ChainSolver("direct", "lu"))
    assert result.converged
    assert set(fields) == {"velocity_x", "velocity_y", "velocity_z", "pressure"}
    assert all(f.shape == (5, 5, 5) for f in fields.values())


def test_the_discrete_divergence_of_a_direct_solve_is_round_off():
    family = Stokes(31, 2, StokesProblem())
    sample = family.sample(0, 0)
    chain = ChainSolver("direct", "lu")
    fields, (result,) = family.solve_sample(sample, chain)
    assert result.converged and result.residual < 1e-12
    u, v, p = family.mac_fields(result.x)
    scale = max(np.abs(u).max(), np.abs(v).max()) / family.h
    assert np.abs(family.divergence(u, v)).max() < 1e-11 * scale
    # the direct solve is the one SuperLU gives
    A, b = family.system(sample)
    exact_x = spl.spsolve(A.tocsc(), b)
    assert np.linalg.norm(result.x - exact_x) < 1e-10 * np.linalg.norm(exact_x)


def test_constant_pressure_is_the_kernel_and_the_stored_pressure_has_mean_zero():
    family = Stokes(7, 2, StokesProblem())
    sample = family.sample(3, 0)
    nu = sample.inputs["viscosity"]
    K = family.full_operator(nu).toarray()
    constant = np.concatenate([np.zeros(family.velocity_unknowns), np.ones((family.n + 1) ** 2)])
    assert np.abs(K @ constant).max() < 1e-14
    singular = np.linalg.svd(K, compute_uv=False)
    assert singular[-1] < 1e-12 * singular[0] < singular[-2]  # exactly one null direction
    A, b = family.system(sample)
    pinned = np.linalg.svd(A.toarray(), compute_uv=False)
    assert pinned[-1] > 1e-6 * pinned[0]  # pinning removes it
    fields, (result,) = family.solve_sample(sample, ChainSolver("direct", "lu"))
    assert abs(family.mac_fields(result.x)[2].mean()) < 1e-14
    assert abs(trapezoid_mean(fields["pressure"], family.h)) < 1e-14
    # the stored flow is the same whichever cell is pinned (the constant is all it fixes)
    other = Stokes(7, 2, StokesProblem())
    other.pinned = 40
    again, _ = other.solve_sample(sample, ChainSolver("direct", "lu"))
    for name in fields:
        np.testing.assert_allclose(again[name], fields[name], rtol=0, atol=1e-12)


def test_the_operator_is_symmetric_with_the_inertia_of_a_saddle_point():
    """Sylvester: A positive definite and B of full rank give as many positive eigenvalues as
    velocities and as many negative as (pinned) pressures."""
    family = Stokes(7, 2, StokesProblem(viscosity=ViscositySpec(kind="threshold")))
    A, _ = family.system(family.sample(0, 1))
    assert abs(A - A.T).max() == 0
    eigs = np.linalg.eigvalsh(A.toarray())
    assert (eigs > 0).sum() == family.velocity_unknowns
    assert (eigs < 0).sum() == family.pressure_unknowns
    assert np.abs(eigs).min() > 1e-8


def allowed_pairs():
    for method, m in METHODS.items():
        for pc, p in PRECONDITIONERS.items():
            usable = Stokes.supports(m) and Stokes.supports(p) and m.direct == p.factorisation
            if usable and (m.pcs is None or pc in m.pcs):
                yield method, pc


@pytest.mark.parametrize("method,pc", list(allowed_pairs()))
def test_every_allowed_method_and_preconditioner_agrees_with_a_direct_solve(method, pc):
    family = Stokes(7, 2, StokesProblem())
    chain = ChainSolver(method, pc, rtol=1e-10, max_iterations=50000)
    for index in range(3):  # a chain: recycled spaces and reused factorisations carry over
        sample = family.sample(1, index)
        _, (result,) = family.solve_sample(sample, chain)
        A, b = family.system(sample)
        direct = spl.spsolve(A.tocsc(), b)
        assert result.converged, (method, pc, result.reason)
        assert np.linalg.norm(b - A @ result.x) <= 1e-10 * np.linalg.norm(b) * (1 + 1e-6)
        assert np.linalg.norm(result.x - direct) < 1e-6 * np.linalg.norm(direct)


def test_minres_with_the_block_preconditioner_is_nearly_grid_independent():
    """The Schur mass-matrix preconditioner is spectrally equivalent: iterations grow little
    from n = 15 to 63 while the unknowns grow 16-fold (unpreconditioned MINRES: 4.5x)."""
    its = {}
    for n in (15, 63):
        family = Stokes(n, 2, StokesProblem())
        chain = ChainSolver("minres", "fieldsplit")
        _, (result,) = family.solve_sample(family.sample(0, 0), chain)
        assert result.converged
        its[n] = result.iterations
    assert its[63] < 1.5 * its[15], its


@pytest.mark.parametrize(
    "solver,message",
    [
        ({"method": "cg"}, "solver.method: 'cg' needs a symmetric positive definite operator"),
        ({"method": "rcg"}, "solver.method: 'rcg' needs a symmetric positive definite"),
        ({"method": "gmres", "pc": "icc"}, "solver.pc: 'icc' needs a symmetric positive"),
        ({"method": "direct", "pc": "cholesky"}, "solver.pc: 'cholesky' needs a symmetric"),
        ({"method": "gmres", "pc": "mg"}, "solver.pc: 'mg' does not apply to stokes's operator"),
        ({"method": "minres", "pc": "ilu"}, "solver.pc: 'ilu' cannot precondition 'minres'"),
    ],
)
def test_solvers_the_saddle_point_cannot_take_are_refused_at_load(solver, message):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(stokes_recipe(solver=solver), "r.yaml")
    assert str(err.value).startswith(f"r.yaml: {message}")
    assert "\n" not in str(err.value)


def test_fieldsplit_is_refused_for_a_family_without_blocks():
    darcy = small_recipe_dict(solver={"method": "gmres", "pc": "fieldsplit"})
    with pytest.raises(RecipeError, match="'fieldsplit' does not apply to darcy's operator: it"):
        recipe_from_dict(darcy, "r.yaml")


@pytest.mark.parametrize(
    "problem,message",
    [
        ({"viscosity": {"kind": "uniform"}}, "problem.viscosity.kind: 'uniform' is not allowed"),
        ({"viscosity": {"value": 0}}, "problem.viscosity.value: 0.0 is out of range"),
        ({"force": {"kind": "constant"}}, "problem.force.kind: 'constant' is not allowed"),
        ({"force": {"strength": -1}}, "problem.force.strength: -1.0 is out of range"),
    ],
)
def test_bad_problem_values_are_one_line_errors(problem, message, write_recipe):
    path = write_recipe(stokes_recipe(problem=problem))
    cli = subprocess.run(
        [sys.executable, "-m", "pdegen.cli", "generate", str(path), "--out", str(path.parent)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 2
    assert message in cli.stderr and len(cli.stderr.strip().splitlines()) == 1, cli.stderr


def test_constant_viscosity_and_swirl_force_give_one_vortex():
    data = stokes_recipe(
        problem={"viscosity": {"kind": "constant", "value": 2.0}, "force": {"kind": "swirl"}}
    )
    content = solve_batch(recipe_from_dict(data), 0, [0, 1])
    assert np.all(content.inputs["viscosity"] == 2.0)
    first, second = content.outputs["velocity_x"]  # the same flow, to the solver's tolerance
    np.testing.assert_allclose(first, second, rtol=0, atol=1e-7 * np.abs(first).max())
    u, v = content.outputs["velocity_x"][0], content.outputs["velocity_y"][0]
    mid = u.shape[0] // 2
    # counter-clockwise: u > 0 above the centre, < 0 below; v the other way round
    assert u[mid, -3] < 0 < u[mid, 2] and v[2, mid] < 0 < v[-3, mid]


def test_check_verifies_a_stokes_dataset_and_says_deep_checks_only_its_inputs(tmp_path):
    from pdegen.dataset.check import check_dataset

    data = stokes_recipe(samples=4, solver={"method": "minres", "pc": "fieldsplit"})
    generate(recipe_from_dict(data), out=tmp_path / "s", progress=False, engine="serial")
    report = check_dataset(tmp_path / "s", deep=2)
    assert report.ok and report.samples == 4, report.problems
    assert any("only its inputs were re-checked" in notice for notice in report.notices)
    # an input that is not the recipe's draw is still caught (the checksums aside)
    import h5py

    shard = sorted((tmp_path / "s").glob("shard-*.h5"))[0]
    with h5py.File(shard, "r+") as f:
        f["inputs/viscosity"][0, 3, 3] *= 1.5
        f["inputs/viscosity"][1, 3, 3] *= 1.5
    report = check_dataset(tmp_path / "s", deep=4)
    assert any("inputs/viscosity is not the recipe's draw" in p.what for p in report.problems)
