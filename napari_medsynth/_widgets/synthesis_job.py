"""What the synthesis dock runs: a request (what the form says), and a job with an explicit run
state that runs it in a worker thread and reports back on the GUI thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from functools import wraps
from pathlib import Path

from qtpy.QtCore import QObject, Signal

from ..core.choices import Grid, Stage
from ..core.files.nifti import Volume
from ..core.synthesis.options import SynthesisOptions
from ._shared import notify_warnings

__all__ = ["ComparisonRequest", "JobState", "SynthesisJob", "SynthesisRequest", "run_comparison", "run_synthesis"]


class JobState(Enum):
    """Where the dock's job is."""

    IDLE = "idle"  # nothing has run yet
    PREVIEW = "preview"  # the one-pass preview is being computed
    REFINING = "refining"  # the patch average (or a folder) is being computed
    CANCELLING = "cancelling"  # Cancel was pressed: the worker stops after its current batch
    DONE = "done"  # the last job ended (finished, failed or cancelled)


@dataclass(frozen=True)
class SynthesisRequest:
    """One synthesis, as the form describes it: what :func:`run_synthesis` needs and how to show it."""

    source: Volume
    checkpoint: str
    direction: str
    options: SynthesisOptions
    truth: Volume | None = None
    mask: object = None  # a boolean array on the source's grid, or None: the automatic head mask
    preview_first: bool = True
    source_layer: str = ""
    truth_layer: str | None = None
    subject: str = ""

    @property
    def previews_first(self) -> bool:
        """A one-pass preview comes before the result (the result is not itself a preview)."""
        return self.preview_first and not self.options.preview


@dataclass(frozen=True)
class ComparisonRequest:
    """Several generators on the request's source and truth, with its options."""

    request: SynthesisRequest
    checkpoints: tuple[str, ...]


def run_comparison(comparison: ComparisonRequest, on_row, progress, cancel):
    """The worker's job for Compare, staged as a single synthesis is (each picture before its
    figures): with ``preview_first``, each generator's first picture (one pass on the report grid,
    no figures; from a native-grid request), then its one-pass preview with figures, then the refined
    comparison; ``on_row(row, preview)`` hears each row as it is done."""
    from ..core.errors import Cancelled
    from ..core.synthesis.compare import compare_generators

    request, options = comparison.request, comparison.request.options
    phases = []  # (options, figures)
    if request.previews_first:
        if options.grid == Grid.NATIVE:
            phases.append((options.replace(grid=Grid.REPORT, preview=True), False))
        phases.append((options.replace(preview=True), True))
    phases.append((options, True))
    for phase_options, figures in phases:
        preview = phase_options is not options
        rows = compare_generators(request.source, comparison.checkpoints, request.direction, phase_options,
                                  target=request.truth, mask=request.mask, cancel=cancel, figures=figures,
                                  progress=None if preview else progress, on_row=lambda row, p=preview: on_row(row, p))
        if cancel.is_set():
            raise Cancelled("comparison cancelled")
        if preview:
            yield rows
    return rows


def run_synthesis(request: SynthesisRequest, progress, cancel):
    """The worker's job: load the generator, yield each stage of
    :func:`~napari_medsynth.core.synthesis.pipeline.synthesis_stages` (with ``preview_first``, the first
    picture within seconds, each picture before its figures) and return the last, finished one."""
    from ..core.networks.checkpoint import load_checkpoint
    from ..core.synthesis.pipeline import synthesis_stages

    generator = load_checkpoint(request.checkpoint, request.direction)
    stages = synthesis_stages(request.source, generator, request.options, target=request.truth, mask=request.mask,
                              progress=progress, cancel=cancel, preview_first=request.preview_first)
    for result in stages:
        if result.final:
            return result
        yield result  # at once: the next stage's work comes after the user sees this one


def run_folder_synthesis(folder, checkpoint, out, options, *, on_file, on_stage, cancel):
    """The worker's job for a folder: :func:`~napari_medsynth.core.synthesis.folder.synthesize_folder` (the
    first file's pictures to ``on_stage`` as they come), then ``metrics.csv``; returns ``(report, files)``."""
    from ..core.synthesis.folder import synthesize_folder, write_folder_metrics

    output = synthesize_folder(folder, checkpoint, out, options, on_file=on_file, on_stage=on_stage, cancel=cancel)
    write_folder_metrics(out)
    return output


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (a queued Qt connection)."""

    progressed = Signal(int, int)
    file_started = Signal(int, int, str)
    compared = Signal(object, bool)  # a comparison's row, whether a preview
    folder_staged = Signal(object, object, object)  # a folder's first file: source, truth, a stage's result


class _CancelFlag:
    """Set by Cancel, by napari closing (``worker.quit``) or by the dock going away."""

    def __init__(self):
        self.event = threading.Event()
        self.worker = None

    def is_set(self) -> bool:
        return self.event.is_set() or bool(self.worker is not None and self.worker.abort_requested)


def _while_open(slot):
    """A slot that does nothing once the dock is closed (the worker's last signals find no dock)."""
    @wraps(slot)
    def guarded(self, *args):
        if not self.closed:
            slot(self, *args)
    return guarded


class SynthesisJob:
    """The dock's one job at a time: a synthesis (preview, then refined) or a folder.

    The callbacks run on the GUI thread: ``on_stage(request, result)`` (each stage before the
    finished one: :func:`~napari_medsynth.core.synthesis.pipeline.synthesis_stages`), ``on_folder_stage(source,
    truth, result)`` (those of a folder's first file), ``on_result(request,
    result)``, ``on_folder(out, (report, files))``, ``on_row(comparison, row, preview)`` and
    ``on_compared(comparison, rows)``, ``on_error(request, error)`` (a
    :class:`~napari_medsynth.core.errors.Cancelled` when cancelled; ``request`` is the
    :class:`ComparisonRequest` of a comparison), ``on_progress(unit, done, total, text)`` and
    ``on_state(state)``.
    """

    def __init__(self, *, on_stage, on_result, on_folder, on_folder_stage, on_row, on_compared, on_error, on_progress,
                 on_state):
        self.state = JobState.IDLE
        self.worker = None
        self.closed = False
        self._callbacks = {"stage": on_stage, "result": on_result, "folder": on_folder,
                           "folder_stage": on_folder_stage, "row": on_row, "compared": on_compared,
                           "error": on_error, "progress": on_progress, "state": on_state}
        self._cancel = _CancelFlag()
        self._comparison = None  # the running comparison's request
        self._napari_progress = None
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_patches)
        self._relay.compared.connect(self._on_row)
        self._relay.folder_staged.connect(self._on_folder_stage)
        self.file_started = self._relay.file_started  # (done, total, name) before each file of a folder
        self.file_started.connect(self._on_file)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, request: SynthesisRequest) -> bool:
        """Run ``request``; False if a job is already running."""
        from napari.qt.threading import create_worker

        if self.running:
            return False
        worker = create_worker(run_synthesis, request, self._relay.progressed.emit, self._cancel,
                               _start_thread=False, _ignore_errors=True)  # errors: on_error
        worker.yielded.connect(lambda result: self._stage_done(request, result))
        worker.returned.connect(lambda result: self._returned("result", request, result))
        worker.errored.connect(lambda error: self._errored(request, error))
        first = JobState.PREVIEW if request.previews_first else JobState.REFINING
        self._launch(worker, "MedSynth: synthesizing", first)
        return True

    def start_folder(self, folder: Path, checkpoint: str, out: Path, options: SynthesisOptions) -> bool:
        """Synthesize every file of ``folder`` into ``out`` (files, sidecars, metrics.csv)."""
        from napari.qt.threading import create_worker

        if self.running:
            return False
        worker = create_worker(run_folder_synthesis, folder, checkpoint, out, options,
                               on_file=self._relay.file_started.emit, on_stage=self._relay.folder_staged.emit,
                               cancel=self._cancel, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda output: self._returned("folder", out, output))
        worker.errored.connect(lambda error: self._errored(None, error))
        self._launch(worker, "MedSynth: synthesizing a folder", JobState.REFINING)
        return True

    def start_compare(self, comparison: ComparisonRequest) -> bool:
        """Run each generator of ``comparison`` (previews first, as the request says), row by row."""
        from napari.qt.threading import create_worker

        if self.running:
            return False
        worker = create_worker(run_comparison, comparison, self._relay.compared.emit, self._relay.progressed.emit,
                               self._cancel, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(lambda _rows: self._state_after_preview())
        worker.returned.connect(lambda rows: self._returned("compared", comparison, rows))
        worker.errored.connect(lambda error: self._errored(comparison, error))
        request = comparison.request
        first = JobState.PREVIEW if request.previews_first else JobState.REFINING
        self._comparison = comparison
        self._launch(worker, "MedSynth: comparing generators", first)
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

    def _launch(self, worker, description: str, state: JobState) -> None:
        from napari.utils import progress

        self._cancel.event.clear()
        self._cancel.worker = worker
        worker.finished.connect(self._finished)
        notify_warnings(worker)
        self.worker = worker
        self._napari_progress = progress(total=0, desc=description)
        self._set_state(state)
        worker.start()

    def _set_state(self, state: JobState) -> None:
        self.state = state
        self._callbacks["state"](state)

    def _settled(self) -> bool:
        """Whether the outcome is already shown (a late progress signal must not overwrite it)."""
        return self.state in (JobState.DONE, JobState.IDLE)

    @_while_open
    def _stage_done(self, request, result):
        if result.stage != Stage.FIRST_PICTURE:  # the native preview (and then the patch average) is under way
            self._state_after_preview()
        self._callbacks["stage"](request, result)

    def _state_after_preview(self):
        if self.state == JobState.PREVIEW:
            self._set_state(JobState.REFINING)

    @_while_open
    def _on_folder_stage(self, source, truth, result):
        self._callbacks["folder_stage"](source, truth, result)

    @_while_open
    def _on_row(self, row, preview: bool):
        self._callbacks["row"](self._comparison, row, preview)

    @_while_open
    def _returned(self, kind, request, output):
        self._set_state(JobState.DONE)
        self._callbacks[kind](request, output)

    @_while_open
    def _errored(self, request, error):
        self._set_state(JobState.DONE)
        self._callbacks["error"](request, error)

    @_while_open
    def _on_patches(self, done: int, total: int):
        self._advance("patches", done, total, f"patch {done} of {total}")

    @_while_open
    def _on_file(self, done: int, total: int, name: str):
        self._advance("files", done, total, f"file {done + 1} of {total}: {name}")

    def _advance(self, unit: str, done: int, total: int, text: str) -> None:
        if self._settled():
            return
        self._callbacks["progress"](unit, done, total, text)
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
            self._callbacks["state"](JobState.DONE)
