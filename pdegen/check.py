"""`pdegen check PATH`: verify a generated dataset without trusting it.

Why a separate verifier: the loader is built for speed and assumes the dataset is what its
index says (it reads the index, opens the shards it lists and serves their rows). A dataset
that was copied, synced, edited by hand or half-overwritten would be served without a word.
This module assumes nothing: it opens index.json and every file itself, recomputes what can be
recomputed (checksums, the schema of docs/format.md from the recipe stored in the shards, the
seeded splits, the field statistics, the plan's batches) and compares. With `deep` it also
re-assembles some samples' linear systems from their *stored* inputs and checks that the
stored solution solves them, and that the stored inputs are the recipe's own draw.

Every finding is a `Problem` (one line, `<path>: <what is wrong>`) and checking goes on: a bad
shard never stops the checks of the others. Samples flagged as not converged are part of the
format (stored on purpose, for inspection), so they are a notice in the summary, not a
problem; a sample flagged converged whose stored residual exceeds `solver.rtol` is a problem.
Nothing here writes to the dataset, takes its lock or imports PETSc.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp

from pdegen.card import CARD_NAME
from pdegen.errors import PdegenError
from pdegen.families import Family, Sample, family_from_recipe
from pdegen.families.heat import Heat
from pdegen.families.newton import NewtonFamily
from pdegen.fieldstats import finish, merge_all
from pdegen.loader import check_format_version
from pdegen.lock import LOCK_NAME, holder_line
from pdegen.plan import PLAN_NAME, read_plan
from pdegen.recipe import Recipe, recipe_from_dict
from pdegen.shards import (
    FAILURES_NAME,
    FORMAT_VERSION,
    INDEX_NAME,
    describe_shard,
    file_sha256,
    shard_name,
)
from pdegen.splits import SPLITS, assign_splits
from solvers.registry import METHODS, PRECONDITIONERS

#: the directory of figures `pdegen show` writes (PNG files only)
FIGURES_DIR = "figures"
SHARD_PATTERN = re.compile(r"shard-(\d{5,})\.h5")
TEMPORARY_PATTERN = re.compile(r"\..+\.tmp-.+")  # `pdegen.shards._temporary_name`

#: problem lines printed per kind before the rest of that kind is only counted
LINES_PER_KIND = 10
#: c of the documented loss (docs/format.md, "Checking a dataset"): the stored pair (inputs,
#: solution) satisfies ||b - A u|| <= rtol ||b|| + c eps (|| |A| |u| || + ||b||)
ROUNDING_FACTOR = 4.0
#: eps per storage dtype: float32's unit roundoff; for float64 storage only the rounding of
#: the two residual computations (the writer's and this one, rows of at most 7 terms:
#: 2 gamma_7 < 16 * 2^-53 = c eps)
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-51}
#: /stats columns and their dtypes (docs/format.md, "Inside a shard")
STATS_COLUMNS = {
    "iterations": np.dtype("int32"),
    "residual": np.dtype("float64"),
    "converged": np.dtype("bool"),
    "reason": np.dtype("S32"),
    "seconds": np.dtype("float64"),
    "solves": np.dtype("int32"),
    "chain_position": np.dtype("int32"),
}
GROUPS = ("inputs", "outputs", "params", "stats", "grid")
VERSION_KEYS = ("python", "petsc", "petsc4py", "mpi4py", "numpy", "scipy", "h5py", "dask", "pdegen")
#: index.json keys with their JSON types; the last three exist since output.splits does
INDEX_KEYS: dict[str, tuple[type, ...]] = {
    "format_version": (int,),
    "dataset": (str,),
    "family": (str,),
    "recipe_sha256": (str,),
    "samples": (int,),
    "ordering_seconds": (int, float),
    "chain_length": (int, float, type(None)),
    "shards": (list,),
}
SPLIT_KEYS: dict[str, tuple[type, ...]] = {
    "split_fractions": (dict,),
    "splits": (dict,),
    "field_stats": (dict,),
}
#: h5py's errors on a damaged file, a missing member or an unexpected type
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError)


@dataclass
class Problem:
    kind: str  # groups the lines for the per-kind cap
    where: Path
    what: str

    def line(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class DeepResult:
    """One re-assembled sample: its worst relative residual (over the steps of a trajectory)
    and the bound it was held to."""

    index: int
    residual: float
    bound: float


@dataclass
class CheckReport:
    """What `check_dataset` found; `ok` when no problem."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    samples: int = 0
    shards: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    unconverged: list[int] = field(default_factory=list)
    deep_requested: int = 0
    deep: list[DeepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, where: Path, what: str) -> None:
        self.problems.append(Problem(kind, where, what))

    def lines(self, per_kind: int = LINES_PER_KIND) -> list[str]:
        """One line per problem, in the order found; past `per_kind` lines of one kind the
        rest of that kind is counted in one closing line (a dataset with 10000 bad shards
        says so in 11 lines, not 10000)."""
        shown: Counter[str] = Counter()
        out = []
        for problem in self.problems:
            shown[problem.kind] += 1
            if shown[problem.kind] <= per_kind:
                out.append(problem.line())
        for kind, count in shown.items():
            if count > per_kind:
                out.append(f"{self.path}: ... and {count - per_kind} more problems of kind {kind}")
        return out

    def summary(self) -> str:
        """The one line of a clean check."""
        splits = ", ".join(f"{name} {count}" for name, count in self.splits.items())
        parts = [
            f"{self.path}: ok: {self.samples} samples in {self.shards} shard(s)"
            + (f" (splits: {splits})" if splits else ""),
            f"{len(self.unconverged)} flagged as not converged"
            + (f" (samples {_listed(self.unconverged)})" if self.unconverged else ""),
        ]
        if self.deep_requested:
            worst = max(self.deep, key=lambda d: d.residual / d.bound, default=None)
            parts.append(
                f"deep: {len(self.deep)} of {self.deep_requested} requested samples "
                "re-assembled"
                + (
                    f", worst relative residual {worst.residual:.2e} (bound {worst.bound:.2e}, "
                    f"sample {worst.index})"
                    if worst
                    else ""
                )
            )
        return "; ".join(parts + self.notices)


@dataclass
class _Shard:
    """What the shard pass learnt about one indexed shard, for the later checks."""

    entry: dict[str, Any]
    path: Path
    partials: dict[str, Any] | None = None  # recomputed per-shard field moments
    indices: list[int] | None = None  # the file's params/index
    converged: np.ndarray | None = None
    fields_ok: bool = False  # every input and output present with its shape: deep may read


def _listed(values: Iterable[Any], most: int = 8) -> str:
    values = list(values)
    head = ", ".join(map(str, values[:most]))
    return head + (f", ... ({len(values)} in all)" if len(values) > most else "")


def _samples(indices: Iterable[Any]) -> str:
    """'sample 5' or 'samples 1, 2, ...': which samples a line is about."""
    indices = list(indices)
    return f"sample{'s' if len(indices) != 1 else ''} {_listed(indices)}"


def _is(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """JSON-like values equal, floats to 1e-12 relative (the writer's numbers round-trip
    exactly through JSON; the margin only spares a future change of summation order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _attr(f: h5py.File, name: str) -> Any:
    value = f.attrs.get(name)
    return value.item() if isinstance(value, np.generic) else value


class _Checker:
    def __init__(self, root: Path, deep: int, seed: int):
        self.root = root
        self.report = CheckReport(root, deep_requested=deep)
        self.deep, self.seed = deep, seed
        self.index: dict[str, Any] = {}
        self.recipe: Recipe | None = None
        self.stored_recipe: dict[str, Any] = {}  # the recipe's JSON as stored (its vintage)
        self.family: Family | None = None
        self.shards: list[_Shard] = []

    def add(self, kind: str, where: Path | str, what: str) -> None:
        self.report.add(kind, self.root / where if isinstance(where, str) else where, what)

    # -- the index and the directory ----------------------------------------------------

    def run(self) -> CheckReport:
        if self._read_index():
            self._check_index_keys()
            self._check_directory()
            self._find_recipe()
            for shard in self._entries():
                self._check_shard(shard)
            if self.recipe is not None:
                self._check_counts()
                self._check_splits()
                self._check_field_stats()
                self._check_plan()
                if self.deep:
                    self._check_deep()
        else:
            self._check_directory()
        return self.report

    def _read_index(self) -> bool:
        """The index as JSON; an unknown format_version is a usage error (exit 2, the loader's
        line): this pdegen cannot say what a newer format should hold."""
        path = self.root / INDEX_NAME
        try:
            index = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            self.add("index", path, f"unreadable index ({err}); nothing else can be checked")
            return False
        if not isinstance(index, dict):
            self.add("index", path, "not a pdegen index (not a JSON object)")
            return False
        check_format_version(path, index.get("format_version"))
        self.index = index
        return True

    def _check_index_keys(self) -> None:
        for key, types in INDEX_KEYS.items():
            if key not in self.index:
                self.add("index", INDEX_NAME, f"{key}: missing")
            elif not _is(self.index[key], types):
                self.add("index", INDEX_NAME, f"{key}: {self.index[key]!r} has the wrong type")
        if not _is(self.index.get("shards"), (list,)):
            self.index["shards"] = []

    def _check_directory(self) -> None:
        """Every name in the directory is one pdegen writes; leftovers of interrupted writes
        and a lock (a generate may be running) are reported too."""
        listed = {e.get("file") for e in self.index.get("shards", []) if isinstance(e, dict)}
        for path in sorted(self.root.iterdir()):
            name = path.name
            if name in (INDEX_NAME, PLAN_NAME, CARD_NAME) and path.is_file():
                continue
            if name == FAILURES_NAME and path.is_file():
                self.report.notices.append(
                    f"{FAILURES_NAME} present: a run after the index was written failed (read it)"
                )
            elif SHARD_PATTERN.fullmatch(name) and path.is_file():
                if self.index and name not in listed:
                    self.add(
                        "unlisted",
                        path,
                        f"a shard that {INDEX_NAME} does not list (left by another run, or "
                        "copied in): the loader ignores it",
                    )
            elif name == LOCK_NAME:
                try:
                    holder = holder_line(path.read_text())
                except (OSError, UnicodeDecodeError):
                    holder = "a process that left no details"
                self.add(
                    "lock",
                    path,
                    f"a `pdegen generate` may be writing this dataset ({holder}), or was "
                    "killed; check again when no generate runs",
                )
            elif TEMPORARY_PATTERN.fullmatch(name) and path.is_file():
                self.add(
                    "leftover",
                    path,
                    "a temporary of an interrupted write (a resumed generate deletes it; "
                    "safe to delete when no generate runs)",
                )
            elif name == FIGURES_DIR and path.is_dir():
                for figure in sorted(path.iterdir()):
                    if not (figure.is_file() and figure.suffix == ".png"):
                        self.add("foreign", figure, "not a PNG figure (`pdegen show` writes those)")
            else:
                self.add("foreign", path, "a foreign file: not one pdegen writes (docs/format.md)")

    def _entries(self) -> list[_Shard]:
        """The index's shard entries that are well formed, each where its batch number says."""
        for position, entry in enumerate(self.index["shards"]):
            ok = (
                isinstance(entry, dict)
                and _is(entry.get("batch"), (int,))
                and isinstance(entry.get("file"), str)
                and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("indices"), list)
                and all(_is(i, (int,)) for i in entry["indices"])
            )
            if not ok:
                self.add("index", INDEX_NAME, f"shards[{position}]: not a shard entry")
                continue
            if entry["batch"] != position or entry["file"] != shard_name(position):
                self.add(
                    "index",
                    INDEX_NAME,
                    f"shards[{position}]: names batch {entry['batch']} ({entry['file']}); "
                    f"entry {position} must be batch {position} ({shard_name(position)})",
                )
                if not SHARD_PATTERN.fullmatch(entry["file"]):
                    continue  # never open a path the index made up
            self.shards.append(_Shard(entry, self.root / entry["file"]))
        self.report.shards = len(self.shards)
        return self.shards

    def _find_recipe(self) -> None:
        """The recipe of the dataset: the stored text of the first shard whose SHA-256 is the
        index's recipe_sha256 (as `generate` hashes it), rebuilt and validated."""
        want = self.index.get("recipe_sha256")
        for entry in self.index["shards"]:
            name = entry.get("file") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not SHARD_PATTERN.fullmatch(name):
                continue
            try:
                with h5py.File(self.root / name, "r") as f:
                    text = f.attrs.get("recipe")
            except READ_ERRORS:
                continue
            if not isinstance(text, str) or hashlib.sha256(text.encode()).hexdigest() != want:
                continue
            try:
                self.stored_recipe = json.loads(text)
                self.recipe = recipe_from_dict(self.stored_recipe, f"{name}: recipe")
            except (PdegenError, ValueError) as err:
                self.add("recipe", self.root / name, f"the stored recipe is not valid: {err}")
                return
            self.family = family_from_recipe(self.recipe)
            return
        self.add(
            "recipe",
            INDEX_NAME,
            f"no readable shard holds the recipe whose SHA-256 the index names ({want}); "
            "the schema, counts and splits cannot be checked",
        )

    @property
    def _has_splits(self) -> bool:
        """Whether the writer knew output.splits (its stored recipe names them): only such a
        dataset has splits and field statistics in its index."""
        return "splits" in self.stored_recipe.get("output", {})

    # -- one shard -----------------------------------------------------------------------

    def _check_shard(self, shard: _Shard) -> None:
        path, entry = shard.path, shard.entry
        if not path.is_file():
            self.add("missing", path, f"listed in {INDEX_NAME} but missing")
            return
        sha = None
        if self.recipe is not None and self._has_splits:
            try:  # the writer's own description: checksum and moments in one read
                described = describe_shard(path, path.name, entry["batch"])
                sha, shard.partials = described["sha256"], described["field_stats"]
            except READ_ERRORS:
                pass
        try:
            sha = sha or file_sha256(path)
        except OSError as err:
            self.add("unreadable", path, f"cannot be read ({err.strerror or err})")
            return
        if sha != entry["sha256"]:
            self.add(
                "checksum",
                path,
                f"SHA-256 {sha[:16]}... does not match {INDEX_NAME} ({entry['sha256'][:16]}...): "
                "the file changed after it was indexed",
            )
        try:
            with h5py.File(path, "r") as f:
                self._check_shard_file(f, shard)
        except OSError as err:
            self.add("unreadable", path, f"not a readable HDF5 file (truncated or damaged: {err})")
        except READ_ERRORS as err:
            self.add("unreadable", path, f"cannot be read through ({type(err).__name__}: {err})")
        if shard.partials is not None and not _same(shard.partials, entry.get("field_stats")):
            self.add(
                "field_stats",
                path,
                f"the field statistics {INDEX_NAME} lists for this shard are not the "
                "file's (recomputed from its training samples)",
            )

    def _check_shard_file(self, f: h5py.File, shard: _Shard) -> None:
        path, entry = shard.path, shard.entry
        version = _attr(f, "format_version")
        if version != FORMAT_VERSION:
            self.add(
                "schema",
                path,
                f"format_version {version!r} is not {FORMAT_VERSION} (the index's); "
                "not read further",
            )
            return
        self._check_attributes(f, shard)
        if self.recipe is None or self.family is None:
            return
        missing = [g for g in GROUPS if not isinstance(f.get(g), h5py.Group)]
        for group in missing:
            self.add("schema", path, f"/{group}: missing group")
        for name in sorted(set(f) - set(GROUPS)):
            self.add("schema", path, f"/{name}: not in the format (docs/format.md)")
        if missing:
            return
        index = f["params/index"] if isinstance(f["params"].get("index"), h5py.Dataset) else None
        rows = index.shape[0] if index is not None and index.ndim == 1 else len(entry["indices"])
        good = self._check_layout(f, path, rows)
        layout = self._expected_layout(rows)
        whole = {g: all(f"{g}/{n}" in good for n in names) for g, names in layout.items()}
        if "params/index" in good:
            shard.indices = [int(i) for i in index[()]]
            if shard.indices != entry["indices"]:
                self.add(
                    "indices",
                    path,
                    f"params/index holds samples [{_listed(shard.indices)}] but {INDEX_NAME} "
                    f"lists [{_listed(entry['indices'])}]",
                )
        if shard.indices is None:
            return
        self._check_grid(f, path, good)
        shard.converged = self._check_stats(f, path, shard.indices, good)
        self._check_values(f, path, shard.indices, shard.converged, whole)
        shard.fields_ok = shard.converged is not None and all(
            whole[g] for g in ("inputs", "outputs", "params")
        )

    def _check_attributes(self, f: h5py.File, shard: _Shard) -> None:
        path = shard.path
        batch = _attr(f, "batch")
        if batch != shard.entry["batch"]:
            self.add("attrs", path, f"attribute batch is {batch!r}, not {shard.entry['batch']}")
        for name in ("family", "dataset"):
            if _attr(f, name) != self.index.get(name):
                self.add(
                    "attrs",
                    path,
                    f"attribute {name} is {_attr(f, name)!r}, {INDEX_NAME} says "
                    f"{self.index.get(name)!r}",
                )
        text, stored = _attr(f, "recipe"), _attr(f, "recipe_sha256")
        if not isinstance(text, str):
            self.add("attrs", path, "attribute recipe: missing or not text")
        else:
            try:
                json.loads(text)
            except ValueError:
                self.add("attrs", path, "attribute recipe: not JSON")
            if hashlib.sha256(text.encode()).hexdigest() != stored:
                self.add("attrs", path, "attribute recipe_sha256 is not the SHA-256 of recipe")
        if stored != self.index.get("recipe_sha256"):
            self.add(
                "attrs",
                path,
                f"made from a different recipe (recipe_sha256 {str(stored)[:16]}..., "
                f"{INDEX_NAME}: {str(self.index.get('recipe_sha256'))[:16]}...)",
            )
        for name, table in (("method", METHODS), ("pc", PRECONDITIONERS)):
            if _attr(f, name) not in table:
                self.add("attrs", path, f"attribute {name}: {_attr(f, name)!r} is not a {name}")
        try:
            versions = json.loads(_attr(f, "versions"))
            bad = [k for k in VERSION_KEYS if not isinstance(versions.get(k), str)]
        except (TypeError, ValueError, AttributeError):
            bad = ["(not a JSON object)"]
        if bad:
            self.add("attrs", path, f"attribute versions: missing {', '.join(bad)}")

    def _expected_layout(self, rows: int) -> dict[str, dict[str, tuple[tuple, np.dtype]]]:
        """{group: {name: (shape, dtype)}} that docs/format.md prescribes for this recipe."""
        family, recipe = self.family, self.recipe
        storage = np.dtype(recipe.output.dtype)
        return {
            "inputs": {n: ((rows, *family.field_shape(n)), storage) for n in family.input_names},
            "outputs": {n: ((rows, *family.field_shape(n)), storage) for n in family.output_names},
            "params": {
                "index": ((rows,), np.dtype("int64")),
                **{p: ((rows,), np.dtype("float64")) for p in family.params},
            },
            "stats": {
                name: ((rows,), np.dtype(dtype))
                for name, dtype in {**STATS_COLUMNS, **family.stats_columns}.items()
            },
            "grid": {a: ((c.size,), np.dtype("float64")) for a, c in family.coordinates.items()},
        }

    def _check_layout(self, f: h5py.File, path: Path, rows: int) -> set[str]:
        """Names, shapes and dtypes of every dataset; for fields also chunks, compression and
        dimension labels. Returns the datasets ("group/name") whose values can be read as
        documented: the value checks read only those."""
        compression = (
            None if self.recipe.output.compression == "none" else (self.recipe.output.compression)
        )
        axes = self.family.field_axes()
        good = set()
        for group, expected in self._expected_layout(rows).items():
            for name in sorted(set(f[group]) - set(expected)):
                self.add("schema", path, f"{group}/{name}: not a field of this family")
            for name, (shape, dtype) in expected.items():
                ds = f[group].get(name)
                where = f"{group}/{name}"
                if not isinstance(ds, h5py.Dataset):
                    self.add("schema", path, f"{where}: missing")
                    continue
                if ds.shape != shape or ds.dtype != dtype:
                    self.add(
                        "schema",
                        path,
                        f"{where}: {ds.dtype} {ds.shape}, expected {dtype} {shape}",
                    )
                    continue
                good.add(where)
                if group not in ("inputs", "outputs"):
                    continue
                if rows and ds.chunks != (1, *shape[1:]):
                    self.add("schema", path, f"{where}: chunks {ds.chunks}, not one per sample")
                if rows and ds.compression != compression:
                    self.add(
                        "schema",
                        path,
                        f"{where}: compression {ds.compression}, the recipe says "
                        f"{self.recipe.output.compression}",
                    )
                labels = tuple(d.label for d in ds.dims)
                if any(labels) and labels != ("sample", *axes[name]):
                    self.add(
                        "schema",
                        path,
                        f"{where}: axis labels {labels}, expected {('sample', *axes[name])}",
                    )
        return good

    def _check_grid(self, f: h5py.File, path: Path, good: set[str]) -> None:
        for axis, coordinates in self.family.coordinates.items():
            good_axis = f"grid/{axis}" in good
            if good_axis and not np.array_equal(f["grid"][axis][()], coordinates):
                self.add("schema", path, f"grid/{axis}: not the recipe's coordinates")

    def _check_stats(
        self, f: h5py.File, path: Path, indices: list[int], good: set[str]
    ) -> np.ndarray | None:
        """The per-sample solver statistics that are readable; returns the converged flags
        (None when that column is not)."""
        stats = {name: f["stats"][name][()] for name in STATS_COLUMNS if f"stats/{name}" in good}
        samples = np.asarray(indices)
        if "chain_position" in stats and not np.array_equal(
            stats["chain_position"], np.arange(len(indices))
        ):
            self.add("stats", path, "stats/chain_position: not 0, 1, ... in row order")
        times = self.family.coordinates.get("t")
        solves = times.size - 1 if times is not None else 1
        wrong = samples[stats["solves"] != solves] if "solves" in stats else samples[:0]
        if wrong.size:
            self.add(
                "stats",
                path,
                f"stats/solves: {_samples(wrong)}: not {solves} solve(s)",
            )
        if "converged" not in stats:
            return None
        converged = np.asarray(stats["converged"], dtype=bool)
        if "residual" in stats:
            residual = stats["residual"]
            rtol = self.recipe.solver.rtol
            bad = converged & ~(np.isfinite(residual) & (residual <= rtol))
            if bad.any():
                self.add(
                    "converged",
                    path,
                    f"{_samples(samples[bad])}: flagged converged, but the stored residual "
                    f"exceeds solver.rtol {rtol:g} (worst {np.max(residual[bad]):.2e})",
                )
        self.report.unconverged += [int(i) for i in samples[~converged]]
        return converged

    def _check_values(
        self,
        f: h5py.File,
        path: Path,
        indices: list[int],
        converged: np.ndarray | None,
        readable: dict[str, bool],
    ) -> None:
        """No NaN or Inf in any input, parameter or converged output (a sample that did not
        converge may hold anything: it is flagged; without readable flags every output is
        checked), and the solution holds the Dirichlet values on the boundary nodes. One
        sample in memory at a time, whatever the shard's size."""
        boundary = np.ones(self.family.grid_shape, dtype=bool)
        boundary[(slice(1, -1),) * self.family.dim] = False
        storage = np.dtype(self.recipe.output.dtype)
        nonfinite: dict[str, list[int]] = {}
        wrong_boundary: list[int] = []
        if readable["params"]:
            for name in f["params"]:
                values = f["params"][name][()]
                if values.dtype.kind == "f":
                    bad = [indices[r] for r in np.flatnonzero(~np.isfinite(values))]
                    if bad:
                        nonfinite[f"params/{name}"] = bad
        for row, sample_index in enumerate(indices):
            inputs = {}
            for name in self.family.input_names if readable["inputs"] else ():
                inputs[name] = f["inputs"][name][row]
                if not np.isfinite(inputs[name]).all():
                    nonfinite.setdefault(f"inputs/{name}", []).append(sample_index)
            if not readable["outputs"] or (converged is not None and not converged[row]):
                continue
            for name in self.family.output_names:
                value = f["outputs"][name][row]
                if not np.isfinite(value).all():
                    nonfinite.setdefault(f"outputs/{name}", []).append(sample_index)
            if readable["inputs"] and readable["params"] and "solution" in f["outputs"]:
                params = {p: float(f["params"][p][row]) for p in self.family.params}
                sample = Sample(sample_index, _as_float64(inputs), params)
                expected = np.broadcast_to(
                    self.family.boundary_values(sample), self.family.grid_shape
                ).astype(storage)
                solution = f["outputs/solution"][row]
                frames = solution if solution.ndim > self.family.dim else solution[None]
                if any(not np.array_equal(u[boundary], expected[boundary]) for u in frames):
                    wrong_boundary.append(sample_index)
        for where, samples in nonfinite.items():
            self.add("nonfinite", path, f"{where}: NaN or Inf in {_samples(samples)}")
        if wrong_boundary:
            self.add(
                "boundary",
                path,
                f"outputs/solution: {_samples(wrong_boundary)}: the boundary nodes do not "
                "hold the Dirichlet values",
            )

    # -- the dataset as a whole ----------------------------------------------------------

    def _check_counts(self) -> None:
        """Samples 0 .. samples-1, each in exactly one shard, cut as the plan cuts them."""
        recipe, where = self.recipe, INDEX_NAME
        if self.index.get("samples") != recipe.samples:
            self.add(
                "count",
                where,
                f"samples: {self.index.get('samples')!r}, the recipe has {recipe.samples}",
            )
        for key, value in (("dataset", recipe.name), ("family", recipe.family)):
            if self.index.get(key) != value:
                self.add("count", where, f"{key}: {self.index.get(key)!r}, the recipe: {value!r}")
        size = recipe.output.shard_size
        batches = -(-recipe.samples // size)
        if len(self.index["shards"]) != batches:
            self.add(
                "count",
                where,
                f"lists {len(self.index['shards'])} shards; {recipe.samples} samples in batches "
                f"of {size} make {batches}",
            )
        for shard in self.shards:
            count, last = len(shard.entry["indices"]), shard.entry["batch"] == batches - 1
            if count > size or count < 1 or (count < size and not last):
                self.add(
                    "count",
                    shard.path,
                    f"holds {count} samples; batches hold {size} (the last one at most {size})",
                )
        seen = Counter(i for shard in self.shards for i in shard.entry["indices"])
        twice = sorted(i for i, n in seen.items() if n > 1)
        outside = sorted(i for i in seen if not 0 <= i < recipe.samples)
        absent = sorted(set(range(recipe.samples)) - set(seen))
        for what, samples in (
            ("listed in more than one shard", twice),
            (f"outside 0 .. {recipe.samples - 1}", outside),
            ("in no shard", absent),
        ):
            if samples:
                self.add("count", where, f"{what}: {_samples(samples)}")
        self.report.samples = len(seen)

    def _check_splits(self) -> None:
        """The splits are a pure function of (seed, index, fractions): recompute them all."""
        if not self._has_splits:
            self.report.notices.append("no splits (written before output.splits existed)")
            return
        for key, types in SPLIT_KEYS.items():
            if not _is(self.index.get(key), types):
                self.add("splits", INDEX_NAME, f"{key}: missing or not a JSON object")
                return
        fractions = self.recipe.output.splits.fractions()
        if not _same(self.index["split_fractions"], fractions):
            self.add(
                "splits",
                INDEX_NAME,
                f"split_fractions: {self.index['split_fractions']}, the recipe says {fractions}",
            )
        expected = assign_splits(self.recipe.seed, range(self.recipe.samples), fractions)
        stored = self.index["splits"]
        if set(stored) != set(SPLITS) or not all(
            isinstance(v, list) and all(_is(i, (int,)) for i in v) for v in stored.values()
        ):
            self.add("splits", INDEX_NAME, f"splits: not one list of samples for each of {SPLITS}")
            return
        placed: dict[int, list[str]] = {}
        for name, members in stored.items():
            for i in members:
                placed.setdefault(i, []).append(name)
        truth = {i: name for name, members in expected.items() for i in members}
        for i in sorted(set(placed) | set(truth)):
            got, want = placed.get(i, []), truth.get(i)
            if got != [want]:
                self.add(
                    "splits",
                    INDEX_NAME,
                    f"splits: sample {i} is listed in {got or 'no split'}, its seeded split is "
                    f"{want!r}"
                    if want
                    else f"splits: sample {i} is not a sample of the recipe",
                )
        for name in SPLITS:
            if stored[name] != sorted(stored[name]):
                self.add("splits", INDEX_NAME, f"splits: {name} is not in ascending order")
        self.report.splits = {name: len(expected[name]) for name in SPLITS}

    def _check_field_stats(self) -> None:
        """The index's statistics are the merge of its per-shard partials in batch order (each
        partial was compared with its file in the shard pass)."""
        if not self._has_splits or not isinstance(self.index.get("field_stats"), dict):
            return
        entries = [shard.entry for shard in self.shards]
        if len(entries) != len(self.index["shards"]) or not all(
            isinstance(e.get("field_stats"), dict) for e in entries
        ):
            self.add("field_stats", INDEX_NAME, "a shard entry has no field statistics")
            return
        try:
            merged = merge_all(e["field_stats"] for e in entries)
            expected = {name: finish(moments) for name, moments in merged.items()}
        except (KeyError, TypeError, ValueError):
            self.add("field_stats", INDEX_NAME, "the per-shard field statistics are malformed")
            return
        names = (*self.family.input_names, *self.family.output_names)
        stored = self.index["field_stats"]
        if set(stored) != set(names):
            self.add(
                "field_stats",
                INDEX_NAME,
                f"field_stats: fields {sorted(stored)}, the family stores {sorted(names)}",
            )
        for name in names:
            if name in stored and not _same(stored[name], expected.get(name)):
                self.add(
                    "field_stats",
                    INDEX_NAME,
                    f"field_stats: {name} is not the merge of the shards' partial moments",
                )

    def _check_plan(self) -> None:
        """plan.json, if present, belongs to this dataset and cuts the same batches."""
        path = self.root / PLAN_NAME
        if not path.exists():
            return
        try:
            plan = read_plan(path)
        except PdegenError as err:
            self.add("plan", path, str(err).removeprefix(f"{path}: "))
            return
        if plan.recipe_sha256 != self.index.get("recipe_sha256"):
            self.add("plan", path, f"belongs to a different recipe than {INDEX_NAME}")
            return
        listed = [e.get("indices") if isinstance(e, dict) else None for e in self.index["shards"]]
        if len(plan.batches) != len(listed):
            self.add("plan", path, f"{len(plan.batches)} batches, {INDEX_NAME}: {len(listed)}")
        for batch, (planned, indexed) in enumerate(zip(plan.batches, listed, strict=False)):
            if [int(i) for i in planned] != indexed:
                self.add(
                    "plan",
                    path,
                    f"batch {batch} holds samples [{_listed(planned)}], {INDEX_NAME}'s "
                    f"{shard_name(batch)}: [{_listed(indexed or [])}]",
                )
        for key in ("ordering_seconds", "chain_length"):
            if getattr(plan, key) != self.index.get(key):
                self.add("plan", path, f"{key} differs from {INDEX_NAME}'s")

    # -- deep: the stored solution solves the stored inputs' system ---------------------

    def _check_deep(self) -> None:
        """K samples, drawn with a seeded generator among the converged ones of shards whose
        fields are readable, in generation order."""
        candidates = sorted(
            (index, shard.path, row)
            for shard in self.shards
            if shard.fields_ok and shard.converged is not None
            for row, index in enumerate(shard.indices)
            if shard.converged[row]
        )
        if not candidates:
            self.report.notices.append("deep: no converged sample to re-assemble")
            return
        rng = np.random.default_rng(self.seed)
        chosen = rng.choice(len(candidates), size=min(self.deep, len(candidates)), replace=False)
        for k in sorted(chosen):
            index, path, row = candidates[k]
            try:
                with h5py.File(path, "r") as f:
                    self._deep_sample(f, path, index, row)
            except READ_ERRORS as err:
                self.add("deep", path, f"sample {index}: cannot be read ({err})")

    def _deep_sample(self, f: h5py.File, path: Path, index: int, row: int) -> None:
        family, recipe = self.family, self.recipe
        storage = np.dtype(recipe.output.dtype)
        stored = {name: f["inputs"][name][row] for name in family.input_names}
        params = {p: float(f["params"][p][row]) for p in family.params}
        fresh = family.sample(recipe.seed, index)
        for name in family.input_names:  # bitwise: the draw rounded as the writer rounds
            if not np.array_equal(stored[name], fresh.inputs[name].astype(storage)):
                self.add(
                    "deep",
                    path,
                    f"sample {index}: inputs/{name} is not the recipe's draw for this sample",
                )
        for name in family.params:
            if params[name] != fresh.params[name]:
                self.add("deep", path, f"sample {index}: params/{name} is not the recipe's draw")
        sample = Sample(index, _as_float64(stored), params)
        outputs = {
            name: np.asarray(f["outputs"][name][row], dtype=np.float64)
            for name in family.output_names
        }
        if not isinstance(family, Heat) and family.solution_vector(outputs) is None:
            self.report.notices.append(  # stokes: interpolated fields, not the unknowns
                f"deep: sample {index}: {family.name} stores fields interpolated from its "
                "unknowns, so only its inputs were re-checked"
            )
            return
        eps = UNIT_ROUNDOFF[recipe.output.dtype]
        if isinstance(family, Heat):
            steps = self._heat_steps(sample, outputs["solution"], eps, path)
        elif isinstance(family, NewtonFamily):  # F(u) = 0, against the Newton tolerances
            steps = family.stored_residuals(sample, outputs["solution"], ROUNDING_FACTOR * eps)
        else:
            A, b = family.system(sample)
            u = family.solution_vector(outputs)
            steps = [(None, *_residual(A, u, b, float(np.linalg.norm(b)), eps, recipe))]
        worst = max(steps, key=lambda s: s[1] / s[2])
        self.report.deep.append(DeepResult(index, worst[1], worst[2]))
        failed = [s for s in steps if not s[1] <= s[2]]  # NaN fails too
        if failed:
            step, residual, bound = max(failed, key=lambda s: s[1] / s[2])
            at = "" if step is None else f", step{'s' * (len(failed) > 1)} "
            at += _listed([s[0] for s in failed]) if step is not None else ""
            tolerance = (
                "problem.newton's tolerances"
                if isinstance(family, NewtonFamily)
                else f"solver.rtol {recipe.solver.rtol:g}"
            )
            self.add(
                "deep",
                path,
                f"sample {index}{at}: relative residual {residual:.2e} of the stored solution "
                f"exceeds {bound:.2e} ({tolerance} plus the "
                f"{recipe.output.dtype} storage bound): it does not solve the stored inputs' "
                "system",
            )

    def _heat_steps(
        self, sample: Sample, solution: np.ndarray, eps: float, path: Path
    ) -> list[tuple[int | None, float, float]]:
        """Every stored frame pair: (I + theta dt A) u^{n+1} = (I - (1-theta) dt A) u^n + dt f,
        starting from the stored initial state."""
        family = self.family
        if not np.array_equal(
            family.interior(solution[0]), family.interior(sample.inputs["initial"])
        ):
            self.add("deep", path, f"sample {sample.index}: frame 0 is not inputs/initial")
        left, right = family.stepping_matrices(sample.inputs["coefficient"])
        force = family.problem.dt * family.problem.source
        frames = [family.interior(u).ravel() for u in solution]
        absolute = abs(right)
        out = []
        for n in range(len(frames) - 1):
            b = right @ frames[n] + force
            # || |R| |u^n| || + || dt f ||: how far rounding u^n and a can move b
            magnitude = float(np.linalg.norm(absolute @ np.abs(frames[n])))
            magnitude += abs(force) * math.sqrt(frames[n].size)
            out.append((n + 1, *_residual(left, frames[n + 1], b, magnitude, eps, self.recipe)))
        return out


def _as_float64(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}


def _residual(
    A: sp.spmatrix, u: np.ndarray, b: np.ndarray, b_magnitude: float, eps: float, recipe: Recipe
) -> tuple[float, float]:
    """(||b - A u|| / ||b||, the bound): rtol plus c eps (|| |A| |u| || + |b|) / ||b||, the
    residual that rounding the stored inputs and solution to `eps` can add (docs/format.md)."""
    norm_b = float(np.linalg.norm(b))
    norm_r = float(np.linalg.norm(b - A @ u))
    rounding = float(np.linalg.norm(abs(A) @ np.abs(u))) + b_magnitude
    if norm_b == 0.0:
        return (0.0 if norm_r == 0.0 else math.inf), recipe.solver.rtol
    return norm_r / norm_b, recipe.solver.rtol + ROUNDING_FACTOR * eps * rounding / norm_b


def check_dataset(path: str | Path, deep: int = 0, seed: int = 0) -> CheckReport:
    """Verify the dataset in directory `path`; `deep` samples (0: none) are re-assembled from
    their stored inputs, chosen by a generator seeded with `seed`.

    Raises PdegenError (a usage error, one line) when `path` is not a dataset directory or its
    index has a format_version this pdegen does not read; everything else is a `Problem` in
    the report.
    """
    root = Path(path)
    if isinstance(deep, bool) or not isinstance(deep, int) or deep < 0:
        raise PdegenError(f"--deep: {deep!r} is out of range (must be at least 1)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PdegenError(f"--seed: {seed!r} is out of range (must be at least 0)")
    if not root.exists():
        raise PdegenError(f"{root}: no such dataset directory")
    if not root.is_dir():
        raise PdegenError(f"{root}: not a directory")
    if not (root / INDEX_NAME).is_file():
        unfinished = (
            f" ({PLAN_NAME} without {INDEX_NAME}: an unfinished run; rerun `pdegen generate`)"
            if (root / PLAN_NAME).exists()
            else "; run `pdegen generate` first"
        )
        raise PdegenError(f"{root}: not a pdegen dataset (no {INDEX_NAME}){unfinished}")
    return _Checker(root, deep, seed).run()


def run_check(path: str | Path, deep: int | None = None, seed: int = 0) -> int:
    """`pdegen check`: print one line per problem (stdout) and return 1, or the one-line
    summary and return 0."""
    if deep is not None and deep < 1:
        raise PdegenError(f"--deep: {deep} is out of range (must be at least 1)")
    report = check_dataset(path, deep or 0, seed)
    if report.ok:
        print(report.summary())
        return 0
    print("\n".join(report.lines()))
    print(f"pdegen check: {len(report.problems)} problem(s) in {report.path}", file=sys.stderr)
    return 1


__all__ = [
    "LINES_PER_KIND",
    "ROUNDING_FACTOR",
    "UNIT_ROUNDOFF",
    "CheckReport",
    "DeepResult",
    "Problem",
    "check_dataset",
    "run_check",
]
