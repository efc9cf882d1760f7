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
    Container,
    FileEdit,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    TextEdit,
)
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QProgressDialog

from .._reader import claim_nifti_files
from ..core.choices import run_label
from ..core.console import EXIT_INTERRUPTED
from ..core.errors import MedSynthError
from ..core.training.config import (
    VARIANT_OPTIONS,
    data_folder_check,
    starts_from,
    train_argv,
    train_defaults,
    train_fields,
    uses_option,
)
from ..core.training.events import EventLog, StartEvent, StepEvent, TrainingEvent, ValidationEvent
from ..core.training.process import TrainingProcess
from ._settings import load_settings, save_settings
from ._shared import RUNS, field_widget, report_error, scrolling_form
from .loss_plot import LossPlot

log = logging.getLogger("napari_medsynth")

if TYPE_CHECKING:
    import napari

__all__ = ["TrainingWidget"]

POLL_MS = 250
# Without a GPU the report's size (width 1, 32 epochs) takes days; the form starts at a size that
# trains in minutes to an hour on a CPU, and says so.
CPU_DEFAULTS = {"width": 0.25, "discriminator_width": 0.25, "epochs": 4}
STOP_WAIT_S = 120  # how long closing napari waits for the trainer to save last.pt


class TrainingWidget(Container):
    """Train a generator variant on a folder of T2/PD pairs (IXI or BIDS), with live curves and Stop/Resume."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        claim_nifti_files()
        import torch

        from ..core.networks.devices import unused_gpu_hint

        on_cpu = self._cpu_sized = not torch.cuda.is_available()
        defaults = {**train_defaults(), **(CPU_DEFAULTS if on_cpu else {})}
        self.fields = {f.name: field_widget(f, defaults.get(f.name)) for f in train_fields(gui=True)}
        self.pairs = Label()
        self.runs = FileEdit(label="runs folder", mode="d", value=RUNS.folder)
        self.run_name = LineEdit(label="run name", value="t2-pd-G1")
        self.command_line = TextEdit(label="command", value="")
        self.command_line.native.setReadOnly(True)
        self.command_line.native.setMaximumHeight(70)
        self.start_button, self.stop_button, self.resume_button = (
            PushButton(text="Start"), PushButton(text="Stop"), PushButton(text="Resume"))  # enabled by _enable
        self.progress, self.status = ProgressBar(label="progress", value=0, max=1), Label(value="")
        self.size_note = Label(value=" ".join(filter(None, [
            "no GPU found: a CPU-sized run (width 1/4, discriminator 1/4, 4 epochs); the report trains width 1 "
            "for 32 epochs.", unused_gpu_hint()])) if on_cpu else "", visible=on_cpu)
        self.plot = LossPlot()
        after = {"data": [self.pairs, self.runs, self.run_name], "discriminator_width": [self.size_note]}
        self._form = scrolling_form(self, [
            *(shown for name, widget in self.fields.items() for shown in (widget, *after.get(name, ()))),
            self.command_line, self.start_button, self.stop_button, self.resume_button, self.progress, self.status])
        self._form.native.layout().addWidget(self.plot)

        self._process: TrainingProcess | None = None
        self._events = self._best = None  # the event log and the best validation event of the run shown
        self._refusal: str | None = None  # why Start cannot train on the data folder (None: it can)
        self._timer = QTimer(interval=POLL_MS, timeout=self.poll)

        self.fields["data"].changed.connect(self._check_data)
        QApplication.instance().applicationStateChanged.connect(self._check_data)  # files may have come meanwhile
        self.fields["data"].changed.connect(lambda value: save_settings(data_folder=value))
        if data_folder := load_settings()["data_folder"]:
            self.fields["data"].value = data_folder
        self.runs.changed.connect(lambda value: RUNS.set(value))
        RUNS.changed.connect(self._on_runs_changed)
        for name in ("direction", "variant", "residual"):
            self.fields[name].changed.connect(self._suggest_name)
        for widget in (self.runs, self.run_name, *self.fields.values()):
            widget.changed.connect(self._show_command)
        self.start_button.changed.connect(lambda: self.start())
        self.stop_button.changed.connect(lambda: self.stop())
        self.resume_button.changed.connect(lambda: self.start(resume=True))
        # napari deletes its dock widgets when it closes: stop training the same clean way as Stop.
        self.native.destroyed.connect(partial(_stop_on_close, self._timer, self, RUNS, self._on_runs_changed))
        self._suggest_name()
        self._check_data()

    def reset_choices(self, *_):
        """Refresh the form's choices (napari calls this when layers change)."""
        self._form.reset_choices()

    # the form --------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Where the run is written: ``runs folder / run name``."""
        return Path(self.runs.value) / self.run_name.value.strip()

    @property
    def process(self) -> TrainingProcess | None:
        """The training child process of the last Start or Resume."""
        return self._process

    def _check_data(self, *_) -> str | None:
        """Say what the data folder holds; enable Start for a folder a run can train on, else say why (returned)."""
        self.pairs.value, refusal = data_folder_check(self.fields["data"].value)
        if refusal is not None or self.status.value == self._refusal:  # a run's outcome stays
            self.status.value = refusal or ""
        self._refusal = refusal
        self._enable()
        return refusal

    def _enable(self):
        idle, trainable = self._process is None, self._refusal is None
        self.start_button.enabled, self.stop_button.enabled = idle and trainable, not idle
        self.resume_button.enabled = idle and trainable and (self.run_dir / "last.pt").is_file()

    def _on_runs_changed(self, folder):
        if Path(self.runs.value) != Path(folder):
            self.runs.value = folder

    def _suggest_name(self, *_):
        direction, variant, residual = (self.fields[name].value for name in ("direction", "variant", "residual"))
        self.run_name.value = f"{direction}-{run_label(variant, residual)}"
        for name in VARIANT_OPTIONS:
            self.fields[name].visible = uses_option(variant, name)
        start = starts_from(direction, variant, residual)
        if start and (Path(self.runs.value) / start / "best.pt").is_file():
            self.fields["init"].value = Path(self.runs.value) / start / "best.pt"

    def options(self, resume: bool = False) -> dict:
        """The ``medsynth-train train`` options the form describes (in :class:`TrainConfig`'s order)."""
        values = {name: f"{widget.value:g}" if isinstance(widget.value, float) else widget.value
                  for name, widget in self.fields.items()}
        if str(values["init"]) in ("", "."):
            values["init"] = None
        values.update({name: None for name in VARIANT_OPTIONS if not uses_option(values["variant"], name)})
        return {"data": values.pop("data"), "out": self.run_dir, **values, "resume": resume}

    def command(self, resume: bool = False) -> list[str]:
        """The argument list after ``medsynth-train``, as a user would type it."""
        return train_argv(**self.options(resume))

    def _show_command(self, *_):
        # the CPU-sized note speaks of the CPU defaults: it goes once the user changes them
        self.size_note.visible = self._cpu_sized and all(
            float(self.fields[name].value) == value for name, value in CPU_DEFAULTS.items())
        try:
            self.command_line.value = shlex.join(["medsynth-train", *self.command()])
        except Exception as error:  # an incomplete form: say what is missing instead of a command
            self.command_line.value = str(error)
        self._enable()
        if self._process is None:
            self._load_curves()

    def _load_curves(self):
        """Show the curves of the run already in the run folder (an earlier or finished run)."""
        if self._events is not None and self._events.path.parent == self.run_dir:
            return
        self._events = EventLog(self.run_dir)
        self._best = None
        self.plot.clear()
        self.poll()

    # running ---------------------------------------------------------------------------------------
    def start(self, resume: bool = False) -> TrainingProcess | None:
        """Start (or resume) training as a child process."""
        if self._process is not None and self._process.poll() is None:
            return self._process
        try:
            if (refusal := self._check_data()) is not None:  # the folder may have changed since it was chosen
                raise MedSynthError(refusal)
            name = self.run_name.value.strip()
            if not name or name in (".", "..") or Path(name).name != name:
                raise MedSynthError(f"run name {name!r}: give the run a folder name (no '/')")
            self._process = TrainingProcess(self.command(resume), self.run_dir)
        except Exception as error:
            self.status.value = report_error(error, "training")
            return None
        self._events = self._best = None  # reread from the start: a resumed run first cuts what last.pt did not see
        self._load_curves()
        self.status.value = f"{'resuming' if resume else 'training'}: {self.run_dir}"
        self._enable()
        # the live curves sit below the form: bring them (and Stop, the progress above them) into view
        self._form.root_native_widget.ensureWidgetVisible(self.plot, 0, 0)
        self._timer.start()
        return self._process

    def stop(self):
        """Make the trainer save ``last.pt`` and exit after its current step (Resume continues it)."""
        if self._process is not None and self._process.poll() is None:
            self.status.value = "stopping: saving last.pt..."
            self._process.stop()

    def poll(self):
        """Read new events into the curves and progress bar; notice when the process ends."""
        if self._events is not None:
            events = self._events.read_new()
            self.plot.add_events(events)
            for event in events:
                self._on_event(event)
        if self._process is not None and self._process.poll() is not None:
            self._timer.stop()
            self._finished(self._process.poll())

    def _on_event(self, event: TrainingEvent):
        if isinstance(event, StartEvent):
            self.progress.max = max(1, event.epochs * event.steps)
        elif isinstance(event, StepEvent):
            self.progress.value = min(self.progress.max, (event.epoch - 1) * event.steps + event.step)
            self.status.value = f"epoch {event.epoch}, step {event.step} of {event.steps}"
        elif isinstance(event, ValidationEvent):
            self.status.value = (f"epoch {event.epoch}: validation MAE {event.mae:.4f} SD, "
                                 f"PSNR {event.psnr:.2f} dB{' (best)' if event.best else ''}")
            if event.best:
                self._best = event
                RUNS.touched()

    def _finished(self, code: int):
        from napari.utils.notifications import show_error, show_info

        process, self._process = self._process, None
        self._enable()
        if code == 0:
            self.progress.value = self.progress.max
            best = self._best
            figures = (f"best epoch {best.epoch}: validation PSNR {best.psnr:.2f} dB, MAE {best.mae:.4f} SD, SSIM "
                       f"{best.ssim:.4f}; " if best is not None else "")
            self.status.value = f"done: {figures}{self.run_dir / 'best.pt'}"
            show_info(f"MedSynth: training finished, {figures}{self.run_dir / 'best.pt'}")
            RUNS.touched()
        elif code == EXIT_INTERRUPTED:
            self.status.value = "stopped: last.pt saved, Resume continues"
            show_info("MedSynth: training stopped; last.pt saved, Resume continues it")
        else:
            line = process.last_line() or f"medsynth-train exited with code {code}"
            self.status.value = line
            show_error(line)


def _stop_on_close(timer: QTimer, widget: TrainingWidget, runs, slot, *_):
    with contextlib.suppress(RuntimeError):  # Qt may have deleted the timer with its widget already
        timer.stop()
    runs.changed.disconnect(slot)
    with contextlib.suppress(TypeError):  # already gone from a widget garbage-collected unshown
        QApplication.instance().applicationStateChanged.disconnect(widget._check_data)
    process = getattr(widget, "_process", None)  # a widget garbage-collected unshown is half torn down here
    if process is not None and process.poll() is None:
        # napari is closing: the trainer finishes its step and saves last.pt (seconds at small widths,
        # up to a minute at the report's); say so rather than freeze silently.
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
