"""The marker-and-cell grid on a rectangle of square cells, with velocity data on its sides,
an optional outflow side and solid cells: the operators of a projection step for
incompressible flow in a channel (`pdegen.families.channel`) and for exact solutions with
Dirichlet data everywhere (Kovasznay's flow, tests).

Cells (i, j), i < nx along x, j < ny along y, of side h, the rectangle's corner at `origin`.
u lives on the x-faces (x = i h, i = 0..nx), v on the y-faces (y = j h, j = 0..ny), p at the
cell centres. The normal velocity on a side is data (a Dirichlet side), except on the right
side when `outflow` is set: there u is an unknown, its x-derivative and v's vanish (by a
ghost copy: half a cell beyond the side for u, on it for v) and the pressure is zero on the
side (so the pressure needs no pin and is not defined up to a
constant). Why these ghost rules and not one-sided stencils: each is a choice among three
(a known neighbour on a face, a mirror image about the wall for a tangential component, a
copy for a zero derivative), which keeps every operator a Kronecker sum of 1D stencils and
the pressure matrix symmetric.

Solid cells (a cell mask): every face of a solid cell has zero velocity and no pressure
flux, a staircase no-slip boundary (first order in the geometry). Why a cell mask and not
cut cells: the matrix pattern stays the same for every sample (only values change, so the
chain solver refills its matrix in place and keeps its symbolic work), the projection stays
exact to round-off, and the geometry error, O(h), is what CFDBench's and The Well's
masked-grid datasets carry too.

Rows are scaled by h^2 (the momentum) or by h (the divergence), like `pdegen.families.stokes`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: the ghost rules a line of unknowns can end with (module docstring)
VALUE, MIRROR, FREE = "value", "mirror", "free"


def line_operator(
    weights: tuple[float, float, float], m: int, left: str, right: str
) -> tuple[sp.csr_matrix, float, float]:
    """The 1D stencil (west, centre, east) on m unknowns and how its two ends see the data:
    returns (M, c_left, c_right) with (M u)_k + c_left g_left [k = 0] + c_right g_right
    [k = m - 1] the stencil applied, the ghosts by their rules: VALUE, the neighbour is the
    datum g; MIRROR, the ghost is 2 g - u (g on the wall half a cell away); FREE, the ghost
    is u (a zero derivative; g unused)."""
    west, centre, east = weights
    main = np.full(m, float(centre))
    ends = []
    for place, weight, rule in ((0, west, left), (m - 1, east, right)):
        if rule == MIRROR:
            main[place] -= weight
            ends.append(2.0 * weight)
        elif rule == FREE:
            main[place] += weight
            ends.append(0.0)
        elif rule == VALUE:
            ends.append(float(weight))
        else:
            raise ValueError(f"unknown ghost rule {rule!r}")
    M = sp.diags([np.full(m - 1, float(west)), main, np.full(m - 1, float(east))], [-1, 0, 1])
    return M.tocsr(), ends[0], ends[1]


@dataclass(frozen=True)
class Component:
    """One velocity component's unknowns: their array shape and the ghost rules of its lines
    along x (left, right) and y (bottom, top)."""

    shape: tuple[int, int]
    x_rules: tuple[str, str]
    y_rules: tuple[str, str]

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def kron_sum(self, weights) -> tuple[sp.coo_matrix, sp.coo_matrix, tuple, tuple]:
        """The stencil along x (as kron(Mx, I)) and along y (kron(I, My)), and their ends'
        data coefficients ((left, right), (bottom, top))."""
        mx, my = self.shape
        Mx, left, right = line_operator(weights, mx, *self.x_rules)
        My, bottom, top = line_operator(weights, my, *self.y_rules)
        along_x = sp.kron(Mx, sp.identity(my), format="coo")
        along_y = sp.kron(sp.identity(mx), My, format="coo")
        return along_x, along_y, (left, right), (bottom, top)

    def lift(self, ends_x, ends_y, data: dict[str, np.ndarray], weight_x=None, weight_y=None):
        """The constant the ghosts add to every row, from the sides' data (`data`: left,
        right along y; bottom, top along x), each line's end weighted by `weight_x`/`_y`
        (the convecting velocity at the row; 1 for the viscous term)."""
        mx, my = self.shape
        out = np.zeros(self.shape)
        x_part = np.zeros(self.shape)
        x_part[0] += ends_x[0] * data["left"]
        x_part[-1] += ends_x[1] * data["right"]
        y_part = np.zeros(self.shape)
        y_part[:, 0] += ends_y[0] * data["bottom"]
        y_part[:, -1] += ends_y[1] * data["top"]
        out += x_part if weight_x is None else x_part * weight_x.reshape(self.shape)
        out += y_part if weight_y is None else y_part * weight_y.reshape(self.shape)
        return out.ravel()


class SummedPattern:
    """A CSR matrix summed from COO entries whose places never change: the places are sorted
    once, and each new set of values is summed into them by one bincount. Why: scipy's COO to
    CSR conversion (sort and sum) took half of a 64^2 step's time outside the solves; the
    pattern's arrays are read-only and shared, so the chain solver recognises them by their
    memory and refills its matrix in place."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, size: int):
        keys = rows.astype(np.int64) * size + cols
        unique, self.places = np.unique(keys, return_inverse=True)
        self.indices = (unique % size).astype(np.int32)
        self.indptr = np.zeros(size + 1, dtype=np.int32)
        np.cumsum(np.bincount(unique // size, minlength=size), out=self.indptr[1:])
        self.indices.flags.writeable = False
        self.indptr.flags.writeable = False
        self.size = size

    def csr(self, values: np.ndarray) -> sp.csr_matrix:
        data = np.bincount(self.places, weights=values, minlength=self.indices.size)
        A = sp.csr_matrix((data, self.indices, self.indptr), shape=(self.size, self.size))
        A.has_sorted_indices = True
        return A


class MacRectangle:
    """The grid's unknowns and the operators of an Oseen step and its projection (module
    docstring); `solid` is the cell mask (nx, ny), True in the obstacles' cells."""

    def __init__(
        self,
        nx: int,
        ny: int,
        h: float,
        origin: tuple[float, float] = (0.0, 0.0),
        outflow: bool = True,
        solid: np.ndarray | None = None,
    ):
        self.nx, self.ny, self.h, self.origin, self.outflow = nx, ny, h, origin, outflow
        self.solid = np.zeros((nx, ny), dtype=bool) if solid is None else np.asarray(solid)
        u_right = FREE if outflow else VALUE
        v_right = FREE if outflow else MIRROR
        #: u on the x-faces 1..nx-1 (and nx, the outflow side's), v on the y-faces 1..ny-1
        self.u = Component((nx - 1 + outflow, ny), (VALUE, u_right), (MIRROR, MIRROR))
        self.v = Component((nx, ny - 1), (MIRROR, v_right), (VALUE, VALUE))
        self.size = self.u.size + self.v.size
        fluid = ~self.solid
        # a face is open when both cells beside it are fluid (the sides' faces: the one cell)
        u_open = np.ones((nx + 1, ny), dtype=bool)
        u_open[:-1] &= fluid
        u_open[1:] &= fluid
        v_open = np.ones((nx, ny + 1), dtype=bool)
        v_open[:, :-1] &= fluid
        v_open[:, 1:] &= fluid
        self.open = np.concatenate(
            [u_open[1 : 1 + self.u.shape[0]].ravel(), v_open[:, 1:-1].ravel()]
        )

    # -- coordinates ------------------------------------------------------------------------

    def centres(self, axis: int) -> np.ndarray:
        count = (self.nx, self.ny)[axis]
        return self.origin[axis] + (np.arange(count) + 0.5) * self.h

    def faces(self, axis: int) -> np.ndarray:
        count = (self.nx, self.ny)[axis]
        return self.origin[axis] + np.arange(count + 1) * self.h

    def split(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return w[: self.u.size].reshape(self.u.shape), w[self.u.size :].reshape(self.v.shape)

    # -- the operators ------------------------------------------------------------------------

    @functools.cached_property
    def gradient(self) -> sp.csr_matrix:
        """G: h times the pressure gradient on every unknown face (the outflow side's faces:
        (0 - p) / (h / 2), the pressure being zero on that side; closed faces: 0)."""
        nx, ny = self.nx, self.ny
        cells = np.arange(nx * ny).reshape(nx, ny)
        rows, cols, vals = [], [], []
        u_faces = np.arange(self.u.size).reshape(self.u.shape)
        rows += [u_faces[: nx - 1].ravel()] * 2
        cols += [cells[1:].ravel(), cells[:-1].ravel()]
        vals += [np.ones((nx - 1) * ny), -np.ones((nx - 1) * ny)]
        if self.outflow:
            rows.append(u_faces[nx - 1])
            cols.append(cells[-1])
            vals.append(np.full(ny, -2.0))
        v_faces = self.u.size + np.arange(self.v.size).reshape(self.v.shape)
        rows += [v_faces.ravel()] * 2
        cols += [cells[:, 1:].ravel(), cells[:, :-1].ravel()]
        vals += [np.ones(nx * (ny - 1)), -np.ones(nx * (ny - 1))]
        G = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.size, nx * ny),
        )
        return (sp.diags(self.open.astype(float)) @ G).tocsr()

    @functools.cached_property
    def divergence(self) -> sp.csr_matrix:
        """D: h times div u at the cell centres from the unknown faces (the sides' data go
        to `divergence_lift`): -G^T, but 1 for an outflow face, whose G entry is 2."""
        scale = np.ones(self.size)
        if self.outflow:
            scale[np.arange(self.u.size).reshape(self.u.shape)[-1]] = 0.5
        return (-(sp.diags(scale) @ self.gradient).T).tocsr()

    def divergence_lift(self, sides: dict) -> np.ndarray:
        """h div u's part from the normal velocities on the sides."""
        out = np.zeros((self.nx, self.ny))
        out[0] -= sides["u"]["left"]
        if not self.outflow:
            out[-1] += sides["u"]["right"]
        out[:, 0] -= sides["v"]["bottom"]
        out[:, -1] += sides["v"]["top"]
        return out.ravel()

    @functools.cached_property
    def pressure_matrix(self) -> sp.csr_matrix:
        """-D G over the cells (h^2 times minus the pressure Laplacian: symmetric, positive
        definite once fixed): a cell with no open face (solid, or fluid walled in) gets the
        row of phi = 0, and so does the first fluid cell where no side is an outflow (the
        pressure's constant). The same object for every step of a sample: the chain keeps
        its factorisation."""
        L = (-(self.divergence @ self.gradient)).tocsr()
        fixed = np.isclose(L.diagonal(), 0.0)
        if not self.outflow:
            fixed[np.flatnonzero(~fixed)[0]] = True
        self.fixed_cells = fixed
        keep = sp.diags((~fixed).astype(float))
        L = (keep @ L @ keep + sp.diags(fixed.astype(float))).tocsr()
        L.eliminate_zeros()
        L.sort_indices()
        return L

    def project(self, u_star: np.ndarray, p: np.ndarray, step: float, sides: dict, solve):
        """u* made divergence-free: L phi = -(h / dt)(D u* + the sides' part), u = u* - (dt /
        h) G phi, p = p + phi (incremental pressure correction; `step` is dt / a0 for a
        backward-difference step); returns (u, p, result)."""
        L = self.pressure_matrix
        rhs = -(self.h / step) * (self.divergence @ u_star + self.divergence_lift(sides))
        rhs[self.fixed_cells] = 0.0
        result = solve(L, rhs)
        phi = np.where(self.fixed_cells, 0.0, result.x)
        return u_star - (step / self.h) * (self.gradient @ phi), p + phi, result

    # -- the momentum step ----------------------------------------------------------------------

    @property
    def _stencils(self):
        return _momentum_places(self.nx, self.ny, self.outflow)[1]

    @property
    def _pattern(self):
        return _momentum_places(self.nx, self.ny, self.outflow)[0]

    def with_sides(self, w: np.ndarray, sides: dict) -> tuple[np.ndarray, np.ndarray]:
        """u on every x-face (nx + 1, ny) and v on every y-face (nx, ny + 1): the unknowns
        with the sides' normal data around them."""
        u, v = self.split(w)
        u_full = [sides["u"]["left"][None], u]
        if not self.outflow:
            u_full.append(sides["u"]["right"][None])
        v_full = [sides["v"]["bottom"][:, None], v, sides["v"]["top"][:, None]]
        return np.concatenate(u_full), np.concatenate(v_full, axis=1)

    @functools.cached_property
    def _open_stencils(self) -> list[tuple[np.ndarray, str, int, np.ndarray]]:
        """(rows, term, axis, stencil values) of each part of the momentum matrix, the
        values zero wherever a closed face takes part: the sample's mask applied once, not
        at every step."""
        _, rows, cols, tags = self._pattern
        keep = self.open.astype(float)
        return [
            (r, name, axis, data * keep[r] * keep[c])
            for r, c, (name, axis, data) in zip(rows, cols, tags, strict=True)
        ]

    def advecting(self, w: np.ndarray, sides: dict) -> tuple[np.ndarray, np.ndarray]:
        """The convecting velocity (w_x, w_y) at every unknown face: its own component there,
        the other the mean of the four nearest (the sides' normal data included; beyond an
        outflow side, a copy of the last column)."""
        u, v = self.split(w)
        u_full, v_full = self.with_sides(w, sides)
        v_ext = np.concatenate([v_full, v_full[-1:]])
        mu = self.u.shape[0]
        v_at_u = 0.25 * (
            v_ext[:mu, :-1] + v_ext[1 : mu + 1, :-1] + v_ext[:mu, 1:] + v_ext[1 : mu + 1, 1:]
        )
        u_at_v = 0.25 * (u_full[:-1, :-1] + u_full[1:, :-1] + u_full[:-1, 1:] + u_full[1:, 1:])
        wx = np.concatenate([u.ravel(), u_at_v.ravel()])
        wy = np.concatenate([v_at_u.ravel(), v.ravel()])
        return wx, wy

    def lifts(self, sides: dict, nu: float, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
        """What the sides' data add to the momentum rows (moved to the right-hand side with
        the opposite sign): nu times the viscous stencil's, h w times the convective one's."""
        out = []
        for key, component, offset in (("u", self.u, 0), ("v", self.v, self.u.size)):
            rows = slice(offset, offset + component.size)
            data = _filled(sides[key], component)
            ends_x, ends_y = self._stencils["viscous"][key]
            viscous = component.lift(ends_x, ends_y, data)
            ends_x, ends_y = self._stencils["convective"][key]
            convective = component.lift(ends_x, ends_y, data, self.h * wx[rows], self.h * wy[rows])
            out.append(nu * viscous + convective)
        return np.concatenate(out)

    def momentum(self, u, p, step, nu, sides, forcing=None, terms=None):
        """The Oseen step (a0 h^2/dt + nu A + h^2 N(w)) u* = h^2/dt history - h G p - lifts
        (+ h^2 f): its matrix (a fixed pattern, the closed faces' rows the mass alone) and
        right-hand side (zero on closed faces); (a0, history, w) are `terms`
        (`pdegen.discretisation.timestepping.backward_difference`), backward Euler from u
        (1, u, u) by default."""
        a0, history, w = terms or (1.0, u, u)
        wx, wy = self.advecting(w, sides)
        values = []
        for rows, name, axis, data in self._open_stencils:
            scale = nu if name == "viscous" else self.h * (wx, wy)[axis][rows]
            values.append(data * scale)
        values.append(np.full(self.size, a0 * self.h**2 / step))
        A = self._pattern[0].csr(np.concatenate(values))
        b = (self.h**2 / step) * history - self.h * (self.gradient @ p)
        b -= self.lifts(sides, nu, wx, wy)
        if forcing is not None:
            b = b + self.h**2 * forcing
        b[~self.open] = 0.0
        return A, b

    def cell_fields(self, w: np.ndarray, sides: dict) -> tuple[np.ndarray, np.ndarray]:
        """u and v at the cell centres: the means of the two faces along each."""
        u_full, v_full = self.with_sides(w, sides)
        return 0.5 * (u_full[:-1] + u_full[1:]), 0.5 * (v_full[:, :-1] + v_full[:, 1:])


@functools.lru_cache(maxsize=4)
def _momentum_places(nx: int, ny: int, outflow: bool):
    """The momentum matrix's places, shared by every sample on the same grid (the obstacles
    change values, never places): viscous along x and y, convective along x and y, then the
    diagonal, with each part's tag (which term, which axis, the stencil's values) and the
    ends' data coefficients per component."""
    grid = MacRectangle(nx, ny, 1.0, outflow=outflow)
    stencils = {}
    rows, cols, tags = [], [], []
    for name, weights in (("viscous", (-1.0, 2.0, -1.0)), ("convective", (-0.5, 0.0, 0.5))):
        ends = {}
        for key, component, offset in (("u", grid.u, 0), ("v", grid.v, grid.u.size)):
            along_x, along_y, ends_x, ends_y = component.kron_sum(weights)
            ends[key] = (ends_x, ends_y)
            for axis, M in enumerate((along_x, along_y)):
                rows.append(M.row + offset)
                cols.append(M.col + offset)
                tags.append((name, axis, M.data))
        stencils[name] = ends
    diagonal = np.arange(grid.size)
    pattern = SummedPattern(
        np.concatenate([*rows, diagonal]), np.concatenate([*cols, diagonal]), grid.size
    )
    return (pattern, rows, cols, tags), stencils


def _filled(data: dict, component: Component) -> dict:
    """The sides' data, with zeros for a side that has none (an outflow side)."""
    mx, my = component.shape
    zeros = {
        "left": np.zeros(my),
        "right": np.zeros(my),
        "bottom": np.zeros(mx),
        "top": np.zeros(mx),
    }
    return {**zeros, **data}
