"""End to end on the real stack: recipe -> PETSc solves -> HDF5 shards -> loader."""

import multiprocessing as mp
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pdegen import open_dataset
from pdegen.dataset.shards import ShardWriter, atomic_path, file_sha256, write_shard
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.batch import solve_batch
from pdegen.run.generate import generate
from pdegen.run.plan import Plan, recipe_sha256
from tests.helpers import small_recipe_dict


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    recipe = recipe_from_dict(small_recipe_dict())
    out = tmp_path_factory.mktemp("gen") / "tiny"
    summary = generate(recipe, out=out, progress=False)
    return recipe, out, summary


def test_solutions_agree_with_a_direct_solve(dataset):
    recipe, out, summary = dataset
    family = family_from_recipe(recipe)
    assert summary.samples == recipe.samples and summary.unconverged == 0
    with open_dataset(out) as ds:
        assert len(ds) == recipe.samples
        for i in range(len(ds)):
            item = ds[i]
            A, b = family.system(family.sample(recipe.seed, int(item["index"])))
            exact = spla.spsolve(A.tocsc(), b)
            x = item["solution"][1:-1, 1:-1].ravel()
            assert np.linalg.norm(b - A @ x) <= recipe.solver.rtol * np.linalg.norm(b)
            assert np.linalg.norm(x - exact) <= 1e-5 * np.linalg.norm(exact)
            assert np.all(item["solution"][[0, -1], :] == 0)  # boundary values included


def test_loader_returns_exactly_what_the_generator_computed(dataset):
    recipe, out, _ = dataset
    plan = Plan.from_json((out / "plan.json").read_text())
    expected = {}
    for batch, indices in enumerate(plan.batches):
        content = solve_batch(recipe, batch, indices)
        for row, index in enumerate(indices):
            expected[index] = (content.inputs["coefficient"][row], content.outputs["solution"][row])
    with open_dataset(out) as ds:
        assert sorted(expected) == list(ds.sample_indices) == list(range(recipe.samples))
        for i in range(len(ds)):
            item = ds[i]
            coefficient, solution = expected[int(item["index"])]
            np.testing.assert_array_equal(item["coefficient"], coefficient)
            np.testing.assert_array_equal(item["solution"], solution)


def test_shards_hold_the_documented_layout_and_provenance(dataset):
    recipe, out, _ = dataset
    shards = sorted(out.glob("shard-*.h5"))
    assert len(shards) == 3  # 10 samples, 4 per shard
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    with h5py.File(shards[0], "r") as f:
        n = recipe.grid.n + 2
        assert f["inputs/coefficient"].shape == (4, n, n)
        assert f["outputs/solution"].shape == (4, n, n)
        assert f["outputs/solution"].dtype == np.float64
        for name in ("iterations", "residual", "converged", "reason", "seconds"):
            assert f[f"stats/{name}"].shape == (4,)
        np.testing.assert_array_equal(f["grid/x"][()], np.linspace(0, 1, n))
        assert f.attrs["recipe_sha256"] == recipe_sha256(recipe)
        assert '"petsc"' in f.attrs["versions"] and f.attrs["format_version"] == 1


class _OrdinaryRows(ShardWriter):
    """The oracle: every row through h5py's ordinary `dataset[row] = value`."""

    def _write_row(self, dataset, row, stored):
        dataset[row] = stored


def _everything_in(path):
    """Every object of an HDF5 file: values, dtypes, chunks, filters, labels, attributes."""
    found = {}

    def attributes(obj):
        return {key: repr(np.asarray(obj.attrs[key]).tolist()) for key in obj.attrs}

    with h5py.File(path, "r") as f:
        found["/"] = attributes(f)

        def visit(name, obj):
            attrs = attributes(obj)
            if isinstance(obj, h5py.Dataset):
                labels = tuple(d.label for d in obj.dims)
                layout = (obj.dtype, obj.shape, obj.chunks, obj.compression, obj.shuffle, labels)
                found[name] = (layout, obj[()].tobytes(), attrs)
            else:
                found[name] = attrs

        f.visititems(visit)
    return found


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rows_written_as_direct_chunks_hold_what_ordinary_writes_hold(tmp_path, dtype):
    """The shard writer puts uncompressed rows in by HDF5's direct chunk write: the file must
    hold, object for object and bit for bit, what h5py's ordinary row writes put there (the
    chunks may sit elsewhere in the file: ordinary writes of small chunks wait in HDF5's
    chunk cache), and give the same moments."""
    recipe = recipe_from_dict(small_recipe_dict(output={"dtype": dtype}))
    content = solve_batch(recipe, 0, [0, 1, 2])
    direct, ordinary = tmp_path / "direct", tmp_path / "ordinary"
    direct.mkdir(), ordinary.mkdir()
    entry = write_shard(direct, content)
    oracle = write_shard(ordinary, content, _OrdinaryRows)
    assert entry["field_stats"] == oracle["field_stats"]
    assert entry["sha256"] == file_sha256(direct / entry["file"])
    held = _everything_in(direct / entry["file"])
    assert held.keys() == _everything_in(ordinary / oracle["file"]).keys()
    assert held == _everything_in(ordinary / oracle["file"])
    stored = held["outputs/solution"][1]
    assert stored == content.outputs["solution"].astype(dtype).tobytes()


def test_a_row_of_another_shape_is_refused_not_written_as_a_wrong_chunk(tmp_path):
    recipe = recipe_from_dict(small_recipe_dict())
    content = solve_batch(recipe, 0, [0, 1])
    field = content.inputs["coefficient"]
    writer = ShardWriter(tmp_path, 0, 2, content.attrs["recipe"], content.axes)
    with pytest.raises(ValueError, match="coefficient"), writer:
        writer.add(0, 0, {"coefficient": field[0]}, {}, True)
        writer.add(1, 1, {"coefficient": field[1][:-1]}, {}, True)
    assert not list(tmp_path.iterdir())  # nothing half-written left


def _read(args):
    path, indices = args
    ds = open_dataset(path)
    return [(ds[i]["index"], ds[i]["solution"].sum(), ds[i]["coefficient"].sum()) for i in indices]


@pytest.mark.parametrize("start_method", ["spawn", "fork", "forkserver"])
def test_loader_in_worker_processes(dataset, start_method):
    _, out, _ = dataset
    ds = open_dataset(out)
    ds[0]  # the parent holds open handles before the workers start
    expected = _read((out, range(len(ds))))
    ctx = mp.get_context(start_method)
    with ctx.Pool(2) as pool:
        parts = pool.map(_read, [(out, range(0, 5)), (out, range(5, len(ds)))])
    assert [x for part in parts for x in part] == expected
    with ctx.Pool(2) as pool:  # the dataset object itself, pickled to the workers
        sums = pool.map(_solution_sum, [(ds, i) for i in range(len(ds))])
    assert sums == [e[1] for e in expected]
    ds.close()


def _solution_sum(args):
    ds, i = args
    return ds[i]["solution"].sum()


def test_torch_dataloader_with_workers(dataset):
    torch = pytest.importorskip("torch")  # optional: pdegen itself never imports torch
    _, out, _ = dataset
    loader = torch.utils.data.DataLoader(open_dataset(out), batch_size=4, num_workers=2)
    batches = list(loader)
    assert sum(b["solution"].shape[0] for b in batches) == 10


def test_unconverged_samples_are_flagged_and_not_served(tmp_path):
    recipe = recipe_from_dict(small_recipe_dict(solver={"max_iterations": 3}))
    summary = generate(recipe, out=tmp_path / "bad", progress=False)
    assert summary.unconverged == recipe.samples
    assert "10 did not converge" in summary.lines()[1]
    assert len(open_dataset(tmp_path / "bad")) == 0
    everything = open_dataset(tmp_path / "bad", include_unconverged=True)
    stats = everything.stats()
    assert len(everything) == 10 and not stats["converged"].any()
    assert set(stats["reason"]) == {b"DIVERGED_MAX_IT"}
    assert (stats["residual"] > recipe.solver.rtol).all()


def test_rerun_resumes_and_reproduces_a_deleted_shard(dataset, tmp_path):
    recipe, out, _ = dataset
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    with h5py.File(copy / "shard-00001.h5", "r") as f:
        before = f["outputs/solution"][()]
    (copy / "shard-00001.h5").unlink()
    summary = generate(recipe, out=copy, progress=False)
    assert summary.resumed_samples == 6  # shards 0 and 2 were kept
    with h5py.File(copy / "shard-00001.h5", "r") as f:
        np.testing.assert_array_equal(f["outputs/solution"][()], before)


def test_a_different_recipe_never_overwrites_a_dataset(dataset):
    recipe, out, _ = dataset
    from pdegen.errors import PdegenError

    with pytest.raises(PdegenError, match="different recipe"):
        generate(recipe.replace(seed=99), out=out, progress=False)


def test_atomic_path_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "shard.h5"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_cli_generate_and_inspect(tmp_path, write_recipe):
    recipe = write_recipe(small_recipe_dict(samples=6, output={"dir": str(tmp_path / "d")}))
    gen = subprocess.run(
        [sys.executable, "-m", "pdegen.cli", "generate", str(recipe)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gen.returncode == 0, gen.stderr
    assert "samples: 6 (0 did not converge" in gen.stdout and "samples/s" in gen.stdout
    ins = subprocess.run(
        [sys.executable, "-m", "pdegen.cli", "inspect", str(Path(tmp_path / "d" / "tiny"))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ins.returncode == 0, ins.stderr
    for fragment in (
        "samples: 6 in 2 shards",
        "solution: shape (17, 17)",
        "iterations: mean",
        "true relative residual: max",
        "petsc 3.26.1",
    ):
        assert fragment in ins.stdout, ins.stdout


def test_the_moments_of_a_field_handed_over_in_another_memory_order_are_the_files(tmp_path):
    """A family may hand the writer a field in Fortran order (a transposed draw): the moments
    the writer records must be the bits `describe_shard` (and so `pdegen check`) recomputes
    from the stored rows, which are C order; numpy sums another layout in another order."""
    from pdegen.dataset.shards import describe_shard

    recipe = recipe_from_dict(small_recipe_dict())
    content = solve_batch(recipe, 0, [0, 1, 2])
    field = content.inputs["coefficient"]
    content.inputs["coefficient"] = np.asfortranarray(field - field.mean())  # mean ~ rounding
    entry = write_shard(tmp_path, content)
    for compiled in (True, False):
        described = describe_shard(tmp_path / entry["file"], entry["file"], 0, compiled=compiled)
        assert described["field_stats"] == entry["field_stats"]
