"""The compiled Krylov loops (csrc/krylov.c): built once against the installed PETSc, loaded
with ctypes.

Why compiled: an iteration at 10^4 unknowns is about 0.1 ms of arithmetic, and a dozen
Python-level calls per iteration cost as much again, which is the whole margin recycling has
over PETSc's C GMRES and CG (measured in docs/benchmarks.md). Why ctypes and not a build
backend: the library links the PETSc of the running environment (a pip-installed wheel), which
is only known once that environment exists; `scripts/install.sh` calls `build()` right after
installing, and a missing library is built on first use.

The build goes to a cache keyed by the source and PETSc's location, written under a temporary
name and renamed, so concurrent workers or ranks never load a half-written file. Where no
compiler is found the solvers fall back to their Python loops (same arithmetic, slower), and
`status()` says why; set PDEGEN_NATIVE=0 to force that fallback.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("csrc") / "krylov.c"
_pointer = ctypes.c_void_p
_long = ctypes.c_long
_double = ctypes.c_double
_SIGNATURES = {  # csrc/krylov.c, argument by argument
    "pdegen_gcrodr_cycle": [_pointer] * 5
    + [_long, _pointer, _pointer, _long, _long, _pointer, _long]
    + [_pointer] * 3
    + [_double, _long, _pointer],
    "pdegen_deflated_cg": [_pointer] * 5
    + [_long]
    + [_pointer] * 5
    + [_long]
    + [_pointer] * 6
    + [_long, _double, _double, _double, _long, _pointer],
}


def _petsc_dir() -> Path:
    import petsc

    return Path(petsc.get_petsc_dir())


def _cache_dir() -> Path:
    root = os.environ.get("PDEGEN_NATIVE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "pdegen" / "native"


def library_path() -> Path:
    """Where the library for this source and this PETSc lives."""
    key = hashlib.sha256(SOURCE.read_bytes() + str(_petsc_dir()).encode()).hexdigest()[:16]
    return _cache_dir() / f"krylov-{key}.so"


def build() -> Path:
    """Compile csrc/krylov.c with mpicc (PETSc's MPI) unless the cached library exists."""
    target = library_path()
    if target.exists():
        return target
    compiler = os.environ.get("MPICC") or shutil.which("mpicc")
    if not compiler:
        raise OSError("no MPI C compiler (mpicc) found")
    petsc_dir = _petsc_dir()
    libdir = petsc_dir / "lib"
    libs = sorted(libdir.glob("libpetsc.so.*"))  # the wheel's libpetsc.so is a text stub
    if not libs:
        raise OSError(f"no libpetsc.so.* in {libdir}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".krylov-", suffix=".so", dir=target.parent)
    os.close(fd)
    command = [
        compiler,
        "-O3",
        "-fPIC",
        "-shared",
        "-o",
        tmp,
        str(SOURCE),
        f"-I{petsc_dir / 'include'}",
        f"-L{libdir}",
        f"-Wl,-rpath,{libdir}",
        f"-l:{libs[-1].name}",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"compiling {SOURCE.name} failed: {done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("PDEGEN_NATIVE", "1") == "0":
        return None, "disabled by PDEGEN_NATIVE=0"
    try:
        lib = ctypes.CDLL(str(build()))
    except OSError as error:
        return None, str(error)
    for name, argtypes in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = ctypes.c_int
    return lib, f"compiled kernels from {library_path()}"


def kernels() -> ctypes.CDLL | None:
    """The loaded library, or None when the Python loops must be used."""
    return _load()[0]


def status() -> str:
    """One line: which loops the solvers run and, for the fallback, why."""
    return _load()[1]


def pointer(array: np.ndarray | None) -> int | None:
    """The data address of a C-contiguous float64 (C double) or int64 (C long) array; None
    stays None (a NULL pointer)."""
    if array is None:
        return None
    if not (array.flags.c_contiguous and array.dtype in (np.float64, np.int64)):
        raise ValueError("kernel arrays must be C-contiguous float64 or int64")
    return array.ctypes.data


def check(code: int, name: str) -> None:
    if code != 0:
        raise RuntimeError(f"{name} failed with PETSc error code {code} (see PETSc's message)")
