"""The index and the directory: index.json's keys, the files beside it, the recipe it was
made from."""

from __future__ import annotations

import hashlib
import json

import h5py

from pdegen.dataset.card import CARD_NAME
from pdegen.dataset.check.common import (
    FIGURES_DIR,
    INDEX_KEYS,
    READ_ERRORS,
    SHARD_PATTERN,
    TEMPORARY_PATTERN,
    ShardFindings,
    is_json_type,
)
from pdegen.dataset.loader import check_format_version
from pdegen.dataset.shards import (
    FAILURES_NAME,
    INDEX_NAME,
    PARTS_DIR,
    shard_name,
)
from pdegen.errors import PdegenError
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import recipe_from_dict
from pdegen.run.lock import LOCK_NAME, holder_line
from pdegen.run.plan import PLAN_NAME


class IndexChecks:
    """The index and the directory: index.json's keys, the files beside it, the recipe it was
    made from (a part of `Checker`)."""

    def _read_index(self) -> bool:
        """The index as JSON; an unknown format_version is a usage error (exit 2, the loader's
        line): this pdegen cannot say what a newer format should hold."""
        path = self.root / INDEX_NAME
        try:
            index = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            self.add("index", path, f"unreadable index ({err}); nothing else can be checked")
            return False
        if not isinstance(index, dict):
            self.add("index", path, "not a pdegen index (not a JSON object)")
            return False
        check_format_version(path, index.get("format_version"))
        self.index = index
        return True

    def _check_index_keys(self) -> None:
        for key, types in INDEX_KEYS.items():
            if key not in self.index:
                self.add("index", INDEX_NAME, f"{key}: missing")
            elif not is_json_type(self.index[key], types):
                self.add("index", INDEX_NAME, f"{key}: {self.index[key]!r} has the wrong type")
        if not is_json_type(self.index.get("shards"), (list,)):
            self.index["shards"] = []
        incidents = self.index.get("incidents", [])  # since runs record what they survived
        if not (is_json_type(incidents, (list,)) and all(isinstance(i, str) for i in incidents)):
            self.add("index", INDEX_NAME, f"incidents: {incidents!r} is not a list of lines")

    def _check_directory(self) -> None:
        """Every name in the directory is one pdegen writes; leftovers of interrupted writes
        and a lock (a generate may be running) are reported too."""
        listed = {e.get("file") for e in self.index.get("shards", []) if isinstance(e, dict)}
        for path in sorted(self.root.iterdir()):
            name = path.name
            if name in (INDEX_NAME, PLAN_NAME, CARD_NAME) and path.is_file():
                continue
            if name == FAILURES_NAME and path.is_file():
                self.report.notices.append(
                    f"{FAILURES_NAME} present: a run after the index was written failed (read it)"
                )
            elif SHARD_PATTERN.fullmatch(name) and path.is_file():
                if self.index and name not in listed:
                    self.add(
                        "unlisted",
                        path,
                        f"a shard that {INDEX_NAME} does not list (left by another run, or "
                        "copied in): the loader ignores it",
                    )
            elif name == LOCK_NAME:
                try:
                    holder = holder_line(path.read_text())
                except (OSError, UnicodeDecodeError):
                    holder = "a process that left no details"
                self.add(
                    "lock",
                    path,
                    f"a `pdegen generate` may be writing this dataset ({holder}), or was "
                    "killed; check again when no generate runs",
                )
            elif TEMPORARY_PATTERN.fullmatch(name) and path.is_file():
                self.add(
                    "leftover",
                    path,
                    "a temporary of an interrupted write (a resumed generate deletes it; "
                    "safe to delete when no generate runs)",
                )
            elif name == PARTS_DIR and path.is_dir():
                self.add(
                    "leftover",
                    path,
                    "the finished batches of shards not merged yet (an interrupted run; a "
                    "resumed generate merges them, no batch is solved again)",
                )
            elif name == FIGURES_DIR and path.is_dir():
                for figure in sorted(path.iterdir()):
                    if not (figure.is_file() and figure.suffix == ".png"):
                        self.add("foreign", figure, "not a PNG figure (`pdegen show` writes those)")
            else:
                self.add("foreign", path, "a foreign file: not one pdegen writes (docs/format.md)")

    def _entries(self) -> list[ShardFindings]:
        """The index's shard entries that are well formed, each where its batch number says."""
        for position, entry in enumerate(self.index["shards"]):
            ok = (
                isinstance(entry, dict)
                and is_json_type(entry.get("batch"), (int,))
                and isinstance(entry.get("file"), str)
                and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("indices"), list)
                and all(is_json_type(i, (int,)) for i in entry["indices"])
            )
            if not ok:
                self.add("index", INDEX_NAME, f"shards[{position}]: not a shard entry")
                continue
            if entry["batch"] != position or entry["file"] != shard_name(position):
                self.add(
                    "index",
                    INDEX_NAME,
                    f"shards[{position}]: names batch {entry['batch']} ({entry['file']}); "
                    f"entry {position} must be batch {position} ({shard_name(position)})",
                )
                if not SHARD_PATTERN.fullmatch(entry["file"]):
                    continue  # never open a path the index made up
            self.shards.append(ShardFindings(entry, self.root / entry["file"]))
        self.report.shards = len(self.shards)
        return self.shards

    def _find_recipe(self) -> None:
        """The recipe of the dataset: the stored text of the first shard whose SHA-256 is the
        index's recipe_sha256 (as `generate` hashes it), rebuilt and validated."""
        want = self.index.get("recipe_sha256")
        for entry in self.index["shards"]:
            name = entry.get("file") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not SHARD_PATTERN.fullmatch(name):
                continue
            try:
                with h5py.File(self.root / name, "r") as f:
                    text = f.attrs.get("recipe")
            except READ_ERRORS:
                continue
            if not isinstance(text, str) or hashlib.sha256(text.encode()).hexdigest() != want:
                continue
            try:
                self.stored_recipe = json.loads(text)
                cut = _with_indexed_cut(self.stored_recipe, self.index["shards"])
                self.recipe = recipe_from_dict(cut, f"{name}: recipe")
            except (PdegenError, ValueError) as err:
                self.add("recipe", self.root / name, f"the stored recipe is not valid: {err}")
                return
            self.family = family_from_recipe(self.recipe)
            return
        self.add(
            "recipe",
            INDEX_NAME,
            f"no readable shard holds the recipe whose SHA-256 the index names ({want}); "
            "the schema, counts and splits cannot be checked",
        )

    @property
    def _has_splits(self) -> bool:
        """Whether the writer knew output.splits (its stored recipe names them): only such a
        dataset has splits and field statistics in its index."""
        return "splits" in self.stored_recipe.get("output", {})


def _with_indexed_cut(stored: dict, shards: list) -> dict:
    """The stored recipe with the shard size it was cut by. A recipe built in Python was
    stored without it (null) before `generate` resolved the cut (`pdegen.recipe.sharding.
    with_resolved_sizes`), and was cut by the defaults of its day, one batch per shard: its first
    shard's sample count says the size (resolving null by today's defaults would not)."""
    output = stored.get("output") if isinstance(stored, dict) else None
    if not isinstance(output, dict) or output.get("shard_size") is not None:
        return stored
    first = shards[0] if shards and isinstance(shards[0], dict) else {}
    if not isinstance(first.get("indices"), list) or not first["indices"]:
        return stored
    return {**stored, "output": {**output, "shard_size": len(first["indices"])}}
