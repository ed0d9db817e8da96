"""HDF5 shards and the dataset index (layout documented in docs/format.md).

A shard is written under a temporary name in the dataset directory and renamed into place
only when it is complete and closed, so a killed run never leaves a file that looks finished.
The index (index.json, also written by rename) lists every shard with its sample indices and
SHA-256 checksum; it is what the loader reads.
"""

from __future__ import annotations

import contextlib
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


def shard_name(batch: int) -> str:
    return f"shard-{batch:05d}.h5"


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


def write_shard(directory: Path, content: ShardContent) -> dict[str, Any]:
    """Write one shard atomically and return its index entry."""
    path = directory / shard_name(content.batch)
    filters = {}
    if content.compression != "none":  # shuffling bytes first lets floats compress
        filters = {"compression": content.compression, "shuffle": True}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for group, arrays in (
                ("inputs", content.inputs),
                ("outputs", content.outputs),
                ("params", content.params),
                ("stats", content.stats),
                ("grid", content.grid),
            ):
                g = f.create_group(group)
                for name, array in arrays.items():
                    array = np.asarray(array)
                    field = group in ("inputs", "outputs")
                    if field:
                        array = array.astype(content.dtype, copy=False)
                    per_sample = field and array.ndim > 1 and array.shape[0] > 0
                    chunks = (1, *array.shape[1:]) if per_sample else None
                    dataset = g.create_dataset(
                        name, data=array, chunks=chunks, **(filters if per_sample else {})
                    )
                    labels = content.axes.get(name, ()) if field else ()
                    for dim, label in zip(dataset.dims, labels, strict=bool(labels)):
                        dim.label = label
            for key, value in content.attrs.items():
                f.attrs[key] = value
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["batch"] = content.batch
        entry = describe_shard(tmp, path.name, content.batch)
    return entry


def describe_shard(path: Path, name: str, batch: int) -> dict[str, Any]:
    """A shard's index entry, read from the file alone: its samples, checksum and the partial
    moments of every field over its training samples that converged (`pdegen.fieldstats`).
    The one way an entry is made, for a shard just written and for one kept on resume, so both
    give the same numbers."""
    from pdegen.fieldstats import merge, partial_moments
    from pdegen.splits import split_of

    with h5py.File(path, "r") as f:
        indices = [int(i) for i in f["params/index"][()]]
        recipe = json.loads(f.attrs["recipe"])
        fractions = recipe["output"]["splits"]
        converged = f["stats/converged"][()]
        train = np.asarray(
            [
                ok and split_of(recipe["seed"], i, fractions) == "train"
                for i, ok in zip(indices, converged, strict=True)
            ],
            dtype=bool,
        )
        rows = np.flatnonzero(train)
        moments = {}
        for group in ("inputs", "outputs"):
            for field_name, dataset in f[group].items():
                time_axis = dataset.ndim > 1 and dataset.dims[1].label == "t"
                # one sample at a time (memory: one field of one sample), merged in row order
                part = partial_moments(dataset[:0], time_axis)
                for row in rows:
                    part = merge(part, partial_moments(dataset[row : row + 1], time_axis))
                moments[field_name] = part
    return {
        "file": name,
        "batch": batch,
        "indices": indices,
        "sha256": file_sha256(path),
        "field_stats": moments,
    }


def read_index(directory: Path) -> dict[str, Any]:
    path = Path(directory) / INDEX_NAME
    with open(path) as fh:
        return json.load(fh)


def write_index(directory: Path, index: dict[str, Any]) -> Path:
    path = Path(directory) / INDEX_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, **index}, indent=1))
    return path


def shard_entry(directory: Path, batch: int) -> dict[str, Any]:
    """The index entry of a finished shard, read from the file itself."""
    path = Path(directory) / shard_name(batch)
    return describe_shard(path, path.name, batch)


def verified_entry(
    directory: Path,
    batch: int,
    indices: list[int],
    recipe_sha256: str,
    indexed: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The entry of shard `batch` if it is complete and belongs to this plan, else None.

    Complete means: present under its final name (only a finished write is renamed there),
    readable, made from the same recipe, holding exactly the plan's samples for that batch,
    and, when an index lists it, matching the index's checksum.
    """
    path = Path(directory) / shard_name(batch)
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
    entry = shard_entry(directory, batch)
    if indexed is not None and indexed.get("sha256") != entry["sha256"]:
        return None
    return entry
