"""Which node grids geometric multigrid (`pc: mg`) can coarsen, decided without PETSc.

The families' unknowns are the interior nodes of a vertex grid of the unit square or cube:
n interior nodes per axis, n + 1 cells of width h = 1/(n + 1), Dirichlet values on the
boundary nodes, numbered in C order (last axis fastest). `solvers.multigrid` builds the
hierarchy's interpolations, PETSc's between DMDAs of the whole node grid (boundary nodes
included) on uniform levels halved exactly, its own from the first uneven halving down (the
levels rule, below).

**The levels rule.** A DMDA vertex grid of M nodes coarsens by an integer ratio r only when
r divides its M - 1 cells (PETSc's Q1 interpolation needs (M_fine - 1) / (M_coarse - 1) to be
an integer), so a level of n interior nodes has a coarser one by 2 when n + 1 is even, with
(n + 1) / 2 - 1 interior nodes: the fine nodes of even index, which keeps the coarse grid's
boundary on the fine grid's boundary. The rule halves while it can; a level whose cells do
not pair up and that is still larger than `UNEVEN_ABOVE` unknowns is halved unevenly (below)
and the rule goes on. Examples:

- FNO's 421 x 421 nodes (n = 419, 420 = 2^2 * 105 cells): 419 -> 209 -> 104 -> 52, the
  last step uneven, a coarsest grid of 52^2 = 2 704 unknowns, factorised by LU;
- 2^k + 1 nodes (n = 2^k - 1: 31, 63, 127, 255): down to one unknown;
- 64^3 nodes (n = 62, 63 cells): 62 -> 31 -> 15 -> 7 -> 3 -> 1, the first step uneven.

**Why not steps by 3** (issue 27). Where the cells do not halve but 3 divides them (63, 105,
255), the rule used to coarsen by 3 (the vertex-centred factor-3 multigrid of Dendy and
Moulton, "Black box multigrid with coarsening by a factor of three", Numer. Linear Algebra
Appl. 17 (2010)): it reaches a small coarsest level in fewer steps, and at 421^2, before
uneven halving existed, it was 12% faster than stopping there (docs/benchmarks.md,
"Coarsening by 3"). Against uneven halving it costs iterations (64^3 Poisson: 8 CG
iterations against 5; Darcy 9 against 7; Darcy on 256^2 nodes: 11.9 against 9.5) for little
saved per cycle, and it was slower on every grid measured but one, 3D Helmholtz at 62^3,
where it was 1-4% faster in two runs (docs/benchmarks.md, "Uneven halving instead of steps
by 3"), so it is no longer taken.

**Uneven halving** (issue 27). A level whose cells do not halve (127 cells, a prime: the 128
points per axis people ask for; 65 = 5 * 13; 63 = 3^2 * 7) and that still has more than
`UNEVEN_ABOVE` unknowns is halved anyway: its coarse nodes are every other fine node and the
last one, so an odd axis of c cells gets (c + 1) / 2 coarse cells, one of them half as long
(127 -> 64 cells, then 32, 16, ... exactly); a second uneven step on an axis takes its nodes
from the other end, so the short cell merges and no cell grows past twice another. Every
coarse node is still a fine node, so the interpolation keeps the sparsity of the even case,
and with it the Galerkin coarse operators keep their (3^d)-point stencils; its weights are
linear interpolation at the nodes' true positions (`solvers.multigrid.GridHierarchy`, which
tracks them from level to level). Why: before it, 128 points per axis ran a sparse Cholesky
and 256 stopped on an 84^2 coarsest level, 1.4-1.8x slower than their neighbours 129 and 257
(issue 27; docs/benchmarks.md, "Uneven halving"). A first try, a non-nested coarse grid of
uniform cells (the tensor product of 1D linear interpolation at arbitrary positions), took
as many CG iterations but 25-point Galerkin operators on every coarse level made each one
1.3-1.6x dearer.

The coarsest level is solved by LU, so it must be small: at most `MAX_COARSEST` unknowns
(16 384 = 128^2 in 2D, where the factorisation of a 9-point operator is a few ms; 4 096 =
16^3 in 3D, where the fill of a 27-point operator grows like N^(4/3)). A grid with fewer
than two levels, or whose coarsest level is larger than that, "coarsens too little": `pc: mg`
then runs PETSc's algebraic multigrid (`gamg`) on the same operator instead, with a one-line
note (`Coarsening.note`), so a recipe never fails for its grid size.

(The other choice, a DMDA of the interior nodes alone coarsened n -> (n + 1) / 2 by PETSc's
rule, keeps the outermost interior nodes on every level: it needs n odd at each level, which
FNO's n = 419 meets once (419 -> 210), against twice here.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: the largest coarsest level (unknowns) that is factorised, per dimension
MAX_COARSEST: dict[int, int] = {1: 65536, 2: 16384, 3: 4096}
#: a level whose cells do not halve and that has more unknowns than this is halved unevenly
#: (module docstring, "Uneven halving")
UNEVEN_ABOVE: dict[int, int] = {1: 4096, 2: 4096, 3: 4096}
#: the fewest interior nodes per axis a level needs to be halved unevenly (4 cells, so the
#: coarse axis keeps at least one interior node between its short and its long cells)
UNEVEN_MIN = 3
#: what `pc: mg` runs on a grid that coarsens too little
FALLBACK_PC = "gamg"


@dataclass(frozen=True)
class Coarsening:
    """The interior-node shapes of a multigrid hierarchy, finest first."""

    shapes: tuple[tuple[int, ...], ...]

    @property
    def levels(self) -> int:
        return len(self.shapes)

    @property
    def coarsest_unknowns(self) -> int:
        return math.prod(self.shapes[-1])

    @property
    def usable(self) -> bool:
        """At least two levels and a coarsest level small enough to factorise."""
        dim = len(self.shapes[0])
        return self.levels >= 2 and self.coarsest_unknowns <= MAX_COARSEST[dim]

    @property
    def note(self) -> str | None:
        """One line saying why `pc: mg` falls back to `FALLBACK_PC`, or None if it does not."""
        if self.usable:
            return None
        fine = self.shapes[0]
        cut = _next_shape(self.shapes[-1]) is not None  # it would go on: max_levels stopped it
        if self.levels < 2 and cut:
            why = "max_levels allows only one level"
        elif self.levels < 2:
            why = _why_it_stops(fine)
        else:
            why = (
                f"its coarsest level, {_text(self.shapes[-1])} = {self.coarsest_unknowns} "
                f"unknowns, is larger than the {MAX_COARSEST[len(fine)]} factorised"
                + (f", where max_levels stops it at {self.levels} levels" if cut else "")
            )
        dim = len(fine)
        return (
            f"pc mg: the {_text(fine)} interior grid coarsens too little ({why}; geometric "
            f"multigrid halves the cells, unevenly where they do not pair up on levels above "
            f"{UNEVEN_ABOVE[dim]} unknowns with at least {UNEVEN_MIN} nodes per axis): running "
            f"{FALLBACK_PC}"
        )


def _text(shape: tuple[int, ...], power: str = "^") -> str:
    """30^2 for a square grid (or "30" per axis with power="x"), 7x15 for another one."""
    if len(set(shape)) == 1:
        return f"{shape[0]}^{len(shape)}" if power == "^" else str(shape[0])
    return "x".join(map(str, shape))


def coarsen(shape: tuple[int, ...], max_levels: int | None = None) -> Coarsening:
    """The hierarchy of an interior grid `shape` by the levels rule (module docstring):
    halve the cells, exactly where every axis has an even number of them and a coarse
    interior node remains, else unevenly while the level is larger than `UNEVEN_ABOVE`; at
    most `max_levels` levels."""
    shape = tuple(int(n) for n in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"a grid needs at least one interior node per axis, got {shape}")
    shapes = [shape]
    while max_levels is None or len(shapes) < max_levels:
        coarser = _next_shape(shapes[-1])
        if coarser is None:
            break
        shapes.append(coarser)
    return Coarsening(tuple(shapes))


def _next_shape(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The level below `shape` by the levels rule, or None where `shape` is the coarsest:
    halved exactly where the cells allow it (`_ratio`), else, on a level above
    `UNEVEN_ABOVE` unknowns with at least `UNEVEN_MIN` nodes per axis, uneven halving:
    (c + 1) // 2 cells on an axis of c (module docstring, "Uneven halving")."""
    ratio = _ratio(shape)
    if ratio is not None:
        return tuple((n + 1) // ratio - 1 for n in shape)
    if math.prod(shape) > UNEVEN_ABOVE[len(shape)] and min(shape) >= UNEVEN_MIN:
        return tuple((n + 2) // 2 - 1 for n in shape)
    return None


def coarse_nodes(cells: int, coarse_cells: int) -> slice | None:
    """Which of a level's `cells` + 1 nodes along an axis are the coarse level's: every r-th
    for an exact ratio r (a slice), None for uneven halving (every other one and the last)."""
    return slice(None, None, cells // coarse_cells) if cells % coarse_cells == 0 else None


def is_exact_step(fine: tuple[int, ...], coarse: tuple[int, ...]) -> bool:
    """Whether every axis coarsens by an exact ratio of cells (PETSc's DMDA interpolation
    then applies, on uniform levels); False for an uneven halving."""
    return all(coarse_nodes(f + 1, c + 1) is not None for f, c in zip(fine, coarse, strict=True))


def _why_it_stops(shape: tuple[int, ...]) -> str:
    """Why `_ratio` finds no ratio for the level `shape`, in words: cells that do not halve
    or an axis too short to, and, on a level large enough to be halved unevenly, an axis
    too short for that."""
    cells = tuple(n + 1 for n in shape)
    if any(c % 2 for c in cells):
        why = f"{_text(cells, 'x')} cells per axis do not halve"
    else:
        why = f"an axis has only {min(cells)} cells, too few to halve"
    if math.prod(shape) > UNEVEN_ABOVE[len(shape)] and min(shape) < UNEVEN_MIN:
        why += f", and an axis has only {min(shape)} interior nodes, too few to halve unevenly"
    return why


def _ratio(shape: tuple[int, ...]) -> int | None:
    """The exact ratio the level `shape` is coarsened by: 2, or None (its cells do not pair
    up: it is halved unevenly or is the coarsest)."""
    cells = [n + 1 for n in shape]
    if all(c % 2 == 0 for c in cells) and min(cells) >= 4:
        return 2
    return None


@dataclass(frozen=True)
class CellCoarsening(Coarsening):
    """The point counts per axis of a cell grid's hierarchy, finest first (the finest: the
    cells), with its own note."""

    @property
    def note(self) -> str | None:
        """One line saying why `pc: mg` falls back to GAMG, or None if it does not."""
        if self.usable:
            return None
        text = "x".join(map(str, self.shapes[0]))
        if min(self.shapes[-1]) >= UNEVEN_MIN:  # it would go on: max_levels stopped it
            why = f"max_levels stops it at {self.levels} level(s)"
        else:
            why = f"an axis has fewer than {UNEVEN_MIN} cells, too few to halve"
        return (
            f"pc mg: the {text} cell grid coarsens too little ({why}; the coarsest level is "
            f"factorised, at most {MAX_COARSEST[len(self.shapes[0])]} unknowns): running "
            f"{FALLBACK_PC}"
        )


def coarsen_cells(shape: tuple[int, ...], max_levels: int | None = None) -> CellCoarsening:
    """The hierarchy of a grid of `shape` cells (`solvers.cells`), at most `max_levels` levels:
    the points halved, (n + 2) // 2 - 1 of n, while every axis has at least `UNEVEN_MIN`."""
    shapes = [tuple(int(n) for n in shape)]
    while (max_levels is None or len(shapes) < max_levels) and min(shapes[-1]) >= UNEVEN_MIN:
        shapes.append(tuple((n + 2) // 2 - 1 for n in shapes[-1]))
    return CellCoarsening(tuple(shapes))


def infer_grid(size: int, first_row: list[int] | tuple[int, ...]) -> tuple[int, ...] | None:
    """The interior grid of a nearest-neighbour stencil matrix, read from its size and the
    columns of its first row, or None if they are not those of such a stencil.

    In C order the first unknown couples to itself and to its neighbour along each axis,
    at columns 0, 1, n, n^2, ... (last axis first): d + 1 columns on an n^d grid. This lets
    `solve_sequence(systems, pc="mg")` run on bare matrices; pdegen passes the grid itself.
    """
    cols = sorted(int(c) for c in first_row)
    dim = len(cols) - 1
    if dim < 1 or dim > 3 or cols[0] != 0:
        return None
    n = size if dim == 1 else cols[2]
    expected = [0, *(n**k for k in range(dim))]
    if n < 2 or cols != expected or n**dim != size:
        return None
    return (n,) * dim


__all__ = [
    "FALLBACK_PC",
    "MAX_COARSEST",
    "UNEVEN_ABOVE",
    "Coarsening",
    "coarsen",
    "infer_grid",
    "coarse_nodes",
    "is_exact_step",
]
