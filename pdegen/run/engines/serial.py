"""The serial engine: batches one after another in this process (debugging, small runs)."""

from __future__ import annotations

from collections.abc import Callable

from pdegen.run.engines.base import (
    BatchDone,
    BatchFailure,
    Job,
    retried_incidents,
    run_with_retries,
)
from pdegen.run.incidents import Incident


class SerialEngine:
    name = "serial"
    is_root = True
    workers = 1

    def __init__(self) -> None:
        #: what the last `run` survived (`pdegen.run.incidents`)
        self.incidents: list[Incident] = []

    def __enter__(self) -> SerialEngine:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def broadcast(self, value):
        return value

    def run(
        self, job: Job, on_done: Callable[[BatchDone], None]
    ) -> tuple[list[BatchDone], list[BatchFailure]]:
        done, failed = [], []
        for batch in job.todo:
            outcome = run_with_retries(job, batch)
            if isinstance(outcome, BatchFailure):
                failed.append(outcome)
            else:
                done.append(outcome)
                on_done(outcome)
        self.incidents = retried_incidents(done, "this process")
        return done, failed
