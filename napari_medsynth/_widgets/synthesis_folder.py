"""The dock's folder mode: every file of a folder synthesized into an output folder (as
``medsynth synthesize DIR``), its first file's pictures shown as a single synthesis' are."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from magicgui.widgets import FileEdit, PushButton

from .._layer_metadata import LayerMetadata
from ..core.choices import Direction
from ..core.errors import MedSynthError
from ._shared import RUNS, report_error
from .job_runner import Job
from .requests import SynthesisRequest

__all__ = ["FolderSynthesis", "run_folder_synthesis"]


def run_folder_synthesis(folder, checkpoint, out, options, channel):
    """The worker's job for a folder: :func:`~napari_medsynth.core.synthesis.folder.run_folder`, as the
    command line runs it (the first file's pictures posted as they come); returns ``(report, files)``."""
    from ..core.synthesis.folder import run_folder

    outcome = run_folder(folder, checkpoint, out, options, on_file=channel.file,
                         on_stage=lambda *stage: channel.post(stage), cancel=channel.cancel)
    return outcome.report, outcome.files


class FolderSynthesis:
    """The folder fields and button of the synthesis dock; its first file's stages are shown by
    ``show_stage(request, result)`` and its failure by ``on_error(None, error)``, as a single synthesis'."""

    def __init__(self, ctx, show_stage, on_error):
        self.ctx, self._show, self._on_error = ctx, show_stage, on_error
        self.folder = FileEdit(label="folder", mode="d",
                               tooltip="a BIDS dataset, or a folder of IXI- or BIDS-named files (flat, or T2/ and "
                                       "PD/): every file of the source contrast, scored against its partner when "
                                       "there is one (a BIDS input gives a BIDS-derivatives dataset)")
        self.out = FileEdit(label="folder output", mode="d", value=self.suggested_out(),
                            tooltip="where the folder's syntheses go (a folder of their own for each input folder, "
                                    "never the folder Save writes single syntheses to)")
        self.run_button = PushButton(text="Synthesize folder")
        self.run_button.changed.connect(lambda: self.start())
        self.folder.changed.connect(self._follow_folder)

    def suggested_out(self, folder=None) -> Path:
        """``folders/<input folder's name>`` beside the runs: apart from Save's ``syntheses/`` and from
        the input data, so a BIDS-derivatives output holds only the folder's own files."""
        name = Path(folder).name if folder is not None and str(folder) not in ("", ".") else "folder"
        return RUNS.folder / "folders" / name

    def _follow_folder(self, folder) -> None:
        """A new input folder gets its own output folder, unless the user chose one."""
        if Path(self.out.value).parent == RUNS.folder / "folders":
            self.out.value = self.suggested_out(folder)

    def widgets(self) -> list:
        return [self.folder, self.out, self.run_button]

    def start(self, folder=None, out=None) -> None:
        """Synthesize every file of the folder into the folder output (files, sidecars, metrics)."""
        ctx, form = self.ctx, self.ctx.form
        if ctx.job.running:
            return
        if folder is not None:
            self.folder.value = folder
        if out is not None:
            self.out.value = out
        folder, out = Path(self.folder.value), Path(self.out.value)
        try:
            if str(self.folder.value) in ("", ".") or not folder.is_dir():
                raise MedSynthError("choose a folder of scans (a BIDS dataset, or IXI files)")
            if not form.generator.value:
                raise MedSynthError(f"no {Direction(form.direction.value).label} generator: pick a checkpoint file")
            options = form.synthesis_options()
        except MedSynthError as error:
            ctx.lines.text = report_error(error, "folder synthesis")
            return
        ctx.job.start(Job(run_folder_synthesis, (folder, form.generator.value, out, options),
                           "MedSynth: synthesizing a folder", on_post=self._show_stage,
                           on_done=partial(self._on_done, out), on_error=partial(self._on_error, None)))
        ctx.lines.text = f"synthesizing the files of {folder}..."

    def _show_stage(self, stage) -> None:
        """A stage of the folder's first file, shown beside that file (opened as layers) as a single
        synthesis is, so that the folder's first picture comes within seconds too."""
        source, truth, result = stage
        ctx = self.ctx
        names = [ctx.view.open_input(volume) if volume is not None else None for volume in (source, truth)]
        request = SynthesisRequest(source=source, checkpoint=ctx.form.generator.value,
                                   direction=ctx.form.direction.value, options=result.options, truth=truth,
                                   source_layer=names[0], truth_layer=names[1],
                                   subject=LayerMetadata.of(ctx.viewer.layers[names[0]]).subject)
        self._show(request, result)

    def _on_done(self, out: Path, output) -> None:
        report, files = output
        for line in report.failed:
            report_error(MedSynthError(line), "folder synthesis")
        untruthed = report.untruthed_line(Direction(self.ctx.form.direction.value).contrasts[1])
        if untruthed:
            from napari.utils.notifications import show_warning

            show_warning(untruthed)
        self.ctx.lines.text = (f"{len(report.written)} of {len(files)} files synthesized into {out}"
                            + (f", {len(report.skipped)} skipped" if report.skipped else "")
                            + (f", {len(report.failed)} failed: {report.failed[0]}" if report.failed else ""))
