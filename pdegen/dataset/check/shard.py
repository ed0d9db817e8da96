"""One shard at a time: its checksum, attributes, layout, grid, statistics and values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from pdegen.dataset.check.common import (
    GROUPS,
    READ_ERRORS,
    STATS_COLUMNS,
    VERSION_KEYS,
    ShardFindings,
    as_float64,
    attribute,
    listing,
    same_value,
    samples_phrase,
)
from pdegen.dataset.shards import (
    FORMAT_VERSION,
    INDEX_NAME,
    describe_shard,
    file_sha256,
)
from pdegen.families import Sample
from pdegen.run.plan import chain_positions
from solvers.registry import METHODS, PRECONDITIONERS


class ShardChecks:
    """One shard at a time: its checksum, attributes, layout, grid, statistics and values
    (a part of `Checker`)."""

    def _check_shard(self, shard: ShardFindings) -> None:
        path, entry = shard.path, shard.entry
        if not path.is_file():
            self.add("missing", path, f"listed in {INDEX_NAME} but missing")
            return
        sha = None
        if self.recipe is not None and self._has_splits:
            try:  # the writer's own description: checksum and moments in one read
                described = describe_shard(path, path.name, entry["batch"], compiled=False)
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
        if shard.partials is not None and not same_value(shard.partials, entry.get("field_stats")):
            self.add(
                "field_stats",
                path,
                f"the field statistics {INDEX_NAME} lists for this shard are not the "
                "file's (recomputed from its training samples)",
            )

    def _check_shard_file(self, f: h5py.File, shard: ShardFindings) -> None:
        path, entry = shard.path, shard.entry
        version = attribute(f, "format_version")
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
                    f"params/index holds samples [{listing(shard.indices)}] but {INDEX_NAME} "
                    f"lists [{listing(entry['indices'])}]",
                )
        if shard.indices is None:
            return
        self._check_grid(f, path, good)
        shard.converged = self._check_stats(f, path, shard.indices, good)
        self._check_values(f, path, shard.indices, shard.converged, whole)
        shard.fields_ok = shard.converged is not None and all(
            whole[g] for g in ("inputs", "outputs", "params")
        )

    def _check_attributes(self, f: h5py.File, shard: ShardFindings) -> None:
        path = shard.path
        batch = attribute(f, "batch")
        if batch != shard.entry["batch"]:
            self.add("attrs", path, f"attribute batch is {batch!r}, not {shard.entry['batch']}")
        for name in ("family", "dataset"):
            if attribute(f, name) != self.index.get(name):
                self.add(
                    "attrs",
                    path,
                    f"attribute {name} is {attribute(f, name)!r}, {INDEX_NAME} says "
                    f"{self.index.get(name)!r}",
                )
        text, stored = attribute(f, "recipe"), attribute(f, "recipe_sha256")
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
            if attribute(f, name) not in table:
                self.add("attrs", path, f"attribute {name}: {attribute(f, name)!r} is not a {name}")
        try:
            versions = json.loads(attribute(f, "versions"))
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
        positions = chain_positions(len(indices), self.recipe.solver.batch_size)
        if "chain_position" in stats and not np.array_equal(stats["chain_position"], positions):
            self.add(
                "stats",
                path,
                "stats/chain_position: not 0, 1, ... in row order within each of the shard's "
                f"batches (of at most {self.recipe.solver.batch_size} samples)",
            )
        solves = self.family.solves_per_sample
        counts = stats.get("solves", np.full(samples.size, solves))
        if self.family.stops_early:  # a march to a steady state: at most that many
            wrong, expected = samples[(counts < 1) | (counts > solves)], f"1 to {solves}"
        else:
            wrong, expected = samples[counts != solves], f"{solves}"
        if wrong.size:
            self.add(
                "stats",
                path,
                f"stats/solves: {samples_phrase(wrong)}: not {expected} solve(s)",
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
                    f"{samples_phrase(samples[bad])}: flagged converged, but the stored residual "
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
        checked), and the family's `dirichlet_outputs` hold the Dirichlet values on the
        boundary nodes (where the family has them: not on a periodic grid). One
        sample in memory at a time, whatever the shard's size."""
        boundary = np.ones(self.family.grid_shape, dtype=bool)
        boundary[(slice(1, -1),) * self.family.dim] = False
        storage = np.dtype(self.recipe.output.dtype)
        nonfinite: dict[str, list[int]] = {}
        wrong_boundary: dict[str, list[int]] = {}  # output -> samples
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
            dirichlet = self.family.stores_boundary_nodes  # not on a torus or cells
            held = [n for n in self.family.dirichlet_outputs if n in f["outputs"]]
            if dirichlet and readable["inputs"] and readable["params"] and held:
                params = {p: float(f["params"][p][row]) for p in self.family.params}
                sample = Sample(sample_index, as_float64(inputs), params)
                expected = np.broadcast_to(
                    self.family.boundary_values(sample), self.family.grid_shape
                ).astype(storage)
                for name in held:
                    stored = f["outputs"][name][row]
                    frames = stored if stored.ndim > self.family.dim else stored[None]
                    if any(not np.array_equal(u[boundary], expected[boundary]) for u in frames):
                        wrong_boundary.setdefault(name, []).append(sample_index)
        for where, samples in nonfinite.items():
            self.add("nonfinite", path, f"{where}: NaN or Inf in {samples_phrase(samples)}")
        for name, samples in wrong_boundary.items():
            self.add(
                "boundary",
                path,
                f"outputs/{name}: {samples_phrase(samples)}: the boundary nodes do not "
                "hold the Dirichlet values",
            )
