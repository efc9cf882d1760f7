"""One trainer per run folder: an exclusive lock on ``RUN_DIR/.lock`` that names its holder.

The lock is the operating system's (a POSIX record lock, ``fcntl.lockf``; ``msvcrt.locking`` on
Windows), so it is released when the holder dies, even by SIGKILL; the file keeps the holder's PID
and host, so a second trainer is refused in one line that names them, and a trainer that finds a
dead holder's record takes the folder over with a warning.

A record lock belongs to the process that took it: the DataLoader workers that the trainer forks
inherit the open file but not the lock. (``flock`` belongs to the open file, which forked workers
share: a trainer killed by SIGKILL left the folder locked until its orphaned workers noticed and
exited, seconds later.) A process holds a record lock once however many descriptors it opens, and
closing any of them drops it, so this module also refuses a second lock of a folder in one process
before it opens the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
import warnings
import weakref
from pathlib import Path

from napari_medsynth.core.errors import MedSynthError

__all__ = ["RunLock"]


class RunLock:
    """The lock of ``run_dir``; :meth:`acquire` takes it or raises, :meth:`release` gives it back."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / ".lock"
        self._handle = None

    def acquire(self) -> RunLock:
        """Take the lock.

        Raises
        ------
        MedSynthError
            Another live process holds it, or this process does already.
        """
        key = os.path.realpath(self.path)
        with _HELD_GUARD:
            holder = _HELD.get(key)
            if holder is not None and holder._handle is not None:  # before opening: see the module's notes
                raise MedSynthError(f"{self.path.parent} is being trained by this process (PID {os.getpid()}): "
                                    "one trainer per run folder")
            self._acquire()
            _HELD[key] = self
        return self

    def _acquire(self) -> None:
        handle = open(self.path, "a+")  # noqa: SIM115 (held open as long as the lock)
        if not _lock_exclusively(handle):
            holder = _holder(handle)
            handle.close()
            raise MedSynthError(
                f"{self.path.parent} is being trained by PID {holder.get('pid', '?')} on {holder.get('host', '?')} "
                f"(since {holder.get('since', '?')}): one trainer per run folder; stop that one first"
            ) from None
        previous = _holder(handle)
        if previous.get("pid") not in (None, os.getpid()):
            warnings.warn(f"{self.path.parent}: taking over from PID {previous['pid']} on {previous.get('host')}, "
                          "which stopped without releasing the folder", stacklevel=3)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        os.fsync(handle.fileno())
        self._handle = handle

    def release(self) -> None:
        """Give the lock back and remove the record (a no-op when not held)."""
        if self._handle is not None:
            if os.name == "nt":  # Windows removes no open file: close first
                self._handle.close()
            with contextlib.suppress(OSError):  # gone, or (Windows) already opened by the next trainer
                self.path.unlink(missing_ok=True)
            self._handle.close()
            self._handle = None


# The locks this process holds, by the real path of their file (a lock dropped unreleased
# leaves with its closed file).
_HELD: weakref.WeakValueDictionary[str, RunLock] = weakref.WeakValueDictionary()
_HELD_GUARD = threading.Lock()


# Windows locks byte ranges and keeps other processes from reading a locked one: lock a byte
# past the record, so that a refused trainer can still read who holds the folder.
_WINDOWS_LOCK_OFFSET = 1 << 20


def _lock_exclusively(handle) -> bool:
    """Take the non-blocking exclusive lock on ``handle``; False when another process holds it."""
    if os.name == "nt":
        import msvcrt

        os.lseek(handle.fileno(), _WINDOWS_LOCK_OFFSET, os.SEEK_SET)  # locking() starts at the descriptor's offset
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the whole file, whatever the offset
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EAGAIN):  # POSIX allows either for a held lock
            return False
        raise
    return True


def _holder(handle) -> dict:
    handle.seek(0)
    try:
        record = json.loads(handle.read() or "{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}
