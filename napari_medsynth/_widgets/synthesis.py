"""The Synthesize dock widget: pick a source layer and a generator, get the synthesis and its maps."""

from __future__ import annotations

import threading
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, create_widget
from qtpy.QtCore import QObject, Signal

from .._layers import layer_mask, layer_volume, result_layers
from ..core.catalog import (
    GeneratorEntry,
    bundled_generators,
    default_generator,
    describe,
    find_generators,
    read_generator_entry,
)
from ..core.checkpoint import load_checkpoint
from ..core.choices import DIRECTIONS, direction_label
from ..core.errors import Cancelled, MedSynthError
from ..core.export import EXPORT_FORMATS, export_generator
from ..core.exported import SUFFIXES
from ..core.nifti import save_volume
from ._settings import load_settings, restore_defaults, save_settings
from ._shared import RUNS, device_choices, narrow, report_error, scrolling_form

if TYPE_CHECKING:
    import napari

__all__ = ["SynthesisWidget", "grid_tile", "run_folder_synthesis", "run_synthesis"]

STRIDES = [("8 (the report)", 8), ("16", 16), ("32 (fast, no spread map)", 32)]
PREVIEW = "preview"  # the label suffix of a one-pass preview's layers until the refinement replaces them
GRID_CHOICES = [("native: every slice", "native"), ("report: one slice in three", "report")]
ENGINE_CHOICES = [("auto (the faster per layer)", "auto"), ("direct", "direct"), ("fft (transform domain)", "fft")]
EXPORT_CHOICES = list(zip(("TorchScript (.ts)", "ONNX (.onnx)", "MONAI bundle (a new folder)"), EXPORT_FORMATS))


def run_synthesis(checkpoint, direction, source, truth, grid, stride, device, engine, spread, preview, mask,
                  masked_maps, progress, cancel):
    """The worker's job: load the generator; with ``preview``, first yield a one-pass preview
    ``(result, info)`` (seconds); return the patch-averaged ``(result, info)``."""
    from ..core.synthesis import synthesize

    generator, info = load_checkpoint(checkpoint, direction)
    if preview:
        yield synthesize(source, generator, info, target=truth, grid=grid, device=device, engine=engine,
                         preview=True, mask=mask, masked_maps=masked_maps, cancel=cancel), info
    result = synthesize(source, generator, info, target=truth, grid=grid, stride=stride, device=device,
                        engine=engine, spread=spread, mask=mask, masked_maps=masked_maps, progress=progress,
                        cancel=cancel)
    return result, info


def run_folder_synthesis(folder, checkpoint, out, **options):
    """The worker's job for a folder: :func:`~napari_medsynth.core.batch.synthesize_folder`, then
    ``metrics.csv``; returns ``(report, files)``."""
    from ..core.batch import synthesize_folder, write_folder_metrics

    output = synthesize_folder(folder, checkpoint, out, **options)
    write_folder_metrics(out)
    return output


def metrics_line(metrics: dict) -> str:
    """The figures on the source's grid first (whole volume, head), then the report grid's PSNR."""
    whole, head, report = metrics["source"], metrics["head"], metrics["report"]
    return (f"MAE {whole['mae']:.4f}, PSNR {whole['psnr']:.2f} dB, SSIM {whole['ssim']:.4f} "
            f"(head: PSNR {head['psnr']:.2f} dB; report grid: {report['psnr']:.2f} dB)")


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (a queued Qt connection)."""

    progressed = Signal(int, int)
    file_started = Signal(int, int, str)


class _CancelFlag:
    """Set by the Cancel button, by napari closing (``worker.quit``) or by the widget going away
    (then ``closed`` too: the worker's last signals find no widget to update)."""

    def __init__(self):
        self.event = threading.Event()
        self.worker = None
        self.closed = False

    def is_set(self) -> bool:
        return self.event.is_set() or bool(self.worker is not None and self.worker.abort_requested)


def _while_open(slot):
    """A slot of a worker's signal that does nothing once napari has deleted the widget's Qt parts."""
    @wraps(slot)
    def guarded(self, *args):
        if not self._cancel_flag.closed:
            slot(self, *args)
    return guarded


class SynthesisWidget(Container):
    """Synthesize PD from T2 (or T2 from PD) for an image layer, with error maps against a ground truth."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self._extra: dict[str, GeneratorEntry] = {}  # checkpoints picked with the file dialog
        self._listed: dict[str, GeneratorEntry] = {}  # the generator list's entries, by path
        self._source = create_widget(annotation="napari.layers.Image", label="source")
        self._truth = create_widget(annotation="napari.layers.Image", label="ground truth",
                                    options={"nullable": True, "value": None})
        self._mask = create_widget(annotation="napari.layers.Labels", label="mask",
                                   options={"nullable": True, "value": None,
                                            "tooltip": "a labels layer on the source's grid (non-zero: inside) for "
                                                       "the 'head' figures; none: the automatic head mask"})
        self._masked_maps = CheckBox(text="error maps only within the mask", value=False)
        self._direction = ComboBox(label="direction", choices=[(direction_label(d), d) for d in DIRECTIONS])
        self._generator = ComboBox(label="generator", choices=self._generator_choices, nullable=True)
        self._other = FileEdit(label="other checkpoint", mode="r", filter="*.pt")
        self._runs = FileEdit(label="runs folder", mode="d", value=RUNS.folder)
        self._synthesis_grid = ComboBox(label="grid", choices=GRID_CHOICES, value="native",
                              tooltip="native: all 96 resampled slices are synthesized (3x the work); "
                                      "report: one slice in three, as the report, the rest interpolated")
        self._stride = ComboBox(label="stride", choices=STRIDES, value=8)
        self._device = ComboBox(label="device", choices=device_choices(), value="auto")
        self._engine = ComboBox(label="convolutions", choices=ENGINE_CHOICES, value="auto",
                                tooltip="the same result either way; auto runs each layer the faster way")
        self._spread = CheckBox(text="patch-disagreement (spread) map", value=True)
        self._preview = CheckBox(text="quick preview first (one pass), then refine", value=True)
        self._side_by_side = CheckBox(text="side by side (grid)", value=False)
        self._run = PushButton(text="Synthesize")
        self._folder = FileEdit(label="folder", mode="d",
                                tooltip="a folder of IXI files (flat, or T2/ and PD/): every file of the source "
                                        "contrast, scored against its partner when there is one")
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
        self._export_worker = None
        self._restore = PushButton(text="Restore defaults",
                                   tooltip="forget the remembered runs folder, direction, grid, stride, device "
                                           "and convolutions")
        narrow(self._status, self._generator, self._source, self._truth, self._mask, self._synthesis_grid,
               self._engine)
        self._form = scrolling_form(self, [
            self._source, self._truth, self._mask, self._direction, self._generator, self._other, self._runs,
            self._synthesis_grid, self._stride, self._device, self._engine, self._spread, self._masked_maps,
            self._preview, self._side_by_side, self._run, self._folder, self._folder_out, self._run_folder,
            self._cancel, self._progress, self._status, self._save_path, self._save, self._export_format,
            self._export_path, self._export, self._restore])

        self._worker = None
        self._cancel_flag = _CancelFlag()
        self._napari_progress = None
        self._settled = True  # the last run's outcome is shown
        self._last = None  # (synthesis layer name, source Volume, checkpoint) of the result on screen
        self._finished = None  # (name, source, checkpoint, status line) of the last finished result
        self._grid_tiles = ()  # the layers the grid shows, to reset the camera when they change
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_progress)

        self._direction.changed.connect(self._pick_layers)
        self._direction.changed.connect(self._refresh_generators)
        self._other.changed.connect(self._add_other_checkpoint)
        self._runs.changed.connect(lambda value: RUNS.set(value))
        RUNS.changed.connect(self._on_runs_changed)
        self._side_by_side.changed.connect(self._apply_grid)
        self._run.changed.connect(self.start)
        self._run_folder.changed.connect(self.start_folder)
        self._relay.file_started.connect(self._on_file)
        self._cancel.changed.connect(self.cancel)
        self._save.changed.connect(lambda: self.save())
        self._restore.changed.connect(self.restore_defaults)
        self._generator.changed.connect(self._suggest_export_path)
        self._export_format.changed.connect(self._suggest_export_path)
        self._export.changed.connect(self.export)
        self._apply_settings(load_settings())
        for key, widget in self._remembered().items():
            widget.changed.connect(lambda value, key=key: save_settings(**{key: value}))
        # napari deletes dock widgets when it closes: stop a running synthesis then.
        self.native.destroyed.connect(partial(_stop_on_close, self._cancel_flag, RUNS, self._on_runs_changed))
        self._choose_source_and_direction()

    def _remembered(self) -> dict:
        """The choices that persist, by settings key."""
        return {"direction": self._direction, "grid": self._synthesis_grid, "stride": self._stride,
                "device": self._device, "engine": self._engine}

    def _apply_settings(self, settings: dict) -> None:
        for key, widget in self._remembered().items():
            if settings[key] in [value for value in widget.choices]:  # e.g. a GPU that is gone: keep the default
                widget.value = settings[key]

    def restore_defaults(self, *_):
        """Forget the remembered choices and go back to the defaults."""
        settings = restore_defaults()
        self._apply_settings(settings)
        RUNS.set(settings["runs_folder"])
        restore_defaults()  # the lines above saved the defaults again
        self._status.value = "defaults restored"

    def reset_choices(self, *_):
        """Refresh the layer lists (napari calls this when layers change)."""
        self._form.reset_choices()

    # choices -------------------------------------------------------------------------------------
    def _generator_choices(self, _widget=None) -> list[tuple[str, str]]:
        direction = self._direction.value
        entries = [*bundled_generators(direction), *find_generators(RUNS.folder, direction),
                   *(e for e in self._extra.values() if e.info.direction == direction)]
        self._listed = {str(entry.path): entry for entry in entries}
        return [(entry.title, path) for path, entry in self._listed.items()]

    def _refresh_generators(self, *_):
        previous = self._generator.value
        self._generator.reset_choices()
        values = [value for value in self._generator.choices if value]
        if previous in values:
            self._generator.value = previous
        elif values:
            default = default_generator(self._direction.value)
            self._generator.value = str(default.path) if default and str(default.path) in values else values[-1]
        entry = self._listed.get(self._generator.value)
        self._generator.tooltip = describe(entry) if entry else ""
        self._suggest_export_path()  # the list may change under an unchanged index, without a changed event

    def _on_runs_changed(self, folder):
        if Path(self._runs.value) != Path(folder):
            self._runs.value = folder
        self._refresh_generators()

    def _add_other_checkpoint(self, path):
        path = Path(path)
        if not path.is_file():
            return
        try:
            entry = read_generator_entry(path)
        except Exception as error:
            report_error(error, "loading the checkpoint")
            return
        self._extra[str(path)] = entry
        self._direction.value = entry.info.direction
        self._refresh_generators()
        self._generator.value = str(path)

    def _choose_source_and_direction(self):
        """Start on a T2 layer (with its PD partner as ground truth) when the viewer has one."""
        self._pick_layers()
        self._refresh_generators()

    def _pick_layers(self):
        """Take the layers whose contrast fits the direction: its source, and the other as truth."""
        from napari.layers import Image

        wanted, other = DIRECTIONS[self._direction.value]
        by_contrast = {}
        for layer in self._viewer.layers:  # the first input layer of each contrast, never a result layer
            if isinstance(layer, Image) and "medsynth_run" not in layer.metadata:
                by_contrast.setdefault(layer.metadata.get("contrast"), layer)
        source, truth = self._source.value, self._truth.value
        if wanted in by_contrast and (source is None or source.metadata.get("contrast") != wanted):
            self._source.value = by_contrast[wanted]
        if other in by_contrast and (truth is None or truth.metadata.get("contrast") != other):
            self._truth.value = by_contrast[other]

    def configure(self, direction: str, generator=None, *, stride=None, device=None, grid=None,
                  side_by_side=None):
        """Set the direction (switching to layers of its contrasts) and, where given, the rest."""
        self._direction.value = direction
        for widget, value in ((self._generator, None if generator is None else str(generator)),
                              (self._stride, stride), (self._synthesis_grid, grid), (self._device, device),
                              (self._side_by_side, side_by_side)):
            if value is not None:
                widget.value = value

    # running -------------------------------------------------------------------------------------
    def start(self):
        """Run the synthesis in a worker thread (napari's ``thread_worker``)."""
        from napari.qt.threading import create_worker

        if self._worker is not None:
            return
        source_layer, truth_layer = self._source.value, self._truth.value
        try:
            if source_layer is None:
                raise MedSynthError("choose a source image layer")
            if not self._generator.value:
                raise MedSynthError(f"no {direction_label(self._direction.value)} generator: pick a checkpoint file")
            source = layer_volume(source_layer)
            truth = layer_volume(truth_layer) if truth_layer is not None and truth_layer is not source_layer else None
            mask = layer_mask(self._mask.value, source_layer) if self._mask.value is not None else None
        except Exception as error:
            self._status.value = report_error(error, "synthesis")
            return
        job = {"source_layer": source_layer.name, "truth_layer": truth_layer.name if truth else None,
               "subject": _subject(source_layer), "source": source, "checkpoint": self._generator.value}
        job["spread"], job["stride"] = self._spread.value, self._stride.value  # as run, whatever the boxes say later
        worker = create_worker(
            run_synthesis, self._generator.value, self._direction.value, source, truth,
            self._synthesis_grid.value, job["stride"], self._device.value, self._engine.value,
            self._spread.value, self._preview.value, mask, self._masked_maps.value, self._relay.progressed.emit,
            self._cancel_flag, _start_thread=False, _ignore_errors=True,  # errors: notifications in _on_errored
        )
        worker.yielded.connect(partial(self._on_preview, job))
        worker.returned.connect(partial(self._on_returned, job))
        worker.errored.connect(partial(self._on_errored, job))
        self._launch(worker, "MedSynth: synthesizing", "patches",
                     "previewing..." if self._preview.value else "synthesizing...")

    def _launch(self, worker, description: str, unit: str, status: str) -> None:
        """Start ``worker`` as the widget's one running job, with Cancel, both progress bars and a status."""
        from napari.utils import progress

        self._cancel_flag.event.clear()
        self._cancel_flag.worker = worker
        self._settled = False
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._napari_progress = progress(total=0, desc=description)
        self._progress.label, self._progress.visible, self._progress.value = unit, True, 0
        self._run.enabled, self._run_folder.enabled, self._cancel.enabled = False, False, True
        self._status.value = status
        worker.start()

    def start_folder(self):
        """Synthesize every file of the folder into the folder output, in a worker thread (files,
        sidecars and metrics.csv as ``medsynth synthesize DIR``)."""
        from napari.qt.threading import create_worker

        if self._worker is not None:
            return
        folder, out = Path(self._folder.value), Path(self._folder_out.value)
        try:
            if str(self._folder.value) in ("", ".") or not folder.is_dir():
                raise MedSynthError("choose a folder of IXI files")
            if not self._generator.value:
                raise MedSynthError(f"no {direction_label(self._direction.value)} generator: pick a checkpoint file")
        except MedSynthError as error:
            self._status.value = report_error(error, "folder synthesis")
            return
        worker = create_worker(
            run_folder_synthesis, folder, self._generator.value, out, grid=self._synthesis_grid.value,
            stride=self._stride.value, device=self._device.value, engine=self._engine.value,
            maps=out if self._spread.value or self._masked_maps.value else None, masked_maps=self._masked_maps.value,
            on_file=self._relay.file_started.emit, progress=None, cancel=self._cancel_flag,
            _start_thread=False, _ignore_errors=True,
        )
        worker.returned.connect(partial(self._on_folder_returned, out))
        worker.errored.connect(partial(self._on_errored, {}))
        self._launch(worker, "MedSynth: synthesizing a folder", "files", f"synthesizing the files of {folder}...")

    @_while_open
    def _on_file(self, done: int, total: int, name: str):
        if self._settled:
            return
        self._progress.max, self._progress.value = total, done
        self._status.value = f"file {done + 1} of {total}: {name}"
        if self._napari_progress is not None:
            if self._napari_progress.total != total:
                self._napari_progress.total = total
            self._napari_progress.update(done - self._napari_progress.n)

    @_while_open
    def _on_folder_returned(self, out: Path, output):
        self._settled = True
        report, files = output
        for line in report.failed:
            report_error(MedSynthError(line), "folder synthesis")
        line = (f"{len(report.written)} of {len(files)} files synthesized into {out}"
                + (f", {len(report.skipped)} skipped" if report.skipped else "")
                + (f", {len(report.failed)} failed: {report.failed[0]}" if report.failed else ""))
        self._status.value = line

    def cancel(self):
        """Stop the running synthesis after its current batch of patches."""
        self._cancel_flag.event.set()

    @property
    def worker(self):
        """The running worker, or None."""
        return self._worker

    @_while_open
    def _on_progress(self, done: int, total: int):
        if self._settled:  # a late progress signal must not overwrite the outcome
            return
        self._progress.max, self._progress.value = total, done
        self._status.value = f"patch {done} of {total}"
        if self._napari_progress is not None:  # last: its update may process pending events
            if self._napari_progress.total != total:
                self._napari_progress.total = total
            self._napari_progress.update(done - self._napari_progress.n)

    @_while_open
    def _on_preview(self, job: dict, output):
        name = self._add_result(job, output, stride=PREVIEW)
        self._status.value = f"{name}: one-pass preview; refining at stride {job['stride']}..."

    @_while_open
    def _on_returned(self, job: dict, output):
        self._settled = True
        self._remove_preview(job)
        name = self._add_result(job, output, stride=job["stride"])
        metrics = output[0].metrics
        line = f"{name}: {metrics_line(metrics)}" if metrics else f"{name} (no ground truth: no metrics)"
        if job.get("spread") and output[0].spread is None:
            line += f"; no spread map at stride {job['stride']} (its patches do not overlap)"
        self._status.value = line
        self._finished = (*self._last, line)

    def _add_result(self, job: dict, output, stride) -> str:
        """Show a result as layers (replacing this generator's earlier ones, or its earlier preview's);
        returns the synthesis' name."""
        result, info = output
        target = info.target_contrast
        label = f"{info.label} {PREVIEW}" if stride == PREVIEW else info.label
        metadata = {"generator": job["checkpoint"], "direction": info.direction, "variant": info.label,
                    "stride": stride, "grid": result.grid, "synthesized_from": job["source_layer"],
                    "ground_truth": job["truth_layer"], "metrics": {k: dict(v) for k, v in result.metrics.items()},
                    "medsynth_run": f"{job['subject']} {target} [{label}]"}
        layers = result_layers(result, job["source"], subject=job["subject"], label=label, target=target,
                               metadata=metadata)
        names = self._show(layers, metadata["medsynth_run"])
        job["preview_run"] = metadata["medsynth_run"] if stride == PREVIEW else None
        self._last = (names[0], job["source"], job["checkpoint"])
        self._save.enabled = True
        self._save_path.value = _default_save_path(job["source"], names[0])
        self._apply_grid()
        return names[0]

    def _remove_preview(self, job: dict) -> None:
        """Remove the job's preview layers (the refinement replaces them, or a finished result stays)."""
        run_key = job.pop("preview_run", None)
        layers = self._viewer.layers
        for layer in [layer for layer in layers if run_key and layer.metadata.get("medsynth_run") == run_key]:
            layers.remove(layer)

    def _keep_what_is_finished(self, job: dict) -> str:
        """After a cancel or an error: the earlier finished result, when it is still on screen, stays
        (and is what Save writes) and this job's preview goes; else the preview stays, named as one.
        Returns the words that say which."""
        if not job.get("preview_run"):
            return ""
        if self._finished is not None and self._finished[0] in self._viewer.layers:
            self._remove_preview(job)
            self._last = self._finished[:3]
            self._apply_grid()
            return f"; the earlier result stays: {self._finished[3]}"
        return f"; only the one-pass preview is left ({self._last[0]}): Save writes that"

    def _show(self, layers: list[tuple], run_key: str) -> list[str]:
        """Add the result layers in their order, replacing this generator's previous ones for the subject."""
        names = [kwargs["name"] for _, kwargs, _ in layers]
        existing = self._viewer.layers
        for layer in list(existing):
            if layer.metadata.get("medsynth_run") == run_key and layer.name not in names:
                existing.remove(layer)
        for previous, (data, kwargs, _) in zip([None, *names], layers):
            if kwargs["name"] not in existing:
                self._viewer.add_image(data, **kwargs)
            else:
                layer = existing[kwargs["name"]]
                layer.data = data
                for key in ("scale", "translate", "contrast_limits", "colormap", "metadata"):
                    setattr(layer, key, kwargs[key])
            if previous is not None:  # a map added by a later run goes beside its synthesis
                existing.move(existing.index(kwargs["name"]), existing.index(previous) + 1)
        return names

    @_while_open
    def _on_errored(self, job: dict, error):
        self._settled = True
        kept = self._keep_what_is_finished(job)
        if isinstance(error, Cancelled):
            from napari.utils.notifications import show_info

            self._status.value = "synthesis cancelled" + kept
            show_info("MedSynth: synthesis cancelled" + kept)
            return
        self._status.value = report_error(error, "synthesis") + kept

    @_while_open
    def _on_finished(self):
        self._worker = None
        if self._napari_progress is not None:
            self._napari_progress.close()
            self._napari_progress = None
        self._progress.label, self._progress.visible = "patches", False
        self._run.enabled, self._run_folder.enabled, self._cancel.enabled = True, True, False

    # exporting -----------------------------------------------------------------------------------
    def _suggest_export_path(self, *_):
        """``exports/<generator>.ts`` (``.onnx``, ``-bundle``) in the runs folder, for the chosen generator."""
        if not self._generator.value:
            return
        checkpoint = Path(self._generator.value)
        stem = checkpoint.parent.name if checkpoint.stem in ("best", "last") else checkpoint.stem
        ending = SUFFIXES.get(self._export_format.value, "-bundle")
        self._export_path.value = RUNS.folder / "exports" / f"{stem}{ending}"

    def export(self):
        """Export the chosen generator in a worker thread (core's :func:`export_generator`); one status line."""
        from napari.qt.threading import create_worker

        if self._export_worker is not None:
            return
        checkpoint, out = self._generator.value, Path(self._export_path.value)
        if not checkpoint:
            self._status.value = report_error(MedSynthError("choose a generator to export"), "export")
            return
        worker = create_worker(export_generator, checkpoint, self._export_format.value, out,
                               _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_exported)
        worker.errored.connect(self._on_export_errored)
        worker.finished.connect(self._on_export_finished)
        self._export_worker = worker
        self._export.enabled = False
        self._status.value = f"exporting {Path(checkpoint).name} as {self._export_format.value}..."
        worker.start()

    @_while_open
    def _on_exported(self, written):
        self._status.value = f"exported to {written}"

    @_while_open
    def _on_export_errored(self, error):
        self._status.value = report_error(error, "export")

    @_while_open
    def _on_export_finished(self):
        self._export_worker = None
        self._export.enabled = True

    # showing and saving --------------------------------------------------------------------------
    def _apply_grid(self, *_):
        """Side by side: source | synthesis | ground truth | maps in napari's grid (one shared camera),
        each tile labelled with its layer's name and the whole head in view. Off: the maps are hidden,
        so the synthesis shows over its source."""
        grid = _grid(self._viewer)
        if not self._side_by_side.value or self._last is None or self._last[0] not in self._viewer.layers:
            if grid.enabled:
                grid.enabled = False
                layers = self._viewer.layers
                for layer in layers:
                    layer.name_overlay.visible = False
                    if "medsynth_run" in layer.metadata and " synth " not in layer.name:
                        layer.visible = False
                if self._last is not None and self._last[0] in layers:
                    layers.move(layers.index(self._last[0]), len(layers))
                self._viewer.reset_view()
            self._grid_tiles = ()
            return
        synthesis = self._viewer.layers[self._last[0]]
        run_key = synthesis.metadata["medsynth_run"]
        ordered = [synthesis.metadata["synthesized_from"], synthesis.name, synthesis.metadata["ground_truth"],
                   *(layer.name for layer in self._viewer.layers
                     if layer.metadata.get("medsynth_run") == run_key and layer.name != synthesis.name)]
        ordered = [name for name in ordered if name and name in self._viewer.layers]
        layers = self._viewer.layers
        for layer in layers:
            layer.visible = layer.name in ordered
        for name in reversed(ordered):  # source on top of the list
            layers.move(layers.index(name), len(layers))
        grid.shape = (-1, min(3, len(ordered)))
        grid.enabled = True
        if grid_tile(grid, layers, ordered[0]) != (0, 0):  # this napari fills the grid from the bottom layer up
            for name in ordered:
                layers.move(layers.index(name), len(layers))
        for layer in layers:
            layer.name_overlay.visible = layer.name in ordered
        if tuple(ordered) != self._grid_tiles:  # new tiles: fit the whole head into each
            self._grid_tiles = tuple(ordered)
            self._viewer.reset_view()

    def save(self, path=None) -> Path | None:
        """Write the last synthesis as NIfTI on its source's grid (the source's affine and header)."""
        path = Path(path or self._save_path.value)
        if self._last is None:
            return None
        name, source, _ = self._last
        try:
            if name not in self._viewer.layers:
                raise MedSynthError(f"the layer {name!r} is gone; synthesize again")
            layer = self._viewer.layers[name]
            data = layer_volume(layer).data
            written = save_volume(path, data, source, protect=_input_paths(self._viewer))
        except Exception as error:
            self._status.value = report_error(error, "saving")
            return None
        from napari.utils.notifications import show_info

        what = "the one-pass preview (not the patch average)" if layer.metadata.get("stride") == PREVIEW else name
        show_info(f"MedSynth: saved {what} to {written}")
        self._status.value = f"saved {what} to {written}"
        return written


def _grid(viewer):
    """napari's grid settings (``viewer.canvas.grid`` from napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def grid_tile(grid, layers, name: str) -> tuple[int, int]:
    """(row, column) of layer ``name``'s tile in napari's grid (its API changed in napari 0.9)."""
    index = layers.index(name)
    try:
        return tuple(grid.position(index, layers))
    except TypeError:  # napari < 0.9: position(index, nlayers)
        return tuple(grid.position(index, len(layers)))


def _subject(layer) -> str:
    subject = layer.metadata.get("subject") or layer.name.split()[0]
    return str(subject).split("-")[0]


def _input_paths(viewer) -> tuple[str, ...]:
    return tuple(p for p in (layer.metadata.get("source_path") for layer in viewer.layers) if p)


def _default_save_path(source, layer_name: str) -> Path:
    """In ``syntheses/`` beside the runs, never among the input data."""
    folder = RUNS.folder / "syntheses"
    stem = layer_name.replace(" [", "_").replace("]", "").replace("+", "").replace(" ", "_")
    return folder / f"{stem}.nii.gz"


def _stop_on_close(cancel_flag: _CancelFlag, runs, slot, *_):
    cancel_flag.closed = True
    cancel_flag.event.set()
    runs.changed.disconnect(slot)
