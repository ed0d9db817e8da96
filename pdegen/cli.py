"""`pdegen generate RECIPE`, `inspect PATH`, `show PATH`, `check PATH` and `export PATH`.

User mistakes (PdegenError) become one line on stderr and exit status 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from pathlib import Path

import numpy as np

from pdegen.errors import PdegenError
from pdegen.run.engines import DEFAULT_ENGINE, ENGINES, engine_for


def _generate(args: argparse.Namespace) -> None:
    from pdegen.recipe.schema import load_recipe
    from pdegen.run.generate import generate

    # the flags are settings like --set's, applied before the recipe is checked, so that its
    # checks (the memory estimate among them) see them: a sample too large for one process
    # is the reason to ask for --ranks-per-sample
    flags = {
        "output.shard_size": args.shard_size,
        "solver.batch_size": args.batch_size,
        "solver.ranks_per_sample": args.ranks_per_sample,
    }
    settings = [
        *args.set,
        *(f"{field}={value}" for field, value in flags.items() if value is not None),
    ]
    recipe = load_recipe(args.recipe, settings=settings, samples=args.samples, seed=args.seed)
    if args.workers is not None and args.workers < 1:
        raise PdegenError(f"--workers: {args.workers} is out of range (must be at least 1)")
    engine = engine_for(args.engine, args.scheduler)
    if args.scheduler and engine != "dask":
        raise PdegenError(
            f"--scheduler: a Dask scheduler's address, only with the dask engine (not {engine})"
        )
    summary = generate(
        recipe,
        out=args.out,
        progress=not args.quiet,
        engine=engine,
        workers=args.workers,
        scheduler=args.scheduler,
        retries=args.retries,
        figures=not args.no_figures,
    )
    if summary is not None:  # None on MPI ranks other than 0
        print("\n".join(summary.lines()))


def _inspect(args: argparse.Namespace) -> None:
    from pdegen.dataset.loader import open_dataset

    path = Path(args.path)
    if not path.exists():
        raise PdegenError(f"{path}: no such dataset directory")
    with open_dataset(path, include_unconverged=True) as ds:
        stats = ds.stats()
        attrs = ds.attrs()
        recipe = json.loads(attrs.get("recipe", "{}"))
        versions = json.loads(attrs.get("versions", "{}"))
        first = ds[0] if len(ds) else {}
        bad = int(np.sum(~stats["converged"])) if len(ds) else 0
        print(
            f"dataset: {path} ({attrs.get('family', '?')}, format "
            f"{attrs.get('format_version', '?')})"
        )
        print(
            f"samples: {len(ds)} in {len(ds.index['shards'])} shards "
            f"({bad} flagged as not converged)"
        )
        axes = ds.axes  # the family's declared axes, as the shards label them
        for name, value in first.items():
            if name in axes:
                print(
                    f"  {name}: shape {tuple(value.shape)} per sample, axes "
                    f"({', '.join(axes[name])}), {value.dtype}"
                )
        if recipe:
            s = recipe["solver"]
            print(f"problem: {json.dumps(recipe['problem'])}")
            print(f"grid: {json.dumps(recipe['grid'])}; seed {recipe['seed']}")
            pc = attrs.get("pc", s["pc"])
            print(
                f"solver: {attrs.get('method')} (recipe: {s['method']}), pc {pc}, "
                f"rtol {s['rtol']:g}, ordering {s['ordering']}"
            )
        if ds.splits:
            counts = ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items())
            print(f"splits: {counts} (of all {ds.index.get('samples', '?')} samples)")
        if recipe:
            out = recipe["output"]
            print(f"storage: {out['dtype']}, compression {out['compression']}")
        for name, st in ds.index.get("field_stats", {}).items():
            if st.get("count"):
                print(
                    f"field {name} (train): mean {st['mean']:.6g}, std {st['std']:.6g}, "
                    f"min {st['min']:.6g}, max {st['max']:.6g}"
                )
        for name, values in ds.params().items() if len(ds) else ():
            if name != "index":
                print(
                    f"parameter {name}: min {values.min():.6g}, max {values.max():.6g}, "
                    f"mean {values.mean():.6g}"
                )
        if len(ds):
            its, res, sec = stats["iterations"], stats["residual"], stats["seconds"]
            spectral = "spectral_tail" in stats  # a periodic family: steps, no linear system
            counted = "internal time steps" if spectral else "iterations"
            print(f"{counted}: mean {its.mean():.1f}, min {its.min()}, max {its.max()}")
            if "newton_iterations" in stats:  # the Newton families: iterations are linear ones
                newton = stats["newton_iterations"]
                print(
                    f"Newton iterations: mean {newton.mean():.1f}, min {newton.min()}, "
                    f"max {newton.max()}"
                )
            if spectral:
                tail = stats["spectral_tail"]
                print(f"spectral tail: median {np.nanmedian(tail):.2e}, max {np.nanmax(tail):.2e}")
            else:
                print(f"true relative residual: max {res.max():.2e}")
            print(f"solve time: {sec.sum():.2f} s in all, {sec.mean() * 1e3:.1f} ms per sample")
        print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))


def _show(args: argparse.Namespace) -> None:
    from pdegen.dataset.show import show_command  # matplotlib only for this subcommand

    show_command(args.path, args.out, args.samples)


def _check(args: argparse.Namespace) -> int:
    from pdegen.dataset.check import run_check

    return run_check(args.path, deep=args.deep, seed=args.seed)


def _export(args: argparse.Namespace) -> None:
    from pdegen.dataset.export import check_format, export_dataset

    check_format(args.format, "--format")
    if args.out is None:
        raise PdegenError("--out: missing (the new directory to write; it must not exist)")
    summary = export_dataset(args.path, args.out, args.format)
    print("\n".join(summary.lines()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pdegen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate (or resume) the dataset a recipe describes")
    gen.add_argument("recipe", help="recipe YAML file (see recipes/)")
    gen.add_argument("--out", help="dataset directory (default: <output.dir>/<name>)")
    gen.add_argument("--samples", type=int, help="override the recipe's sample count")
    gen.add_argument("--seed", type=int, help="override the recipe's seed")
    gen.add_argument(
        "--engine",
        choices=tuple(ENGINES),
        help=f"where batches run (default: {DEFAULT_ENGINE}; dask with --scheduler): "
        + "; ".join(f"{k}: {e.summary}" for k, e in ENGINES.items()),
    )
    gen.add_argument(
        "--workers", type=int, help="worker processes of the local or dask engine (default: cores)"
    )
    gen.add_argument("--scheduler", help="address of an existing Dask scheduler")
    gen.add_argument(
        "--shard-size",
        type=int,
        help="samples per shard, one HDF5 file (default: the recipe's, else as many as keep a "
        "file within 128 MiB); given alone, each shard is one batch",
    )
    gen.add_argument(
        "--batch-size",
        type=int,
        help="the most samples a worker solves in a row, carrying its solver from each to the "
        "next (default: the recipe's, else samples / 16, so that 16 batches keep workers busy)",
    )
    gen.add_argument(
        "--ranks-per-sample",
        type=int,
        metavar="K",
        help="MPI ranks that solve each sample together (the mpi engine; default: the "
        "recipe's solver.ranks_per_sample, 1)",
    )
    gen.add_argument("--retries", type=int, default=2, help="retries of a failed batch")
    gen.add_argument("--quiet", action="store_true", help="no progress display")
    gen.add_argument(
        "--no-figures",
        action="store_true",
        help="write the dataset card without the figures of `pdegen show` (saves seconds)",
    )
    gen.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any recipe field by its dotted path (e.g. grid.n=255), repeatable",
    )
    gen.set_defaults(run=_generate)
    ins = sub.add_parser("inspect", help="summarise a generated dataset")
    ins.add_argument("path", help="dataset directory")
    ins.set_defaults(run=_inspect)
    show = sub.add_parser("show", help="PNG figures of a dataset: samples, solver statistics")
    show.add_argument("path", help="dataset directory")
    show.add_argument("--out", help="directory for the PNGs (default: <dataset>/figures)")
    show.add_argument("--samples", type=int, default=4, help="samples to draw (default 4)")
    show.set_defaults(run=_show)
    chk = sub.add_parser(
        "check", help="verify a dataset without trusting it (exit 1 and one line per problem)"
    )
    chk.add_argument("path", help="dataset directory")
    chk.add_argument(
        "--deep",
        type=int,
        metavar="K",
        help="also re-assemble K random converged samples from their stored inputs and check "
        "the stored solution's residual (docs/format.md: the float32 bound)",
    )
    chk.add_argument("--seed", type=int, default=0, help="seed of the --deep choice (default 0)")
    chk.set_defaults(run=_check)
    exp = sub.add_parser("export", help="write a dataset in another library's layout")
    exp.add_argument("path", help="dataset directory")
    exp.add_argument("--format", help="the layout: the-well (The Well's WellDataset)")
    exp.add_argument("--out", help="the directory to write (must not exist yet)")
    exp.set_defaults(run=_export)
    return parser


def _is_secondary_mpi_rank(args: argparse.Namespace) -> bool:
    if getattr(args, "engine", None) != "mpi":
        return False
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank() != 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "generate" and args.engine != "mpi":
        # SIGTERM (kill, scancel, a container stopping) ends a run as Ctrl-C does: workers
        # stopped, no temporary left, finished shards kept (mpirun handles its ranks itself).
        # After PETSc's initialisation, whose own handler would abort on SIGTERM.
        from petsc4py import PETSc  # noqa: F401

        signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = args.run(args)  # None, or the exit status of a command that judges (check)
    except PdegenError as err:
        if not _is_secondary_mpi_rank(args):  # every rank sees the same error: say it once
            print(f"pdegen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = "finished shards are kept; rerun to resume"
        if args.command == "export":
            kept = "nothing was exported"  # the export's temporary directory is removed
        print(f"pdegen: interrupted ({kept})", file=sys.stderr)
        _abort_other_mpi_ranks(args, 130)
        return 130
    except Exception:
        if getattr(args, "engine", None) != "mpi":
            raise  # a bug: keep its traceback
        traceback.print_exc()
        _abort_other_mpi_ranks(args, 1)
        return 1
    return status or 0


def _abort_other_mpi_ranks(args: argparse.Namespace, code: int) -> None:
    """End every rank now. An unexpected error on one rank leaves the others waiting in a
    collective or a receive that never completes; only an abort releases them."""
    if getattr(args, "engine", None) != "mpi":
        return
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(code)


if __name__ == "__main__":
    sys.exit(main())
