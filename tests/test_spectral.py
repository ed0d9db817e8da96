"""The spectral integrator (solvers/spectral.py) against oracles that share no code with it:
Burgers' exact Cole-Hopf solution, the measured order of ETDRK4, spectral convergence in
space, the closed-form ETD coefficients, and frames landing on their times exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvers.spectral import (
    ETDRK4,
    PeriodicGrid,
    burgers,
    integrate,
    kuramoto_sivashinsky,
    navier_stokes_vorticity,
    substeps,
)

NU = 0.05


def cole_hopf(points: int, t: float, nu: float = NU, fine: int = 2048) -> np.ndarray:
    """Burgers' solution from u0 = sin(2 pi x) on the unit torus, by Cole-Hopf: phi =
    exp(-U / (2 nu)) with U' = u solves the heat equation phi_t = nu phi_xx, evolved exactly
    mode by mode (numpy's FFT on a fine grid), and u = -2 nu phi_x / phi."""
    x = np.arange(fine) / fine
    potential = (1.0 - np.cos(2.0 * math.pi * x)) / (2.0 * math.pi)  # U, with U' = sin(2 pi x)
    phi0 = np.exp(-(potential - potential.min()) / (2.0 * nu))  # shifted: no underflow
    k = 2.0 * math.pi * np.fft.fftfreq(fine, 1.0 / fine)
    phi_hat = np.fft.fft(phi0) * np.exp(-nu * k**2 * t)
    phi = np.fft.ifft(phi_hat).real
    phi_x = np.fft.ifft(1j * k * phi_hat).real
    return (-2.0 * nu * phi_x / phi)[:: fine // points]


def burgers_at(points: int, t: float, dt: float, frames=None) -> np.ndarray:
    grid = PeriodicGrid((points,), (1.0,))
    u0 = np.sin(2.0 * math.pi * grid.coordinates[0])
    states, _ = integrate(burgers(grid, NU), grid.forward(u0), frames or [0.0, t], dt)
    return grid.inverse(states[-1])


def test_burgers_matches_the_cole_hopf_solution():
    error = np.abs(burgers_at(128, 0.25, 1e-3) - cole_hopf(128, 0.25)).max()
    assert error < 1e-9, error


def test_etdrk4_is_fourth_order_in_time():
    reference = cole_hopf(256, 0.25)
    errors = [np.abs(burgers_at(256, 0.25, dt) - reference).max() for dt in (0.01, 0.005, 0.0025)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(3.7 < p < 4.3 for p in orders), (errors, orders)


def test_space_converges_spectrally():
    """Each doubling of the points gains orders of magnitude until the time error floors it
    (a second-order method would gain a factor of 4)."""
    errors = {n: np.abs(burgers_at(n, 0.25, 1e-3) - cole_hopf(n, 0.25)).max() for n in (16, 32, 64)}
    assert errors[16] / errors[32] > 100 and errors[32] / errors[64] > 1000, errors


def test_frames_land_on_their_times_whatever_the_step():
    """Uneven frame times: equal steps no longer than dt between frames, and each frame is
    the solution at its own time."""
    times = [0.0, 0.07, 0.1, 0.25]
    grid = PeriodicGrid((128,), (1.0,))
    u0 = np.sin(2.0 * math.pi * grid.coordinates[0])
    states, steps = integrate(burgers(grid, NU), grid.forward(u0), times, 0.004)
    for t, state in zip(times, states, strict=True):
        # a frame one step off its time would be off by about 1e-3
        assert np.abs(grid.inverse(state) - cole_hopf(128, t)).max() < 1e-7, t
    assert steps == sum(substeps(a, b, 0.004)[0] for a, b in zip(times, times[1:], strict=False))
    assert substeps(0.0, 0.07, 0.004) == (18, 0.07 / 18)
    assert substeps(0.1, 0.25, 0.01) == (15, 0.01)  # a whole number of dt: dt itself


def test_contour_coefficients_equal_the_closed_forms_where_those_are_accurate():
    """Kassam and Trefethen's contour means against Cox and Matthews' formulas at h L far
    from 0 (where the formulas do not cancel)."""
    h, L = 0.1, np.array([-5.0, -40.0, -300.0])
    E, E2, Q, f1, f2, f3 = ETDRK4(L, lambda u, t: 0 * u).coefficients(h)
    z = h * L
    np.testing.assert_allclose(E, np.exp(z), rtol=1e-14)
    np.testing.assert_allclose(Q, h * (np.exp(z / 2) - 1) / z, rtol=1e-12)
    np.testing.assert_allclose(f1, h * (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3, rtol=1e-12)
    np.testing.assert_allclose(f2, h * (2 + z + np.exp(z) * (z - 2)) / z**3, rtol=1e-12)
    np.testing.assert_allclose(f3, h * (-4 - 3 * z - z**2 + np.exp(z) * (4 - z)) / z**3, rtol=1e-12)


def test_the_mean_is_conserved_and_the_grid_checks_its_shape():
    grid = PeriodicGrid((64,), (2.0,))
    u0 = 0.3 + np.cos(math.pi * grid.coordinates[0])
    states, _ = integrate(burgers(grid, NU), grid.forward(u0), [0.0, 0.5], 1e-3)
    assert abs(grid.inverse(states[-1]).mean() - 0.3) < 1e-14
    with pytest.raises(ValueError, match="even"):
        PeriodicGrid((63,), (1.0,))
    assert grid.dealias.sum() == 22  # |k| < 64 / 3: 0..21 of the 33 real-FFT modes


def torus(points: int = 64) -> tuple[PeriodicGrid, np.ndarray, np.ndarray]:
    grid = PeriodicGrid((points, points), (1.0, 1.0))
    x, y = np.meshgrid(*grid.coordinates, indexing="ij")
    return grid, x, y


def test_taylor_green_vorticity_decays_exactly():
    """omega = cos(2 pi x) cos(2 pi y) is an eigenfunction whose advection vanishes: it
    decays as exp(-8 pi^2 nu t) on the unit torus, to round-off."""
    grid, x, y = torus()
    nu, t = 1e-2, 0.5
    omega0 = np.cos(2 * math.pi * x) * np.cos(2 * math.pi * y)
    states, _ = integrate(navier_stokes_vorticity(grid, nu), grid.forward(omega0), [0, t], 0.01)
    expected = omega0 * math.exp(-8 * math.pi**2 * nu * t)
    assert np.abs(grid.inverse(states[-1]) - expected).max() < 1e-13


def test_fno_forcing_alone_relaxes_to_its_exact_steady_state():
    """FNO's forcing f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)) lies on one Fourier shell
    and carries no advection: from rest, omega(t) = f (1 - exp(-8 pi^2 nu t)) / (8 pi^2 nu),
    whose limit is the steady state f / (8 pi^2 nu); the mean stays zero."""
    grid, x, y = torus()
    nu = 1e-3
    f = 0.1 * (np.sin(2 * math.pi * (x + y)) + np.cos(2 * math.pi * (x + y)))
    steady = f / (8 * math.pi**2 * nu)
    times = [0.0, 1.0, 10.0, 50.0]
    states, _ = integrate(navier_stokes_vorticity(grid, nu, f), grid.forward(0 * f), times, 0.05)
    for t, state in zip(times, states, strict=True):
        omega = grid.inverse(state)
        expected = steady * (1 - math.exp(-8 * math.pi**2 * nu * t))
        assert np.abs(omega - expected).max() < 1e-10 * np.abs(steady).max(), t
        assert abs(omega.mean()) < 1e-15
    held, _ = integrate(navier_stokes_vorticity(grid, nu, f), grid.forward(steady), [0, 20], 0.05)
    assert np.abs(grid.inverse(held[-1]) - steady).max() < 1e-10 * np.abs(steady).max()


def test_navier_stokes_is_fourth_order_in_time_on_a_nonlinear_flow():
    """Two shells that interact (the advection does not vanish): the error against a fine
    step falls 16-fold per halving."""
    grid, x, y = torus(32)
    omega0 = np.cos(2 * math.pi * x) * np.cos(2 * math.pi * y) + np.sin(4 * math.pi * x)
    start = grid.forward(omega0)

    def at(dt):
        states, _ = integrate(navier_stokes_vorticity(grid, 1e-3), start, [0, 0.4], dt)
        return grid.inverse(states[-1])

    reference = at(0.0025)
    errors = [np.abs(at(dt) - reference).max() for dt in (0.04, 0.02, 0.01)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(3.6 < p < 4.4 for p in orders), (errors, orders)


def test_kuramoto_sivashinsky_kassam_trefethen_run_is_fourth_order_and_bounded():
    """Kassam and Trefethen's run: u0 = cos(x/16) (1 + sin(x/16)) on [0, 32 pi), 128 points,
    to t = 5 (before the chaos amplifies every error): fourth order against a fine step
    despite the stiff k^4 (measured 3.6, 3.8, 3.9), and the solution stays bounded with its
    mean zero, as the dynamics keep them."""
    grid = PeriodicGrid((128,), (32 * math.pi,))
    x = grid.coordinates[0]
    start = grid.forward(np.cos(x / 16) * (1 + np.sin(x / 16)))

    def at(dt):
        states, _ = integrate(kuramoto_sivashinsky(grid), start, [0.0, 5.0], dt)
        return grid.inverse(states[-1])

    reference = at(1 / 256)
    errors = [np.abs(at(dt) - reference).max() for dt in (1 / 8, 1 / 16, 1 / 32)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(3.5 < p < 4.3 for p in orders), (errors, orders)
    assert np.abs(reference).max() < 3 and abs(reference.mean()) < 1e-12


@pytest.mark.parametrize(
    "shape,alpha,tau,sigma",
    [((64, 64), 2.5, 7.0, None), ((256,), 2.0, 5.0, 25.0)],
    ids=["fno-navier-stokes", "fno-burgers"],
)
def test_the_periodic_grf_has_fnos_law(shape, alpha, tau, sigma):
    """Over 400 draws: zero mean (exactly, per draw), and the variances of FNO's sampler
    (sqrt_eig = sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2), the real part of the inverse
    FFT): pointwise, the sum over k != 0 of 2 sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha); per
    low mode, that mode's term (an oracle written from the law, not from the sampler)."""
    from pdegen.discretisation.fields import periodic_gaussian_random_field

    rng = np.random.default_rng(0)
    draws = np.array(
        [periodic_gaussian_random_field(rng, shape, alpha, tau, sigma) for _ in range(400)]
    )
    dim = len(shape)
    s = tau ** (alpha - dim / 2) if sigma is None else sigma
    k = np.meshgrid(*(np.fft.fftfreq(n, 1.0 / n) for n in shape), indexing="ij")
    law = 2 * s**2 * (4 * math.pi**2 * sum(ki**2 for ki in k) + tau**2) ** (-alpha)
    law.flat[0] = 0.0
    assert np.abs(draws.mean(axis=tuple(range(1, dim + 1)))).max() < 1e-12
    variance = draws.var(axis=0).mean()
    assert abs(variance / law.sum() - 1) < 0.05, (variance, law.sum())
    # the lowest modes' variances: E |u_hat(k)|^2 / N^2 = law(k) for a real field's mode
    modes = np.abs(np.fft.fftn(draws, axes=range(1, dim + 1))) ** 2 / np.prod(shape) ** 2
    low = (1,) + (0,) * (dim - 1)
    assert abs(modes[(slice(None), *low)].mean() / law[low] - 1) < 0.2
