"""Docs match code: the defaults, choices and ranges docs/format.md documents are the
dataclasses' (read from its tables), the documented sigma formula is what the fields draw, the
families' declarations are what the docs say, and every CLI flag the README shows exists."""

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml

from pdegen.discretisation.fields import gaussian_random_field, sample_rng
from pdegen.families import FAMILIES
from pdegen.families.acoustic import MediumSpec, RingsSpec
from pdegen.families.channel import CylindersSpec
from pdegen.families.stokes import ForceSpec, ViscositySpec
from pdegen.recipe.schema import Recipe, SplitSpec
from pdegen.run.engines import DEFAULT_ENGINE, ENGINES
from pdegen.specs import CoefficientSpec, FieldSpec, NewtonSpec, PeriodicFieldSpec, RangeSpec

ROOT = Path(__file__).parent.parent
FORMAT = (ROOT / "docs" / "format.md").read_text()
README = (ROOT / "README.md").read_text()
SPECS = {
    cls.__name__: cls
    for cls in (
        FieldSpec,
        CoefficientSpec,
        RangeSpec,
        SplitSpec,
        NewtonSpec,
        PeriodicFieldSpec,
        ViscositySpec,
        ForceSpec,
        MediumSpec,
        RingsSpec,
        CylindersSpec,
    )
}
RULES = {"≥": "ge", ">": "gt", "≤": "le", "<": "lt"}


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table in `text`: its rows of stripped cells, header first."""
    found, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):  # not the |---| row
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


def table(text: str, *header: str) -> list[dict[str, str]]:
    """The rows (as header -> cell) of the one table whose header starts with `header`."""
    matches = [t for t in tables(text) if tuple(t[0][: len(header)]) == header]
    assert len(matches) == 1, f"expected one table headed {header}, found {len(matches)}"
    head, *rows = matches[0]
    return [dict(zip(head, row, strict=True)) for row in rows]


def code(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def documented_rules(cell: str) -> dict[str, float]:
    number = r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)"
    return {RULES[s]: float(v) for s, v in re.findall(rf"(≥|≤|>|<)\s*{number}", cell)}


def default_of(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def choices_of(cls, field: dataclasses.Field) -> set[str] | None:
    hint = typing.get_type_hints(cls)[field.name]
    if "choices" in field.metadata:
        return set(field.metadata["choices"])
    if typing.get_origin(hint) is typing.Literal:
        return set(typing.get_args(hint))
    if hint is bool:
        return {"true", "false"}
    return None


def evaluate(expression: str, **names: float) -> float:
    """A documented formula (Python syntax, in a code span) at the given values."""
    return eval(expression, {"__builtins__": {}}, names)


def check_row(cls, name: str, row: dict[str, str], where: str) -> None:
    """One documented field against the dataclass: default, choices and range."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    actual, cell = default_of(field), row["default"]
    spans = code(cell)
    if (cls, name) in COMPUTED:
        assert actual is None, f"{where}: the code has a fixed default {actual!r}"
        COMPUTED[cls, name](spans[0])
    elif cell == "required":
        assert actual is dataclasses.MISSING, f"{where}: documented required, code {actual!r}"
    elif len(spans) == 2:  # a spec type and the values that differ from its defaults
        spec = SPECS[spans[0]]
        assert type(actual) is spec, f"{where}: documented {spans[0]}, code {type(actual)}"
        assert actual == spec(**yaml.safe_load(spans[1])), f"{where}: {actual} vs {cell}"
    else:
        assert len(spans) == 1, f"{where}: default {cell!r} is not one code span"
        assert yaml.safe_load(spans[0]) == actual, f"{where}: documented {cell}, code {actual!r}"
    code_rules = {k: float(v) for k, v in field.metadata.items() if k in RULES.values()}
    assert documented_rules(row["allowed"]) == code_rules, f"{where}: range {row['allowed']!r}"
    choices = choices_of(cls, field)
    if choices is not None:
        assert set(code(row["allowed"])) == choices, f"{where}: choices {row['allowed']!r}"


def check_sigma(expression: str) -> None:
    """The documented default sigma is the one the field is drawn with (2D and 3D)."""
    for dim in (2, 3):
        points = [np.linspace(0.0, 1.0, 9)] * dim
        for alpha, tau in ((2.0, 3.0), (2.5, 5.0)):
            sigma = evaluate(expression, alpha=alpha, tau=tau, dim=dim)
            default = gaussian_random_field(sample_rng(1, 2), points, alpha, tau)
            documented = gaussian_random_field(sample_rng(1, 2), points, alpha, tau, sigma)
            np.testing.assert_array_equal(default, documented, err_msg=f"{expression}, {dim}D")


def check_modes(expression: str) -> None:
    for n, dim in ((7, 2), (5, 3)):
        points = [np.linspace(0.0, 1.0, n + 2)] * dim
        modes = evaluate(expression, n=n)
        default = gaussian_random_field(sample_rng(0, 0), points, 2.0, 3.0)
        documented = gaussian_random_field(sample_rng(0, 0), points, 2.0, 3.0, modes=modes)
        np.testing.assert_array_equal(default, documented)


COMPUTED = {(FieldSpec, "sigma"): check_sigma, (FieldSpec, "modes"): check_modes}


def test_documented_recipe_fields_are_the_code_defaults():
    rows = {code(r["field"])[0]: r for r in table(FORMAT, "field", "default", "allowed")}
    expected = []
    for field in dataclasses.fields(Recipe):
        hint = typing.get_type_hints(Recipe)[field.name]
        if dataclasses.is_dataclass(hint):
            expected += [(hint, f"{field.name}.{f.name}", f.name) for f in dataclasses.fields(hint)]
        else:
            expected.append((Recipe, field.name, field.name))
    assert set(rows) == {path for _, path, _ in expected}
    for cls, path, name in expected:
        if path != "problem":  # the family's section: its own table
            check_row(cls, name, rows[path], path)


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_documented_spec_fields_are_the_code_defaults(spec):
    header = f"`{spec.__name__}` field"
    rows = {code(r[header])[0]: r for r in table(FORMAT, header)}
    # a spec derived from another documents the fields it adds or redefines
    assert set(rows) == set(spec.__annotations__)
    for name, row in rows.items():
        check_row(spec, name, row, f"{spec.__name__}.{name}")


def test_documented_problem_sections_are_each_familys_defaults():
    rows = table(FORMAT, "family", "`problem` field")
    documented = {(code(r["family"])[0], code(r["`problem` field"])[0]): r for r in rows}
    expected = {
        (name, f.name) for name, cls in FAMILIES.items() for f in dataclasses.fields(cls.Problem)
    }
    assert set(documented) == expected
    for (family, name), row in documented.items():
        check_row(FAMILIES[family].Problem, name, row, f"{family}: problem.{name}")


def test_documented_sigma_formula_is_the_one_the_fields_use():
    prose = re.search(r"σ = τ\^\(([^)]*)\) by default", FORMAT)
    assert prose, "docs/format.md no longer states the default sigma"
    expression = re.sub(r"\bd\b", "dim", prose.group(1).replace("α", "alpha").replace("−", "-"))
    check_sigma(f"tau ** ({expression})")


def test_documented_fields_axes_and_operators_are_the_families_declarations():
    rows = table(FORMAT, "family", "`/inputs`")
    assert {code(r["family"])[0] for r in rows} == set(FAMILIES)
    for row in rows:
        cls = FAMILIES[code(row["family"])[0]]
        assert set(code(row["`/inputs`"])) == set(cls.inputs)
        assert set(code(row["`/outputs` (axes)"])) == set(cls.outputs)
        assert set(code(row["`/params`"])) == set(cls.params)
        timed = any(axes.time for axes in cls.outputs.values())
        assert ("(t, " in row["`/outputs` (axes)"]) == timed, row
        words = row["operator"]
        assert ("nonsymmetric" not in words) == cls.symmetric, row
        assert ("positive definite" in words) == cls.positive_definite, row
        assert ("one matrix for every sample" in words) == cls.shared_operator, row


def test_readme_auto_solver_table_is_the_families_declaration():
    rows = table(README, "family", "`method: auto` in 1D")
    named = [name for r in rows for name in code(r["family"])]
    assert sorted(named) == sorted(FAMILIES)
    for row in rows:
        for name in code(row["family"]):
            cls = FAMILIES[name]
            for dim in (1, 2, 3):
                cell = row[f"`method: auto` in {dim}D"]
                expected = cls.auto_solvers.get(dim)
                assert (tuple(code(cell)) == expected) if expected else cell == "—", (name, dim)
            assert code(row["`pc: auto` for a named iterative method"]) == [cls.iterative_pc]


def test_every_cli_flag_the_readme_shows_exists_and_every_flag_is_shown():
    flags = set()
    for command in ("generate", "export"):
        help_text = subprocess.run(
            [sys.executable, "-m", "pdegen.cli", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        flags |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text)) - {"--help"}
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", README))
    assert shown == flags, f"README only: {shown - flags}; --help only: {flags - shown}"
    engines = set(re.findall(r"--engine (\w+)", README))
    assert engines | {DEFAULT_ENGINE} == set(ENGINES)


BENCHMARKS = ROOT / "docs" / "benchmarks.md"


def benchmark_headings(text: str) -> list[str]:
    """The headings of a markdown file, code blocks skipped."""
    headings, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            headings.append(line.lstrip("#").strip())
    return headings


def cited_sections(text: str) -> list[str]:
    """The section names a text cites: `docs/benchmarks.md, "A" and "B"` and `("A" in
    docs/benchmarks.md)`, across comment line breaks."""
    flat = re.sub(r"\s*\n\s*(#:?|\*)?\s*", " ", text)
    cited = []
    for match in re.finditer(
        r"benchmarks\.md\)?,\s*((?:\"[^\"]+\"(?:,?\s*(?:and the|and)?\s*)?)+)", flat
    ):
        cited += re.findall(r"\"([^\"]+)\"", match.group(1))
    cited += re.findall(r"\(\"([^\"]+)\" in docs/benchmarks\.md", flat)
    return cited


def test_the_cited_section_finder_reads_every_form_of_citation():
    text = (
        'a (docs/benchmarks.md, "Where a sample\'s time goes"): b\n'
        '    #: measured in docs/benchmarks.md, "Helmholtz:\n    #: shifted-Laplacian multigrid")\n'
        '(docs/benchmarks.md, "auto by size" and "Solve time")\n'
        '("Heat\'s implicit step" in docs/benchmarks.md)'
    )
    assert cited_sections(text) == [
        "Where a sample's time goes",
        "Helmholtz: shifted-Laplacian multigrid",
        "auto by size",
        "Solve time",
        "Heat's implicit step",
    ]
    assert benchmark_headings("# A\n```\n# not a heading\n```\n## B (x)\n") == ["A", "B (x)"]


def test_every_section_of_the_benchmarks_reference_that_the_code_cites_exists():
    """docs/benchmarks.md is the reference the code cites by section name; the history is in
    docs/benchmarks-log.md. A renamed or removed section would leave a dangling citation."""
    headings = benchmark_headings(BENCHMARKS.read_text())
    sources = [
        *[
            p
            for d in ("pdegen", "solvers", "benchmarks", "scripts")
            for p in (ROOT / d).rglob("*.py")
        ],
        ROOT / "README.md",
        *[p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("benchmarks")],
    ]
    cited = {(name, p.relative_to(ROOT)) for p in sources for name in cited_sections(p.read_text())}
    assert len({name for name, _ in cited}) >= 10  # the finder finds the citations
    missing = sorted(
        f"{where}: {name!r}"
        for name, where in cited
        if not any(h.startswith(name) for h in headings)
    )
    assert not missing, "cited sections missing from docs/benchmarks.md: " + "; ".join(missing)
    assert (ROOT / "docs" / "benchmarks-log.md").is_file()
