"""The Train dock widget: runs ``medsynth-train train`` as a child process and plots its run folder live."""

from __future__ import annotations

import contextlib
import logging
import shlex
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    TextEdit,
)
from qtpy.QtCore import QTimer

from .._reader import claim_nifti_files
from ..core.choices import Direction, Variant, run_label
from ..core.console import EXIT_INTERRUPTED
from ..core.errors import MedSynthError
from ..core.files.scans import find_pairs
from ..core.training.config import LR_SCHEDULES, train_argv, train_defaults
from ..core.training.events import EventLog, StartEvent, StepEvent, TrainingEvent, ValidationEvent
from ..core.training.process import TrainingProcess
from ._settings import load_settings, save_settings
from ._shared import RUNS, device_choices, report_error, scrolling_form
from .loss_plot import LossPlot

log = logging.getLogger("napari_medsynth")

if TYPE_CHECKING:
    import napari

__all__ = ["TrainingWidget"]

# filter-count scales: the report's generator and narrower ones for CPUs and quick tries
WIDTHS = [("1 (the report)", 1.0), ("1/2", 0.5), ("1/4", 0.25), ("1/8", 0.125), ("1/16", 0.0625)]

POLL_MS = 250
# Without a GPU the report's size (width 1, 32 epochs) takes days; the form starts at a size that
# trains in minutes to an hour on a CPU, and says so.
CPU_DEFAULTS = {"width": 0.25, "discriminator_width": 0.25, "epochs": 4}
STOP_WAIT_S = 120  # how long closing napari waits for the trainer to save last.pt


class TrainingWidget(Container):
    """Train a generator variant on a folder of T2/PD pairs (IXI or BIDS), with live curves and Stop/Resume."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        claim_nifti_files()
        defaults = train_defaults()
        import torch

        from ..core.networks.devices import unused_gpu_hint

        on_cpu = self._cpu_sized = not torch.cuda.is_available()
        if on_cpu:
            defaults.update(CPU_DEFAULTS)
        self._data = FileEdit(label="data folder", mode="d")
        self._pairs = Label(value="choose a folder of T2/PD pairs (IXI, or a BIDS dataset)")
        self._runs = FileEdit(label="runs folder", mode="d", value=RUNS.folder)
        self._name = LineEdit(label="run name", value="t2-pd-G1")
        self._direction = ComboBox(label="direction", choices=[(d.label, d.value) for d in Direction],
                                   value=defaults["direction"])
        self._variant = ComboBox(label="variant", choices=[v.value for v in Variant], value=defaults["variant"])
        self._residual = CheckBox(text="residual learning (+RL)", value=defaults["residual"])
        self._init = FileEdit(label="start from (G4)", mode="r", filter="*.pt", visible=False)
        self._epochs = SpinBox(label="epochs", min=1, max=1000, value=defaults["epochs"])
        self._batch = SpinBox(label="batch size", min=1, max=512, value=defaults["batch_size"])
        self._lr = FloatSpinBox(label="learning rate", min=1e-6, max=1.0, step=1e-4, value=defaults["lr"])
        self._lr_schedule = ComboBox(label="rate schedule", choices=list(LR_SCHEDULES), value=defaults["lr_schedule"])
        self._width = ComboBox(label="width", choices=WIDTHS, value=defaults["width"])
        self._discriminator_width = ComboBox(label="discriminator width", choices=WIDTHS,
                                             value=defaults["discriminator_width"])
        self._val_stride = ComboBox(label="validation stride", choices=[8, 16, 32], value=defaults["val_stride"])
        self._device = ComboBox(label="device", choices=device_choices(), value=defaults["device"])
        self._workers = SpinBox(label="loader workers", min=0, max=64, value=defaults["workers"])
        self._command = TextEdit(label="command", value="")
        self._command.native.setReadOnly(True)
        self._command.native.setMaximumHeight(70)
        self._start = PushButton(text="Start")
        self._stop = PushButton(text="Stop", enabled=False)
        self._resume = PushButton(text="Resume", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, max=1)
        self._status = Label(value="")
        self._size_note = Label(value=" ".join(filter(None, [
            "no GPU found: a CPU-sized run (width 1/4, discriminator 1/4, 4 epochs); the report trains width 1 "
            "for 32 epochs.", unused_gpu_hint()])) if on_cpu else "", visible=on_cpu)
        self._plot = LossPlot()
        self._form = scrolling_form(self, [
            self._data, self._pairs, self._runs, self._name, self._direction, self._variant, self._residual,
            self._init, self._epochs, self._batch, self._lr, self._lr_schedule, self._width, self._discriminator_width,
            self._size_note,
            self._val_stride,
            self._device, self._workers, self._command, self._start, self._stop, self._resume, self._progress,
            self._status])
        self._form.native.layout().addWidget(self._plot)

        self._process: TrainingProcess | None = None
        self._events = None
        self._best = None  # the best validation event of the run shown
        self._timer = QTimer()
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

        self._data.changed.connect(self._check_data)
        self._data.changed.connect(lambda value: save_settings(data_folder=value))
        data_folder = load_settings()["data_folder"]
        if data_folder:
            self._data.value = data_folder
        self._runs.changed.connect(lambda value: RUNS.set(value))
        RUNS.changed.connect(self._on_runs_changed)
        for widget in (self._direction, self._variant, self._residual):
            widget.changed.connect(self._suggest_name)
        for widget in (self._data, self._runs, self._name, self._direction, self._variant, self._residual,
                       self._init, self._epochs, self._batch, self._lr, self._lr_schedule, self._width,
                       self._discriminator_width, self._val_stride, self._device, self._workers):
            widget.changed.connect(self._show_command)
        self._start.changed.connect(lambda: self.start())
        self._stop.changed.connect(lambda: self.stop())
        self._resume.changed.connect(lambda: self.start(resume=True))
        # napari deletes its dock widgets when it closes: stop training the same clean way as Stop.
        self.native.destroyed.connect(partial(_stop_on_close, self._timer, self, RUNS, self._on_runs_changed))
        self._suggest_name()

    def reset_choices(self, *_):
        """Refresh the form's choices (napari calls this when layers change)."""
        self._form.reset_choices()

    # the form --------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Where the run is written: ``runs folder / run name``."""
        return Path(self._runs.value) / self._name.value.strip()

    @property
    def process(self) -> TrainingProcess | None:
        """The training child process of the last Start or Resume."""
        return self._process

    def _check_data(self, *_):
        folder = Path(self._data.value)
        if not folder.is_dir() or str(self._data.value) in ("", "."):
            self._pairs.value = "choose a folder of T2/PD pairs (IXI, or a BIDS dataset)"
            return
        try:
            scan = find_pairs(folder)
        except MedSynthError as error:  # e.g. an unreadable folder: the line says why
            self._pairs.value = str(error)
            return
        self._pairs.value = scan.summary() if scan.pairs else f"no T2/PD pairs (IXI or BIDS) in {folder}"

    def _on_runs_changed(self, folder):
        if Path(self._runs.value) != Path(folder):
            self._runs.value = folder

    def _suggest_name(self, *_):
        self._name.value = f"{self._direction.value}-{run_label(self._variant.value, self._residual.value)}"
        g4 = self._variant.value == "G4"
        self._init.visible = g4
        self._discriminator_width.visible = self._variant.value != "G1"  # G1 trains no discriminator
        if g4:
            g3 = Path(self._runs.value) / f"{self._direction.value}-{run_label('G3', self._residual.value)}" / "best.pt"
            if g3.is_file():
                self._init.value = g3

    def options(self, resume: bool = False) -> dict:
        """The ``medsynth-train train`` options the form describes."""
        chosen = self._variant.value == "G4" and str(self._init.value) not in ("", ".")
        init = Path(self._init.value) if chosen else None
        return {
            "data": Path(self._data.value), "out": self.run_dir, "direction": self._direction.value,
            "variant": self._variant.value, "residual": self._residual.value, "init": init,
            "epochs": self._epochs.value, "batch_size": self._batch.value, "lr": f"{self._lr.value:g}",
            "lr_schedule": self._lr_schedule.value,
            "width": f"{self._width.value:g}", "val_stride": self._val_stride.value, "device": self._device.value,
            "discriminator_width": f"{self._discriminator_width.value:g}" if self._variant.value != "G1" else None,
            "workers": self._workers.value, "resume": resume,
        }

    def command(self, resume: bool = False) -> list[str]:
        """The argument list after ``medsynth-train``, as a user would type it."""
        return train_argv(**self.options(resume))

    def _show_command(self, *_):
        # the CPU-sized note speaks of the CPU defaults: it goes once the user changes them
        self._size_note.visible = self._cpu_sized and all(
            float(getattr(self, f"_{name}").value) == value for name, value in CPU_DEFAULTS.items())
        try:
            self._command.value = shlex.join(["medsynth-train", *self.command()])
        except Exception as error:  # an incomplete form: say what is missing instead of a command
            self._command.value = str(error)
        idle = self._process is None
        self._resume.enabled = idle and (self.run_dir / "last.pt").is_file()
        if idle:
            self._load_curves()

    def _load_curves(self):
        """Show the curves of the run already in the run folder (an earlier or finished run)."""
        if self._events is not None and self._events.path.parent == self.run_dir:
            return
        self._events = EventLog(self.run_dir)
        self._best = None
        self._plot.clear()
        self.poll()

    # running ---------------------------------------------------------------------------------------
    def start(self, resume: bool = False) -> TrainingProcess | None:
        """Start (or resume) training as a child process."""
        if self._process is not None and self._process.poll() is None:
            return self._process
        try:
            if not Path(self._data.value).is_dir() or not find_pairs(self._data.value).pairs:
                raise MedSynthError(f"no T2/PD pairs (IXI or BIDS) in {self._data.value}: choose the data folder")
            name = self._name.value.strip()
            if not name or name in (".", "..") or Path(name).name != name:
                raise MedSynthError(f"run name {name!r}: give the run a folder name (no '/')")
            argv = self.command(resume)
            self._process = TrainingProcess(argv, self.run_dir)
        except Exception as error:
            self._status.value = report_error(error, "training")
            return None
        self._events = None  # reread from the start: a resumed run first cuts what its last.pt did not see
        self._best = None
        self._load_curves()
        self._status.value = f"{'resuming' if resume else 'training'}: {self.run_dir}"
        self._start.enabled, self._resume.enabled, self._stop.enabled = False, False, True
        # the live curves sit below the form: bring them (and Stop, the progress above them) into view
        self._form.root_native_widget.ensureWidgetVisible(self._plot, 0, 0)
        self._timer.start()
        return self._process

    def stop(self):
        """Make the trainer save ``last.pt`` and exit after its current step (Resume continues it)."""
        if self._process is not None and self._process.poll() is None:
            self._status.value = "stopping: saving last.pt..."
            self._process.stop()

    def poll(self):
        """Read new events into the curves and progress bar; notice when the process ends."""
        if self._events is not None:
            events = self._events.read_new()
            self._plot.add_events(events)
            for event in events:
                self._on_event(event)
        if self._process is not None and self._process.poll() is not None:
            self._timer.stop()
            self._finished(self._process.poll())

    def _on_event(self, event: TrainingEvent):
        if isinstance(event, StartEvent):
            self._progress.max = max(1, event.epochs * event.steps)
        elif isinstance(event, StepEvent):
            self._progress.value = min(self._progress.max, (event.epoch - 1) * event.steps + event.step)
            self._status.value = f"epoch {event.epoch}, step {event.step} of {event.steps}"
        elif isinstance(event, ValidationEvent):
            self._status.value = (f"epoch {event.epoch}: validation MAE {event.mae:.4f} SD, "
                                  f"PSNR {event.psnr:.2f} dB{' (best)' if event.best else ''}")
            if event.best:
                self._best = event
                RUNS.touched()

    def _finished(self, code: int):
        from napari.utils.notifications import show_info

        process, self._process = self._process, None
        self._start.enabled, self._stop.enabled = True, False
        self._resume.enabled = (self.run_dir / "last.pt").is_file()
        if code == 0:
            self._progress.value = self._progress.max
            best = self._best
            figures = (f"best epoch {best.epoch}: validation PSNR {best.psnr:.2f} dB, MAE {best.mae:.4f} SD, SSIM "
                       f"{best.ssim:.4f}; " if best is not None else "")
            self._status.value = f"done: {figures}{self.run_dir / 'best.pt'}"
            show_info(f"MedSynth: training finished, {figures}{self.run_dir / 'best.pt'}")
            RUNS.touched()
        elif code == EXIT_INTERRUPTED:
            self._status.value = "stopped: last.pt saved, Resume continues"
            show_info("MedSynth: training stopped; last.pt saved, Resume continues it")
        else:
            from napari.utils.notifications import show_error

            line = process.last_line() or f"medsynth-train exited with code {code}"
            self._status.value = line
            show_error(line)


def _stop_on_close(timer: QTimer, widget: TrainingWidget, runs, slot, *_):
    with contextlib.suppress(RuntimeError):  # Qt may have deleted the timer with its widget already
        timer.stop()
    runs.changed.disconnect(slot)
    process = getattr(widget, "_process", None)  # a widget garbage-collected unshown is half torn down here
    if process is not None and process.poll() is None:
        # napari is closing: the trainer finishes its step and saves last.pt (seconds at small widths,
        # up to a minute at the report's); say so rather than freeze silently.
        from qtpy.QtWidgets import QApplication, QProgressDialog

        log.warning("stopping training on close: waiting for %s", process.run_dir / "last.pt")
        dialog = QProgressDialog(f"Stopping training: saving {process.run_dir / 'last.pt'}...", None, 0, 0)
        dialog.setWindowTitle("napari-medsynth")
        dialog.show()
        process.stop()
        deadline = time.monotonic() + STOP_WAIT_S
        while process.poll() is None and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.05)
        process.stop(wait=1)  # kills what is left past the deadline
        dialog.close()
