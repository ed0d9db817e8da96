"""Bad input: one clear line naming the field, exit status 2, no traceback, nothing written."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import DELETE, run, small_recipe_dict


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


CASES = {
    "unknown key": ({"colour": "red"}, "colour: unknown field"),
    "unknown nested key": (
        {"solver": {"preconditioner": "ilu"}},
        "solver.preconditioner: unknown field",
    ),
    "wrong type": ({"samples": "many"}, "samples: expected an integer"),
    "negative size": ({"samples": -3}, "samples: -3 is out of range (must be at least 1)"),
    "negative grid": ({"grid": {"n": -1}}, "grid.n: -1 is out of range"),
    "unknown preconditioner": (
        {"solver": {"pc": "magic"}},
        "solver.pc: 'magic' is not allowed (allowed: auto, none, jacobi",
    ),
    "unknown family": ({"family": "euler"}, "family: 'euler' is not allowed"),
    "bad tolerance": ({"solver": {"rtol": 2.0}}, "solver.rtol: 2.0 is out of range"),
    "missing field": ({"samples": DELETE}, "samples: missing (expected an integer)"),
    "bad coefficient kind": (
        {"problem": {"coefficient": {"kind": "uniform"}}},
        "problem.coefficient.kind: 'uniform' is not allowed",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_recipe_field(case, tmp_path):
    change, message = CASES[case]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(small_recipe_dict(**change)))
    before = tree(tmp_path)
    result = run(["generate", str(recipe)], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pdegen: error: ") and message in lines[0], lines[0]
    assert str(recipe) in lines[0]
    assert "Traceback" not in result.stderr
    assert tree(tmp_path) == before  # nothing written, not even an empty data directory


def expect_one_line_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_recipe_file(tmp_path):
    expect_one_line_error(
        run(["generate", "nope.yaml"], tmp_path), "nope.yaml: recipe file not found"
    )
    assert tree(tmp_path) == []


def test_invalid_yaml(tmp_path):
    (tmp_path / "r.yaml").write_text("name: [unclosed\n")
    expect_one_line_error(run(["generate", "r.yaml"], tmp_path), "not valid YAML")
    assert tree(tmp_path) == ["r.yaml"]


def test_command_line_override_is_validated_like_the_recipe(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(small_recipe_dict()))
    expect_one_line_error(
        run(["generate", "r.yaml", "--samples", "0"], tmp_path), "samples: 0 is out of range"
    )
    assert tree(tmp_path) == ["r.yaml"]


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(small_recipe_dict()))
    (tmp_path / "taken").write_text("not a directory")
    expect_one_line_error(
        run(["generate", "r.yaml", "--out", "taken"], tmp_path),
        "taken: output path exists and is not a directory",
    )
    assert tree(tmp_path) == ["r.yaml", "taken"]


def test_inspect_of_a_path_that_is_not_a_dataset(tmp_path):
    expect_one_line_error(run(["inspect", "missing"], tmp_path), "missing: no such dataset")
    (tmp_path / "empty").mkdir()
    expect_one_line_error(run(["inspect", "empty"], tmp_path), "not a pdegen dataset")


def test_console_script_is_installed():
    exe = shutil.which("pdegen") or str(Path(sys.executable).parent / "pdegen")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "generate" in result.stdout


def test_a_busy_dask_dashboard_port_prints_nothing(tmp_path):
    """Another Dask cluster on this machine (another pdegen run) holds port 8787: our local
    cluster takes a free port and stderr stays empty, so one-line errors stay one line."""
    import socket

    holder = socket.socket()
    try:
        holder.bind(("", 8787))
        holder.listen()
    except OSError:
        pass  # somebody already holds it, which is the case under test
    try:
        (tmp_path / "r.yaml").write_text(yaml.safe_dump(small_recipe_dict(samples=2)))
        result = run(["generate", "r.yaml", "--workers", "1", "--quiet", "--no-figures"], tmp_path)
    finally:
        holder.close()
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
