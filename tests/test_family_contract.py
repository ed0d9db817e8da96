"""The family contract does its job: declarations are checked when a family is defined, true
of what it assembles, and read by recipe validation, the shard writer, the loader and inspect."""

import dataclasses
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pdegen import open_dataset
from pdegen.errors import RecipeError
from pdegen.families import FAMILIES, Family, FieldAxes, Helmholtz, Sample
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from solvers.registry import METHODS, PRECONDITIONERS
from tests.helpers import family_recipe, run

SPD_ONLY = [("method", "cg"), ("method", "rcg"), ("pc", "icc"), ("pc", "cholesky")]


@pytest.mark.parametrize("family", ["helmholtz", "convection-diffusion"])
@pytest.mark.parametrize("field,name", SPD_ONLY)
def test_spd_only_solvers_are_rejected_at_load_for_other_operators(family, field, name):
    words = {
        "helmholtz": "symmetric but not positive definite",
        "convection-diffusion": "nonsymmetric",
    }[family]
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(family_recipe(family, **{field: name}), "r.yaml")
    table = METHODS if field == "method" else PRECONDITIONERS
    # what the operator's properties allow (MINRES: symmetry), less the block preconditioner,
    # which needs declared blocks
    properties = FAMILIES[family].operator_properties()
    usable = ", ".join(
        ["auto", *(n for n, e in table.items() if e.requires <= properties and not e.split)]
        if field == "pc"
        else [  # and no integrator: these families solve linear systems
            "auto",
            *(n for n, e in table.items() if e.requires <= properties and not e.integrator),
        ]
    )
    assert str(err.value) == (
        f"r.yaml: solver.{field}: {name!r} needs a symmetric positive definite operator; "
        f"{family}'s is {words} (allowed: {usable})"
    )


def test_direct_with_cholesky_is_rejected_for_helmholtz_and_lu_is_chosen_for_it():
    with pytest.raises(RecipeError, match=r"solver\.pc: 'cholesky' needs a symmetric positive"):
        recipe_from_dict(family_recipe("helmholtz", method="direct", pc="cholesky"))
    recipe = recipe_from_dict(family_recipe("helmholtz", method="direct", pc="auto"))
    assert Helmholtz.resolve_solver(recipe.solver.method, recipe.solver.pc, 2) == ("direct", "lu")


@pytest.mark.parametrize(("family", "allowed"), [("darcy", "lu, cholesky"), ("helmholtz", "lu")])
def test_a_direct_solve_with_an_iterative_preconditioner_is_refused_not_swapped(family, allowed):
    """`method: direct` factorises; a recipe naming jacobi or ilu with it used to run
    Cholesky or LU without a word. Now one line names the field and what it takes."""
    for pc in ("jacobi", "ilu", "mg"):
        with pytest.raises(RecipeError) as err:
            recipe_from_dict(family_recipe(family, method="direct", pc=pc))
        assert str(err.value) == (
            f"recipe: solver.pc: {pc!r} is not a factorisation, and method 'direct' runs one "
            f"(allowed: auto, {allowed})"
        )


@pytest.mark.parametrize("family", ["darcy", "poisson", "heat"])
def test_spd_families_take_every_registered_solver(family):
    for field, name in SPD_ONLY:
        recipe_from_dict(family_recipe(family, **{field: name}))


def test_a_cg_recipe_for_helmholtz_fails_at_the_cli_in_one_line(tmp_path, write_recipe):
    path = write_recipe(family_recipe("helmholtz", method="cg"))
    result = run(["generate", str(path), "--engine", "serial"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "solver.method: 'cg' needs a symmetric positive" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]  # nothing written


def test_ordering_auto_sorts_only_when_something_carries_between_solves():
    def ordering(family, **solver):
        return recipe_from_dict(family_recipe(family, **solver)).solver.ordering

    assert ordering("darcy", method="gcrodr") == "greedy"  # a recycled space, changing matrices
    assert ordering("darcy", method="cg") == "none"  # nothing carried
    assert ordering("darcy", method="cg", warm_start=True) == "greedy"
    assert ordering("poisson", method="gcrodr") == "none"  # one matrix: order cannot matter
    assert ordering("poisson", method="gcrodr", warm_start=True) == "greedy"
    assert ordering("helmholtz", method="auto") == "none"  # 2D auto: a factorisation
    assert ordering("darcy", method="cg", ordering="fast") == "fast"  # named: kept


def throwaway(**declarations):
    """Define a family on the fly; its declarations are checked by Family.__init_subclass__."""

    @dataclasses.dataclass(frozen=True)
    class Problem:
        pass

    body = {
        "name": "throwaway",
        "discretisation": "a test's",
        "Problem": Problem,
        "inputs": {"k": FieldAxes()},
        "sample": lambda self, seed, index: Sample(index, {}),
        "system": lambda self, sample: None,
        **declarations,
    }
    return type(Family)("Throwaway", (Family,), body)


@pytest.mark.parametrize(
    "declarations,message",
    [
        ({"params": ("k",)}, "'k' is declared as parameter but is already an input"),
        ({"outputs": {"k": FieldAxes()}}, "'k' is declared as output but is already an input"),
        ({"params": ("index",)}, "'index' is declared as parameter but is already reserved"),
        ({"inputs": {"k": "x, y"}}, "input 'k' must be a FieldAxes"),
        ({"outputs": {"u": FieldAxes(time=True)}}, "declares `time_stepping` exactly when"),
        ({"time_stepping": property(lambda self: None)}, "declares `time_stepping` exactly when"),
        ({"auto_solvers": {2: ("cg", "ilu"), 3: ("gmres", "ilu")}}, "method 'cg' is not usable"),
        ({"iterative_pc": "icc"}, "preconditioner 'icc' is not usable"),
        ({"auto_solvers": {2: ("direct", "ilu"), 3: ("gmres", "ilu")}}, "cannot run with pc"),
        ({"symmetric": 1}, "symmetric must be True or False"),
        ({"discretisation": None}, "discretisation must say how the PDE is discretised"),
        ({"multigrid_smoother": {2: "gs"}}, "multigrid_smoother must be one name or a name for"),
    ],
)
def test_contradictory_declarations_are_rejected_when_the_family_is_defined(declarations, message):
    with pytest.raises(TypeError, match=message):
        throwaway(**declarations)


def test_a_consistent_throwaway_family_is_accepted():
    cls = throwaway(params=("wavenumber",), symmetric=True, positive_definite=True)
    assert cls.operator_properties() == {"symmetric", "positive_definite"}


def small_instance(name: str):
    recipe = recipe_from_dict(family_recipe(name))
    return FAMILIES[name].from_recipe(recipe), recipe


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.linear_systems])
def test_declared_operator_properties_hold_for_the_assembled_matrices(name):
    family, recipe = small_instance(name)
    s0, s1 = family.sample(recipe.seed, 0), family.sample(recipe.seed, 1)
    A0, A1 = family.system(s0)[0], family.system(s1)[0]
    assert (A0 is A1) == family.shared_operator  # shared: the very same object, kept factorised
    assert (abs(A0 - A0.T).max() == 0) == family.symmetric
    if family.symmetric:
        eigs = np.linalg.eigvalsh(A0.toarray())
        assert (eigs.min() > 0) == family.positive_definite
    assert set(s0.inputs) == set(family.input_names) and set(s0.params) == set(family.params)


def test_shards_label_axes_and_the_loader_and_inspect_read_them(tmp_path):
    data = family_recipe("heat", method="cg", pc="jacobi")
    data.update(samples=2, grid={"n": 7})
    recipe = recipe_from_dict(data)
    out = tmp_path / "heat"
    generate(recipe, out=out, progress=False)
    with h5py.File(out / "shard-00000.h5", "r") as f:
        assert [d.label for d in f["outputs/solution"].dims] == ["sample", "t", "x", "y"]
        assert [d.label for d in f["inputs/coefficient"].dims] == ["sample", "x", "y"]
        assert f["grid/t"].shape == (4,)
    expected = {"coefficient": ("x", "y"), "initial": ("x", "y"), "solution": ("t", "x", "y")}
    with open_dataset(out) as ds:
        assert ds.axes == expected
        assert ds[0]["solution"].shape == (4, 9, 9)
    ins = subprocess.run(
        [sys.executable, "-m", "pdegen.cli", "inspect", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ins.returncode == 0, ins.stderr
    assert "solution: shape (4, 9, 9) per sample, axes (t, x, y), float64" in ins.stdout
    assert "coefficient: shape (9, 9) per sample, axes (x, y), float64" in ins.stdout
    # Shards written before the labels existed: the loader falls back to the declarations.
    for shard in out.glob("shard-*.h5"):
        with h5py.File(shard, "r+") as f:
            for group in ("inputs", "outputs"):
                for dataset in f[group].values():
                    for dim in dataset.dims:
                        dim.label = ""
    with open_dataset(out) as ds:
        assert ds.axes == expected


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_writes_exactly_its_declared_fields(name):
    from pdegen.run.batch import solve_batch

    family, recipe = small_instance(name)
    content = solve_batch(recipe, 0, [0, 1])
    assert list(content.inputs) == list(family.input_names)
    assert list(content.outputs) == list(family.output_names)
    assert set(content.params) == {"index", *family.params}
    for group in (content.inputs, content.outputs):
        for key, array in group.items():
            assert array.shape == (2, *family.field_shape(key))
            assert content.axes[key] == ("sample", *family.field_axes()[key])
