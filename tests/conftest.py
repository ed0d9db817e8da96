"""Shared helpers: small recipes written into temporary directories."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture
def write_recipe(tmp_path: Path):
    def write(data: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write
