"""Writing files so that a crash or Ctrl-C never leaves a partial one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import MedSynthError

__all__ = ["atomic_output"]


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
        raise MedSynthError(f"{path.parent}: cannot write there ({error.strerror})") from None
    try:
        yield tmp_name
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise MedSynthError(f"{path}: cannot write ({error.strerror})") from None
        raise
