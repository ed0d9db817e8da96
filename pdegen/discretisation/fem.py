"""Q1 finite elements for a vector field on the node grid of the unit square or cube.

The node grid is the families' (`pdegen.discretisation.operators`): n + 2 nodes per axis, spacing
h = 1/(n + 1), C order. Its (n + 1)^d cells are the elements, each with 2^d corner nodes and
bilinear (2D) or trilinear (3D) shape functions. The unknowns are `dim` components per node,
interleaved (node-major, components fastest), so that node k's block is rows dim k .. dim k +
dim - 1: PETSc's block size `dim`, which GAMG coarsens by and whose rigid-body modes
(`MatNullSpaceCreateRigidBody`) are laid out that way.

Why Q1 elements rather than finite differences: the Galerkin stiffness matrix of an SPD
bilinear form is symmetric positive definite by construction, including on traction-free
(natural) boundaries, which need no ghost points or one-sided differences; its rigid-body
motions are exactly in the kernel of the unconstrained matrix (they have zero strain), which
is what GAMG needs from its near-null space; and on uniform grids Q1 is second order at the
nodes for smooth solutions. Finite differences of the mixed derivatives of -div(sigma) would
need care on a free boundary to stay symmetric.

The Young's modulus is a nodal field; each element takes the mean of its 2^d corner values,
which is its value at the cell centre to second order for a smooth field (the one-point
rule for the coefficient, with the exact 2^d-point Gauss rule for the Q1 gradients), so the
element matrix is E_cell h^(d-2) K1(nu), K1 the unit cell's matrix for E = 1 (the Poisson
ratio is one number per recipe). Loads use the consistent mass matrix on nodal values (the
Q1 interpolant of the force integrated exactly), which is second order everywhere, on free
boundaries too (a lumped load, h^d f_i, loses an order at boundary nodes).

The matrix is built without a per-element COO list: each pair of corners (p, q) of a cell
adds E_cell K1[p, :, q, :] to the coupling of node e + p with its neighbour at offset q - p,
stored per offset on the whole node grid (`coupling_arrays`); a cached pattern then gathers
the CSR values of the free unknowns from those arrays (`vector_pattern`). Only offsets of the
upper half (and the diagonal, whose corner blocks are symmetric) are accumulated; the lower
half reads the same numbers transposed, so the matrix is symmetric bit for bit.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import scipy.sparse as sp

#: the 2-point Gauss rule on [0, 1], exact for the Q1 stiffness on a rectangular cell
GAUSS_POINTS = (0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0))


def lame(E: np.ndarray | float, nu: float) -> tuple[np.ndarray | float, np.ndarray | float]:
    """The Lame parameters (mu, lambda) of Young's modulus E and Poisson ratio nu."""
    return E / (2.0 * (1.0 + nu)), E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))


def corners(dim: int) -> np.ndarray:
    """The corners of the unit cell, (2^d, d), in C order (last axis fastest)."""
    return np.array(list(itertools.product((0, 1), repeat=dim)))


def offsets(dim: int) -> np.ndarray:
    """The 3^d neighbour offsets, (3^d, d), in C order: ascending flat index on the grid."""
    return np.array(list(itertools.product((-1, 0, 1), repeat=dim)))


def _offset_index(o: np.ndarray) -> int:
    dim = o.size
    return int(sum((int(o[k]) + 1) * 3 ** (dim - 1 - k) for k in range(dim)))


@functools.lru_cache(maxsize=8)
def reference_stiffness(dim: int, nu: float) -> np.ndarray:
    """K1[p, a, q, b]: the Q1 stiffness of the unit cell for E = 1 and Poisson ratio nu,
    between component a at corner p and component b at corner q:

        int mu (delta_ab grad N_p . grad N_q + d_b N_p d_a N_q) + lambda d_a N_p d_b N_q,

    the bilinear form int 2 mu eps(u) : eps(v) + lambda div u div v for u = N_q e_b,
    v = N_p e_a. Made symmetric exactly (the rule is exact; this removes rounding)."""
    mu, lam = lame(1.0, nu)
    cs = corners(dim)
    K = np.zeros((len(cs), dim, len(cs), dim))
    for point in itertools.product(GAUSS_POINTS, repeat=dim):
        xi = np.array(point)
        weight = 0.5**dim
        # shape function values per axis: xi for corner coordinate 1, 1 - xi for 0
        factors = np.where(cs == 1, xi, 1.0 - xi)  # (2^d, d)
        grad = np.empty((len(cs), dim))
        for k in range(dim):
            others = np.prod(np.delete(factors, k, axis=1), axis=1)
            grad[:, k] = np.where(cs[:, k] == 1, 1.0, -1.0) * others
        dots = grad @ grad.T  # grad N_p . grad N_q
        eye = np.eye(dim)
        K += weight * (
            mu * np.einsum("pq,ab->paqb", dots, eye)
            + mu * np.einsum("pb,qa->paqb", grad, grad)
            + lam * np.einsum("pa,qb->paqb", grad, grad)
        )
    flat = K.reshape(len(cs) * dim, len(cs) * dim)
    flat = 0.5 * (flat + flat.T)
    out = flat.reshape(K.shape)
    out.setflags(write=False)
    return out


def cell_means(a: np.ndarray) -> np.ndarray:
    """The mean of a nodal field over the 2^d corners of each cell, shape (n + 1,)^d."""
    dim = a.ndim
    total = np.zeros(tuple(s - 1 for s in a.shape))
    for p in corners(dim):
        total += a[tuple(slice(int(pk), int(pk) + s - 1) for pk, s in zip(p, a.shape, strict=True))]
    return total / 2**dim


def coupling_arrays(E: np.ndarray, nu: float, h: float) -> np.ndarray:
    """C[o, a, b, node]: the stiffness coupling of component a at `node` (flat index on the
    full node grid) with component b at node + offsets(d)[o], for every node and every offset
    of the upper half and the diagonal (o >= the centre index); the lower half is left zero
    (read transposed, `vector_pattern`). Nodes are not constrained here: this is the matrix
    of the free body, whose kernel holds the rigid-body motions."""
    dim = E.ndim
    shape = E.shape
    Ecell = cell_means(np.asarray(E, dtype=float)) * h ** (dim - 2)
    K = reference_stiffness(dim, float(nu))
    cs = corners(dim)
    centre = (3**dim - 1) // 2
    C = np.zeros((3**dim, dim, dim, *shape))
    for pi, p in enumerate(cs):
        nodes = tuple(slice(int(pk), int(pk) + s - 1) for pk, s in zip(p, shape, strict=True))
        for qi, q in enumerate(cs):
            oi = _offset_index(q - p)
            if oi < centre:
                continue
            block = K[pi, :, qi, :]
            C[(oi, slice(None), slice(None), *nodes)] += (
                block.reshape(dim, dim, *([1] * dim)) * Ecell
            )
    return C.reshape(3**dim, dim, dim, -1)


@functools.lru_cache(maxsize=4)
def vector_pattern(
    shape: tuple[int, ...], free: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The CSR structure of the stiffness matrix restricted to the free nodes (`free`: the
    bytes of a boolean mask over the node grid, C order), and where each value comes from:
    (indptr, indices, gather, free_nodes) with values = C.ravel()[gather] for C from
    `coupling_arrays`. Cached (read-only arrays): the pattern is the same for every sample."""
    dim = len(shape)
    mask = np.frombuffer(free, dtype=bool).reshape(shape)
    nodes = np.flatnonzero(mask)
    number = np.full(mask.size, -1, dtype=np.int64)
    number[nodes] = np.arange(nodes.size)
    multi = np.stack(np.unravel_index(nodes, shape), axis=1)  # (F, d)
    offs = offsets(dim)
    strides = np.array([int(np.prod(shape[k + 1 :])) for k in range(dim)])
    centre = (3**dim - 1) // 2
    size = mask.size
    comps = np.arange(dim)
    cols, gathers, keeps = [], [], []
    for oi, o in enumerate(offs):
        neighbour = multi + o
        inside = np.all((neighbour >= 0) & (neighbour < np.array(shape)), axis=1)
        flat = np.where(inside, nodes + int(o @ strides), 0)
        ok = inside & mask.ravel()[flat]
        # per (free node, row comp a, col comp b)
        col = number[flat][:, None, None] * dim + comps[None, None, :]
        if oi >= centre:
            g = ((oi * dim + comps[:, None]) * dim + comps[None, :])[None] * size + nodes[
                :, None, None
            ]
        else:  # the transposed coupling stored at the neighbour, offset -o
            mirror = 3**dim - 1 - oi
            g = ((mirror * dim + comps[None, :]) * dim + comps[:, None])[None] * size + flat[
                :, None, None
            ]
        cols.append(np.broadcast_to(col, (nodes.size, dim, dim)))
        gathers.append(g)
        keeps.append(np.broadcast_to(ok[:, None, None], (nodes.size, dim, dim)))
    # axes (node, a, offset, b): row-major rows, columns ascending within a row
    col = np.stack(cols, axis=2)
    gather = np.stack(gathers, axis=2)
    keep = np.stack(keeps, axis=2)
    counts = keep.reshape(nodes.size * dim, -1).sum(axis=1)
    indptr = np.zeros(nodes.size * dim + 1, dtype=np.int32)
    np.cumsum(counts, out=indptr[1:])
    indices = col[keep].astype(np.int32)
    gather = gather[keep].astype(np.int64)
    for array in (indptr, indices, gather, nodes):
        array.setflags(write=False)
    return indptr, indices, gather, nodes


def stiffness_matrix(E: np.ndarray, nu: float, h: float, free: np.ndarray) -> sp.csr_matrix:
    """The Q1 stiffness matrix of -div(sigma) on the free nodes (`free`, a boolean mask over
    the node grid; constrained nodes are eliminated with zero displacement), interleaved
    unknowns. Every coupling of the pattern is stored, zero or not: one pattern per grid."""
    E = np.asarray(E, dtype=float)
    indptr, indices, gather, nodes = vector_pattern(E.shape, np.ascontiguousarray(free).tobytes())
    data = coupling_arrays(E, nu, h).ravel()[gather]
    size = nodes.size * E.ndim
    A = sp.csr_matrix((data, indices, indptr), shape=(size, size), copy=False)
    A.has_sorted_indices = True
    return A


def mass_1d(u: np.ndarray, h: float, axis: int) -> np.ndarray:
    """The 1D Q1 mass matrix h/6 [1 4 1] (h/6 [2 1] at the two ends) applied along `axis`."""
    u = np.moveaxis(np.asarray(u, dtype=float), axis, 0)
    out = 4.0 * u
    out[1:] += u[:-1]
    out[:-1] += u[1:]
    out[0] -= 2.0 * u[0]
    out[-1] -= 2.0 * u[-1]
    return np.moveaxis(out * (h / 6.0), 0, axis)


def mass(u: np.ndarray, h: float, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """The tensor-product Q1 mass matrix applied to nodal values u (along `axes`, all by
    default): the integrals of the interpolant of u against each shape function."""
    for axis in range(u.ndim) if axes is None else axes:
        u = mass_1d(u, h, axis)
    return u
