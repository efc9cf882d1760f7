"""Writing files so that a crash or Ctrl-C never leaves a partial one."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import MedSynthError

__all__ = ["atomic_folder", "atomic_output", "file_sha256", "human_size", "make_folder", "write_failure", "write_json"]


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; flush it to disk and rename it onto ``path``
    on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` is left as it was. The file gets the usual permissions (0666 less the umask).
    The temporary file is fsynced before the rename and the folder after it, so that a
    power cut leaves either the old file or the whole new one.

    Raises
    ------
    MedSynthError
        The folder cannot be created or written, or the disk is full (the message gives
        the free space).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(handle)
    except OSError as error:
        raise MedSynthError(f"{path.parent}: cannot write there ({error.strerror})") from error
    try:
        yield tmp_name
        os.chmod(tmp_name, 0o666 & ~_umask())
        _fsync(tmp_name)
        os.replace(tmp_name, path)
        if os.name == "posix":  # the rename itself, in the folder's entry
            _fsync(path.parent)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise MedSynthError(write_failure(path, error)) from error
        raise


def write_json(path: str | os.PathLike, content, indent: int | None = 1) -> None:
    """Write ``content`` as JSON (UTF-8, one trailing newline) to ``path`` with :func:`atomic_output`.

    Raises
    ------
    MedSynthError
        As :func:`atomic_output`.
    """
    with atomic_output(path) as tmp_name:
        Path(tmp_name).write_text(json.dumps(content, indent=indent) + "\n", encoding="utf-8")


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` to fill; rename it onto ``path`` (which must not
    exist, or be an empty folder) on success, and remove it on any exception.

    Raises
    ------
    MedSynthError
        The folder cannot be created or written, or the disk is full.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as error:
        raise MedSynthError(write_failure(path.parent, error)) from error
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        os.replace(staging, path)
        if os.name == "posix":
            _fsync(path.parent)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise MedSynthError(write_failure(path, error)) from error
        raise


def write_failure(path: str | os.PathLike, error: OSError) -> str:
    """One line for a failed write of ``path``: the reason, and the free space when the disk is full."""
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        with suppress(OSError):
            reason += f"; {human_size(shutil.disk_usage(Path(path).parent).free)} free there"
    return f"{path}: cannot write ({reason})"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: str | os.PathLike) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def human_size(count: float) -> str:
    """A byte count for people, in decimal units: ``"512 B"``, ``"1.2 kB"``, ``"4 TB"``."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"


def make_folder(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and its parents) if needed; return it.

    Raises
    ------
    MedSynthError
        It cannot be created, or it exists but cannot be written.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MedSynthError(f"{path}: cannot write there ({error.strerror})") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise MedSynthError(f"{path}: cannot write there (permission denied)")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex (read in 1 MB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
