"""The training event stream: what the trainer reports, as typed events, and the run folder's
``events.jsonl`` that carries them to the CLI, the training widget and its live plot.

Each event is one JSON object per line with a ``kind`` field (and the ``time`` it was
written); :class:`EventLog` appends them and tails them back as the dataclasses below.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

from ..errors import MedSynthError
from ..files.atomic import write_failure

__all__ = [
    "EVENTS_FILE",
    "DoneEvent",
    "EventLog",
    "StartEvent",
    "StepEvent",
    "StoppedEvent",
    "TrainingEvent",
    "ValidationEvent",
]

EVENTS_FILE = "events.jsonl"


@dataclass(frozen=True)
class StartEvent:
    """Training (re)starts: ``epoch`` epochs of ``epochs`` are done, ``steps`` per epoch."""

    kind: ClassVar[str] = "start"
    epochs: int
    steps: int
    epoch: int
    train_subjects: int
    validation_subjects: int
    world_size: int
    device: str
    variant: str
    direction: str


@dataclass(frozen=True)
class StepEvent:
    """Step ``step`` of ``steps`` in epoch ``epoch`` (counted from 1) and its losses."""

    kind: ClassVar[str] = "step"
    epoch: int
    step: int
    steps: int
    loss_g: float
    loss_d: float
    loss_rec: float
    loss_adv: float
    loss_gdl: float


@dataclass(frozen=True)
class ValidationEvent:
    """The end of epoch ``epoch``: its mean losses, validation figures (mean and std over the
    validation subjects), whether it is the best so far, its time and throughput."""

    kind: ClassVar[str] = "validation"
    epoch: int
    mae: float
    psnr: float
    ssim: float
    mae_std: float
    psnr_std: float
    ssim_std: float
    best: bool
    best_epoch: int
    seconds: float
    losses: dict
    throughput: dict


@dataclass(frozen=True)
class StoppedEvent:
    """Training stopped on request at ``epoch``, ``step`` (0: between epochs); last.pt holds it."""

    kind: ClassVar[str] = "stopped"
    epoch: int
    step: int


@dataclass(frozen=True)
class DoneEvent:
    """All epochs are done; the best epoch and its validation PSNR."""

    kind: ClassVar[str] = "done"
    best_epoch: int
    best_psnr: float
    epochs: int


TrainingEvent = StartEvent | StepEvent | ValidationEvent | StoppedEvent | DoneEvent
_KINDS = {cls.kind: cls for cls in (StartEvent, StepEvent, ValidationEvent, StoppedEvent, DoneEvent)}


class EventLog:
    """``RUN_DIR/events.jsonl``: :meth:`append` writes an event, :meth:`read_new` returns the
    events written since its previous call (a line still being written waits for the next)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / EVENTS_FILE
        self._offset = 0
        self._partial = b""

    def append(self, event: TrainingEvent) -> None:
        """Add ``event`` as one line (with the current time)."""
        try:
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"kind": event.kind, "time": time.time(), **asdict(event)}) + "\n")
        except OSError as error:
            raise MedSynthError(write_failure(self.path, error)) from error

    def sync(self) -> int:
        """Flush the log to disk (fsync); return its length in bytes (0 before the first event)."""
        if not self.path.exists():
            return 0
        with open(self.path, "ab") as handle:  # writable: fsync of a read-only handle fails on Windows
            os.fsync(handle.fileno())
            return handle.tell()

    def read_new(self) -> list[TrainingEvent]:
        """The complete events written since the previous call (none if the file is missing)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        events = [_parse(line) for line in lines]
        return [event for event in events if event is not None]


def _parse(line: bytes) -> TrainingEvent | None:
    """The event of one line; None for a torn line (a crashed writer) or a kind this version does not know."""
    try:
        record = json.loads(line)
        cls = _KINDS[record["kind"]]
        return cls(**{f.name: record[f.name] for f in fields(cls)})
    except (ValueError, KeyError, TypeError):
        return None
