"""The run folder's ``events.jsonl``: the trainer appends one JSON object per line, readers tail it."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["EVENTS_FILE", "EventLog"]

EVENTS_FILE = "events.jsonl"


class EventLog:
    """Reads the events appended to ``RUN_DIR/events.jsonl`` since the last call.

    Events are dicts with an ``event`` key: ``start``, ``step`` (every few steps:
    ``epoch``, ``step``, ``steps``, losses), ``validation`` (``epoch``, ``mae``,
    ``psnr``, ``ssim``, ``best``), ``stopped`` and ``done``. A line still being
    written is kept for the next call.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / EVENTS_FILE
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[dict]:
        """The complete events written since the previous call (none if the file is missing)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a torn line from a crashed writer is skipped, not fatal
        return events
