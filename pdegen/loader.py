"""A map-style dataset over the shards of one generated dataset, returning numpy arrays.

It imports no ML framework: wrap it in a torch DataLoader, a JAX pipeline or a loop. HDF5
files are opened lazily, once per process: a dataset pickled to a spawned worker or inherited
by a forked one opens its own handles on first use (HDF5 handles must not cross a fork), and
`close()` (or a `with` block) releases them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pdegen.errors import PdegenError
from pdegen.shards import FORMAT_VERSION, INDEX_NAME, read_index


def check_format_version(where: Path, version: Any) -> None:
    """Refuse what a newer (or unknown) pdegen wrote: reading it as version 1 could return
    wrong arrays without a word."""
    if version != FORMAT_VERSION:
        version = version.item() if hasattr(version, "item") else version  # numpy scalar
        raise PdegenError(
            f"{where}: format_version {version!r} is not one this pdegen reads "
            f"(reads {FORMAT_VERSION}); use the pdegen version that wrote it"
        )


class ShardDataset:
    """`len()` samples; `ds[i]` is a dict of arrays for the i-th sample by generation index.

    Samples whose solve did not converge are left out unless `include_unconverged=True`.
    Keys: the family's input and output fields (for Darcy "coefficient" and "solution"; their
    axes in `axes`), its scalar parameters, and "index" (the sample's generation index).
    """

    def __init__(self, path: str | Path, include_unconverged: bool = False):
        self.path = Path(path)
        if not (self.path / INDEX_NAME).is_file():
            raise PdegenError(
                f"{self.path}: not a pdegen dataset (no {INDEX_NAME}); run `pdegen generate` first"
            )
        try:
            self.index = read_index(self.path)
        except (OSError, json.JSONDecodeError) as err:
            raise PdegenError(f"{self.path / INDEX_NAME}: unreadable index ({err})") from None
        if not isinstance(self.index, dict):
            raise PdegenError(f"{self.path / INDEX_NAME}: not a pdegen index")
        check_format_version(self.path / INDEX_NAME, self.index.get("format_version"))
        files, rows, samples = [], [], []
        for shard_id, entry in enumerate(self.index["shards"]):
            files.append(self.path / entry["file"])
            try:
                with h5py.File(files[-1], "r") as f:
                    check_format_version(files[-1], f.attrs.get("format_version"))
                    indices = f["params/index"][()]
                    ok = f["stats/converged"][()] if not include_unconverged else None
            except (OSError, KeyError) as err:
                raise PdegenError(f"{files[-1]}: unreadable shard ({err})") from None
            for row, sample in enumerate(indices):
                if ok is None or ok[row]:
                    rows.append((shard_id, row))
                    samples.append(int(sample))
        order = np.argsort(samples, kind="stable")
        self._files = files
        self._locations = [rows[i] for i in order]
        self._samples = np.asarray(samples, dtype=np.int64)[order]
        self._handles: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._locations)

    @property
    def sample_indices(self) -> np.ndarray:
        """Generation indices of the samples, in the order `ds[i]` returns them."""
        return self._samples

    def _file(self, shard_id: int) -> h5py.File:
        if self._pid != os.getpid():  # inherited through fork: never reuse a parent's handle
            self._handles = {}
            self._pid = os.getpid()
        handle = self._handles.get(shard_id)
        if handle is None:
            handle = self._handles[shard_id] = h5py.File(self._files[shard_id], "r")
        return handle

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        shard_id, row = self._locations[i]
        f = self._file(shard_id)
        item = {name: ds[row] for group in ("inputs", "outputs") for name, ds in f[group].items()}
        for name, ds in f["params"].items():
            item[name] = ds[row]
        return item

    def _columns(self, group: str) -> dict[str, np.ndarray]:
        """Per-sample columns of `group`, aligned with `ds[i]`: one read per shard and column."""
        if not self._locations:
            return {}
        shard_ids, rows = (np.asarray(v) for v in zip(*self._locations, strict=True))
        columns: dict[str, np.ndarray] = {}
        for shard_id in np.unique(shard_ids):
            here = shard_ids == shard_id
            for name, ds in self._file(int(shard_id))[group].items():
                values = ds[()]
                if name not in columns:
                    columns[name] = np.empty(len(self._locations), dtype=values.dtype)
                columns[name][here] = values[rows[here]]
        return columns

    @property
    def axes(self) -> dict[str, tuple[str, ...]]:
        """Axis names of each input and output field of one sample, e.g. ("x", "y") for a
        coefficient and ("t", "x", "y") for a heat trajectory: which keys have a time axis.

        Read from the shards' HDF5 dimension labels, which the writer takes from the family's
        declarations; shards written before the labels existed fall back to the declarations.
        """
        if not self._files:
            return {}
        f = self._file(0)
        axes: dict[str, tuple[str, ...]] = {}
        for group in ("inputs", "outputs"):
            for name, ds in f[group].items():
                labels = tuple(d.label for d in ds.dims)
                axes[name] = labels[1:] if all(labels) else _declared_axes(f, group, name)
        return axes

    def stats(self) -> dict[str, np.ndarray]:
        """Per-sample solver statistics, aligned with `ds[i]`."""
        return self._columns("stats")

    def params(self) -> dict[str, np.ndarray]:
        """Per-sample scalar parameters (and the generation index), aligned with `ds[i]`."""
        return self._columns("params")

    def attrs(self) -> dict[str, Any]:
        """Provenance of the dataset (the first shard's attributes, decoded)."""
        if not self._files:
            return {}
        return {k: v for k, v in self._file(0).attrs.items()}

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def __enter__(self) -> ShardDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __del__(self) -> None:
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:  # interpreter shutdown: nothing useful left to do
            pass


def _declared_axes(f: h5py.File, group: str, name: str) -> tuple[str, ...]:
    """Axes of a field in an unlabelled shard, from its family's declaration."""
    from pdegen.families import FAMILIES

    family = FAMILIES.get(str(f.attrs.get("family", "")))
    declared = {"inputs": family.inputs, "outputs": family.outputs}[group] if family else {}
    if name not in declared:
        raise PdegenError(f"{f.filename}: {group}/{name}: axes unknown (no labels, no family)")
    return declared[name].names(sum(axis in f["grid"] for axis in "xyz"))


def open_dataset(path: str | Path, include_unconverged: bool = False) -> ShardDataset:
    """Open a generated dataset directory (the one holding index.json)."""
    return ShardDataset(path, include_unconverged=include_unconverged)
