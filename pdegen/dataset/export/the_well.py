"""Export to The Well's layout, the one `the_well.data.WellDataset` reads.

The Well (github.com/PolymathicAI/the_well) keeps each split as HDF5 files under
`data/<split>/`, each following the specification of its `docs/data_format.md` (root
attributes, `dimensions`, `boundary_conditions`, `scalars`, `t0_fields`/`t1_fields`/
`t2_fields`), and normalisation statistics in `stats.yaml` beside `data/` (the keys
`scripts/compute_statistics.py` writes and `the_well/data/normalization.py` reads). Why the
mapping is what it is (docs/format.md, "Export to The Well", says it per field):

- The Well's samples are windows of trajectories: `n_steps_input` frames of the time-varying
  fields in, `n_steps_output` frames out, with every field whose `time_varying` is false
  handed over whole as `constant_fields`. So a pdegen output is time-varying (a steady
  family's solution gets a time axis of length 1) and every pdegen input is a constant field
  of its trajectory (`sample_varying` true, `time_varying` false). With `n_steps_input=0,
  n_steps_output=1` a steady dataset then yields exactly (x = inputs, y = solution) pairs.
- Components `<name>_x`, `<name>_y` (, `_z`) of one vector are one t1 field `<name>`: The Well
  rotates and flips t1 fields as vectors, and flattens them back to `<name>_x`, ... channels.
- The heat `initial` state is frame 0 of its `solution` (checked, bit for bit, sample by
  sample): written once, as that frame, so that no window is handed a copy of frame 0.
- pdegen's Dirichlet boundary (u = g on every boundary node, or on a cell grid u = 0 on the
  walls half a cell beyond the outer centres) is The Well's `WALL`, the one type that is
  neither periodic nor open; one mask per axis marks its two end points (the boundary
  nodes, or the outer cells next to the walls, as The Well's own cell-centred sets mark
  them). The periodic families' axes are `PERIODIC` (the same masks: the two ends that meet).
- Every file is float32, as the specification says (models built for The Well expect it).

Files are written into a hidden sibling of the target directory, renamed into place at the
end: an export that fails or is interrupted leaves nothing that looks finished (and the next
export to the same target removes what a killed one left).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import shutil
import socket
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from pdegen.dataset.loader import ShardDataset, open_dataset
from pdegen.dataset.splits import SPLITS
from pdegen.dataset.statistics import Partial, merge, partial_moments
from pdegen.errors import PdegenError
from pdegen.families import FAMILIES, Family, family_from_recipe
from pdegen.families.base import SPACE_AXES, TIME_AXIS
from pdegen.recipe.schema import recipe_from_dict

#: version of this export's pdegen additions (the /pdegen group of every file)
EXPORT_VERSION = 1
GRID_TYPE = "cartesian"
#: The Well's name for a boundary that holds given values (pdegen's Dirichlet boundary)
BC_TYPE = "WALL"
#: a periodic family's axes: The Well's `PERIODIC`, its masks marking the same two end points
PERIODIC_BC_TYPE = "PERIODIC"
STATS_KEYS = ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta")
_STRINGS = h5py.string_dtype()


@dataclass(frozen=True)
class WellField:
    """One field of the export and the pdegen fields it is made of."""

    name: str
    #: tensor order: 0 for a scalar per node (t0_fields), 1 for a vector (t1_fields)
    order: int
    #: the pdegen field, or one per vector component in axis order (x, y[, z])
    sources: tuple[str, ...]
    #: has the file's time axis (pdegen outputs); else one value per trajectory (inputs)
    time_varying: bool
    #: the pdegen field itself has a time axis (heat's solution); a time-varying field
    #: without one is a steady output, written as one frame
    pdegen_time: bool

    @property
    def group(self) -> str:
        return f"t{self.order}_fields"


def repeated_inputs(family: Family) -> dict[str, tuple[str, int]]:
    """Inputs that are a frame of an output, exported only as that frame: input -> (output,
    frame). A trajectory whose frame 0 is its stored initial state (the family's
    `time_stepping`) has one."""
    stepping = family.time_stepping
    if stepping is None or not stepping.initial_frame or stepping.initial_input is None:
        return {}
    return {stepping.initial_input: (stepping.trajectory, 0)}


def dataset_family(ds: ShardDataset) -> Family:
    """The family a dataset was generated with, from its stored recipe."""
    return family_from_recipe(recipe_from_dict(json.loads(ds.attrs()["recipe"]), "recipe"))


def well_fields(family: Family) -> list[WellField]:
    """The export's fields for a family's pdegen fields (inputs, then outputs)."""
    inputs, outputs, axes, dim = (
        family.input_names,
        family.output_names,
        family.field_axes(),
        family.dim,
    )
    repeated = repeated_inputs(family)
    space = SPACE_AXES[:dim]
    fields: list[WellField] = []
    taken: set[str] = set()
    for name in inputs:
        if name in taken or name in repeated:
            continue
        timed = axes[name][:1] == (TIME_AXIS,)
        base, _, axis = name.rpartition("_")
        parts = tuple(f"{base}_{a}" for a in space)
        if base and axis in space and all(p in inputs and axes[p] == axes[name] for p in parts):
            fields.append(WellField(base, 1, parts, timed, timed))
            taken.update(parts)
        else:
            fields.append(WellField(name, 0, (name,), timed, timed))
            taken.add(name)
    for name in outputs:
        timed = axes[name][:1] == (TIME_AXIS,)
        fields.append(WellField(name, 0, (name,), True, timed))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):  # a vector named like a scalar field: a family's bug
        raise ValueError(f"{family.name}: export field names collide: {names}")
    return fields


def simulation_parameters(family: str, recipe: Mapping[str, Any]) -> dict[str, float]:
    """The float fields of the family's `problem:` section (Darcy's constant source, heat's
    dt, ...): constants of the whole dataset, which The Well keeps as root attributes listed
    in `simulation_parameters` and as constant scalars."""
    cls = FAMILIES[family].Problem
    hints = typing.get_type_hints(cls)
    stored = recipe["problem"]
    # a field added since the dataset was made (helmholtz's damping) takes its default
    return {
        f.name: float(stored.get(f.name, f.default))
        for f in dataclasses.fields(cls)
        if hints[f.name] is float
    }


@dataclass
class WellExport:
    """What an export wrote: trajectories per split and the unconverged samples left out."""

    source: Path
    out: Path
    family: str
    steady: bool
    trajectories: dict[str, int]
    #: generation indices of each split's samples that did not converge (not exported)
    unconverged: dict[str, list[int]]

    @property
    def loader_options(self) -> str:
        """The WellDataset window that fits: one frame out for a steady dataset, else one
        frame in and one out (any n_steps_input + n_steps_output up to the frame count)."""
        if self.steady:
            return "n_steps_input=0, n_steps_output=1"
        return "n_steps_input=1, n_steps_output=1"

    def lines(self) -> list[str]:
        counts = ", ".join(f"{k} {v}" for k, v in self.trajectories.items())
        left = sum(map(len, self.unconverged.values()))
        per = ", ".join(f"{k} {len(v)}" for k, v in self.unconverged.items())
        return [
            f"exported {self.source} ({self.family}) to {self.out} in The Well's layout: "
            f"{counts} trajectories",
            f"left out {left} unconverged samples ({per})",
            f'load: WellDataset(path="{self.out}", well_split_name="train", {self.loader_options})',
        ]


def export_the_well(path: str | Path, out: str | Path) -> WellExport:
    """Write the dataset at `path` into the new directory `out` in The Well's layout.

    Trajectory i of `out/data/<split>/<name>.hdf5` is `open_dataset(path, split=<split>)[i]`
    (ascending generation index; `/pdegen/index` holds the indices); unconverged samples are
    left out and listed in `/pdegen/unconverged_index`. `out` must not exist.
    """
    source, out = Path(path), Path(out)
    if os.path.lexists(out):
        raise PdegenError(
            f"{out}: already exists (an export writes a new directory; remove it or choose "
            f"another --out)"
        )
    with open_dataset(source, include_unconverged=True) as ds:
        job = _Job(ds, source)  # every check on the source runs before anything is written
        tmp = out.parent / f".{out.name}.tmp-{socket.gethostname()}-{os.getpid()}"
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_temporaries(out)
        try:
            tmp.mkdir()
            moments = _Moments()
            for split in SPLITS:
                directory = tmp / "data" / split
                directory.mkdir(parents=True)
                job.write_split(directory / f"{job.name}.hdf5", split, moments)
            (tmp / "stats.yaml").write_text(yaml.safe_dump(moments.stats(), sort_keys=False))
            if os.path.lexists(out):  # created meanwhile: never replace it
                raise PdegenError(f"{out}: appeared during the export; nothing was replaced")
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return WellExport(
        source=source,
        out=out,
        family=job.family,
        steady=job.steady,
        trajectories={s: len(job.members[s]) for s in SPLITS},
        unconverged={s: job.unconverged[s] for s in SPLITS},
    )


def _remove_dead_temporaries(out: Path) -> None:
    """Delete the temporaries of earlier exports to `out` on this host whose process is gone
    (killed beyond clean-up, by SIGKILL or SIGTERM): they never become `out`."""
    prefix = f".{out.name}.tmp-{socket.gethostname()}-"
    for tmp in out.parent.glob(f"{glob.escape(prefix)}*"):
        pid = tmp.name[len(prefix) :]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


class _Job:
    """The checked plan of one export: fields, scalars, grid and each split's trajectories."""

    def __init__(self, ds: ShardDataset, source: Path):
        self.ds, self.source = ds, source
        attrs = ds.attrs()
        self.family = str(attrs.get("family", ""))
        if self.family not in FAMILIES:
            raise PdegenError(
                f"{source}: family {self.family!r} is not one this pdegen knows "
                f"(allowed: {', '.join(FAMILIES)})"
            )
        self.recipe = json.loads(attrs["recipe"])
        self.name = str(attrs.get("dataset", self.recipe["name"]))
        splits = ds.splits
        if set(splits) != set(SPLITS):
            raise PdegenError(
                f"{source}: no train/valid/test splits in its index (written before pdegen "
                f"stored them); regenerate it to export"
            )
        self.axes = ds.axes
        coordinates = ds.coordinates()
        self.space = tuple(a for a in SPACE_AXES if a in coordinates)
        self.coordinates = {a: coordinates[a] for a in self.space}
        self.times = coordinates.get(TIME_AXIS, np.zeros(1))
        self.steady = TIME_AXIS not in coordinates
        family = dataset_family(ds)
        self.bc_type = PERIODIC_BC_TYPE if family.periodic else BC_TYPE
        self.fields = well_fields(family)
        self.repeated = repeated_inputs(family)
        self.constants = simulation_parameters(self.family, self.recipe)
        self.per_sample = ds.param_names
        clash = (set(self.constants) | set(self.per_sample)) & {f.name for f in self.fields}
        if clash:  # WellDataset caches fields and scalars in one dict keyed by name
            raise ValueError(f"{self.family}: scalars named like fields: {sorted(clash)}")
        converged = ds.stats()["converged"] if len(ds) else np.zeros(0, dtype=bool)
        self.position = {int(g): i for i, g in enumerate(ds.sample_indices)}
        ok = {int(g) for g, c in zip(ds.sample_indices, converged, strict=True) if c}
        self.members = {s: sorted(int(i) for i in splits[s] if int(i) in ok) for s in SPLITS}
        self.unconverged = {
            s: sorted(int(i) for i in splits[s] if int(i) not in ok) for s in SPLITS
        }
        if not self.members["train"]:
            raise PdegenError(
                f"{source}: no converged sample in the train split, so no stats.yaml "
                f"(The Well normalises with the training statistics)"
            )
        self.provenance = {k: v for k, v in attrs.items() if k != "batch"}

    def shape(self, field: WellField, n: int) -> tuple[int, ...]:
        grid = tuple(self.coordinates[a].size for a in self.space)
        time = (self.times.size,) if field.time_varying else ()
        return (n, *time, *grid, *(len(self.space),) * field.order)

    def write_split(self, path: Path, split: str, moments: _Moments) -> None:
        members = self.members[split]
        n = len(members)
        dim = len(self.space)
        with h5py.File(path, "w") as f:
            f.attrs["dataset_name"] = self.name
            f.attrs["grid_type"] = GRID_TYPE
            f.attrs["n_spatial_dims"] = dim
            f.attrs["n_trajectories"] = n
            f.attrs["simulation_parameters"] = _string_list(self.constants)
            for key, value in self.constants.items():
                f.attrs[key] = value

            dims = f.create_group("dimensions")
            dims.attrs["spatial_dims"] = _string_list(self.space)
            _flagged(dims.create_dataset("time", data=self.times.astype(np.float32)), False, True)
            for axis in self.space:
                coords = self.coordinates[axis].astype(np.float32)
                _flagged(dims.create_dataset(axis, data=coords), False, False)

            bcs = f.create_group("boundary_conditions")
            for axis in self.space:
                bc = bcs.create_group(f"{axis}_{self.bc_type.lower()}")
                bc.attrs["bc_type"] = self.bc_type
                bc.attrs["associated_dims"] = _string_list([axis])
                bc.attrs["associated_fields"] = _string_list(self.ds.output_fields)
                _flagged(bc, False, False)
                mask = np.zeros(self.coordinates[axis].size, dtype=bool)
                mask[[0, -1]] = True
                bc.create_dataset("mask", data=mask)

            scalars = f.create_group("scalars")
            scalars.attrs["field_names"] = _string_list([*self.constants, *self.per_sample])
            for key, value in self.constants.items():
                _flagged(scalars.create_dataset(key, data=np.float32(value)), False, False)
            for key in self.per_sample:
                _flagged(scalars.create_dataset(key, (n,), np.float32), True, False)

            for order in range(3):
                group = f.create_group(f"t{order}_fields")
                here = [fld for fld in self.fields if fld.order == order]
                group.attrs["field_names"] = _string_list([fld.name for fld in here])
                for fld in here:
                    shape = self.shape(fld, n)
                    frame = shape[2:] if fld.time_varying else shape[1:]
                    lead = (1, 1) if fld.time_varying else (1,)
                    chunks = (*lead, *frame) if n else None  # one frame of one trajectory
                    data = group.create_dataset(fld.name, shape, np.float32, chunks=chunks)
                    data.attrs["dim_varying"] = np.ones(dim, dtype=bool)
                    _flagged(data, True, fld.time_varying)

            extra = f.create_group("pdegen")
            extra.create_dataset("index", data=np.asarray(members, dtype=np.int64))
            extra.create_dataset(
                "unconverged_index", data=np.asarray(self.unconverged[split], dtype=np.int64)
            )
            for key, value in self.provenance.items():
                extra.attrs[key] = value
            extra.attrs["export_version"] = EXPORT_VERSION
            extra.attrs["split"] = split
            extra.attrs["unconverged"] = len(self.unconverged[split])
            extra.attrs["inputs_as_frames"] = json.dumps(self.repeated)

            for row, index in enumerate(members):
                item = self._item(index)
                for fld in self.fields:
                    value = self._value(item, fld)
                    f[fld.group][fld.name][row] = value
                    if split == "train":
                        moments.add(fld, value)
                for key in self.per_sample:
                    scalars[key][row] = np.float32(item[key])

    def _item(self, index: int) -> dict[str, np.ndarray]:
        try:
            item = self.ds[self.position[index]]
        except (OSError, KeyError) as err:
            raise PdegenError(f"{self.source}: sample {index} unreadable ({err})") from None
        for name, (output, frame) in self.repeated.items():
            if not np.array_equal(item[name], item[output][frame]):
                raise ValueError(  # the family changed: the mapping must be revisited
                    f"sample {index}: {name} is not frame {frame} of {output}; export it"
                )
        return item

    def _value(self, item: Mapping[str, np.ndarray], field: WellField) -> np.ndarray:
        parts = [np.asarray(item[s], dtype=np.float32) for s in field.sources]
        value = parts[0] if field.order == 0 else np.stack(parts, axis=-1)
        return value[None] if field.time_varying and not field.pdegen_time else value


class _Moments:
    """Training-split moments per exported field and vector component, and of the differences
    of consecutive frames of time-varying fields: what The Well's
    scripts/compute_statistics.py computes (float64, population variance, over every
    trajectory, frame and node), merged one trajectory at a time (`pdegen.dataset.statistics`)."""

    def __init__(self) -> None:
        self.order: dict[str, int] = {}
        self.values: dict[str, list[Partial]] = {}
        self.deltas: dict[str, list[Partial]] = {}

    @staticmethod
    def _merge(into: dict[str, list[Partial]], name: str, parts: list[Partial]) -> None:
        if name in into:
            parts = [merge(a, b) for a, b in zip(into[name], parts, strict=True)]
        into[name] = parts

    def add(self, field: WellField, value: np.ndarray) -> None:
        """One trajectory of `field` as exported (float32), time axis first if it has one."""
        value = np.asarray(value, dtype=np.float64)
        parts = [value] if field.order == 0 else list(np.moveaxis(value, -1, 0))
        self.order[field.name] = field.order
        self._merge(self.values, field.name, [partial_moments(p, False) for p in parts])
        if field.time_varying:
            diffs = [np.diff(p, axis=0) for p in parts]
            self._merge(self.deltas, field.name, [partial_moments(d, False) for d in diffs])

    def stats(self) -> dict[str, dict[str, Any]]:
        """stats.yaml: {key: {field: float, or one per component}} for the STATS_KEYS; the
        delta keys for time-varying fields only. A length-1 time axis has no differences: its
        delta statistics are 0 (WellDataset's ZScoreNormalization needs `mean_delta` of
        every time-varying field to start, and clips a std of 0 to its min_std)."""
        out: dict[str, dict[str, Any]] = {key: {} for key in STATS_KEYS}
        for suffix, table in (("", self.values), ("_delta", self.deltas)):
            for name, parts in table.items():
                got = [_finish(p) for p in parts]
                for i, key in enumerate(("mean", "std", "rms")):
                    values = [g[i] for g in got]
                    out[key + suffix][name] = values[0] if self.order[name] == 0 else values
        return out


def _finish(p: Partial) -> tuple[float, float, float]:
    if p["count"] == 0:
        return 0.0, 0.0, 0.0
    variance = p["m2"] / p["count"]
    return float(p["mean"]), math.sqrt(variance), math.sqrt(variance + p["mean"] ** 2)


def _string_list(values) -> np.ndarray:
    """A list of names as The Well's files hold them: variable-length strings (h5py reads
    them back as str, which its format checker requires), also when empty."""
    return np.asarray(list(values), dtype=_STRINGS)


def _flagged(obj: h5py.Dataset | h5py.Group, sample_varying: bool, time_varying: bool):
    obj.attrs["sample_varying"] = sample_varying
    obj.attrs["time_varying"] = time_varying
    return obj


__all__ = [
    "BC_TYPE",
    "STATS_KEYS",
    "WellExport",
    "WellField",
    "export_the_well",
    "simulation_parameters",
    "dataset_family",
    "repeated_inputs",
    "well_fields",
]
