"""File size and loader throughput per storage option, on the FNO benchmark's 421 x 421 Darcy.

Every option generates the same samples (`pdegen generate recipes/darcy421.yaml --samples N
--set output.dtype=... --set output.compression=...`, serial engine, so the solves are the
same), then reads every sample through `ds[i]` (best of `--repeat` passes, page cache warm:
what an epoch after the first sees) and through `ds.as_xy()` (float32 channel-first pairs).
Ratios are against float64 uncompressed, measured in the same run.

    .venv/bin/python benchmarks/storage.py [--samples 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tables import save

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = [(d, c) for d in ("float64", "float32") for c in ("none", "gzip", "lzf")]


def generate(out: Path, samples: int, dtype: str, compression: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pdegen.cli",
            "generate",
            str(ROOT / "recipes/darcy421.yaml"),
            "--engine",
            "serial",
            "--quiet",
            "--out",
            str(out),
            "--samples",
            str(samples),
            "--set",
            f"output.dtype={dtype}",
            "--set",
            f"output.compression={compression}",
            "--set",
            "output.shard_size=16",
            "--no-figures",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def read_rate(path: Path, repeat: int, as_xy: bool) -> float:
    from pdegen import open_dataset

    best = float("inf")
    with open_dataset(path) as ds:
        view = ds.as_xy() if as_xy else ds
        for _ in range(repeat):
            start = time.perf_counter()
            for i in range(len(view)):
                view[i]
            best = min(best, time.perf_counter() - start)
        return len(view) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dtype, compression in OPTIONS:
            out = Path(tmp) / f"{dtype}-{compression}"
            generate(out, args.samples, dtype, compression)
            size = sum(p.stat().st_size for p in out.glob("shard-*.h5"))
            rows.append(
                {
                    "dtype": dtype,
                    "compression": compression,
                    "mb_per_sample": size / args.samples / 1e6,
                    "samples_per_s": read_rate(out, args.repeat, as_xy=False),
                    "xy_per_s": read_rate(out, args.repeat, as_xy=True),
                }
            )
    base = rows[0]
    lines = [
        f"421 x 421 Darcy (2 fields per sample), {args.samples} samples, best of {args.repeat} "
        "warm passes",
        "",
        "| dtype | compression | MB per sample | size vs float64 | ds[i] samples/s "
        "| as_xy() samples/s | read vs float64 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['compression']} | {r['mb_per_sample']:.2f} | "
            f"{r['mb_per_sample'] / base['mb_per_sample']:.2f} | {r['samples_per_s']:.0f} | "
            f"{r['xy_per_s']:.0f} | {r['samples_per_s'] / base['samples_per_s']:.2f} |"
        )
    save("storage", "\n".join(lines), {"rows": rows, "samples": args.samples})


if __name__ == "__main__":
    main()
