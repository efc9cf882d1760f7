"""A training run as a child process (``python -m src_train train ...``), with no Qt.

The Train widget starts, polls and stops runs through :class:`TrainingProcess`; training is
started by module name (:data:`~.train_config.TRAIN_MODULE`), never imported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ..files.atomic import make_folder
from .config import TRAIN_MODULE

__all__ = ["TrainingProcess"]


class TrainingProcess:
    """A ``medsynth-train`` child process with its output in ``RUN_DIR/train.log``.

    It runs in its own session, so a crash of either side leaves the other alive;
    :meth:`stop` sends SIGINT, which makes the trainer save ``last.pt`` and exit 130.

    Parameters
    ----------
    argv : list of str
        The arguments after ``medsynth-train`` (see :func:`~.train_config.train_argv`).
    run_dir : path
        The run folder (created if needed); ``train.log`` is appended to there.
    """

    def __init__(self, argv: list[str], run_dir: str | os.PathLike):
        self.argv = argv
        self.run_dir: Path = make_folder(run_dir)
        self.log_path = self.run_dir / "train.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", TRAIN_MODULE, *argv], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.process.poll()

    def stop(self, wait: float = 0.0) -> int | None:
        """Ask the trainer to save ``last.pt`` and exit; wait up to ``wait`` s, then kill what is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
        if wait:
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL) if os.name == "posix" else self.process.kill()
                self.process.wait()
        return self.process.poll()

    def last_line(self) -> str:
        """The last non-empty line the trainer printed (its one-line error, when it failed)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
        return lines[-1] if lines else ""
