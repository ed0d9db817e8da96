"""The README's path from `make demo` to a training loop runs as written.

The PyTorch block runs where torch is installed (it is a consumer, never a dependency); the
JAX block runs with JAX where installed, and otherwise with numpy standing in for
`jax.numpy.asarray` (all the block asks of JAX), so CI checks it without the framework.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pdegen.recipe.schema import load_recipe
from pdegen.run.generate import generate

ROOT = Path(__file__).resolve().parents[1]


def training_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Training on it", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    recipe = load_recipe(ROOT / "recipes" / "darcy-demo.yaml")
    generate(recipe, out=root / "data" / "darcy-demo", progress=False, engine="serial")
    return root


def run(code: str, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    inherited = os.environ.get("PYTHONPATH", "")
    env_path = [str(ROOT), *([str(extra_path)] if extra_path else []), inherited]
    # the last batch of the loop may be short: check the per-sample shape
    check = "\nassert x.shape[1:] == y.shape[1:] == (1, 64, 64), (x.shape, y.shape)\n"
    return subprocess.run(
        [sys.executable, "-c", code + check],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ":".join(p for p in env_path if p)},
    )


def test_the_readme_has_a_pytorch_and_a_jax_block():
    blocks = training_blocks()
    assert len(blocks) == 2
    assert "torch.utils.data.DataLoader" in blocks[0] and "num_workers=2" in blocks[0]
    assert "jax.numpy" in blocks[1]


def test_the_pytorch_block_runs(demo):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is a consumer, not a dependency: not installed here")
    done = run(training_blocks()[0], demo)
    assert done.returncode == 0, done.stderr


def test_the_jax_block_runs(demo, tmp_path):
    shim = None
    if importlib.util.find_spec("jax") is None:
        shim = tmp_path / "shim"
        (shim / "jax").mkdir(parents=True)
        (shim / "jax" / "__init__.py").write_text("")
        (shim / "jax" / "numpy.py").write_text("from numpy import asarray  # noqa: F401\n")
    done = run(training_blocks()[1], demo, shim)
    assert done.returncode == 0, done.stderr
