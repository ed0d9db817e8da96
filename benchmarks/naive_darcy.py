"""The Darcy generator a user writes by hand, the baseline pdegen's engines must beat.

    .venv/bin/python benchmarks/naive_darcy.py OUT.h5 --nodes 64 --samples 4000 \
        [--dim 3] [--solver spsolve|cg] [--processes 2]

What a careful user writes without pdegen: FNO's thresholded Gaussian random field drawn by
an FFT (their `GaussianRF`, periodic, on the node grid), the 5-point (3D: 7-point) matrix of
-div(a grad u) = 1 with harmonic face means and u = 0 on the boundary assembled with numpy
and scipy.sparse, scipy's `spsolve` (SuperLU), samples spread over a process pool with one
BLAS thread each, and one HDF5 file (coefficient, solution) written by the parent. The same
law and discretisation as `recipes/darcy.yaml`, not the same draws: the timing, not the bits,
is compared.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402


def coefficient(rng: np.random.Generator, n: int, dim: int = 2, alpha=2.0, tau=3.0) -> np.ndarray:
    """FNO's GaussianRF on an n^dim grid, thresholded to 12 / 3."""
    k = np.fft.fftfreq(n, 1.0 / n)
    ksq = sum(axis**2 for axis in np.meshgrid(*([k] * dim), indexing="ij"))
    sigma = tau ** (alpha - dim / 2)
    sqrt_eig = n**dim * sigma * (4 * np.pi**2 * ksq + tau**2) ** (-alpha / 2)
    sqrt_eig.flat[0] = 0.0
    xi = rng.standard_normal((n,) * dim) + 1j * rng.standard_normal((n,) * dim)
    field = np.fft.ifftn(sqrt_eig * xi).real
    return np.where(field >= 0.0, 12.0, 3.0)


def matrix(a: np.ndarray) -> sp.csr_matrix:
    """The 5-point (2D) or 7-point (3D) matrix of -div(a grad u) times h^2 on the interior
    nodes, harmonic means of a on the faces, u = 0 on the boundary nodes."""
    n, dim = a.shape[0], a.ndim
    m = n - 2
    inner = (slice(1, -1),) * dim
    centre = a[inner]
    index = np.arange(m**dim).reshape((m,) * dim)
    diagonal = np.zeros_like(centre)
    rows, cols, vals = [], [], []
    for axis in range(dim):
        for step in (1, -1):
            neighbour = list(inner)
            neighbour[axis] = slice(1 + step, n - 1 + step)
            face = 2 * centre * a[tuple(neighbour)] / (centre + a[tuple(neighbour)])
            diagonal += face
            own, other = [slice(None)] * dim, [slice(None)] * dim
            own[axis], other[axis] = (
                (slice(0, m - 1), slice(1, m)) if step == 1 else (slice(1, m), slice(0, m - 1))
            )
            rows.append(index[tuple(own)].ravel())
            cols.append(index[tuple(other)].ravel())
            vals.append(-face[tuple(own)].ravel())
    rows.append(index.ravel())
    cols.append(index.ravel())
    vals.append(diagonal.ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))))


def solve(a: np.ndarray, solver: str = "spsolve") -> np.ndarray:
    """-div(a grad u) = 1, u = 0 on the boundary nodes, on the unit square's (cube's) nodes:
    by `spsolve`, or by CG with a Jacobi preconditioner to rtol 1e-8 (pdegen's tolerance; in
    3D the user's choice: spsolve takes 107 s for one 48^3 sample)."""
    n, dim = a.shape[0], a.ndim
    h = 1.0 / (n - 1)
    A, b = matrix(a), np.full((n - 2) ** dim, h * h)
    if solver == "spsolve":
        x = spla.spsolve(A, b)
    else:
        diagonal = A.diagonal()
        jacobi = spla.LinearOperator(A.shape, matvec=lambda r: r / diagonal, dtype=float)
        x, info = spla.cg(A, b, rtol=1e-8, atol=0.0, M=jacobi, maxiter=10 * A.shape[0])
        assert info == 0, f"CG did not converge ({info})"
    u = np.zeros(a.shape)
    inner = (slice(1, -1),) * dim
    u[inner] = x.reshape(u[inner].shape)
    return u


def one_sample(args: tuple[int, int, int, int, str]) -> tuple[int, np.ndarray, np.ndarray]:
    seed, index, n, dim, solver = args
    a = coefficient(np.random.default_rng([seed, index]), n, dim)
    return index, a.astype(np.float32), solve(a, solver).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--dim", type=int, default=2, choices=(2, 3))
    parser.add_argument(
        "--solver", choices=("spsolve", "cg"), help="default: spsolve in 2D, cg in 3D"
    )
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    n, count, dim = args.nodes, args.samples, args.dim
    with h5py.File(args.out, "w") as f, multiprocessing.Pool(args.processes) as pool:
        coefficients = f.create_dataset("coefficient", (count,) + (n,) * dim, dtype="f4")
        solutions = f.create_dataset("solution", (count,) + (n,) * dim, dtype="f4")
        solver = args.solver or ("spsolve" if dim == 2 else "cg")
        work = ((args.seed, i, n, dim, solver) for i in range(count))
        for index, a, u in pool.imap_unordered(one_sample, work, chunksize=16):
            coefficients[index] = a
            solutions[index] = u
    print(f"{count} samples in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
