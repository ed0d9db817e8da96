"""The shape of the code: modules import only downward, and what is light stays light.

The import graph is read from the source (every import statement, those inside functions
included; those under `if TYPE_CHECKING:` excluded, as they never run), so a cycle that only
closes at run time, inside a function, is found too. What is heavy (PETSc, MPI) is checked in
a fresh interpreter through `sys.modules`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, small_recipe_dict

PACKAGES = ("pdegen", "solvers")
#: the stages of pdegen/ and what each may import from the others (besides the shared
#: vocabulary at the top: errors, messages, specs). A stage never imports a later one.
LOWER_LAYERS = {
    "pdegen.discretisation": set(),
    "pdegen.families": {"pdegen.discretisation"},
    "pdegen.recipe": {"pdegen.discretisation", "pdegen.families"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def imports_in(source: str, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules the module `name` (whose text is `source`) imports: `from a
    import b` counts as a.b where that is a module, else as a."""
    tree = ast.parse(source)
    skipped = _type_checking_blocks(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_in(p.read_text(), name, modules) for name, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    """The oracle first: hand-made graphs, and the parser on sources whose imports sit inside
    a function (counted) and under TYPE_CHECKING (not counted)."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    modules = dict.fromkeys(["pdegen.run", "pdegen.run.batch", "pdegen.specs", "m"], Path())
    inside = "def f():\n    from pdegen.run import batch\n    import pdegen.specs\n"
    assert imports_in(inside, "m", modules) == {"pdegen.run.batch", "pdegen.specs"}
    typing_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pdegen.specs\n"
    assert imports_in(typing_only, "m", modules) == set()


def test_no_import_cycle_among_the_projects_modules():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_lower_stages_import_nothing_above_them():
    """The families, their discretisation and recipe validation (limits, resources, specs)
    import nothing from the run, the dataset or the command line."""
    graph = import_graph()
    stages = ("pdegen.recipe", "pdegen.families", "pdegen.discretisation", "pdegen.run",
              "pdegen.dataset", "pdegen.cli")  # fmt: skip
    for module, imported in graph.items():
        for layer, allowed in LOWER_LAYERS.items():
            if module != layer and not module.startswith(layer + "."):
                continue
            for target in imported:
                stage = next((s for s in stages if target == s or target.startswith(s + ".")), None)
                if stage is None or stage == layer:
                    continue
                assert stage in allowed, f"{module} imports {target} (a later stage)"
    for module in ("pdegen.specs", "pdegen.recipe.limits", "pdegen.recipe.resources"):
        above = {t for t in graph[module] if t.startswith(("pdegen.run", "pdegen.dataset"))}
        assert not above, f"{module} imports {sorted(above)}"


def test_solver_spec_sits_with_the_other_specs_and_reads_the_one_settings_object():
    from pdegen.specs import SolverSpec
    from solvers.settings import DEFAULTS

    spec = SolverSpec()
    assert (spec.rtol, spec.max_iterations, spec.restart, spec.recycle) == (
        DEFAULTS.rtol,
        DEFAULTS.max_iterations,
        DEFAULTS.restart,
        DEFAULTS.recycle,
    )


HEAVY = ("petsc4py", "mpi4py", "petsc", "dask", "distributed")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    return set(out.stdout.split())


def test_loading_every_recipe_imports_no_petsc_and_no_mpi():
    recipes = sorted(str(p) for p in (ROOT / "recipes").glob("*.yaml"))
    assert len(recipes) > 10
    loaded = _modules_after(
        "from pdegen.recipe import load_recipe, recipe_from_dict\n"
        f"for path in {recipes!r}:\n    load_recipe(path)\n"
        f"recipe_from_dict({small_recipe_dict()!r})\n"
    )
    assert "pdegen.recipe.schema" in loaded and "pdegen.families.stokes" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("deep", [False, True])
def test_pdegen_check_imports_no_petsc_and_no_mpi(tmp_path, deep):
    """`pdegen check` (with --deep: re-assembly and residuals, in scipy) on a real dataset."""
    from pdegen.recipe import recipe_from_dict
    from pdegen.run.generate import generate

    recipe = recipe_from_dict(small_recipe_dict(family="heat", samples=3))
    generate(recipe, out=tmp_path / "ds", engine="serial", progress=False)
    argv = ["check", str(tmp_path / "ds"), *(["--deep", "2"] if deep else [])]
    loaded = _modules_after(
        f"from pdegen.cli import main\nassert main({argv!r}) == 0, 'check failed'\n"
    )
    assert "pdegen.dataset.check" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
