"""The dataset as a whole: sample counts, splits, field statistics and the plan."""

from __future__ import annotations

from collections import Counter

from pdegen.dataset.check.common import (
    SPLIT_KEYS,
    is_json_type,
    listing,
    same_value,
    samples_phrase,
)
from pdegen.dataset.shards import (
    INDEX_NAME,
    shard_name,
)
from pdegen.dataset.splits import SPLITS, assign_splits
from pdegen.dataset.statistics import finish, merge_all
from pdegen.errors import PdegenError
from pdegen.run.plan import PLAN_NAME, read_plan


class DatasetChecks:
    """The dataset as a whole: sample counts, splits, field statistics and the plan (a part
    of `Checker`)."""

    def _check_counts(self) -> None:
        """Samples 0 .. samples-1, each in exactly one shard, cut as the plan cuts them."""
        recipe, where = self.recipe, INDEX_NAME
        if self.index.get("samples") != recipe.samples:
            self.add(
                "count",
                where,
                f"samples: {self.index.get('samples')!r}, the recipe has {recipe.samples}",
            )
        for key, value in (("dataset", recipe.name), ("family", recipe.family)):
            if self.index.get(key) != value:
                self.add("count", where, f"{key}: {self.index.get(key)!r}, the recipe: {value!r}")
        size = recipe.output.shard_size
        shards = -(-recipe.samples // size)
        if len(self.index["shards"]) != shards:
            self.add(
                "count",
                where,
                f"lists {len(self.index['shards'])} shards; {recipe.samples} samples in shards "
                f"of {size} make {shards}",
            )
        for shard in self.shards:
            count, last = len(shard.entry["indices"]), shard.entry["batch"] == shards - 1
            if count > size or count < 1 or (count < size and not last):
                self.add(
                    "count",
                    shard.path,
                    f"holds {count} samples; shards hold {size} (the last one at most {size})",
                )
        seen = Counter(i for shard in self.shards for i in shard.entry["indices"])
        twice = sorted(i for i, n in seen.items() if n > 1)
        outside = sorted(i for i in seen if not 0 <= i < recipe.samples)
        absent = sorted(set(range(recipe.samples)) - set(seen))
        for what, samples in (
            ("listed in more than one shard", twice),
            (f"outside 0 .. {recipe.samples - 1}", outside),
            ("in no shard", absent),
        ):
            if samples:
                self.add("count", where, f"{what}: {samples_phrase(samples)}")
        self.report.samples = len(seen)

    def _check_splits(self) -> None:
        """The splits are a pure function of (seed, index, fractions): recompute them all."""
        if not self._has_splits:
            self.report.notices.append("no splits (written before output.splits existed)")
            return
        for key, types in SPLIT_KEYS.items():
            if not is_json_type(self.index.get(key), types):
                self.add("splits", INDEX_NAME, f"{key}: missing or not a JSON object")
                return
        fractions = self.recipe.output.splits.fractions()
        if not same_value(self.index["split_fractions"], fractions):
            self.add(
                "splits",
                INDEX_NAME,
                f"split_fractions: {self.index['split_fractions']}, the recipe says {fractions}",
            )
        expected = assign_splits(self.recipe.seed, range(self.recipe.samples), fractions)
        stored = self.index["splits"]
        if set(stored) != set(SPLITS) or not all(
            isinstance(v, list) and all(is_json_type(i, (int,)) for i in v) for v in stored.values()
        ):
            self.add("splits", INDEX_NAME, f"splits: not one list of samples for each of {SPLITS}")
            return
        placed: dict[int, list[str]] = {}
        for name, members in stored.items():
            for i in members:
                placed.setdefault(i, []).append(name)
        truth = {i: name for name, members in expected.items() for i in members}
        for i in sorted(set(placed) | set(truth)):
            got, want = placed.get(i, []), truth.get(i)
            if got != [want]:
                self.add(
                    "splits",
                    INDEX_NAME,
                    f"splits: sample {i} is listed in {got or 'no split'}, its seeded split is "
                    f"{want!r}"
                    if want
                    else f"splits: sample {i} is not a sample of the recipe",
                )
        for name in SPLITS:
            if stored[name] != sorted(stored[name]):
                self.add("splits", INDEX_NAME, f"splits: {name} is not in ascending order")
        self.report.splits = {name: len(expected[name]) for name in SPLITS}

    def _check_field_stats(self) -> None:
        """The index's statistics are the merge of its per-shard partials in batch order (each
        partial was compared with its file in the shard pass)."""
        if not self._has_splits or not isinstance(self.index.get("field_stats"), dict):
            return
        entries = [shard.entry for shard in self.shards]
        if len(entries) != len(self.index["shards"]) or not all(
            isinstance(e.get("field_stats"), dict) for e in entries
        ):
            self.add("field_stats", INDEX_NAME, "a shard entry has no field statistics")
            return
        try:
            merged = merge_all(e["field_stats"] for e in entries)
            expected = {name: finish(moments) for name, moments in merged.items()}
        except (KeyError, TypeError, ValueError):
            self.add("field_stats", INDEX_NAME, "the per-shard field statistics are malformed")
            return
        names = (*self.family.input_names, *self.family.output_names)
        stored = self.index["field_stats"]
        if set(stored) != set(names):
            self.add(
                "field_stats",
                INDEX_NAME,
                f"field_stats: fields {sorted(stored)}, the family stores {sorted(names)}",
            )
        for name in names:
            if name in stored and not same_value(stored[name], expected.get(name)):
                self.add(
                    "field_stats",
                    INDEX_NAME,
                    f"field_stats: {name} is not the merge of the shards' partial moments",
                )

    def _check_plan(self) -> None:
        """plan.json, if present, belongs to this dataset and cuts the same shards."""
        path = self.root / PLAN_NAME
        if not path.exists():
            return
        try:
            plan = read_plan(path)
        except PdegenError as err:
            self.add("plan", path, str(err).removeprefix(f"{path}: "))
            return
        if plan.recipe_sha256 != self.index.get("recipe_sha256"):
            self.add("plan", path, f"belongs to a different recipe than {INDEX_NAME}")
            return
        listed = [e.get("indices") if isinstance(e, dict) else None for e in self.index["shards"]]
        if len(plan.shards) != len(listed):
            self.add("plan", path, f"{len(plan.shards)} shards, {INDEX_NAME}: {len(listed)}")
        for shard, indexed in enumerate(listed[: len(plan.shards)]):
            planned = plan.shard_indices(shard)
            if [int(i) for i in planned] != indexed:
                self.add(
                    "plan",
                    path,
                    f"shard {shard} holds samples [{listing(planned)}], {INDEX_NAME}'s "
                    f"{shard_name(shard)}: [{listing(indexed or [])}]",
                )
        for key in ("ordering_seconds", "chain_length"):
            if getattr(plan, key) != self.index.get(key):
                self.add("plan", path, f"{key} differs from {INDEX_NAME}'s")
