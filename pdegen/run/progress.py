"""Progress display for long runs: tqdm on a terminal, periodic plain lines in logs."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

# No monitor thread: the local engine forks workers while a bar is shown, and a thread that
# holds stderr's lock at a fork would leave it held in the child (our bar is updated on every
# batch, which is all the monitor's refresh adds).
tqdm.monitor_interval = 0


class Progress:
    """Counts samples; shows rate and ETA. Plain lines every `interval` s when not a TTY."""

    def __init__(
        self,
        total: int,
        initial: int = 0,
        label: str = "",
        enabled: bool = True,
        interval: float = 10.0,
    ):
        self.total, self.done, self.label = total, initial, label
        self.enabled, self.interval = enabled, interval
        self._tty = sys.stderr.isatty()
        self._bar = (
            tqdm(
                total=total,
                initial=initial,
                desc=label,
                unit="sample",
                file=sys.stderr,
                dynamic_ncols=True,
            )
            if enabled and self._tty
            else None
        )
        self._start = self._last = time.monotonic()
        self._initial = initial

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self.enabled and (
            time.monotonic() - self._last >= self.interval or self.done == self.total
        ):
            self._line()

    def _line(self) -> None:
        self._last = now = time.monotonic()
        rate = (self.done - self._initial) / max(now - self._start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        print(
            f"{self.label}: {self.done}/{self.total} samples, {rate:.1f} samples/s, "
            f"ETA {eta:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
