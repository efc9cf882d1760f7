"""The dock's single synthesis: the form's request run as a job (each picture shown as it comes, the
finished one last), and Save."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from magicgui.widgets import FileEdit, PushButton

from .._layer_metadata import LayerMetadata
from .._layers import write_result_layer
from ..core.choices import Stage
from ..core.errors import Cancelled, MedSynthError
from ..core.files.results import map_path
from ._shared import report_error
from .job_runner import Job, JobState
from .requests import SynthesisRequest
from .synthesis_form import default_save_path

__all__ = ["SingleSynthesis", "run_synthesis"]

_STAGES = {Stage.FIRST_PICTURE: "first picture (one pass on the report grid)", Stage.PREVIEW: "one-pass preview",
           Stage.REFINED: "patch average"}


def run_synthesis(request: SynthesisRequest, channel):
    """The worker's job: the request's :class:`~napari_medsynth.core.synthesis.job.SynthesisJob`, each
    of its stages yielded (with ``preview_first``, the first picture within seconds, each picture before
    its figures) and the last, finished one returned."""
    from ..core.synthesis.job import SynthesisJob

    job = SynthesisJob.load(request.source, request.checkpoint, request.options, target=request.truth,
                            mask=request.mask, direction=request.direction)
    stages = job.stages(preview_first=request.preview_first, progress=channel.patches, cancel=channel.cancel)
    for result in stages:
        if result.final:
            return result
        yield result  # at once: the next stage's work comes after the user sees this one


class SingleSynthesis:
    """Synthesize and Save of the synthesis dock (its widgets go in the dock's form)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.run_button = PushButton(text="Synthesize")
        self.save_path = FileEdit(label="save as", mode="w", filter="*.nii.gz")
        self.save_button = PushButton(text="Save synthesis", enabled=False)
        self.run_button.changed.connect(lambda: self.start())
        self.save_button.changed.connect(lambda: self.save())
        ctx.job.aside_changed.connect(lambda _busy: self.follow_shown())

    def start(self) -> None:
        """Run the synthesis the form describes (a preview first, then refined)."""
        ctx = self.ctx
        if ctx.job.running:
            return
        try:
            request = ctx.form.request()
        except Exception as error:
            ctx.lines.text = report_error(error, "synthesis")
            return
        first = JobState.PREVIEW if request.previews_first else JobState.REFINING
        ctx.job.start(Job(run_synthesis, (request,), "MedSynth: synthesizing", first=first,
                           on_yield=partial(self.show_stage, request), on_done=partial(self._on_result, request),
                           on_error=partial(self.on_error, request)))
        for note in request.notes:  # a ground truth of another subject or grid: in view for the whole run
            ctx.lines.warn(note)
        ctx.lines.text = "previewing..." if request.previews_first else "synthesizing..."

    def show_stage(self, request: SynthesisRequest, result) -> None:
        """A picture on its way to the finished result: the first picture, the preview, their figures."""
        if result.stage != Stage.FIRST_PICTURE:  # the native preview (then the patch average) is under way
            self.ctx.job.refining()
        refined = result.stage == Stage.REFINED or result.final  # (a folder's finished preview, at stride 32)
        name = self.ctx.view.show(request, result, preview=not refined, side_by_side=self.ctx.side_by_side)
        self.follow_shown()
        then = ("; the native grid's preview follows..." if result.stage == Stage.FIRST_PICTURE else
                "; its figures follow..." if result.scorable and request.truth is not None else
                "" if refined else f"; refining at stride {request.options.stride}...")
        figures = f": {result.metrics.line()}" if result.metrics is not None else ""
        self.ctx.lines.text = f"{name}: {_STAGES[result.stage]}{figures}{then}"

    def _on_result(self, request: SynthesisRequest, result) -> None:
        view, options = self.ctx.view, request.options
        name = view.show(request, result, preview=False, side_by_side=self.ctx.side_by_side)
        line = (f"{name} (no ground truth: no metrics)" if result.metrics is None else
                f"{name} against {request.truth_layer}, another subject's scan: {result.metrics.line()}"
                if request.truth_subject else f"{name}: {result.metrics.line()}")
        if result.stage == Stage.PREVIEW and not options.preview:  # the patch average was not run
            line += (f"; at stride {options.stride} the patches do not overlap: the one-pass preview is the result "
                     "(their average would only add seams)")
        elif options.spread and result.spread is None and not options.preview:
            line += f"; no spread map at stride {options.stride} (its patches do not overlap)"
        view.settle(line)
        self.follow_shown()
        self.ctx.lines.text = line

    def on_error(self, request: SynthesisRequest | None, error: BaseException) -> None:
        """A synthesis (``request``; None: a folder's) failed or was cancelled: one line, and the
        finished result, if any, stays."""
        kept = self.ctx.view.keep_finished(self.ctx.side_by_side) if request is not None else ""
        self.follow_shown()
        if isinstance(error, Cancelled):
            from napari.utils.notifications import show_info

            self.ctx.lines.text = "synthesis cancelled" + kept
            show_info("MedSynth: synthesis cancelled" + kept)
            return
        self.ctx.lines.text = report_error(error, "synthesis") + kept

    def follow_shown(self) -> None:
        """Save follows the result on screen: its button and its default file name."""
        shown = self.ctx.view.shown
        self.save_button.enabled = shown is not None and self.ctx.job.aside is None
        if shown is not None:
            self.save_path.value = default_save_path(shown.name)

    def save(self, path=None) -> None:
        """Write the result on screen as NIfTI on its source's grid, with its sidecar (and its maps
        when the form's "write the maps" is on), in a worker thread, as File > Save writes it."""
        ctx, shown = self.ctx, self.ctx.view.shown
        if shown is None or ctx.job.aside is not None:
            return
        path = Path(path or self.save_path.value)
        layers = ctx.viewer.layers
        if shown.name not in layers:
            gone = MedSynthError(f"the layer {shown.name!r} is gone; synthesize again")
            ctx.lines.text = report_error(gone, "saving")
            return
        record = LayerMetadata.of(layers[shown.name])
        what = "the one-pass preview (not the patch average)" if record.preview else shown.name
        protect = tuple(p for p in (LayerMetadata.of(layer).source_path for layer in layers) if p)
        with_maps = ctx.form.writes_maps
        maps = [layer for layer in layers if with_maps and layer.name != shown.name
                and LayerMetadata.of(layer).run == record.run and LayerMetadata.of(layer).map is not None]

        def write():
            written = write_result_layer(layers[shown.name], path, protect)
            for layer in maps:  # beside the synthesis, named as the command line names them
                written += write_result_layer(layer, map_path(path, LayerMetadata.of(layer).map), protect)
            return written

        self.save_button.enabled = False
        ctx.run_aside(write, "saving", lambda written: ctx.lines.notify(f"saved {what} to {written[0]}"))
