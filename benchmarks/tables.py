"""Where benchmark scripts put their output: benchmarks/results/<name>.md (and .json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def case_arguments(doc: str, repeats: int = 2) -> argparse.Namespace:
    """The command line of a script that measures named cases: `--repeats` (batches, the
    best kept) and `--only CASE ...`; the description is the docstring's first line."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--only", nargs="*", default=None)
    return parser.parse_args()


def save(name: str, text: str, data: dict | None = None) -> None:
    """Write the markdown table (and the raw rows, if given) and print the table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text + "\n")
    if data is not None:
        (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1))
    print(text)
