"""The Synthesize dock widget: pick a source layer and a generator, get the synthesis and its maps.

The dock is thin and lays out its controllers over one job runner
(:class:`~.job_runner.JobRunner`): :class:`~.synthesis_form.SynthesisForm` turns its fields into a
request, :class:`~.synthesis_single.SingleSynthesis` runs it and saves the result
(:class:`~.result_view.ResultView` keeps its layers), :class:`~.synthesis_folder.FolderSynthesis`
runs a folder, :class:`~.synthesis_compare.CompareGenerators` several generators (with the
figures table, a dock of its own) and :class:`~.synthesis_export.ExportGenerator` exports one.
"""

from __future__ import annotations

import contextlib
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, PushButton

from .._reader import claim_nifti_files
from ..core.choices import Direction
from ..core.synthesis.catalog import read_generator_entry
from ..core.synthesis.options import SynthesisOptions
from ._settings import load_settings, restore_defaults, save_settings
from ._shared import RUNS, report_error, scrolling_form
from .dock_context import DockContext
from .dock_status import DockStatus
from .job_runner import JobRunner, JobState
from .requests import SynthesisRequest
from .result_view import ResultView, ShownResult
from .synthesis_compare import CompareGenerators
from .synthesis_export import ExportGenerator
from .synthesis_folder import FolderSynthesis
from .synthesis_form import SynthesisForm
from .synthesis_single import SingleSynthesis

if TYPE_CHECKING:
    import napari

__all__ = ["SynthesisWidget"]


class SynthesisWidget(Container):
    """Synthesize PD from T2 (or T2 from PD) for an image layer, with error maps against a ground truth."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        claim_nifti_files()
        self.form = SynthesisForm(viewer)
        self.view = ResultView(viewer)
        self.job = JobRunner()
        self.lines = DockStatus(viewer)
        self.status_changed = self.lines.changed  # each new status line, as the user reads them
        context = DockContext(viewer, self.form, self.job, self.view, self.lines)
        self.single = SingleSynthesis(context)
        self.folder = FolderSynthesis(context, self.single.show_stage, self.single.on_error)
        self.comparing = CompareGenerators(context)
        self.exporting = ExportGenerator(context)
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._restore = PushButton(text="Restore defaults",
                                   tooltip="forget the remembered runs folder, direction and synthesis options")
        self._remember = True
        form, single = self.form, self.single
        self._scroll = scrolling_form(self, [  # what a run shows (progress, figures) right below its button
            *form.widgets(), single.run_button, self._cancel, *self.lines.widgets(), single.save_path,
            single.save_button, *self.comparing.widgets(), *self.folder.widgets(), *self.exporting.widgets(),
            self._restore])
        self.lines.scroll = self._scroll.root_native_widget

        form.direction.changed.connect(form.pick_layers)
        form.direction.changed.connect(self._refresh_generators)
        form.other.changed.connect(self.add_checkpoint)
        form.runs.changed.connect(lambda value: RUNS.set(value))
        RUNS.changed.connect(self._on_runs_changed)
        form.side_by_side.changed.connect(lambda value: self.view.apply_grid(value))
        self._cancel.changed.connect(self.cancel)
        self._restore.changed.connect(self.restore_defaults)
        self.job.state_changed.connect(self._on_state)
        self.job.progressed.connect(self.lines.advance)
        self.job.started.connect(self.lines.started)
        self.job.warned.connect(self.lines.warn)
        self.job.warned.connect(self.lines.reveal)
        viewer.layers.events.inserted.connect(self._on_inserted)
        self._apply_settings(load_settings())
        for key, widget in form.remembered().items():
            widget.changed.connect(lambda value, key=key: self._remember and save_settings(**{key: value}))
        # napari deletes dock widgets when it closes: stop a running synthesis then.
        self.native.destroyed.connect(partial(_stop_on_close, self.job, RUNS, self._on_runs_changed,
                                              viewer.layers.events.inserted, self._on_inserted))
        form.pick_layers()
        self._refresh_generators()

    # what a user (or a test, or the demo) sets and reads -----------------------------------------
    def configure(self, direction=None, generator=None, *, options: SynthesisOptions | None = None,
                  side_by_side: bool | None = None, preview_first: bool | None = None, source=None, truth=None,
                  mask=None, remember: bool = False) -> None:
        """Set the direction (switching to layers of its contrasts) and, where given, the rest; the
        remembered settings change only with ``remember`` (the demo leaves them alone)."""
        form, self._remember = self.form, remember
        try:
            if direction is not None:
                form.direction.value = Direction(direction).value
            for widget, value in ((form.generator, None if generator is None else str(generator)),
                                  (form.side_by_side, side_by_side), (form.preview_first, preview_first),
                                  (form.source, source), (form.truth, truth), (form.mask, mask)):
                if value is not None:
                    widget.value = value
            if options is not None:
                form.set_options(options)
        finally:
            self._remember = True

    def options(self) -> SynthesisOptions:
        """The synthesis options the form shows."""
        return self.form.synthesis_options()

    def request(self) -> SynthesisRequest:
        """What Synthesize would run now (raises :class:`MedSynthError` for a form it cannot run)."""
        return self.form.request()

    @property
    def side_by_side(self) -> bool:
        return self.form.side_by_side.value

    @property
    def generators(self) -> list[str]:
        """The generator list's checkpoints for the current direction."""
        return [value for value in self.form.generator.choices if value]

    @property
    def state(self) -> JobState:
        """Where the job is: idle, preview, refining, cancelling, done."""
        return self.job.state

    @property
    def worker(self):
        """The running worker, or None."""
        return self.job.worker

    @property
    def status(self) -> str:
        """The dock's status line (``status_changed`` tells each new one)."""
        return self.lines.text

    @status.setter
    def status(self, line: str) -> None:
        self.lines.text = line

    @property
    def warnings(self) -> list[str]:
        """The warnings in view under the status line: the last run's (the source's contrast, NaN
        voxels) and the form's (a ground truth of another subject or grid)."""
        return self.lines.warnings

    @property
    def shown(self) -> ShownResult | None:
        """The result Save writes (its synthesis layer's name), or None."""
        return self.view.shown

    @property
    def save_path(self) -> Path:
        """Where Save writes by default."""
        return Path(self.single.save_path.value)

    @property
    def file_started(self):
        """A signal ``(done, total, name)`` before each file of a folder."""
        return self.job.file_started

    @property
    def progress(self) -> tuple[int, int]:
        """The dock's progress bar: (done, total)."""
        return self.lines.progress.value, self.lines.progress.max

    @property
    def can_start(self) -> bool:
        return self.single.run_button.enabled

    @property
    def can_cancel(self) -> bool:
        return self._cancel.enabled

    @property
    def busy(self) -> bool:
        """A synthesis, a folder, a Save or an export is running."""
        return self.job.running or self.job.aside is not None

    # what a user does ---------------------------------------------------------------------------
    def start(self) -> None:
        """Run the synthesis the form describes in a worker thread (a preview first, then refined)."""
        self.single.start()

    def start_folder(self, folder=None, out=None) -> None:
        """Synthesize every file of the folder into the folder output, in a worker thread."""
        self.folder.start(folder, out)

    def compare(self, checkpoints=None) -> None:
        """Run the generators chosen in the compare list (or ``checkpoints``) on the source, scored."""
        self.comparing.start(checkpoints)

    def save(self, path=None) -> None:
        """Write the result on screen (to ``path``, else the suggested file), in a worker thread."""
        self.single.save(path)

    def export(self, out=None) -> None:
        """Export the chosen generator (to ``out``, else the suggested path), in a worker thread."""
        self.exporting.start(out)

    def cancel(self) -> None:
        """Stop the running synthesis after its current batch of patches."""
        self.job.cancel()

    def add_checkpoint(self, path) -> None:
        """Add a checkpoint file to the list (switching to its direction) and choose it."""
        path = Path(path)
        if not path.is_file():
            return
        try:
            entry = read_generator_entry(path)
        except Exception as error:
            report_error(error, "loading the checkpoint")
            return
        self.form.extra[str(path)] = entry
        self.form.direction.value = entry.info.direction
        self._refresh_generators()
        self.form.generator.value = str(path)

    def restore_defaults(self, *_):
        """Forget the remembered choices and go back to the defaults."""
        settings = restore_defaults()
        self._apply_settings(settings)
        RUNS.set(settings["runs_folder"])
        restore_defaults()  # the lines above saved the defaults again
        self.status = "defaults restored"

    def reset_choices(self, *_):
        """Refresh the layer lists (napari calls this when layers change)."""
        self._scroll.reset_choices()

    def _apply_settings(self, settings: dict) -> None:
        self._remember = False
        try:
            for key, widget in self.form.remembered().items():
                value = settings.get(key)
                if value is None or (isinstance(widget, ComboBox) and value not in list(widget.choices)):
                    continue  # e.g. a GPU that is gone: the default stays
                widget.value = value
        finally:
            self._remember = True

    def _refresh_generators(self, *_):
        self.form.refresh_generators()
        self.comparing.chosen.reset_choices()
        self.exporting.suggest_path()  # the list may change under an unchanged index, without a changed event

    def _on_runs_changed(self, folder):
        if Path(self.form.runs.value) != Path(folder):
            self.form.runs.value = folder
        self._refresh_generators()

    def _on_state(self, state: JobState):
        running = self.job.running
        for button in (self.single.run_button, self.folder.run_button, self.comparing.run_button):
            button.enabled = not running
        self._cancel.enabled = running and state != JobState.CANCELLING
        if not running:
            self.lines.finished()  # napari's status bar keeps the outcome, not the last "patch N of N"
        self.lines.reveal()

    def _on_inserted(self, event) -> None:
        """A scan the user opens while the dock is idle becomes the source (:meth:`SynthesisForm.opened`)."""
        if not self.job.running:
            self.form.opened(event.value, idle=lambda: not self.job.running)


def _stop_on_close(job: JobRunner, runs, slot, inserted, on_inserted, *_):
    job.close()
    runs.changed.disconnect(slot)
    # When napari closes, the viewer's emitters may be torn down before the dock.
    with contextlib.suppress(AttributeError, RuntimeError):
        inserted.disconnect(on_inserted)
