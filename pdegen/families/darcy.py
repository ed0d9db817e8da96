"""Darcy flow -div(a grad u) = f on the unit square, Dirichlet boundary values g.

Discretisation: conservative five-point finite differences (finite volumes on the dual grid)
on an (n+2) x (n+2) node grid, h = 1/(n+1), unknowns at the n x n interior nodes:

    (1/h^2) [ a_{i+1/2,j}(u_ij - u_{i+1,j}) + a_{i-1/2,j}(u_ij - u_{i-1,j})
            + a_{i,j+1/2}(u_ij - u_{i,j+1}) + a_{i,j-1/2}(u_ij - u_{i,j-1}) ] = f_ij

Face coefficients are the harmonic mean of the two neighbouring nodal values. Why harmonic:
the flux through a face crosses two half-cells in series, and for a coefficient that jumps
(the thresholded fields do) the harmonic mean is the exact effective conductance of that
series in 1D, while the arithmetic mean overstates the flux across a low-conductivity layer.
For smooth coefficients both means are second order. Each face value enters the two rows it
couples with the same sign and size, so the matrix is symmetric, and for a > 0 it is an
irreducibly diagonally dominant M-matrix: symmetric positive definite.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pdegen.families.base import Family, Sample
from pdegen.fields import gaussian_random_field, sample_rng


def harmonic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 2.0 * a * b / (a + b)


def diffusion_operator_2d(a: np.ndarray, h: float) -> tuple[sp.csr_matrix, dict[str, np.ndarray]]:
    """The matrix of -div(a grad .) on interior nodes, and the face coefficients.

    `a` holds nodal values on the full (n+2) x (n+2) grid. Unknowns are numbered row-major
    over (i, j) with j fastest. Returns the face coefficients too, for boundary lifting.
    """
    n = a.shape[0] - 2
    ax = harmonic_mean(a[:-1, 1:-1], a[1:, 1:-1])  # (n+1, n): face between nodes i and i+1
    ay = harmonic_mean(a[1:-1, :-1], a[1:-1, 1:])  # (n, n+1): face between nodes j and j+1
    scale = 1.0 / h**2
    diag = (ax[:-1] + ax[1:] + ay[:, :-1] + ay[:, 1:]) * scale
    idx = np.arange(n * n).reshape(n, n)
    east = -ax[1:-1] * scale  # couples (I, J) and (I+1, J) for I = 0..n-2
    north = -ay[:, 1:-1] * scale  # couples (I, J) and (I, J+1) for J = 0..n-2
    rows = np.concatenate(
        [idx.ravel(), idx[:-1].ravel(), idx[1:].ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    )
    cols = np.concatenate(
        [idx.ravel(), idx[1:].ravel(), idx[:-1].ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel()]
    )
    vals = np.concatenate([diag.ravel(), east.ravel(), east.ravel(), north.ravel(), north.ravel()])
    A = sp.csr_matrix((vals, (rows, cols)), shape=(n * n, n * n))
    A.sort_indices()
    return A, {"x": ax, "y": ay}


def boundary_lift_2d(faces: dict[str, np.ndarray], g: np.ndarray, h: float) -> np.ndarray:
    """Right-hand-side contribution of Dirichlet values g (on the boundary nodes of g)."""
    ax, ay = faces["x"], faces["y"]
    lift = np.zeros((ax.shape[1], ax.shape[1]))
    lift[0, :] += ax[0] * g[0, 1:-1]
    lift[-1, :] += ax[-1] * g[-1, 1:-1]
    lift[:, 0] += ay[:, 0] * g[1:-1, 0]
    lift[:, -1] += ay[:, -1] * g[1:-1, -1]
    return lift / h**2


class Darcy2D(Family):
    """Darcy flow with a random (thresholded or lognormal) Gaussian-random-field coefficient."""

    name = "darcy"
    default_method = "cg"  # symmetric positive definite; see docs/benchmarks.md

    def __init__(self, n: int, coefficient=None, source: float = 1.0):
        from pdegen.recipe import CoefficientSpec

        self.n = n
        self.h = 1.0 / (n + 1)
        self.coefficient = coefficient or CoefficientSpec()
        self.source = source
        self._x = np.linspace(0.0, 1.0, n + 2)

    @classmethod
    def from_recipe(cls, recipe) -> Darcy2D:
        return cls(recipe.grid.n, recipe.problem.coefficient, recipe.problem.source)

    @property
    def coordinates(self) -> dict[str, np.ndarray]:
        return {"x": self._x, "y": self._x}

    @property
    def solution_shape(self) -> tuple[int, int]:
        return (self.n + 2, self.n + 2)

    def assemble(
        self, a: np.ndarray, f: np.ndarray | float, g: np.ndarray | float = 0.0
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """System for explicit nodal fields: coefficient a, source f, boundary values g.

        a, and f and g when given as arrays, have the node-grid shape (n+2, n+2); f is used
        at interior nodes, g at boundary nodes.
        """
        shape = self.solution_shape
        a = np.asarray(a, dtype=float)
        if a.shape != shape:
            raise ValueError(f"coefficient shape {a.shape} != grid shape {shape}")
        A, faces = diffusion_operator_2d(a, self.h)
        f_arr = np.broadcast_to(np.asarray(f, dtype=float), shape)
        b = f_arr[1:-1, 1:-1].copy()
        g_arr = np.broadcast_to(np.asarray(g, dtype=float), shape)
        if np.any(g_arr):
            b += boundary_lift_2d(faces, g_arr, self.h)
        return A, b.ravel()

    def coefficient_field(self, rng: np.random.Generator) -> np.ndarray:
        spec = self.coefficient
        field = gaussian_random_field(
            rng, [self._x, self._x], spec.alpha, spec.tau, spec.sigma, spec.modes
        )
        if spec.kind == "threshold":
            return np.where(field >= 0.0, spec.high, spec.low)
        return spec.scale * np.exp(field)

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        return Sample(index=index, inputs={"coefficient": self.coefficient_field(rng)})

    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        return self.assemble(sample.inputs["coefficient"], self.source)

    def solution_field(self, sample: Sample, x: np.ndarray) -> np.ndarray:
        u = np.zeros(self.solution_shape)
        u[1:-1, 1:-1] = x.reshape(self.n, self.n)
        return u
