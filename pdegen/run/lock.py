"""One writer per dataset directory: a lock file naming its holder (host, pid, start time).

Why flock and not only an O_EXCL file: a run killed with SIGKILL cannot remove its lock file,
and a pid check alone is fooled by pid reuse. The kernel drops an flock the moment its holder
dies, so a leftover file whose lock can be taken is stale by definition and is taken over; the
holder's host and pid written inside only serve to tell the user who is writing. The lock file
is removed on release; a taker checks that the path still names the inode it locked, so a
release racing with a new taker never leaves two holders.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from pdegen.errors import PdegenError

LOCK_NAME = ".pdegen.lock"


def holder_line(text: str) -> str:
    """'pid P on host H since T' from a lock file's contents (or what is known of it)."""
    try:
        info = json.loads(text)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f"pid {info['pid']} on host {info['host']}, since {since}"
    except (ValueError, KeyError, TypeError, OverflowError):
        return "a process that left no details"


class DatasetLock:
    """Held by the one process that plans a dataset and writes its index (the root)."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None
        self.took_over_stale = False

    def acquire(self) -> DatasetLock:
        for _ in range(10):  # retried only when a release races with us (rare)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            existing = os.read(fd, 4096).decode(errors="replace")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise PdegenError(
                    f"{self.path.parent}: another `pdegen generate` is writing this dataset "
                    f"({holder_line(existing)}); wait for it to finish, or delete {self.path} "
                    "if that run is gone"
                ) from None
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # released and removed between our open and our flock
                os.close(fd)
                continue
            self.took_over_stale = bool(existing.strip())
            info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            self._fd = fd
            return self
        raise PdegenError(f"{self.path}: could not take the dataset lock (it keeps changing)")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still holding it: the next taker sees a new inode
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> DatasetLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
