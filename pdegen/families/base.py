"""The interface every PDE family implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class Sample:
    """One sample's inputs, on the family's grid, plus its scalar parameters.

    `inputs` are the arrays stored in a shard's /inputs group; `params` are scalars stored in
    /params. `features` is what the ordering step compares between samples.
    """

    index: int
    inputs: dict[str, np.ndarray]
    params: dict[str, float] = field(default_factory=dict)


class Family(abc.ABC):
    """A parameterised PDE discretised on a fixed grid."""

    name: str
    #: what `method: auto` runs; set from the benchmarks in docs/benchmarks.md
    default_method: str = "gmres"

    @classmethod
    @abc.abstractmethod
    def from_recipe(cls, recipe) -> Family: ...

    @property
    @abc.abstractmethod
    def coordinates(self) -> dict[str, np.ndarray]:
        """1D node coordinates per axis, boundary nodes included (axis order of the arrays)."""

    @property
    @abc.abstractmethod
    def solution_shape(self) -> tuple[int, ...]: ...

    @abc.abstractmethod
    def sample(self, seed: int, index: int) -> Sample:
        """Draw sample `index` from its own generator (see `pdegen.fields.sample_rng`)."""

    @abc.abstractmethod
    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        """The linear system A x = b of one sample (A in CSR with a fixed sparsity pattern)."""

    @abc.abstractmethod
    def solution_field(self, sample: Sample, x: np.ndarray) -> np.ndarray:
        """The full solution on the node grid (boundary values included) from unknowns x."""

    def features(self, sample: Sample) -> np.ndarray:
        """A vector per sample; nearby vectors should mean nearby operators."""
        return np.concatenate([np.ravel(v) for v in sample.inputs.values()])
