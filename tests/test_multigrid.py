"""Geometric multigrid (`pc: mg`): the DMDA mapping, the levels rule, every method against a
direct solve on Darcy and Helmholtz, reuse of the hierarchy across a chain, mesh-independent
iteration counts, the fallback of a grid that cannot coarsen, and recipes end to end."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from petsc4py import PETSc

from pdegen.dataset.loader import open_dataset
from pdegen.families import Darcy, Helmholtz
from pdegen.families.darcy import DarcyProblem
from pdegen.families.helmholtz import HelmholtzProblem
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from pdegen.specs import CoefficientSpec, RangeSpec
from solvers import ChainSolver, solve_sequence
from solvers.grids import MAX_COARSEST, UNEVEN_ABOVE, coarsen, infer_grid
from solvers.multigrid import GridHierarchy, MGSettings, node_grid
from solvers.registry import METHODS, PRECONDITIONERS
from tests.helpers import small_recipe_dict

ITERATIVE = [m for m, e in METHODS.items() if not e.direct and not e.integrator]  # linear solvers
THRESHOLD = CoefficientSpec(kind="threshold", alpha=2.0, tau=3.0, high=12.0, low=3.0)


def darcy(n: int, dim: int) -> Darcy:
    return Darcy(n, dim, DarcyProblem(THRESHOLD))


def helmholtz(n: int, dim: int) -> Helmholtz:
    k = RangeSpec(8.0, 12.0) if dim == 2 else RangeSpec(9.0, 11.0)
    return Helmholtz(n, dim, HelmholtzProblem(wavenumber=k))


def to_scipy(mat: PETSc.Mat) -> sp.csr_matrix:
    indptr, indices, data = mat.getValuesCSR()
    return sp.csr_matrix((data, indices, indptr), shape=mat.getSize())


def linear_interpolation_1d(n: int, ratio: int = 2) -> sp.csr_matrix:
    """Coarse interior nodes j = 1..m at x = j / (m + 1) to fine ones i = 1..n (n + 1 =
    ratio (m + 1)), zero Dirichlet values: the classical vertex-centred interpolation, coarse
    node j on fine node ratio j and its hat function reaching ratio - 1 fine nodes each way."""
    m = (n + 1) // ratio - 1
    P = sp.lil_matrix((n, m))
    for j in range(1, m + 1):
        for offset in range(1 - ratio, ratio):
            P[ratio * j + offset - 1, j - 1] = 1.0 - abs(offset) / ratio
    return P.tocsr()


# -- the DMDA mapping and the levels rule ----------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 9), (3, 5, 9)])
def test_the_dmda_x_axis_is_our_last_axis(shape):
    """A DMDA node (i_x, i_y[, i_z]) is our array element [..., i_y, i_x]: the DMDA's own
    coordinates (natural ordering, x fastest, components interlaced), read in C order, run
    along our axes with DMDA x on the last one; so no permutation is needed."""
    da = node_grid(shape)
    nodes = tuple(n + 2 for n in shape)
    assert tuple(da.getSizes()) == nodes[::-1]
    lengths = [float(k + 1) for k in range(len(shape))]  # DMDA x in [0, 1], y in [0, 2], ...
    bounds = [v for length in lengths for v in (0.0, length)]
    da.setUniformCoordinates(*bounds)
    coords = da.getCoordinates().getArray().reshape(*nodes, len(shape))
    for component, length in enumerate(lengths):
        axis = len(shape) - 1 - component  # DMDA dimension `component` is our axis `axis`
        line = np.linspace(0.0, length, nodes[axis])
        shape_1d = [1] * len(shape)
        shape_1d[axis] = nodes[axis]
        assert np.allclose(coords[..., component], line.reshape(shape_1d))


@pytest.mark.parametrize(
    "shape,ratio", [((7, 15), 2), ((3, 7, 15), 2), ((31, 63), 2), ((7, 15, 31), 2)]
)
def test_dmda_interpolation_is_the_classical_one_on_our_ordering(shape, ratio):
    """The interior part of DMCreateInterpolation between the node-grid DMDAs is the tensor
    product of 1D linear interpolation in our C order (a rectangular grid, so a swapped axis
    would show), and reproduces a smooth function to O(h^2)."""
    hierarchy = GridHierarchy(shape)
    assert hierarchy.shapes[1] == tuple((n + 1) // ratio - 1 for n in shape)
    P = to_scipy(hierarchy.interpolations[-1])  # coarser level -> finest
    expected = linear_interpolation_1d(shape[0], ratio)
    for n in shape[1:]:
        expected = sp.kron(expected, linear_interpolation_1d(n, ratio), format="csr")
    assert P.shape == expected.shape
    assert abs(P - expected).max() < 1e-14
    coarse = hierarchy.shapes[1]

    def f(grid_shape):
        axes = [np.arange(1, n + 1) / (n + 1) for n in grid_shape]
        x = np.meshgrid(*axes, indexing="ij")
        return np.prod([np.sin(np.pi * (k + 1) * xi) for k, xi in enumerate(x)], axis=0).ravel()

    error = np.abs(P @ f(coarse) - f(shape)).max()
    h = 1.0 / (min(coarse) + 1)
    # the linear interpolation bound, h^2 / 8 times |d^2 f / dx_k^2| <= (pi (k + 1))^2 per axis
    assert error < sum((np.pi * (k + 1)) ** 2 for k in range(len(shape))) * h**2 / 8


def test_a_hierarchy_halved_exactly_then_unevenly_keeps_the_classical_first_step():
    """(161, 215): 162 x 216 cells halve to (80, 107), whose 81 x 108 cells do not pair up,
    and 8560 > UNEVEN_ABOVE unknowns are halved unevenly to (40, 53) (no step by 3: the
    levels rule): the exact step's interpolation, PCMG's last, is the tensor product of 1D
    linear interpolation by 2; the uneven one interpolates at the nodes' true positions
    (test_uneven_halving_keeps_fine_nodes_and_interpolates_linearly)."""
    hierarchy = GridHierarchy((161, 215))
    assert hierarchy.shapes == ((161, 215), (80, 107), (40, 53))
    assert 80 * 107 > UNEVEN_ABOVE[2] >= 40 * 53
    expected = sp.kron(
        linear_interpolation_1d(161, 2), linear_interpolation_1d(215, 2), format="csr"
    )
    assert abs(to_scipy(hierarchy.interpolations[-1]) - expected).max() < 1e-14


@pytest.mark.parametrize(
    "shape", [(126, 126), (100, 72), (254, 200), (46, 46, 46), (48, 48, 48), (64, 30, 20)]
)
def test_uneven_halving_keeps_fine_nodes_and_interpolates_linearly(shape):
    """A level whose cells do not halve is halved unevenly: along each axis the coarse nodes
    are fine nodes (every other one and the last), and the interpolation applied to any coarse
    values (zero on the boundary) equals scipy's multilinear interpolation of them at the
    fine nodes' positions (a rectangular grid, so a swapped axis would show); it keeps the
    even case's sparsity (at most 2^d entries a row) and PCMG gets it in the hierarchy's
    place. Levels below it interpolate at their true (uneven) positions too."""
    from scipy.interpolate import RegularGridInterpolator

    from solvers.grids import is_exact_step

    hierarchy = GridHierarchy(shape)
    steps = zip(hierarchy.shapes[:-1], hierarchy.shapes[1:], strict=True)
    assert not all(is_exact_step(fine, coarse) for fine, coarse in steps)
    d = len(shape)
    for level in range(1, hierarchy.levels):
        fine, coarse = hierarchy.positions[level - 1], hierarchy.positions[level]
        for f, c, n in zip(fine, coarse, hierarchy.shapes[level], strict=True):
            assert set(c) <= set(f) and c[0] == 0 and c[-1] == f[-1] and c.size == n + 2
            assert np.diff(c).max() <= 2 * np.diff(c).min()  # cells stay within 2:1
        P = to_scipy(hierarchy.interpolations[hierarchy.levels - 1 - level])
        assert np.diff(P.indptr).max() <= 2**d
        values = np.random.default_rng(level).standard_normal(hierarchy.shapes[level])
        interpolate = RegularGridInterpolator(
            tuple(c.astype(float) for c in coarse), np.pad(values, 1)
        )
        inner = [p[1:-1].astype(float) for p in fine]
        points = np.stack(np.meshgrid(*inner, indexing="ij"), axis=-1).reshape(-1, d)
        assert np.abs(P @ values.ravel() - interpolate(points)).max() < 1e-12
    two = GridHierarchy(shape, dof=2)  # the damped Helmholtz layout: both parts alike
    P = to_scipy(hierarchy.interpolations[-1])
    P2 = to_scipy(two.interpolations[-1])
    assert abs(P2[0::2, 0::2] - P).max() == 0 and P2[0::2, 1::2].nnz == 0


def test_positions_interpolation_on_uniform_levels_is_petscs():
    """Our interpolation from positions and PETSc's DMDA one agree where both apply (a
    uniform rectangular level halved)."""
    from solvers.multigrid import coarser_positions, positions_interpolation

    for fine, coarse in [((7, 15), (3, 7)), ((31, 63, 15), (15, 31, 7))]:
        dmda = to_scipy(GridHierarchy(fine).interpolations[-1])
        assert GridHierarchy(fine).shapes[1] == coarse
        positions = [np.arange(n + 2) for n in fine]
        coarse_positions = [
            coarser_positions(p, c + 1) for p, c in zip(positions, coarse, strict=True)
        ]
        ours = to_scipy(positions_interpolation(positions, coarse_positions))
        assert abs(ours - dmda).max() < 1e-15


def test_cg_mg_after_uneven_halving_converges_like_on_an_even_grid():
    """128 points per axis (127 cells, prime) against 129 (128 cells): the same iterations
    within one, and the solution of a direct solve."""
    counts = {}
    for n in (126, 127):
        family = darcy(n, 2)
        systems = [family.system(family.sample(0, i)) for i in range(3)]
        chain = ChainSolver("cg", "mg", rtol=1e-10, grid=family.interior_shape)
        results = [chain.solve(A, b) for A, b in systems]
        assert chain.pc == "mg" and chain.hierarchy.levels >= 6
        for (A, b), result in zip(systems, results, strict=True):
            exact = spla.spsolve(A.tocsc(), b)
            assert np.abs(result.x - exact).max() <= 1e-7 * np.abs(exact).max()
        counts[n] = max(r.iterations for r in results)
    assert counts[126] <= counts[127] + 1, counts


def test_the_levels_rule():
    # FNO's grid: halved twice (420 = 4 * 105 cells), then 105 cells unevenly to 53, since
    # 104^2 > UNEVEN_ABOVE (no step by 3 to 34 any more: module docstring of solvers.grids)
    assert coarsen((419, 419)).shapes == ((419, 419), (209, 209), (104, 104), (52, 52))
    assert coarsen((419, 419), max_levels=3).shapes[-1] == (104, 104)
    assert 52 * 52 < UNEVEN_ABOVE[2] < 104 * 104
    cube = coarsen((63, 63, 63))
    assert [s[0] for s in cube.shapes] == [63, 31, 15, 7, 3, 1] and cube.usable
    assert coarsen((63, 63, 63), max_levels=3).levels == 3
    # 63 = 3^2 * 7 cells: halved unevenly to 32, then exactly down to one unknown
    assert [s[0] for s in coarsen((62, 62, 62)).shapes] == [62, 31, 15, 7, 3, 1]
    assert [s[0] for s in coarsen((80, 80)).shapes] == [80, 40]  # 41^2 cells: small, stop
    for shape in [(30, 30), (26, 26)]:  # 31 and 27 cells, and at most 4096 unknowns: stop
        assert coarsen(shape).levels == 1 and not coarsen(shape).usable
        assert "do not halve" in coarsen(shape).note
    # larger levels whose cells do not halve are halved unevenly, c -> (c + 1) / 2 cells:
    # 47 -> 24, 65 -> 33 -> 17, 127 -> 64, 255 -> 128
    assert [s[0] for s in coarsen((46, 46, 46)).shapes] == [46, 23, 11, 5, 2]
    assert [s[0] for s in coarsen((64, 64, 64)).shapes] == [64, 32, 16]
    assert [s[0] for s in coarsen((126, 126)).shapes] == [126, 63, 31, 15, 7, 3, 1]
    assert [s[0] for s in coarsen((254, 254)).shapes] == [254, 127, 63, 31, 15, 7, 3, 1]
    assert all(coarsen(s).usable for s in [(46, 46, 46), (64, 64, 64), (126, 126), (254, 254)])
    assert "max_levels" in coarsen((419, 419), max_levels=1).note  # it would coarsen
    # the reason named is the one that holds: 3 x 3000 cells do not halve, and one axis has
    # too few nodes to be halved unevenly
    assert "only 2 interior nodes, too few to halve unevenly" in coarsen((2, 2999)).note
    assert "only 2 cells, too few to halve" in coarsen((1, 8191)).note  # 2 x 8192: even
    cut = coarsen((62, 62, 62), max_levels=2)  # 62 -> 31 (31^3 unknowns), which would go on
    assert "larger than" in cut.note and "max_levels stops it at 2 levels" in cut.note
    too_big = coarsen((93, 93, 93), max_levels=2)  # one halving, to 46^3 > MAX_COARSEST[3]
    assert too_big.levels == 2 and too_big.coarsest_unknowns > MAX_COARSEST[3]
    assert not too_big.usable and "larger than" in too_big.note
    assert coarsen((419, 419)).note is None


def test_the_grid_is_inferred_from_a_stencil_and_only_from_one():
    for family in (darcy(9, 2), darcy(6, 3), helmholtz(7, 2)):
        A, _ = family.system(family.sample(0, 0))
        assert infer_grid(A.shape[0], A[0].indices.tolist()) == family.interior_shape
    assert infer_grid(16, [0]) is None  # diagonal
    assert infer_grid(16, [0, 1, 4]) == (4, 4)
    assert infer_grid(20, [0, 1, 4]) is None  # a 4^2 stencil has 16 rows
    assert infer_grid(16, [0, 1, 5]) is None
    assert infer_grid(64, [0, 1, 4, 16]) == (4, 4, 4)


# -- every method agrees with a direct solve -------------------------------------------------

CASES = {
    "darcy2d": lambda: darcy(31, 2),
    "darcy3d": lambda: darcy(15, 3),
    "helmholtz2d": lambda: helmholtz(31, 2),
    "helmholtz3d": lambda: helmholtz(15, 3),
    # grids whose hierarchy is halved unevenly (81 and 21 cells per axis; the levels rule)
    "darcy2d-uneven": lambda: darcy(80, 2),
    "darcy2d-by2-then-uneven": lambda: darcy(161, 2),
    "darcy3d-uneven": lambda: darcy(20, 3),
    "helmholtz2d-uneven": lambda: helmholtz(80, 2),
}


# CG and recycling CG need an SPD operator: Darcy's, not Helmholtz's (the recipe rejects them)
PAIRS = [
    (case, method)
    for case in CASES
    for method in ITERATIVE
    if case.startswith("darcy") or not METHODS[method].requires
]


@pytest.mark.parametrize("case,method", PAIRS)
def test_every_method_with_mg_agrees_with_a_direct_solve(case, method):
    family = CASES[case]()
    rtol = 1e-8
    settings = family.multigrid_settings()  # Helmholtz: Gauss-Seidel down and up
    chain = ChainSolver(
        method, "mg", rtol=rtol, grid=family.interior_shape, max_iterations=3000, multigrid=settings
    )
    assert chain.wants_preconditioner_operator and chain.pc == "mg" and chain.note is None
    levels = {(31, 31): 5, (15, 15, 15): 4, (80, 80): 2, (20,) * 3: 2, (161, 161): 3}
    # down to one unknown by halving; one uneven halving; halving, then an uneven one
    assert chain.hierarchy.levels == levels[family.interior_shape]
    for index in range(3):
        sample = family.sample(1, index)
        A, b = family.system(sample)
        if case.startswith("helmholtz") and index == 0:
            assert spla.eigsh(A, k=1, which="SA", return_eigenvectors=False)[0] < 0
        _, (result,) = family.solve_sample(sample, chain)
        assert result.converged, result.reason
        exact = spla.spsolve(A.tocsc(), b)
        assert np.linalg.norm(b - A @ result.x) <= rtol * np.linalg.norm(b) * 1.000001
        assert np.linalg.norm(result.x - exact) <= 1e4 * rtol * np.linalg.norm(exact)


def test_helmholtz_mg_is_built_on_the_shifted_laplacian():
    """The family hands `pc: mg` the SPD operator -div(a grad) + beta k^2 I; other
    preconditioners (ILU) are built on A itself."""
    family = helmholtz(15, 2)
    sample = family.sample(0, 0)
    A, _ = family.system(sample)
    P = family.preconditioner_operator(sample, A)
    k2 = sample.params["wavenumber"] ** 2
    shift = (P - A).tocsr()
    assert np.allclose(shift.diagonal(), (1.0 + family.shift) * k2)
    assert family.shift == Helmholtz.shift_by_dim[2] == 1.0  # 3D: 0.5 (measured)
    assert shift.nnz == A.shape[0] and (P != P.T).nnz == 0
    assert spla.eigsh(P, k=1, which="SA", return_eigenvectors=False)[0] > 0
    assert P.indptr.tolist() == A.indptr.tolist() and P.indices.tolist() == A.indices.tolist()
    chain = ChainSolver("gcrodr", "mg", grid=family.interior_shape)
    _, (result,) = family.solve_sample(sample, chain)
    amat, pmat = chain._runner.ksp.getOperators()  # the solve's operator, and the PC's
    assert result.converged and amat.handle != pmat.handle
    assert abs(to_scipy(pmat) - P).max() < 1e-9 and abs(to_scipy(amat) - A).max() < 1e-9
    assert not ChainSolver("gcrodr", "ilu").wants_preconditioner_operator
    assert PRECONDITIONERS["mg"].own_operator and not PRECONDITIONERS["gamg"].own_operator


def test_gcrodr_with_shifted_mg_beats_ilu_on_indefinite_helmholtz():
    """What the shifted Laplacian is for: far fewer iterations than ILU on the same chain."""
    family = helmholtz(63, 2)
    samples = [family.sample(0, i) for i in range(4)]
    iterations = {}
    for pc in ("mg", "ilu"):
        chain = ChainSolver("gcrodr", pc, grid=family.interior_shape, max_iterations=5000)
        results = [family.solve_sample(s, chain)[1][0] for s in samples]
        assert all(r.converged for r in results)
        iterations[pc] = sum(r.iterations for r in results)
    assert iterations["mg"] * 2 < iterations["ilu"]


# -- reuse, mesh independence, fallback ------------------------------------------------------


def event_count(name: str) -> int:
    return PETSc.Log.Event(name).getPerfInfo()["count"]


@pytest.mark.parametrize("dim", [2, 3])
def test_galerkin_products_by_rap_in_3d_only_and_the_same_operators(dim):
    """3D chains form their coarse operators with PETSc's "rap" (`GALERKIN_ALGORITHM`; it
    transposes P, so MatTranspose runs, once per level), 2D ones with the default; the
    operators agree with P^T A P computed by scipy, and the option does not outlive the solve
    (the user's own `-matptap_via` is left alone)."""
    PETSc.Log.begin()
    family = darcy(15 if dim == 3 else 31, dim)
    A, b = family.system(family.sample(0, 0))
    chain = ChainSolver("cg", "mg", grid=family.interior_shape)
    before = event_count("MatTranspose")
    assert chain.solve(A, b).converged
    levels = chain.hierarchy.levels
    assert event_count("MatTranspose") - before == (levels - 1 if dim == 3 else 0)
    assert not PETSc.Options().hasName("matptap_via")
    pc = chain._runner.pc
    operator = A.tocsr()
    for level in range(levels - 1, 0, -1):  # finest first
        P = to_scipy(pc.getMGInterpolation(level))
        operator = (P.T @ operator @ P).tocsr()
        coarse = to_scipy(pc.getMGSmoother(level - 1).getOperators()[0])
        assert abs(coarse - operator).max() <= 1e-12 * abs(operator).max()
    if dim == 2:
        return
    db = PETSc.Options()
    db.setValue("matptap_via", "scalable")  # a user's choice: kept, and used
    try:
        before = event_count("MatTranspose")
        fresh = ChainSolver("cg", "mg", grid=family.interior_shape)
        assert fresh.solve(A, b).converged
        assert event_count("MatTranspose") == before and db.getString("matptap_via") == "scalable"
    finally:
        db.delValue("matptap_via")


def test_the_galerkin_option_is_gone_after_a_solve_that_fails():
    family = darcy(15, 3)
    A, b = family.system(family.sample(0, 0))
    chain = ChainSolver("cg", "mg", grid=family.interior_shape)

    def fail(*args):
        assert PETSc.Options().getString("matptap_via") == "rap"  # in effect inside
        raise RuntimeError("solver failed")

    chain._runner.solve = fail
    with pytest.raises(RuntimeError, match="solver failed"):
        chain.solve(A, b)
    assert not PETSc.Options().hasName("matptap_via")


@pytest.mark.parametrize("dim", [2, 3])
def test_the_hierarchy_is_built_once_per_chain_and_only_the_numeric_ptap_redone(dim):
    """In 3D too, where the products are "rap": its transposes of P happen once per chain."""
    PETSc.Log.begin()
    family = darcy(31, 2) if dim == 2 else darcy(15, 3)
    chain = ChainSolver("cg", "mg", grid=family.interior_shape)
    levels = chain.hierarchy.levels
    pc = chain._runner.pc
    events = ("MatPtAPSymbolic", "MatPtAPNumeric", "MatLUFactorSym", "MatTranspose")
    before = {e: event_count(e) for e in events}
    handles = None
    for index in range(4):  # four different matrices, one sparsity pattern
        A, b = family.system(family.sample(0, index))
        assert chain.solve(A, b).converged
        now = (
            [pc.getMGInterpolation(level).handle for level in range(1, levels)],
            [pc.getMGSmoother(level).getOperators()[0].handle for level in range(levels)],
        )
        handles = handles or now
        assert now == handles  # the same interpolation and coarse-operator Mats every time
        assert event_count("MatPtAPSymbolic") - before["MatPtAPSymbolic"] == levels - 1
        assert event_count("MatPtAPNumeric") - before["MatPtAPNumeric"] == (levels - 1) * (
            index + 1
        )
        assert event_count("MatLUFactorSym") - before["MatLUFactorSym"] == 1  # coarse LU
        transposes = event_count("MatTranspose") - before["MatTranspose"]
        assert transposes == (levels - 1 if dim == 3 else 0)  # rap's R = P^T, formed once


def test_chains_on_one_grid_share_the_hierarchy_and_give_what_a_fresh_one_gives():
    """The hierarchy is built once per process (`shared_hierarchy`): later chains on the
    same grid, CG or GCRO-DR, must solve exactly as they would on a hierarchy of their own,
    so nothing a chain does may stay behind in the shared Mats."""
    from solvers.multigrid import shared_hierarchy

    family = darcy(31, 2)
    systems = [family.system(family.sample(0, i)) for i in range(3)]
    first = ChainSolver("cg", "mg", grid=family.interior_shape)
    assert all(first.solve(A, b).converged for A, b in systems)
    for method in ("cg", "gcrodr"):
        shared = ChainSolver(method, "mg", grid=family.interior_shape)
        assert shared.hierarchy is first.hierarchy
        shared_hierarchy.cache_clear()  # the next chain builds its own
        own = ChainSolver(method, "mg", grid=family.interior_shape)
        assert own.hierarchy is not first.hierarchy
        for A, b in systems:
            got, want = shared.solve(A, b), own.solve(A, b)
            assert got.iterations == want.iterations
            np.testing.assert_array_equal(got.x, want.x)
        first = own  # the cache now holds this one


def test_cg_mg_iterations_do_not_grow_with_the_grid():
    counts = []
    for n in (31, 63, 127):
        family = darcy(n, 2)
        systems = [family.system(family.sample(0, i)) for i in range(2)]
        results = solve_sequence(systems, method="cg", pc="mg", grid=family.interior_shape)
        assert all(r.converged for r in results)
        counts.append(max(r.iterations for r in results))
    assert max(counts) <= 1.5 * min(counts), counts


def test_a_grid_that_cannot_coarsen_runs_gamg_with_a_note():
    family = darcy(30, 2)  # 31 cells per axis
    systems = [family.system(family.sample(0, i)) for i in range(2)]
    for grid in (family.interior_shape, None):  # given, or inferred from the matrix
        chain = ChainSolver("cg", "mg", grid=grid)
        results = [chain.solve(A, b) for A, b in systems]
        assert chain.pc == "gamg" and chain.hierarchy is None
        assert chain._runner.pc.getType() == "gamg"
        assert chain.note.startswith("pc mg: the 30^2 interior grid coarsens too little")
        assert all(r.converged for r in results)
    with pytest.raises(ValueError, match="cannot be read from its stencil"):
        ChainSolver("cg", "mg").solve(sp.identity(16, format="csr") * 2.0, np.ones(16))


def test_smoother_settings_are_checked_and_all_converge():
    family = darcy(31, 2)
    systems = [family.system(family.sample(0, i)) for i in range(2)]
    for smoother in ("chebyshev", "sor", "chebyshev-sor", "gs"):
        for cycle in ("v", "w"):
            settings = MGSettings(smoother=smoother, sweeps=2, cycle=cycle)
            results = solve_sequence(
                systems, method="cg", pc="mg", grid=family.interior_shape, multigrid=settings
            )
            assert all(r.converged and r.iterations < 20 for r in results)
    with pytest.raises(ValueError, match="unknown smoother"):
        MGSettings(smoother="ilu")
    with pytest.raises(ValueError, match="unknown cycle"):
        MGSettings(cycle="f")


@pytest.mark.parametrize("dim", [2, 3])
def test_the_gauss_seidel_v_cycle_is_symmetric_and_sweeps_each_way_once(dim):
    """`gs` smooths forward before the coarse correction and backward after it: the V-cycle
    must then be a symmetric operator (u . M v = v . M u, what CG needs), which it is not
    when both sweeps run the same way (checked: this test fails with forward sweeps both
    times)."""
    family = darcy(15, dim)
    A, _ = family.system(family.sample(0, 0))
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((2, A.shape[0]))

    def apply(settings, x):
        chain = ChainSolver("cg", "mg", grid=family.interior_shape, multigrid=settings)
        pc = chain._runner.pc
        mat = chain._slot.load(A)
        pc.setOperators(mat, mat)
        pc.setUp()
        y = mat.createVecLeft()
        pc.apply(PETSc.Vec().createWithArray(x.copy()), y)
        return y.getArray().copy(), pc

    gs = MGSettings(smoother="gs")
    Mu, pc = apply(gs, u)
    Mv, _ = apply(gs, v)
    assert abs(u @ Mv - v @ Mu) <= 1e-12 * abs(u @ Mv)
    level = pc.getMGSmootherDown(1).getPC(), pc.getMGSmootherUp(1).getPC()
    assert level[0].handle != level[1].handle  # distinct down and up smoothers
    assert np.all(np.isfinite(Mu)) and u @ Mu > 0  # and positive definite on A's SPD matrix


# -- recipes end to end ----------------------------------------------------------------------


def test_pdegen_generate_accepts_pc_mg(tmp_path, write_recipe):
    path = write_recipe(small_recipe_dict(samples=6, grid={"n": 31}))
    run = [sys.executable, "-m", "pdegen.cli", "generate", str(path), "--engine", "serial"]
    result = subprocess.run(
        [*run, "--quiet", "--no-figures", "--set", "solver.pc=mg", "--set", "solver.method=cg"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "note:" not in result.stdout
    with open_dataset(tmp_path / "data" / "tiny") as ds:
        assert ds.attrs()["pc"] == "mg" and ds.attrs()["method"] == "cg"
        assert ds.stats()["converged"].all() and ds.stats()["iterations"].max() < 20


def test_a_recipe_whose_grid_cannot_coarsen_says_so_and_runs_gamg(tmp_path):
    data = small_recipe_dict(samples=4, grid={"n": 30}, solver={"method": "gmres", "pc": "mg"})
    summary = generate(recipe_from_dict(data), out=tmp_path / "d", progress=False, card=False)
    assert [line for line in summary.lines() if line.startswith("note: pc mg: the 30^2")]
    with open_dataset(tmp_path / "d") as ds:
        assert ds.attrs()["pc"] == "gamg" and ds.stats()["converged"].all()


def test_a_helmholtz_recipe_runs_gcrodr_on_the_shifted_multigrid(tmp_path):
    data = small_recipe_dict(
        family="helmholtz", samples=4, grid={"n": 31}, solver={"method": "gcrodr", "pc": "mg"}
    )
    data["problem"] = {"wavenumber": {"min": 8, "max": 12}}
    summary = generate(recipe_from_dict(data), out=tmp_path / "h", progress=False, card=False)
    assert summary.unconverged == 0 and not summary.notes
    with open_dataset(tmp_path / "h") as ds:
        assert ds.attrs()["pc"] == "mg"
        assert ds.stats()["iterations"].max() < 60


@pytest.mark.parametrize(
    "family", ["darcy", "poisson", "helmholtz", "heat", "convection-diffusion"]
)
def test_every_family_generates_with_pc_mg(family, tmp_path):
    """Heat's trajectory (one matrix per sample), Poisson's shared matrix and the
    nonsymmetric convection-diffusion operator take the hierarchy too."""
    from tests.helpers import family_recipe

    data = family_recipe(family, pc="mg")
    data["samples"] = 3
    summary = generate(recipe_from_dict(data), out=tmp_path / "d", progress=False, card=False)
    assert summary.unconverged == 0 and not summary.notes
    with open_dataset(tmp_path / "d") as ds:
        assert ds.attrs()["pc"] == "mg" and ds.stats()["iterations"].max() < 100


@pytest.mark.parametrize(
    ("family", "dim", "n", "expected"),
    [
        ("darcy", 2, 419, ("cg", "mg")),  # FNO's 421^2 nodes: above the crossover, coarsens
        ("darcy", 2, 127, ("cg", "mg")),
        ("darcy", 2, 63, ("direct", "cholesky")),  # below the measured crossover
        ("darcy", 2, 125, ("direct", "cholesky")),  # below 126, the measured crossover
        ("darcy", 3, 63, ("cg", "mg")),
        ("darcy", 3, 46, ("cg", "mg")),  # 47 cells: halved unevenly, 2.4x faster than ILU
        ("darcy", 2, 126, ("cg", "mg")),  # 127 cells: halved unevenly, 1.5x faster than LU
        ("heat", 3, 55, ("cg", "ilu")),  # below 62: ILU 1.05x faster than mg at 55^3
        ("heat", 3, 62, ("cg", "mg")),  # halved unevenly: 1.04x faster than ILU
        ("darcy", 3, 15, ("cg", "ilu")),
        ("helmholtz", 3, 47, ("gcrodr", "mg")),
        ("helmholtz", 2, 255, ("direct", "lu")),  # 2D Helmholtz: LU stays far ahead
        ("heat", 2, 255, ("direct", "cholesky")),  # one factorisation serves every step
        ("heat", 2, 511, ("direct", "cholesky")),
        ("heat", 2, 1023, ("cg", "mg")),  # above the measured crossover
        ("heat", 3, 31, ("cg", "ilu")),
        ("heat", 3, 63, ("cg", "mg")),
        ("helmholtz", 3, 15, ("gcrodr", "ilu")),  # below the crossover
        ("poisson", 3, 23, ("direct", "cholesky")),  # the shared factorisation's solves win
        ("poisson", 3, 31, ("cg", "mg")),  # 1.4x faster than its solves, 3.3x at 63^3
        ("poisson", 2, 1023, ("direct", "cholesky")),  # 2D: 4x faster at 1023^2
    ],
)
def test_auto_picks_multigrid_by_size_where_it_was_measured_faster(family, dim, n, expected):
    from pdegen.families import FAMILIES

    assert FAMILIES[family].resolve_solver("auto", "auto", dim, n) == expected
    assert (
        FAMILIES[family].resolve_solver("auto", "auto", dim) == FAMILIES[family].auto_solvers[dim]
    )
