"""Names declared once: recipe validation, the CLI and the solve harness accept exactly the
registries' names (solvers/registry.py, pdegen.run.engines.ENGINES), so a new one is one entry."""

import re
import subprocess
import sys

import numpy as np
import pytest
from petsc4py import PETSc

from pdegen.cli import build_parser
from pdegen.errors import RecipeError
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.engines import DEFAULT_ENGINE, ENGINES, engine_for, make_engine
from solvers import ChainSolver, order_systems
from solvers.baselines import make_ksp
from solvers.petsc import configure_pc
from solvers.registry import METHODS, ORDERINGS, PRECONDITIONERS
from tests.helpers import small_recipe_dict


def allowed(message: str) -> set[str]:
    """The names an error message lists after 'allowed:'."""
    return set(re.search(r"allowed: ([^)]*)\)", message).group(1).split(", "))


@pytest.mark.parametrize(
    "field,table", [("method", METHODS), ("pc", PRECONDITIONERS), ("ordering", ORDERINGS)]
)
def test_the_recipe_accepts_exactly_auto_and_the_registered_names(field, table):
    # darcy is symmetric positive definite: every registered name applies to it, but a block
    # preconditioner (Stokes declares them) or an integrator (the periodic families' own)
    usable = (
        n for n, e in table.items()
        if not getattr(e, "split", False) and not getattr(e, "integrator", False)
    )  # fmt: skip
    for name in ("auto", *usable):
        solver = {field: name}
        if field == "method" and name != "auto" and METHODS[name].direct:
            solver["pc"] = "auto"  # the small recipe's jacobi is not a factorisation
        recipe = recipe_from_dict(small_recipe_dict(solver=solver))
        assert getattr(recipe.solver, field) in {name, *ORDERINGS}  # auto ordering: resolved
    with pytest.raises(RecipeError, match=f"solver.{field}: 'bogus' is not allowed") as err:
        recipe_from_dict(small_recipe_dict(solver={field: "bogus"}))
    assert allowed(str(err.value)) == {"auto", *table}


def test_the_harness_accepts_exactly_the_registered_names():
    A = PETSc.Mat().createAIJ((4, 4), nnz=1)
    for i in range(4):
        A[i, i] = 2.0
    A.assemble()
    b = np.ones(4)
    for method, entry in METHODS.items():
        pc = "lu" if entry.direct else "jacobi"
        if entry.integrator:  # `spectral`: the periodic families' own, no linear system
            with pytest.raises(ValueError, match="solves no linear system"):
                ChainSolver(method, pc)
            continue
        result = ChainSolver(method, pc).solve(A, b)
        assert result.converged and np.allclose(result.x, 0.5), method
    with pytest.raises(ValueError) as err:
        ChainSolver("bogus")
    assert allowed(str(err.value)) == set(METHODS)
    with pytest.raises(ValueError) as err:
        make_ksp("gcrotmk")  # registered, but not a PETSc KSP
    assert allowed(str(err.value)) == {m for m, e in METHODS.items() if e.ksp}
    for name, entry in PRECONDITIONERS.items():
        pc = PETSc.PC().create(PETSc.COMM_SELF)
        configure_pc(pc, name)
        assert pc.getType() == entry.petsc_type
    with pytest.raises(ValueError) as err:
        configure_pc(PETSc.PC().create(PETSc.COMM_SELF), "bogus")
    assert allowed(str(err.value)) == set(PRECONDITIONERS)
    features = np.random.default_rng(0).standard_normal((6, 3))
    for name in ORDERINGS:
        assert sorted(order_systems(features, name).tolist()) == list(range(6))
    with pytest.raises(ValueError) as err:
        order_systems(features, "bogus")
    assert allowed(str(err.value)) == set(ORDERINGS)


def test_the_cli_offers_exactly_the_registered_engines():
    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    engine = next(a for a in generate._actions if "--engine" in a.option_strings)
    assert set(engine.choices) == set(ENGINES) and engine.default is None
    # no --engine: the default, or Dask when a scheduler is named
    assert engine_for(None, None) == DEFAULT_ENGINE in ENGINES
    assert engine_for(None, "tcp://host:8786") == "dask"
    assert engine_for("serial", None) == "serial"
    assert f"(default: {DEFAULT_ENGINE};" in " ".join(generate.format_help().split())
    for name, entry in ENGINES.items():
        assert f"{name}: {entry.summary}" in " ".join(generate.format_help().split())
    with pytest.raises(ValueError) as err:
        make_engine("bogus")
    assert allowed(str(err.value)) == set(ENGINES)
    with make_engine("serial") as runner:
        assert runner.name == "serial" and runner.is_root


def test_names_are_read_without_starting_petsc():
    """Validating a recipe and building the CLI need the names, not PETSc or MPI."""
    code = (
        "import sys; import pdegen.recipe.schema, pdegen.cli; pdegen.cli.build_parser(); "
        "print(sorted(m for m in ('petsc4py.PETSc', 'mpi4py.MPI', 'dask') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
