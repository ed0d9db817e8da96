"""A map-style dataset over the shards of one generated dataset, returning numpy arrays.

It imports no ML framework: wrap it in a torch DataLoader, a JAX pipeline or a loop. HDF5
files are opened lazily, once per process: a dataset pickled to a spawned worker or inherited
by a forked one opens its own handles on first use (HDF5 handles must not cross a fork), and
`close()` (or a `with` block) releases them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pdegen.dataset.shards import FORMAT_VERSION, INDEX_NAME, read_index
from pdegen.errors import PdegenError


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

    `split` ("train", "valid", "test") keeps that split's samples only; `fields` keeps only
    the named input/output fields (the scalar parameters and "index" always come along);
    `stride` reads every `stride`-th node along each space axis (node 0 and the last node
    kept, so 421 nodes become 211, 141, 106 or 85 with stride 2, 3, 4 or 5), the coarse views
    of the same samples that resolution studies use; on a periodic or cell-centred grid,
    which has no end node twice, every `stride`-th point from the first (FNO's Burgers: 8192
    points become 1024 with stride 8). On a cell-centred grid `average=True` gives instead
    each coarse cell the mean of the stride^d cells it covers (128 cells with stride 2: 64
    cells of twice the width, each value the mean of four in 2D, at the coarse centres,
    which `coordinates()` gives): the coarse-graining of cell averages, where picking every
    stride-th centre (the default, what FNO and PDEBench do) keeps point values but lands
    half a fine cell off the coarse centres. `field_stats()` are the training split's
    statistics on the full grid.
    """

    def __init__(
        self,
        path: str | Path,
        include_unconverged: bool = False,
        split: str | None = None,
        fields: Sequence[str] | None = None,
        stride: int | None = None,
        average: bool = False,
    ):
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
        keep = self._split_members(split)
        files, rows, samples = [], [], []
        for shard_id, entry in enumerate(self.index["shards"]):
            files.append(self.path / entry["file"])
            try:
                with h5py.File(files[-1], "r") as f:
                    check_format_version(files[-1], f.attrs.get("format_version"))
                    indices = f["params/index"][()]
                    ok = f["stats/converged"][()] if not include_unconverged else None
                    if shard_id == 0:
                        self._shapes = {
                            name: (ds.shape[1:], tuple(d.label for d in ds.dims)[1:])
                            for group in ("inputs", "outputs")
                            for name, ds in f[group].items()
                        }
                        self._groups = {
                            group: tuple(f[group]) for group in ("inputs", "outputs", "params")
                        }
            except (OSError, KeyError) as err:
                raise PdegenError(f"{files[-1]}: unreadable shard ({err})") from None
            for row, sample in enumerate(indices):
                if (ok is None or ok[row]) and (keep is None or int(sample) in keep):
                    rows.append((shard_id, row))
                    samples.append(int(sample))
        if not files:
            self._shapes, self._groups = {}, {"inputs": (), "outputs": (), "params": ()}
        order = np.argsort(samples, kind="stable")
        self.split = split
        self._files = files
        self._locations = [rows[i] for i in order]
        self._samples = np.asarray(samples, dtype=np.int64)[order]
        self._handles: dict[int, h5py.File] = {}
        self._pid = os.getpid()
        self.fields = self._checked_fields(fields)
        self.stride = self._checked_stride(stride)
        self.average = self._checked_average(average)

    def _split_members(self, split: str | None) -> set[int] | None:
        if split is None:
            return None
        splits = self.index.get("splits")
        if not isinstance(splits, dict):
            raise PdegenError(f"{self.path}: split={split!r}: this dataset has no splits")
        if split not in splits:
            raise PdegenError(
                f"split: {split!r} is not a split of this dataset (allowed: {', '.join(splits)})"
            )
        return {int(i) for i in splits[split]}

    def _checked_fields(self, fields: Sequence[str] | None) -> tuple[str, ...]:
        available = (*self._groups["inputs"], *self._groups["outputs"])
        if fields is None:
            return tuple(available)
        if isinstance(fields, str):
            fields = (fields,)
        for name in fields:
            if name not in available:
                raise PdegenError(
                    f"fields: {name!r} is not a field of this dataset "
                    f"(allowed: {', '.join(available)})"
                )
        return tuple(fields)

    def _checked_stride(self, stride: int | None) -> int:
        if stride is None:
            return 1
        if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride < 1:
            raise PdegenError(f"stride: {stride!r} is not allowed (a positive integer)")
        ends = self._grid_has_both_ends()
        for name, (shape, labels) in self._shapes.items():
            for size, label in zip(shape, labels, strict=True):
                spans = size - 1 if ends else size  # intervals a stride must divide
                if label != "t" and spans % stride:
                    divisors = [d for d in range(1, size) if spans % d == 0]
                    raise PdegenError(
                        f"stride: {stride} does not divide the grid of {name} ({size} "
                        f"{'nodes' if ends else 'points'} along {label}: allowed "
                        f"{', '.join(map(str, divisors))})"
                    )
        return int(stride)

    def _checked_average(self, average: bool) -> bool:
        if not isinstance(average, bool | np.bool_):
            raise PdegenError(f"average: {average!r} is not allowed (True or False)")
        if average and self.stride == 1:
            raise PdegenError("average: True needs a stride of 2 or more (the block to average)")
        if average and self._grid_kind() != "cells":
            raise PdegenError(
                f"average: True needs a cell-centred grid, and this dataset's is "
                f"{self._grid_kind()} (allowed: False, which picks every stride-th point)"
            )
        return bool(average)

    def _grid_kind(self) -> str:
        """ "nodes" (both end nodes of each axis stored: the boundary-node families, and an
        unknown family), "cells" (the centres: a cell layout, chosen or the family's own) or
        "periodic" (the torus's points); the last two hold no point twice."""
        from pdegen.families import FAMILIES  # declarations only: no solver is started

        attrs = self.attrs()
        family = FAMILIES.get(str(attrs.get("family", "")))
        try:  # a family with a choice of layout stores the recipe's (`grid.layout`)
            layout = json.loads(attrs.get("recipe", "{}")).get("grid", {}).get("layout")
        except (ValueError, AttributeError, TypeError):
            layout = None
        if family is None:
            return "nodes"
        if family.periodic:
            return "periodic"
        if layout == "cells" or family.layouts[0] == "cells":
            return "cells"
        return "nodes"

    def _grid_has_both_ends(self) -> bool:
        """Whether the stored grid holds both end nodes of each axis (the boundary-node
        families), or no point twice (periodic and cell-centred grids)."""
        return self._grid_kind() == "nodes"

    def _selection(self, name: str, row: int) -> tuple:
        _, labels = self._shapes[name]
        picks = self.stride > 1 and not self.average  # averaging reads every cell
        step = slice(None, None, self.stride) if picks else slice(None)
        return (row, *(slice(None) if label == "t" else step for label in labels))

    def _read(self, f: h5py.File, name: str, row: int, frames: slice | None = None) -> np.ndarray:
        """Row `row` of field `name` of the open shard `f`, as this view reads it: every
        `stride`-th point, or with `average` the block means; `frames`: a part of the time
        axis (the axis after the row) instead of all of it."""
        group = "inputs" if name in self._groups["inputs"] else "outputs"
        selection = list(self._selection(name, row))
        if frames is not None:
            selection[1] = frames
        return self._averaged(f[group][name][tuple(selection)], self._shapes[name][1])

    def _averaged(self, values: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
        """The mean of each stride^d block of cells along the space axes (`average`)."""
        if not self.average or self.stride == 1:
            return values
        shape, space = [], []
        for size, label in zip(values.shape, labels, strict=True):
            if label == "t":
                shape.append(size)
            else:
                shape += [size // self.stride, self.stride]
                space.append(len(shape) - 1)
        return values.reshape(shape).mean(axis=tuple(space), dtype=values.dtype)

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
        item = {}
        for group in ("inputs", "outputs"):
            for name in self._groups[group]:
                if name in self.fields:
                    item[name] = self._read(f, name, row)
        for name, ds in f["params"].items():
            item[name] = ds[row]
        return item

    @property
    def input_fields(self) -> tuple[str, ...]:
        """The selected fields that are the family's inputs (the rest are outputs)."""
        return tuple(n for n in self._groups["inputs"] if n in self.fields)

    @property
    def output_fields(self) -> tuple[str, ...]:
        return tuple(n for n in self._groups["outputs"] if n in self.fields)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Scalar parameters per sample (without "index")."""
        return tuple(n for n in self._groups["params"] if n != "index")

    def coordinates(self) -> dict[str, np.ndarray]:
        """Node coordinates per axis ("t" for trajectories), with the stride applied (with
        `average`, the coarse cells' centres: the means of the centres they cover)."""
        if not self._files:
            return {}
        grid = self._file(0)["grid"]

        def coarse(axis: str) -> np.ndarray:
            values = grid[axis][()]
            if axis == "t":
                return values
            return self._averaged(values, (axis,)) if self.average else values[:: self.stride]

        return {axis: coarse(axis) for axis in grid}

    def field_stats(self) -> dict[str, dict[str, Any]]:
        """{field: {"mean", "std", "min", "max", "count"}} over the training split's converged
        samples (all grid points; `std` with ddof 0), plus "per_frame" lists for fields with a
        time axis: what normalising inputs and targets needs, computed when the data was
        written and merged exactly across shards."""
        stats = self.index.get("field_stats")
        if not isinstance(stats, dict):
            raise PdegenError(f"{self.path}: this dataset has no field statistics")
        return {name: dict(stats[name]) for name in self.fields if name in stats}

    @property
    def splits(self) -> dict[str, list[int]]:
        """{split: generation indices} as assigned at generation (all samples, converged or
        not); `open_dataset(path, split=...)` reads one of them."""
        return {k: list(v) for k, v in self.index.get("splits", {}).items()}

    def as_xy(
        self, x: Sequence[str] | None = None, y: Sequence[str] | None = None, params: bool = True
    ) -> XYView:
        """This dataset as {"x": float32 (C_in, *grid), "y": float32 (C_out, *grid)} items: the
        channel-first layout neuraloperator's Trainer and most FNO code take. `x` defaults to
        the input fields, `y` to the output fields; a field with a time axis contributes one
        channel per frame, and (with `params`) each scalar parameter becomes a constant channel
        of x, since an operator from the fields alone would not see it."""
        return XYView(self, x, y, params)

    def windows(
        self,
        inputs: int = 1,
        outputs: int = 1,
        offset: int | None = None,
        starts: str = "all",
        fields: Sequence[str] | None = None,
        constants: bool = True,
    ):
        """Trajectory windows for training (`pdegen.dataset.windows.TrajectoryWindows`):
        `inputs` frames -> `outputs` frames, the outputs starting `offset` frames after the
        inputs (default: right after; negative: counted from the end, -1 ending on the last
        frame), at every start or only the first. windows() is t -> t + 1; windows(10, 40,
        starts="first") is FNO's 10 -> 40; windows(offset=-1) the initial state -> the final."""
        from pdegen.dataset.windows import TrajectoryWindows

        return TrajectoryWindows(self, inputs, outputs, offset, starts, fields, constants)

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


class XYView:
    """`ShardDataset.as_xy`: the same samples as (x, y) channel stacks in float32."""

    def __init__(
        self,
        dataset: ShardDataset,
        x: Sequence[str] | None,
        y: Sequence[str] | None,
        params: bool,
    ):
        self.dataset = dataset
        self.x = tuple(x) if x is not None else dataset.input_fields
        self.y = tuple(y) if y is not None else dataset.output_fields
        for name in (*self.x, *self.y):
            if name not in dataset.fields:
                raise PdegenError(
                    f"as_xy: {name!r} is not a selected field (allowed: "
                    f"{', '.join(dataset.fields)})"
                )
        self.params = dataset.param_names if params else ()

    def __len__(self) -> int:
        return len(self.dataset)

    def _channels(self, item: dict[str, np.ndarray], name: str) -> np.ndarray:
        _, labels = self.dataset._shapes[name]
        value = np.asarray(item[name], dtype=np.float32)
        return value if labels and labels[0] == "t" else value[None]

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        item = self.dataset[i]
        x = [self._channels(item, name) for name in self.x]
        shape = x[0].shape[1:] if x else self._channels(item, self.y[0]).shape[1:]
        x += [np.full((1, *shape), item[p], dtype=np.float32) for p in self.params]
        y = [self._channels(item, name) for name in self.y]
        return {"x": np.concatenate(x), "y": np.concatenate(y)}

    def batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Stacked {"x": (B, C_in, *grid), "y": (B, C_out, *grid)} for `indices`: one call per
        batch for array libraries without a data loader of their own (JAX, numpy)."""
        items = [self[int(i)] for i in indices]
        return {key: np.stack([item[key] for item in items]) for key in ("x", "y")}


def open_dataset(
    path: str | Path,
    include_unconverged: bool = False,
    split: str | None = None,
    fields: Sequence[str] | None = None,
    stride: int | None = None,
    average: bool = False,
) -> ShardDataset:
    """Open a generated dataset directory (the one holding index.json); see `ShardDataset`
    for `split`, `fields`, `stride` and `average`."""
    return ShardDataset(path, include_unconverged, split, fields, stride, average)
