"""The compiled Krylov loops (csrc/krylov.c): built once against the installed PETSc, loaded
with ctypes through a checked interface.

Why compiled: an iteration at 10^4 unknowns is about 0.1 ms of arithmetic, and a dozen
Python-level calls per iteration cost as much again, which is the whole margin recycling has
over PETSc's C GMRES and CG (measured in docs/benchmarks.md). Why ctypes and not a build
backend: the library links the PETSc of the running environment (a pip-installed wheel), which
is only known once that environment exists; `scripts/install.sh` calls `build()` right after
installing, and a missing library is built on first use.

Why checked: each kernel takes one struct by pointer, declared once in csrc/krylov.h by a
field list that this module parses into a ctypes.Structure. The library reports the layout
its compiler gave those structs (`pdegen_layout`), and `load` compares it with ctypes' field
by field (name, order, type, offset, size, the struct's size and the ABI version). A library
built from another header is refused at load with a `LayoutError` naming the struct and
field, instead of reading arguments from the wrong bytes. The solvers do not fall back to
their Python loops on such a library: `kernels()` raises, so the mismatch is seen and fixed
(rebuild with `build()`), not hidden. Calls are checked too: `Kernels.run` wants every input
field by keyword and each array C-contiguous with the field's dtype.

The build goes to a cache keyed by the source and header, and by PETSc's location, version
and configuration (its configure options and make variables) and petsc4py's version, so
a PETSc rebuilt in place with other options gets its own library. It is written under a
temporary name and renamed, so concurrent workers or ranks never load a half-written file.
Where no compiler is found the solvers fall back to their Python loops (same arithmetic,
slower), and `status()` says why; set PDEGEN_NATIVE=0 to force that fallback.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import itertools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SOURCE = Path(__file__).with_name("csrc") / "krylov.c"
HEADER = SOURCE.with_name("krylov.h")

# C type (as written in krylov.h's field lists) -> ctypes type, and for pointers the numpy
# dtype of the array they point to.
_HANDLES = ("KSP", "Mat", "PC", "Vec")
_SCALARS = {"double": ctypes.c_double, "int64_t": ctypes.c_int64}
_ARRAYS = {"double": np.dtype(np.float64), "int64_t": np.dtype(np.int64)}


class LayoutError(ImportError):
    """The compiled library does not match csrc/krylov.h as this module reads it."""


def _c_type(text: str) -> str:
    """One spelling per C type: 'const double*' and 'const  double *' both 'const double *'."""
    return re.sub(r"\s*\*", " *", " ".join(text.split()))


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a kernel's argument struct, as krylov.h lists it."""

    name: str
    c_type: str  # as written in krylov.h, spaced by _c_type
    output: bool  # OUT: set by the kernel; IN: by the caller
    ctype: type  # its ctypes type
    dtype: np.dtype | None  # for a pointer, the dtype of the numpy array it takes
    writes: bool  # a pointer the kernel writes through (not const)

    @classmethod
    def parse(cls, kernel: str, kind: str, c_type: str, name: str) -> Field:
        c_type = _c_type(c_type)
        pointee = c_type.removeprefix("const ").removesuffix(" *")
        if c_type.endswith(" *") and pointee in _ARRAYS:
            ctype, dtype = ctypes.c_void_p, _ARRAYS[pointee]
        elif c_type in _HANDLES or c_type in _SCALARS:
            ctype, dtype = _SCALARS.get(c_type, ctypes.c_void_p), None
        else:
            raise LayoutError(
                f"{HEADER.name}: {kernel}.{name}: no ctypes type for {c_type!r} (allowed: "
                f"{', '.join(_HANDLES + tuple(_SCALARS))} and pointers to {', '.join(_ARRAYS)})"
            )
        writes = dtype is not None and not c_type.startswith("const ")
        return cls(name, c_type, kind == "OUT", ctype, dtype, writes)


@dataclasses.dataclass(frozen=True)
class Signature:
    """One kernel: its name, its argument struct (a ctypes.Structure) and that struct's
    fields, in the order krylov.h lists them."""

    kernel: str
    struct_name: str
    fields: tuple[Field, ...]
    struct: type[ctypes.Structure]

    @functools.cached_property
    def inputs(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if not f.output)


def parse_header(text: str) -> tuple[int, dict[str, Signature]]:
    """The ABI version and the kernel signatures declared by krylov.h's field lists:
    PDEGEN_<KERNEL>_FIELDS(IN, OUT) becomes kernel pdegen_<kernel>, struct pdegen_<kernel>_args."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S).replace("\\\n", " ")
    version = re.search(r"^\s*#\s*define\s+PDEGEN_ABI_VERSION\s+(\d+)", text, re.M)
    if version is None:
        raise LayoutError(f"{HEADER.name}: no PDEGEN_ABI_VERSION")
    signatures = {}
    for macro, body in re.findall(
        r"^\s*#\s*define\s+PDEGEN_(\w+)_FIELDS\(IN, OUT\)(.*)$", text, re.M
    ):
        kernel = f"pdegen_{macro.lower()}"
        fields = tuple(
            Field.parse(kernel, *match)
            for match in re.findall(r"\b(IN|OUT)\(([^,()]+),\s*(\w+)\s*\)", body)
        )
        struct_name = f"{kernel}_args"
        struct = type(
            struct_name,
            (ctypes.Structure,),
            {
                "_fields_": [(f.name, f.ctype) for f in fields],
                "__doc__": f"The argument struct of {kernel} (csrc/krylov.h).",
            },
        )
        signatures[kernel] = Signature(kernel, struct_name, fields, struct)
    if not signatures:
        raise LayoutError(f"{HEADER.name}: no PDEGEN_<KERNEL>_FIELDS(IN, OUT) lists")
    return int(version.group(1)), signatures


ABI_VERSION, SIGNATURES = parse_header(HEADER.read_text())


def expected_layout() -> str:
    """The layout text pdegen_layout should report, computed from the ctypes structs."""
    lines = [f"abi {ABI_VERSION}"]
    for sig in SIGNATURES.values():
        lines.append(f"struct {sig.struct_name} {ctypes.sizeof(sig.struct)}")
        for f in sig.fields:
            member = getattr(sig.struct, f.name)
            lines.append(f"field {f.name} {member.offset} {member.size} {f.c_type}")
    return "\n".join(lines) + "\n"


def _parse_layout(text: str) -> tuple[int | None, dict[str, tuple[int, list[tuple]]]]:
    abi, structs, current = None, {}, None
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "abi":
            abi = int(rest)
        elif kind == "struct":
            name, size = rest.split()
            current = structs[name] = (int(size), [])
        elif kind == "field" and current is not None:
            name, offset, size, c_type = rest.split(" ", 3)
            current[1].append((name, int(offset), int(size), _c_type(c_type)))
    return abi, structs


def compare_layouts(library: str, expected: str) -> list[str]:
    """What differs between the library's layout text and the expected one, one line per
    struct or field (empty when they agree)."""
    abi, got = _parse_layout(library)
    want_abi, want = _parse_layout(expected)
    problems = []
    if abi != want_abi:
        problems.append(f"ABI version: library {abi}, krylov.h {want_abi}")
    for name, (size, fields) in want.items():
        if name not in got:
            problems.append(f"{name}: not in the library")
            continue
        lib_size, lib_fields = got[name]
        for i, (w, g) in enumerate(itertools.zip_longest(fields, lib_fields)):
            if w == g:
                continue
            if g is None:
                problems.append(f"{name}.{w[0]}: not in the library")
            elif w is None:
                problems.append(f"{name}.{g[0]}: only in the library")
            elif w[0] != g[0]:
                problems.append(
                    f"{name}.{w[0]}: field {i} is {w[0]!r} in krylov.h, {g[0]!r} in the library"
                )
            else:
                problems.append(
                    f"{name}.{w[0]}: the library has {g[3]} at offset {g[1]} ({g[2]} bytes), "
                    f"krylov.h (ctypes) has {w[3]} at offset {w[1]} ({w[2]} bytes)"
                )
        if lib_size != size:
            problems.append(f"{name}: sizeof is {lib_size} in the library, {size} in ctypes")
    return problems


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
    """Where the library for this source and header, these flags, and this PETSc build,
    lives."""
    digest = hashlib.sha256()
    flags = " ".join(CFLAGS).encode()
    for part in (SOURCE.read_bytes(), HEADER.read_bytes(), flags, _fingerprint(_petsc_dir())):
        digest.update(hashlib.sha256(part).digest())
    return _cache_dir() / f"krylov-{digest.hexdigest()[:16]}.so"


def compile_library(source: Path, target: Path) -> Path:
    """Compile `source` (which includes krylov.h from its own folder) with mpicc (PETSc's
    MPI) into `target`, written under a temporary name and renamed into place."""
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
        *CFLAGS,
        "-shared",
        "-o",
        tmp,
        str(source),
        f"-I{petsc_dir / 'include'}",
        f"-L{libdir}",
        f"-Wl,-rpath,{libdir}",
        f"-l:{libs[-1].name}",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"compiling {source.name} failed: {done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def build() -> Path:
    """Compile csrc/krylov.c unless the cached library for this source and PETSc exists."""
    target = library_path()
    if not target.exists():
        compile_library(SOURCE, target)
    return target


def check(code: int, name: str) -> None:
    if code != 0:
        raise RuntimeError(f"{name} failed with PETSc error code {code} (see PETSc's message)")


def pointer(array: np.ndarray | None, dtype: np.dtype | None = None) -> int | None:
    """The data address of a C-contiguous float64 (C double) or int64 (int64_t) array, of
    `dtype` if given; None stays None (a NULL pointer)."""
    if array is None:
        return None
    if not isinstance(array, np.ndarray):
        raise TypeError(f"kernel arrays are numpy arrays, not {type(array).__name__}")
    wanted = (np.dtype(np.float64), np.dtype(np.int64)) if dtype is None else (dtype,)
    if not (array.flags.c_contiguous and array.dtype in wanted):
        layout = "" if array.flags.c_contiguous else "non-contiguous "
        raise ValueError(
            f"kernel arrays must be C-contiguous {' or '.join(map(str, wanted))}, "
            f"not {layout}{array.dtype}"
        )
    return array.ctypes.data


class Kernels:
    """The loaded library, its layout checked against krylov.h."""

    def __init__(self, library: ctypes.CDLL, path: Path):
        self.path = path
        self._functions = {}
        for name, sig in SIGNATURES.items():
            try:
                function = getattr(library, name)
            except AttributeError:
                raise LayoutError(f"{path} has no {name} (krylov.h declares it)") from None
            function.argtypes = [ctypes.POINTER(sig.struct)]
            function.restype = ctypes.c_int
            self._functions[name] = function

    def run(self, kernel: str, **inputs: Any) -> ctypes.Structure:
        """Call `kernel` with its struct filled from `inputs` (every IN field of krylov.h,
        by name: arrays as numpy arrays, handles as petsc4py .handle ints or None); returns
        the struct, whose OUT fields the kernel has set. Raises RuntimeError if it fails, and
        TypeError or ValueError, before calling it, for missing inputs or unfit arrays."""
        sig = SIGNATURES[kernel]
        if inputs.keys() != sig.inputs:
            missing = sorted(sig.inputs - inputs.keys())
            unknown = sorted(inputs.keys() - sig.inputs)
            raise TypeError(f"{kernel}: missing inputs {missing}, unknown inputs {unknown}")
        values = {}
        for field in sig.fields:
            if field.output:
                continue
            value = inputs[field.name]
            if field.dtype is not None:
                address = pointer(value, field.dtype)
                if field.writes and address is not None and not value.flags.writeable:
                    raise ValueError(f"{kernel}.{field.name}: the kernel writes this array")
                value = address
            values[field.name] = value
        args = sig.struct(**values)
        try:
            code = self._functions[kernel](ctypes.byref(args))
        except SystemError as error:
            # A petsc4py python PC or Mat raised inside the kernel: PETSc returned its error
            # code, and ctypes found the callback's exception still set. Name both.
            if error.__cause__ is None:
                raise
            raise RuntimeError(
                f"{kernel} failed: its operator or preconditioner raised {error.__cause__!r}"
            ) from error.__cause__
        check(code, kernel)
        return args


def load(path: Path) -> Kernels:
    """Load the library at `path` and check its argument layout against krylov.h; raises
    LayoutError (naming each struct and field that differs) if it does not match."""
    library = ctypes.CDLL(str(path))
    try:
        layout = library.pdegen_layout
    except AttributeError:
        raise LayoutError(
            f"{path} has no pdegen_layout: it was built from an older krylov.c; rebuild it"
        ) from None
    layout.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    layout.restype = ctypes.c_size_t
    size = layout(None, 0) + 1
    text = ctypes.create_string_buffer(size)
    layout(text, size)
    problems = compare_layouts(text.value.decode(), expected_layout())
    if problems:
        raise LayoutError(
            f"{path} does not match {HEADER.name} (built from another header?); delete it and "
            "run solvers.native.build():\n  " + "\n  ".join(problems)
        )
    return Kernels(library, path)


@functools.cache
def _load() -> tuple[Kernels | None, str, LayoutError | None]:
    if os.environ.get("PDEGEN_NATIVE", "1") == "0":
        return None, "disabled by PDEGEN_NATIVE=0", None
    try:
        path = build()
        return load(path), f"compiled kernels from {path}", None
    except LayoutError as error:
        return None, f"refused: {error}", error
    except OSError as error:
        return None, str(error), None


def kernels() -> Kernels | None:
    """The loaded library, or None when the Python loops must be used (no compiler, or
    PDEGEN_NATIVE=0). Raises LayoutError for a library that does not match krylov.h."""
    lib, _, error = _load()
    if error is not None:
        raise LayoutError(str(error))
    return lib


def status() -> str:
    """Which loops the solvers run and, for the fallback or a refused library, why (for a
    refused one, a line per struct field that differs)."""
    return _load()[1]
