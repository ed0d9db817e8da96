"""Where benchmark scripts put their output: benchmarks/results/<name>.md (and .json)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def save(name: str, text: str, data: dict | None = None) -> None:
    """Write the markdown table (and the raw rows, if given) and print the table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text + "\n")
    if data is not None:
        (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1))
    print(text)
