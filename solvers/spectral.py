"""Spectral time integration on periodic grids: u_t = L u + N(u, t), with L diagonal in
Fourier space (diffusion, dispersion, hyperdiffusion) and N the nonlinear and forcing terms.

Why spectral: on a periodic grid the Fourier basis diagonalises every constant-coefficient
linear operator, so the stiff linear part can be integrated exactly (an exponential), and the
nonlinear part costs a few FFTs (scipy.fft) per stage: O(N log N) per step, with spectral
accuracy in space. This is how FNO's Navier-Stokes and Burgers data, APEBench and exponax are
made; a finite-difference chain solver would pay a linear solve per step for less accuracy.

The integrator is ETDRK4 (Cox and Matthews, "Exponential time differencing for stiff
systems", J. Comput. Phys. 176, 2002), fourth order, with its phi-function coefficients
evaluated by Kassam and Trefethen's contour integral ("Fourth-order time-stepping for stiff
PDEs", SIAM J. Sci. Comput. 26, 2005): the mean of f(z + r e^{i theta}) over M points of a
circle around each h L, which avoids the cancellation of the closed formulas near L = 0.

Aliasing: quadratic nonlinearities are dealiased by the 2/3 rule (Orszag): the top third of
the wavenumbers of every nonlinear product is zeroed (`PeriodicGrid.dealias`).

Frames land on the recorded times exactly: between two frames the march takes equal steps no
longer than `dt` (`solvers.stepping.substeps`, the rule pdegen's `TimeStepping` follows too),
and the coefficients are computed once per step size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from solvers.stepping import substeps

#: contour points of Kassam and Trefethen's coefficient evaluation (their choice; 32 gives
#: the coefficients to about machine precision for the step sizes used here)
CONTOUR_POINTS = 32


@dataclass(frozen=True)
class PeriodicGrid:
    """`shape` points per axis on the torus [0, L_1) x ... (`lengths`), point j at j L / n."""

    shape: tuple[int, ...]
    lengths: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.lengths) or not self.shape:
            raise ValueError("one length per axis")
        if any(n < 4 or n % 2 for n in self.shape):
            raise ValueError(f"points per axis must be even and at least 4, not {self.shape}")

    @property
    def coordinates(self) -> list[np.ndarray]:
        return [
            np.arange(n) * (length / n) for n, length in zip(self.shape, self.lengths, strict=True)
        ]

    def frequencies(self) -> list[np.ndarray]:
        """Integer frequencies per axis, each shaped to broadcast over the real-FFT layout
        (the last axis halved by rfftn)."""
        out = []
        for i, n in enumerate(self.shape):
            last = i == len(self.shape) - 1
            k = scipy.fft.rfftfreq(n, 1.0 / n) if last else scipy.fft.fftfreq(n, 1.0 / n)
            shape = [1] * len(self.shape)
            shape[i] = k.size
            out.append(k.reshape(shape))
        return out

    @property
    def wavenumbers(self) -> list[np.ndarray]:
        """Angular wavenumbers 2 pi k / L per axis, broadcastable over the real-FFT layout;
        the last axis's Nyquist mode has no sign, so its derivative is zero."""
        axes = [
            2.0 * math.pi * k / L for k, L in zip(self.frequencies(), self.lengths, strict=True)
        ]
        axes[-1] = axes[-1].copy()
        axes[-1][..., -1] = 0.0
        return axes

    @property
    def laplacian(self) -> np.ndarray:
        """The symbol of the Laplacian, -|k|^2, on the real-FFT layout (Nyquist modes kept)."""
        total = 0.0
        for k, length in zip(self.frequencies(), self.lengths, strict=True):
            total = total + (2.0 * math.pi * k / length) ** 2
        return -total

    @property
    def dealias(self) -> np.ndarray:
        """The 2/3-rule mask on the real-FFT layout: True where |k_i| < n_i / 3 on every axis."""
        mask = True
        for k, n in zip(self.frequencies(), self.shape, strict=True):
            mask = mask & (np.abs(k) < n / 3.0)
        return np.asarray(mask)

    def forward(self, u: np.ndarray) -> np.ndarray:
        return scipy.fft.rfftn(u, axes=range(-len(self.shape), 0))

    def inverse(self, u_hat: np.ndarray) -> np.ndarray:
        return scipy.fft.irfftn(u_hat, s=self.shape, axes=range(-len(self.shape), 0))


@dataclass
class ETDRK4:
    """ETDRK4 for u_hat' = L u_hat + N(u_hat, t), L a diagonal symbol (array on the FFT
    layout), N the Fourier transform of the nonlinear and forcing terms."""

    linear: np.ndarray
    nonlinear: Callable[[np.ndarray, float], np.ndarray]
    contour_points: int = CONTOUR_POINTS
    #: step -> its coefficients; integrators with the same `linear` may share one dict, so
    #: each step size's contour integrals are computed once for all of them
    cache: dict[float, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False)

    def coefficients(self, h: float) -> tuple[np.ndarray, ...]:
        """(E, E2, Q, f1, f2, f3) of Kassam and Trefethen's scheme for step h (cached).

        For a real symbol (diffusion, hyperdiffusion) their half circle and the real part
        suffice, by symmetry; a complex one (advection, dispersion: -i beta k) needs the
        whole circle and keeps the complex values (taking real parts there would damp every
        travelling mode: tested on advection's exact translates)."""
        if h not in self.cache:
            real = not np.iscomplexobj(self.linear)
            L = self.linear.astype(complex)
            E, E2 = np.exp(h * L), np.exp(h * L / 2.0)
            points = self.contour_points * (1 if real else 2)
            arc = math.pi if real else 2.0 * math.pi
            roots = np.exp(1j * arc * (np.arange(1, points + 1) - 0.5) / points)
            LR = h * L[..., None] + roots  # the contour around each h L
            part = np.real if real else (lambda z: z)

            def mean(values: np.ndarray) -> np.ndarray:
                return h * part(np.mean(values, axis=-1))

            Q = mean((np.exp(LR / 2.0) - 1.0) / LR)
            f1 = mean((-4.0 - LR + np.exp(LR) * (4.0 - 3.0 * LR + LR**2)) / LR**3)
            f2 = mean((2.0 + LR + np.exp(LR) * (-2.0 + LR)) / LR**3)
            f3 = mean((-4.0 - 3.0 * LR - LR**2 + np.exp(LR) * (4.0 - LR)) / LR**3)
            if real:
                E, E2 = E.real, E2.real
            self.cache[h] = (E, E2, Q, f1, f2, f3)
        return self.cache[h]

    def step(self, u_hat: np.ndarray, t: float, h: float) -> np.ndarray:
        E, E2, Q, f1, f2, f3 = self.coefficients(h)
        N = self.nonlinear
        Nu = N(u_hat, t)
        a = E2 * u_hat + Q * Nu
        Na = N(a, t + h / 2.0)
        b = E2 * u_hat + Q * Na
        Nb = N(b, t + h / 2.0)
        c = E2 * a + Q * (2.0 * Nb - Nu)
        Nc = N(c, t + h)
        return E * u_hat + Nu * f1 + 2.0 * (Na + Nb) * f2 + Nc * f3


def integrate(
    integrator: ETDRK4, u_hat: np.ndarray, frame_times: Sequence[float], dt: float
) -> tuple[list[np.ndarray], int]:
    """March `u_hat` from frame_times[0] through every frame time; returns the state (in
    Fourier space) at each frame time, frame 0 included, and the steps taken."""
    frames, steps = [u_hat.copy()], 0
    for k in range(len(frame_times) - 1):
        count, h = substeps(frame_times[k], frame_times[k + 1], dt)
        for j in range(count):
            u_hat = integrator.step(u_hat, frame_times[k] + j * h, h)
        steps += count
        frames.append(u_hat.copy())
    return frames, steps


def burgers(grid: PeriodicGrid, viscosity: float) -> ETDRK4:
    """Viscous Burgers u_t + (u^2 / 2)_x = nu u_xx on a 1D periodic grid, the product
    dealiased by the 2/3 rule."""
    if len(grid.shape) != 1:
        raise ValueError("Burgers here is one-dimensional")
    (k,) = grid.wavenumbers
    mask = grid.dealias

    def nonlinear(u_hat: np.ndarray, t: float) -> np.ndarray:
        u = grid.inverse(u_hat * mask)
        return -0.5j * k * grid.forward(u * u) * mask

    return ETDRK4(viscosity * grid.laplacian, nonlinear)


def kuramoto_sivashinsky(grid: PeriodicGrid) -> ETDRK4:
    """Kuramoto-Sivashinsky u_t + u u_x + u_xx + u_xxxx = 0 on a 1D periodic grid (chaotic on
    domains longer than about 2 pi sqrt(2)); Kassam and Trefethen's test problem. Linear part
    k^2 - k^4, stiff in k^4: what exponential integration is for."""
    if len(grid.shape) != 1:
        raise ValueError("Kuramoto-Sivashinsky here is one-dimensional")
    (k,) = grid.wavenumbers
    mask = grid.dealias
    k2 = -grid.laplacian

    def nonlinear(u_hat: np.ndarray, t: float) -> np.ndarray:
        u = grid.inverse(u_hat * mask)
        return -0.5j * k * grid.forward(u * u) * mask

    return ETDRK4(k2 - k2**2, nonlinear)


def advection(grid: PeriodicGrid, speed: float) -> ETDRK4:
    """Linear advection u_t + speed u_x = 0 on a 1D periodic grid: each mode turns by
    exp(-i speed k t), which the exponential integrates exactly (no nonlinear part)."""
    if len(grid.shape) != 1:
        raise ValueError("advection here is one-dimensional")
    (k,) = grid.wavenumbers  # the Nyquist mode's is 0: it has no direction to travel in

    def nonlinear(u_hat: np.ndarray, t: float) -> np.ndarray:
        return np.zeros_like(u_hat)

    return ETDRK4(-1j * speed * k, nonlinear)


def fisher_kpp(grid: PeriodicGrid, viscosity: float, rate: float) -> ETDRK4:
    """Fisher-KPP u_t = nu u_xx + rate u (1 - u) on a 1D periodic grid: diffusion exact, the
    reaction through the stages, its product dealiased by the 2/3 rule."""
    mask = grid.dealias

    def nonlinear(u_hat: np.ndarray, t: float) -> np.ndarray:
        u = grid.inverse(u_hat * mask)
        return rate * (u_hat - grid.forward(u * u) * mask)

    return ETDRK4(viscosity * grid.laplacian, nonlinear)


def velocity(grid: PeriodicGrid, w_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2D velocity (psi_y, -psi_x) of the vorticity w_hat, -Laplacian(psi) = omega."""
    kx, ky = grid.wavenumbers
    psi_hat = w_hat * _inverse_minus_laplacian(grid)
    return grid.inverse(1j * ky * psi_hat), grid.inverse(-1j * kx * psi_hat)


def _inverse_minus_laplacian(grid: PeriodicGrid) -> np.ndarray:
    minus_laplacian = -grid.laplacian
    return np.divide(1.0, minus_laplacian, out=np.zeros_like(minus_laplacian),
                     where=minus_laplacian > 0)  # fmt: skip


def navier_stokes_vorticity(
    grid: PeriodicGrid, viscosity: float, forcing: np.ndarray | None = None, drag: float = 0.0
) -> ETDRK4:
    """2D incompressible Navier-Stokes in vorticity form on a periodic grid (FNO's):
    omega_t + u . grad(omega) = nu Laplacian(omega) + f, with the velocity u = (psi_y, -psi_x)
    from the stream function, -Laplacian(psi) = omega. The advection term is computed in
    physical space from dealiased fields and dealiased again (2/3 rule); the mean vorticity
    (the k = 0 mode, which no velocity can carry) is left as it is, zero for FNO's data.
    `drag` adds a linear damping -drag omega (Kolmogorov flow's), in the exact linear part."""
    if len(grid.shape) != 2:
        raise ValueError("the vorticity form here is two-dimensional")
    kx, ky = grid.wavenumbers
    mask = grid.dealias
    inverse_laplacian = _inverse_minus_laplacian(grid)
    forcing_hat = None if forcing is None else grid.forward(forcing) * mask

    def nonlinear(w_hat: np.ndarray, t: float) -> np.ndarray:
        w_hat = w_hat * mask
        psi_hat = w_hat * inverse_laplacian
        u, v = grid.inverse(1j * ky * psi_hat), grid.inverse(-1j * kx * psi_hat)
        wx, wy = grid.inverse(1j * kx * w_hat), grid.inverse(1j * ky * w_hat)
        advection = -grid.forward(u * wx + v * wy) * mask
        return advection if forcing_hat is None else advection + forcing_hat

    return ETDRK4(viscosity * grid.laplacian - drag, nonlinear)


__all__ = [
    "CONTOUR_POINTS",
    "ETDRK4",
    "PeriodicGrid",
    "advection",
    "fisher_kpp",
    "burgers",
    "integrate",
    "kuramoto_sivashinsky",
    "navier_stokes_vorticity",
    "velocity",
    "substeps",
]
