"""The elasticity family: second-order convergence to manufactured solutions (clamped and
mixed boundaries, 2D and 3D), an SPD operator whose unconstrained kernel holds the rigid-body
modes, every allowed solver agreeing with a direct solve, GAMG's near-null space, and the
recipe's validation.

The oracle of the convergence tests is independent of the assembly: exact displacements and
Young's moduli are sums of separable products of sines, whose derivatives are written out
here, and the body force -div(sigma(u)) and the tractions sigma(u) n are formed from them
pointwise (`Exact`), with no finite elements involved.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from petsc4py import PETSc

from pdegen.discretisation.fem import lame
from pdegen.errors import RecipeError
from pdegen.families import Elasticity
from pdegen.families.elasticity import ElasticityProblem
from pdegen.recipe.schema import recipe_from_dict
from solvers.registry import METHODS, PRECONDITIONERS
from solvers.sequence import ChainSolver
from tests.helpers import elasticity_engine_recipe, small_recipe_dict

NU = 0.3

# -- the oracle: separable functions and their derivatives ---------------------------------

Factor = tuple[float, float]  # sin(a x + b)


@dataclasses.dataclass(frozen=True)
class Product:
    """c * prod_k sin(a_k x_k + b_k), with its gradient and Hessian in closed form."""

    c: float
    factors: tuple[Factor, ...]

    def parts(self, X: list[np.ndarray], k: int, order: int) -> np.ndarray:
        a, b = self.factors[k]
        arg = a * X[k] + b
        return [np.sin(arg), a * np.cos(arg), -(a**2) * np.sin(arg)][order]

    def derivative(self, X: list[np.ndarray], orders: tuple[int, ...]) -> np.ndarray:
        out = self.c * np.ones_like(X[0])
        for k, order in enumerate(orders):
            out = out * self.parts(X, k, order)
        return out


@dataclasses.dataclass(frozen=True)
class Field:
    """A constant plus a sum of `Product`s."""

    constant: float
    terms: tuple[Product, ...]

    def d(self, X: list[np.ndarray], *axes: int) -> np.ndarray:
        """The derivative along `axes` (none: the value)."""
        dim = len(X)
        orders = tuple(sum(1 for a in axes if a == k) for k in range(dim))
        total = sum(t.derivative(X, orders) for t in self.terms)
        return total + (self.constant if not axes else 0.0)


@dataclasses.dataclass(frozen=True)
class Exact:
    """A manufactured elasticity solution: displacement u, Young's modulus E, Poisson nu."""

    u: tuple[Field, ...]
    E: Field
    nu: float = NU

    def grids(self, x: np.ndarray) -> list[np.ndarray]:
        return np.meshgrid(*[x] * len(self.u), indexing="ij")

    def stress(self, X: list[np.ndarray]) -> list[list[np.ndarray]]:
        dim = len(self.u)
        mu, lam = lame(self.E.d(X), self.nu)
        div = sum(self.u[j].d(X, j) for j in range(dim))
        return [
            [
                mu * (self.u[j].d(X, i) + self.u[i].d(X, j)) + (lam * div if i == j else 0.0)
                for j in range(dim)
            ]
            for i in range(dim)
        ]

    def force(self, X: list[np.ndarray]) -> np.ndarray:
        """f = -div sigma(u), expanded by the product rule:
        f_i = -sum_j [d_j mu (d_i u_j + d_j u_i) + mu (d_i d_j u_j + d_j d_j u_i)]
              - d_i lam div u - lam d_i div u."""
        dim = len(self.u)
        c_mu, c_lam = lame(1.0, self.nu)
        E = self.E.d(X)
        div = sum(self.u[j].d(X, j) for j in range(dim))
        out = []
        for i in range(dim):
            total = 0.0
            for j in range(dim):
                dmu = c_mu * self.E.d(X, j)
                total = total + dmu * (self.u[i].d(X, j) + self.u[j].d(X, i))
                total = total + c_mu * E * (self.u[j].d(X, i, j) + self.u[i].d(X, j, j))
            grad_div = sum(self.u[j].d(X, i, j) for j in range(dim))
            total = total + c_lam * self.E.d(X, i) * div + c_lam * E * grad_div
            out.append(-total)
        return np.stack(out)

    def traction(self, x: np.ndarray, face: str) -> np.ndarray:
        """sigma(u) n on `face` (outward normal n), on that face's nodes: (d, *face grid)."""
        dim = len(self.u)
        axis, side = "xyz".index(face[0]), int(face[1])
        X = self.grids(x)
        sigma = self.stress(X)
        index = tuple((-1 if side else 0) if k == axis else slice(None) for k in range(dim))
        sign = 1.0 if side else -1.0
        return np.stack([sign * sigma[i][axis][index] for i in range(dim)])

    def displacement(self, x: np.ndarray) -> np.ndarray:
        X = self.grids(x)
        return np.stack([c.d(X) for c in self.u])


PI = math.pi


def _sines(c: float, *factors: Factor) -> Field:
    return Field(0.0, (Product(c, factors),))


# u vanishes on every face (sin(k pi x) at x = 0, 1) / on x = 0 only (sin(a x) at x = 0)
CLAMPED_2D = Exact(
    (_sines(1.0, (PI, 0), (PI, 0)), _sines(0.5, (2 * PI, 0), (PI, 0))),
    Field(2.0, (Product(1.0, ((2.0, 1.0), (3.0, 0.5))),)),
)
MIXED_2D = Exact(
    (_sines(1.0, (1.3, 0), (2.0, 0.4)), _sines(-0.7, (2.1, 0), (1.1, 1.0))),
    Field(2.0, (Product(1.0, ((2.0, 1.0), (3.0, 0.5))),)),
)
TWO_FACES_2D = Exact(  # zero on x = 0 and on y = 1: sin(a (1 - y))
    (_sines(1.0, (1.3, 0), (-2.0, 2.0)), _sines(-0.7, (2.1, 0), (-1.1, 1.1))),
    Field(2.0, (Product(1.0, ((2.0, 1.0), (3.0, 0.5))),)),
)
CLAMPED_3D = Exact(
    (
        _sines(1.0, (PI, 0), (PI, 0), (PI, 0)),
        _sines(0.5, (2 * PI, 0), (PI, 0), (PI, 0)),
        _sines(-0.8, (PI, 0), (PI, 0), (2 * PI, 0)),
    ),
    Field(2.0, (Product(1.0, ((2.0, 1.0), (3.0, 0.5), (1.5, 0.2))),)),
)
MIXED_3D = Exact(
    (
        _sines(1.0, (1.3, 0), (2.0, 0.4), (1.0, 0.3)),
        _sines(-0.7, (2.1, 0), (1.1, 1.0), (0.9, 0.0)),
        _sines(0.6, (1.7, 0), (0.8, 0.2), (1.9, 0.5)),
    ),
    Field(2.0, (Product(1.0, ((2.0, 1.0), (3.0, 0.5), (1.5, 0.2))),)),
)


def test_the_oracle_derivatives_match_finite_differences():
    """The oracle itself: its closed-form gradients and Hessians, and its force
    -div sigma(u) (the product-rule expansion), against central differences of its values
    and of its stress."""
    rng = np.random.default_rng(0)
    step = 1e-5
    for exact in (MIXED_2D, MIXED_3D):
        dim = len(exact.u)
        X = [rng.uniform(0.1, 0.9, 5) for _ in range(dim)]

        def moved(j: int, by: float, X=X) -> list[np.ndarray]:
            return [x + (by if k == j else 0.0) for k, x in enumerate(X)]

        for field in (*exact.u, exact.E):
            for i in range(dim):
                fd = (field.d(moved(i, step)) - field.d(moved(i, -step))) / (2 * step)
                np.testing.assert_allclose(field.d(X, i), fd, rtol=1e-6, atol=1e-8)
                for j in range(dim):
                    fd = (field.d(moved(j, step), i) - field.d(moved(j, -step), i)) / (2 * step)
                    np.testing.assert_allclose(field.d(X, i, j), fd, rtol=1e-6, atol=1e-7)
        plus = [exact.stress(moved(j, step)) for j in range(dim)]
        minus = [exact.stress(moved(j, -step)) for j in range(dim)]
        divergence = [
            sum((plus[j][i][j] - minus[j][i][j]) / (2 * step) for j in range(dim))
            for i in range(dim)
        ]
        np.testing.assert_allclose(exact.force(X), -np.stack(divergence), rtol=1e-6, atol=1e-6)


# -- convergence ---------------------------------------------------------------------------


def solve_exact(exact: Exact, n: int, clamped: str) -> float:
    """The max-norm nodal error of the discrete solution on an n^d interior grid."""
    dim = len(exact.u)
    family = Elasticity(n, dim, ElasticityProblem(poisson_ratio=exact.nu, clamped=clamped))
    X = exact.grids(family.x)
    free_faces = [
        f for f in ("x0", "x1", "y0", "y1", "z0", "z1")[: 2 * dim] if f not in family.faces
    ]
    traction = {face: exact.traction(family.x, face) for face in free_faces}
    A, b = family.assemble(exact.E.d(X), exact.force(X), traction)
    # CG + GAMG far below the discretisation error (a 3D Cholesky takes minutes here)
    chain = ChainSolver(
        "cg", "gamg", rtol=1e-12, rigid_body_coordinates=family.rigid_body_coordinates()
    )
    result = chain.solve(A, b)
    assert result.converged
    fields = family.displacement(result.x)
    u = exact.displacement(family.x)
    return max(float(np.abs(fields[name] - u[a]).max()) for a, name in enumerate(fields))


@pytest.mark.parametrize(
    "exact,clamped,grids,log",
    [
        (CLAMPED_2D, "all", (15, 31, 63), False),
        (MIXED_2D, "x0", (15, 31, 63), False),
        (TWO_FACES_2D, "x0 y1", (15, 31, 63), True),
        (CLAMPED_3D, "all", (5, 11, 23), False),
        (MIXED_3D, "x0", (5, 11, 23), False),
    ],
    ids=["2d-clamped", "2d-cantilever", "2d-two-faces", "3d-clamped", "3d-cantilever"],
)
def test_manufactured_solution_converges_at_second_order_in_the_max_norm(
    exact, clamped, grids, log
):
    """Order > 1.8 between successive grids. In the two-faces case the largest error sits
    at the traction-free corner (1, 0) and is C h^2 log(1/h) (C within 2% from h = 1/16 to
    1/128, measured): the max-norm rate of Q1 elements in general, so there the order of
    error / log(1/h) is tested."""
    errors = [solve_exact(exact, n, clamped) for n in grids]
    hs = [1.0 / (n + 1) for n in grids]
    scaled = [e / math.log(1 / h) if log else e for e, h in zip(errors, hs, strict=True)]
    orders = [
        math.log(scaled[k] / scaled[k + 1]) / math.log(hs[k] / hs[k + 1])
        for k in range(len(grids) - 1)
    ]
    assert errors[-1] < errors[0] / 10, errors
    assert min(orders) > 1.8, (errors, orders)


# -- the operator --------------------------------------------------------------------------


def family(dim: int, n: int, **problem) -> Elasticity:
    return Elasticity(n, dim, ElasticityProblem(**problem))


def rigid_body_modes(coordinates: np.ndarray) -> list[np.ndarray]:
    """Translations and infinitesimal rotations of the nodes at `coordinates` (nodes, d),
    interleaved: written out here, not taken from PETSc."""
    nodes, dim = coordinates.shape
    modes = [np.tile(np.eye(dim)[a], nodes) for a in range(dim)]
    for i, j in ((0, 1), (0, 2), (1, 2))[: 1 if dim == 2 else 3]:
        r = np.zeros((nodes, dim))
        r[:, i], r[:, j] = -coordinates[:, j], coordinates[:, i]
        modes.append(r.ravel())
    return modes


@pytest.mark.parametrize("dim,n", [(2, 9), (3, 5)])
@pytest.mark.parametrize("kind", ["lognormal", "threshold"])
def test_the_free_body_operator_annihilates_exactly_the_rigid_body_modes(dim, n, kind):
    fam = family(dim, n, youngs_modulus=_spec(kind))
    E = fam.sample(3, 0).inputs["youngs_modulus"]
    everywhere = np.ones(fam.grid_shape, dtype=bool)
    A = fam.operator(E, free=everywhere).toarray()
    X = np.stack(np.meshgrid(*[fam.x] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    modes = rigid_body_modes(X)
    scale = np.abs(A).max()
    for mode in modes:
        assert np.abs(A @ mode).max() < 1e-12 * scale * np.abs(mode).max()
    # and nothing else: the kernel is exactly d (d + 1) / 2 dimensional
    eigs = np.linalg.eigvalsh(A)
    kernel = dim * (dim + 1) // 2
    assert np.all(np.abs(eigs[:kernel]) < 1e-10 * scale)
    assert eigs[kernel] > 1e-6 * scale


def _spec(kind: str):
    from pdegen.specs import CoefficientSpec

    return CoefficientSpec(kind=kind, sigma=1.0)


@pytest.mark.parametrize("dim,n", [(2, 9), (3, 4)])
@pytest.mark.parametrize("clamped", ["all", "x0", "y0 y1"])
def test_the_clamped_operator_is_symmetric_positive_definite(dim, n, clamped):
    fam = family(dim, n, clamped=clamped)
    A, b = fam.system(fam.sample(1, 2))
    assert abs(A - A.T).max() == 0.0  # bit for bit: the lower half reads the upper
    eigs = np.linalg.eigvalsh(A.toarray())
    assert eigs.min() > 1e-8 * eigs.max()
    assert A.shape[0] == fam.unknowns == b.size == fam.rigid_body_coordinates().size


def test_unknowns_are_interleaved_and_the_clamped_nodes_are_zero():
    """Node k's components are unknowns d k .. d k + d - 1, in the order of the coordinates
    handed to the solver, and the stored fields put them back on their nodes."""
    fam = family(2, 5, clamped="x0")
    coords = fam.rigid_body_coordinates()
    x = np.column_stack([10 * coords[:, 0] + coords[:, 1], -coords[:, 0]]).ravel()
    fields = fam.displacement(x)
    X, Y = np.meshgrid(fam.x, fam.x, indexing="ij")
    np.testing.assert_allclose(fields["displacement_x"][1:], (10 * X + Y)[1:])
    np.testing.assert_allclose(fields["displacement_y"][1:], -X[1:])
    assert not fields["displacement_x"][0].any() and not fields["displacement_y"][0].any()


# -- solvers -------------------------------------------------------------------------------


def allowed_solvers() -> list[tuple[str, str]]:
    """Every (method, pc) a recipe may name for elasticity, per the registry and the family."""
    pairs = []
    for method, entry in METHODS.items():
        if not Elasticity.supports(entry):
            continue
        for pc, p in PRECONDITIONERS.items():
            if not Elasticity.supports(p) or p.geometric or p.factorisation != entry.direct:
                continue
            pairs.append((method, pc))
    return pairs


@pytest.mark.parametrize("dim,n", [(2, 11), (3, 5)])
def test_every_allowed_solver_agrees_with_a_direct_solve(dim, n):
    from scipy.sparse.linalg import spsolve

    fam = family(dim, n, clamped="x0", body_force="random")
    coords = fam.rigid_body_coordinates()
    systems = [fam.system(fam.sample(0, i)) for i in range(3)]
    references = [spsolve(A.tocsc(), b) for A, b in systems]  # SuperLU: not PETSc
    pairs = allowed_solvers()
    assert ("cg", "gamg") in pairs and ("rcg", "gamg") in pairs and ("direct", "cholesky") in pairs
    for method, pc in pairs:
        chain = ChainSolver(method, pc, rtol=1e-10, rigid_body_coordinates=coords)
        for (A, b), reference in zip(systems, references, strict=True):
            result = chain.solve(A, b)
            assert result.converged, (method, pc, result.reason)
            err = np.abs(result.x - reference).max() / np.abs(reference).max()
            assert err < 1e-6, (method, pc, err)


@pytest.mark.parametrize("dim,n", [(2, 31), (3, 9)])
def test_gamg_needs_the_rigid_body_modes(dim, n):
    """CG + GAMG with the rigid-body modes as near-null space takes fewer iterations than with
    the translations alone (block size d) or a scalar near-null space: the measured effect
    docs/benchmarks.md tabulates, here only its direction."""
    fam = family(dim, n, clamped="x0")
    A, b = fam.system(fam.sample(0, 0))
    coords = fam.rigid_body_coordinates()
    its = {}
    for label, kwargs in (
        ("modes", {"rigid_body_coordinates": coords}),
        ("translations", {"block_size": dim}),
        ("scalar", {}),
    ):
        result = ChainSolver("cg", "gamg", **kwargs).solve(A, b)
        assert result.converged
        its[label] = result.iterations
    assert its["modes"] < its["translations"] and its["modes"] < its["scalar"], its


def test_the_chain_attaches_the_modes_to_the_matrix_gamg_sees():
    fam = family(2, 7, clamped="x0")
    A, b = fam.system(fam.sample(0, 0))
    chain = ChainSolver("cg", "gamg", rigid_body_coordinates=fam.rigid_body_coordinates())
    chain.solve(A, b)
    mat = chain._runner.ksp.getOperators()[0]
    assert mat.getBlockSize() == 2
    vectors = mat.getNearNullSpace().getVecs()
    assert len(vectors) == 3
    basis = np.column_stack([v.getArray(readonly=True) for v in vectors])
    ours = np.column_stack(rigid_body_modes(fam.rigid_body_coordinates()))
    # the same space: ours lies in PETSc's span
    coef, *_ = np.linalg.lstsq(basis, ours, rcond=None)
    np.testing.assert_allclose(basis @ coef, ours, atol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
def test_the_near_null_space_is_petscs_rigid_body_space_in_the_same_bits_everywhere(dim):
    """solvers.petsc.rigid_body_modes: PETSc's modes (MatNullSpaceCreateRigidBody, the oracle)
    to rounding, orthonormal, and the same bits whatever the memory its input lies in (PETSc's
    own rounded differently in some processes: its VecMDot depends on where vectors lie)."""
    from solvers.petsc import rigid_body_modes as near_null_space

    X = np.random.default_rng(dim).random((41, dim))
    ours = [
        np.array([v.getArray(readonly=True) for v in near_null_space(c).getVecs()])
        for c in (
            X,
            np.asfortranarray(X),
            np.concatenate([np.zeros(3), X.ravel()])[3:].reshape(X.shape),  # another alignment
        )
    ]
    for other in ours[1:]:
        np.testing.assert_array_equal(other, ours[0])
    vec = PETSc.Vec().createSeq(X.size, bsize=dim)
    vec.setArray(X.ravel())
    petsc = np.array([v.getArray() for v in PETSc.NullSpace().createRigidBody(vec).getVecs()])
    np.testing.assert_allclose(ours[0], petsc, atol=1e-14)
    np.testing.assert_allclose(ours[0] @ ours[0].T, np.eye(dim * (dim + 1) // 2), atol=1e-14)
    written_out = np.column_stack(rigid_body_modes(X))
    spanned, *_ = np.linalg.lstsq(ours[0].T, written_out, rcond=None)
    np.testing.assert_allclose(ours[0].T @ spanned, written_out, atol=1e-13)


def test_the_near_null_space_does_not_depend_on_blas_threads():
    """Long dot products through OpenBLAS round differently on 1 and 2 threads (the serial
    engine runs as many as there are cores, a Dask worker one): numpy's `@` in the
    orthonormalisation gave other bits on 4000 nodes; `rigid_body_modes` uses no BLAS. And a
    lone node's rotation is left zero, as PETSc leaves it, not 0/0."""
    from threadpoolctl import threadpool_limits

    from solvers.petsc import rigid_body_modes as near_null_space

    X = np.random.default_rng(0).random((4000, 3))
    modes = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            space = near_null_space(X)
        modes.append(np.array([v.getArray(readonly=True) for v in space.getVecs()]))
    np.testing.assert_array_equal(modes[1], modes[0])
    lone = near_null_space(np.array([[0.5, 0.5]]))
    np.testing.assert_array_equal(
        [v.getArray(readonly=True) for v in lone.getVecs()], [[1, 0], [0, 1], [0, 0]]
    )


# -- recipes -------------------------------------------------------------------------------


def elasticity_recipe(**problem) -> dict:
    data = small_recipe_dict(family="elasticity", solver={"method": "cg", "pc": "gamg"})
    data["problem"] = problem
    return data


@pytest.mark.parametrize(
    "problem,solver,message",
    [
        (
            {"poisson_ratio": 0.5},
            {},
            "problem.poisson_ratio: 0.5 is out of range (must be less than 0.5)",
        ),
        (
            {"poisson_ratio": -0.1},
            {},
            "problem.poisson_ratio: -0.1 is out of range (must be at least 0.0)",
        ),
        ({"clamped": "none"}, {}, "problem.clamped: 'none' clamps no face"),
        ({"clamped": "z0"}, {}, "problem.clamped: 'z0' is not a face of the unit square"),
        ({"clamped": "x0 left"}, {}, "problem.clamped: 'left' is not a face"),
        ({"body_force": "wind"}, {}, "problem.body_force: 'wind' is not allowed"),
        ({}, {"pc": "mg"}, "solver.pc: 'mg' is scalar geometric multigrid"),
    ],
)
def test_bad_recipe_values_are_one_line_errors(problem, solver, message):
    data = elasticity_recipe(**problem)
    data["solver"].update(solver)
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data, "r.yaml")
    text = str(err.value)
    assert text.startswith(f"r.yaml: {message}") and "\n" not in text, text


def test_a_pure_traction_recipe_fails_at_the_cli_in_one_line(tmp_path, write_recipe):
    from tests.helpers import run

    path = write_recipe(elasticity_recipe(clamped="none"))
    result = run(["generate", str(path), "--engine", "serial"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "problem.clamped: 'none' clamps no face" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_faces_parse_and_3d_faces_exist_only_in_3d():
    recipe = recipe_from_dict(elasticity_recipe(clamped="x0, y1"))
    assert Elasticity.from_recipe(recipe).faces == ("x0", "y1")
    data = elasticity_recipe(clamped="z0+x1")
    data["grid"] = {"n": 5, "dim": 3}
    assert Elasticity.from_recipe(recipe_from_dict(data)).faces == ("x1", "z0")


def test_random_force_is_stored_and_gravity_is_not():
    gravity, random_force = family(2, 5), family(3, 4, body_force="random")
    assert gravity.input_names == ("youngs_modulus",)
    assert random_force.input_names == ("youngs_modulus", "force_x", "force_y", "force_z")
    assert set(random_force.sample(0, 1).inputs) == set(random_force.input_names)
    assert random_force.output_names == ("displacement_x", "displacement_y", "displacement_z")
    # gravity pulls along -y: the load of every free node is (0, -g * integral of its hat)
    _, b = gravity.system(gravity.sample(0, 0))
    loads = b.reshape(-1, 2)
    assert not loads[:, 0].any() and (loads[:, 1] < 0).all()
    np.testing.assert_allclose(loads[:, 1].sum(), -((gravity.n / (gravity.n + 1)) ** 2))


# -- generation ----------------------------------------------------------------------------
# (serial, Dask and MPI write this recipe's dataset bit for bit: tests/test_engines.py)


def test_a_generated_dataset_is_converged_clamped_and_passes_a_deep_check(tmp_path):
    from pdegen import open_dataset
    from pdegen.dataset.check import check_dataset
    from pdegen.run.generate import generate

    recipe = recipe_from_dict(elasticity_engine_recipe())
    generate(recipe, out=tmp_path / "s", progress=False, engine="serial")
    with open_dataset(tmp_path / "s") as ds:
        assert (ds.stats()["residual"] <= 1e-8).all() and len(ds) == 8
        item = ds[0]
        assert item["displacement_x"].shape == (11, 11)
        assert not item["displacement_x"][0].any()  # clamped at x = 0
        assert np.abs(item["displacement_y"]).max() > 0
    report = check_dataset(tmp_path / "s", deep=3)
    assert not report.problems, report.problems
    assert len(report.deep) == 3 and all(d.residual <= d.bound for d in report.deep)


def test_generation_hands_gamg_the_layout_the_family_declares():
    """A generated sample's iteration count is that of a chain with the family's layout (2D:
    the rigid-body modes; 3D: block size d only), not that of a scalar near-null space."""
    from pdegen.run.batch import solve_batch

    for dim, n in ((2, 15), (3, 7)):
        data = small_recipe_dict(
            family="elasticity",
            samples=2,
            grid={"n": n, "dim": dim},
            solver={"method": "cg", "pc": "gamg", "ordering": "none"},
        )
        data["problem"] = {"clamped": "x0"}
        recipe = recipe_from_dict(data)
        fam = Elasticity.from_recipe(recipe)
        layout = fam.vector_layout()
        assert layout["block_size"] == dim
        assert ("rigid_body_coordinates" in layout) == Elasticity.rigid_body_modes[dim]
        content = solve_batch(recipe, 0, [0])
        A, b = fam.system(fam.sample(recipe.seed, 0))
        declared = ChainSolver("cg", "gamg", **layout).solve(A, b).iterations
        scalar = ChainSolver("cg", "gamg").solve(A, b).iterations
        assert content.stats["iterations"][0] == declared != scalar
