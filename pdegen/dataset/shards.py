"""HDF5 shards and the dataset index (layout documented in docs/format.md).

A shard is written under a temporary name in the dataset directory and renamed into place
only when it is complete and closed, so a killed run never leaves a file that looks finished.
The index (index.json, also written by rename) lists every shard with its sample indices and
SHA-256 checksum; it is what the loader reads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
#: the report of batches that failed after their retries (`pdegen.run.generate`)
FAILURES_NAME = "failures.log"


#: where the batches of a shard of several wait, each a finished file, until the last is
#: done and they are merged into the shard (`pdegen.dataset.parts`)
PARTS_DIR = "parts"


def shard_name(batch: int) -> str:
    return f"shard-{batch:05d}.h5"


def part_path(directory: Path, batch: int) -> Path:
    """Where batch `batch` of a shard of several batches is written before the merge."""
    return Path(directory) / PARTS_DIR / f"part-{batch:05d}.h5"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporaries left by killed writers on this host (their process is gone)."""
    removed = 0
    prefix = f".tmp-{socket.gethostname()}-"
    for tmp in Path(directory).glob(".*.tmp-*"):
        head, _, pid = tmp.name.rpartition("-")
        if not (prefix[:-1] in tmp.name and pid.isdigit()) or not head.endswith(
            socket.gethostname()
        ):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
            removed += 1
        except PermissionError:
            pass  # alive, someone else's
    return removed


def remove_finished_temporaries(finished: list[Path]) -> int:
    """Delete every writer's temporary of each `finished` file (a shard, or a batch's part),
    whichever host or process wrote it: a writer that died mid-batch (a Dask worker killed
    on another host, whose pid cannot be checked from here) leaves one, and the batch was
    then written again, whole, by another. Run by the root under the dataset's lock after the
    batches are done, so that a finished run leaves nothing behind."""
    removed = 0
    for path in finished:
        for tmp in Path(path).parent.glob(f".{Path(path).name}.tmp-*"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it to `path` only if the block succeeds."""
    tmp = _temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@dataclass
class ShardContent:
    """Everything one shard holds; arrays have the batch's samples on axis 0."""

    batch: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    grid: dict[str, np.ndarray]
    attrs: dict[str, Any]
    #: axis names of the input and output arrays ("sample", then the family's declared axes),
    #: written as HDF5 dimension labels so that a shard says which axis is time
    axes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: storage of the input and output fields (recipe `output.dtype`, `output.compression`)
    dtype: str = "float64"
    compression: str = "none"


def _has_time_axis(labels: tuple[str, ...]) -> bool:
    """Whether a field's axes ("sample", then the family's) put time second."""
    return len(labels) > 1 and labels[1] == "t"


def _counted(seed: int, fractions: dict[str, float], index: int, converged: bool) -> bool:
    """Whether sample `index` enters the moments: a training sample that converged."""
    from pdegen.dataset.splits import split_of

    return bool(converged) and split_of(seed, int(index), fractions) == "train"


class ShardWriter:
    """One shard written sample by sample, as its batch solves them.

    Why not hold the batch and write it at the end: each sample's fields then lived until the
    batch was done and were stacked into one array per field before writing, a copy of
    every field (about 1 ms of a 421 x 421 Darcy sample, mostly the kernel zeroing the
    stacked arrays' fresh pages) and twice the shard's fields in memory per worker (140 MB for
    a shard of 50 at 421 x 421). Rows go into datasets created at the first sample, one chunk
    per sample; `write_shard` writes a shard held in memory through this class too.

    A context manager over `atomic_path`: the file is a temporary until `finish` has written
    the rest and the block ends without an error; on an error it is removed. The moments of
    each training sample that converged are taken from the row as stored when it is added and
    merged in row order at `finish`: the numbers `field_moments` gives on the finished file.
    """

    def __init__(
        self,
        directory: Path,
        batch: int,
        count: int,
        recipe_json: str,
        axes: dict[str, tuple[str, ...]],
        dtype: str = "float64",
        compression: str = "none",
        path: Path | None = None,
    ):
        """`path`: where the file goes, if not the shard `batch`'s own: a batch's part, whose
        entry goes without a checksum (a part is read once, by the merge; hashing it cost
        0.16 s of CPU per 250 MiB for nothing)."""
        self.path = Path(path) if path is not None else Path(directory) / shard_name(batch)
        self.checksum = path is None
        self.count, self.axes = count, axes
        self.dtype, self.compression = dtype, compression
        recipe = json.loads(recipe_json)
        self._seed, self._fractions = recipe["seed"], recipe["output"]["splits"]
        self._atomic = atomic_path(self.path)
        self._file: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        self._rows: dict[int, tuple[tuple[int, ...], np.dtype]] = {}  # dataset id: row shape
        self._partials: dict[str, list] = {}  # per field: the partials of the rows counted
        self._tmp: Path | None = None

    def __enter__(self) -> ShardWriter:
        self._tmp = self._atomic.__enter__()
        self._file = h5py.File(self._tmp, "w")
        self._file.create_group("inputs")
        self._file.create_group("outputs")
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._file is not None:
                self._file.close()
        finally:
            self._atomic.__exit__(*exc)

    def add(
        self,
        row: int,
        index: int,
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
        converged: bool,
    ) -> None:
        """Write sample `index`'s fields as row `row` of the shard."""
        from pdegen.dataset.statistics import partial_moments

        counted = _counted(self._seed, self._fractions, index, converged)
        for group, arrays in (("inputs", inputs), ("outputs", outputs)):
            for name, array in arrays.items():
                # C order: the moments below then sum in the order `field_moments` sums the
                # stored rows (numpy sums another layout along another axis first: other
                # bits, which a field whose mean is rounding noise shows)
                stored = np.ascontiguousarray(array, dtype=self.dtype)
                if name in self._datasets:
                    dataset = self._datasets[name]
                else:  # the first sample fixes the shape and dtype
                    dataset = self._create(group, name, stored)
                self._write_row(dataset, row, stored)
                if counted:
                    time_axis = _has_time_axis(self.axes.get(name, ()))
                    self._partials[name].append(partial_moments(stored[None], time_axis))

    def _write_row(self, dataset: h5py.Dataset, row: int, stored: np.ndarray) -> None:
        """Row `row` of `dataset` (one chunk) is `stored`.

        Uncompressed, the row's bytes are the chunk's: they go in by HDF5's direct chunk
        write, which skips h5py's selection and HDF5's hyperslab and conversion machinery.
        The file holds the same objects and bits (tested); small chunks may sit elsewhere in
        it, since ordinary writes of those wait in HDF5's chunk cache. Measured on 421 x 421
        float64 rows: 0.33-0.73 ms against 0.49-1.9 ms for `dataset[row] = stored`, twice a
        Darcy sample. Filtered datasets take the ordinary path, which compresses. A row of
        another shape or dtype than the first is refused as the ordinary write would refuse
        it, not written as a chunk of the wrong size.
        """
        if self.compression != "none" or not stored.ndim:
            dataset[row] = stored
            return
        shape, dtype = self._rows[dataset.id.id]  # h5py's .shape costs 30 us a call
        if stored.shape != shape or stored.dtype != dtype:
            raise ValueError(
                f"row {row} of {dataset.name} is {stored.dtype} {stored.shape}, but the "
                f"dataset holds {dtype} {shape}"
            )
        offset = (row,) + (0,) * stored.ndim
        dataset.id.write_direct_chunk(offset, stored)  # C order already (`add`)

    def _create(self, group: str, name: str, first: np.ndarray) -> h5py.Dataset:
        filters = {}
        if self.compression != "none":  # shuffling bytes first lets floats compress
            filters = {"compression": self.compression, "shuffle": True}
        dataset = self._file[group].create_dataset(
            name,
            shape=(self.count, *first.shape),
            dtype=first.dtype,
            chunks=(1, *first.shape) if first.ndim else None,
            **(filters if first.ndim else {}),
        )
        labels = self.axes.get(name, ())
        for dim, label in zip(dataset.dims, labels, strict=bool(labels)):
            dim.label = label
        self._datasets[name] = dataset
        self._rows[dataset.id.id] = (dataset.shape[1:], dataset.dtype)
        self._partials[name] = []
        return dataset

    def finish(self, content: ShardContent) -> dict[str, Any]:
        """Write the rest of `content` (its fields came through `add`), close the file, and
        return the shard's index entry; the file gets its name when the block ends."""
        from pdegen.dataset.statistics import merge, partial_moments

        for group, arrays in (
            ("params", content.params),
            ("stats", content.stats),
            ("grid", content.grid),
        ):
            g = self._file.create_group(group)
            for name, array in arrays.items():
                g.create_dataset(name, data=np.asarray(array))
        for key, value in content.attrs.items():
            self._file.attrs[key] = value
        self._file.attrs["format_version"] = FORMAT_VERSION
        self._file.attrs["batch"] = content.batch
        moments = {}
        for name, dataset in self._datasets.items():
            time_axis = _has_time_axis(self.axes.get(name, ()))
            empty = partial_moments(np.empty((0, *dataset.shape[1:])), time_axis)
            moments[name] = functools.reduce(merge, self._partials[name], empty)
        self._file.close()
        self._file = None
        return shard_entry_of(
            self._tmp,
            self.path.name,
            content.batch,
            content.params["index"],
            moments,
            self.checksum,
        )


def write_shard(
    directory: Path, content: ShardContent, writer_class: type[ShardWriter] | None = None
) -> dict[str, Any]:
    """Write one shard held in memory (`pdegen.run.batch.solve_batch`) atomically and return its
    index entry: the rows through a `ShardWriter` (or the subclass `writer_class`, which the
    tests use to write rows another way), so both paths write the same file."""
    with (writer_class or ShardWriter)(
        directory,
        content.batch,
        len(content.params["index"]),
        content.attrs["recipe"],
        content.axes,
        content.dtype,
        content.compression,
    ) as writer:
        for row, index in enumerate(content.params["index"]):
            writer.add(
                row,
                index,
                {name: array[row] for name, array in content.inputs.items()},
                {name: array[row] for name, array in content.outputs.items()},
                bool(content.stats["converged"][row]),
            )
        return writer.finish(content)


def field_moments(
    fields: dict[str, tuple[Any, tuple[str, ...]]],
    indices: Any,
    converged: Any,
    recipe_json: str,
    compiled: bool = True,
    chain_position: Any = None,
) -> dict[str, Any]:
    """Partial moments of every field over the shard's training samples that converged
    (`pdegen.dataset.statistics`), one sample at a time (memory: one field of one sample):
    merged in row order within each of the shard's batches, then the batches' in turn.
    `fields` maps a name to (array or h5py dataset with samples on axis 0, axis labels). A
    finished file's numbers (`describe_shard`), the same rows and the same arithmetic as
    `ShardWriter` uses while writing a batch, and as `pdegen.dataset.parts` merges a shard
    of several batches from its parts' numbers, so a shard kept on resume gives the numbers
    it gave when written. `chain_position`: each row's position in its batch (a batch starts
    at each 0; None: the shard is one batch). `compiled` False: numpy only."""
    from pdegen.dataset.statistics import merge, partial_moments

    recipe = json.loads(recipe_json)
    fractions = recipe["output"]["splits"]
    counted = [
        _counted(recipe["seed"], fractions, i, ok) for i, ok in zip(indices, converged, strict=True)
    ]
    starts = {0}
    positions = None if chain_position is None else np.asarray(chain_position)
    if positions is not None and positions.shape == (len(counted),):  # else damaged: one batch
        starts |= {int(row) for row in np.flatnonzero(positions == 0)}
    bounds = [*sorted(starts), len(counted)]
    moments = {}
    for name, (values, labels) in fields.items():
        time_axis = _has_time_axis(labels)
        empty = partial_moments(values[:0], time_axis, compiled)
        batches = []
        for first, end in zip(bounds, bounds[1:], strict=False):
            rows = [row for row in range(first, end) if counted[row]]
            partials = (partial_moments(values[r : r + 1], time_axis, compiled) for r in rows)
            batches.append(functools.reduce(merge, partials, empty))
        moments[name] = functools.reduce(merge, batches)
    return moments


def shard_entry_of(
    path: Path, name: str, batch: int, indices: Any, moments: dict[str, Any], checksum=True
) -> dict[str, Any]:
    """A file's index entry; `checksum` False: without its SHA-256 (None), a part's."""
    return {
        "file": name,
        "batch": batch,
        "indices": [int(i) for i in indices],
        "sha256": file_sha256(path) if checksum else None,
        "field_stats": moments,
    }


def describe_shard(path: Path, name: str, batch: int, compiled: bool = True) -> dict[str, Any]:
    """A finished shard's index entry, read from the file alone: its samples, checksum and
    the partial moments of its fields (`field_moments`, numpy only when not `compiled`), as
    its writer computed them."""
    with h5py.File(path, "r") as f:
        indices = f["params/index"][()]
        fields = {
            field_name: (dataset, tuple(d.label for d in dataset.dims))
            for group in ("inputs", "outputs")
            for field_name, dataset in f[group].items()
        }
        converged, recipe = f["stats/converged"][()], f.attrs["recipe"]
        positions = f["stats/chain_position"][()] if "stats/chain_position" in f else None
        moments = field_moments(fields, indices, converged, recipe, compiled, positions)
    return shard_entry_of(path, name, batch, indices, moments)


def read_index(directory: Path) -> dict[str, Any]:
    path = Path(directory) / INDEX_NAME
    with open(path) as fh:
        return json.load(fh)


def write_index(directory: Path, index: dict[str, Any]) -> Path:
    path = Path(directory) / INDEX_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, **index}, indent=1))
    return path


def shard_entry(directory: Path, batch: int, path: Path | None = None) -> dict[str, Any]:
    """The index entry of a finished shard (or of the file `path`), read from the file."""
    path = path if path is not None else Path(directory) / shard_name(batch)
    return describe_shard(path, path.name, batch)


def verified_entry(
    directory: Path,
    batch: int,
    indices: list[int],
    recipe_sha256: str,
    indexed: dict[str, Any] | None,
    path: Path | None = None,
) -> dict[str, Any] | None:
    """The entry of shard `batch` (or of the file `path`, a batch's part) if it is complete
    and belongs to this plan, else None.

    Complete means: present under its final name (only a finished write is renamed there),
    readable, made from the same recipe, holding exactly the plan's samples for that batch,
    and, when an index lists it, matching the index's checksum.
    """
    path = path if path is not None else Path(directory) / shard_name(batch)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("recipe_sha256") != recipe_sha256:
                return None
            if [int(i) for i in f["params/index"][()]] != list(indices):
                return None
            if "outputs/solution" not in f or f["outputs/solution"].shape[0] != len(indices):
                return None
    except (OSError, KeyError):
        return None
    try:
        entry = shard_entry(directory, batch, path)
    except (OSError, KeyError, ValueError, IndexError):  # damaged inside: solved again
        return None
    if indexed is not None and indexed.get("sha256") != entry["sha256"]:
        return None
    return entry
