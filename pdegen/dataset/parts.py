"""A shard of several batches, merged from its batches' parts.

Why parts: a shard is one HDF5 file, and HDF5 (h5py built without MPI) takes one writer per
file, while the batches of one shard run on different workers at once. Each batch therefore
writes a whole shard-format file of its own rows (`parts/part-BBBBB.h5`, atomically, like a
shard), and once the shard's last batch is done the root process concatenates them in plan
order into the shard, under a temporary name renamed when complete, then deletes the parts.

The field rows are copied chunk by chunk as stored (`read_direct_chunk`/`write_direct_chunk`,
one chunk per sample): compressed rows are not decompressed and compressed again, and the
merged shard holds the bits the batches wrote. Its moments are its parts' merged in order,
the numbers `describe_shard` and `pdegen check` recompute from the file batch by batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pdegen.dataset.shards import FORMAT_VERSION, atomic_path, shard_entry_of
from pdegen.dataset.statistics import merge_all

FIELD_GROUPS = ("inputs", "outputs")
#: per-sample columns, concatenated in row order; the grid is every part's and copied once
COLUMN_GROUPS = ("params", "stats")


def merge_parts(
    path: Path, number: int, parts: list[Path], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """Write the shard `path` (number `number`) from the finished `parts`, in their order, and
    return its index entry; the parts are deleted once the shard has its name. `entries`:
    the parts' own entries, whose moments merge in order into the shard's (as
    `describe_shard` computes them from the merged file, batch by batch: not read again).
    One part is open at a time: a shard may hold more batches than a process may open files."""
    total = sum(len(entry["indices"]) for entry in entries)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as out:
            with h5py.File(parts[0], "r") as first:
                fields = {
                    (group, name): _field_like(out.require_group(group), dataset, total)
                    for group in FIELD_GROUPS
                    for name, dataset in first[group].items()
                }
                grid = {name: values[()] for name, values in first["grid"].items()}
                attrs = dict(first.attrs)
            columns: dict[tuple[str, str], list[np.ndarray]] = {}
            row = 0
            for part in parts:
                with h5py.File(part, "r") as source:
                    for (group, name), dataset in fields.items():
                        _copy_rows(source[group][name], dataset, row)
                    for group in COLUMN_GROUPS:
                        for name, values in source[group].items():
                            columns.setdefault((group, name), []).append(values[()])
                    row += source["params/index"].shape[0]
            for group in COLUMN_GROUPS:
                out.create_group(group)
            for (group, name), values in columns.items():
                out[group].create_dataset(name, data=np.concatenate(values))
            out.create_group("grid")
            for name, values in grid.items():
                out["grid"].create_dataset(name, data=values)
            for key, value in attrs.items():
                out.attrs[key] = value
            out.attrs["format_version"] = FORMAT_VERSION
            out.attrs["batch"] = number
        moments = merge_all(entry["field_stats"] for entry in entries)
        indices = [i for entry in entries for i in entry["indices"]]
        entry = shard_entry_of(tmp, path.name, number, indices, moments)
    for part in parts:
        part.unlink(missing_ok=True)
    return entry


def _field_like(group: h5py.Group, first: h5py.Dataset, total: int) -> h5py.Dataset:
    """A field of `total` rows with the first part's dtype, chunks, filters and axis labels
    (every part of a shard was written alike)."""
    filters = {}
    if first.compression is not None:
        filters = {"compression": first.compression, "compression_opts": first.compression_opts}
    dataset = group.create_dataset(
        first.name.rsplit("/", 1)[-1],
        shape=(total, *first.shape[1:]),
        dtype=first.dtype,
        chunks=first.chunks,
        shuffle=first.shuffle,
        **filters,
    )
    for dim, source_dim in zip(dataset.dims, first.dims, strict=True):
        if source_dim.label:
            dim.label = source_dim.label
    return dataset


def _copy_rows(source: h5py.Dataset, dataset: h5py.Dataset, start: int) -> None:
    """`source`'s rows into `dataset` from row `start`: chunk by chunk as stored (one chunk a
    row), or, for a field of one value per sample (no row chunks), as values."""
    rows = source.shape[0]
    if dataset.chunks is None or dataset.chunks[0] != 1:
        dataset[start : start + rows] = source[()]
        return
    zeros = (0,) * (source.ndim - 1)
    for r in range(rows):
        mask, data = source.id.read_direct_chunk((r, *zeros))
        dataset.id.write_direct_chunk((start + r, *zeros), data, mask)
