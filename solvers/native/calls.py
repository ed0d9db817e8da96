"""Calling the kernels: the library loaded and checked once per process, and each call's
struct filled from keyword arguments, every input present and every array C-contiguous with
its field's dtype."""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from solvers.native.layout import HEADER, SIGNATURES, LayoutError, compare_layouts, expected_layout
from solvers.native.library import build


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
    """The loaded library, its layout checked against kernels.h."""

    def __init__(self, library: ctypes.CDLL, path: Path):
        self.path = path
        self._functions = {}
        for name, sig in SIGNATURES.items():
            try:
                function = getattr(library, name)
            except AttributeError:
                raise LayoutError(f"{path} has no {name} (kernels.h declares it)") from None
            function.argtypes = [ctypes.POINTER(sig.struct)]
            function.restype = ctypes.c_int
            self._functions[name] = function

    def run(self, kernel: str, **inputs: Any) -> ctypes.Structure:
        """Call `kernel` with its struct filled from `inputs` (every IN field of kernels.h,
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
    """Load the library at `path` and check its argument layout against kernels.h; raises
    LayoutError (naming each struct and field that differs) if it does not match."""
    library = ctypes.CDLL(str(path))
    try:
        layout = library.pdegen_layout
    except AttributeError:
        raise LayoutError(
            f"{path} has no pdegen_layout: it was built from an older csrc/; rebuild it"
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
    PDEGEN_NATIVE=0). Raises LayoutError for a library that does not match kernels.h."""
    lib, _, error = _load()
    if error is not None:
        raise LayoutError(str(error))
    return lib


def status() -> str:
    """Which loops the solvers run and, for the fallback or a refused library, why (for a
    refused one, a line per struct field that differs)."""
    return _load()[1]
