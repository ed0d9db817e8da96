"""Load pdegen's The Well exports with the_well.data.WellDataset itself, and check what it
returns against the files: run by tests/test_export_the_well.py in an interpreter that has
the_well (and torch) installed, which the project never depends on.

Arguments: EXPORT:N_STEPS_INPUT:N_STEPS_OUTPUT, one per window shape to try.
"""

import sys

import h5py
import numpy as np
import torch
from the_well.data import WellDataset
from the_well.data.normalization import RMSNormalization, ZScoreNormalization


def constant_channels(f: h5py.File, traj: int) -> np.ndarray | None:
    """The time-constant fields of one trajectory, flattened to channels in the reader's
    order (t0, t1, t2 groups, field_names order, vector components last)."""
    parts = []
    for order in range(3):
        group = f[f"t{order}_fields"]
        for name in group.attrs["field_names"]:
            if not group[name].attrs["time_varying"]:
                a = group[name][traj]
                parts.append(
                    a[..., None] if order == 0 else a.reshape(*a.shape[: a.ndim - order], -1)
                )
    return np.concatenate(parts, -1) if parts else None


#: the_well.data.datasets.BoundaryCondition
BC_CODES = {"WALL": 0, "OPEN": 1, "PERIODIC": 2}


def trajectory_name(f: h5py.File) -> str:
    """The time-varying t0 field (pdegen exports one: `solution`, or `vorticity`)."""
    group = f["t0_fields"]
    return next(n for n in group.attrs["field_names"] if group[n].attrs["time_varying"])


def boundary_codes(f: h5py.File) -> list[list[int]]:
    """[low, high] per spatial axis, from the file's boundary groups (pdegen writes one per
    axis, its mask marking both ends)."""
    axes = list(f["dimensions"].attrs["spatial_dims"])
    codes = [[None, None] for _ in axes]
    for group in f["boundary_conditions"].values():
        axis = axes.index(group.attrs["associated_dims"][0])
        codes[axis] = [BC_CODES[group.attrs["bc_type"]]] * 2
    return codes


def check(path: str, n_in: int, n_out: int) -> None:
    for split in ("train", "valid", "test"):
        ds = WellDataset(path=path, well_split_name=split, n_steps_input=n_in, n_steps_output=n_out)
        with h5py.File(ds.files_paths[0], "r") as f:
            windows = f["dimensions/time"].shape[0] - (n_in + n_out) + 1
            assert len(ds) == f.attrs["n_trajectories"] * windows, (path, split, len(ds))
            for k in range(len(ds)):
                sample = ds[k]
                traj, t = divmod(k, windows)
                frames = f["t0_fields"][trajectory_name(f)][traj, t : t + n_in + n_out]
                if n_in:
                    assert np.array_equal(sample["input_fields"][..., 0].numpy(), frames[:n_in])
                else:
                    assert "input_fields" not in sample
                assert np.array_equal(sample["output_fields"][..., 0].numpy(), frames[n_in:])
                constant = constant_channels(f, traj)
                if constant is not None:
                    assert np.array_equal(sample["constant_fields"].numpy(), constant)
                scalars = [
                    np.atleast_1d(
                        f["scalars"][n][traj]
                        if f["scalars"][n].attrs["sample_varying"]
                        else f["scalars"][n][()]
                    )
                    for n in f["scalars"].attrs["field_names"]
                ]
                if scalars:
                    assert np.array_equal(
                        sample["constant_scalars"].numpy(), np.concatenate(scalars)
                    )
                assert sample["boundary_conditions"].tolist() == boundary_codes(f)
            if len(ds):
                batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
                shapes = {key: tuple(value.shape) for key, value in batch.items()}
                print(f"{path} {split}: {len(ds)} samples, batch {shapes}")
    for norm in (ZScoreNormalization, RMSNormalization):
        ds = WellDataset(
            path=path,
            well_split_name="train",
            n_steps_input=n_in,
            n_steps_output=n_out,
            use_normalization=True,
            normalization_type=norm,
        )
        assert all(torch.isfinite(v).all() for v in ds[0].values())


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        path, n_in, n_out = argument.rsplit(":", 2)
        check(path, int(n_in), int(n_out))
    print("every export loaded")
