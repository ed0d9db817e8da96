"""What a run survived: workers lost and batch attempts that failed and were retried, each
with its reason where one is known (a signal, Dask's nanny restarting a worker over its memory
limit, an exception).

Why a record: a run that loses a worker and finishes writes the same dataset as one that
does not (every batch is deterministic and written atomically), so nothing in the data shows
it. The summary, `index.json` (`incidents`) and the dataset card say it instead, so that a
user who sees a slow run, or a cluster that lost nodes, can tell what happened.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Incident:
    """One thing a run survived (`what`: "worker lost" or "batch retried"), where (a worker's
    address, a rank, this process), why, and the batches it hit."""

    what: str
    where: str
    reason: str
    batches: tuple[int, ...] = ()

    def line(self) -> str:
        hit = ""
        if self.batches:
            noun = "batch" if len(self.batches) == 1 else "batches"
            hit = f" ({noun} {', '.join(map(str, self.batches))})"
        return f"{self.what}: {self.where}{hit}: {self.reason}"


def lost_workers(incidents: list[Incident] | tuple[Incident, ...]) -> int:
    return sum(i.what == WORKER_LOST for i in incidents)


def counts(incidents: list[Incident] | tuple[Incident, ...]) -> str:
    """'1 worker lost, 2 batch attempts retried' (empty when nothing happened)."""
    lost = sum(i.what == WORKER_LOST for i in incidents)
    retried = sum(i.what == BATCH_RETRIED for i in incidents)
    parts = []
    if lost:
        parts.append(f"{lost} worker{'s' * (lost > 1)} lost")
    if retried:
        parts.append(f"{retried} batch attempt{'s' * (retried > 1)} retried")
    if other := len(incidents) - lost - retried:
        parts.append(f"{other} other incident{'s' * (other > 1)}")
    return ", ".join(parts)


WORKER_LOST = "worker lost"
BATCH_RETRIED = "batch retried"

#: what Dask's nanny logs when its worker process ends (distributed.nanny.WorkerProcess)
_DEATH = re.compile(
    r"Worker process (?P<pid>\d+) (?:was killed by signal (?P<signal>\d+)|"
    r"exited with status (?P<status>\d+)|was killed by unknown signal)"
)


class DeathRecorder(logging.Handler):
    """Collects, per worker pid, how its process ended, from the log lines of the nannies
    that run in this process (a local cluster's)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _DEATH.search(record.getMessage())
        if match is None:
            return
        signal = int(match["signal"]) if match["signal"] else None
        status = int(match["status"]) if match["status"] else None
        self.reasons[int(match["pid"])] = process_end(signal, status)


def process_end(signal: int | None, status: int | None) -> str:
    """How a worker's process ended, in one phrase (every engine words it the same way)."""
    if signal is not None:
        reason = f"its process was killed by signal {signal}"
        if signal == 9:
            reason += " (SIGKILL: the kernel's out-of-memory killer sends it too)"
        return reason
    if status is not None:
        return f"its process exited with status {status}"
    return "its process was killed by an unknown signal"


__all__ = [
    "BATCH_RETRIED",
    "WORKER_LOST",
    "DeathRecorder",
    "Incident",
    "counts",
    "lost_workers",
    "process_end",
]
