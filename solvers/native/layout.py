"""The checked C boundary: csrc/kernels.h's field lists parsed into ctypes structures, and the
layout the compiled library reports compared with them field by field (name, order, type,
offset, size, the struct's size and the ABI version), so that a library built from another
header is refused instead of reading arguments from the wrong bytes."""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import itertools
import re
from pathlib import Path

import numpy as np

CSRC = Path(__file__).resolve().parent.parent / "csrc"
#: the library's sources, one job each (csrc/kernels.h says which)
SOURCES = tuple(CSRC / name for name in ("krylov.c", "assembly.c", "moments.c", "layout.c"))
HEADER = CSRC / "kernels.h"

# C type (as written in kernels.h's field lists) -> ctypes type, and for pointers the numpy
# dtype of the array they point to.
_HANDLES = ("KSP", "Mat", "PC", "Vec")
_SCALARS = {"double": ctypes.c_double, "int64_t": ctypes.c_int64}
_ARRAYS = {"double": np.dtype(np.float64), "int64_t": np.dtype(np.int64)}


class LayoutError(ImportError):
    """The compiled library does not match csrc/kernels.h as this module reads it."""


def _c_type(text: str) -> str:
    """One spelling per C type: 'const double*' and 'const  double *' both 'const double *'."""
    return re.sub(r"\s*\*", " *", " ".join(text.split()))


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a kernel's argument struct, as kernels.h lists it."""

    name: str
    c_type: str  # as written in kernels.h, spaced by _c_type
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
    fields, in the order kernels.h lists them."""

    kernel: str
    struct_name: str
    fields: tuple[Field, ...]
    struct: type[ctypes.Structure]

    @functools.cached_property
    def inputs(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if not f.output)


def parse_header(text: str) -> tuple[int, dict[str, Signature]]:
    """The ABI version and the kernel signatures declared by kernels.h's field lists:
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
                "__doc__": f"The argument struct of {kernel} (csrc/kernels.h).",
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
        problems.append(f"ABI version: library {abi}, kernels.h {want_abi}")
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
                    f"{name}.{w[0]}: field {i} is {w[0]!r} in kernels.h, {g[0]!r} in the library"
                )
            else:
                problems.append(
                    f"{name}.{w[0]}: the library has {g[3]} at offset {g[1]} ({g[2]} bytes), "
                    f"kernels.h (ctypes) has {w[3]} at offset {w[1]} ({w[2]} bytes)"
                )
        if lib_size != size:
            problems.append(f"{name}: sizeof is {lib_size} in the library, {size} in ctypes")
    return problems
