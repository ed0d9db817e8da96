"""`pdegen check`: each kind of damage is found and named, a clean dataset passes.

Every dataset here is generated for real (PETSc solves, HDF5 shards), then damaged the way
things go wrong in practice: a flipped byte, a lost or truncated shard, a stray file, an
edited index, a NaN, a solution changed by a careful forger who also rewrote the index (so
that only `--deep` can tell). A few cases run the real CLI in a subprocess; the rest call
`pdegen.cli.main` in-process (faster).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pdegen.cli import main
from pdegen.dataset.check import (
    FAILURES_NAME,
    ROUNDING_FACTOR,
    UNIT_ROUNDOFF,
    CheckReport,
    check_dataset,
)
from pdegen.dataset.shards import describe_shard
from pdegen.dataset.statistics import finish, merge_all
from pdegen.recipe.schema import load_recipe, recipe_from_dict
from pdegen.run.generate import FAILURES_NAME as WRITTEN_FAILURES_NAME
from pdegen.run.generate import generate
from tests.helpers import small_recipe_dict

ROOT = Path(__file__).parent.parent
HEAT = {
    "name": "tinyheat",
    "family": "heat",
    "samples": 4,
    "seed": 3,
    "grid": {"n": 7},
    "problem": {"steps": 4, "source": 1.0},
    "output": {"shard_size": 2},
}


def _generate(factory, name: str, data: dict) -> Path:
    out = factory.mktemp(name) / name
    generate(recipe_from_dict(data), out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Clean datasets, generated once; tests damage copies (`copy`)."""
    return {
        "darcy": _generate(tmp_path_factory, "darcy", small_recipe_dict()),
        "float32": _generate(
            tmp_path_factory, "f32", small_recipe_dict(output={"dtype": "float32"})
        ),
        "heat": _generate(tmp_path_factory, "heat", HEAT),
        "heat32": _generate(tmp_path_factory, "heat32", {**HEAT, "output": {"dtype": "float32"}}),
        "cube": _generate(
            tmp_path_factory,
            "cube",
            small_recipe_dict(name="cube", samples=4, grid={"n": 5, "dim": 3}),
        ),
        "unconverged": _generate(
            tmp_path_factory, "bad", small_recipe_dict(solver={"max_iterations": 3})
        ),
    }


@pytest.fixture
def copy(datasets, tmp_path):
    def make(name: str) -> Path:
        return Path(shutil.copytree(datasets[name], tmp_path / name))

    return make


def check(capsys, path: Path, *flags: str) -> tuple[int, list[str], str]:
    status = main(["check", str(path), *flags])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def cli(path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pdegen.cli", "check", str(path), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def reindex(path: Path) -> None:
    """What a careful forger does after editing a shard: describe every shard again (checksum
    and field moments) and merge the statistics, exactly as `generate` does, so that only a
    check that re-solves nothing but re-assembles the equations (`--deep`) can notice."""
    index = json.loads((path / "index.json").read_text())
    index["shards"] = [
        describe_shard(path / e["file"], e["file"], e["batch"]) for e in index["shards"]
    ]
    merged = merge_all(e["field_stats"] for e in index["shards"])
    index["field_stats"] = {name: finish(m) for name, m in merged.items()}
    (path / "index.json").write_text(json.dumps(index, indent=1))


def row_of(path: Path, sample: int) -> tuple[Path, int]:
    for shard in sorted(path.glob("shard-*.h5")):
        with h5py.File(shard, "r") as f:
            rows = np.flatnonzero(f["params/index"][()] == sample)
        if rows.size:
            return shard, int(rows[0])
    raise AssertionError(f"sample {sample} is in no shard")


def test_a_clean_dataset_passes_with_a_one_line_summary(datasets):
    done = cli(datasets["darcy"], "--deep", "3", "--seed", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"{datasets['darcy']}: ok: 10 samples in 3 shard(s)")
    assert "splits: train" in line and "0 flagged as not converged" in line
    assert "deep: 3 of 3 requested samples re-assembled" in line


def test_a_flipped_byte_in_the_data_is_a_checksum_mismatch(copy, capsys):
    path = copy("darcy")
    shard = path / "shard-00001.h5"
    with h5py.File(shard, "r") as f:  # the lowest byte of a value in the middle of the data
        ds = f["outputs/solution"]
        chunk = ds.id.get_chunk_info(ds.shape[0] // 2)
        offset = chunk.byte_offset + (chunk.size // 16) * 8
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0x01
    shard.write_bytes(bytes(data))
    status, lines, err = check(capsys, path)
    assert status == 1 and "1 problem(s)" in err
    assert lines == [f"{shard}: " + lines[0].split(": ", 1)[1]]
    assert "SHA-256" in lines[0] and "does not match index.json" in lines[0]


def test_a_missing_shard_is_named(copy):
    path = copy("darcy")
    (path / "shard-00002.h5").unlink()
    done = cli(path)
    assert done.returncode == 1
    missing = path / "shard-00002.h5"
    assert done.stdout.splitlines() == [f"{missing}: listed in index.json but missing"]


def test_a_truncated_shard_is_named(copy, capsys):
    path = copy("darcy")
    shard = path / "shard-00000.h5"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    status, lines, _ = check(capsys, path)
    assert status == 1
    assert all(line.startswith(f"{shard}: ") for line in lines), lines
    assert any("truncated" in line for line in lines) and any("SHA-256" in line for line in lines)


def test_foreign_files_leftovers_and_a_lock_are_reported_what_pdegen_writes_is_not(copy, capsys):
    path = copy("darcy")
    (path / "notes.txt").write_text("mine")
    (path / ".shard-00001.h5.tmp-host-123").write_bytes(b"half")
    (path / ".pdegen.lock").write_text(json.dumps({"host": "h", "pid": 42, "started": 0}))
    (path / "README.md").write_text("# dataset card")  # written by generate: allowed
    (path / "figures").mkdir()
    (path / "figures" / "sample-0.png").write_bytes(b"\x89PNG")  # written by show: allowed
    (path / "figures" / "draft.pdf").write_bytes(b"%PDF")
    shutil.copy(path / "shard-00000.h5", path / "shard-00007.h5")
    status, lines, _ = check(capsys, path)
    assert status == 1
    found = {line.split(": ", 1)[0]: line for line in lines}
    assert set(found) == {
        str(path / name)
        for name in (
            "notes.txt",
            ".shard-00001.h5.tmp-host-123",
            ".pdegen.lock",
            "figures/draft.pdf",
            "shard-00007.h5",
        )
    }, lines
    assert "foreign file" in found[str(path / "notes.txt")]
    assert "interrupted write" in found[str(path / ".shard-00001.h5.tmp-host-123")]
    assert "pid 42 on host h" in found[str(path / ".pdegen.lock")]
    assert "does not list" in found[str(path / "shard-00007.h5")]


def test_a_wrong_split_in_the_index_is_named(copy, capsys):
    path = copy("darcy")
    index = json.loads((path / "index.json").read_text())
    moved = index["splits"]["train"].pop(0)
    index["splits"]["test"] = sorted([*index["splits"]["test"], moved])
    (path / "index.json").write_text(json.dumps(index))
    status, lines, _ = check(capsys, path)
    assert status == 1
    assert lines == [
        f"{path / 'index.json'}: splits: sample {moved} is listed in ['test'], its seeded "
        "split is 'train'"
    ]


def test_a_nan_is_found_even_with_the_checksum_and_statistics_rewritten(copy, capsys):
    path = copy("darcy")
    shard, row = row_of(path, 6)
    with h5py.File(shard, "r+") as f:
        f["inputs/coefficient"][row, 3, 4] = np.nan
    reindex(path)
    status, lines, _ = check(capsys, path)
    assert status == 1
    assert f"{shard}: inputs/coefficient: NaN or Inf in sample 6" in lines


def test_float32_storage_passes_deep_within_the_documented_bound(datasets, capsys):
    status, lines, _ = check(capsys, datasets["float32"], "--deep", "10")
    assert status == 0, lines
    assert "deep: 10 of 10 requested samples re-assembled" in lines[0]
    report = check_dataset(datasets["float32"], deep=10)
    residuals = [d.residual for d in report.deep]
    assert max(residuals) > 1e-8  # float32 rounding shows: rtol alone would fail them
    assert all(d.residual <= d.bound for d in report.deep)


def test_a_solution_value_changed_by_1e_4_fails_deep_only(copy, capsys):
    path = copy("float32")
    shard, row = row_of(path, 4)
    with h5py.File(shard, "r+") as f:
        u = f["outputs/solution"][row]
        u[8, 7] *= 1 + 1e-4
        f["outputs/solution"][row] = u
    reindex(path)
    status, lines, _ = check(capsys, path)
    assert status == 0, lines  # checksums, statistics and schema agree: the forgery holds
    status, lines, _ = check(capsys, path, "--deep", "10")
    assert status == 1
    assert len(lines) == 1 and lines[0].startswith(f"{shard}: sample 4: relative residual")


@pytest.mark.parametrize("name", ["heat", "heat32"])
def test_heat_deep_checks_every_step(copy, capsys, name):
    path = copy(name)
    status, lines, _ = check(capsys, path, "--deep", "4")
    assert status == 0 and "deep: 4 of 4" in lines[0], lines
    shard, row = row_of(path, 2)
    with h5py.File(shard, "r+") as f:
        u = f["outputs/solution"][row]
        u[3, 4, 4] *= 1 + 1e-3  # frame 3: the steps into it and out of it break
        f["outputs/solution"][row] = u
    reindex(path)
    status, lines, _ = check(capsys, path, "--deep", "4")
    assert status == 1
    assert len(lines) == 1 and lines[0].startswith(f"{shard}: sample 2, steps 3, 4: relative")


def test_3d_deep(datasets, capsys):
    status, lines, _ = check(capsys, datasets["cube"], "--deep", "4")
    assert status == 0 and "4 samples in 1 shard(s)" in lines[0], lines


@pytest.mark.parametrize(
    "recipe, n", [("poisson", 15), ("helmholtz", 31), ("convection-diffusion", 15)]
)
def test_every_other_family_reassembles_from_its_stored_float32_inputs(tmp_path, recipe, n):
    """`system(Sample(index, stored inputs, stored params))` works for each family, and its
    rounding stays within the documented loss."""
    settings = [f"grid.n={n}", "output.dtype=float32", "output.shard_size=2"]
    data = load_recipe(ROOT / "recipes" / f"{recipe}.yaml", settings=settings, samples=4)
    generate(data, out=tmp_path / recipe, progress=False)
    report = check_dataset(tmp_path / recipe, deep=4)
    assert report.ok and len(report.deep) == 4, report.lines()
    assert all(1e-9 < d.residual <= d.bound for d in report.deep)


def test_unconverged_samples_are_a_notice_a_false_converged_flag_is_a_problem(copy, capsys):
    path = copy("unconverged")
    status, lines, _ = check(capsys, path, "--deep", "2")
    assert status == 0
    assert "10 flagged as not converged (samples 0, 1, 2" in lines[0]
    assert "deep: no converged sample to re-assemble" in lines[0]
    shard, row = row_of(path, 5)
    with h5py.File(shard, "r+") as f:
        f["stats/converged"][row] = True
    reindex(path)
    status, lines, _ = check(capsys, path)
    assert status == 1
    assert len(lines) == 1 and lines[0].startswith(f"{shard}: sample 5: flagged converged")


def test_duplicated_samples_and_a_plan_that_disagrees(copy, capsys):
    path = copy("darcy")
    index = json.loads((path / "index.json").read_text())
    index["shards"][1]["indices"][0] = index["shards"][0]["indices"][0]
    (path / "index.json").write_text(json.dumps(index))
    status, lines, _ = check(capsys, path)
    assert status == 1
    text = "\n".join(lines)
    assert f"{path / 'shard-00001.h5'}: params/index holds samples" in text
    assert "in more than one shard: sample " in text and "in no shard: sample " in text
    assert f"{path / 'plan.json'}: shard 1 holds samples" in text


def test_an_unknown_format_version_and_bad_usage_exit_2(copy, capsys, tmp_path):
    path = copy("darcy")
    index = json.loads((path / "index.json").read_text())
    (path / "index.json").write_text(json.dumps({**index, "format_version": 2}))
    status, lines, err = check(capsys, path)
    assert status == 2 and lines == []
    assert err.strip() == (
        f"pdegen: error: {path / 'index.json'}: format_version 2 is not one this pdegen reads "
        "(reads 1); use the pdegen version that wrote it"
    )
    assert check(capsys, tmp_path / "nowhere")[0] == 2
    (tmp_path / "empty").mkdir()
    status, _, err = check(capsys, tmp_path / "empty")
    assert status == 2 and "not a pdegen dataset (no index.json)" in err
    status, _, err = check(capsys, path, "--deep", "0")
    assert status == 2 and "--deep: 0 is out of range" in err


def test_output_is_capped_per_kind_and_the_failures_name_is_generates():
    report = CheckReport(Path("d"))
    for i in range(25):
        report.add("checksum", Path(f"d/shard-{i:05d}.h5"), "bad")
    report.add("foreign", Path("d/x"), "foreign")
    lines = report.lines(per_kind=10)
    assert len(lines) == 12 and lines[-1] == "d: ... and 15 more problems of kind checksum"
    assert FAILURES_NAME == WRITTEN_FAILURES_NAME


def test_the_documented_loss_is_the_one_checked():
    text = (ROOT / "docs" / "format.md").read_text()
    assert f"≤ rtol + {ROUNDING_FACTOR:g} ε (‖|A| |u|‖₂ + ‖b‖₂) / ‖b‖₂" in text
    assert "ε = 2⁻²⁴" in text and UNIT_ROUNDOFF["float32"] == 2.0**-24
