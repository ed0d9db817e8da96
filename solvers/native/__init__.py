"""pdegen's compiled kernels (csrc/: the Krylov loops in krylov.c, matrix assembly in assembly.c,
field moments in moments.c, the layout report in layout.c): built once against the installed
PETSc, loaded with ctypes through a checked interface.

Why compiled: an iteration at 10^4 unknowns is about 0.1 ms of arithmetic, and a dozen
Python-level calls per iteration cost as much again, which is the whole margin recycling has
over PETSc's C GMRES and CG (measured in docs/benchmarks.md). Why ctypes and not a build
backend: the library links the PETSc of the running environment (a pip-installed wheel), which
is only known once that environment exists; `scripts/install.sh` calls `build()` right after
installing, and a missing library is built on first use.

The jobs are split: `layout` (csrc/kernels.h parsed into ctypes structures, and the
library's reported layout checked against them), `library` (the build and its cache) and
`calls` (loading once per process, and checked calls).

Why checked: each kernel takes one struct by pointer, declared once in csrc/kernels.h by a
field list that `layout` parses into a ctypes.Structure. The library reports the layout
its compiler gave those structs (`pdegen_layout`), and `load` compares it with ctypes' field
by field (name, order, type, offset, size, the struct's size and the ABI version). A library
built from another header is refused at load with a `LayoutError` naming the struct and
field, instead of reading arguments from the wrong bytes. The solvers do not fall back to
their Python loops on such a library: `kernels()` raises, so the mismatch is seen and fixed
(rebuild with `build()`), not hidden. Calls are checked too: `Kernels.run` wants every input
field by keyword and each array C-contiguous with the field's dtype.

The build goes to a cache keyed by the sources and header, and by PETSc's location, version
and configuration (its configure options and make variables) and petsc4py's version, so
a PETSc rebuilt in place with other options gets its own library. It is written under a
temporary name and renamed, so concurrent workers or ranks never load a half-written file.
Where no compiler is found the solvers fall back to their Python loops (same arithmetic,
slower), and `status()` says why; set PDEGEN_NATIVE=0 to force that fallback.
"""

from solvers.native.calls import Kernels, check, kernels, load, pointer, status
from solvers.native.calls import _load as _load  # tests clear its cache
from solvers.native.layout import (
    ABI_VERSION,
    HEADER,
    SIGNATURES,
    SOURCES,
    LayoutError,
    compare_layouts,
    expected_layout,
    parse_header,
)
from solvers.native.library import build, compile_library, library_path

__all__ = [
    "ABI_VERSION",
    "HEADER",
    "SIGNATURES",
    "SOURCES",
    "Kernels",
    "LayoutError",
    "build",
    "check",
    "compare_layouts",
    "compile_library",
    "expected_layout",
    "kernels",
    "library_path",
    "load",
    "parse_header",
    "pointer",
    "status",
]
