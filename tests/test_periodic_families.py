"""The periodic families (pdegen/families/spectral.py and its five families) as a user runs
them, against oracles that share no code with the solver: Burgers' Cole-Hopf solution,
Taylor-Green decay and FNO's exact steady state, advection's exact translates, the logistic
solution of a spatially constant Fisher-KPP state, PDEBench's initial law recovered from the
drawn fields' spectra, and `check --deep` re-integrating the stored frames."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from pdegen.errors import RecipeError
from pdegen.families import FAMILIES, family_from_recipe
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.generate import generate
from tests.helpers import (
    assert_deep_check_catches_a_changed_frame,
    family_recipe,
    small_recipe_dict,
)

PERIODIC = sorted(name for name, cls in FAMILIES.items() if not cls.linear_systems)


def family(name: str, grid: dict | None = None, **problem):
    data = family_recipe(name)
    if grid:
        data["grid"] = {**data["grid"], **grid}
    data["problem"] = {**data["problem"], **problem}
    return family_from_recipe(recipe_from_dict(data))


def test_every_periodic_family_runs_the_spectral_method_and_only_it():
    assert PERIODIC == ["advection", "burgers", "fisher-kpp", "kuramoto-sivashinsky",
                        "navier-stokes"]  # fmt: skip
    for name in PERIODIC:
        recipe = recipe_from_dict(family_recipe(name))
        assert recipe.solver.method == "auto" and recipe.grid.periodic is True
        assert family_from_recipe(recipe).resolve_for("auto", "auto") == ("spectral", "none")


def cole_hopf(x: np.ndarray, t: float, nu: float, fine: int = 4096) -> np.ndarray:
    """Burgers from u0 = sin(2 pi x) by Cole-Hopf: phi = exp(-U / (2 nu)), U' = u0, solves
    the heat equation (each mode exactly, on a fine grid); u = -2 nu phi_x / phi."""
    z = np.arange(fine) / fine
    potential = (1.0 - np.cos(2.0 * math.pi * z)) / (2.0 * math.pi)
    phi0 = np.exp(-(potential - potential.min()) / (2.0 * nu))
    k = 2.0 * math.pi * np.fft.fftfreq(fine, 1.0 / fine)
    phi_hat = np.fft.fft(phi0) * np.exp(-nu * k**2 * t)
    u = -2.0 * nu * np.fft.ifft(1j * k * phi_hat).real / np.fft.ifft(phi_hat).real
    return u[:: fine // x.size]


@pytest.mark.parametrize("cfl,tolerance", [(0.25, 1e-5), (0.02, 1e-10)])
def test_burgers_family_frames_are_the_cole_hopf_solution(cfl, tolerance):
    """Every stored frame, with the family's own step rule: the default CFL 0.25 (error
    1.5e-6 measured), and a smaller one that reaches the exact solution to 1e-10."""
    fam = family("burgers", {"n": 256}, t_end=0.3, frames=3, cfl=cfl)
    u0 = np.sin(2.0 * math.pi * fam.x)
    frames, results = fam.trajectory_from({"initial": u0}, {"viscosity": 0.05})
    for k, t in enumerate(fam.times):
        assert np.abs(frames[k] - cole_hopf(fam.x, t, 0.05)).max() < tolerance, t
    assert all(r.converged for r in results) and fam.sample_stats(results)["spectral_tail"] < 1e-8


def test_burgers_viscosity_over_pi_is_pdebenchs_equation():
    """`viscosity_over_pi`: the equation's viscosity is nu / pi, /params stores nu."""
    over = family("burgers", {"n": 128}, viscosity_over_pi=True, t_end=0.2, frames=1)
    plain = family("burgers", {"n": 128}, t_end=0.2, frames=1)
    u0 = np.sin(2.0 * math.pi * over.x)
    a, _ = over.trajectory_from({"initial": u0}, {"viscosity": 0.05 * math.pi})
    b, _ = plain.trajectory_from({"initial": u0}, {"viscosity": 0.05})
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_navier_stokes_family_taylor_green_and_fnos_steady_state():
    """No forcing: cos 2 pi x cos 2 pi y decays as exp(-8 pi^2 nu t); FNO's forcing from its
    steady state f / (8 pi^2 nu): held there; the mean vorticity stays zero."""
    fam = family("navier-stokes", {"n": 32}, t_end=1.0, frames=2)
    x, y = np.meshgrid(*fam.grid.coordinates, indexing="ij")
    nu = 1e-2
    tg = np.cos(2 * math.pi * x) * np.cos(2 * math.pi * y)
    frames, _ = fam.trajectory_from({"initial": tg, "forcing": 0 * tg}, {"viscosity": nu})
    for k, t in enumerate(fam.times):
        assert np.abs(frames[k] - tg * math.exp(-8 * math.pi**2 * nu * t)).max() < 1e-12
    forcing = fam.forcing(np.random.default_rng(0))  # FNO's, the recipe's default
    np.testing.assert_allclose(
        forcing, 0.1 * (np.sin(2 * math.pi * (x + y)) + np.cos(2 * math.pi * (x + y))), atol=1e-15
    )
    steady = forcing / (8 * math.pi**2 * nu)
    frames, _ = fam.trajectory_from({"initial": steady, "forcing": forcing}, {"viscosity": nu})
    assert np.abs(frames - steady).max() < 1e-12 * np.abs(steady).max()
    assert np.abs(frames.mean(axis=(1, 2))).max() < 1e-15


def test_navier_stokes_stores_every_other_point_of_its_solve():
    """`stored_points`: the stored frames are the solve grid's at every stride-th point."""
    fine = family("navier-stokes", {"n": 32}, stored_points=16)
    full = family("navier-stokes", {"n": 32})
    a, b = fine.sample(0, 1), full.sample(0, 1)
    np.testing.assert_array_equal(a.inputs["initial"], b.inputs["initial"][::2, ::2])
    fa, _ = fine.solve_sample(a, None)
    fb, _ = full.solve_sample(b, None)
    np.testing.assert_array_equal(fa["vorticity"], fb["vorticity"][:, ::2, ::2])
    assert fine.coordinates["x"].tolist() == (np.arange(16) / 16).tolist()


@pytest.mark.parametrize("forcing", ["kolmogorov", "random", "none"])
def test_navier_stokes_forcings(forcing):
    fam = family("navier-stokes", {"n": 16}, forcing=forcing, wavenumber=2, amplitude=1.0)
    f = fam.sample(0, 0).inputs["forcing"]
    x, y = np.meshgrid(*fam.grid.coordinates, indexing="ij")
    if forcing == "kolmogorov":  # the curl of (sin(k y), 0): -k cos(k y)
        np.testing.assert_allclose(f, -4 * math.pi * np.cos(4 * math.pi * y), atol=1e-12)
    elif forcing == "none":
        assert not f.any()
    else:  # a new draw per sample
        assert np.abs(f).max() > 0 and not np.array_equal(f, fam.sample(0, 1).inputs["forcing"])


def test_advection_frames_are_exact_translates():
    fam = family("advection", {"n": 64}, t_end=0.5, frames=5)
    x = fam.x

    def u0(z):
        return np.sin(2 * math.pi * 3 * z + 0.4) + 0.5 * np.cos(2 * math.pi * z)

    frames, _ = fam.trajectory_from({"initial": u0(x)}, {"speed": 1.7})
    for k, t in enumerate(fam.times):
        assert np.abs(frames[k] - u0(x - 1.7 * t)).max() < 1e-13, t


def test_fisher_kpp_constant_state_follows_the_logistic_solution():
    """A spatially constant state has no diffusion: u(t) = 1 / (1 + (1/u0 - 1) e^(-rho t))."""
    fam = family("fisher-kpp", {"n": 32}, t_end=1.0, frames=4)
    frames, _ = fam.trajectory_from({"initial": np.full(32, 0.1)}, {"viscosity": 1.0, "rate": 5.0})
    for k, t in enumerate(fam.times):
        exact = 1.0 / (1.0 + 9.0 * math.exp(-5.0 * t))
        assert np.abs(frames[k] - exact).max() < 1e-7, (t, frames[k][0], exact)


def test_fisher_kpp_keeps_states_in_zero_one_and_pdebenchs_start_is_rescaled():
    fam = family("fisher-kpp", {"n": 128}, t_end=1.0, frames=10,
                 viscosity={"min": 0.5, "max": 0.5}, rate={"min": 10.0, "max": 10.0})  # fmt: skip
    for index in range(5):
        sample = fam.sample(0, index)
        u0 = sample.inputs["initial"]
        assert u0.min() == 0.0 and u0.max() == 1.0
        frames, _ = fam.solve_sample(sample, None)
        u = frames["solution"]
        assert u.min() > -1e-6 and u.max() < 1 + 1e-6


def test_kuramoto_sivashinsky_warm_up_leaves_frame_zero_on_the_attractor():
    fam = family("kuramoto-sivashinsky")
    assert fam.time_stepping.initial_input is None  # frame 0 is the warmed-up state
    sample = fam.sample(0, 0)
    out, results = fam.solve_sample(sample, None)
    u = out["solution"]
    assert not np.array_equal(u[0], sample.inputs["initial"])
    assert len(results) == 1 + 2  # the warm-up, then one per frame interval
    cold = family("kuramoto-sivashinsky", warmup=0.0)
    assert cold.time_stepping.initial_input == "initial"
    out, _ = cold.solve_sample(cold.sample(0, 0), None)
    np.testing.assert_array_equal(out["solution"][0], cold.sample(0, 0).inputs["initial"])


def test_pdebench_sine_law_statistics():
    """2000 draws of the `sines` law, read back from their spectra alone (an oracle that
    does not know the draws): where the state is a sum of sines on wavenumbers 1-4 (no
    absolute value, no window: probability 0.81), each distinct mode's amplitude is
    U(0, 1) (mean 1/2, variance 1/12) and each wavenumber is equally likely; the states with
    an absolute value are one-signed, half of them negative (the random sign)."""
    fam = family("advection", {"n": 256})
    clean, amplitudes, modes, one_signed, negative = 0, [], np.zeros(5), 0, 0
    count = 2000
    for index in range(count):
        u0 = fam.sample(7, index).inputs["initial"]
        spectrum = np.abs(np.fft.rfft(u0)) * 2 / u0.size
        if spectrum[5:].max() < 1e-12 and spectrum[0] < 1e-12:
            clean += 1
            present = np.flatnonzero(spectrum[1:5] > 1e-12) + 1
            if present.size == 2:  # two distinct wavenumbers: each amplitude is one draw
                amplitudes += spectrum[present].tolist()
                modes[present] += 1
        elif u0.min() >= 0 or u0.max() <= 0:
            one_signed += 1
            negative += u0.max() <= 0
    n = count
    assert abs(clean / n - 0.81) < 3 * math.sqrt(0.81 * 0.19 / n)
    a = np.array(amplitudes)
    assert abs(a.mean() - 0.5) < 3 * math.sqrt(1 / 12 / a.size)
    assert abs(a.var() - 1 / 12) < 0.01
    share = modes[1:] / modes[1:].sum()
    assert np.abs(share - 0.25).max() < 0.03, share
    assert 0.05 < one_signed / n < 0.12  # the absolute value's 0.1, less windowed ones
    assert abs(negative / one_signed - 0.5) < 0.15


@pytest.mark.parametrize(
    "grid,problem,message",
    [
        ({"n": 32, "dim": 2}, {}, "grid.dim: 2 is not allowed for burgers (allowed: 1)"),
        ({"n": 33, "dim": 1}, {}, "grid.n: 33 points per axis cannot be transformed"),
        (
            {"n": 32, "dim": 1, "periodic": False},
            {},
            "grid.periodic: false is not allowed: burgers is periodic",
        ),
        ({"n": 32, "dim": 1, "length": [1.0, 2.0]}, {}, "grid.length: 2 values for a 1D grid"),
        ({"n": 32, "dim": 1}, {"stored_points": 12}, "problem.stored_points: 12 must be"),
        (
            {"n": 32, "dim": 1},
            {"initial": {"law": "sines", "max_wavenumber": 11}},
            "problem.initial.max_wavenumber: 11 is not resolved",
        ),  # fmt: skip
    ],
)
def test_bad_periodic_grids_are_refused_naming_the_field(grid, problem, message):
    data = small_recipe_dict(family="burgers", grid=grid, solver={"method": "auto"})
    data["problem"] = problem
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recipe_from_dict(data)


@pytest.mark.parametrize(
    "family_name,grid,solver,message",
    [
        (
            "burgers",
            {"n": 32, "dim": 1},
            {"method": "gmres"},
            "solver.method: 'gmres' does not apply to burgers's operator: it is integrated "
            "spectrally, with no linear system to solve or precondition (allowed: auto, spectral)",
        ),
        ("burgers", {"n": 32, "dim": 1}, {"method": "cg"}, "solver.method: 'cg' does not apply"),
        (
            "burgers",
            {"n": 32, "dim": 1},
            {"method": "auto", "pc": "ilu"},
            "solver.pc: 'ilu' does not apply",
        ),
        (
            "darcy",
            {"n": 15},
            {"method": "spectral"},
            "solver.method: 'spectral' does not apply to darcy's operator: it integrates the "
            "periodic families",
        ),
        (
            "darcy",
            {"n": 15, "periodic": True},
            {},
            "grid.periodic: true is not allowed: darcy is bounded",
        ),
        (
            "darcy",
            {"n": 15, "length": 2.0},
            {},
            "grid.length: 2.0 is not allowed: darcy is defined on the unit",
        ),
        ("darcy", {"n": 15, "dim": 1}, {}, "grid.dim: 1 is not allowed for darcy"),
    ],  # fmt: skip
)
def test_solvers_and_grids_a_family_cannot_take_are_refused(family_name, grid, solver, message):
    data = small_recipe_dict(family=family_name, grid=grid, solver={"pc": "auto", **solver})
    if family_name != "darcy":
        data["problem"] = {}
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data)
    assert message in str(err.value)


def test_cli_refuses_a_bad_periodic_recipe_in_one_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: b\nfamily: burgers\nsamples: 2\ngrid: {n: 31, dim: 1}\n")
    run = subprocess.run(
        [sys.executable, "-m", "pdegen.cli", "generate", str(path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "grid.n: 31" in run.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_check_deep_reintegrates_the_stored_frames_and_finds_a_wrong_one(tmp_path, dtype):
    data = family_recipe("kuramoto-sivashinsky")
    data.update(samples=3, output={"shard_size": 3, "dtype": dtype})
    assert_deep_check_catches_a_changed_frame(data, tmp_path / "ks", "solution", 1, 2, 1.001)


def test_check_deep_says_why_a_subsampled_dataset_is_checked_by_its_inputs(tmp_path):
    from pdegen.dataset.check import check_dataset

    data = family_recipe("navier-stokes")
    data.update(samples=2)
    data["problem"] = {**data["problem"], "stored_points": 8}
    out = tmp_path / "ns"
    generate(recipe_from_dict(data), out=out, progress=False, engine="serial")
    report = check_dataset(out, deep=2)
    assert report.ok, report.problems
    assert any("stores one point in 2 per axis" in n for n in report.notices)


def test_the_loader_strides_a_periodic_grid_by_its_points(tmp_path):
    """No end node twice: a stride must divide the points (64 / 8), not the intervals."""
    from pdegen import open_dataset
    from pdegen.errors import PdegenError

    data = family_recipe("burgers")
    data.update(samples=2, grid={"n": 64, "dim": 1})
    out = tmp_path / "b"
    summary = generate(recipe_from_dict(data), out=out, progress=False, engine="serial")
    assert any(line.startswith("time steps per sample: ") for line in summary.lines())
    with open_dataset(out) as full, open_dataset(out, stride=8) as coarse:
        assert coarse[0]["solution"].shape == (3, 8)
        np.testing.assert_array_equal(coarse[0]["solution"], full[0]["solution"][:, ::8])
    with pytest.raises(PdegenError, match="stride: 3 does not divide the grid of initial"):
        open_dataset(out, stride=3)
