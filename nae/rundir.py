"""The lock of a run directory: one training writes into it at a time.

``RUN_DIR/.lock`` holds the PID and host of the process training in the directory, and
that process holds an exclusive ``flock`` on it.  The kernel drops the ``flock`` when its
process dies, however it dies, so a lock file left by a killed training is *stale*: the
next training takes it over.  A second training while the first is alive is refused with
a message naming the holder.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Optional

from .errors import CheckpointError

LOCK_NAME = ".lock"


class RunLock:
    """An exclusive, non-blocking lock on a run directory (a context manager too)."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.stale_holder: Optional[str] = None  #: "PID host" of a dead holder taken over
        self._file = None

    def acquire(self) -> "RunLock":
        """Takes the lock (a dead holder's stale lock is taken over); CheckpointError if a live process holds it."""
        while self._file is None:
            f = open(self.path, "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(f)
                f.close()
                raise CheckpointError(
                    f"{self.run_dir} is in use by another training (PID {holder or 'unknown'}); wait for it to "
                    f"end or stop it, or choose another --out") from None
            if not _same_file(f, self.path):  # released and removed meanwhile: lock the new file
                f.close()
                continue
            self.stale_holder = _read(f) or None
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()} on {socket.gethostname()}\n")
            f.flush()
            self._file = f
        return self

    def release(self) -> None:
        """Releases the lock and empties the lock file (nothing stale is left)."""
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()  # an empty lock file: released cleanly, nothing stale
        except OSError:
            pass
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._file is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read(f) -> str:
    f.seek(0)
    return f.read().strip()


def _same_file(f, path: Path) -> bool:
    try:
        return os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
