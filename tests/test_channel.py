"""Channel flow past cylinders (pdegen/families/channel.py) and the rectangle's MAC grid under
it (pdegen/discretisation/mac_rectangle.py), against oracles that share no code with them:
plane Poiseuille flow (its parabola and pressure gradient -12 nu U written out here),
Kovasznay's exact steady Navier-Stokes solution (Re = 40 on [-0.5, 1] x [-0.5, 1.5], all
sides Dirichlet), the discrete divergence after every step, and the physics the family is
for: a steady wake at low Re, shed vortices at high Re."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.ndimage

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.mac_rectangle import FREE, MIRROR, VALUE, MacRectangle, line_operator
from pdegen.discretisation.timestepping import backward_difference
from pdegen.errors import RecipeError
from pdegen.families import family_from_recipe
from pdegen.families.channel import Channel, ChannelProblem, CylindersSpec
from pdegen.recipe.schema import recipe_from_dict
from pdegen.specs import RangeSpec
from solvers import ChainSolver
from tests.helpers import family_recipe


def steady(grid, sides, nu, dt, steps, check=None):
    """March the grid's projection steps from rest (GMRES + ILU to 1e-12, Cholesky for the
    pressure); returns the face velocities, the cell pressures and the last step's change."""
    momentum = ChainSolver("gmres", "ilu", rtol=1e-12, max_iterations=2000)
    pressure = ChainSolver("direct", "cholesky", rtol=1e-12)
    w, p = np.zeros(grid.size), np.zeros(grid.nx * grid.ny)
    change = np.inf
    for _ in range(steps):
        A, b = grid.momentum(w, p, dt, nu, sides)
        result = momentum.solve(A, b, w)
        assert result.converged
        u_star = np.where(grid.open, result.x, 0.0)
        new, p, _ = grid.project(u_star, p, dt, sides, lambda L, r: pressure.solve(L, r))
        change, w = np.max(np.abs(new - w)), new
        if check is not None:
            check(w)
    return w, p, change


def test_a_line_operators_ghost_rules_are_the_stencil_on_the_extended_line():
    """Each rule equals the 3-point stencil applied to the line extended by its ghost."""
    weights, m, g_left, g_right = (-1.0, 2.5, -0.5), 5, 0.7, -1.3
    u = np.random.default_rng(0).normal(size=m)
    for left, right in ((VALUE, MIRROR), (MIRROR, FREE), (FREE, VALUE)):
        ghost = {
            VALUE: lambda g, end: g,
            MIRROR: lambda g, end: 2 * g - end,
            FREE: lambda g, end: end,
        }
        ext = np.concatenate([[ghost[left](g_left, u[0])], u, [ghost[right](g_right, u[-1])]])
        expected = weights[0] * ext[:-2] + weights[1] * ext[1:-1] + weights[2] * ext[2:]
        M, c_left, c_right = line_operator(weights, m, left, right)
        got = M @ u
        got[0] += c_left * g_left
        got[-1] += c_right * g_right
        np.testing.assert_allclose(got, expected, rtol=1e-14)


def poiseuille(n: int, nu: float = 0.1, U: float = 1.0):
    """The steady state of a 2 x 1 channel with no obstacle: the largest error of u at the
    cell centres against 6 U y (1 - y), of dp/dx against -12 nu U, and of v against 0 (the
    entrance adjusts the inflow's parabola to the discrete one)."""
    grid = MacRectangle(2 * n, n, 1.0 / n)
    y = grid.centres(1)
    profile = 6 * U * y * (1 - y)
    mu = grid.u.shape[0]
    sides = {
        "u": {"left": profile, "bottom": np.zeros(mu), "top": np.zeros(mu)},
        "v": {"left": np.zeros(n - 1), "bottom": np.zeros(2 * n), "top": np.zeros(2 * n)},
    }
    w, p, change = steady(grid, sides, nu, 0.05, 300)
    assert change < 1e-10
    u_cells, v_cells = grid.cell_fields(w, sides)
    slope = np.diff(p.reshape(grid.nx, grid.ny)[n // 2 : n], axis=0) / grid.h
    return (
        np.max(np.abs(u_cells - profile)),
        np.max(np.abs(slope + 12 * nu * U)),
        np.max(np.abs(v_cells)),
    )


def test_plane_poiseuille_flow_is_the_steady_state_at_second_order():
    """No obstacle: the flow develops into u = 6 U y (1 - y), v = 0 with dp/dx = -12 nu U.
    u's error (largest in the wall cells: the mirror ghost) falls 0.0149, 0.0048, 0.0013 at
    n = 8, 16, 32 (orders 1.6, 1.8, then 1.9 at 64), the pressure gradient's 4x per halving."""
    errors = np.array([poiseuille(n) for n in (8, 16, 32)])
    velocity_orders = np.log2(errors[:-1, 0] / errors[1:, 0])
    gradient_orders = np.log2(errors[:-1, 1] / errors[1:, 1])
    assert velocity_orders[0] > 1.55 and velocity_orders[1] > 1.8, velocity_orders
    assert np.all(gradient_orders > 1.9), gradient_orders
    # v: the entrance's adjustment from the inflow's exact parabola to the discrete one
    v_orders = np.log2(errors[:-1, 2] / errors[1:, 2])  # 0.0045, 0.0016, 0.00046
    assert v_orders[0] > 1.4 and v_orders[1] > 1.7, v_orders


def vortex(n: int, dt: float, scheme: str, t_end: float = 0.5):
    """A vortex decaying and drifting in a 2 x 1 channel with walls, no inflow and the open
    outflow: the initial velocity the discrete curl of the stream function psi = (sin(pi x /
    2) sin(pi y))^2 / 2 (so divergence-free to round-off, smooth in time from the start), the
    face velocities at t_end marched by `scheme` (nu = 0.1, GMRES + ILU to 1e-12)."""
    grid = MacRectangle(2 * n, n, 1.0 / n)
    X, Y = np.meshgrid(grid.faces(0), grid.faces(1), indexing="ij")
    psi = 0.5 * (np.sin(np.pi * X / 2) * np.sin(np.pi * Y)) ** 2
    u0 = np.diff(psi, axis=1)[1:] / grid.h  # x-faces 1 .. nx
    v0 = -np.diff(psi, axis=0)[:, 1:-1] / grid.h  # y-faces 1 .. ny - 1
    mu = grid.u.shape[0]
    sides = {
        "u": {"left": np.zeros(n), "bottom": np.zeros(mu), "top": np.zeros(mu)},
        "v": {"left": np.zeros(n - 1), "bottom": np.zeros(2 * n), "top": np.zeros(2 * n)},
    }
    momentum = ChainSolver("gmres", "ilu", rtol=1e-12)
    pressure = ChainSolver("direct", "cholesky", rtol=1e-12)
    u, p = np.concatenate([u0.ravel(), v0.ravel()]), np.zeros(grid.nx * grid.ny)
    assert np.max(np.abs(grid.divergence @ u)) < 1e-12
    previous, previous_step = None, None
    for _ in range(round(t_end / dt)):
        terms = backward_difference(u, previous, dt, previous_step)
        A, b = grid.momentum(u, p, dt, 0.1, sides, terms=terms)
        u_star = np.where(grid.open, momentum.solve(A, b, u).x, 0.0)
        new, p, _ = grid.project(u_star, p, dt / terms[0], sides, pressure.solve)
        previous, previous_step = (u if scheme == "bdf2" else None), dt
        u = new
    return u


@pytest.mark.parametrize("scheme, order", [("euler", 1.0), ("bdf2", 2.0)])
def test_the_rectangles_time_schemes_have_their_order(scheme, order):
    """A decaying vortex against a 16 times smaller step on the same grid: backward Euler's
    error halves with the step, BDF2's falls 4x (the momentum and projection terms of
    `MacRectangle` under `backward_difference`)."""
    finest = vortex(12, 0.05 / 16, scheme)
    errors = [np.max(np.abs(vortex(12, dt, scheme) - finest)) for dt in (0.05, 0.025, 0.0125)]
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all((order - 0.2 < orders) & (orders < order + 0.6)), (errors, orders)


def kovasznay(m: int, dt: float = 0.05, steps: int = 300):
    """Kovasznay's flow at Re = 40 on [-0.5, 1] x [-0.5, 1.5], h = 1/m, every side Dirichlet
    from the exact solution (the right side's normal data shifted by a constant so that the
    discrete net flux is zero, which the pinned pressure needs); returns the errors of the
    face velocities and of the mean-free pressure, the largest |div u| over every step, and
    the last step's change."""
    re = 40.0
    lam = re / 2 - np.sqrt(re**2 / 4 + 4 * np.pi**2)

    def u(x, y):
        return 1 - np.exp(lam * x) * np.cos(2 * np.pi * y)

    def v(x, y):
        return lam / (2 * np.pi) * np.exp(lam * x) * np.sin(2 * np.pi * y)

    grid = MacRectangle(3 * m // 2, 2 * m, 1.0 / m, origin=(-0.5, -0.5), outflow=False)
    xc, yc, xf, yf = grid.centres(0), grid.centres(1), grid.faces(0), grid.faces(1)
    sides = {
        "u": {
            "left": u(xf[0], yc),
            "right": u(xf[-1], yc),
            "bottom": u(xf[1:-1], yf[0]),
            "top": u(xf[1:-1], yf[-1]),
        },
        "v": {
            "left": v(xf[0], yf[1:-1]),
            "right": v(xf[-1], yf[1:-1]),
            "bottom": v(xc, yf[0]),
            "top": v(xc, yf[-1]),
        },
    }
    net = sum(sides["u"]["right"] - sides["u"]["left"]) + sum(
        sides["v"]["top"] - sides["v"]["bottom"]
    )
    sides["u"]["right"] = sides["u"]["right"] - net / yc.size
    largest = [0.0]

    def divergence(w):
        div = (grid.divergence @ w + grid.divergence_lift(sides)) / grid.h
        largest[0] = max(largest[0], np.max(np.abs(div)))

    w, p, change = steady(grid, sides, 1 / re, dt, steps, divergence)
    X, Y = np.meshgrid(xf[1:-1], yc, indexing="ij")
    Xv, Yv = np.meshgrid(xc, yf[1:-1], indexing="ij")
    exact = np.concatenate([u(X, Y).ravel(), v(Xv, Yv).ravel()])
    Xc, _ = np.meshgrid(xc, yc, indexing="ij")
    pe = 0.5 * (1 - np.exp(2 * lam * Xc)).ravel()
    p_error = np.max(np.abs((p - p.mean()) - (pe - pe.mean())))
    return np.max(np.abs(w - exact)), p_error, largest[0], change


def test_kovasznay_flow_converges_at_second_order_and_every_step_is_divergence_free():
    """Velocity orders 1.7 and 1.9 (0.065, 0.020, 0.0054 at h = 1/8, 1/16, 1/32), towards 2;
    the pressure's 1.7 and 1.6 (its mirror ghosts at the walls are first order in the
    pressure's boundary layer of the projection); div u at round-off after every step."""
    results = [kovasznay(m) for m in (8, 16, 32)]
    velocity = [r[0] for r in results]
    pressure = [r[1] for r in results]
    orders = np.log2(np.array(velocity[:-1]) / velocity[1:])
    assert all(r[3] < 1e-9 for r in results)  # steady
    assert orders[-1] > 1.85 and orders[0] > 1.6, orders
    assert np.log2(pressure[-2] / pressure[-1]) > 1.5
    assert max(r[2] for r in results) < 1e-10


def channel(n=40, reynolds=150.0, t_end=8.0, frames=40, **cylinders):
    spec = CylindersSpec(
        count=1,
        radius=RangeSpec(0.1, 0.1),
        centre_x=RangeSpec(0.8, 0.8),
        clearance=0.3,
        **cylinders,
    )
    problem = ChannelProblem(
        length=3.0,
        reynolds=RangeSpec(reynolds, reynolds),
        cylinders=spec,
        t_end=t_end,
        frames=frames,
        dt=0.02,
    )
    return Channel(n, 2, problem)


def test_the_wake_is_steady_at_low_re_and_sheds_vortices_at_high_re():
    """One cylinder of diameter 0.2 off the centre line: at Re = 30 v downstream settles; at
    Re = 150 it oscillates (a von Karman street) with a Strouhal number f D / U in the range
    that confined cylinders shed at, 0.1 to 0.4."""
    probes = {}
    for reynolds in (30.0, 150.0):
        family = channel(reynolds=reynolds)
        outputs, results = family.solve_sample(family.sample(0, 0), ChainSolver("gmres", "ilu"))
        assert all(r.converged for r in results)
        v = outputs["velocity_y"][:, int(2.0 * family.n), family.n // 2]
        probes[reynolds] = v[len(v) // 2 :]  # t in [4, 8]
    assert np.std(probes[30.0]) < 1e-3
    late = probes[150.0] - probes[150.0].mean()
    assert np.std(late) > 0.05
    crossings = np.sum(np.diff(np.sign(late)) != 0)  # two per period over 4 time units
    strouhal = crossings / 2 / 4.0 * 0.2
    assert 0.1 < strouhal < 0.4, strouhal


def test_a_channel_sample_is_divergence_free_at_rest_in_the_cylinders_and_stored_at_centres():
    data = family_recipe("channel")
    data["problem"] = {**data["problem"], "t_end": 1.0, "frames": 2}  # 20 steps
    family = family_from_recipe(recipe_from_dict(data))
    sample = family.sample(3, 1)
    grid = family.grid(sample)
    frames, results = family.trajectory(
        sample,
        ChainSolver("gmres", "ilu", rtol=1e-10).solve,
        ChainSolver("direct", "cholesky").solve,
    )
    solid = sample.inputs["obstacle"] > 0.5
    assert solid.any() and all(r.converged for r in results)
    sides = family.sides(grid)
    for w, p in frames[1:]:
        div = (grid.divergence @ w + grid.divergence_lift(sides)).reshape(family.grid_shape)
        assert np.max(np.abs(div[~solid])) < 1e-10
        assert np.all(w[~grid.open] == 0.0)
        assert np.all(p.reshape(family.grid_shape)[solid] == 0.0)
        u, v = grid.cell_fields(w, sides)
        assert np.all(u[solid] == 0.0) and np.all(v[solid] == 0.0)
    # the stored fields are those cell means, at the coordinates the shards record
    outputs, _ = family.solve_sample(sample, ChainSolver("gmres", "ilu", rtol=1e-10))
    assert outputs["velocity_x"].shape == (3, family.nx, family.n) == (3, 32, 16)
    assert family.coordinates["x"].size == family.nx and family.coordinates["y"].size == family.n
    np.testing.assert_allclose(
        outputs["velocity_x"][-1], grid.cell_fields(frames[-1][0], sides)[0], atol=1e-8
    )
    # mass: what enters through the inflow leaves through the outflow, every frame
    for w, _ in frames[1:]:
        u_out = grid.split(w)[0][-1]
        np.testing.assert_allclose(u_out.sum(), sides["u"]["left"].sum(), rtol=1e-10)


def test_the_draw_keeps_cylinders_clear_of_the_walls_and_re_follows_the_largest():
    """The sample's own generator redrawn: Re, then the cylinders; each inside its ranges and
    clear of the walls, the diameter (and so nu = U D / Re) the largest cylinder's."""
    family = Channel(64, 2, ChannelProblem())
    c = family.problem.cylinders
    for index in range(20):
        rng = sample_rng(0, index)
        reynolds = family.problem.reynolds.draw(rng)
        cylinders = family.cylinders(rng)
        for x, y, radius in cylinders:
            assert c.radius.min <= radius <= c.radius.max
            assert c.centre_x.min <= x <= c.centre_x.max
            assert c.clearance + radius <= y <= 1 - c.clearance - radius
        params = family.sample(0, index).params
        assert params["reynolds"] == reynolds
        assert params["diameter"] == 2 * max(radius for *_, radius in cylinders)
        np.testing.assert_allclose(params["viscosity"], params["diameter"] / reynolds)


def test_fluid_walled_in_by_overlapping_cylinders_becomes_solid():
    """Sample 4545 of the default recipe (seed 0): two overlapping cylinders wall in two
    fluid cells, whose pressure no boundary would fix (a singular pressure matrix, NaN
    fields); the mask fills them, and every fluid cell left reaches the inflow."""
    family = Channel(64, 2, dataclasses.replace(ChannelProblem(), t_end=0.02, frames=1))
    sample = family.sample(0, 4545)
    rng = sample_rng(0, 4545)
    family.problem.reynolds.draw(rng)
    X, Y = np.meshgrid(family.x, family.y, indexing="ij")
    inside = np.zeros(family.grid_shape, dtype=bool)
    for x, y, radius in family.cylinders(rng):
        inside |= (X - x) ** 2 + (Y - y) ** 2 < radius**2
    solid = sample.inputs["obstacle"] > 0.5
    assert np.all(solid[inside]) and (solid & ~inside).sum() >= 2
    labels, count = scipy.ndimage.label(~solid)
    assert count == 1
    outputs, results = family.solve_sample(sample, ChainSolver("gmres", "ilu"))
    assert all(r.converged for r in results)
    assert all(np.all(np.isfinite(v)) for v in outputs.values())


@pytest.mark.parametrize(
    "problem, field",
    [
        ({"length": 2.01}, "problem.length"),
        ({"cylinders": {"radius": {"min": 0.01, "max": 0.1}}}, "problem.cylinders.radius.min"),
        (
            {"cylinders": {"radius": {"min": 0.05, "max": 0.3}, "clearance": 0.25}},
            "problem.cylinders.radius.max",
        ),
        ({"cylinders": {"centre_x": {"min": 0.1, "max": 1.0}}}, "problem.cylinders.centre_x"),
        (
            {"length": 2.0, "cylinders": {"centre_x": {"min": 0.5, "max": 1.5}}},
            "problem.cylinders.centre_x",
        ),
        ({"reynolds": {"min": 0.0, "max": 10.0}}, "problem.reynolds"),
        ({"cylinders": {"clearance": 0.01}}, "problem.cylinders.clearance"),
    ],
)
def test_a_channel_recipe_that_cannot_be_solved_is_refused_naming_the_field(problem, field):
    recipe = {**family_recipe("channel"), "grid": {"n": 64, "dim": 2}, "problem": problem}
    with pytest.raises(RecipeError, match=field.replace(".", r"\.")):
        recipe_from_dict(recipe)
