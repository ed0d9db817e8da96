"""The interface every PDE family implements, and the grid they share."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pdegen.fields import gaussian_random_field
from pdegen.specs import CoefficientSpec, FieldSpec

FEATURE_POINTS = 32  # ordering compares fields on at most this many nodes per axis


@dataclass
class Sample:
    """One sample's inputs on the node grid, plus its scalar parameters.

    `inputs` are stored in a shard's /inputs group, `params` (scalars) in /params.
    """

    index: int
    inputs: dict[str, np.ndarray]
    params: dict[str, float] = field(default_factory=dict)


class Family(abc.ABC):
    """A parameterised PDE discretised on the node grid of the unit square or cube."""

    name: ClassVar[str]
    Problem: ClassVar[type]  # the dataclass of the recipe's `problem:` section
    #: the fastest (method, preconditioner) measured per dimension, which `method: auto`
    #: runs (docs/benchmarks.md)
    auto_solvers: ClassVar[dict[int, tuple[str, str]]] = {2: ("direct", "lu"), 3: ("gmres", "ilu")}
    #: the preconditioner `pc: auto` means for an iterative method named explicitly
    iterative_pc: ClassVar[str] = "ilu"
    #: True when every sample has the same matrix (a many-right-hand-sides problem)
    shared_operator: ClassVar[bool] = False
    symmetric: ClassVar[bool] = False
    positive_definite: ClassVar[bool] = False

    def __init__(self, n: int, dim: int, problem: Any):
        self.n, self.dim, self.problem = n, dim, problem
        self.h = 1.0 / (n + 1)
        self.x = np.linspace(0.0, 1.0, n + 2)

    @classmethod
    def from_recipe(cls, recipe) -> Family:
        return cls(recipe.grid.n, recipe.grid.dim, recipe.problem)

    @classmethod
    def check(cls, recipe) -> None:
        """Cross-field recipe checks; raise RecipeError naming the field."""
        return None  # most families need none beyond the schema

    @property
    def coordinates(self) -> dict[str, np.ndarray]:
        """1D node coordinates per axis (boundary included), in the arrays' axis order."""
        return {name: self.x for name in "xyz"[: self.dim]}

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (self.n + 2,) * self.dim

    @property
    def unknowns(self) -> int:
        return self.n**self.dim

    def grf(self, rng: np.random.Generator, spec: FieldSpec) -> np.ndarray:
        field_ = gaussian_random_field(
            rng, [self.x] * self.dim, spec.alpha, spec.tau, spec.sigma, spec.modes
        )
        return spec.mean + field_

    def coefficient(self, rng: np.random.Generator, spec: CoefficientSpec) -> np.ndarray:
        field_ = self.grf(rng, spec)
        if spec.kind == "threshold":
            return np.where(field_ >= 0.0, spec.high, spec.low)
        return spec.scale * np.exp(field_)

    def interior(self, array: np.ndarray) -> np.ndarray:
        return array[(slice(1, -1),) * self.dim]

    def right_hand_side(self, f: np.ndarray | float, g: np.ndarray | float, lift) -> np.ndarray:
        """f at the interior nodes plus `lift(g)`, the Dirichlet values' contribution (skipped
        when g is zero); f and g are scalars or arrays on the node grid."""
        b = self.interior(np.broadcast_to(np.asarray(f, dtype=float), self.grid_shape)).copy()
        g = np.broadcast_to(np.asarray(g, dtype=float), self.grid_shape)
        if np.any(g):
            b += lift(g)
        return b.ravel()

    @abc.abstractmethod
    def sample(self, seed: int, index: int) -> Sample:
        """Draw sample `index` from its own generator (`pdegen.fields.sample_rng`)."""

    @abc.abstractmethod
    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        """A x = b for one sample (CSR with the family's fixed sparsity pattern)."""

    def boundary_values(self, sample: Sample) -> np.ndarray | float:
        return 0.0

    def solution_field(self, sample: Sample, x: np.ndarray) -> np.ndarray:
        """The solution on the full node grid, Dirichlet values on the boundary."""
        u = np.array(np.broadcast_to(self.boundary_values(sample), self.grid_shape))
        u[(slice(1, -1),) * self.dim] = x.reshape((self.n,) * self.dim)
        return u

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        """Solve one sample with a `solvers.ChainSolver`; returns its output fields and the
        results of every solve it took (one here; a trajectory takes one per step)."""
        A, b = self.system(sample)
        result = chain.solve(A, b)
        return {"solution": self.solution_field(sample, result.x)}, [result]

    def downsample(self, array: np.ndarray) -> np.ndarray:
        step = max(1, int(np.ceil(array.shape[0] / FEATURE_POINTS)))
        return array[(slice(None, None, step),) * array.ndim]

    def features(self, sample: Sample) -> np.ndarray:
        """What ordering compares: nearby vectors should mean nearby operators."""
        return np.concatenate([self.downsample(v).ravel() for v in sample.inputs.values()])
