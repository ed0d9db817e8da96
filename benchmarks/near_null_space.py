"""Whether elasticity's near-null space, and the solutions GAMG gets from it, depend on where
earlier objects lie in memory.

PETSc's `MatNullSpaceCreateRigidBody` orthonormalises the rotation modes with VecMDot, which
takes BLAS GEMV over vectors that happen to lie at one stride in memory and its own loop
otherwise: the same coordinates can give modes that differ in the last bits, depending on the
heap. `solvers.petsc.rigid_body_modes` builds them with numpy. For each builder, `--states`
heap states (a random handful of PETSc vectors allocated, half of them freed again, before each
call, as earlier work in a worker leaves them) and the distinct modes they gave; each distinct
set of modes then serves CG + GAMG on one elasticity system (the engines test's case), and the
table shows how far its solution is from the first set's.

    python benchmarks/near_null_space.py [--states 300] [--set grid.n=9 ...]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from petsc4py import PETSc
from tables import save

import solvers.sequence
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import load_recipe
from solvers.petsc import rigid_body_modes
from solvers.sequence import ChainSolver

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "elasticity.yaml"
#: the engines test's case (tests/test_elasticity.py)
SETTINGS = ["seed=7", "grid.n=9", "problem.clamped=x0 y1", "problem.body_force=random"]


def petsc_rigid_body_modes(coordinates: np.ndarray) -> PETSc.NullSpace:
    """PETSc's own construction (what the chain used before `rigid_body_modes`)."""
    x = np.ascontiguousarray(coordinates, dtype=PETSc.ScalarType)
    vec = PETSc.Vec().createSeq(x.size, bsize=x.shape[1])
    vec.setArray(x.ravel())
    return PETSc.NullSpace().createRigidBody(vec)


def modes_in_heap_states(build, coordinates, states: int) -> dict[str, tuple[int, object]]:
    """Distinct results of `build(coordinates)` over `states` heap states: digest ->
    (count, null space)."""
    rng = np.random.default_rng(1)
    seen: dict[str, list] = {}
    for _ in range(states):
        sizes = rng.integers(1, 4 * coordinates.size, rng.integers(0, 6))
        junk = [PETSc.Vec().createSeq(int(size)) for size in sizes]
        space = build(coordinates)
        bits = np.array([v.getArray(readonly=True) for v in space.getVecs()]).tobytes()
        entry = seen.setdefault(hashlib.sha256(bits).hexdigest()[:12], [0, space])
        entry[0] += 1
        for vec in junk[::2]:
            vec.destroy()
    return {digest: (count, space) for digest, (count, space) in seen.items()}


def solve_with(space, A, b, coordinates):
    solvers.sequence.rigid_body_modes = lambda _: space
    try:
        return ChainSolver("cg", "gamg", rigid_body_coordinates=coordinates).solve(A, b)
    finally:
        solvers.sequence.rigid_body_modes = rigid_body_modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=300)
    parser.add_argument("--set", nargs="*", default=SETTINGS)
    args = parser.parse_args()
    recipe = load_recipe(RECIPE, settings=args.set)
    family = family_from_recipe(recipe)
    coordinates = family.rigid_body_coordinates()
    A, b = family.system(family.sample(recipe.seed, 0))
    lines = [
        f"elasticity {' '.join(args.set)}: {coordinates.shape[0]} nodes, {args.states} heap "
        f"states per builder; CG + GAMG on sample 0 (seed {recipe.seed})",
        "",
        "| near-null space | modes | heap states | max diff. of modes | max diff. of x | its |",
        "|---|---|---|---|---|---|",
    ]
    data = {}
    for label, build in (
        ("PETSc's MatNullSpaceCreateRigidBody", petsc_rigid_body_modes),
        ("solvers.petsc.rigid_body_modes", rigid_body_modes),
    ):
        found = modes_in_heap_states(build, coordinates, args.states)
        first_modes = first_x = None
        for digest, (count, space) in found.items():
            modes = np.array([v.getArray(readonly=True) for v in space.getVecs()])
            result = solve_with(space, A, b, coordinates)
            first_modes = modes if first_modes is None else first_modes
            first_x = result.x if first_x is None else first_x
            lines.append(
                f"| {label} | {digest} | {count} | {np.abs(modes - first_modes).max():.1e} "
                f"| {np.abs(result.x - first_x).max():.1e} | {result.iterations} |"
            )
            data.setdefault(label, {})[digest] = count
    save("near_null_space", "\n".join(lines), data)


if __name__ == "__main__":
    main()
