"""Windows of trajectories for training: the pairs people train time-dependent operators on.

- autoregressive, frame t -> t + 1: `ds.windows(inputs=1, outputs=1)` (every start);
- the first k frames -> the next m (FNO's Navier-Stokes, 10 -> 40):
  `ds.windows(inputs=10, outputs=40, starts="first")`;
- the initial state -> the final one (FNO's Burgers): `ds.windows(offset=-1)`, the output
  window placed at the trajectory's end.

An item is {"x": float32 (C_in, *grid), "y": float32 (C_out, *grid), "index", "t"}: the
`inputs` frames of every trajectory field in x, then (with `constants`) the fields without a
time axis and each scalar parameter as constant channels; the `outputs` frames in y; "t" the
time of the first input frame. Only the frames a window needs are read from the shard (an
autoregressive epoch reads each frame about twice, not a whole trajectory per pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from pdegen.errors import PdegenError

if TYPE_CHECKING:
    from pdegen.dataset.loader import ShardDataset


class TrajectoryWindows:
    """`ShardDataset.windows`: (input frames, output frames) pairs cut from every trajectory."""

    def __init__(
        self,
        dataset: ShardDataset,
        inputs: int = 1,
        outputs: int = 1,
        offset: int | None = None,
        starts: Literal["all", "first"] = "all",
        fields: Sequence[str] | None = None,
        constants: bool = True,
    ):
        self.dataset = dataset
        timed = [n for n in dataset.fields if dataset.axes[n][:1] == ("t",)]
        self.fields = tuple(fields) if fields is not None else tuple(timed)
        if not self.fields:
            raise PdegenError("windows: this dataset has no trajectory (no field with a time axis)")
        for name in self.fields:
            if name not in timed:
                raise PdegenError(
                    f"windows: {name!r} is not a trajectory (allowed: {', '.join(timed)})"
                )
        frames = {dataset._shapes[n][0][0] for n in self.fields}
        self.frames = frames.pop()
        for name, value in (("inputs", inputs), ("outputs", outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PdegenError(f"windows: {name}: {value!r} is not allowed (at least 1)")
        if starts not in ("all", "first"):
            raise PdegenError(f"windows: starts: {starts!r} is not allowed (all, first)")
        self.inputs, self.outputs = inputs, outputs
        # where the output window starts, from the input window's start; negative: counted
        # from the trajectory's end instead (-1: the output window ends on the last frame)
        self.offset = inputs if offset is None else offset
        if self.offset < 0:
            if inputs > self._output_start(0):
                raise PdegenError(
                    f"windows: {inputs} input frames and {outputs} output frames ending at "
                    f"offset {self.offset} do not fit in {self.frames} frames without overlap"
                )
            self.starts = [0]
        else:
            if self.offset < inputs:
                raise PdegenError(
                    f"windows: offset {self.offset} would overlap the {inputs} input frames "
                    "(at least inputs, or negative to count from the trajectory's end)"
                )
            count = self.frames - (self.offset + outputs) + 1
            if count < 1:
                raise PdegenError(
                    f"windows: {inputs} input frames, offset {self.offset} and {outputs} "
                    f"output frames need {self.offset + outputs} frames; the trajectories "
                    f"have {self.frames}"
                )
            self.starts = list(range(count)) if starts == "all" else [0]
        self.constants = (
            tuple(n for n in dataset.input_fields if n not in timed) if constants else ()
        )
        self.params = dataset.param_names if constants else ()
        self.times = dataset.coordinates().get("t")

    def __len__(self) -> int:
        return len(self.dataset) * len(self.starts)

    def _output_start(self, start: int) -> int:
        if self.offset < 0:
            return self.frames + self.offset + 1 - self.outputs
        return start + self.offset

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        i %= len(self)
        sample, start = divmod(i, len(self.starts))
        start = self.starts[start]
        ds = self.dataset
        shard_id, row = ds._locations[sample]
        f = ds._file(shard_id)

        def frames(name: str, first: int, count: int) -> np.ndarray:
            values = ds._read(f, name, row, slice(first, first + count))
            return np.asarray(values, dtype=np.float32)

        x = [frames(n, start, self.inputs) for n in self.fields]
        shape = x[0].shape[1:]
        for name in self.constants:
            x.append(np.asarray(ds._read(f, name, row), dtype=np.float32)[None])
        for name in self.params:
            x.append(np.full((1, *shape), f["params"][name][row], dtype=np.float32))
        y = [frames(n, self._output_start(start), self.outputs) for n in self.fields]
        t = float(self.times[start]) if self.times is not None else float(start)
        return {
            "x": np.concatenate(x),
            "y": np.concatenate(y),
            "index": np.int64(f["params"]["index"][row]),
            "t": np.float64(t),
        }

    def batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Stacked windows for `indices` (for array libraries without a data loader)."""
        items = [self[int(i)] for i in indices]
        return {key: np.stack([item[key] for item in items]) for key in items[0]}
