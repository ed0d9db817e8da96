"""Recipe fuzzing: every shipped recipe mutated hundreds of ways, each run through `pdegen
generate`. A mutation that the recipe loader refuses must give exit status 2 and exactly one
line on stderr, naming the mutated field (or, for a file that is not a recipe at all, the
file), with no traceback and nothing written: no output directory, no parent of it, nothing
else in the working directory.

The mutations are deterministic: for every field of the schema, a seeded sample of bad
values of its kind (wrong types, NaN, infinities, zero, negative, huge, empty, very long,
control characters), unknown keys of every type at every level, every key deleted; whole-file
damage (empty, not UTF-8, not YAML, not a mapping, deep nesting, alias bombs and cycles,
tags, duplicate keys, impossible scalars); values no machine can hold (the memory estimate);
and seeded pairs of field mutations. Most are invalid by design and `must_refuse`: a loader
that accepted them would run nonsense. Others (zero, negative, huge values, deleted optional
keys) may be valid: those are only loaded, not run, since generating them would take minutes;
what matters is that loading them does not crash.

Speed: a subprocess per mutation would cost an interpreter start and the PETSc import each
(about a second), so the mutations run in-process through `pdegen.cli.main`, which is what
the console script calls, and mutations made on the parsed recipe are classified (valid or
not) from that data without a second YAML parse. A sample runs as real processes to show the
same contract holds there (`test_fuzzed_recipes_in_real_processes`).
"""

from __future__ import annotations

import copy
import dataclasses
import random
import signal
import subprocess
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from pdegen.cli import main
from pdegen.errors import PdegenError
from pdegen.families import FAMILIES
from pdegen.recipe.schema import Recipe, load_recipe, recipe_from_dict

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))
SEED = 12
MIN_INVALID = 200  # per recipe, the bar
PER_FIELD = 8  # bad values tried per field and recipe (of about 25 for a number)
PAIRS = 30  # random two-mutation combinations per recipe
GUARD_SECONDS = 20  # one mutation taking longer than this is a hang


@dataclass(frozen=True)
class Mutation:
    what: str  # for failure reports
    content: bytes
    fields: tuple[str, ...] = ()  # the error line must name one of these; () = the file only
    must_refuse: bool = True
    also: tuple[str, ...] = ()  # further words the line must contain
    data: Any = None  # the parsed recipe `content` holds, when the mutation was made on it


# --- the schema, walked to find every field and its kind ------------------------------------


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    kind: str  # int, float, bool, str, choice, mapping
    optional: bool
    required: bool
    per_axis: bool = False  # also takes a list, one value per axis (grid.periodic, length)


def schema(cls: Any, path: tuple[str, ...], family: str) -> list[Leaf]:
    leaves = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if cls is Recipe and f.name == "problem":
            tp = FAMILIES[family].Problem
        optional = per_axis = False
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            optional = type(None) in typing.get_args(tp)
            per_axis = any(typing.get_origin(a) is tuple for a in typing.get_args(tp))
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        here = (*path, f.name)
        if dataclasses.is_dataclass(tp):
            leaves.append(Leaf(here, "mapping", optional, required))
            leaves += schema(tp, here, family)
        elif typing.get_origin(tp) is Literal or "choices" in f.metadata:
            leaves.append(Leaf(here, "choice", optional, required))
        else:
            kind = {int: "int", float: "float"}.get(tp, tp.__name__)
            leaves.append(Leaf(here, kind, optional, required, per_axis))
    return leaves


# --- values per kind: (label, value, must_refuse) -------------------------------------------

WRONG_TYPES = [
    ("non-numeric string", "abc", True),
    ("empty string", "", True),
    ("number as text 1e308", "1e308", True),  # PyYAML reads 1e308 (no dot) as a string
    ("number with a unit", "12 GiB", True),
    ("list", [1, 2], True),
    ("empty list", [], True),
    ("mapping", {"a": 1}, True),
    ("date", "@date", True),
    ("binary", b"\x00\x01", True),
]
NUMBERS = [
    ("NaN", float("nan"), True),
    ("inf", float("inf"), True),
    ("-inf", float("-inf"), True),
    ("negative", -1, False),
    ("negative float", -0.5, False),
    ("zero", 0, False),
    ("float zero", 0.0, False),
    ("tiny", 1e-300, False),
    ("denormal", 5e-324, False),
    ("huge float", 1e308, False),
    ("huge negative float", -1e308, False),
    ("2**63", 2**63, False),
    ("10**100", 10**100, False),
    ("-10**100", -(10**100), False),
    ("2**31", 2**31, False),
]
STRINGS = [
    ("integer", 123, True),
    ("float", 1.5, True),
    ("bool", True, True),
    ("null", None, True),
    ("list", ["a"], True),
    ("mapping", {"a": "b"}, True),
    ("empty string", "", True),
    ("slash", "a/b", False),
    ("dots", "..", False),
    ("newline", "a\nb", False),
    ("NUL", "a\0b", False),
    ("lone surrogate", "\ud800", False),
    ("non-ASCII", "caf\u00e9", False),
    ("very long", "x" * 5000, False),
    ("space", "a b", False),
]
CHOICES = [
    ("unknown name", "magic", True),
    ("upper case", "@UPPER", True),
    ("padded", "@PADDED", True),
    ("empty", "", True),
    ("integer", 1, True),
    ("null", None, True),
    ("bool", False, True),
    ("list", ["auto"], True),
    ("very long", "y" * 5000, True),
]
BOOLS = [
    ("text true", "true", True),
    ("integer 1", 1, True),
    ("integer 0", 0, True),
    ("null", None, True),
    ("list", [True], True),
    ("float", 1.0, True),
]
MAPPINGS = [
    ("integer", 3, True),
    ("string", "abc", True),
    ("list", [1, 2], True),
    ("bool", True, True),
    ("empty", {}, False),
]
# unknown keys at every level: (label, key)
UNKNOWN_KEYS = [
    ("unknown name", "bogus"),
    ("integer key", 1),
    ("null key", None),
    ("float key", 1.5),
    ("empty key", ""),
    ("newline key", "a\nb"),
    ("long key", "k" * 3000),
    ("near miss", "shard-size"),
]


def _value(value: Any, current: Any) -> Any:
    """Values that depend on the field's current one."""
    import datetime

    if value == "@date":
        return datetime.date(2024, 1, 1)
    if value == "@UPPER":
        return str(current).upper() if isinstance(current, str) else "AUTO"
    if value == "@PADDED":
        return f" {current} " if isinstance(current, str) else " auto "
    return value


def _get(data: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _set(data: dict, path: tuple[str, ...], value: Any) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return data


def _delete(data: dict, path: tuple[str, ...]) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return data


def _dump(data: Any) -> bytes:
    """YAML as the shipped recipes write it (nested mappings in flow style: also the fastest
    to parse)."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
    return text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Change:
    """One edit of the parsed recipe: set `path` to `value`, or delete it (value DELETE)."""

    what: str
    path: tuple[Any, ...]
    value: Any
    field: str  # the dotted field the error must name ("" = only the file)
    must_refuse: bool
    also: tuple[str, ...] = ()

    def apply(self, data: dict) -> dict:
        if self.value is DELETE:
            return _delete(data, self.path)
        if isinstance(self.value, Merge):  # add keys to the mapping at path
            current = _get(data, self.path) if self.path else data
            merged = {**(current if isinstance(current, dict) else {}), **self.value}
            return _set(data, self.path, merged) if self.path else merged
        return _set(data, self.path, self.value)


class Merge(dict):
    """A Change value: keys to add to a mapping rather than a value to put in its place."""


DELETE = object()
UNKNOWN = ("unknown field",)
# The families' cross-field checks name the field to change, which need not be the one that
# was mutated: Helmholtz ties its wavenumber range to the coefficient, the grid and the
# resolution rule; convection-diffusion ties the scheme to the cell Peclet number; acoustic
# ties the media's contrast and the rings' width to the grid.
CROSS_CHECKS = {
    "helmholtz": (
        ("problem.coefficient", "problem.wavenumber", "problem.min_points", "grid."),
        "problem.wavenumber",
    ),
    "convection-diffusion": (("problem.epsilon", "problem.speed", "grid."), "problem.scheme"),
    # the rings' shortest wavelength in the slowest medium against the grid
    "acoustic": (
        ("problem.density", "problem.bulk_modulus", "problem.initial", "grid."),
        "problem.min_points_per_wavelength",
    ),
}


def _named(fields: tuple[str, ...], family: str) -> tuple[str, ...]:
    """The fields an error about `fields` may name: themselves, or what a cross check names."""
    mutated, named = CROSS_CHECKS.get(family, ((), ""))
    if any(f.startswith(mutated) for f in fields if f):
        return (*fields, named)
    return fields


def field_changes(base: dict, family: str, rng: random.Random) -> list[Change]:
    """Bad values of every kind for every field of the schema (a seeded sample of
    PER_FIELD of them per field), unknown keys at every level, and every key deleted."""
    out = []
    for leaf in schema(Recipe, (), family):
        dotted = ".".join(leaf.path)
        current = _get(base, leaf.path)
        values = {
            "int": WRONG_TYPES
            + NUMBERS
            + [("float for int", 2.5, True), ("3.0", 3.0, True), ("bool", True, True)],
            "float": WRONG_TYPES + NUMBERS + [("bool", False, True)],
            "str": STRINGS,
            "choice": CHOICES,
            "bool": BOOLS,
            "mapping": MAPPINGS,
        }[leaf.kind]
        if leaf.kind in ("int", "float"):
            values = [*values, ("null", None, not leaf.optional)]
        if leaf.kind in ("bool", "choice") and leaf.optional:  # null: the family's own
            # (grid.periodic, grid.layout)
            values = [v for v in values if v[1] is not None]
        if leaf.per_axis:  # a list may be a valid value per axis: refused or not, both fine
            values = [(lb, v, must and not isinstance(v, list)) for lb, v, must in values]
        if len(values) > PER_FIELD:  # a seeded share: other recipes try the others
            values = rng.sample(values, PER_FIELD)
        for label, value, must in values:
            value = _value(value, current)
            out.append(Change(f"{dotted}: {label}", leaf.path, value, dotted, must))
        if leaf.kind == "mapping":
            mixed = Merge({1: 1, "bogus": 2, None: 3})
            out.append(Change(f"{dotted}: mixed unknown keys", leaf.path, mixed, dotted, True))
            for label, key in rng.sample(UNKNOWN_KEYS, PER_FIELD // 2):
                out.append(
                    Change(f"{dotted}: {label}", (*leaf.path, key), 1, f"{dotted}.", True, UNKNOWN)
                )
        parent = _get(base, leaf.path[:-1]) if len(leaf.path) > 1 else base
        if isinstance(parent, dict) and leaf.path[-1] in parent:
            out.append(Change(f"{dotted}: missing", leaf.path, DELETE, dotted, leaf.required))
    for label, key in UNKNOWN_KEYS:
        out.append(Change(f"top level: {label}", (key,), 1, "", True, UNKNOWN))
    mixed = Merge({None: 1, 2: 2, "bogus": 3})  # keys that do not sort together
    out.append(Change("top level: mixed unknown keys", (), mixed, "", True, UNKNOWN))
    return out


def resource_mutations(base: dict, family: str) -> list[tuple[str, dict, tuple[str, ...], bool]]:
    """Valid by type and range, but far beyond any machine: refused by the memory estimate
    (or PETSc's integer range), naming the field."""
    dims = FAMILIES[family].grid_dims
    huge = [  # a grid past any memory in the family's largest dimension (1D: none is)
        (f"grid.n {n} in {d}D", _set(_set(base, ("grid", "n"), n), ("grid", "dim"), d), ("grid.n",))
        for d, n in ((3, 4096), (2, 65536))
        if d == max(dims)
    ]
    out = [
        *huge,
        ("samples 10**12", _set(base, ("samples",), 10**12), ("samples", "output.shard_size")),
        ("samples 10**100", _set(base, ("samples",), 10**100), ("samples", "output.shard_size")),
        (  # a shard is written sample by sample: only each sample's statistics are held
            "samples and shard_size 10**9",
            _set(_set(base, ("samples",), 10**9), ("output", "shard_size"), 10**9),
            ("output.shard_size", "samples"),
        ),
        (
            "max_iterations 2**31",
            _set(base, ("solver", "max_iterations"), 2**31),
            ("solver.max_iterations",),
        ),
        (
            "GCRO-DR restart 10**7",
            _set(_set(base, ("solver", "method"), "gcrodr"), ("solver", "restart"), 10**7),
            ("solver.restart",),
        ),
        (
            "recycled CG recycle 10**8",
            _set(_set(base, ("solver", "method"), "rcg"), ("solver", "recycle"), 10**8),
            ("solver.recycle",),
        ),
        (
            "GMRES restart 2**31",
            _set(_set(base, ("solver", "method"), "gmres"), ("solver", "restart"), 2**31),
            ("solver.restart",),
        ),
    ]
    # a random field's modes (the periodic families' `modes` count sine modes, at most 64)
    modal = FAMILIES[family].linear_systems
    fields = [leaf for leaf in schema(Recipe, (), family) if leaf.path[-1] == "modes" and modal]
    for leaf in fields[:2]:
        out.append(
            (f"{'.'.join(leaf.path)} 10**6", _set(base, leaf.path, 10**6), (".".join(leaf.path),))
        )
    if family == "heat":
        big = _set(_set(base, ("grid", "n"), 1000), ("problem", "steps"), 100000)
        out.append(("heat: 100000 steps on 1000^2", big, ("problem.steps", "output.shard_size")))
        one = _set(big, ("output", "shard_size"), 1)
        out.append(("heat: 100000 steps, shard_size 1", one, ("problem.steps",)))
    return [(what, data, fields, True) for what, data, fields in out]


def file_mutations(text: str) -> list[Mutation]:
    """Whole-file damage: encodings, YAML syntax, shapes, nesting, aliases, tags."""
    raw = text.encode()
    lines = text.splitlines(keepends=True)
    body = "".join(line for line in lines if not line.startswith("#"))
    deep_map = "deep: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n"
    deep_block = (
        "deep:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(600)) + "  " * 601 + "1\n"
    )
    laughs = 'l0: &l0 "lol"\n' + "".join(
        f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 10)
    )
    m = [
        ("empty file", b""),
        ("only a newline", b"\n"),
        ("only a comment", b"# nothing here\n"),
        ("null document", b"null\n"),
        ("a list", b"- name: x\n- family: darcy\n"),
        ("a scalar", b"42\n"),
        ("a string", b'"recipe"\n'),
        ("the recipe as a list item", ("- " + body.replace("\n", "\n  ")).encode()),
        ("non-UTF-8 byte in a comment", b"# caf\xe9\n" + raw),
        ("UTF-16", text.encode("utf-16")),
        ("invalid UTF-8 lead bytes", b"\xff\xfe\xfd" + raw),
        ("truncated UTF-8 sequence", raw + b"name2: \xe2\x82\n"),
        ("NUL byte", raw + b"\x00\n"),
        ("control character", raw.replace(b"name:", b"na\x07me:", 1)),
        ("tab indentation", raw + b"extra:\n\tkey: 1\n"),
        ("unclosed bracket", raw + b"broken: [1, 2\n"),
        ("unclosed quote", raw + b'broken: "abc\n'),
        ("bad indentation", raw + b"grid2:\n  n: 1\n n: 2\n"),
        ("two documents", (body + "---\n" + body).encode()),
        ("1000-deep flow mapping", raw + deep_map.encode()),
        ("600-deep block mapping", raw + deep_block.encode()),
        ("billion laughs under an unknown key", (laughs + body).encode()),
        ("recursive alias", raw + b"loop: &loop [*loop]\n"),
        ("undefined alias", raw + b"seed2: *nowhere\n"),
        ("python tag", raw + b'boom: !!python/object/apply:os.system ["touch pwned"]\n'),
        ("unhashable key", raw + b"? [1, 2]\n: 3\n"),
        ("merge of a scalar", raw + b"<<: 1\n"),
        ("larger than 64 KiB", raw + b"#" + b"x" * (64 * 1024) + b"\n"),
        ("64 KiB of open brackets", raw + b"deep: " + b"[" * (64 * 1024 - len(raw) - 8)),
    ]
    return [Mutation(f"file: {what}", content) for what, content in m]


def value_text_mutations(text: str) -> list[Mutation]:
    """Mutations that must be written as YAML text (tags, duplicates, aliases)."""
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    data = yaml.safe_load(body)
    laughs_inline = (
        "[&l0 lol, "
        + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10))
        + "]"
    )
    top = [k for k in data if k not in ("grid", "problem", "solver", "output")]
    out = [
        ("seed: impossible date", "seed: 2024-13-45\n", "seed"),
        ("samples: 5000 digits", "samples: " + "9" * 5000 + "\n", "samples"),
        ("samples: !!int ''", "samples: !!int ''\n", "samples"),
        ("seed: !!bool maybe", "seed: !!bool maybe\n", "seed"),
        ("seed: !!timestamp x", "seed: !!timestamp x\n", "seed"),
        ("samples: !!float abc", "samples: !!float abc\n", "samples"),
        ("seed: braces in a bad scalar", 'seed: !!int "{x} {0}"\n', "seed"),
        ("samples: 1000-deep list", "samples: " + "[" * 1000 + "]" * 1000 + "\n", "samples"),
        ("samples: billion laughs", f"samples: {laughs_inline}\n", "samples"),
        ("grid: cycle", "grid: &g {n: *g}\n", "grid"),
    ]
    muts = []
    for what, extra, field in out:
        rest = {k: v for k, v in data.items() if k != field}
        muts.append(Mutation(f"text: {what}", (_dump(rest).decode() + extra).encode(), (field,)))
    for key in top:  # a key given twice: PyYAML would keep the last silently
        muts.append(
            Mutation(
                f"text: {key} given twice", (body + f"{key}: {data[key]!r}\n").encode(), (key,)
            )
        )
    nested = yaml.safe_dump(data, sort_keys=False)
    for parent in ("grid", "solver", "output"):
        if parent in data and isinstance(data[parent], dict) and data[parent]:
            child = next(iter(data[parent]))
            line = f"  {child}: {yaml.safe_dump(data[parent][child]).splitlines()[0]}\n"
            anchor = nested.index(f"{parent}:\n") + len(f"{parent}:\n")
            dup = nested[:anchor] + line + nested[anchor:]
            muts.append(
                Mutation(
                    f"text: {parent}.{child} given twice", dup.encode(), (f"{parent}.{child}",)
                )
            )
    return muts


def mutations(path: Path) -> list[Mutation]:
    text = path.read_text()
    base = yaml.safe_load(text)
    family = base["family"]
    muts = file_mutations(text) + value_text_mutations(text)
    rng = random.Random(f"{SEED}-{path.stem}")
    changes = field_changes(base, family, rng)
    for c in changes:
        data = c.apply(base)
        fields = _named((c.field,), family) if c.field else ()
        muts.append(Mutation(c.what, _dump(data), fields, c.must_refuse, c.also, data))
    for what, data, fields, must in resource_mutations(base, family):
        words = () if "max_iterations" in what or "2**31" in what else ("needs about", "machine")
        muts.append(Mutation(what, _dump(data), fields, must, words, data))
    pairs = 0
    while pairs < PAIRS:  # two changes at once: the line names one of them
        a, b = rng.sample(changes, 2)
        if a.path[: len(b.path)] == b.path[: len(a.path)]:
            continue  # one inside the other: the second would undo the first
        # a top-level key that is not a name (null, 1.5, 'a\nb') is named as written: then
        # only the file is checked
        fields = () if "" in (a.field, b.field) else _named((a.field, b.field), family)
        data = b.apply(a.apply(base))
        muts.append(
            Mutation(
                f"pair: {a.what} + {b.what}",
                _dump(data),
                fields,
                a.must_refuse or b.must_refuse,
                (),
                data,
            )
        )
        pairs += 1
    return muts


# --- running one mutation -------------------------------------------------------------------


class Hang(BaseException):
    """Raised by the alarm: BaseException, so that no `except Exception` swallows it."""


def _alarm(signum, frame):
    raise Hang(f"no answer within {GUARD_SECONDS} s")


def check_in_process(mutation: Mutation, workdir: Path, capsys) -> str | None:
    """Run one mutation; None if it holds the contract, else what went wrong."""
    recipe = workdir / "recipe.yaml"
    recipe.write_bytes(mutation.content)
    out = workdir / "out" / "dataset"
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, GUARD_SECONDS)
    try:
        try:  # is it valid? (from the parsed data when there is any: a parse less)
            if mutation.data is not None:
                recipe_from_dict(copy.deepcopy(mutation.data), str(recipe))
            else:
                load_recipe(recipe)
        except PdegenError:
            pass
        except Exception:  # a crash: the CLI run below shows it
            pass
        else:
            return "validated, but must be refused" if mutation.must_refuse else "valid"
        capsys.readouterr()
        try:
            rc = main(["generate", str(recipe), "--out", str(out), "--engine", "serial", "--quiet"])
        except Hang:
            raise
        except BaseException as err:
            return f"traceback: {type(err).__name__}: {str(err)[:200]}"
    except Hang as err:
        return f"hang: {err}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    captured = capsys.readouterr()
    return contract_violation(rc, captured.out, captured.err, mutation, recipe, workdir, out)


def contract_violation(rc, stdout, stderr, mutation, recipe, workdir, out) -> str | None:
    lines = stderr.splitlines()
    if rc != 2:
        return f"exit status {rc}: {stderr[-300:]!r}"
    if "Traceback" in stderr:
        return f"traceback on stderr: {stderr[-300:]!r}"
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr: {stderr[:300]!r}"
    line = lines[0]
    if not line.startswith("pdegen: error: "):
        return f"not a pdegen error line: {line[:300]!r}"
    if str(recipe) not in line:
        return f"does not name the file: {line[:300]!r}"
    if mutation.fields and not any(f in line for f in mutation.fields):
        return f"does not name {' or '.join(mutation.fields)}: {line[:300]!r}"
    if not all(word in line for word in mutation.also):
        return f"does not say {mutation.also}: {line[:300]!r}"
    # bounded whatever was written (a bad value is shown cut to 40 characters); the longest
    # legitimate line is an unknown family's, which lists all 20 families (280 characters)
    # after the recipe's path
    if len(line) > 480:
        return f"line of {len(line)} characters: {line[:200]!r}..."
    if stdout:
        return f"wrote to stdout: {stdout[:200]!r}"
    if out.parent.exists():
        return "created the output directory (or its parent)"
    left = sorted(p.name for p in workdir.iterdir())
    if left != ["recipe.yaml"]:
        return f"left files behind: {left}"
    return None


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_fuzzed_recipe_is_refused_in_one_line(path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a recipe's relative output.dir would land here
    muts = mutations(path)
    failures, valid = [], 0
    for mutation in muts:
        problem = check_in_process(mutation, tmp_path, capsys)
        if problem == "valid":
            valid += 1
        elif problem is not None:
            failures.append(f"{mutation.what}: {problem}")
            if len(failures) >= 25:
                break
        for p in tmp_path.iterdir():  # keep going after a failure that left files
            if p.name != "recipe.yaml":
                import shutil

                shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert not failures, (
        f"{len(failures)} of {len(muts)} mutations broke the contract:\n" + "\n".join(failures)
    )
    invalid = len(muts) - valid
    assert len(muts) >= MIN_INVALID and invalid >= MIN_INVALID, (len(muts), invalid)


# --- real processes -------------------------------------------------------------------------

SAMPLE = (
    "file: empty file",
    "file: non-UTF-8 byte in a comment",
    "file: 1000-deep flow mapping",
    "file: billion laughs under an unknown key",
    "file: python tag",
    "text: samples: billion laughs",
    "text: seed: impossible date",
    "text: samples: 5000 digits",
    "grid.n 4096 in 3D",
    "samples 10**12",
    "top level: null key",
    "top level: mixed unknown keys",
    "samples: missing",
    "grid.n: missing",
)


def test_fuzzed_recipes_in_real_processes(tmp_path):
    """A sample of the mutations through `python -m pdegen.cli generate` with the default
    (Dask) engine: the exit status, stderr and the disk seen from outside the process."""
    by_name = {}
    for path in RECIPES:
        for m in mutations(path):
            by_name.setdefault(m.what, (path, m))
    assert set(SAMPLE) <= set(by_name), set(SAMPLE) - set(by_name)
    runs = []
    for i, what in enumerate(SAMPLE):
        path, m = by_name[what]
        workdir = tmp_path / f"case{i}"
        workdir.mkdir()
        recipe = workdir / "recipe.yaml"
        recipe.write_bytes(m.content)
        out = workdir / "out" / "dataset"
        proc = subprocess.Popen(
            [sys.executable, "-m", "pdegen.cli", "generate", str(recipe), "--out", str(out)],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs.append((what, m, proc, recipe, workdir, out))
        if len(runs) >= 4:  # a few at a time: the machine is shared
            _finish(runs.pop(0))
    while runs:
        _finish(runs.pop(0))


def _finish(run) -> None:
    what, m, proc, recipe, workdir, out = run
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{what}: no answer within 120 s")
    problem = contract_violation(proc.returncode, stdout, stderr, m, recipe, workdir, out)
    assert problem is None, f"{what}: {problem}"
    assert not (workdir / "pwned").exists()
