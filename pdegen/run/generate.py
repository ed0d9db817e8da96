"""recipe -> plan -> batches on an engine -> shards -> index, resuming from finished shards
and from the finished batches (parts) of shards not yet merged."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pdegen.dataset.shards import (
    FAILURES_NAME,
    INDEX_NAME,
    PARTS_DIR,
    atomic_path,
    part_path,
    read_index,
    remove_finished_temporaries,
    remove_stale_temporaries,
    shard_name,
    verified_entry,
    write_index,
)
from pdegen.dataset.splits import assign_splits
from pdegen.dataset.statistics import finish, merge_all
from pdegen.errors import PdegenError
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import Recipe
from pdegen.recipe.sharding import with_resolved_sizes
from pdegen.run.assemble import Assembler
from pdegen.run.batch import solver_note
from pdegen.run.engines import BatchFailure, Job, make_engine
from pdegen.run.incidents import Incident, counts, lost_workers
from pdegen.run.lock import DatasetLock
from pdegen.run.plan import PLAN_NAME, Plan, load_or_make_plan, read_plan, recipe_sha256
from pdegen.run.progress import Progress


@dataclass
class Summary:
    directory: Path
    samples: int
    unconverged: int
    resumed_samples: int
    seconds: float
    solve_seconds: float
    ordering_seconds: float
    mean_iterations: float
    engine: str = "serial"
    workers: int = 1
    peak_rss_mib: float = 0.0
    #: one line each where the solver ran otherwise than named (`pdegen.run.batch.solver_note`)
    notes: tuple[str, ...] = ()
    #: what the run survived: workers lost, batch attempts retried (`pdegen.run.incidents`)
    incidents: tuple[Incident, ...] = ()
    #: what /stats/iterations counts: "iterations", or a spectral family's "time steps"
    counted: str = "iterations"

    @property
    def samples_per_second(self) -> float:
        solved = self.samples - self.resumed_samples
        return solved / self.seconds if self.seconds > 0 else float("nan")

    def _lost(self) -> str:
        lost = lost_workers(self.incidents)
        return f", {lost} lost on the way" if lost else ""

    def lines(self) -> list[str]:
        out = [
            f"dataset: {self.directory}",
            f"samples: {self.samples} ({self.unconverged} did not converge and are flagged)",
            f"time: {self.seconds:.2f} s ({self.samples_per_second:.1f} samples/s on "
            f"{self.engine} with {self.workers} worker(s){self._lost()}; solves "
            f"{self.solve_seconds:.2f} s, ordering {self.ordering_seconds:.2f} s)",
            f"{self.counted} per sample: {self.mean_iterations:.1f}",
        ]
        if self.peak_rss_mib:
            out.append(f"memory: peak RSS {self.peak_rss_mib:.0f} MiB in the busiest worker")
        if self.resumed_samples:
            out.append(f"resumed: {self.resumed_samples} samples were already complete")
        if self.incidents:
            out.append(f"survived: {counts(self.incidents)}; the data are whole (each batch")
            out[-1] += " written once, atomically, by the attempt that finished it)"
            out += [f"  {incident.line()}" for incident in self.incidents]
        out += [f"note: {note}" for note in self.notes]
        return out


def _other_recipe_advice(directory: Path, recipe: Recipe) -> str:
    """What to do about a directory of another recipe. When its shards' recipe differs from
    this one only in how it was cut (`output.shard_size`, `solver.batch_size`: a recipe
    without them gets them chosen, and the choice changed twice) or in
    `solver.ranks_per_sample` (it changes the bits, so it is part of the recipe), say which
    flags resume or reuse it."""
    advice = "choose another --out, or delete it"
    stored = sorted(directory.glob("shard-*.h5")) or sorted(directory.glob(f"{PARTS_DIR}/part-*"))
    for shard in stored[:1]:
        try:
            with h5py.File(shard, "r") as f:
                theirs = json.loads(f.attrs["recipe"])
            their_cut = _cut_of(theirs)
        except (OSError, KeyError, ValueError, TypeError, AttributeError):
            return advice
        mine = json.loads(recipe.to_json())
        my_cut = _cut_of(mine)
        if theirs != mine or their_cut == my_cut or their_cut[0] is None:
            return advice
        (size, batch, ranks), flags = their_cut, []
        if size != my_cut[0]:
            flags.append((f"it was cut in shards of {size} samples", f"--shard-size {size}"))
        if batch != my_cut[1] and not (batch == size != my_cut[0]):  # else --shard-size says it
            flags.append((f"it was cut in batches of {batch} samples", f"--batch-size {batch}"))
        if ranks != my_cut[2]:
            flags.append(
                (f"it was solved by {ranks} rank(s) per sample", f"--ranks-per-sample {ranks}")
            )
        said = " and ".join(why for why, _ in flags)
        return f"{said}: rerun with {' '.join(flag for _, flag in flags)}"
    return advice


def _cut_of(data: dict) -> tuple:
    """(shard size, batch size, ranks per sample) taken out of a stored recipe's data, with
    the defaults `Recipe.to_dict` leaves out (a batch the size of its shard, one rank)."""
    size = data["output"].pop("shard_size")
    return size, data["solver"].pop("batch_size", size), data["solver"].pop("ranks_per_sample", 1)


def check_same_recipe(directory: Path, recipe: Recipe) -> None:
    """Refuse a directory that holds any part of another recipe's dataset: its index, its plan
    (an interrupted run) or one of its shards. Reads only; one line naming what was found."""
    if not directory.is_dir():
        return
    sha = recipe_sha256(recipe)

    def refuse(what: str) -> PdegenError:  # the advice reads a shard: only once refused
        return PdegenError(f"{directory}: {what} ({_other_recipe_advice(directory, recipe)})")

    if (directory / INDEX_NAME).is_file():
        try:
            same = read_index(directory).get("recipe_sha256") == sha
        except (OSError, ValueError, AttributeError):
            same = False
        if not same:
            raise refuse("holds a dataset made from a different recipe")
    if (directory / PLAN_NAME).exists() and read_plan(directory / PLAN_NAME).recipe_sha256 != sha:
        raise refuse(f"holds an unfinished dataset ({PLAN_NAME}) of a different recipe")
    for shard in sorted(directory.glob("shard-*.h5")):
        try:
            with h5py.File(shard, "r") as f:
                theirs = f.attrs.get("recipe_sha256")
        except OSError:
            continue  # unreadable under a final name: damaged, and solved again on resume
        if theirs is not None and theirs != sha:
            raise refuse(f"{shard.name} belongs to a different recipe")


def prepare_directory(directory: Path, recipe: Recipe) -> None:
    """Check the target before writing anything; create it. One-line errors."""
    if directory.exists() and not directory.is_dir():
        raise PdegenError(f"{directory}: output path exists and is not a directory")
    check_same_recipe(directory, recipe)
    parent = directory.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise PdegenError(
            f"{directory}: cannot create the output directory ({parent} is not a writable "
            "directory)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PdegenError(
            f"{directory}: cannot create the output directory ({err.strerror})"
        ) from None


def _plan_job(
    recipe: Recipe, directory: Path, retries: int, lock: DatasetLock
) -> tuple[Job, dict[int, dict], dict[int, dict]]:
    """Root only: take the dataset's lock, then the plan, the shards already complete and
    the finished parts of the others (each verified). File-system failures become one-line
    errors naming the path."""
    prepare_directory(directory, recipe)
    try:
        lock.acquire()
        check_same_recipe(directory, recipe)  # again under the lock: a racing run may have won
        remove_stale_temporaries(directory)
        remove_stale_temporaries(directory / PARTS_DIR)
        sha = recipe_sha256(recipe)
        plan = load_or_make_plan(directory, recipe, family_from_recipe(recipe))
        old = {}
        if (directory / INDEX_NAME).is_file():
            old = {e["batch"]: e for e in read_index(directory)["shards"]}
        complete, parts = {}, {}
        for shard, batches in enumerate(plan.shards):
            indices = plan.shard_indices(shard)
            entry = verified_entry(directory, shard, indices, sha, old.get(shard))
            if entry is not None:
                complete[shard] = entry
            for batch in () if plan.whole_shard(shard) else batches:
                path = part_path(directory, batch)
                if shard in complete:  # merged already: its parts, if any are left, are moot
                    path.unlink(missing_ok=True)
                elif part := verified_entry(directory, batch, plan.batches[batch], sha, None, path):
                    parts[batch] = part
    except OSError as err:
        raise PdegenError(f"{directory}: {err.strerror or err} ({err.filename or ''})") from None
    todo = [
        b for b in range(len(plan.batches)) if plan.shard_of(b) not in complete and b not in parts
    ]
    # absolute: the workers of an external cluster run in directories of their own
    return Job(recipe, directory.absolute(), plan, todo, sha, retries), complete, parts


def check_rank_share(recipe: Recipe, comm) -> None:
    """Under MPI with several ranks per sample, refuse (on every rank alike, before anything
    is written) a job whose ranks on some node need more than that node's memory: each
    rank's estimate by its role (a group's first rank holds the whole sample, the others
    their share of the solver; world rank 0 also plans), summed over the ranks on the node.
    It names the smallest ranks per sample, among the divisors of the job's rank count, that
    would fit. Why here: only the running job knows which ranks share a node; recipe loading
    checks one process against the whole machine (`pdegen.recipe.resources`)."""
    ranks = recipe.solver.ranks_per_sample
    if ranks == 1:
        return
    from mpi4py import MPI

    from pdegen.recipe.resources import machine_memory, rank_need

    rank, size = comm.Get_rank(), comm.Get_size()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    memory = machine_memory()

    def worst(k: int) -> tuple[float, float, int, float]:
        """(the largest excess over all nodes, that node's need, ranks, memory) with k."""
        trial = recipe.replace(solver=dataclasses.replace(recipe.solver, ranks_per_sample=k))
        need = node.allreduce(rank_need(trial, rank % k == 0, rank == 0), op=MPI.SUM)
        mine = (need - memory, need, node.Get_size(), memory) if memory else (-1.0, 0.0, 0, 0.0)
        return comm.allreduce(mine, op=MPI.MAX)

    try:
        excess, need, on_node, total = worst(ranks)
        if excess <= 0:
            return
        fits = next(
            (k for k in range(ranks + 1, size + 1) if size % k == 0 and worst(k)[0] <= 0), None
        )
    finally:
        node.Free()
    gib = 1024**3
    advice = (
        f"--ranks-per-sample {fits} fits (a divisor of the job's {size} ranks)"
        if fits is not None
        else "no ranks per sample that divides the job's ranks fits: run fewer ranks per node"
    )
    raise PdegenError(
        f"solver.ranks_per_sample: {ranks}: the {on_node} ranks on a node need about "
        f"{need / gib:.3g} GiB for this recipe and the node has {total / gib:.3g} GiB: {advice}"
    )


def write_dataset_card(directory: Path, figures: bool) -> Path:
    """README.md for the finished dataset, embedding `pdegen show`'s figures when asked."""
    from pdegen.dataset.card import write_card

    drawn: list[Path] = []
    if figures:
        from pdegen.dataset.show import write_figures

        drawn = write_figures(directory, directory / "figures")
    return write_card(directory, drawn)


@dataclass
class RootFailure:
    """What the root sends the other MPI ranks instead of a plan when planning failed, so that
    they stop too instead of waiting in a collective that never comes."""

    message: str


def write_failure_report(
    directory: Path, plan: Plan, failed: list[BatchFailure], incidents: tuple[Incident, ...] = ()
) -> Path:
    """Every failed batch with its samples, attempts and the last attempt's full traceback,
    after what the run survived on the way."""
    path = directory / FAILURES_NAME
    parts = [
        f"{len(failed)} batch(es) failed at {time.strftime('%Y-%m-%d %H:%M:%S')}; "
        "finished shards are kept, rerun to retry the rest\n"
    ]
    if incidents:
        parts.append(f"\nthe run survived: {counts(incidents)}\n")
        parts += [f"  {incident.line()}\n" for incident in incidents]
    for failure in sorted(failed, key=lambda f: f.batch):
        shard = plan.shard_of(failure.batch)
        where = shard_name(shard) if plan.whole_shard(shard) else f"a part of {shard_name(shard)}"
        parts.append(
            f"\n== batch {failure.batch} ({where}), samples "
            f"{failure.indices}, {failure.attempts} attempts\n"
            f"{failure.traceback or failure.error}\n"
        )
    with atomic_path(path) as tmp:
        tmp.write_text("".join(parts))
    return path


def generate(
    recipe: Recipe,
    out: str | Path | None = None,
    progress: bool = True,
    engine: str = "serial",
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = 2,
    card: bool = True,
    figures: bool = False,
) -> Summary | None:
    """Generate (or finish) the dataset a recipe describes.

    A finished dataset gets its card (README.md, `pdegen.dataset.card`) unless `card` is False, with
    the figures of `pdegen show` in `figures/` when `figures` is True (as `pdegen generate`
    does unless told --no-figures: drawing takes seconds, which library callers may not want).

    Returns the summary on the root process (None on other MPI ranks). Raises PdegenError
    naming every batch that failed after its retries; the finished shards are kept and a rerun
    solves only what is missing.
    """
    start = time.perf_counter()
    recipe = with_resolved_sizes(recipe)  # a recipe built in Python stores its cut too
    directory = Path(out) if out is not None else recipe.dataset_dir()
    lock = DatasetLock(directory)
    ranks = recipe.solver.ranks_per_sample
    if ranks > 1 and engine != "mpi":
        raise PdegenError(
            f"solver.ranks_per_sample: {ranks} ranks per sample run under the mpi engine only "
            f"(mpirun -n P pdegen generate ... --engine mpi, P a multiple of {ranks}), not {engine}"
        )
    with make_engine(engine, workers, scheduler) as runner, contextlib.ExitStack() as stack:
        if ranks > 1 and runner.workers % ranks:  # every rank raises alike: none waits
            raise PdegenError(
                f"solver.ranks_per_sample: {ranks} does not divide the job's {runner.workers} "
                f"ranks (run a multiple of {ranks} ranks)"
            )
        if engine == "mpi":
            check_rank_share(recipe, runner.comm)
        planned = None
        if runner.is_root:
            stack.callback(lock.release)
            try:
                planned = _plan_job(recipe, directory, retries, lock)
            except Exception as err:  # any failure, not only ours: the other ranks must stop
                root_error = err
                planned = RootFailure(
                    str(err) if isinstance(err, PdegenError) else f"rank 0 failed: {err!r}"
                )
        planned = runner.broadcast(planned)
        if isinstance(planned, RootFailure):
            if runner.is_root:
                raise root_error
            raise PdegenError(planned.message)
        job, complete, parts = planned
        plan = job.plan
        resumed = sum(len(plan.shard_indices(s)) for s in complete)
        resumed += sum(len(plan.batches[b]) for b in parts)
        bar = Progress(
            recipe.samples, initial=resumed, label=recipe.name, enabled=progress and runner.is_root
        )
        assembler = Assembler(directory, plan, complete, parts) if runner.is_root else None

        def on_done(outcome) -> None:  # root only: every engine reports there
            assembler.batch_done(outcome.batch, outcome.entry)
            bar.advance(outcome.samples)

        try:
            done, failed = runner.run(job, on_done)
            if runner.is_root:
                assembler.finish()  # shards whose parts a resumed run found all finished
        finally:
            bar.close()
            if runner.is_root:  # whatever happened: no writer's leftover of a finished file
                _remove_leftovers(directory, plan, complete)
        if not runner.is_root:
            return None
        incidents = tuple(runner.incidents)
        assembler.raise_failures()
        if failed:
            report = write_failure_report(directory, plan, failed, incidents)
            lines = "; ".join(f.line() for f in failed)
            raise PdegenError(
                f"{len(failed)} of {len(job.plan.batches)} batches failed ({lines}); "
                f"finished shards are kept, rerun to retry the rest (tracebacks in {report})"
            )
        earlier = []
        if (directory / INDEX_NAME).is_file():  # a finished dataset run again: keep its record
            earlier = list(read_index(directory).get("incidents", []))
        entries = [complete[shard] for shard in range(len(plan.shards))]
        fractions = recipe.output.splits.fractions()
        write_index(
            directory,
            {
                "dataset": recipe.name,
                "family": recipe.family,
                "recipe_sha256": job.recipe_sha256,
                "samples": recipe.samples,
                "ordering_seconds": job.plan.ordering_seconds,
                "chain_length": job.plan.chain_length,
                "split_fractions": fractions,
                "splits": assign_splits(recipe.seed, range(recipe.samples), fractions),
                # merged in batch order: the same numbers from every engine and on resume
                "field_stats": {
                    name: finish(moments)
                    for name, moments in merge_all(e["field_stats"] for e in entries).items()
                },
                "shards": entries,
                # what the runs that wrote it survived, one line each (`pdegen.run.incidents`)
                "incidents": earlier + [incident.line() for incident in incidents],
            },
        )
        (directory / FAILURES_NAME).unlink(missing_ok=True)  # an earlier run's report is moot
        seconds = time.perf_counter() - start  # the card is not part of the generation rate
        if card:
            write_dataset_card(directory, figures)
    peak = max((o.peak_rss_mib for o in done), default=0.0)
    summary = _summarise(directory, resumed, seconds, job.plan, runner, peak)
    notes = [
        solver_note(recipe),
        idle_workers_note(len(job.todo), runner.workers // recipe.solver.ranks_per_sample),
    ]
    notes = tuple(note for note in notes if note)
    return dataclasses.replace(summary, notes=notes, incidents=incidents)


def _remove_leftovers(directory: Path, plan: Plan, complete: dict[int, dict]) -> None:
    """Delete the writers' temporaries of every finished file, whichever host left them, and
    this host's dead writers' others; the parts' directory once it is empty."""
    shards = [directory / shard_name(s) for s in range(len(plan.shards))]
    parts = [part_path(directory, b) for b in range(len(plan.batches))]
    finished = [path for s, path in enumerate(shards) if s in complete or path.is_file()]
    finished += [
        path for b, path in enumerate(parts) if plan.shard_of(b) in complete or path.is_file()
    ]
    remove_finished_temporaries(finished)
    remove_stale_temporaries(directory)
    parts_dir = directory / PARTS_DIR
    if parts_dir.is_dir():
        if len(complete) == len(plan.shards):  # every shard merged: any part is moot
            for leftover in parts_dir.glob("*part-*"):
                leftover.unlink(missing_ok=True)
        remove_stale_temporaries(parts_dir)
        with contextlib.suppress(OSError):
            parts_dir.rmdir()  # only when empty


def idle_workers_note(batches: int, workers: int) -> str | None:
    """One line when a run had fewer batches to solve than workers (some had nothing to do)."""
    if not 0 < batches < workers:
        return None
    return (
        f"{batches} batch{'es' * (batches > 1)} for {workers} workers: "
        f"{workers - batches} had nothing to do; a smaller solver.batch_size (--batch-size) "
        "cuts more batches"
    )


def _summarise(
    directory: Path, resumed: int, seconds: float, plan: Plan, runner, peak: float
) -> Summary:
    from pdegen.dataset.loader import open_dataset

    with open_dataset(directory, include_unconverged=True) as ds:
        stats = ds.stats()
    return Summary(
        directory,
        len(stats["converged"]),
        int(np.sum(~stats["converged"])),
        resumed,
        seconds,
        float(np.sum(stats["seconds"])),
        plan.ordering_seconds,
        float(np.mean(stats["iterations"])),
        runner.name,
        runner.workers,
        peak,
        counted="time steps" if "spectral_tail" in stats else "iterations",
    )


__all__ = ["FAILURES_NAME", "Summary", "check_same_recipe", "generate", "prepare_directory"]
