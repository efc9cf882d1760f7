"""Writing files so that a crash or Ctrl-C never leaves a partial one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import MedSynthError

__all__ = ["atomic_output", "make_folder"]


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; rename it onto ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` is left as it was. The file gets the usual permissions (0666 less the umask).

    Raises
    ------
    MedSynthError
        The folder cannot be created or written.
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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise MedSynthError(f"{path}: cannot write ({error.strerror})") from error
        raise


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
