"""The compiled Krylov loops: against the Python reference loops, on distributed matrices,
and at their C boundary (checked argument layout, error paths, the library cache's key)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from petsc4py import PETSc

from pdegen.discretisation.operators import diffusion_operator
from pdegen.families import Darcy
from pdegen.specs import CoefficientSpec
from solvers import native
from solvers.baselines import make_ksp
from solvers.petsc import MatrixSlot, vec_from_array
from tests.helpers import darcy_chain, drifting_chain
from tests.native_failures import Flaky, failing_ksp, solve

MPIRUN = shutil.which("mpirun")


def solve_chain(method, pc, compiled, systems):
    ksp = make_ksp(method, pc, 1e-8, 3000, 30, 8)
    context = ksp.getPythonContext()
    context.native = compiled
    if method == "gcrodr":
        # Refresh the recycle space after every cycle: with a sparser schedule, a one-step
        # rounding difference moves the cycle boundaries and so which space is carried on,
        # which would hide what this compares (the loops, not the Python-side schedule).
        context.update_every = 1
    slot, out = MatrixSlot(), []
    for A, b in systems:
        ksp.setOperators(slot.load(A))
        x = vec_from_array(np.zeros_like(b))
        ksp.solve(vec_from_array(b), x)
        assert ksp.getConvergedReason() > 0
        out.append((ksp.getIterationNumber(), x.getArray().copy()))
    return out


def test_the_compiled_kernels_are_built_and_used():
    # CI installs a compiler, so a fallback to the Python loops there is a failure, not a skip.
    assert native.kernels() is not None, native.status()
    assert native.library_path().exists()


@pytest.mark.parametrize("method", ["gcrodr", "rcg"])
@pytest.mark.parametrize("pc", ["none", "jacobi", "ilu"])
def test_compiled_and_python_loops_give_the_same_iterates(method, pc):
    systems = drifting_chain()
    compiled = solve_chain(method, pc, True, systems)
    reference = solve_chain(method, pc, False, systems)
    for (A, b), (its_c, x_c), (its_p, x_p) in zip(systems, compiled, reference, strict=True):
        # The same arithmetic in another order of summation: equal counts up to a step at the
        # tolerance's edge, and solutions as close as the tolerance allows.
        assert abs(its_c - its_p) <= 1
        exact = spla.spsolve(A.tocsc(), b)
        for x in (x_c, x_p):
            assert np.linalg.norm(b - A @ x) <= 1e-8 * np.linalg.norm(b) * 1.000001
        assert np.linalg.norm(x_c - x_p) <= 1e-5 * np.linalg.norm(exact)


def test_a_failing_build_falls_back_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("PDEGEN_NATIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPICC", str(tmp_path / "no-such-compiler"))
    with pytest.raises(OSError):
        native.build()
    assert not any((tmp_path / "cache").glob("*.so")), "nothing half-written is left"


@pytest.mark.skipif(MPIRUN is None, reason="mpirun is installed by make install")
def test_recycling_on_a_matrix_distributed_over_two_ranks(tmp_path):
    out = tmp_path / "report.json"
    script = Path(__file__).with_name("mpi_krylov.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [MPIRUN, "-n", "2", sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["native"] and report["ranks"] == 2
    family = Darcy.square(24, CoefficientSpec(kind="lognormal"))
    systems = [family.system(family.sample(0, i)) for i in range(3)]
    for name, runs in report["runs"].items():
        for (A, b), run in zip(systems, runs, strict=True):
            assert run["reason"] > 0, name
            x = np.array(run["x"])
            assert np.linalg.norm(b - A @ x) <= 1e-8 * np.linalg.norm(b) * 1.000001, name
        # the recycled space carries over between ranks' shared solves, too
        assert runs[-1]["iterations"] < runs[0]["iterations"], name


# --- the checked interface ----------------------------------------------------------------
def altered_library(tmp_path: Path, old: str, new: str) -> Path:
    """The kernels compiled from a copy of csrc/ whose kernels.h has `old` replaced by `new`:
    a library built from another header than the one Python reads."""
    src = tmp_path / "csrc"
    src.mkdir()
    for source in native.SOURCES:
        shutil.copy(source, src / source.name)
    header = native.HEADER.read_text()
    assert old in header
    (src / native.HEADER.name).write_text(header.replace(old, new, 1))
    sources = tuple(src / source.name for source in native.SOURCES)
    return native.compile_library(sources, tmp_path / "altered.so")


@pytest.fixture
def fresh_load():
    """Forget the loaded library before and after the test, which changes what is loaded."""
    native._load.cache_clear()
    yield
    native._load.cache_clear()


def test_the_real_library_reports_the_layout_ctypes_built_from_the_header():
    lib = native.load(native.build())
    assert set(native.SIGNATURES) == {
        "pdegen_gcrodr_cycle",
        "pdegen_deflated_cg",
        "pdegen_diffusion_stencil",
        "pdegen_set_aij_values",
        "pdegen_sum_and_m2",
    }
    cycle = native.SIGNATURES["pdegen_gcrodr_cycle"]
    assert [f.name for f in cycle.fields][:6] == ["ksp", "A", "pc", "src", "dst", "n"]
    assert [f.name for f in cycle.fields if f.output] == ["done"]
    assert lib.path == native.library_path()


@pytest.mark.parametrize(
    "old, new, named",
    [
        # two fields of one type swapped: same offsets and sizes, arguments crossed
        (
            "IN(int64_t, kk) /* recycled rows */ \\\n  IN(int64_t, steps)",
            "IN(int64_t, steps) /* recycled rows */ \\\n  IN(int64_t, kk)",
            r"pdegen_gcrodr_cycle_args\.kk: field 8 is 'kk' in kernels\.h, 'steps' in the library",
        ),
        # a narrower type: every later offset moves
        (
            "IN(int64_t, k)",
            "IN(int32_t, k)",
            r"pdegen_deflated_cg_args\.k: the library has int32_t at offset 88 \(4 bytes\)",
        ),
        # a type of the same size: only the type tells
        (
            "IN(double, target)",
            "IN(int64_t, target)",
            r"pdegen_gcrodr_cycle_args\.target: the library has int64_t",
        ),
        (
            "  OUT(int64_t, reason)",
            "  OUT(int64_t, reason) \\\n  OUT(int64_t, spare)",
            r"pdegen_deflated_cg_args\.spare: only in the library",
        ),
        (
            "#define PDEGEN_ABI_VERSION 1",
            "#define PDEGEN_ABI_VERSION 2",
            r"ABI version: library 2, kernels\.h 1",
        ),
    ],
    ids=["swapped", "narrower", "same-size-type", "extra-field", "abi-version"],
)
def test_a_library_built_from_another_header_is_refused_at_load(tmp_path, old, new, named):
    path = altered_library(tmp_path, old, new)
    with pytest.raises(native.LayoutError, match=named):
        native.load(path)


def test_solvers_refuse_a_mismatched_library_instead_of_falling_back(
    tmp_path, monkeypatch, fresh_load
):
    # A stale or foreign library where the cache says this source's library is.
    A, b = darcy_chain(count=1, n=12)[0]  # assembled before: the stencil kernel refuses too
    native._load.cache_clear()  # forget the real library the assembly loaded
    monkeypatch.setenv("PDEGEN_NATIVE_CACHE", str(tmp_path / "cache"))
    bad = altered_library(tmp_path, "IN(int64_t, k)", "IN(int32_t, k)")
    native.library_path().parent.mkdir(parents=True)
    shutil.copy(bad, native.library_path())
    assert "refused" in native.status() and "pdegen_deflated_cg_args.k" in native.status()
    with pytest.raises(native.LayoutError, match="pdegen_deflated_cg_args.k"):
        native.kernels()
    with pytest.raises(native.LayoutError, match="pdegen_deflated_cg_args.k"):
        diffusion_operator(np.ones((14, 14)), 1.0 / 13)
    ksp = make_ksp("rcg", "jacobi", 1e-8, 3000, 30, 8)
    ksp.setOperators(MatrixSlot().load(A))
    with pytest.raises(PETSc.Error):  # loud, not a quiet switch to the Python loop
        solve(ksp, b)
    ksp.getPythonContext().native = False  # asking for the Python loops still works
    x = solve(ksp, b)
    assert np.linalg.norm(b - A @ x) <= 1e-8 * np.linalg.norm(b) * 1.000001


def test_a_kernel_call_must_name_every_input_with_arrays_of_its_type():
    lib = native.kernels()
    with pytest.raises(TypeError, match=r"missing inputs \['window'\], unknown inputs \['windw'\]"):
        lib.run(
            "pdegen_deflated_cg",
            **{f: None for f in native.SIGNATURES["pdegen_deflated_cg"].inputs - {"window"}},
            windw=0,
        )
    inputs = dict.fromkeys(native.SIGNATURES["pdegen_gcrodr_cycle"].inputs, 0)
    with pytest.raises(ValueError, match="float32"):
        lib.run("pdegen_gcrodr_cycle", **{**inputs, "basis": np.zeros(4, np.float32)})
    readonly = np.zeros(4)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="search: the kernel writes this array"):
        lib.run("pdegen_gcrodr_cycle", **{**inputs, "basis": None, "search": readonly})


# --- error paths ---------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["pc", "operator"])
@pytest.mark.parametrize("method", ["gcrodr", "rcg"])
def test_a_failure_inside_a_kernel_leaves_its_work_vecs_usable(method, where):
    """The kernel's PCApply or MatMult raises mid-iteration: the solve fails with a Python
    error, the work Vecs hold their own memory again (no row still placed, none read-locked),
    and the same solver then solves correctly."""
    A, b = darcy_chain(count=1, n=16)[0]
    flaky = Flaky(A)
    ksp = failing_ksp(method, where, A, flaky)
    context = ksp.getPythonContext()
    assert context.native and native.kernels() is not None
    solve(ksp, b)  # sets up the workspace and a recycled space
    ws = context._ws
    own = [v.getArray().ctypes.data for v in (ws._src, ws._dst)]
    flaky.arm(4)  # past the Python-side residual product: inside the compiled loop
    kernel = "pdegen_gcrodr_cycle" if method == "gcrodr" else "pdegen_deflated_cg"
    with pytest.raises(RuntimeError, match=f"{kernel} failed: .*injected failure at call 4"):
        context.solve(ksp, vec_from_array(b), vec_from_array(np.zeros_like(b)))
    assert flaky.failures == 1
    flaky.arm(4)  # the same through KSPSolve: a PETSc error
    with pytest.raises(PETSc.Error):
        solve(ksp, b)
    assert flaky.failures == 2
    assert [v.getArray().ctypes.data for v in (ws._src, ws._dst)] == own
    x = solve(ksp, b)
    assert ksp.getConvergedReason() > 0
    assert np.linalg.norm(b - A @ x) <= 1e-8 * np.linalg.norm(b) * 1.000001


def test_failures_inside_the_compiled_cycle_free_what_it_allocated(tmp_path):
    """Under -malloc_debug PETSc counts its allocations: a dozen solvers whose compiled
    Arnoldi cycle fails mid-way leave no more allocated than the first few did."""
    out = tmp_path / "report.json"
    script = Path(__file__).with_name("native_failures.py")
    root = str(Path(__file__).parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["native"]
    allocated = report["allocated"]
    assert report["failures"] == len(allocated)
    assert allocated[0] > 0, "PETSc is not counting (-malloc_debug)"
    assert allocated[-1] <= allocated[2], allocated


# --- the library cache ---------------------------------------------------------------------
def fake_petsc(root: Path, conf: str, variables: str = "CC = mpicc\n") -> Path:
    """The files that describe a PETSc build, at `root`."""
    for relative, text in {
        "include/petscversion.h": "#define PETSC_VERSION_MINOR 26\n",
        "include/petscconf.h": conf,
        "include/petscconfiginfo.h": 'static const char *petscconfigureoptions = "";\n',
        "lib/petsc/conf/petscvariables": variables,
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_the_library_cache_is_keyed_by_petscs_configuration_not_only_its_path(
    tmp_path, monkeypatch
):
    root = fake_petsc(tmp_path / "petsc", "#define PETSC_USE_REAL_DOUBLE 1\n")
    monkeypatch.setattr(native.library, "_petsc_dir", lambda: root)
    first = native.library_path()
    assert native.library_path() == first  # the same build: the same library
    # PETSc reconfigured in place (64-bit indices): same path, another library
    fake_petsc(root, "#define PETSC_USE_REAL_DOUBLE 1\n#define PETSC_USE_64BIT_INDICES 1\n")
    reconfigured = native.library_path()
    assert reconfigured != first
    fake_petsc(root, "#define PETSC_USE_REAL_DOUBLE 1\n", variables="CC = clang\n")
    assert native.library_path() not in (first, reconfigured)
    fake_petsc(root, "#define PETSC_USE_REAL_DOUBLE 1\n")
    assert native.library_path() == first
    # and by the header the struct layout comes from, as well as the C source
    header = tmp_path / "kernels.h"
    header.write_text(native.HEADER.read_text() + "\n/* changed */\n")
    monkeypatch.setattr(native.layout, "HEADER", header)
    assert native.library_path() != first


def test_the_value_refill_kernel_leaves_the_matrix_that_set_values_csr_does():
    """MatrixSlot refills an unchanged pattern by one copy into PETSc's array
    (`pdegen_set_aij_values`); MatSetValuesCSR, the fallback, is the oracle: the same values,
    a raised state (so a factorisation refactors), and a wrong count refused, not overrun."""
    (A, b), (A2, b2) = darcy_chain(count=2, n=12)
    slot = MatrixSlot()
    mat = slot.load(A)
    state = mat.stateGet()
    ksp = make_ksp("direct", "lu", 1e-12)
    ksp.setOperators(mat)
    x = vec_from_array(np.zeros_like(b))
    ksp.solve(vec_from_array(b), x)
    assert slot.load(A2) is mat and mat.stateGet() > state
    oracle = PETSc.Mat().createAIJ(size=A.shape, csr=(A.indptr, A.indices, A.data))
    oracle.assemble()
    oracle.setValuesCSR(A2.indptr, A2.indices, A2.data)
    oracle.assemble()
    np.testing.assert_array_equal(mat.getValuesCSR()[2], oracle.getValuesCSR()[2])
    ksp.solve(vec_from_array(b2), x)  # refactored: the second system's solution
    np.testing.assert_allclose(x.getArray(), spla.spsolve(A2.tocsc(), b2), rtol=1e-10)
    with pytest.raises(RuntimeError, match="pdegen_set_aij_values failed"):
        native.kernels().run("pdegen_set_aij_values", A=mat.handle, values=np.zeros(5), nnz=5)
