"""Writing a generated dataset in another library's layout (`pdegen export PATH --format F`).

Each format lives in its own module and is named here, so `pdegen export` can say in one line
which formats exist. An export never changes the source dataset and never overwrites: it
writes a new directory, complete or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdegen.errors import PdegenError

#: --format name -> what it writes
FORMATS: dict[str, str] = {
    "the-well": "The Well's layout (data/train|valid|test/*.hdf5 and stats.yaml) for "
    "the_well.data.WellDataset",
}


def check_format(name: str | None, where: str = "format") -> str:
    """The format name if it is one pdegen writes; else one line naming it and the allowed."""
    allowed = ", ".join(FORMATS)
    if name is None:
        raise PdegenError(f"{where}: missing (allowed: {allowed})")
    if name not in FORMATS:
        raise PdegenError(f"{where}: {name!r} is not allowed (allowed: {allowed})")
    return name


def export_dataset(path: str | Path, out: str | Path, format: str = "the-well") -> Any:
    """Export the dataset at `path` into the new directory `out` in `format`; returns the
    format's summary (for "the-well" a `pdegen.dataset.export.the_well.WellExport`)."""
    check_format(format)
    from pdegen.dataset.export.the_well import export_the_well

    return export_the_well(path, out)


__all__ = ["FORMATS", "check_format", "export_dataset"]
