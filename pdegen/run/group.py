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

Why the draw stays on one rank: a distributed draw (a parallel FFT of the Gaussian random
field) would make the inputs depend on the decomposition unless written with great care,
and the draw is a small part of a large sample's time and memory (one field against the
solver's matrix hierarchy; docs/cluster.md, "One sample across ranks", gives the model).
"""

from __future__ import annotations

import numpy as np

from pdegen.dataset.shards import ShardContent
from pdegen.discretisation.operators import diffusion_rows
from pdegen.recipe.ranks import solver_across_ranks
from pdegen.recipe.schema import Recipe
from solvers.kernels import single_threaded_blas


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
    from pdegen.run.batch import SampleOutcome, _chain, _declared, package_shard
    from solvers.distributed import SlabLayout, gather_natural, send_planes

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
    for position, index in enumerate(indices):
        sample = a = b = None
        if first_rank:
            sample = family.sample(recipe.seed, index)
            _declared(family, "inputs", family.input_names, sample.inputs)
            _declared(family, "parameters", family.params, sample.params)
            a, b = family.diffusion_system(sample)
            b = np.asarray(b, dtype=np.float64).reshape(interior)
        a_slab = send_planes(comm, a, node_planes, family.grid_shape[1:])
        b_slab = send_planes(comm, b, layout.planes, interior[1:])
        A = diffusion_rows(a_slab, family.h, first, interior[0])
        result = chain.solve(A, b_slab.ravel())
        x = gather_natural(comm, result.x, layout.sizes)
        if not first_rank:
            continue
        fields = {"solution": family.solution_field(sample, x)}
        _declared(family, "outputs", family.output_names, fields)
        result.x = x
        outcome = SampleOutcome.from_results([result])
        extras.append(family.sample_stats([result]))
        rows(
            position,
            index,
            {name: sample.inputs[name] for name in family.input_names},
            {name: fields[name] for name in family.output_names},
            outcome.converged,
        )
        sample_params.append(sample.params)
        outcomes.append(outcome)
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
        chain.pc,
        recipe_sha256,
    )
