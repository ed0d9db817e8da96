"""Deep: the stored inputs are the recipe's draw and the stored solution solves them.

The family re-assembles each chosen sample and says what its stored solves' residuals are
(`Family.stored_residuals`), so no family is named here."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pdegen.dataset.check.common import READ_ERRORS, as_float64, listing
from pdegen.dataset.check.report import DeepResult
from pdegen.discretisation.operators import numpy_assembly
from pdegen.families import Sample
from pdegen.families.residuals import UNIT_ROUNDOFF


class DeepChecks:
    """Deep: the stored inputs are the recipe's draw and the stored solution solves them
    (a part of `Checker`)."""

    def _check_deep(self) -> None:
        """K samples, drawn with a seeded generator among the converged ones of shards whose
        fields are readable, in generation order."""
        candidates = sorted(
            (index, shard.path, row)
            for shard in self.shards
            if shard.fields_ok and shard.converged is not None
            for row, index in enumerate(shard.indices)
            if shard.converged[row]
        )
        if not candidates:
            self.report.notices.append("deep: no converged sample to re-assemble")
            return
        rng = np.random.default_rng(self.seed)
        chosen = rng.choice(len(candidates), size=min(self.deep, len(candidates)), replace=False)
        for k in sorted(chosen):
            index, path, row = candidates[k]
            try:
                with h5py.File(path, "r") as f, numpy_assembly():
                    self._deep_sample(f, path, index, row)
            except READ_ERRORS as err:
                self.add("deep", path, f"sample {index}: cannot be read ({err})")

    def _deep_sample(self, f: h5py.File, path: Path, index: int, row: int) -> None:
        family, recipe = self.family, self.recipe
        storage = np.dtype(recipe.output.dtype)
        stored = {name: f["inputs"][name][row] for name in family.input_names}
        params = {p: float(f["params"][p][row]) for p in family.params}
        fresh = family.sample(recipe.seed, index)
        for name in family.input_names:  # bitwise: the draw rounded as the writer rounds
            if not np.array_equal(stored[name], fresh.inputs[name].astype(storage)):
                self.add(
                    "deep",
                    path,
                    f"sample {index}: inputs/{name} is not the recipe's draw for this sample",
                )
        for name in family.params:
            if params[name] != fresh.params[name]:
                self.add("deep", path, f"sample {index}: params/{name} is not the recipe's draw")
        sample = Sample(index, as_float64(stored), params)
        outputs = {
            name: np.asarray(f["outputs"][name][row], dtype=np.float64)
            for name in family.output_names
        }
        stepping = family.time_stepping
        if stepping is not None and stepping.initial_frame and stepping.initial_input:
            frame0 = outputs[stepping.trajectory][0]
            if not np.array_equal(
                family.interior(frame0), family.interior(sample.inputs[stepping.initial_input])
            ):
                self.add(
                    "deep",
                    path,
                    f"sample {index}: frame 0 of {stepping.trajectory} is not "
                    f"inputs/{stepping.initial_input}",
                )
        eps = UNIT_ROUNDOFF[recipe.output.dtype]
        steps = family.stored_residuals(sample, outputs, recipe.solver.rtol, eps)
        if steps is None:  # stokes: interpolated fields; a subsampled spectral solve
            self.report.notices.append(f"deep: sample {index}: {family.why_no_residuals()}")
            return
        worst = max(steps, key=lambda s: s[1] / s[2])
        self.report.deep.append(DeepResult(index, worst[1], worst[2]))
        failed = [s for s in steps if not s[1] <= s[2]]  # NaN fails too
        if failed:
            step, residual, bound = max(failed, key=lambda s: s[1] / s[2])
            at = "" if step is None else f", step{'s' * (len(failed) > 1)} "
            at += listing([s[0] for s in failed]) if step is not None else ""
            self.add(
                "deep",
                path,
                f"sample {index}{at}: relative residual {residual:.2e} of the stored solution "
                f"exceeds {bound:.2e} ({family.residual_tolerance(recipe.solver.rtol)} plus the "
                f"{recipe.output.dtype} storage bound): it does not solve the stored inputs' "
                "system",
            )
