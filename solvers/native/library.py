"""Building the library: compiled once per source, header, flags and PETSc build into a
cache keyed by all of them, written under a temporary name and renamed, so concurrent workers
or ranks never load a half-written file."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from solvers.native import layout


def _petsc_dir() -> Path:
    import petsc

    return Path(petsc.get_petsc_dir())


def _cache_dir() -> Path:
    root = os.environ.get("PDEGEN_NATIVE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "pdegen" / "native"


# What identifies a PETSc build beyond its path: the version, the configuration macros
# (index size, precision, MPI, BLAS), the configure options and the make variables (compilers,
# flags, libraries). A PETSc reconfigured in place changes these and not its path.
_PETSC_FINGERPRINT = (
    "include/petscversion.h",
    "include/petscconf.h",
    "include/petscconfiginfo.h",
    "lib/petsc/conf/petscvariables",
)


def _fingerprint(petsc_dir: Path) -> bytes:
    """The PETSc build the library links: its path, the files above, the libpetsc.so.*
    names (its soname), and petsc4py's version (whose handles the kernels are given)."""
    import petsc4py

    parts = [str(petsc_dir).encode()]
    for relative in _PETSC_FINGERPRINT:
        path = petsc_dir / relative
        parts.append(relative.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    parts.extend(p.name.encode() for p in sorted((petsc_dir / "lib").glob("libpetsc.so.*")))
    parts.append(f"petsc4py {petsc4py.__version__}".encode())
    return b"\0\0".join(parts)


#: how the library is compiled (with -shared, the sources and PETSc's paths). Why
#: -ffp-contract=off: the assembly and moments kernels promise numpy's bits, and a compiler
#: that fuses a multiply into an add (FMA; GCC does where the target has one, as on aarch64)
#: rounds once where numpy rounds twice.
CFLAGS = ("-O3", "-ffp-contract=off", "-fPIC")


def library_path() -> Path:
    """Where the library for these sources and header, these flags, and this PETSc build,
    lives."""
    digest = hashlib.sha256()
    flags = " ".join(CFLAGS).encode()
    sources = [s.read_bytes() for s in layout.SOURCES]
    for part in (*sources, layout.HEADER.read_bytes(), flags, _fingerprint(_petsc_dir())):
        digest.update(hashlib.sha256(part).digest())
    return _cache_dir() / f"kernels-{digest.hexdigest()[:16]}.so"


def compile_library(sources: tuple[Path, ...], target: Path) -> Path:
    """Compile `sources` (which include kernels.h from their own folder) with mpicc (PETSc's
    MPI) into one library at `target`, written under a temporary name and renamed into
    place."""
    compiler = os.environ.get("MPICC") or shutil.which("mpicc")
    if not compiler:
        raise OSError("no MPI C compiler (mpicc) found")
    petsc_dir = _petsc_dir()
    libdir = petsc_dir / "lib"
    libs = sorted(libdir.glob("libpetsc.so.*"))  # the wheel's libpetsc.so is a text stub
    if not libs:
        raise OSError(f"no libpetsc.so.* in {libdir}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kernels-", suffix=".so", dir=target.parent)
    os.close(fd)
    command = [
        compiler,
        *CFLAGS,
        "-shared",
        "-o",
        tmp,
        *map(str, sources),
        f"-I{petsc_dir / 'include'}",
        f"-L{libdir}",
        f"-Wl,-rpath,{libdir}",
        f"-l:{libs[-1].name}",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            names = ", ".join(s.name for s in sources)
            raise OSError(f"compiling {names} failed: {done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def build() -> Path:
    """Compile csrc/ unless the cached library for these sources and this PETSc exists."""
    target = library_path()
    if not target.exists():
        compile_library(layout.SOURCES, target)
    return target
