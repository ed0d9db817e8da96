"""What training code reads: splits, normalisation statistics, storage options, views and
recipe overrides, each against an independent computation (numpy over the full arrays, a
second run, a fresh draw)."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pdegen import open_dataset
from pdegen.dataset.splits import SPLITS, split_of
from pdegen.errors import PdegenError, RecipeError
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from tests.helpers import small_recipe_dict

SPLIT_20 = {"train": 0.6, "valid": 0.2, "test": 0.2}


def recipe(**changes):
    base = {"samples": 20, "output": {"shard_size": 6, "splits": SPLIT_20}}
    return recipe_from_dict(small_recipe_dict(**{**base, **changes}))


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "d"
    generate(recipe(), out=out, progress=False, engine="serial")
    return out


def heat_recipe(**output):
    return recipe_from_dict(
        small_recipe_dict(
            family="heat",
            samples=8,
            grid={"n": 9},
            problem={"steps": 5},
            solver={"method": "direct", "pc": "cholesky"},
            output={
                "shard_size": 3,
                "splits": {"train": 0.5, "valid": 0.25, "test": 0.25},
                **output,
            },
        )
    )


# splits -------------------------------------------------------------------------------------


def test_every_sample_has_one_split_stored_in_the_index(darcy):
    index = json.loads((darcy / "index.json").read_text())
    assert index["split_fractions"] == SPLIT_20
    members = [i for name in SPLITS for i in index["splits"][name]]
    assert sorted(members) == list(range(20))  # each sample once
    for name in SPLITS:
        assert all(split_of(7, i, SPLIT_20) == name for i in index["splits"][name])


def test_adding_samples_never_moves_a_sample_to_another_split(tmp_path):
    small, large = recipe(samples=20), recipe(samples=45)
    generate(small, out=tmp_path / "s", progress=False, engine="serial")
    generate(large, out=tmp_path / "l", progress=False, engine="serial")
    with open_dataset(tmp_path / "s") as s, open_dataset(tmp_path / "l") as lg:
        for name in SPLITS:
            assert set(s.splits[name]) == {i for i in lg.splits[name] if i < 20}


def test_split_fractions_are_respected_in_the_large():
    counts = {name: 0 for name in SPLITS}
    for i in range(20000):
        counts[split_of(3, i, SPLIT_20)] += 1
    for name, share in SPLIT_20.items():  # within 4 binomial standard deviations
        sd = np.sqrt(20000 * share * (1 - share))
        assert abs(counts[name] - 20000 * share) < 4 * sd, counts
    assert all(
        split_of(3, i, {"train": 1.0, "valid": 0.0, "test": 0.0}) == "train" for i in range(99)
    )


def test_open_dataset_by_split_returns_that_split_only(darcy):
    with open_dataset(darcy) as everything:
        total = len(everything)
        splits = everything.splits
    seen = []
    for name in SPLITS:
        with open_dataset(darcy, split=name) as part:
            assert list(part.sample_indices) == sorted(splits[name])
            seen += [int(part[i]["index"]) for i in range(len(part))]
    assert sorted(seen) == list(range(total))


def test_bad_split_inputs_are_one_line_errors(darcy, tmp_path):
    with pytest.raises(PdegenError, match=r"split: 'training' is not a split .*allowed: train"):
        open_dataset(darcy, split="training")
    with pytest.raises(
        RecipeError, match=r"output.splits.train \+ output.splits.valid \+ output.splits.test = 1.1"
    ):
        recipe(output={"splits": {"train": 0.9, "valid": 0.1, "test": 0.1}})
    with pytest.raises(RecipeError, match=r"output.splits.holdout: unknown field"):
        recipe(output={"splits": {"holdout": 0.1}})


# field statistics ---------------------------------------------------------------------------


def train_arrays(path, name):
    with open_dataset(path, split="train") as ds:
        return np.stack([ds[i][name] for i in range(len(ds))]).astype(np.float64)


def test_field_statistics_are_numpys_over_the_training_split(darcy):
    with open_dataset(darcy) as ds:
        stats = ds.field_stats()
    assert set(stats) == {"coefficient", "solution"}
    for name, st in stats.items():
        values = train_arrays(darcy, name)
        assert st["count"] == values.size
        np.testing.assert_allclose(st["mean"], values.mean(), rtol=1e-12)
        np.testing.assert_allclose(st["std"], values.std(), rtol=1e-10)
        assert (st["min"], st["max"]) == (values.min(), values.max())


@pytest.mark.parametrize("size", [1, 7, 8, 9, 127, 128, 129, 1000, 8193, 175561])
@pytest.mark.parametrize("law", ["normal", "offset", "levels", "zeros"])
def test_the_compiled_moments_give_numpys_bits(size, law):
    """A shard's moments come from the compiled kernel (`pdegen_sum_and_m2`); numpy is the
    oracle, bit for bit: sizes at the edges of its pairwise blocks (8, 128, halves) and a
    421^2-node field, in the shapes fields have (numpy sums any C-contiguous array as one)."""
    from pdegen.dataset.statistics import _mean_and_m2
    from solvers import native

    assert native.kernels() is not None, native.status()  # CI builds the kernels
    rng = np.random.default_rng(size)
    values = {
        "normal": lambda: rng.standard_normal(size),
        "offset": lambda: 1e6 + rng.random(size),  # a large mean: m2 cancels
        "levels": lambda: np.where(rng.random(size) < 0.5, 12.0, 3.0),
        "zeros": lambda: -np.zeros(size),
    }[law]()
    shape = (1, 419, 419) if size == 175561 else (size,)
    values = values.reshape(shape)
    mean, m2 = _mean_and_m2(values)
    want_mean = float(values.mean())
    assert (mean, m2) == (want_mean, float(np.square(values - want_mean).sum()))
    assert np.signbit(mean) == np.signbit(want_mean)
    strided = np.repeat(values.reshape(-1), 2)[::2]  # not contiguous: numpy's own path
    strided_mean = float(strided.mean())
    assert _mean_and_m2(strided) == (strided_mean, float(np.square(strided - strided_mean).sum()))


def test_trajectory_statistics_per_frame(tmp_path):
    generate(heat_recipe(), out=tmp_path / "h", progress=False, engine="serial")
    with open_dataset(tmp_path / "h") as ds:
        st = ds.field_stats()["solution"]
    values = train_arrays(tmp_path / "h", "solution")  # (samples, frames, x, y)
    frames = np.moveaxis(values, 1, 0).reshape(values.shape[1], -1)
    np.testing.assert_allclose(st["per_frame"]["mean"], frames.mean(axis=1), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(st["per_frame"]["std"], frames.std(axis=1), rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(st["per_frame"]["max"], frames.max(axis=1))
    np.testing.assert_allclose(st["mean"], values.mean(), rtol=1e-12)


def test_statistics_are_identical_on_every_engine_and_after_resume(darcy, tmp_path):
    expected = json.loads((darcy / "index.json").read_text())
    generate(recipe(), out=tmp_path / "dask", progress=False, engine="dask", workers=2)
    got = json.loads((tmp_path / "dask" / "index.json").read_text())
    assert got["field_stats"] == expected["field_stats"]  # bit for bit
    assert got["splits"] == expected["splits"]
    (tmp_path / "dask" / "index.json").unlink()
    (tmp_path / "dask" / "shard-00001.h5").unlink()
    generate(recipe(), out=tmp_path / "dask", progress=False, engine="serial")
    resumed = json.loads((tmp_path / "dask" / "index.json").read_text())
    assert resumed["field_stats"] == expected["field_stats"]


# storage ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_float32_and_compressed_storage_hold_the_same_samples(darcy, tmp_path, compression):
    out = tmp_path / compression
    generate(
        recipe(output={"dtype": "float32", "compression": compression}),
        out=out,
        progress=False,
        engine="serial",
    )
    with h5py.File(out / "shard-00000.h5", "r") as f:
        for group in ("inputs", "outputs"):
            for dataset in f[group].values():
                assert dataset.dtype == np.float32 and dataset.compression == compression
                assert dataset.shuffle
        assert f["stats/residual"].dtype == np.float64
    with open_dataset(darcy) as full, open_dataset(out) as small:
        assert len(full) == len(small)
        for i in range(len(full)):
            for name in ("coefficient", "solution"):
                np.testing.assert_array_equal(small[i][name], full[i][name].astype(np.float32))
        # the residual is the float64 solve's, not the stored copy's
        np.testing.assert_array_equal(small.stats()["residual"], full.stats()["residual"])


# views --------------------------------------------------------------------------------------


def test_field_selection_and_unknown_fields(darcy):
    with open_dataset(darcy, fields=("solution",)) as ds:
        assert set(ds[0]) == {"solution", "index"}
        assert set(ds.field_stats()) == {"solution"}
    with pytest.raises(PdegenError, match=r"fields: 'pressure' is not a field .*coefficient"):
        open_dataset(darcy, fields=("pressure",))


def test_stride_reads_the_coarse_grid_of_the_same_samples(darcy):
    with open_dataset(darcy) as full, open_dataset(darcy, stride=4) as coarse:
        assert coarse[0]["solution"].shape == (5, 5)  # 17 nodes -> 0, 4, 8, 12, 16
        np.testing.assert_array_equal(coarse[3]["solution"], full[3]["solution"][::4, ::4])
        np.testing.assert_array_equal(coarse.coordinates()["x"], [0, 0.25, 0.5, 0.75, 1.0])
    with pytest.raises(PdegenError, match=r"stride: 3 does not divide .*allowed 1, 2, 4, 8"):
        open_dataset(darcy, stride=3)
    with pytest.raises(PdegenError, match=r"stride: 0 is not allowed"):
        open_dataset(darcy, stride=0)
    with pytest.raises(PdegenError, match=r"average: True needs a cell-centred grid, .* nodes"):
        open_dataset(darcy, stride=2, average=True)  # a node's value is not a cell average


def test_as_xy_gives_channel_first_float32_pairs(darcy, tmp_path):
    with open_dataset(darcy, split="train", stride=2) as ds:
        xy = ds.as_xy()
        item = xy[0]
        assert item["x"].shape == (1, 9, 9) and item["y"].shape == (1, 9, 9)
        assert item["x"].dtype == item["y"].dtype == np.float32
        np.testing.assert_array_equal(item["y"][0], ds[0]["solution"].astype(np.float32))
        batch = xy.batch([0, 1, 2])
        assert batch["x"].shape == (3, 1, 9, 9)
    generate(heat_recipe(), out=tmp_path / "h", progress=False, engine="serial")
    with open_dataset(tmp_path / "h") as heat:
        item = heat.as_xy()[0]
        assert item["x"].shape == (2, 11, 11)  # coefficient and initial state
        assert item["y"].shape == (6, 11, 11)  # one channel per frame


def test_scalar_parameters_become_constant_channels(tmp_path):
    helm = recipe_from_dict(
        small_recipe_dict(
            family="helmholtz",
            samples=4,
            grid={"n": 63},
            problem={"coefficient": {"kind": "lognormal", "sigma": 1.0}},
            solver={"method": "direct", "pc": "lu"},
        )
    )
    generate(helm, out=tmp_path / "k", progress=False, engine="serial")
    with open_dataset(tmp_path / "k") as ds:
        item = ds.as_xy()[1]
        assert item["x"].shape == (3, 65, 65)  # coefficient, source, wavenumber
        np.testing.assert_array_equal(item["x"][2], np.float32(ds[1]["wavenumber"]))
        assert ds.as_xy(params=False)[1]["x"].shape == (2, 65, 65)


def test_the_loader_imports_no_ml_framework(darcy):
    code = (
        "import sys, pdegen; ds = pdegen.open_dataset(sys.argv[1], split='train').as_xy(); "
        "ds[0]; print(sorted(m for m in ('torch', 'jax', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(darcy)], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


# recipe overrides ---------------------------------------------------------------------------


def test_set_overrides_any_field_and_is_recorded(write_recipe, tmp_path):
    from pdegen.cli import main

    path = write_recipe(small_recipe_dict(samples=3))
    code = main(
        [
            "generate",
            str(path),
            "--engine",
            "serial",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--set",
            "grid.n=11",
            "--set",
            "problem.coefficient.alpha=2.5",
            "--set",
            "output.dtype=float32",
        ]
    )
    assert code == 0
    with open_dataset(tmp_path / "o") as ds:
        stored = json.loads(ds.attrs()["recipe"])
        assert stored["grid"]["n"] == 11 and stored["problem"]["coefficient"]["alpha"] == 2.5
        assert ds[0]["solution"].shape == (13, 13) and ds[0]["solution"].dtype == np.float32


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("grid.n=many", "grid.n: expected an integer, got 'many'"),
        ("grid.size=3", "grid.size: unknown field"),
        ("samples.count=3", "--set samples.count=3: samples is a value, not a section"),
        ("grid.n", "--set grid.n: expected dotted.path=value"),
        ("solver.rtol=[1, 2]", "expected a single value"),
    ],
)
def test_bad_set_is_one_line_and_writes_nothing(write_recipe, tmp_path, setting, message):
    path = write_recipe(small_recipe_dict(samples=3))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pdegen.cli",
            "generate",
            str(path),
            "--out",
            str(tmp_path / "o"),
            "--set",
            setting,
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_no_ordering_means_no_sample_is_drawn_to_plan(monkeypatch):
    """A factorisation carries nothing between solves: planning must not draw every input
    just to sort them (22 s for 1050 samples at 421 x 421)."""
    from pdegen.families import family_from_recipe
    from pdegen.run.plan import make_plan

    direct = recipe(solver={"method": "direct", "pc": "cholesky", "ordering": "auto"})
    assert direct.solver.ordering == "none"
    family = family_from_recipe(direct)
    drawn = []
    original = family.sample
    monkeypatch.setattr(family, "sample", lambda seed, i: drawn.append(i) or original(seed, i))
    plan = make_plan(direct, family)
    assert drawn == [] and plan.order == list(range(20)) and plan.chain_length is None
    sorted_plan = make_plan(recipe(solver={"method": "gcrodr", "ordering": "auto"}), family)
    assert len(drawn) == 20 and sorted_plan.chain_length > 0
