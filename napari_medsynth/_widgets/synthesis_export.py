"""The dock's Export: the chosen generator as TorchScript, ONNX or a MONAI bundle, for use without
napari-medsynth (core's :func:`~napari_medsynth.core.networks.export.export_generator`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from magicgui.widgets import ComboBox, FileEdit, PushButton

from ..core.choices import ExportFormat
from ..core.errors import MedSynthError
from ..core.networks.export import export_generator
from ..core.networks.exported import SUFFIXES
from ._shared import RUNS, report_error

__all__ = ["ExportGenerator"]

EXPORT_CHOICES = list(zip(("TorchScript (.ts)", "ONNX (.onnx)", "MONAI bundle (a new folder)"),
                          (f.value for f in ExportFormat)))


class ExportGenerator:
    """The export fields and button of the synthesis dock."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.format = ComboBox(label="export as", choices=EXPORT_CHOICES, value="torchscript")
        self.path = FileEdit(label="export to", mode="w",
                             tooltip="a .ts or .onnx file (a sidecar .json goes beside it), or a new folder for the "
                                     "MONAI bundle")
        self.run_button = PushButton(text="Export generator",
                                     tooltip="the chosen generator as TorchScript, ONNX or a MONAI bundle, for use "
                                             "without napari-medsynth")
        ctx.form.generator.changed.connect(self.suggest_path)
        self.format.changed.connect(self.suggest_path)
        self.run_button.changed.connect(lambda: self.start())
        ctx.job.aside_changed.connect(lambda busy: setattr(self.run_button, "enabled", not busy))

    def widgets(self) -> list:
        return [self.format, self.path, self.run_button]

    def suggest_path(self, *_) -> None:
        """``exports/<generator>.ts`` (``.onnx``, ``-bundle``) in the runs folder, for the chosen generator."""
        if not self.ctx.form.generator.value:
            return
        checkpoint = Path(self.ctx.form.generator.value)
        stem = checkpoint.parent.name if checkpoint.stem in ("best", "last") else checkpoint.stem
        self.path.value = RUNS.folder / "exports" / f"{stem}{SUFFIXES.get(self.format.value, '-bundle')}"

    def start(self, out=None) -> None:
        """Export the chosen generator (to ``out``, else the suggested path) in a worker thread; one status line."""
        ctx = self.ctx
        if out is not None:
            self.path.value = out
        checkpoint, out = ctx.form.generator.value, Path(self.path.value)
        if not checkpoint:
            ctx.lines.text = report_error(MedSynthError("choose a generator to export"), "export")
            return
        if ctx.run_aside(partial(export_generator, checkpoint, self.format.value, out), "export",
                          lambda written: ctx.lines.notify(f"exported to {written}", toast=False)):
            ctx.lines.text = f"exporting {Path(checkpoint).name} as {self.format.value}..."
