"""The dock's Compare: the generators chosen in its list run on the form's request, row by row into
the figures table (a dock of its own) and napari's grid."""

from __future__ import annotations

from magicgui.widgets import PushButton, Select
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QListView

from .._napari_adapter import dock_below_canvas
from ..core.choices import Stage
from ..core.errors import Cancelled, MedSynthError
from ._shared import report_error
from .comparison_view import ComparisonView
from .figures_table import FiguresTable
from .job_runner import Job, JobState
from .requests import ComparisonRequest

__all__ = ["CompareGenerators", "run_comparison"]


def run_comparison(comparison: ComparisonRequest, channel):
    """The worker's job for Compare, staged as a single synthesis is
    (:func:`~napari_medsynth.core.synthesis.job.synthesis_phases`: each picture before its figures):
    with ``preview_first``, each generator's first picture (one pass on the report grid, no figures;
    from a native-grid request), then its one-pass preview with figures, then the refined comparison
    where its patches overlap; each row is posted ``(row, preview)`` as it is done."""
    from ..core.synthesis.compare import compare_generators
    from ..core.synthesis.job import synthesis_phases

    request = comparison.request
    phases = synthesis_phases(request.options, request.previews_first)
    for number, (stage, options) in enumerate(phases, start=1):
        preview = number < len(phases)
        rows = compare_generators(request.source, comparison.checkpoints, request.direction, options,
                                  target=request.truth, mask=request.mask, cancel=channel.cancel,
                                  figures=stage != Stage.FIRST_PICTURE, progress=None if preview else channel.patches,
                                  on_row=lambda row, p=preview: channel.post((row, p)))
        if channel.cancel.is_set():
            raise Cancelled("comparison cancelled")
        if preview:
            yield rows
    return rows


class CompareGenerators:
    """The compare list and button of the synthesis dock, the comparison's layers and its figures."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.view = ComparisonView(ctx.viewer)
        self.figures = FiguresTable()  # docked by the first Compare
        self.figures.selected.connect(self.view.select)
        self.chosen = Select(label="compare", choices=ctx.form.generator_choices,
                             tooltip="the generators Compare runs on the source (ctrl-click for several)")
        self.chosen.native.setMaximumHeight(110)
        self.chosen.native.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # long titles wrap, never scroll
        self.chosen.native.setWordWrap(True)
        self.chosen.native.setResizeMode(QListView.Adjust)
        self.run_button = PushButton(text="Compare", tooltip="run each generator selected above on the source and "
                                                            "score it against the ground truth: a figures table")
        self.run_button.changed.connect(lambda: self.start())

    def widgets(self) -> list:
        return [self.chosen, self.run_button]

    def start(self, checkpoints=None) -> None:
        """Run each generator selected in the list (or of ``checkpoints``) on the source, one
        preprocessing and the form's options for all, each scored against the ground truth beside the
        intensity mapping: previews first (as the form says), then the refined results, row by row."""
        ctx = self.ctx
        if ctx.job.running:
            return
        try:
            request = ctx.form.request()
            if request.truth is None:
                raise MedSynthError(request.notes[0] if request.notes else
                                    "Compare needs a ground truth layer: the figures are taken against it")
            chosen = tuple(str(path) for path in (self.chosen.value if checkpoints is None else checkpoints))
            if not chosen:
                raise MedSynthError("select the generators to compare in the list above Compare")
        except Exception as error:
            ctx.lines.text = report_error(error, "comparison")
            return
        comparison = ComparisonRequest(request, chosen)
        self.view.begin(comparison)
        self.figures.set_rows([])
        self._dock_figures()
        first = JobState.PREVIEW if request.previews_first else JobState.REFINING
        ctx.job.start(Job(run_comparison, (comparison,), "MedSynth: comparing generators", first=first,
                           on_yield=lambda _rows: ctx.job.refining(), on_post=self._on_row,
                           on_done=self._on_done, on_error=self._on_error))
        for note in request.notes:  # a ground truth of another subject: in view for the whole comparison
            ctx.lines.warn(note)
        ctx.lines.text = f"comparing {len(chosen)} generators..."

    def _dock_figures(self) -> None:
        """The figures table in a dock of its own (again, if the user closed it)."""
        try:
            docked = self.figures.parent() is not None and self.figures.isVisible()
        except RuntimeError:  # napari deleted the closed dock's table
            docked, self.figures = False, FiguresTable()
            self.figures.selected.connect(self.view.select)
        if not docked:
            dock_below_canvas(self.ctx.viewer, self.figures, "MedSynth figures")

    def _on_row(self, posted) -> None:
        row, preview = posted
        self.view.show_row(row, preview)
        self.figures.set_rows(list(self.view.rows.values()))
        if not preview:
            self.ctx.lines.text = f"{row.label}: {row.error or row.metrics.line()}"

    def _on_done(self, rows) -> None:
        self.view.finish()
        self.figures.set_rows(rows)
        failed = [row.label for row in rows if row.error]
        self.ctx.lines.text = (f"compared {len(rows) - 1 - len(failed)} generators and the intensity mapping; best "
                            f"PSNR on the source grid: {self.figures.best('source_psnr')}"
                            + (f"; {', '.join(failed)} could not run (see the table)" if failed else ""))

    def _on_error(self, error: BaseException) -> None:
        kept = self.view.finish()
        self.figures.set_rows(list(self.view.rows.values()))
        if isinstance(error, Cancelled):
            self.ctx.lines.text = f"comparison cancelled; kept {', '.join(kept) or 'nothing'}"
        else:
            self.ctx.lines.text = report_error(error, "comparison")
