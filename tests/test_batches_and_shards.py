"""Batches (the unit of work) told apart from shards (the unit of storage), issue 26 point 1:
the cut, the defaults, shards merged from their batches' parts on every engine, and a run
interrupted between parts resumed without solving a finished batch again."""

from __future__ import annotations

import hashlib
import json
import resource

import h5py
import numpy as np
import pytest
import yaml

from pdegen.dataset.shards import PARTS_DIR, file_sha256, read_index
from pdegen.errors import PdegenError, RecipeError
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import recipe_from_dict
from pdegen.recipe.sharding import SHARD_BYTES, default_shard_size
from pdegen.run.batch import solve_batch
from pdegen.run.generate import FAILURES_NAME, generate
from pdegen.run.plan import PLAN_NAME, Plan, chain_positions, cut, make_plan, read_plan
from tests.helpers import MPIRUN, assert_same_dataset, cli, mpi, read_all, recipe_dict

#: 24 samples in 2 shards of 12, each cut into 3 batches of 4 (GCRO-DR carries across each)
SPLIT = {"samples": 24, "output": {"shard_size": 12}}
SPLIT_SOLVER = {"method": "gcrodr", "pc": "jacobi", "batch_size": 4}


def split_recipe(**changes):
    return recipe_from_dict(recipe_dict(**{**SPLIT, "solver": SPLIT_SOLVER, **changes}))


def write_recipe(tmp_path, **changes):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(**{**SPLIT, "solver": SPLIT_SOLVER, **changes})))
    return path


# 1. The cut and the defaults ----------------------------------------------------------------


def test_the_chain_is_cut_into_shards_then_each_shard_into_even_batches():
    order = list(range(100, 123))  # 23 samples
    batches, shards = cut(order, 10, 4)
    assert [len(b) for b in batches] == [3, 3, 4, 3, 3, 4, 3]
    assert shards == [[0, 1, 2], [3, 4, 5], [6]]
    assert [i for b in batches for i in b] == order  # the chain, in order, each sample once
    assert cut(order, 10, 10) == ([order[:10], order[10:20], order[20:]], [[0], [1], [2]])
    np.testing.assert_array_equal(chain_positions(10, 4), [0, 1, 2, 0, 1, 2, 0, 1, 2, 3])
    np.testing.assert_array_equal(chain_positions(3, 4), [0, 1, 2])


def test_default_shards_are_cut_by_bytes_and_batches_by_count():
    # 4000 samples of 64 KiB (64^2, two float64 fields): 250 MiB, two files
    assert default_shard_size(4000, 64 * 1024) == 2000
    for samples, size in ((10000, 64 * 1024), (777, 3 * 2**20), (5, 2 * SHARD_BYTES)):
        shard = default_shard_size(samples, size)
        files = -(-samples // shard)
        assert shard * size <= max(SHARD_BYTES, size)  # within the bytes, one sample at least
        assert files == -(-samples * size // SHARD_BYTES) or shard == 1  # as few as they allow
    data = recipe_dict(samples=64)
    del data["output"]["shard_size"]
    recipe = recipe_from_dict(data)
    assert recipe.output.shard_size == 64  # 64 tiny samples: one file
    assert recipe.solver.batch_size == 4  # and 16 batches for the workers
    assert '"batch_size": 4' in recipe.to_json()


def test_a_shard_size_alone_keeps_one_batch_per_shard_and_the_recipe_hash():
    recipe = recipe_from_dict(recipe_dict())  # shard_size 3
    assert recipe.solver.batch_size == 3
    assert "batch_size" not in recipe.to_json()  # recipes written before it hash as they did
    plan = make_plan(recipe, family_from_recipe(recipe))
    assert plan.shards == [[b] for b in range(len(plan.batches))]


def test_a_batch_larger_than_its_shard_is_refused_in_one_line(tmp_path):
    with pytest.raises(RecipeError, match=r"solver.batch_size: 13 is more than output.shard_siz"):
        split_recipe(solver={**SPLIT_SOLVER, "batch_size": 13})
    write_recipe(tmp_path)
    result = cli(["generate", "r.yaml", "--out", "d", "--batch-size", "20", "--quiet"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "solver.batch_size: 20 is more than output.shard_size: 12" in result.stderr
    assert not (tmp_path / "d").exists()


def test_a_plan_written_before_shards_held_batches_reads_as_one_batch_per_shard(tmp_path):
    recipe = split_recipe()
    plan = make_plan(recipe, family_from_recipe(recipe))
    old = json.loads(plan.to_json())
    del old["shards"]
    assert Plan.from_json(json.dumps(old)).shards == [[b] for b in range(6)]
    broken = {**old, "shards": [[0, 1, 2], [4, 5]]}  # batch 3 in no shard
    path = tmp_path / PLAN_NAME
    path.write_text(json.dumps(broken))
    with pytest.raises(PdegenError, match="damaged or not a pdegen plan"):
        read_plan(path)


# 2. Shards merged from parts: the same rows as each batch solved alone, on every engine ------


def test_a_shard_of_several_batches_holds_each_batch_as_solved_alone(tmp_path):
    recipe = split_recipe()
    generate(recipe, out=tmp_path / "d", progress=False, engine="serial", card=False)
    plan = read_plan(tmp_path / "d" / PLAN_NAME)
    assert plan.shards == [[0, 1, 2], [3, 4, 5]]
    assert not (tmp_path / "d" / PARTS_DIR).exists()  # merged and cleaned up
    index = read_index(tmp_path / "d")
    assert [e["file"] for e in index["shards"]] == ["shard-00000.h5", "shard-00001.h5"]
    for shard, batches in enumerate(plan.shards):
        alone = [solve_batch(recipe, b, plan.batches[b]) for b in batches]  # the oracle
        with h5py.File(tmp_path / "d" / f"shard-{shard:05d}.h5", "r") as f:
            assert f.attrs["batch"] == shard
            for group in ("inputs", "outputs"):
                for name, dataset in f[group].items():
                    expected = np.concatenate([getattr(c, group)[name] for c in alone])
                    np.testing.assert_array_equal(dataset[()], expected, err_msg=name)
                    assert dataset.chunks == (1, *dataset.shape[1:])
                    assert [d.label for d in dataset.dims] == ["sample", "x", "y"]
            iterations = np.concatenate([c.stats["iterations"] for c in alone])
            np.testing.assert_array_equal(f["stats/iterations"][()], iterations)
            np.testing.assert_array_equal(f["params/index"][()], plan.shard_indices(shard))
            np.testing.assert_array_equal(f["stats/chain_position"][()], [0, 1, 2, 3] * 3)
    checked = cli(["check", "d", "--deep", "2"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("engine", ["local", "dask", "mpi", "gzip"])
def test_every_engine_writes_the_same_merged_shards(tmp_path, engine):
    compression = {"output": {"shard_size": 12, "compression": "gzip"}} if engine == "gzip" else {}
    write_recipe(tmp_path, **compression)
    serial = cli(["generate", "r.yaml", "--out", "s", "--engine", "serial", "--quiet"], tmp_path)
    assert serial.returncode == 0, serial.stderr
    args = ["generate", "r.yaml", "--out", "e", "--quiet", "--no-figures"]
    if engine == "mpi":
        if MPIRUN is None:
            pytest.skip("mpirun is installed by make install")
        result = mpi(2, [*args, "--engine", "mpi"], tmp_path)
    elif engine == "gzip":  # the rows are copied as stored, compressed
        result = cli([*args, "--engine", "local", "--workers", "2"], tmp_path)
    else:
        result = cli([*args, "--engine", engine, "--workers", "2"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert_same_dataset(read_all(tmp_path / "s"), tmp_path / "e")
    assert not (tmp_path / "e" / PARTS_DIR).exists()
    stats = [read_index(tmp_path / d)["field_stats"] for d in ("s", "e")]
    assert stats[0] == stats[1]
    if engine == "gzip":
        with h5py.File(tmp_path / "e" / "shard-00001.h5", "r") as f:
            assert f["outputs/solution"].compression == "gzip"
    checked = cli(["check", "e"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# 3. Interrupted between parts: the finished batches are kept, merged on resume ---------------


def test_a_failed_batch_keeps_its_shards_other_parts_and_a_rerun_solves_only_it(tmp_path):
    write_recipe(tmp_path)
    whole = cli(["generate", "r.yaml", "--out", "w", "--quiet", "--engine", "serial"], tmp_path)
    assert whole.returncode == 0, whole.stderr
    blocker = tmp_path / "d" / PARTS_DIR / "part-00004.h5"
    blocker.mkdir(parents=True)  # batch 4, the second shard's middle one, cannot be written
    args = ["generate", "r.yaml", "--out", "d", "--engine", "serial", "--retries", "0"]
    failed = cli([*args, "--quiet"], tmp_path)
    assert failed.returncode == 2 and "1 of 6 batches failed (batch 4" in failed.stderr
    assert "== batch 4 (a part of shard-00001.h5)" in (tmp_path / "d" / FAILURES_NAME).read_text()
    assert (tmp_path / "d" / "shard-00000.h5").is_file()  # merged as soon as it was whole
    assert not (tmp_path / "d" / "shard-00001.h5").exists()
    kept = sorted(p.name for p in (tmp_path / "d" / PARTS_DIR).glob("part-*.h5") if p.is_file())
    assert kept == ["part-00003.h5", "part-00005.h5"]
    blocker.rmdir()
    again = cli(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resumed: 20 samples were already complete" in again.stdout  # 12 + 4 + 4
    assert not (tmp_path / "d" / PARTS_DIR).exists()
    assert_same_dataset(read_all(tmp_path / "w"), tmp_path / "d")
    checked = cli(["check", "d"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (tmp_path / "d" / PARTS_DIR).mkdir()  # as a run killed right after a merge might leave
    checked = cli(["check", "d"], tmp_path)
    assert checked.returncode == 1 and "finished batches of shards not merged" in checked.stdout


def test_a_shard_of_more_batches_than_open_files_allowed_is_merged(tmp_path):
    """The merge opens one part at a time: 60 batches of one sample in one shard, under a
    limit of 48 open files."""
    write_recipe(tmp_path, samples=60, output={"shard_size": 60})

    def few_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    args = ["generate", "r.yaml", "--out", "d", "--engine", "serial", "--batch-size", "1"]
    result = cli([*args, "--quiet"], tmp_path, preexec_fn=few_files)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "d").glob("shard-*.h5")] == ["shard-00000.h5"]
    with h5py.File(tmp_path / "d" / "shard-00000.h5", "r") as f:
        assert f["outputs/solution"].shape[0] == 60
        np.testing.assert_array_equal(f["stats/chain_position"][()], np.zeros(60))


@pytest.mark.skipif(MPIRUN is None, reason="mpirun is installed by make install")
def test_a_merge_that_fails_under_mpi_groups_ends_the_job_in_one_line(tmp_path):
    """The merge runs on rank 0 while its group's other rank waits for the next batch: its
    failure is said after the run, never raised mid-run (which left that rank waiting)."""
    write_recipe(tmp_path, solver={**SPLIT_SOLVER, "method": "cg"})
    (tmp_path / "d" / "shard-00000.h5").mkdir(parents=True)  # the merged shard cannot land
    args = ["generate", "r.yaml", "--out", "d", "--engine", "mpi", "--ranks-per-sample", "2"]
    result = mpi(2, [*args, "--quiet"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("pdegen: error:")]
    assert len(errors) == 1 and "cannot merge its 3 batches' parts" in errors[0], errors
    (tmp_path / "d" / "shard-00000.h5").rmdir()
    again = mpi(2, args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resumed: 24 samples were already complete" in again.stdout  # every batch kept


def test_a_dataset_whose_stored_recipe_left_the_cut_out_still_checks(tmp_path):
    """A recipe built in Python was stored with `output.shard_size: null` (and cut by the
    defaults of its day) before `generate` resolved it: `check` takes the size from the
    index, not from today's defaults (which cut 12 samples into one shard)."""
    recipe = recipe_from_dict(recipe_dict(samples=12, output={"shard_size": 4}))
    out = tmp_path / "d"
    generate(recipe, out=out, progress=False, engine="serial", card=False)
    stored = json.loads(recipe.to_json())
    stored["output"]["shard_size"] = None
    text = json.dumps(stored, sort_keys=True)
    sha = hashlib.sha256(text.encode()).hexdigest()
    index = read_index(out)
    for entry in index["shards"]:
        with h5py.File(out / entry["file"], "r+") as f:
            f.attrs["recipe"], f.attrs["recipe_sha256"] = text, sha
        entry["sha256"] = file_sha256(out / entry["file"])
    index["recipe_sha256"] = sha
    (out / "index.json").write_text(json.dumps(index))
    (out / PLAN_NAME).unlink()
    checked = cli(["check", "d"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
