"""The compiled Krylov loops against the Python reference loops, and on distributed matrices."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pdegen.families import Darcy
from pdegen.specs import CoefficientSpec
from solvers import native
from solvers.baselines import make_ksp
from solvers.petsc import MatrixSlot, vec_from_array
from tests.test_solvers import drifting_chain

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
