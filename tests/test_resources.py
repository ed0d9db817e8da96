"""The memory estimate: refusals name the field and give the estimate, and the estimate is
close to what real runs use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pdegen.errors import RecipeError
from pdegen.recipe.resources import (
    BOOKKEEPING_PER_SAMPLE,
    GIB,
    check_memory,
    estimate,
    machine_memory,
)
from pdegen.recipe.schema import load_recipe, recipe_from_dict
from tests.helpers import small_recipe_dict

HEAT = Path(__file__).parent.parent / "recipes" / "heat.yaml"


def test_machine_memory_is_the_physical_memory_or_less():
    meminfo = Path("/proc/meminfo").read_text()
    total = int(re.search(r"MemTotal:\s+(\d+) kB", meminfo).group(1)) * 1024
    assert 0.1 * total < machine_memory() <= total * 1.01


def test_grid_too_large_for_any_machine_is_refused_with_the_estimate(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(small_recipe_dict(grid={"n": 4096, "dim": 3})))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    found = re.fullmatch(
        rf"{re.escape(str(path))}: grid\.n: 4096 in 3D needs about ([\d.e+]+) GiB of memory, "
        r"this machine has ([\d.]+) GiB \(([\d.e+]+) GiB of it for .*\)",
        message,
    )
    assert found, message
    needs, has = float(found.group(1)), float(found.group(2))
    # 4096^3 = 6.9e10 unknowns: the matrix alone is 7 entries of 12 bytes per unknown
    assert needs > 6.9e10 * 7 * 12 / GIB and needs > has
    assert has == pytest.approx(machine_memory() / GIB, rel=0.01)


def test_the_field_named_is_the_one_to_change():
    """A trajectory too long for the machine names problem.steps, whatever the shard size:
    a shard is written sample by sample (`ShardWriter`), so its size holds only each
    sample's statistics."""
    data = yaml.safe_load(HEAT.read_text())
    data["problem"]["steps"] = 2000  # 2001 frames of 65^2 nodes: 68 MB per sample
    heavy = recipe_from_dict(data)
    with pytest.raises(RecipeError, match=r"^problem\.steps: 2000 needs about [\d.]+ GiB"):
        check_memory(heavy, available=int(0.3 * GIB))
    data["output"]["shard_size"] = 1
    one_per_shard = estimate(recipe_from_dict(data)).total
    assert estimate(heavy).total - one_per_shard == 49 * BOOKKEEPING_PER_SAMPLE
    with pytest.raises(RecipeError, match=r"^grid\.n: 63 in 2D needs about"):
        check_memory(heavy, available=64 * 1024**2)  # not even the interpreter fits
    check_memory(heavy, available=64 * GIB)


# VmHWM, the high-water mark of this process's own memory map. Not ru_maxrss: Linux carries
# that over from the parent's memory at exec, so under a large pytest process every child
# reported the parent's size.
PEAK_OF_RUN = """
import re, sys
from pdegen.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("VmHWM", int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024)
sys.exit(code)
"""


def _peak_rss_mib(recipe: dict, tmp_path: Path, name: str) -> float:
    """The peak RSS of `pdegen generate` on `recipe` (serial engine: one process)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = str(tmp_path / name)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK_OF_RUN,
            "generate",
            str(path),
            "--out",
            out,
            "--engine",
            "serial",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return float(re.search(r"VmHWM ([\d.]+)", result.stdout).group(1))


RUNS = {
    # the direct factorisation dominates: Cholesky with nested dissection on 160 000 unknowns
    "cholesky-2d": {"grid": {"n": 400}, "solver": {"method": "direct", "pc": "cholesky"}},
    # the Krylov basis dominates: GCRO-DR(100, 20) on 64 000 unknowns
    "gcrodr-3d": {
        "grid": {"n": 40, "dim": 3},
        "solver": {"method": "gcrodr", "pc": "jacobi", "restart": 100, "recycle": 20},
    },
}


@pytest.mark.parametrize("case", sorted(RUNS))
def test_estimate_is_close_to_the_measured_peak(case, tmp_path):
    """The estimate's growth over a tiny run is within a factor 2 of the measured growth of
    the peak RSS (the interpreter's own share is the same for both and not the point)."""
    tiny = small_recipe_dict(samples=2, grid={"n": 7}, output={"shard_size": 2})
    big = small_recipe_dict(samples=2, output={"shard_size": 2}, **RUNS[case])
    measured = _peak_rss_mib(big, tmp_path, "big") - _peak_rss_mib(tiny, tmp_path, "tiny")
    estimated = (
        estimate(recipe_from_dict(big)).total - estimate(recipe_from_dict(tiny)).total
    ) / 1024**2
    assert measured > 50, measured  # the case is large enough to measure
    assert 0.5 < estimated / measured < 2, (estimated, measured)
