"""What several test modules share: small recipes, the command line in a subprocess (one
process or MPI ranks), datasets read back whole, and small solver chains. Test modules import
from here, never from each other."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from pdegen.families import FAMILIES, Darcy
from pdegen.specs import CoefficientSpec

ROOT = Path(__file__).resolve().parent.parent


DELETE = object()  # marks a field to remove from the recipe


def small_recipe_dict(**changes) -> dict:
    recipe = {
        "name": "tiny",
        "family": "darcy",
        "samples": 10,
        "seed": 7,
        "grid": {"n": 15},
        "problem": {"coefficient": {"kind": "threshold", "alpha": 2.0, "tau": 3.0}},
        "solver": {"method": "cg", "pc": "jacobi", "rtol": 1e-8},
        "output": {"dir": "data", "shard_size": 4},
    }
    for key, value in changes.items():
        if value is DELETE:
            del recipe[key]
        elif isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


PYTHON = sys.executable


MPIRUN = shutil.which("mpirun")


def recipe_dict(**changes):
    base = {
        "samples": 12,
        "output": {"shard_size": 3},
        "solver": {"method": "gcrodr", "pc": "jacobi"},
    }
    return small_recipe_dict(**{**base, **changes})


def cli(args, cwd, **kwargs):
    return subprocess.run(
        [PYTHON, "-m", "pdegen.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        **kwargs,
    )


def mpi(ranks, args, cwd):
    return subprocess.run(
        [MPIRUN, "-n", str(ranks), PYTHON, "-m", "pdegen.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def read_all(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of every shard, keyed by shard and name (stats timing excluded)."""
    out = {}
    for shard in sorted(path.glob("shard-*.h5")):
        with h5py.File(shard, "r") as f:

            def visit(name, obj, shard=shard):
                if isinstance(obj, h5py.Dataset) and name != "stats/seconds":
                    out[f"{shard.name}/{name}"] = obj[()]

            f.visititems(visit)
    return out


def assert_same_dataset(expected: dict, path: Path):
    """Bit for bit: inputs, parameters, order and counts, and the solutions too (one BLAS
    thread in every engine's batches; nothing a solve computes depends on where its vectors
    lie, `solvers.petsc.rigid_body_modes`)."""
    got = read_all(path)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


PDEGEN = [sys.executable, "-m", "pdegen.cli"]


def run(args, cwd):
    return subprocess.run([*PDEGEN, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def darcy_chain(count=6, n=20, kind="lognormal", seed=0):
    family = Darcy.square(n, CoefficientSpec(kind=kind))
    return [family.system(family.sample(seed, i)) for i in range(count)]


def drifting_chain(count=5, n=24, step=0.05):
    """Neighbouring systems that differ a little, as a sorted chain does."""
    family = Darcy.square(n, CoefficientSpec(kind="lognormal"))
    base = family.sample(0, 0).inputs["coefficient"]
    drift = np.log(family.sample(0, 1).inputs["coefficient"])
    return [family.assemble(base * np.exp(step * t * drift), 1.0) for t in range(count)]


# Small valid recipes per family: Helmholtz needs a grid that resolves its wavenumbers.
PROBLEMS = {
    "darcy": ({"n": 15}, {"coefficient": {"kind": "lognormal"}}),
    "poisson": ({"n": 15}, {}),
    "helmholtz": ({"n": 31}, {"wavenumber": {"min": 8, "max": 12}}),
    "heat": ({"n": 15}, {"steps": 3}),
    "convection-diffusion": ({"n": 15}, {}),
    "elasticity": ({"n": 9}, {"clamped": "x0"}),
    "nonlinear-diffusion": ({"n": 15}, {}),
    # dt > epsilon^2: the first Jacobian is indefinite, as declared (not positive definite)
    "reaction-diffusion": ({"n": 31}, {"dt": 0.004, "steps": 2}),
    "stokes": ({"n": 15}, {}),
    # the periodic families (spectral): a few frames on small grids
    "burgers": ({"n": 32, "dim": 1}, {"t_end": 0.2, "frames": 2}),
    "navier-stokes": ({"n": 16, "dim": 2}, {"t_end": 0.2, "frames": 2}),
    "kuramoto-sivashinsky": (
        {"n": 32, "dim": 1, "length": 22.0},
        {"warmup": 1.0, "t_end": 1.0, "frames": 2},
    ),
    "advection": ({"n": 32, "dim": 1}, {"t_end": 0.1, "frames": 2}),
    "fisher-kpp": ({"n": 32, "dim": 1}, {"t_end": 0.1, "frames": 2}),
    "fitzhugh-nagumo": ({"n": 16, "length": 2.0}, {"t_end": 0.1, "frames": 2, "dt": 0.01}),
    "diffusion-sorption": ({"n": 32, "dim": 1}, {"t_end": 10.0, "frames": 2, "dt": 1.0}),
    "cavity": ({"n": 15}, {"t_end": 0.1, "frames": 2, "dt": 0.05}),
    "channel": (
        {"n": 16},
        {
            "length": 2.0,
            "cylinders": {
                "radius": {"min": 0.125, "max": 0.2},
                "centre_x": {"min": 0.4, "max": 0.6},
            },
            "t_end": 0.1,
            "frames": 2,
            "dt": 0.05,
        },
    ),
    "acoustic": (
        {"n": 16, "length": 2.0},
        {
            "density": {"law": "constant"},
            "initial": {"width": 0.3, "radius": {"min": 0.2, "max": 0.3}},
            "t_end": 0.1,
            "frames": 2,
            "dt": 0.02,
        },
    ),
}


def family_recipe(family: str, **solver):
    """A small recipe of `family`: GMRES where it solves linear systems, else its own
    integrator (`auto`)."""
    grid, problem = PROBLEMS[family]
    own = (
        {"method": "gmres"} if FAMILIES[family].linear_systems else {"method": "auto", "pc": "auto"}
    )
    data = small_recipe_dict(family=family, grid=grid, solver={**own, **solver})
    data["problem"] = problem
    return data


# -- a family's recipes, shared by its module and the engine tests ---------------------------


def elasticity_engine_recipe() -> dict:
    """Recycling (RCG + GAMG: a sorted chain, cut into batches), clamped at x = 0 and y = 1,
    with a random body force that is stored."""
    data = small_recipe_dict(
        family="elasticity",
        samples=8,
        grid={"n": 9},
        solver={"method": "rcg", "pc": "gamg"},
        output={"shard_size": 3},
    )
    data["problem"] = {"clamped": "x0 y1", "body_force": "random"}
    return data


def stokes_recipe(**changes) -> dict:
    problem = changes.pop("problem", {})
    solver = {"method": "auto", "pc": "auto", **changes.pop("solver", {})}
    data = small_recipe_dict(**{"family": "stokes", "grid": {"n": 15}, "solver": solver, **changes})
    data["problem"] = problem
    return data


def newton_family_recipe(family: str, n: int, problem: dict) -> dict:
    """A small recipe of a Newton family: GCRO-DR + ILU over 6 samples in batches of 3."""
    data = small_recipe_dict(
        family=family,
        samples=6,
        grid={"n": n},
        solver={"method": "gcrodr", "pc": "ilu"},
        output={"shard_size": 3},
    )
    data["problem"] = problem
    return data


def reaction_diffusion_recipe(**problem) -> dict:
    return newton_family_recipe("reaction-diffusion", 31, {"steps": 4, **problem})


def nonlinear_diffusion_recipe(**problem) -> dict:
    return newton_family_recipe("nonlinear-diffusion", 15, problem)


def assert_deep_check_catches_a_changed_frame(
    data: dict, out: Path, field: str, row: int, frame: int, factor: float
) -> None:
    """Generate `data` (serial), pass `check --deep` on every sample with each residual within
    its bound, then scale frame `frame` of `outputs/<field>` in row `row` of the first shard
    by `factor`: the deep check must name that step."""
    from pdegen.dataset.check import check_dataset
    from pdegen.recipe.schema import recipe_from_dict
    from pdegen.run.generate import generate

    generate(recipe_from_dict(data), out=out, progress=False, engine="serial")
    report = check_dataset(out, deep=data["samples"])
    assert report.ok, report.problems
    assert len(report.deep) == data["samples"]
    assert all(d.residual <= d.bound for d in report.deep)
    with h5py.File(out / "shard-00000.h5", "r+") as f:
        stored = f[f"outputs/{field}"]
        stored[row, frame] = stored[row, frame] * factor
    report = check_dataset(out, deep=data["samples"])
    assert any(f"step {frame}: relative residual" in p.what for p in report.problems)
