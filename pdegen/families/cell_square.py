"""The cell-centred square that PDEBench's and The Well's 2D sets live on, shared by the
families that use it (`fitzhugh-nagumo`, `acoustic`).

[-L/2, L/2]^2 with `grid.n` cells per axis, h = L / n, the fields at the cell centres
x_i = -L/2 + (i + 1/2) h. There are no boundary nodes: the walls lie between cells, so a
stored field is the whole array and `/grid/x` holds the centres. The mixin goes before
`Family` among a family's bases.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pdegen.errors import RecipeError
from pdegen.families.declarations import SPACE_AXES, TIME_AXIS


class CellCentredSquare:
    """The grid half of a cell-centred family on a square."""

    grid_dims = (2,)
    any_length = True
    stores_boundary_nodes = False
    layouts = ("cells",)  # its own grid is cell-centred

    n: int
    dim: int
    length: float
    h: float
    x: np.ndarray
    name: str
    times: np.ndarray

    def __init__(self, n: int, dim: int, problem: Any, length: float = 2.0):
        self.n, self.dim, self.problem = n, dim, problem
        self.length = length
        self.h = length / n
        self.x = -length / 2 + (np.arange(n) + 0.5) * self.h

    @classmethod
    def from_recipe(cls, recipe):
        lengths = set(recipe.grid.lengths)
        return cls(recipe.grid.n, recipe.grid.dim, recipe.problem, lengths.pop())

    @classmethod
    def check_square(cls, recipe) -> None:
        """Refuse a rectangle: one `grid.length` for both axes."""
        if len(set(recipe.grid.lengths)) != 1:
            raise RecipeError(f"grid.length: {cls.name} is solved on a square (one length)")

    @classmethod
    def check(cls, recipe) -> None:
        """`Family.check`: the square (a family with more to check calls `check_square`)."""
        cls.check_square(recipe)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (self.n, self.n)

    @property
    def interior_shape(self) -> tuple[int, ...]:
        return (self.n, self.n)

    @property
    def coordinates(self) -> dict[str, np.ndarray]:
        return {TIME_AXIS: self.times, **{a: self.x for a in SPACE_AXES[: self.dim]}}

    def interior(self, array: np.ndarray) -> np.ndarray:
        return array  # no boundary nodes: the walls lie between cells

    def grid_words(self) -> str:
        return f"{self.n}×{self.n} cell-centred grid"

    def square_words(self) -> str:
        """The start of the card's domain sentence."""
        half = self.length / 2
        return (
            f"Domain: the square [{-half:g}, {half:g}]², {self.n} cells per axis (h = "
            f"{self.h:g}), fields at the cell centres"
        )


__all__ = ["CellCentredSquare"]
