"""Trajectory windows (`ShardDataset.windows`): every pair is the stored frames it names,
read back independently with h5py, for the three ways people train on trajectories."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pdegen import PdegenError, open_dataset
from pdegen.recipe import recipe_from_dict
from pdegen.run.generate import generate
from tests.helpers import small_recipe_dict

STEPS = 6  # 7 frames


@pytest.fixture(scope="module")
def heat(tmp_path_factory):
    data = small_recipe_dict(family="heat", samples=5, grid={"n": 7}, output={"shard_size": 2})
    data["problem"] = {"steps": STEPS, "source": 1.0}
    out = tmp_path_factory.mktemp("windows") / "heat"
    generate(recipe_from_dict(data), out=out, progress=False, engine="serial")
    stored = {}
    for shard in sorted(out.glob("shard-*.h5")):
        with h5py.File(shard, "r") as f:
            for row, index in enumerate(f["params/index"][()]):
                stored[int(index)] = {
                    "solution": f["outputs/solution"][row],
                    "coefficient": f["inputs/coefficient"][row],
                    "initial": f["inputs/initial"][row],
                    "t": f["grid/t"][()],
                }
    return out, stored


def test_autoregressive_pairs_are_consecutive_frames(heat):
    out, stored = heat
    with open_dataset(out, split=None) as ds:
        windows = ds.windows()
        assert len(windows) == len(ds) * STEPS
        for i in range(len(windows)):
            item = windows[i]
            sample, start = divmod(i, STEPS)
            truth = stored[int(item["index"])]
            assert item["index"] == ds.sample_indices[sample]
            np.testing.assert_array_equal(item["x"][0], truth["solution"][start].astype(np.float32))
            np.testing.assert_array_equal(
                item["y"][0], truth["solution"][start + 1].astype(np.float32)
            )
            # the constant inputs follow: the coefficient and the initial state, no parameter
            np.testing.assert_array_equal(item["x"][1], truth["coefficient"].astype(np.float32))
            np.testing.assert_array_equal(item["x"][2], truth["initial"].astype(np.float32))
            assert item["x"].shape == (3, 9, 9) and item["y"].shape == (1, 9, 9)
            assert item["t"] == truth["t"][start]


def test_the_first_k_frames_to_the_rest_and_the_initial_to_the_final_state(heat):
    out, stored = heat
    with open_dataset(out, split=None) as ds:
        fno = ds.windows(inputs=2, outputs=5, starts="first", constants=False)
        assert len(fno) == len(ds)
        item = fno[3]
        truth = stored[int(item["index"])]["solution"].astype(np.float32)
        np.testing.assert_array_equal(item["x"], truth[:2])
        np.testing.assert_array_equal(item["y"], truth[2:7])
        burgers = ds.windows(offset=-1, constants=False)
        assert len(burgers) == len(ds)
        item = burgers[1]
        truth = stored[int(item["index"])]["solution"].astype(np.float32)
        np.testing.assert_array_equal(item["x"], truth[:1])
        np.testing.assert_array_equal(item["y"], truth[-1:])
        stacked = burgers.batch([0, 1, 2])
        assert stacked["x"].shape == (3, 1, 9, 9) and stacked["index"].shape == (3,)


def test_windows_that_cannot_be_cut_are_refused_in_one_line(heat, tmp_path):
    out, _ = heat
    with open_dataset(out) as ds:
        for kwargs, message in [
            ({"inputs": 4, "outputs": 4}, "need 8 frames; the trajectories have 7"),
            ({"inputs": 0}, "inputs: 0 is not allowed"),
            ({"offset": 0}, "would overlap"),
            ({"inputs": 7, "offset": -1}, "do not fit in 7 frames"),
            ({"fields": ["coefficient"]}, "'coefficient' is not a trajectory"),
            ({"starts": "last"}, "starts: 'last' is not allowed"),
        ]:
            with pytest.raises(PdegenError, match=message):
                ds.windows(**kwargs)
    steady = small_recipe_dict(samples=2)
    generate(recipe_from_dict(steady), out=tmp_path / "darcy", progress=False, engine="serial")
    with open_dataset(tmp_path / "darcy") as ds, pytest.raises(PdegenError, match="no trajectory"):
        ds.windows()
