"""One sample across a group of ranks (`solver.ranks_per_sample` k > 1, the MPI engine).

The MPI engine splits COMM_WORLD into groups of k contiguous ranks (`split_groups`); a group
solves its batches' samples one after another, all k ranks on each. Per sample:

1. the group's first rank draws the sample from its own seed, exactly as one rank would
   (`Family.sample`), so the inputs do not depend on k;
2. it sends each rank the node planes its slab of rows reads (`solvers.distributed`): the
   coefficient's and the right-hand side's, point to point;
3. each rank assembles its rows (`diffusion_rows`) and the group solves together on its
   communicator (`ChainSolver(comm=...)`: parallel AIJ matrices, PCMG on the slab hierarchy);
4. the solution gathers to the first rank in natural order, which writes the shard row.

Why the draw stays on the first rank: its random numbers come from one generator per sample,
in one stream, so drawing them elsewhere would change the inputs with k; only its cosine
transforms, most of its time, are shared out by lines (`SharedTransforms`), which keeps the
bits (docs/benchmarks.md, "One sample across ranks", gives the model and what is left).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from pdegen.dataset.shards import ShardContent
from pdegen.discretisation.fields import transforms_by
from pdegen.discretisation.operators import diffusion_rows
from pdegen.recipe.ranks import solver_across_ranks
from pdegen.recipe.schema import Recipe
from solvers.distributed import plane_ranges
from solvers.kernels import single_threaded_blas

#: message tag of the draw's transform blocks
_TRANSFORM_TAG = 72


def _lines(shape: tuple[int, ...], across: int, bounds: tuple[int, int]) -> tuple[slice, ...]:
    return tuple(slice(*bounds) if d == across else slice(None) for d in range(len(shape)))


class SharedTransforms:
    """The first rank's side of a draw shared by its group: each type-I DCT of the Gaussian
    random field's cosine series (`pdegen.discretisation.fields.transforms_by`) is split by
    lines, the lines dealt in blocks along another axis to the group's ranks, and the
    results written back in place. Why: the draw is one rank's serial work while the others
    wait (at 192^3 its three DCTs, of a length whose FFT has a large prime factor, were 1.6
    of its 1.9 s), and split by lines it is the same bits (each line is transformed alone).
    The other ranks run `serve_transforms` meanwhile."""

    def __init__(self, comm):
        self.comm = comm  # mpi4py

    def __call__(self, field: np.ndarray, axis: int) -> np.ndarray:
        from mpi4py import MPI

        comm = self.comm
        across = 1 if axis == 0 else 0
        bounds = plane_ranges(field.shape[across], comm.Get_size())
        comm.bcast((axis, across, field.shape), root=0)
        sends = [
            comm.Isend(
                np.ascontiguousarray(field[_lines(field.shape, across, b)]), r, _TRANSFORM_TAG
            )
            for r, b in enumerate(bounds)
            if r > 0
        ]
        own = _lines(field.shape, across, bounds[0])
        done = scipy.fft.dct(np.ascontiguousarray(field[own]), type=1, axis=axis)
        MPI.Request.Waitall(sends)
        field[own] = done
        for r, b in enumerate(bounds):
            if r > 0:
                block = np.empty_like(field[_lines(field.shape, across, b)], order="C")
                comm.Recv(block, source=r, tag=_TRANSFORM_TAG)
                field[_lines(field.shape, across, b)] = block
        return field


def serve_transforms(comm) -> None:
    """The other ranks' side of `SharedTransforms`: transform the blocks of lines the first
    rank sends, until it broadcasts None (the draw is done)."""
    rank, ranks = comm.Get_rank(), comm.Get_size()
    while (header := comm.bcast(None, root=0)) is not None:
        axis, across, shape = header
        bounds = plane_ranges(shape[across], ranks)[rank]
        block = np.empty(
            tuple(bounds[1] - bounds[0] if d == across else n for d, n in enumerate(shape))
        )
        comm.Recv(block, source=0, tag=_TRANSFORM_TAG)
        comm.Send(
            scipy.fft.dct(block, type=1, axis=axis, overwrite_x=True), dest=0, tag=_TRANSFORM_TAG
        )


def release(comm) -> None:
    """Free the parallel PETSc objects nothing references any more (a finished batch's
    solver) now, on every rank of the group (collective). Why:
    petsc4py cannot destroy a PETSc object of a parallel communicator when Python collects
    it (the destruction is collective, and collection happens at different times on each
    rank), so it parks it until `PETSc.garbage_cleanup`; without this every batch's
    matrices, hierarchy and Krylov vectors stayed (80 MiB more per batch at 63^3 on two
    ranks, found in review)."""
    import gc

    from petsc4py import PETSc

    gc.collect()
    PETSc.garbage_cleanup(comm)


def split_groups(comm, ranks: int):
    """COMM_WORLD (an mpi4py communicator) split into groups of `ranks` contiguous ranks:
    (this rank's group as a PETSc communicator, the group's number, how many groups). The
    world's size must be a multiple of `ranks` (checked by the engine before)."""
    from petsc4py import PETSc

    number = comm.Get_rank() // ranks
    group = comm.Split(color=number, key=comm.Get_rank())
    return PETSc.Comm(group), number, comm.Get_size() // ranks


def solve_rows_across(
    recipe: Recipe, batch: int, indices: list[int], rows, recipe_sha256: str, family, comm
) -> ShardContent | None:
    """`pdegen.run.batch.solve_rows` with every sample solved by the ranks of `comm`
    together (module notes): every rank of the group calls it; the first gets the rows and
    the shard's content, the others return None. BLAS on one thread, as there."""
    with single_threaded_blas():
        return _solve_rows_across(recipe, batch, indices, rows, recipe_sha256, family, comm)


def _solve_rows_across(recipe, batch, indices, rows, recipe_sha256, family, comm):
    from pdegen.families import family_from_recipe
    from pdegen.run.batch import (
        _chain,
        _declared,
        keep_freed_memory,
        package_shard,
        record_sample,
        without_hugepage_advice,
    )
    from solvers.distributed import SlabLayout, gather_natural, send_planes

    without_hugepage_advice()
    keep_freed_memory()
    family = family or family_from_recipe(recipe)
    ranks, rank = comm.getSize(), comm.getRank()
    first_rank = rank == 0
    method, pc = solver_across_ranks(family, recipe.solver.method, recipe.solver.pc, ranks)
    chain = _chain(family, recipe.solver, method, pc, comm=comm)
    interior = family.interior_shape
    layout = SlabLayout(interior, ranks)
    node_planes = [(first, last + 2) for first, last in layout.planes]  # rows read a halo
    first, last = layout.planes[rank]
    sample_params, outcomes, extras = [], [], []
    A = None
    for position, index in enumerate(indices):
        sample = a = b = None
        if first_rank:
            with transforms_by(SharedTransforms(comm.tompi4py())):
                sample = family.sample(recipe.seed, index)
            comm.tompi4py().bcast(None, root=0)  # the draw is done: the others stop serving
            _declared(family, "inputs", family.input_names, sample.inputs)
            _declared(family, "parameters", family.params, sample.params)
            a, b = family.diffusion_system(sample)
            b = np.asarray(b, dtype=np.float64).reshape(interior)
        else:
            serve_transforms(comm.tompi4py())
        if A is None or not family.shared_operator:
            # one matrix for every sample (Poisson): assembled once, and the very same
            # object keeps the chain's preconditioner, as on one rank
            a_slab = send_planes(comm, a, node_planes, family.grid_shape[1:])
            A = diffusion_rows(a_slab, family.h, first, interior[0])
        b_slab = send_planes(comm, b, layout.planes, interior[1:])
        result = chain.solve(A, b_slab.ravel())
        x = gather_natural(comm, result.x, layout.sizes)
        if not first_rank:
            continue
        result.x = x
        fields = {"solution": family.solution_field(sample, x)}
        kept = (sample_params, outcomes, extras)
        record_sample(family, position, index, sample, fields, [result], rows, kept)
    pc = chain.pc
    chain = A = None  # the last references: `release` frees them on every rank
    release(comm)
    if not first_rank:
        return None
    return package_shard(
        recipe,
        family,
        batch,
        indices,
        sample_params,
        outcomes,
        extras,
        method,
        pc,
        recipe_sha256,
    )
