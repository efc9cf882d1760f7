"""The Synthesize dock widget: pick a source layer and a generator, get the synthesis and its maps.

The dock is thin: :class:`~.synthesis_form.SynthesisForm` turns its fields into a request,
:class:`~.synthesis_job.SynthesisJob` runs it off the GUI thread with an explicit state, and
:class:`~.result_view.ResultView` keeps the result layers. Compare runs several generators on
the same request: :class:`~.comparison_view.ComparisonView` keeps their layers and
:class:`~.figures_table.FiguresTable` (a dock of its own) their figures.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, Select
from psygnal import Signal

from .._layers import write_result_layer
from .._reader import claim_nifti_files
from ..core.choices import Direction, ExportFormat, Stage
from ..core.errors import Cancelled, MedSynthError
from ..core.networks.export import export_generator
from ..core.networks.exported import SUFFIXES
from ..core.synthesis.catalog import read_generator_entry
from ..core.synthesis.options import SynthesisOptions
from ._settings import load_settings, restore_defaults, save_settings
from ._shared import RUNS, notify_warnings, report_error, scrolling_form
from .comparison_view import ComparisonView
from .figures_table import FiguresTable
from .result_view import ResultView, ShownResult, grid_tile
from .synthesis_form import SynthesisForm, default_save_path
from .synthesis_job import ComparisonRequest, JobState, SynthesisJob, SynthesisRequest

if TYPE_CHECKING:
    import napari

__all__ = ["SynthesisWidget", "grid_tile"]

EXPORT_CHOICES = list(zip(("TorchScript (.ts)", "ONNX (.onnx)", "MONAI bundle (a new folder)"),
                          (f.value for f in ExportFormat)))


class SynthesisWidget(Container):
    """Synthesize PD from T2 (or T2 from PD) for an image layer, with error maps against a ground truth."""

    status_changed = Signal(str)  # each new status line, as the user reads them

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        claim_nifti_files()
        self.form = SynthesisForm(viewer)
        self.view = ResultView(viewer)
        self.comparison = ComparisonView(viewer)
        self.figures = FiguresTable()  # docked by the first Compare
        self.job = SynthesisJob(on_stage=self._on_stage, on_result=self._on_result, on_folder=self._on_folder,
                                on_folder_stage=self._on_folder_stage,
                                on_row=self._on_compare_row, on_compared=self._on_compared, on_error=self._on_error,
                                on_progress=self._on_progress, on_state=self._on_state)
        self._run = PushButton(text="Synthesize")
        self._folder = FileEdit(label="folder", mode="d",
                                tooltip="a BIDS dataset, or a folder of IXI- or BIDS-named files (flat, or T2/ and "
                                        "PD/): every file of the source contrast, scored against its partner when "
                                        "there is one (a BIDS input gives a BIDS-derivatives dataset)")
        self._folder_out = FileEdit(label="folder output", mode="d", value=RUNS.folder / "syntheses")
        self._run_folder = PushButton(text="Synthesize folder")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="patches", value=0, max=1, visible=False)
        self._status = Label(value="")
        self._save_path = FileEdit(label="save as", mode="w", filter="*.nii.gz")
        self._save = PushButton(text="Save synthesis", enabled=False)
        self._export_format = ComboBox(label="export as", choices=EXPORT_CHOICES, value="torchscript")
        self._export_path = FileEdit(label="export to", mode="w",
                                     tooltip="a .ts or .onnx file (a sidecar .json goes beside it), or a new "
                                             "folder for the MONAI bundle")
        self._export = PushButton(text="Export generator",
                                  tooltip="the chosen generator as TorchScript, ONNX or a MONAI bundle, for use "
                                          "without napari-medsynth")
        self._restore = PushButton(text="Restore defaults",
                                   tooltip="forget the remembered runs folder, direction and synthesis options")
        self._compare_with = Select(label="compare", choices=self.form._generator_choices,
                                    tooltip="the generators Compare runs on the source (ctrl-click for several)")
        self._compare_with.native.setMaximumHeight(110)
        self._compare = PushButton(text="Compare", tooltip="run each generator selected above on the source and "
                                                          "score it against the ground truth: a figures table")
        self._side_worker = None  # a Save or an export
        self._remember = True
        form = self.form
        self._scroll = scrolling_form(self, [  # what a run shows (progress, figures) right below its button
            *form.widgets(), self._run, self._cancel, self._progress, self._status, self._save_path, self._save,
            self._compare_with, self._compare, self._folder, self._folder_out, self._run_folder,
            self._export_format, self._export_path, self._export, self._restore])

        form.direction.changed.connect(form.pick_layers)
        form.direction.changed.connect(self._refresh_generators)
        form.other.changed.connect(self.add_checkpoint)
        form.runs.changed.connect(lambda value: RUNS.set(value))
        RUNS.changed.connect(self._on_runs_changed)
        form.side_by_side.changed.connect(lambda value: self.view.apply_grid(value))
        self._run.changed.connect(self.start)
        self._run_folder.changed.connect(lambda: self.start_folder())
        self._compare.changed.connect(lambda: self.compare())
        self.figures.selected.connect(self.comparison.select)
        self._cancel.changed.connect(self.cancel)
        self._save.changed.connect(lambda: self.save())
        self._restore.changed.connect(self.restore_defaults)
        form.generator.changed.connect(self._suggest_export_path)
        self._export_format.changed.connect(self._suggest_export_path)
        self._export.changed.connect(self.export)
        self._apply_settings(load_settings())
        for key, widget in form.remembered().items():
            widget.changed.connect(lambda value, key=key: self._remember and save_settings(**{key: value}))
        # napari deletes dock widgets when it closes: stop a running synthesis then.
        self.native.destroyed.connect(partial(_stop_on_close, self.job, RUNS, self._on_runs_changed))
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
        return self._status.value

    @status.setter
    def status(self, line: str) -> None:
        self._status.value = line
        self.status_changed.emit(line)

    @property
    def shown(self) -> ShownResult | None:
        """The result Save writes (its synthesis layer's name), or None."""
        return self.view.shown

    @property
    def save_path(self) -> Path:
        """Where Save writes by default."""
        return Path(self._save_path.value)

    @property
    def file_started(self):
        """A signal ``(done, total, name)`` before each file of a folder."""
        return self.job.file_started

    @property
    def progress(self) -> tuple[int, int]:
        """The dock's progress bar: (done, total)."""
        return self._progress.value, self._progress.max

    @property
    def can_start(self) -> bool:
        return self._run.enabled

    @property
    def can_cancel(self) -> bool:
        return self._cancel.enabled

    @property
    def busy(self) -> bool:
        """A synthesis, a folder, a Save or an export is running."""
        return self.job.running or self._side_worker is not None

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
        self._compare_with.reset_choices()
        self._suggest_export_path()  # the list may change under an unchanged index, without a changed event

    def _on_runs_changed(self, folder):
        if Path(self.form.runs.value) != Path(folder):
            self.form.runs.value = folder
        self._refresh_generators()

    # running ------------------------------------------------------------------------------------
    def start(self):
        """Run the synthesis the form describes in a worker thread (a preview first, then refined)."""
        if self.job.running:
            return
        try:
            request = self.request()
        except Exception as error:
            self.status = report_error(error, "synthesis")
            return
        self.job.start(request)
        self.status = "previewing..." if request.preview_first else "synthesizing..."
        self._show_progress()

    def start_folder(self, folder=None, out=None):
        """Synthesize every file of the folder into the folder output, in a worker thread (files,
        sidecars and metrics.csv as ``medsynth synthesize DIR``)."""
        if self.job.running:
            return
        if folder is not None:
            self._folder.value = folder
        if out is not None:
            self._folder_out.value = out
        folder, out = Path(self._folder.value), Path(self._folder_out.value)
        try:
            if str(self._folder.value) in ("", ".") or not folder.is_dir():
                raise MedSynthError("choose a folder of scans (a BIDS dataset, or IXI files)")
            if not self.form.generator.value:
                raise MedSynthError(f"no {Direction(self.form.direction.value).label} generator: pick a "
                                    "checkpoint file")
            options = self.form.synthesis_options()
        except MedSynthError as error:
            self.status = report_error(error, "folder synthesis")
            return
        self.job.start_folder(folder, self.form.generator.value, out, options)
        self.status = f"synthesizing the files of {folder}..."
        self._show_progress()

    def compare(self, checkpoints=None):
        """Run each generator selected in the compare list (or of ``checkpoints``) on the source, one
        preprocessing and the form's options for all, each scored against the ground truth beside the
        intensity mapping: previews first (as the form says), then the refined results, row by row."""
        if self.job.running:
            return
        try:
            request = self.request()
            if request.truth is None:
                raise MedSynthError("Compare needs a ground truth layer: the figures are taken against it")
            chosen = tuple(str(path) for path in (self._compare_with.value if checkpoints is None else checkpoints))
            if not chosen:
                raise MedSynthError("select the generators to compare in the list above Compare")
        except Exception as error:
            self.status = report_error(error, "comparison")
            return
        comparison = ComparisonRequest(request, chosen)
        self.comparison.begin(comparison)
        self.figures.set_rows([])
        self._dock_figures()
        self.job.start_compare(comparison)
        self.status = f"comparing {len(chosen)} generators..."
        self._show_progress()

    def _dock_figures(self):
        """The figures table in a dock of its own (again, if the user closed it)."""
        try:
            docked = self.figures.parent() is not None and self.figures.isVisible()
        except RuntimeError:  # napari deleted the closed dock's table
            docked, self.figures = False, FiguresTable()
            self.figures.selected.connect(self.comparison.select)
        if not docked:
            self._viewer.window.add_dock_widget(self.figures, name="MedSynth figures", area="bottom")

    def _show_progress(self):
        """Scroll the dock so that Cancel, the progress bar and the status line are in view."""
        self._scroll.root_native_widget.ensureWidgetVisible(self._status.native, 0, 0)

    def cancel(self):
        """Stop the running synthesis after its current batch of patches."""
        self.job.cancel()

    def _on_state(self, state: JobState):
        running = self.job.running
        self._run.enabled = self._run_folder.enabled = self._compare.enabled = not running
        self._cancel.enabled = running and state != JobState.CANCELLING
        if not running:
            self._progress.label, self._progress.visible = "patches", False
            self._viewer.status = f"MedSynth: {self._status.value}"  # the outcome, not the last "patch N of N"
            self._show_progress()
        elif state in (JobState.PREVIEW, JobState.REFINING) and not self._progress.visible:
            self._progress.visible, self._progress.value = True, 0

    def _on_progress(self, unit: str, done: int, total: int, text: str):
        self._progress.label = unit
        self._progress.max, self._progress.value = total, done
        self.status = text
        self._viewer.status = f"MedSynth: {text}"  # napari's status bar, not "Ready", while it works

    def _on_stage(self, request: SynthesisRequest, result):
        """A picture on its way to the finished result: the first picture, the preview, their figures."""
        refined = result.stage == Stage.REFINED
        name = self.view.show(request, result, preview=not refined, side_by_side=self.form.side_by_side.value)
        self._on_shown()
        then = ("; the native grid's preview follows..." if result.stage == Stage.FIRST_PICTURE else
                "; its figures follow..." if result.scorable and request.truth is not None else
                "" if refined else f"; refining at stride {request.options.stride}...")
        what = {Stage.FIRST_PICTURE: "first picture (one pass on the report grid)",
                Stage.PREVIEW: "one-pass preview", Stage.REFINED: "patch average"}[result.stage]
        figures = f": {result.metrics.line()}" if result.metrics is not None else ""
        self.status = f"{name}: {what}{figures}{then}"

    def _on_result(self, request: SynthesisRequest, result):
        name = self.view.show(request, result, preview=False, side_by_side=self.form.side_by_side.value)
        line = f"{name}: {result.metrics.line()}" if result.metrics is not None else \
            f"{name} (no ground truth: no metrics)"
        if request.options.spread and result.spread is None and not request.options.preview:
            line += f"; no spread map at stride {request.options.stride} (its patches do not overlap)"
        self.view.settle(line)
        self._on_shown()
        self.status = line

    def _on_folder_stage(self, source, truth, result):
        """A stage of a folder's first file: shown beside that file (opened as layers) as a single
        synthesis is, so that the folder's first picture comes within seconds too."""
        names = [self.view.open_input(volume) if volume is not None else None for volume in (source, truth)]
        request = SynthesisRequest(source=source, checkpoint=self.form.generator.value,
                                   direction=self.form.direction.value, options=result.options, truth=truth,
                                   source_layer=names[0], truth_layer=names[1],
                                   subject=self._viewer.layers[names[0]].metadata["subject"])
        self._on_stage(request, result)

    def _on_folder(self, out: Path, output):
        report, files = output
        for line in report.failed:
            report_error(MedSynthError(line), "folder synthesis")
        untruthed = report.untruthed_line(Direction(self.form.direction.value).contrasts[1])
        if untruthed:
            from napari.utils.notifications import show_warning

            show_warning(untruthed)
        self.status = (f"{len(report.written)} of {len(files)} files synthesized into {out}"
                              + (f", {len(report.skipped)} skipped" if report.skipped else "")
                              + (f", {len(report.failed)} failed: {report.failed[0]}" if report.failed else ""))

    def _on_compare_row(self, comparison: ComparisonRequest, row, preview: bool):
        self.comparison.show_row(row, preview)
        self.figures.set_rows(list(self.comparison.rows.values()))
        if not preview:
            self.status = f"{row.label}: {row.error or row.metrics.line()}"

    def _on_compared(self, comparison: ComparisonRequest, rows):
        self.comparison.finish()
        self.figures.set_rows(rows)
        failed = [row.label for row in rows if row.error]
        self.status = (f"compared {len(rows) - 1 - len(failed)} generators and the intensity mapping; best "
                              f"PSNR on the source grid: {self.figures.best('source_psnr')}"
                              + (f"; {', '.join(failed)} could not run (see the table)" if failed else ""))

    def _on_error(self, request, error):
        if isinstance(request, ComparisonRequest):
            kept = self.comparison.finish()
            self.figures.set_rows(list(self.comparison.rows.values()))
            if isinstance(error, Cancelled):
                self.status = f"comparison cancelled; kept {', '.join(kept) or 'nothing'}"
            else:
                self.status = report_error(error, "comparison")
            return
        kept = self.view.keep_finished(self.form.side_by_side.value) if request is not None else ""
        self._on_shown()
        if isinstance(error, Cancelled):
            from napari.utils.notifications import show_info

            self.status = "synthesis cancelled" + kept
            show_info("MedSynth: synthesis cancelled" + kept)
            return
        self.status = report_error(error, "synthesis") + kept

    def _on_shown(self):
        """Save follows the result on screen: its button and its default file name."""
        shown = self.view.shown
        self._save.enabled = shown is not None
        if shown is not None:
            self._save_path.value = default_save_path(shown.name)

    # saving and exporting ------------------------------------------------------------------------
    def save(self, path=None) -> None:
        """Write the result on screen as NIfTI on its source's grid, with its sidecar, in a worker
        thread (:func:`~napari_medsynth._layers.write_result_layer`, as File > Save writes it)."""
        shown = self.view.shown
        if shown is None or self._side_worker is not None:
            return
        path = Path(path or self._save_path.value)
        if shown.name not in self._viewer.layers:
            self.status = report_error(MedSynthError(f"the layer {shown.name!r} is gone; synthesize again"),
                                              "saving")
            return
        layer = self._viewer.layers[shown.name]
        what = "the one-pass preview (not the patch average)" if layer.metadata.get("preview") else shown.name
        protect = tuple(p for p in (lay.metadata.get("source_path") for lay in self._viewer.layers) if p)
        self._run_aside(partial(write_result_layer, layer, path, protect), "saving",
                        lambda written: self._done_aside(f"saved {what} to {written[0]}", notify=True))

    def _suggest_export_path(self, *_):
        """``exports/<generator>.ts`` (``.onnx``, ``-bundle``) in the runs folder, for the chosen generator."""
        if not self.form.generator.value:
            return
        checkpoint = Path(self.form.generator.value)
        stem = checkpoint.parent.name if checkpoint.stem in ("best", "last") else checkpoint.stem
        ending = SUFFIXES.get(self._export_format.value, "-bundle")
        self._export_path.value = RUNS.folder / "exports" / f"{stem}{ending}"

    @property
    def export_format(self) -> str:
        """``torchscript``, ``onnx`` or ``monai-bundle``: choosing one suggests its file name."""
        return self._export_format.value

    @export_format.setter
    def export_format(self, value) -> None:
        self._export_format.value = ExportFormat.parse(value, "export format").value

    @property
    def export_path(self) -> Path:
        """Where Export writes by default (in the runs folder's ``exports/``)."""
        return Path(self._export_path.value)

    def export(self, out=None):
        """Export the chosen generator (to ``out``, else the suggested path) in a worker thread
        (core's :func:`export_generator`); one status line."""
        if out is not None:
            self._export_path.value = out
        checkpoint, out = self.form.generator.value, Path(self._export_path.value)
        if not checkpoint:
            self.status = report_error(MedSynthError("choose a generator to export"), "export")
            return
        if self._run_aside(partial(export_generator, checkpoint, self._export_format.value, out), "export",
                           lambda written: self._done_aside(f"exported to {written}")):
            self.status = f"exporting {Path(checkpoint).name} as {self._export_format.value}..."

    def _run_aside(self, function, what: str, on_done) -> bool:
        """Run ``function`` in a worker thread beside the synthesis job (one at a time)."""
        from napari.qt.threading import create_worker

        if self._side_worker is not None:
            return False
        worker = create_worker(function, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(on_done)
        worker.errored.connect(lambda error: self._done_aside(report_error(error, what)))
        worker.finished.connect(self._aside_finished)
        notify_warnings(worker)
        self._side_worker = worker
        self._save.enabled = self._export.enabled = False
        worker.start()
        return True

    def _done_aside(self, line: str, notify: bool = False):
        if self.job.closed:
            return
        if notify:
            from napari.utils.notifications import show_info

            show_info(f"MedSynth: {line}")
        self.status = line

    def _aside_finished(self):
        if self.job.closed:
            return
        self._side_worker = None
        self._export.enabled = True
        self._save.enabled = self.view.shown is not None


def _stop_on_close(job: SynthesisJob, runs, slot, *_):
    job.close()
    runs.changed.disconnect(slot)

