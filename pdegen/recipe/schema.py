"""Load and validate a recipe (YAML) into a frozen, fully-resolved `Recipe`.

The schema is written as dataclasses so that the defaults, types and constraints live in one
place, and the resolved recipe (every default filled in) can be stored with each shard as
provenance. Validation walks the dataclass fields and reports the first bad field as
`<file>: <dotted.field>: <what is wrong> (<what is allowed>)`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from pdegen.errors import RecipeError
from pdegen.families import FAMILIES
from pdegen.messages import field_key, number_hint, show
from pdegen.recipe.limits import check_limits
from pdegen.recipe.reader import read_recipe_file
from pdegen.recipe.resources import check_memory
from pdegen.specs import GridSpec, SolverSpec, rule

_field = rule


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """The share of samples in each split (they must sum to 1); `pdegen.dataset.splits` says how a
    sample's split is drawn from its own seed, so that adding samples never moves one."""

    train: float = _field(0.8, ge=0.0, le=1.0)
    valid: float = _field(0.1, ge=0.0, le=1.0)
    test: float = _field(0.1, ge=0.0, le=1.0)

    def fractions(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    dir: str = "data"
    #: samples per shard (one HDF5 file); None: chosen by `pdegen.recipe.sharding` when the
    #: recipe is resolved (the stored recipe holds the number)
    shard_size: int | None = _field(None, ge=1)
    splits: SplitSpec = dataclasses.field(default_factory=SplitSpec)
    #: what the stored inputs and outputs are converted to (solves are always float64)
    dtype: Literal["float64", "float32"] = "float64"
    #: an HDF5 filter of h5py's own (with the byte-shuffle filter before it)
    compression: Literal["none", "gzip", "lzf"] = "none"


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    family: str = _field(choices=tuple(FAMILIES))
    grid: GridSpec = _field()
    samples: int = _field(ge=1)
    seed: int = _field(0, ge=0)
    problem: Any = None  # the family's Problem dataclass, validated once `family` is known
    solver: SolverSpec = dataclasses.field(default_factory=SolverSpec)
    output: OutputSpec = dataclasses.field(default_factory=OutputSpec)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data. Left out at their defaults: `solver.ranks_per_sample`
        (1), `grid.layout` (the family's own), and `solver.batch_size` where it is
        `output.shard_size` or more (each shard one batch, as every dataset was cut before
        the two were told apart), so that recipes written before they existed keep their
        hash and their datasets still resume; any other value is kept, since it changes the
        bits (`pdegen.run.group`, `pdegen.run.plan`)."""
        data = dataclasses.asdict(self)
        if data["solver"].get("ranks_per_sample") == 1:
            del data["solver"]["ranks_per_sample"]
        family = FAMILIES.get(self.family)
        if data["grid"].get("layout") in (None, family.layouts[0] if family else "nodes"):
            data["grid"].pop("layout", None)  # the family's own, left out: hashes as before
        batch, shard = data["solver"].get("batch_size"), data["output"]["shard_size"]
        if batch is None or (shard is not None and batch >= shard):  # a batch is at most a shard
            data["solver"].pop("batch_size", None)
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): stored in every shard and hashed for resume checks."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def dataset_dir(self, out: str | Path | None = None) -> Path:
        return Path(out if out is not None else self.output.dir) / self.name


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _describe(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp` and return it converted (ints to floats)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and type(None) in typing.get_args(tp):
            return None
        sequences = [a for a in options if typing.get_origin(a) is tuple]
        if isinstance(value, list | tuple) and sequences:  # one value per axis
            return _convert(value, sequences[0], where)
        return _convert(value, options[0], where)
    if origin is tuple:  # tuple[X, ...]: a YAML list of X
        if not isinstance(value, list | tuple) or not value:
            raise RecipeError(f"{where}: expected a non-empty list, got {show(value)}")
        (item, _) = typing.get_args(tp)
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise RecipeError(
                f"{where}: {show(value)} is not allowed (allowed: {', '.join(map(str, allowed))})"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping, got {show(value)}")
        return _build(tp, value, where + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: expected true or false, got {show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(
                f"{where}: expected an integer, got {show(value)}{number_hint(value)}"
            )
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecipeError(f"{where}: expected a number, got {show(value)}{number_hint(value)}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond 1.8e308
            number = math.inf
        if not math.isfinite(number):
            raise RecipeError(f"{where}: expected a finite number, got {show(value)}")
        return number
    if tp is str:
        if not isinstance(value, str) or not value:
            raise RecipeError(f"{where}: expected a non-empty string, got {show(value)}")
        return value
    raise TypeError(f"unsupported schema type {tp!r} at {where}")  # a bug in the schema


def _check_rules(value: Any, rules: dict[str, Any], where: str) -> None:
    if value is None:
        return
    if isinstance(value, tuple):  # one value per axis: each obeys the field's rules
        for i, item in enumerate(value):
            _check_rules(item, rules, f"{where}[{i}]")
        return
    if "choices" in rules and value not in rules["choices"]:
        raise RecipeError(
            f"{where}: {show(value)} is not allowed (allowed: {', '.join(rules['choices'])})"
        )
    for name, test, word in (
        ("gt", lambda v, b: v > b, "greater than"),
        ("ge", lambda v, b: v >= b, "at least"),
        ("lt", lambda v, b: v < b, "less than"),
        ("le", lambda v, b: v <= b, "at most"),
    ):
        if name in rules and not test(value, rules[name]):
            raise RecipeError(
                f"{where}: {show(value)} is out of range (must be {word} {rules[name]})"
            )


@functools.cache
def _type_hints(cls: Any) -> dict[str, Any]:
    """Evaluated once per class: evaluating the string annotations was a tenth of a load."""
    return typing.get_type_hints(cls)


def _build(cls: Any, data: dict[str, Any], prefix: str = "") -> Any:
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=field_key)  # keys may be ints, null, booleans
    if unknown:
        raise RecipeError(
            f"{prefix}{field_key(unknown[0])}: unknown field (allowed: {', '.join(fields)})"
        )
    values = {}
    for name, field in fields.items():
        where = prefix + name
        if name not in data:
            no_default = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise RecipeError(f"{where}: missing (expected {_describe(hints[name])})")
            continue
        value = _convert(data[name], hints[name], where)
        _check_rules(value, dict(field.metadata), where)
        values[name] = value
    return cls(**values)


def recipe_from_dict(data: Any, source: str = "recipe") -> Recipe:
    """Validate a parsed recipe mapping; errors are prefixed with `source`."""
    if data is None:
        raise RecipeError(f"{source}: empty recipe (expected a mapping of recipe fields)")
    if not isinstance(data, dict):
        raise RecipeError(
            f"{source}: expected a mapping of recipe fields at the top level, got {show(data)}"
        )
    try:
        recipe = _build(Recipe, {k: v for k, v in data.items() if k != "problem"})
        family = FAMILIES[recipe.family]
        problem = data.get("problem", {})
        if not isinstance(problem, dict):
            raise RecipeError(f"problem: expected a mapping, got {show(problem)}")
        recipe = dataclasses.replace(recipe, problem=_build(family.Problem, problem, "problem."))
        recipe = dataclasses.replace(recipe, grid=family.check_grid(recipe.grid))
        check_limits(recipe)  # what the per-field rules cannot say: sizes and overflow
        recipe = _with_sizes(recipe)
        check_memory(recipe)  # and whether it fits this machine
        family.check(recipe)
        from pdegen.recipe.ranks import check_across_ranks

        check_across_ranks(recipe, family)
        recipe = dataclasses.replace(
            recipe,
            solver=family.settle_solver(
                recipe.solver,
                recipe.grid.dim,
                recipe.grid.n,
                family.multigrid_layout_of(recipe.grid.layout),
            ),
        )
        total = sum(recipe.output.splits.fractions().values())
        if abs(total - 1.0) > 1e-9:
            terms = " + ".join(f"output.splits.{k}" for k in recipe.output.splits.fractions())
            raise RecipeError(f"{terms} = {total:g} (the fractions must sum to 1)")
    except RecipeError as err:
        raise RecipeError(f"{source}: {err}") from None
    if not all(c.isalnum() or c in "-_." for c in recipe.name) or recipe.name.startswith("."):
        raise RecipeError(
            f"{source}: name: {show(recipe.name)} must use only letters, digits, "
            "'-', '_' and '.' (it names the dataset directory)"
        )
    return recipe


def _with_sizes(recipe: Recipe) -> Recipe:
    """The recipe with `output.shard_size` and `solver.batch_size` resolved
    (`pdegen.recipe.sharding`); a batch named larger than a shard named is refused."""
    from pdegen.recipe.sharding import with_resolved_sizes

    shard, batch = recipe.output.shard_size, recipe.solver.batch_size
    if shard is not None and batch is not None and batch > shard:
        raise RecipeError(
            f"solver.batch_size: {batch} is more than output.shard_size: {shard} (a batch "
            "never spans two shards: at most the shard size)"
        )
    return with_resolved_sizes(recipe)


def apply_settings(data: dict[str, Any], settings: list[str]) -> dict[str, Any]:
    """`data` with each "dotted.path=value" of `settings` applied (value parsed as a YAML
    scalar), for `pdegen generate --set`; the result is validated like the file itself, and
    the values end up in the resolved recipe stored with every shard."""
    data = copy.deepcopy(data)
    for setting in settings:
        path, sep, text = setting.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            raise RecipeError(f"--set {setting}: expected dotted.path=value (e.g. grid.n=255)")
        if len(text) > 1000:
            raise RecipeError(f"--set {path}: the value is longer than 1000 characters")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise RecipeError(f"--set {setting}: {text!r} is not a YAML value") from None
        if isinstance(value, dict | list):
            raise RecipeError(
                f"--set {setting}: expected a single value, not a {type(value).__name__}"
            )
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise RecipeError(f"--set {setting}: {where} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return data


def load_recipe(path: str | Path, settings: list[str] | None = None, **overrides: Any) -> Recipe:
    """Read and validate a recipe file; `overrides` (samples, seed) replace top-level fields,
    `settings` ("dotted.path=value", `--set`) any field."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    data = read_recipe_file(path)
    if isinstance(data, dict):
        data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        if settings:
            data = apply_settings(data, settings)
    return recipe_from_dict(data, str(path))
