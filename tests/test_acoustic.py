"""Acoustic waves (pdegen/families/acoustic.py), against oracles that share no code with the
schemes: a standing mode's exact solution (second order in space and time, both schemes), the
discrete energy Newmark conserves, the reciprocity of the Green's function in a random medium,
Newmark against leapfrog as the steps shrink, the maze's connectivity by breadth-first search,
and `check --deep` re-running a sample with scipy's sparse LU."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest

from pdegen.errors import RecipeError
from pdegen.families import family_from_recipe
from pdegen.families.acoustic import maze_walls, medium_bounds
from pdegen.recipe.schema import recipe_from_dict
from solvers import ChainSolver
from tests.helpers import assert_deep_check_catches_a_changed_frame, family_recipe


def recipe(grid=None, **problem) -> dict:
    data = family_recipe("acoustic")
    data["grid"] = {**data["grid"], **(grid or {})}
    data["problem"] = {**data["problem"], **problem}
    return data


def family(grid=None, **problem):
    return family_from_recipe(recipe_from_dict(recipe(grid, **problem)))


def cholesky():
    """Newmark's solves by PETSc's Cholesky, one factorisation per step size."""
    return ChainSolver("direct", "cholesky", rtol=1e-12).solve


def standing_mode_error(n: int, scheme: str) -> float:
    """max |p - p_exact| at t = 0.5 for the (1, 1) mode cos(pi x') cos(pi y') of the square
    [-1, 1]^2 with rigid walls (x' = (x + 1) / 2): c = sqrt(K / rho) = 2, omega = c pi / sqrt(2)."""
    fam = family(
        {"n": n},
        density={"law": "constant", "value": 1.0},
        bulk_modulus={"law": "constant", "value": 4.0},
        scheme=scheme,
        t_end=0.5,
        frames=1,
        dt=0.4 * (2.0 / n),
        cfl=0.4,
    )
    s = (fam.x + 1.0) / 2.0
    mode = np.outer(np.cos(math.pi * s), np.cos(math.pi * s))
    inputs = {"density": np.ones((n, n)), "bulk_modulus": np.full((n, n), 4.0)}
    frames, _ = fam.trajectory(fam.build_medium(inputs), mode, None, cholesky())
    omega = 2.0 * math.pi * math.sqrt(2.0) / 2.0
    return float(np.max(np.abs(frames[-1] - (mode * math.cos(omega * 0.5)).ravel())))


@pytest.mark.parametrize("scheme", ["newmark", "leapfrog"])
def test_a_standing_mode_converges_at_second_order(scheme):
    """The cell-centred cosine is an eigenvector of the rigid-wall operator, so the error is
    the discrete frequency's (O(h^2)) and the time scheme's (O(dt^2)), with dt ~ h."""
    errors = [standing_mode_error(n, scheme) for n in (16, 32, 64)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert errors[-1] < 2e-3, errors
    assert min(orders) > 1.8, (errors, orders)


def random_medium(n: int = 24, absorbing: float = 0.0, **problem):
    fam = family(
        {"n": n},
        density={"law": "lognormal", "value": 1.0, "sigma": 0.5},
        bulk_modulus={"law": "inclusions", "value": 4.0, "log_contrast": {"min": -0.3, "max": 0.3}},
        initial={"width": 0.3, "radius": {"min": 0.2, "max": 0.3}},
        absorbing=absorbing,
        **problem,
    )
    sample = fam.sample(3, 0)
    return fam, sample, fam.build_medium(sample.inputs)


def test_newmark_conserves_the_discrete_energy_without_absorption():
    """v^T M v / 2 + p^T S p / 2 after every frame, through 200 steps of a random medium,
    equals the first to the solves' rounding; with an absorbing layer it never grows and most
    of it leaves."""
    fam, sample, medium = random_medium(t_end=2.0, frames=20, dt=0.01)
    p0 = sample.inputs["initial_pressure"].ravel()
    energy = lambda state: medium.energy(state[0], state[1])  # noqa: E731
    energies, _ = fam.newmark(medium, p0.copy(), np.zeros_like(p0), cholesky(), energy)
    drift = np.max(np.abs(np.array(energies) - energies[0])) / energies[0]
    assert drift < 1e-10, drift
    fam, sample, medium = random_medium(absorbing=0.2, t_end=2.0, frames=20, dt=0.01)
    energy = lambda state: medium.energy(state[0], state[1])  # noqa: E731
    damped, _ = fam.newmark(medium, p0.copy(), np.zeros_like(p0), cholesky(), energy)
    assert np.all(np.diff(damped) <= 1e-12 * damped[0])
    assert damped[-1] < 0.2 * damped[0]


@pytest.mark.parametrize("scheme", ["newmark", "leapfrog"])
def test_the_greens_function_is_reciprocal_in_a_random_medium(scheme):
    """An impulse at a heard at b equals an impulse at b heard at a: (s^2 M + s C + S)^-1 is
    symmetric, and both schemes are rational functions of it (absorbing layer included)."""
    fam, _, medium = random_medium(absorbing=0.15, scheme=scheme, t_end=0.6, frames=6, dt=0.01)
    a, b = 8 * 24 + 7, 14 * 24 + 13
    heard, loudest = {}, 0.0
    for source, receiver in ((a, b), (b, a)):
        v0 = np.zeros(24 * 24)
        v0[source] = 1.0 / medium.mass[source]
        frames, _ = fam.trajectory(medium, np.zeros(24 * 24), v0, cholesky())
        heard[source] = np.array([f[receiver] for f in frames[1:]])
        loudest = max(loudest, np.max(np.abs(frames)))
    scale = np.max(np.abs(heard[a]))
    assert scale > 0.05 * loudest  # the wave has reached the receiver
    np.testing.assert_allclose(heard[a], heard[b], rtol=0, atol=1e-10 * scale)


def test_newmark_and_leapfrog_agree_as_the_steps_shrink():
    """Two schemes that share only the spatial operator: on a random medium their difference
    falls at second order as both steps halve."""
    differences = []
    for dt, cfl in ((0.01, 0.8), (0.005, 0.4)):
        last = {}
        for scheme in ("newmark", "leapfrog"):
            fam, sample, medium = random_medium(scheme=scheme, t_end=0.5, frames=1, dt=dt, cfl=cfl)
            frames, _ = fam.trajectory(medium, sample.inputs["initial_pressure"], None, cholesky())
            last[scheme] = frames[-1]
        differences.append(np.max(np.abs(last["newmark"] - last["leapfrog"])))
    assert differences[0] > 1e-6  # the schemes differ at all: the test can fail
    assert differences[1] < differences[0] / 3.0, differences


def test_the_maze_is_one_connected_tree_of_paths():
    """Every open block reachable from every other (breadth-first search), rooms^2 rooms and
    rooms^2 - 1 openings (a spanning tree), the border closed."""
    for seed in range(5):
        rooms = 3 + seed
        walls = maze_walls(np.random.default_rng(seed), rooms)
        assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
        open_blocks = {tuple(ij) for ij in np.argwhere(~walls)}
        assert len(open_blocks) == rooms**2 + rooms**2 - 1
        start = next(iter(open_blocks))
        seen, queue = {start}, deque([start])
        while queue:
            i, j = queue.popleft()
            for nb in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if nb in open_blocks and nb not in seen:
                    seen.add(nb)
                    queue.append(nb)
        assert seen == open_blocks


@pytest.mark.parametrize(
    "density",
    [
        {"law": "layers", "log_contrast": {"min": -1.0, "max": 1.0}},
        {"law": "discontinuous-layers", "log_contrast": {"min": -1.0, "max": 1.0}},
        {"law": "inclusions", "value": 2.0, "log_contrast": {"min": -1.0, "max": 2.0}},
        {"law": "maze", "value": 3.0, "wall": 1e6, "maze_cells": 4},
        {"law": "lognormal", "value": 1.0, "sigma": 0.5},
    ],
)
def test_each_density_law_stays_within_its_stated_bounds(density):
    """`medium_bounds` (what the points-per-wavelength rule reads) holds for every draw; the
    maze has exactly its two values, the discontinuous layers jump, the smooth ones do not."""
    fam = family({"n": 64}, density=density)
    spec = fam.problem.density
    low, high = medium_bounds(spec)
    for index in range(6):
        rho = fam.sample(1, index).inputs["density"]
        if spec.law == "maze":
            assert set(np.unique(rho)) == {spec.value, spec.wall}
            continue
        assert rho.min() >= low * (1 - 1e-12) and rho.max() <= high * (1 + 1e-12)
    rho = np.log(fam.sample(1, 0).inputs["density"])
    if spec.law == "discontinuous-layers":
        assert len(np.unique(np.round(rho, 12))) <= spec.layers
    if spec.law == "layers":
        assert len(np.unique(np.round(rho, 12))) > 64


def test_a_grid_that_does_not_resolve_the_rings_is_refused():
    """The rings' shortest wavelength in the slowest medium must get the stated cells."""
    data = recipe({"n": 16}, initial={"width": 0.02})
    with pytest.raises(RecipeError, match="problem.min_points_per_wavelength"):
        recipe_from_dict(data)


@pytest.mark.parametrize("scheme", ["newmark", "leapfrog"])
def test_the_deep_check_reruns_a_sample_and_catches_a_changed_frame(tmp_path, scheme):
    data = recipe({"n": 16}, scheme=scheme, frames=3, t_end=0.3)
    data["samples"] = 2
    data["solver"] = {"method": "cg", "pc": "jacobi", "rtol": 1e-10}
    assert_deep_check_catches_a_changed_frame(data, tmp_path / "d", "pressure", 1, 2, 1.01)
