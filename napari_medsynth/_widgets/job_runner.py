"""The synthesis dock's one worker module: a job at a time in a worker thread, with an explicit,
evented state, and a Save or an export beside it.

A job is work (a function run in the worker thread) and the handlers of what it gives back, all
called on the GUI thread: each value it yields, each value it posts while it runs (a comparison's
row, a folder's first pictures), what it returns, or the error that ended it (a
:class:`~napari_medsynth.core.errors.Cancelled` when cancelled). Its progress and state are
signals the dock listens to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import wraps

from psygnal import Signal
from qtpy.QtCore import QObject
from qtpy.QtCore import Signal as QtSignal

from ._shared import notify_warnings, report_error

__all__ = ["Job", "JobRunner", "JobState", "WorkChannel"]


class JobState(Enum):
    """Where the dock's job is."""

    IDLE = "idle"  # nothing has run yet
    PREVIEW = "preview"  # the one-pass preview is being computed
    REFINING = "refining"  # the patch average (or a folder) is being computed
    CANCELLING = "cancelling"  # Cancel was pressed: the worker stops after its current batch
    DONE = "done"  # the last job ended (finished, failed or cancelled)


@dataclass(frozen=True)
class Job:
    """Work for the worker thread, ``work(*args, channel)``, and its GUI-thread handlers."""

    work: Callable
    args: tuple
    description: str  # napari's progress bar
    on_done: Callable[[object], None]
    on_error: Callable[[BaseException], None]
    on_yield: Callable[[object], None] | None = None
    on_post: Callable[[object], None] | None = None
    first: JobState = JobState.REFINING


class _Relay(QObject):
    """Carries what the worker thread reports to the GUI thread (queued Qt connections)."""

    progressed = QtSignal(str, int, int, str)  # unit, done, total, text
    file_started = QtSignal(int, int, str)  # done, total, name
    posted = QtSignal(object)


class _CancelFlag:
    """Set by Cancel, by napari closing (``worker.quit``) or by the dock going away."""

    def __init__(self):
        self.event = threading.Event()
        self.worker = None

    def is_set(self) -> bool:
        return self.event.is_set() or bool(self.worker is not None and self.worker.abort_requested)


class WorkChannel:
    """What a job's work is handed: progress to report, values to post, the cancel flag to poll."""

    def __init__(self, relay: _Relay, cancel: _CancelFlag):
        self._relay, self.cancel = relay, cancel

    def patches(self, done: int, total: int) -> None:
        self._relay.progressed.emit("patches", done, total, f"patch {done} of {total}")

    def file(self, done: int, total: int, name: str) -> None:
        self._relay.file_started.emit(done, total, name)

    def post(self, value) -> None:
        self._relay.posted.emit(value)


def _while_open(slot):
    """A slot that does nothing once the dock is closed (the worker's last signals find no dock)."""
    @wraps(slot)
    def guarded(self, *args):
        if not self.closed:
            slot(self, *args)
    return guarded


class JobRunner:
    """The dock's jobs, one at a time; ``state_changed(state)`` and ``progressed(unit, done, total,
    text)`` tell the dock, ``file_started(done, total, name)`` before each file of a folder, ``started()``
    when a job begins and ``warned(line)`` each warning its work gives."""

    state_changed = Signal(object)
    progressed = Signal(str, int, int, str)
    file_started = Signal(int, int, str)
    started = Signal()  # a job began
    aside_changed = Signal(bool)  # a Save or an export began (True) or ended (False)
    warned = Signal(str)  # a warning of the job's (or a Save's) work: the source's contrast, NaN voxels...

    def __init__(self):
        self.state = JobState.IDLE
        self.worker = None
        self.aside = None  # a Save or an export
        self.closed = False
        self._job: Job | None = None
        self._cancel = _CancelFlag()
        self._napari_progress = None
        self._relay = _Relay()
        self._relay.progressed.connect(self._advance)
        self._relay.file_started.connect(self._on_file)
        self._relay.posted.connect(self._posted)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, job: Job) -> bool:
        """Run ``job`` in a worker thread; False if a job is already running."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self.running:
            return False
        worker = create_worker(job.work, *job.args, WorkChannel(self._relay, self._cancel),
                               _start_thread=False, _ignore_errors=True)  # errors: on_error
        if hasattr(worker, "yielded"):  # a generator's worker
            worker.yielded.connect(self._yielded)
        worker.returned.connect(self._returned)
        worker.errored.connect(self._errored)
        worker.finished.connect(self._finished)
        self._relay_warnings(worker)
        self._cancel.event.clear()
        self._cancel.worker, self.worker, self._job = worker, worker, job
        self._napari_progress = progress(total=0, desc=job.description)
        self.started.emit()
        self._set_state(job.first)
        worker.start()
        return True

    def cancel(self) -> None:
        """Stop the running job after its current batch of patches."""
        if self.running:
            self._cancel.event.set()
            self._set_state(JobState.CANCELLING)

    def close(self) -> None:
        """The dock is going away: stop the job; its last signals change nothing."""
        self.closed = True
        self._cancel.event.set()

    def refining(self) -> None:
        """The job's preview is shown: its refinement is under way."""
        if self.state == JobState.PREVIEW:
            self._set_state(JobState.REFINING)

    def run_aside(self, function, what: str, on_done: Callable[[object], None],
                  on_error: Callable[[str], None]) -> bool:
        """Run ``function`` (a Save, an export) in a worker thread beside the job, one at a time:
        ``on_done(its value)`` or ``on_error(the error's line)``; ``aside_changed`` tells when it begins and ends."""
        from napari.qt.threading import create_worker

        if self.aside is not None:
            return False
        worker = create_worker(function, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda value: self.closed or on_done(value))
        worker.errored.connect(lambda error: self.closed or on_error(report_error(error, what)))
        worker.finished.connect(self._aside_finished)
        self._relay_warnings(worker)
        self.aside = worker
        self.aside_changed.emit(True)
        worker.start()
        return True

    def _relay_warnings(self, worker) -> None:
        """Each warning of ``worker`` as a napari notification and as ``warned``."""
        notify_warnings(worker)
        worker.warned.connect(lambda args: self.closed or self.warned.emit(str(args[0])))

    def _aside_finished(self) -> None:
        if not self.closed:
            self.aside = None
            self.aside_changed.emit(False)

    def _set_state(self, state: JobState) -> None:
        self.state = state
        self.state_changed.emit(state)

    @_while_open
    def _yielded(self, value):
        self._job.on_yield(value)

    @_while_open
    def _posted(self, value):
        if self._job is not None and self._job.on_post is not None:
            self._job.on_post(value)

    @_while_open
    def _returned(self, value):
        self._set_state(JobState.DONE)
        self._job.on_done(value)

    @_while_open
    def _errored(self, error):
        self._set_state(JobState.DONE)
        self._job.on_error(error)

    @_while_open
    def _on_file(self, done: int, total: int, name: str) -> None:
        self.file_started.emit(done, total, name)
        self._advance("files", done, total, f"file {done + 1} of {total}: {name}")

    @_while_open
    def _advance(self, unit: str, done: int, total: int, text: str) -> None:
        if self.state in (JobState.DONE, JobState.IDLE):  # a late signal must not overwrite the outcome
            return
        self.progressed.emit(unit, done, total, text)
        if self._napari_progress is not None:  # last: its update may process pending events
            if self._napari_progress.total != total:
                self._napari_progress.total = total
            self._napari_progress.update(done - self._napari_progress.n)

    @_while_open
    def _finished(self):
        self.worker = None
        if self._napari_progress is not None:
            self._napari_progress.close()
            self._napari_progress = None
        if self.state != JobState.DONE:  # e.g. napari quit the worker
            self._set_state(JobState.DONE)
        else:
            self.state_changed.emit(JobState.DONE)
