"""`pdegen export --format the-well`: the files The Well's WellDataset reads, checked with h5py.

The Well is a consumer, not a dependency, so its published specification
(PolymathicAI/the_well: docs/data_format.md) and every check of its validator
(scripts/check_thewell_formatting.py) are restated here (`check_well_file`), and the reader's
expectations (the_well/data/datasets.py, normalization.py, scripts/compute_statistics.py) are
checked on real exports of real generated datasets: steady 2D Darcy (with unconverged
samples), a heat trajectory, 3D convection-diffusion (a vector field), Helmholtz (a per-sample
scalar), Poisson (non-zero Dirichlet values), and the periodic 1D Burgers and 2D Navier-Stokes
trajectories (`PERIODIC` boundaries, windows with n_steps_input >= 1). With
PDEGEN_THE_WELL_PYTHON naming a Python that has the_well installed, the real WellDataset
loads every export as well.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from pdegen import open_dataset
from pdegen.dataset.export import export_dataset
from pdegen.dataset.export.the_well import (
    STATS_KEYS,
    dataset_family,
    export_the_well,
    simulation_parameters,
    well_fields,
)
from pdegen.dataset.splits import SPLITS
from pdegen.errors import PdegenError
from pdegen.families import FAMILIES
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate

ROOT = Path(__file__).parent.parent
PDEGEN = [sys.executable, "-m", "pdegen.cli"]
SPLIT_SHARES = {"train": 0.5, "valid": 0.25, "test": 0.25}

RECIPES = {
    "darcy": {
        "family": "darcy",
        "samples": 12,
        "seed": 3,
        "grid": {"n": 15},
        "problem": {"coefficient": {"kind": "threshold"}, "source": 1.0},
        "solver": {"method": "cg", "pc": "jacobi", "ordering": "none"},
    },
    "heat": {
        "family": "heat",
        "samples": 8,
        "seed": 1,
        "grid": {"n": 11},
        "problem": {"steps": 4, "dt": 0.004},
    },
    "convection3d": {
        "family": "convection-diffusion",
        "samples": 8,
        "seed": 2,
        "grid": {"n": 5, "dim": 3},
        "problem": {"epsilon": 0.05},
    },
    "helmholtz": {
        "family": "helmholtz",
        "samples": 8,
        "seed": 4,
        "grid": {"n": 31},
        "problem": {"wavenumber": {"min": 6.0, "max": 12.0}},
    },
    "helmholtz-damped": {  # a complex solution: solution and solution_imag
        "family": "helmholtz",
        "samples": 8,
        "seed": 4,
        "grid": {"n": 31},
        "problem": {"wavenumber": {"min": 6.0, "max": 12.0}, "damping": 0.05},
    },
    "poisson": {"family": "poisson", "samples": 8, "seed": 5, "grid": {"n": 9}},
    "burgers": {
        "family": "burgers",
        "samples": 8,
        "seed": 6,
        "grid": {"n": 64, "dim": 1},
        "problem": {"initial": {"law": "sines"}, "t_end": 0.2, "frames": 4},
        "solver": {"method": "auto", "pc": "auto"},
    },
    "navier-stokes": {
        "family": "navier-stokes",
        "samples": 8,
        "seed": 7,
        "grid": {"n": 32, "dim": 2},
        "problem": {"t_end": 1.0, "frames": 3, "stored_points": 16},
        "solver": {"method": "auto", "pc": "auto"},
    },
    "cavity": {  # the MAC grid's velocities and pressure on the nodes, a trajectory
        "family": "cavity",
        "samples": 8,
        "seed": 9,
        "grid": {"n": 11},
        "problem": {"t_end": 0.2, "frames": 2, "dt": 0.05},
        "solver": {"method": "gmres", "pc": "ilu"},
    },
    "channel": {  # cell-centred on a rectangle (32 x 16 cells), an obstacle mask, a trajectory
        "family": "channel",
        "samples": 8,
        "seed": 11,
        "grid": {"n": 16},
        "problem": {
            "length": 2.0,
            "cylinders": {
                "radius": {"min": 0.125, "max": 0.2},
                "centre_x": {"min": 0.4, "max": 0.8},
            },
            "t_end": 0.2,
            "frames": 2,
            "dt": 0.05,
        },
        "solver": {"method": "gmres", "pc": "ilu"},
    },
    "acoustic": {  # cell-centred, rigid walls, a trajectory
        "family": "acoustic",
        "samples": 8,
        "seed": 8,
        "grid": {"n": 16, "length": 2.0},
        "problem": {
            "density": {"law": "layers", "log_contrast": {"min": -0.2, "max": 0.2}},
            "initial": {"width": 0.3, "radius": {"min": 0.2, "max": 0.3}},
            "t_end": 0.3,
            "frames": 3,
            "dt": 0.02,
        },
    },
}


def build(name: str, directory: Path, **solver) -> Path:
    data = {**RECIPES[name], "name": name}
    data["solver"] = {**data.get("solver", {}), **solver}
    data["output"] = {"dir": str(directory), "shard_size": 3, "splits": SPLIT_SHARES}
    out = directory / name
    generate(recipe_from_dict(data), out=out, progress=False, engine="serial")
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Every source dataset; Darcy's has unconverged samples in it: its max_iterations is the
    median of the CG iteration counts the samples need."""
    base = tmp_path_factory.mktemp("sources")
    made = {name: build(name, base) for name in RECIPES if name != "darcy"}
    probe = build("darcy", base / "probe")
    with open_dataset(probe) as ds:
        needed = np.sort(ds.stats()["iterations"])
    made["darcy"] = build("darcy", base, max_iterations=int(needed[len(needed) // 2]))
    return made


@pytest.fixture(scope="module")
def exports(sources, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    return {
        name: export_the_well(path, base / f"{name}-well").out for name, path in sources.items()
    }


def split_file(export: Path, split: str) -> Path:
    files = sorted((export / "data" / split).iterdir())
    assert len(files) == 1, files
    return files[0]


# -- The Well's validator, scripts/check_thewell_formatting.py, check by check -------------


def check_flagged(f: h5py.File, obj, kind: str = "", order: int = 0, spatial: bool = False):
    """check_dataset(): sample_varying/time_varying booleans; fields: dim_varying a list of
    n_spatial_dims booleans; boundary conditions: bc_type a string naming the group, the
    associated lists, a mask; and the shape the flags imply."""
    for attr in ("sample_varying", "time_varying"):
        assert isinstance(obj.attrs[attr], bool | np.bool_), (obj.name, attr)
    dims = f["dimensions"]
    spatial_dims = list(dims.attrs["spatial_dims"])
    if kind == "field":
        dim_varying = obj.attrs["dim_varying"]
        assert isinstance(dim_varying, list | np.ndarray), obj.name
        assert len(dim_varying) == f.attrs["n_spatial_dims"], obj.name
        assert all(isinstance(v, bool | np.bool_) for v in dim_varying), obj.name
    if kind == "bc":
        bc_type = obj.attrs["bc_type"]
        assert isinstance(bc_type, str), obj.name
        assert bc_type.lower() in obj.name, obj.name  # the validator warns otherwise
        for attr in ("associated_fields", "associated_dims"):
            assert isinstance(obj.attrs[attr], list | np.ndarray), (obj.name, attr)
        for dim in obj.attrs["associated_dims"]:
            assert isinstance(dim, str) and dim in spatial_dims, obj.name
            assert dim in obj.name.rpartition("/")[2], obj.name  # the validator warns otherwise
        assert "mask" in obj, obj.name
    expected: tuple[int, ...] = ()
    if obj.attrs["sample_varying"]:
        expected += (f.attrs["n_trajectories"],)
    if obj.attrs["time_varying"]:
        expected += (dims["time"].shape[-1],)
    if kind == "field":
        for i, dim in enumerate(spatial_dims):
            if obj.attrs["dim_varying"][i]:
                expected += (dims[dim].shape[-1],)
        expected += (f.attrs["n_spatial_dims"],) * order
    if kind == "bc":
        expected += tuple(
            dims[d].shape[-1] for d in spatial_dims if d in obj.attrs["associated_dims"]
        )
    current = obj.shape[:-1] if spatial else obj["mask"].shape if kind == "bc" else obj.shape
    assert current == expected, (obj.name, current, expected)


def check_well_file(path: Path) -> None:
    """check_hdf5_format(): every assertion the validator makes, as assertions here."""
    with h5py.File(path, "r") as f:
        assert isinstance(f.attrs["dataset_name"], str)
        assert isinstance(f.attrs["n_spatial_dims"], int | np.integer)
        assert isinstance(f.attrs["n_trajectories"], int | np.integer)
        assert isinstance(f.attrs["grid_type"], str)
        for key in f.attrs["simulation_parameters"]:
            assert isinstance(key, str) and key in f.attrs and key in f["scalars"], key
        dims = f["dimensions"]
        check_flagged(f, dims["time"])
        spatial_dims = dims.attrs["spatial_dims"]
        assert isinstance(spatial_dims, list | np.ndarray)
        assert len(spatial_dims) == f.attrs["n_spatial_dims"]
        for key in spatial_dims:
            assert isinstance(key, str)
            check_flagged(f, dims[key], spatial=True)
        for order in range(3):
            group = f[f"t{order}_fields"]
            assert isinstance(group.attrs["field_names"], list | np.ndarray)
            for key in group.attrs["field_names"]:
                assert isinstance(key, str)
                check_flagged(f, group[key], "field", order)
        scalars = f["scalars"]
        assert isinstance(scalars.attrs["field_names"], list | np.ndarray)
        for key in scalars.attrs["field_names"]:
            assert isinstance(key, str)
            check_flagged(f, scalars[key])
        for key in f["boundary_conditions"]:
            check_flagged(f, f["boundary_conditions"][key], "bc")


# -- the export against the specification and the source ---------------------------------


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_file_tree_root_attributes_and_the_validators_checks(name, sources, exports):
    export = exports[name]
    with open_dataset(sources[name]) as ds:
        attrs, recipe = ds.attrs(), json.loads(ds.attrs()["recipe"])
    files = sorted(str(p.relative_to(export)) for p in export.rglob("*") if p.is_file())
    assert files == sorted([*(f"data/{s}/{name}.hdf5" for s in SPLITS), "stats.yaml"])
    assert not [p for p in export.parent.iterdir() if p.name.startswith(f".{export.name}")]
    problem = FAMILIES[attrs["family"]].Problem
    floats = [k for k, v in problem.__dataclass_fields__.items() if v.type in (float, "float")]
    for split in SPLITS:
        check_well_file(split_file(export, split))
        with (
            h5py.File(split_file(export, split)) as f,
            open_dataset(sources[name], split=split) as ds,
        ):
            assert f.attrs["dataset_name"] == name
            assert f.attrs["grid_type"] == "cartesian"
            assert f.attrs["n_spatial_dims"] == recipe["grid"]["dim"]
            assert f.attrs["n_trajectories"] == len(ds)
            assert list(f.attrs["simulation_parameters"]) == floats
            for key in floats:
                assert isinstance(f.attrs[key], float | np.floating)
                assert f.attrs[key] == float(recipe["problem"][key])
            assert set(f) == {
                "dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields",
                "t2_fields", "pdegen",
            }  # fmt: skip
            extra = f["pdegen"]
            assert extra.attrs["family"] == attrs["family"] and extra.attrs["split"] == split
            assert extra.attrs["recipe"] == attrs["recipe"]
            assert extra.attrs["recipe_sha256"] == attrs["recipe_sha256"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_dimensions_are_the_datasets_coordinates(name, sources, exports):
    with open_dataset(sources[name]) as ds:
        coordinates, axes = ds.coordinates(), ds.axes
    space = [a for a in "xyz" if a in coordinates]
    for split in SPLITS:
        with h5py.File(split_file(exports[name], split)) as f:
            dims = f["dimensions"]
            assert list(dims.attrs["spatial_dims"]) == space
            assert set(dims) == {"time", *space}
            for axis in space:
                assert dims[axis].dtype == np.float32
                assert np.array_equal(dims[axis][()], coordinates[axis].astype(np.float32))
                assert not dims[axis].attrs["sample_varying"]
                assert not dims[axis].attrs["time_varying"]
            timed = any(a[0] == "t" for a in axes.values())
            expected = coordinates["t"] if timed else np.zeros(1)  # steady: one frame at 0
            assert dims["time"].dtype == np.float32
            assert np.array_equal(dims["time"][()], expected.astype(np.float32))
            assert not dims["time"].attrs["sample_varying"] and dims["time"].attrs["time_varying"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_fields_and_scalars_are_the_pdegen_samples_in_order(name, sources, exports):
    """Trajectory i of data/<split>/ is open_dataset(path, split=<split>)[i]; /pdegen/index
    says which generation index it is."""
    for split in SPLITS:
        with (
            h5py.File(split_file(exports[name], split)) as f,
            open_dataset(sources[name], split=split) as ds,
        ):
            family = ds.attrs()["family"]
            dim = len(f["dimensions"].attrs["spatial_dims"])
            plan = well_fields(dataset_family(ds))
            assert np.array_equal(f["pdegen/index"][()], ds.sample_indices)
            assert f["pdegen/index"].dtype == np.int64
            for order in range(3):
                names = [p.name for p in plan if p.order == order]
                assert list(f[f"t{order}_fields"].attrs["field_names"]) == names
                assert set(f[f"t{order}_fields"]) == set(names)
            params = ds.params()
            for row in range(len(ds)):
                item = ds[row]
                for p in plan:
                    data = f[p.group][p.name]
                    assert data.dtype == np.float32
                    assert list(data.attrs["dim_varying"]) == [True] * dim
                    assert data.attrs["sample_varying"]
                    assert bool(data.attrs["time_varying"]) == p.time_varying
                    parts = [item[s].astype(np.float32) for s in p.sources]
                    want = parts[0] if p.order == 0 else np.stack(parts, axis=-1)
                    if p.time_varying and not p.pdegen_time:
                        want = want[None]  # a steady output: one frame
                    assert np.array_equal(data[row], want), (p.name, row)
                if family == "heat":  # the initial state is the solution's frame 0
                    initial = item["initial"].astype(np.float32)
                    assert np.array_equal(f["t0_fields/solution"][row, 0], initial)
            scalars = f["scalars"]
            constants = list(f.attrs["simulation_parameters"])
            assert list(scalars.attrs["field_names"]) == [*constants, *ds.param_names]
            for key in constants:
                assert scalars[key].shape == () and scalars[key].dtype == np.float32
                assert scalars[key][()] == np.float32(f.attrs[key])
                assert not scalars[key].attrs["sample_varying"]
                assert not scalars[key].attrs["time_varying"]
            for key in ds.param_names:
                assert scalars[key].attrs["sample_varying"]
                assert not scalars[key].attrs["time_varying"]
                assert np.array_equal(scalars[key][()], params[key].astype(np.float32))


def test_the_mapping_per_family():
    """Inputs constant, outputs time-varying, velocity one vector, heat's initial state as the
    solution's first frame, the problem's float fields as simulation parameters;
    docs/format.md says the same."""
    got = {}
    for name, cls in FAMILIES.items():
        for dim in cls.grid_dims:
            family = cls(6, dim, cls.Problem())
            plan = well_fields(family)
            got[name, dim] = {(p.group, p.name, p.sources, p.time_varying) for p in plan}
    solution = ("t0_fields", "solution", ("solution",), True)
    assert got["darcy", 2] == {("t0_fields", "coefficient", ("coefficient",), False), solution}
    assert got["heat", 2] == {("t0_fields", "coefficient", ("coefficient",), False), solution}
    assert got["convection-diffusion", 2] == {
        ("t1_fields", "velocity", ("velocity_x", "velocity_y"), False),
        solution,
    }
    assert got["convection-diffusion", 3] == {
        ("t1_fields", "velocity", ("velocity_x", "velocity_y", "velocity_z"), False),
        solution,
    }
    assert got["helmholtz", 2] == {
        ("t0_fields", "coefficient", ("coefficient",), False),
        ("t0_fields", "source", ("source",), False),
        solution,
    }
    assert got["poisson", 2] == {
        ("t0_fields", "source", ("source",), False),
        ("t0_fields", "boundary", ("boundary",), False),
        solution,
    }
    constants = {
        "darcy": ["source"],
        "poisson": [],
        "helmholtz": ["min_points_per_wavelength", "damping"],
        "heat": ["source", "dt"],
        "convection-diffusion": ["epsilon", "speed", "source"],
        "elasticity": ["poisson_ratio", "gravity"],
        "nonlinear-diffusion": ["beta"],
        "reaction-diffusion": ["epsilon", "rate", "dt"],
        "stokes": [],
        "burgers": ["t_end", "cfl"],
        "navier-stokes": ["t_end", "cfl", "amplitude", "drag"],
        "kuramoto-sivashinsky": ["t_end", "cfl", "warmup"],
        "advection": ["t_end", "cfl"],
        "fisher-kpp": ["t_end", "cfl"],
        "fitzhugh-nagumo": ["du", "dv", "k", "t_end", "dt", "scale"],
        "cavity": ["t_end", "dt"],
        "channel": ["length", "inflow", "t_end", "dt"],
        "acoustic": [
            "t_end",
            "dt",
            "cfl",
            "absorbing",
            "absorbing_strength",
            "min_points_per_wavelength",
        ],
        "diffusion-sorption": [
            "diffusivity",
            "porosity",
            "density",
            "freundlich_k",
            "freundlich_n",
            "initial_max",
            "t_end",
            "dt",
        ],
    }
    for name, cls in FAMILIES.items():
        recipe = {"problem": dataclasses.asdict(cls.Problem())}
        assert list(simulation_parameters(name, recipe)) == constants[name], name
    # a dataset made before a field existed (helmholtz's damping) exports its default
    before = dataclasses.asdict(FAMILIES["helmholtz"].Problem())
    del before["damping"]
    assert simulation_parameters("helmholtz", {"problem": before})["damping"] == 0.0
    docs = (ROOT / "docs" / "format.md").read_text()
    section = docs[docs.index("## Export to The Well") :]
    for (name, _), fields in got.items():
        for group, field, sources_, _ in fields:
            row = f"| `{name}` | {', '.join(f'`{s}`' for s in sources_)} | `{group}/{field}` |"
            assert row in section, row


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_boundary_masks_mark_exactly_the_boundary_nodes(name, sources, exports):
    with open_dataset(sources[name], split="train") as ds:
        first = ds[0]
        family = ds.attrs()["family"]
        stored_outputs = set(ds.output_fields)  # helmholtz: solution_imag only with damping
    periodic = FAMILIES[family].periodic
    kind = "periodic" if periodic else "wall"
    with h5py.File(split_file(exports[name], "train")) as f:
        space = list(f["dimensions"].attrs["spatial_dims"])
        bcs = f["boundary_conditions"]
        assert set(bcs) == {f"{axis}_{kind}" for axis in space}
        on_boundary = np.zeros([f["dimensions"][a].size for a in space], dtype=bool)
        for i, axis in enumerate(space):
            bc = bcs[f"{axis}_{kind}"]
            assert bc.attrs["bc_type"] == kind.upper()
            assert list(bc.attrs["associated_dims"]) == [axis]
            declared = FAMILIES[family].outputs.items()
            outputs = [n for n, axes in declared if len(space) in axes.dims and n in stored_outputs]
            assert sorted(bc.attrs["associated_fields"]) == sorted(outputs)
            assert not bc.attrs["sample_varying"] and not bc.attrs["time_varying"]
            mask = bc["mask"][()]
            assert mask.dtype == bool
            coords = f["dimensions"][axis][()]
            if periodic or not FAMILIES[family].stores_boundary_nodes:
                # periodic: the two ends that meet; cell centres: the cells along the walls
                assert mask.tolist() == [True] + [False] * (coords.size - 2) + [True]
                continue
            assert np.array_equal(mask, (coords == 0.0) | (coords == 1.0))  # the end nodes
            shape = [1] * len(space)
            shape[i] = mask.size
            on_boundary |= mask.reshape(shape)
        if periodic or not FAMILIES[family].stores_boundary_nodes:
            return  # no boundary values stored: the walls lie between cells
        if "solution" not in f["t0_fields"]:
            return  # velocity and pressure (cavity): the pressure has no boundary values
        # the nodes the masks mark are where pdegen's Dirichlet values u = g hold
        if family == "poisson":  # g non-zero somewhere: the check below is not vacuous
            g = first["boundary"].astype(np.float32)
            assert np.any(g[on_boundary] != 0) and not np.any(g[~on_boundary])
        else:
            g = np.zeros(on_boundary.shape, dtype=np.float32)
        for frame in f["t0_fields/solution"][0]:
            assert np.array_equal(frame[on_boundary], g[on_boundary])
            assert np.any(frame[~on_boundary] != 0)


def numpy_stats(export: Path) -> dict[str, dict]:
    """stats.yaml recomputed with numpy over the exported train file (float64; the component
    axis of a vector kept; differences of consecutive frames for time-varying fields)."""
    out: dict[str, dict] = {key: {} for key in STATS_KEYS}
    with h5py.File(split_file(export, "train")) as f:
        for order in range(3):
            group = f[f"t{order}_fields"]
            for name in group.attrs["field_names"]:
                data = group[name][()].astype(np.float64)
                series = [("", data)]
                if group[name].attrs["time_varying"]:
                    series.append(("_delta", data[:, 1:] - data[:, :-1]))
                for suffix, values in series:
                    axes = tuple(range(values.ndim - order))
                    empty = values.size == 0
                    mean = (
                        np.zeros(values.shape[values.ndim - order :])
                        if empty
                        else values.mean(axes)
                    )
                    std = np.zeros_like(mean) if empty else values.std(axes)
                    rms = np.zeros_like(mean) if empty else np.sqrt((values**2).mean(axes))
                    for key, value in (("mean", mean), ("std", std), ("rms", rms)):
                        out[key + suffix][name] = value.tolist()
    return out


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_stats_yaml_is_compute_statistics_over_the_train_file(name, sources, exports):
    stats = yaml.safe_load((exports[name] / "stats.yaml").read_text())
    assert list(stats) == list(STATS_KEYS)
    want = numpy_stats(exports[name])
    with h5py.File(split_file(exports[name], "train")) as f:
        fields = [n for o in range(3) for n in f[f"t{o}_fields"].attrs["field_names"]]
        timed = [
            n
            for o in range(3)
            for n in f[f"t{o}_fields"].attrs["field_names"]
            if f[f"t{o}_fields"][n].attrs["time_varying"]
        ]
    for key in STATS_KEYS:
        assert set(stats[key]) == set(timed if key.endswith("_delta") else fields), key
        for field, value in stats[key].items():
            assert np.allclose(value, want[key][field], rtol=1e-12, atol=1e-15), (key, field)
            assert isinstance(value, float | list), (key, field)
    # the same numbers pdegen computed at generation, where they mean the same thing
    with open_dataset(sources[name]) as ds:
        pdegen = ds.field_stats()
        plan = well_fields(dataset_family(ds))
    for p in plan:
        for i, source in enumerate(p.sources):
            mean, std = (np.atleast_1d(stats[key][p.name])[i] for key in ("mean", "std"))
            scale = pdegen[source]["std"] + abs(pdegen[source]["mean"])
            assert abs(mean - pdegen[source]["mean"]) <= 1e-6 * scale, (p.name, source)
            assert abs(std - pdegen[source]["std"]) <= 1e-6 * scale, (p.name, source)
    if name in ("darcy", "helmholtz", "poisson", "convection3d"):  # steady: no differences
        assert stats["mean_delta"] == {"solution": 0.0} and stats["std_delta"] == {"solution": 0.0}


def test_unconverged_samples_are_left_out_and_counted(sources, exports, tmp_path):
    with open_dataset(sources["darcy"], include_unconverged=True) as everything:
        converged = dict(
            zip(everything.sample_indices.tolist(), everything.stats()["converged"], strict=True)
        )
        splits = everything.splits
    assert 0 < sum(converged.values()) < len(converged)  # the fixture made a mix
    left_out = {s: [i for i in splits[s] if not converged[i]] for s in SPLITS}
    assert left_out["train"]
    for split in SPLITS:
        with h5py.File(split_file(exports["darcy"], split)) as f:
            kept = f["pdegen/index"][()].tolist()
            assert kept == [i for i in splits[split] if converged[i]]
            assert f["pdegen/unconverged_index"][()].tolist() == left_out[split]
            assert f["pdegen"].attrs["unconverged"] == len(left_out[split])
            assert sorted(kept + left_out[split]) == sorted(splits[split])  # exactly the split
            assert f.attrs["n_trajectories"] == len(kept)
    summary = export_the_well(sources["darcy"], tmp_path / "again")
    assert summary.unconverged == left_out
    assert summary.trajectories == {s: len(splits[s]) - len(left_out[s]) for s in SPLITS}
    total = sum(map(len, left_out.values()))
    assert f"left out {total} unconverged samples (train {len(left_out['train'])}" in "\n".join(
        summary.lines()
    )


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_split_files_hold_exactly_the_splits_samples(name, sources, exports):
    with open_dataset(sources[name]) as ds:
        splits = ds.splits
    seen = []
    for split in SPLITS:
        with h5py.File(split_file(exports[name], split)) as f:
            index = f["pdegen/index"][()].tolist()
            assert set(index) <= set(splits[split]) and index == sorted(index)
            seen += index + f["pdegen/unconverged_index"][()].tolist()
    assert sorted(seen) == sorted(i for s in SPLITS for i in splits[s])


def test_time_varying_fields_are_chunked_by_frame(exports):
    """WellDataset reads windows of frames (`field[traj, t:t + n]`), constant fields whole:
    one chunk is one frame of one trajectory, or one trajectory's constant field."""
    with h5py.File(split_file(exports["heat"], "train")) as f:
        solution, coefficient = f["t0_fields/solution"], f["t0_fields/coefficient"]
        assert solution.shape[1] == 5 == f["dimensions/time"].shape[0]  # steps + 1 frames
        assert solution.chunks == (1, 1, *solution.shape[2:])
        assert coefficient.chunks == (1, *coefficient.shape[1:])
        assert solution.compression is None  # as The Well's files: read with fsspec blocks


# -- the command line: success, bad input, interruption -----------------------------------


def run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*PDEGEN, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def one_line_error(result, *fragments: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_cli_export(sources, tmp_path):
    result = run(["export", str(sources["heat"]), "--format", "the-well", "--out", "w"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "in The Well's layout: train" in result.stdout
    assert "left out 0 unconverged samples (train 0, valid 0, test 0)" in result.stdout
    assert 'WellDataset(path="w", well_split_name="train", n_steps_input=1' in result.stdout
    assert tree(tmp_path / "w") == sorted(
        ["data", *(f"data/{s}" for s in SPLITS), *(f"data/{s}/heat.hdf5" for s in SPLITS)]
        + ["stats.yaml"]
    )
    steady = run(["export", str(sources["darcy"]), "--format", "the-well", "--out", "d"], tmp_path)
    assert "n_steps_input=0, n_steps_output=1" in steady.stdout, steady.stderr


@pytest.mark.parametrize(
    "case",
    ["target exists", "target is a file", "unknown format", "no format", "no out", "not a dataset"],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(case, sources, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    (tmp_path / "file").write_text("a file")
    src = str(sources["darcy"])
    args, fragments = {
        "target exists": (["--format", "the-well", "--out", "taken"], ["taken: already exists"]),
        "target is a file": (["--format", "the-well", "--out", "file"], ["file: already exists"]),
        "unknown format": (
            ["--format", "zarr", "--out", "new"],
            ["--format: 'zarr' is not allowed (allowed: the-well)"],
        ),
        "no format": (["--out", "new"], ["--format: missing (allowed: the-well)"]),
        "no out": (["--format", "the-well"], ["--out: missing"]),
        "not a dataset": (["--format", "the-well", "--out", "new"], ["not a pdegen dataset"]),
    }[case]
    if case == "not a dataset":
        src = str(tmp_path / "taken")
    before = tree(tmp_path)
    one_line_error(run(["export", src, *args], tmp_path), *fragments)
    assert tree(tmp_path) == before


def test_unknown_format_version_is_refused_naming_it(sources, tmp_path):
    copy = tmp_path / "future"
    shutil.copytree(sources["heat"], copy)
    index = json.loads((copy / "index.json").read_text())
    (copy / "index.json").write_text(json.dumps({**index, "format_version": 2}))
    before = tree(tmp_path)
    line = one_line_error(
        run(["export", str(copy), "--format", "the-well", "--out", "w"], tmp_path),
        "format_version 2 is not one this pdegen reads (reads 1)",
    )
    assert "index.json" in line
    assert tree(tmp_path) == before


def test_a_dataset_without_splits_is_refused(sources, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(sources["heat"], copy)
    index = json.loads((copy / "index.json").read_text())
    del index["splits"]
    (copy / "index.json").write_text(json.dumps(index))
    before = tree(tmp_path)
    one_line_error(
        run(["export", str(copy), "--format", "the-well", "--out", "w"], tmp_path),
        "no train/valid/test splits",
    )
    assert tree(tmp_path) == before


def test_a_failed_export_leaves_nothing(sources, tmp_path):
    """A sample that cannot be read half way through: the export stops with one line and
    leaves neither the target nor its temporary sibling."""
    copy = tmp_path / "damaged"
    shutil.copytree(sources["heat"], copy)
    last = sorted(copy.glob("shard-*.h5"))[-1]
    with h5py.File(last, "a") as f:
        del f["inputs/coefficient"]
    before = tree(tmp_path)
    with pytest.raises(PdegenError, match="unreadable"):
        export_dataset(copy, tmp_path / "w")
    assert tree(tmp_path) == before
    one_line_error(
        run(["export", str(copy), "--format", "the-well", "--out", "w"], tmp_path), "unreadable"
    )
    assert tree(tmp_path) == before


def test_the_python_api_refuses_an_unknown_format(sources, tmp_path):
    with pytest.raises(PdegenError, match=r"format: 'netcdf' is not allowed \(allowed: the-well\)"):
        export_dataset(sources["darcy"], tmp_path / "w", format="netcdf")
    assert list(tmp_path.iterdir()) == []


# -- the real reader, where one is installed -------------------------------------------------

WELL_PYTHON = os.environ.get("PDEGEN_THE_WELL_PYTHON")


@pytest.mark.skipif(not WELL_PYTHON, reason="PDEGEN_THE_WELL_PYTHON names no Python with the_well")
def test_the_wells_own_reader_loads_every_export(exports):
    """the_well.data.WellDataset on every split of every export, with the documented options,
    against the files (tests/well_reader.py; runs in the interpreter that has the_well)."""
    # trajectories: n_steps_input >= 1
    timed = {"heat", "burgers", "navier-stokes", "acoustic", "cavity", "channel"}
    windows = [f"{exports[name]}:{int(name in timed)}:1" for name in sorted(exports)] + [
        f"{exports['heat']}:1:4",
        f"{exports['burgers']}:2:2",
        f"{exports['navier-stokes']}:2:1",
    ]
    result = subprocess.run(
        [WELL_PYTHON, str(ROOT / "tests" / "well_reader.py"), *windows],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every export loaded" in result.stdout
