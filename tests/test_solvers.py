"""Every method against a direct solve; recycling's guarantees; the python-KSP adapter."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from petsc4py import PETSc

from pdegen.families import Darcy, Poisson
from pdegen.families.poisson import PoissonProblem
from pdegen.specs import CoefficientSpec
from solvers import ChainSolver, chain_length, order_systems, solve_sequence
from solvers.baselines import make_ksp
from solvers.gcrodr import GCRODR
from solvers.petsc import MatrixSlot, _same_frozen_memory, vec_from_array
from solvers.registry import METHODS, ORDERINGS, PRECONDITIONERS
from tests.helpers import darcy_chain, drifting_chain

# Parametrisations come from the registry, so that a new method or preconditioner is tested
# by adding its entry (as scipy's iterative-solver tests run from one list of solvers).
ITERATIVE = [m for m, e in METHODS.items() if not e.direct and not e.integrator]  # linear solvers
GENERAL = [m for m in ITERATIVE if not METHODS[m].requires]  # need no symmetry or definiteness
RECYCLING_KSPS = [m for m, e in METHODS.items() if e.recycles and e.ksp]
# the block preconditioner needs a block system's blocks: tests/test_stokes.py runs it
POINTWISE = {p: e for p, e in PRECONDITIONERS.items() if not e.split}
APPROXIMATE_PCS = [p for p, e in POINTWISE.items() if not e.factorisation]


def helmholtz_like(count=5, n=24, k2=60.0):
    """-div(a grad u) - k^2 u: indefinite once k^2 passes the smallest Laplacian eigenvalue."""
    out = []
    for A, b in darcy_chain(count, n, "lognormal", seed=3):
        out.append((A - k2 * sp.identity(A.shape[0], format="csr"), b))
    return out


def convection_diffusion(count=4, n=20, speed=30.0):
    systems = []
    for i, (A, b) in enumerate(darcy_chain(count, n, "lognormal", seed=5)):
        h = 1.0 / (n + 1)
        d = sp.diags([-np.ones(n - 1), np.ones(n)], [-1, 0]) / h  # upwind first derivative
        conv = (speed + i) * sp.kron(d, sp.identity(n))
        systems.append(((A + conv).tocsr(), b))
    return systems


def assert_matches_direct(systems, results, rtol):
    for (A, b), res in zip(systems, results, strict=True):
        assert res.converged, res.reason
        exact = spla.spsolve(A.tocsc(), b)
        assert np.linalg.norm(b - A @ res.x) <= rtol * np.linalg.norm(b) * 1.000001
        cond_bound = 1e4  # the error may exceed the residual by up to the condition number
        assert np.linalg.norm(res.x - exact) <= cond_bound * rtol * np.linalg.norm(exact)
        assert res.residual <= rtol and res.seconds > 0


LINEAR = [m for m, e in METHODS.items() if not e.integrator]  # `spectral` solves no system


@pytest.mark.parametrize("method", LINEAR)
@pytest.mark.parametrize("pc", ["none", "jacobi", "ilu"])
def test_every_method_agrees_with_a_direct_solve_on_spd_systems(method, pc):
    systems = darcy_chain()
    results = solve_sequence(systems, method=method, pc=pc, rtol=1e-8, restart=30, recycle=8)
    assert_matches_direct(systems, results, 1e-8)


@pytest.mark.parametrize("pc", APPROXIMATE_PCS)
def test_recycling_methods_with_more_preconditioners(pc):
    systems = darcy_chain(count=4)
    for method in RECYCLING_KSPS:
        assert_matches_direct(systems, solve_sequence(systems, method=method, pc=pc), 1e-8)


@pytest.mark.parametrize("pc", list(POINTWISE))
def test_every_registered_preconditioner_builds_a_ksp_that_solves(pc):
    entry = PRECONDITIONERS[pc]
    method = "direct" if entry.factorisation else "gmres"
    ksp = make_ksp(method, pc)
    assert ksp.getPC().getType() == entry.petsc_type
    systems = darcy_chain(count=2)
    assert_matches_direct(systems, solve_sequence(systems, method=method, pc=pc), 1e-8)


@pytest.mark.parametrize("family", ["helmholtz", "convection"])
@pytest.mark.parametrize("method", GENERAL)
def test_indefinite_and_nonsymmetric_systems(family, method):
    systems = helmholtz_like() if family == "helmholtz" else convection_diffusion()
    if family == "helmholtz":
        eigs = np.linalg.eigvalsh(systems[0][0].toarray())
        assert eigs.min() < 0 < eigs.max()  # really indefinite
    results = solve_sequence(
        systems, method=method, pc="none", rtol=1e-8, restart=40, recycle=10, max_iterations=20000
    )
    assert_matches_direct(systems, results, 1e-8)


def test_recycling_cuts_iterations_on_a_sorted_indefinite_chain():
    systems = helmholtz_like(count=6, n=24)
    gmres = solve_sequence(systems, method="gmres", pc="none", restart=40)
    gcrodr = solve_sequence(systems, method="gcrodr", pc="none", restart=40, recycle=20)
    later_g = sum(r.iterations for r in gmres[1:])
    later_r = sum(r.iterations for r in gcrodr[1:])
    assert later_r < 0.5 * later_g, (later_r, later_g)


def test_recycled_cg_beats_plain_cg_in_iterations_on_a_chain():
    systems = darcy_chain(count=8, n=32)
    cg = solve_sequence(systems, method="cg", pc="jacobi")
    rcg = solve_sequence(systems, method="rcg", pc="jacobi", recycle=10)
    assert sum(r.iterations for r in rcg[1:]) < 0.8 * sum(r.iterations for r in cg[1:])


def test_recycled_cg_keeps_its_space_when_the_window_grows_between_solves():
    """The row blocks that hold W and the window are reallocated; W must come along."""
    from solvers.rcg import RecycledCG

    systems = darcy_chain(count=3, n=24)
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    ksp.setType("python")
    ctx = RecycledCG(recycle=6, window=8)
    ksp.setPythonContext(ctx)
    ksp.getPC().setType("jacobi")
    ksp.setTolerances(rtol=1e-8, atol=0.0, max_it=5000)
    slot, its = MatrixSlot(), []
    for i, (A, b) in enumerate(systems):
        if i == 2:
            kept = ctx.W.copy()
            ctx.window = 40  # more rows than the blocks hold
        ksp.setOperators(slot.load(A))
        x = vec_from_array(np.zeros_like(b))
        if i == 2:
            ctx._windows(40, b.size)
            np.testing.assert_array_equal(ctx.W, kept)
            # W heads the new block, so the Ritz update sees [W; window] contiguously
            assert np.shares_memory(ctx.W, ctx._rows[0][0])
        ksp.solve(vec_from_array(b), x)
        assert ksp.getConvergedReason() > 0
        assert np.linalg.norm(b - A @ x.getArray()) <= 1e-8 * np.linalg.norm(b) * 1.000001
        its.append(ksp.getIterationNumber())
    assert its[2] < its[0], its


def test_recycled_cg_deflated_with_exact_eigenvectors_needs_fewer_iterations():
    """Oracle: deflating the smallest eigenvectors (scipy's eigsh) removes the small end of
    the spectrum, so deflated CG must beat plain CG clearly on a constant-coefficient
    Laplacian, and still give the direct solution."""
    family = Poisson(31, 2, PoissonProblem())
    A, b = family.system(family.sample(0, 0))
    _, V = spla.eigsh(A.tocsc(), k=8, sigma=0, which="LM")
    plain = solve_sequence([(A, b)], method="cg", pc="none")[0]
    chain = ChainSolver("rcg", "none", recycle=8)
    assert ChainSolver("gmres").context is None
    for _ in range(2):  # the second time W goes into the row blocks the first solve made
        chain.context.deflate_with(V.T)
        deflated = chain.solve(A, b)
        assert_matches_direct([(A, b)], [deflated], 1e-8)
        assert deflated.iterations <= 0.75 * plain.iterations


@pytest.mark.parametrize("method", RECYCLING_KSPS)
def test_recycling_survives_an_abrupt_parameter_jump(method):
    smooth = darcy_chain(count=3, n=20, kind="lognormal")
    family = Darcy.square(20, CoefficientSpec(kind="threshold", high=1000.0, low=0.001))
    rough = [family.system(family.sample(1, i)) for i in range(2)]
    systems = smooth + rough + smooth[:1]
    results = solve_sequence(systems, method=method, pc="jacobi", max_iterations=50000)
    assert_matches_direct(systems, results, 1e-8)


@pytest.mark.parametrize("method", ITERATIVE)
def test_a_solve_that_fails_to_converge_is_reported(method):
    systems = darcy_chain(count=2, n=30)
    results = solve_sequence(
        systems, method=method, pc="none", max_iterations=5, restart=4, recycle=2
    )
    for res in results:
        assert not res.converged and res.residual > 1e-8


def test_warm_start_is_off_by_default_and_helps_when_on():
    systems = drifting_chain()
    cold = solve_sequence(systems, method="cg", pc="jacobi")
    warm = solve_sequence(systems, method="cg", pc="jacobi", warm_start=True)
    assert cold[0].iterations == warm[0].iterations
    assert sum(r.iterations for r in warm[1:]) < sum(r.iterations for r in cold[1:])
    assert_matches_direct(systems, warm, 1e-8)


def test_petsc_guess_builders_run_through_the_harness():
    systems = darcy_chain(count=4)
    for guess in ("fischer", "pod"):
        assert_matches_direct(systems, solve_sequence(systems, method="cg", guess=guess), 1e-8)


def test_python_ksp_from_the_options_database_gives_the_same_answers():
    systems = darcy_chain(count=3)
    reference = solve_sequence(systems, method="gcrodr", pc="jacobi", restart=30, recycle=10)
    opts = PETSc.Options()
    for key, value in {
        "t_ksp_type": "python",
        "t_ksp_python_type": "solvers.gcrodr.GCRODR",
        "t_ksp_gcrodr_restart": "30",
        "t_ksp_gcrodr_recycle": "10",
        "t_pc_type": "jacobi",
        "t_ksp_rtol": "1e-8",
        "t_ksp_atol": "0",
    }.items():
        opts.setValue(key, value)
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    ksp.setOptionsPrefix("t_")
    ksp.setFromOptions()
    for key in list(opts.getAll()):
        if key.startswith("t_"):
            opts.delValue(key)
    ctx = ksp.getPythonContext()
    assert isinstance(ctx, GCRODR) and (ctx.restart, ctx.recycle) == (30, 10)
    slot = MatrixSlot()
    for (A, b), ref in zip(systems, reference, strict=True):
        ksp.setOperators(slot.load(A))
        x = vec_from_array(np.zeros_like(b))
        ksp.solve(vec_from_array(b), x)
        assert ksp.getConvergedReason() > 0
        assert ksp.getIterationNumber() == ref.iterations
        np.testing.assert_allclose(x.getArray(), ref.x, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("every", [1, 2, 5])
def test_gcrodr_converges_whatever_the_recycle_update_schedule(every):
    systems = helmholtz_like(count=4, n=24)
    options = {"ksp_gcrodr_update_every": str(every)}
    for pc in ("none", "jacobi"):
        results = solve_sequence(systems, method="gcrodr", pc=pc, options=options)
        assert_matches_direct(systems, results, 1e-8)


def test_gcrodr_rejects_a_zero_update_schedule():
    with pytest.raises(ValueError, match="update_every"):
        GCRODR(update_every=0)
    with pytest.raises(PETSc.Error):
        solve_sequence(darcy_chain(count=1), options={"ksp_gcrodr_update_every": "0"})


@pytest.mark.parametrize("pc", ["none", "jacobi"])
def test_gcrodr_tracks_c_transpose_mu_by_small_algebra(pc):
    """The C^T (M U) block that each update carries by small matrices equals the product."""
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    ksp.setType("python")
    ctx = GCRODR(restart=20, recycle=8, update_every=1)
    ksp.setPythonContext(ctx)
    ksp.getPC().setType(pc)
    ksp.setTolerances(rtol=1e-10, atol=0.0, max_it=5000)
    slot = MatrixSlot()
    for A, b in helmholtz_like(count=2, n=20):
        ksp.setOperators(slot.load(A))
        ksp.solve(vec_from_array(b), vec_from_array(np.zeros_like(b)))
        assert ksp.getConvergedReason() > 0 and ctx.cycles > 2
        np.testing.assert_allclose(ctx._CtUy, ctx.C @ ctx.Uy.T, atol=1e-8)


def test_gcrodr_keeps_c_when_the_operator_is_unchanged():
    A, b = darcy_chain(count=1)[0]
    rng = np.random.default_rng(0)
    systems = [(A, rng.standard_normal(b.size)) for _ in range(4)]
    results = solve_sequence(systems, method="gcrodr", pc="jacobi")
    assert_matches_direct(systems, results, 1e-8)
    assert results[-1].iterations < results[0].iterations


def test_gcrodr_recycling_never_costs_iterations_on_a_fixed_operator():
    """GAMG solves Poisson in ~9 steps; that fast a fall of the residual spoils classical
    Gram-Schmidt's orthogonality, and a recycled C inheriting it once multiplied the later
    solves' iterations (9 -> 43 here). With the same matrix, minimising over span(U) plus the
    Krylov space can only help, so every solve must stay within GMRES's count."""
    family = Poisson(31, 2, PoissonProblem())
    A = family.system(family.sample(0, 0))[0]
    systems = [(A, family.system(family.sample(0, i))[1]) for i in range(6)]
    gmres = solve_sequence(systems, method="gmres", pc="gamg")
    gcrodr = solve_sequence(systems, method="gcrodr", pc="gamg")
    assert_matches_direct(systems, gcrodr, 1e-8)
    for plain, recycled in zip(gmres, gcrodr, strict=True):
        assert recycled.iterations <= plain.iterations + 1


def test_ordering_is_a_deterministic_permutation_that_shortens_the_chain():
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.standard_normal((300, 50)), axis=0)
    shuffled = walk[rng.permutation(300)]
    for method in [o for o in ORDERINGS if o != "none"]:
        order = order_systems(shuffled, method)
        assert sorted(order.tolist()) == list(range(300)) and order[0] == 0
        np.testing.assert_array_equal(order, order_systems(shuffled, method))
        assert chain_length(shuffled, order) < 0.5 * chain_length(shuffled, np.arange(300))
    greedy = chain_length(shuffled, order_systems(shuffled, "greedy"))
    fast = chain_length(shuffled, order_systems(shuffled, "fast"))
    assert fast < 1.2 * greedy


def test_greedy_ordering_matches_a_brute_force_nearest_neighbour_chain():
    rng = np.random.default_rng(2)
    f = rng.standard_normal((40, 7))
    expected, left = [0], set(range(1, 40))
    while left:
        cur = f[expected[-1]]
        nxt = min(sorted(left), key=lambda j: np.linalg.norm(f[j] - cur))
        expected.append(nxt)
        left.remove(nxt)
    assert order_systems(f, "greedy").tolist() == expected


@pytest.mark.parametrize("read_only_pattern", [True, False])
def test_matrix_slot_takes_each_systems_values_and_never_aliases_the_callers(read_only_pattern):
    """The slot copies new values into the arrays its Mat was created on: a factorisation
    must see them (the assembly raises the Mat's state) and the caller's matrix must stay
    its own, whether its pattern is the shared read-only stencil pattern or a private one."""
    systems = darcy_chain(count=3)
    slot = MatrixSlot()
    ksp = make_ksp("direct", "lu", 1e-10)
    mats = set()
    for A, b in systems:
        if not read_only_pattern:
            A = sp.csr_matrix((A.data.copy(), A.indices.copy(), A.indptr.copy()), shape=A.shape)
        before = A.data.copy()
        mat = slot.load(A)
        mats.add(id(mat))
        x = vec_from_array(np.zeros_like(b))
        ksp.setOperators(mat)
        ksp.solve(vec_from_array(b), x)
        np.testing.assert_allclose(x.getArray(), spla.spsolve(A.tocsc(), b), rtol=1e-9)
        A.data *= 2.0  # the caller changing its matrix afterwards leaves the Mat alone
        assert mat.getValuesCSR()[2] == pytest.approx(before)
    assert len(mats) == 1  # one Mat for the whole chain: symbolic work is kept


def test_a_stencil_matrix_is_recognised_by_its_patterns_memory_not_by_comparing_it():
    """scipy's CSR constructor hands back a view of the shared indices, not the array: the
    slot must still see the shared pattern (same read-only memory), and must not take a
    writeable copy, a part of it, or another dtype at the same address for it."""
    from pdegen.discretisation.operators import diffusion_operator, stencil_pattern

    A, _ = diffusion_operator(np.ones((7, 7)), 1 / 6)
    indptr, indices, _ = stencil_pattern(2, 5)
    assert A.indices is not indices  # the case identity missed
    assert _same_frozen_memory(A.indices, indices) and _same_frozen_memory(A.indptr, indptr)
    assert not _same_frozen_memory(indices.copy(), indices)  # writeable: its owner may change it
    frozen_copy = indices.copy()
    frozen_copy.setflags(write=False)
    assert not _same_frozen_memory(frozen_copy, indices)  # equal, but other memory
    assert not _same_frozen_memory(indices[:-1], indices)
    assert not _same_frozen_memory(indices.view(np.float32), indices)
    slot = MatrixSlot()
    first = slot.load(A)
    B, _ = diffusion_operator(np.full((7, 7), 2.0), 1 / 6)
    assert slot.load(B) is first and slot._same_pattern(B.indptr, B.indices)
    np.testing.assert_allclose(first.getValuesCSR()[2], B.data)


def test_a_direct_solve_short_of_rtol_is_refined_instead_of_failing():
    """A factorisation takes no initial guess (PETSc raises on one), so a direct solve whose
    true residual misses rtol is polished by iterative refinement with its own factors: it
    reports what it reached, never an error. Hilbert-like scaling makes the first residual
    miss a tight rtol; refinement must not make it worse."""
    rng = np.random.default_rng(3)
    n = 60
    scale = sp.diags(10.0 ** rng.uniform(-6, 6, n))
    A = (scale @ sp.random(n, n, density=0.3, random_state=4) @ scale + sp.identity(n)).tocsr()
    b = rng.standard_normal(n)
    one = ChainSolver("direct", "lu", rtol=1e-300).solve(A, b)  # unreachable: refined twice
    assert not one.converged and np.isfinite(one.residual)
    plain = spla.spsolve(A.tocsc(), b)
    assert one.residual <= 10 * np.linalg.norm(b - A @ plain) / np.linalg.norm(b)
