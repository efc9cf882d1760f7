"""The engine of a synthesis from a source volume to the target contrast: preprocessing, the
generator's patches or one pass, back onto the source's grid, the figures (the entry points run it
through :class:`~napari_medsynth.core.synthesis.job.SynthesisJob`)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..choices import Grid, MapKind, Stage
from ..errors import MedSynthError
from ..evaluation.figures import Figures, Quality
from ..evaluation.masks import check_mask, head_mask
from ..evaluation.metrics import gradient_difference_map, quality, quality_by_region, squared_error_map
from ..files.nifti import Volume
from ..files.results import Provenance, save_result
from ..files.scans import CONTRASTS, scan_name
from ..preprocessing.preprocess import KEEP_EVERY, Preprocessed, check_pair, preprocess_volume, stacks, to_source_grid
from .options import SynthesisOptions
from .reconstruct import preview_volume, reconstruct_volume

__all__ = ["SynthesisResult", "check_contrast", "compare_on_grids", "score_voxelwise", "synthesize",
           "voxelwise_prediction"]


@dataclass
class SynthesisResult:
    """A synthesis on the source's voxel grid, with its quality figures when a truth was given.

    Attributes
    ----------
    synthesis : np.ndarray
        float32 on the source's grid, in the target contrast's typical intensity scale
        (the training targets' statistics stored in the checkpoint).
    standardized : np.ndarray
        The generator's raw output on the preprocessed grid, standardized units:
        ``(224, 224, 96)`` on the native grid, ``(224, 224, 32)`` on the report grid.
    provenance : Provenance
        The generator, the options, the source and the truth (the sidecar's content).
    spread : np.ndarray or None
        Standard deviation of the overlapping patch predictions, on the source's grid,
        in standardized units; None unless asked for, in a preview, and at a stride of a
        patch or more (the patches do not overlap).
    metrics : Figures or None
        When a ground truth was given: MAE, PSNR (dB) and SSIM on each
        :class:`~napari_medsynth.core.choices.MetricScope` (see :func:`compare_on_grids`).
    maps : dict of np.ndarray
        ``squared_error`` and ``gradient_difference`` on the source's grid (standardized
        units), when a ground truth was given.
    stage : Stage
        Where it stands among a job's stages (:meth:`~napari_medsynth.core.synthesis.job.SynthesisJob.stages`):
        the first picture, the preview or the refined patch average.
    final : bool
        It is the finished synthesis (the last of the stages; any of :func:`synthesize`).
    """

    synthesis: np.ndarray
    standardized: np.ndarray
    provenance: Provenance
    spread: np.ndarray | None = None
    metrics: Figures | None = None
    maps: dict = field(default_factory=dict)
    stage: Stage = Stage.REFINED
    final: bool = True
    # what scored() needs, until it has run: (on_source, report-grid input, prepared, source, mask, masked maps)
    _scoring: tuple | None = field(default=None, repr=False)

    @property
    def scorable(self) -> bool:
        """Made with ``figures=False``: :meth:`scored` takes its figures."""
        return self._scoring is not None

    def scored(self, target: Volume) -> SynthesisResult:
        """This result with its figures and error maps against ``target``, in the head mask and with
        the map option :func:`synthesize` was given (it was made with ``figures=False``, so that the
        picture could be shown first)."""
        on_source, report_input, prepared, source, mask, masked_maps = self._scoring
        check_pair(source, target)
        head = mask if mask is not None else head_mask(source.data)
        metrics, maps = compare_on_grids(on_source, report_input, prepared, target, head, masked_maps=masked_maps)
        provenance = dataclasses.replace(self.provenance, metrics=metrics.as_dict(),
                                         ground_truth=str(target.path.resolve()) if target.path else None)
        return dataclasses.replace(self, metrics=metrics, maps=maps, provenance=provenance, _scoring=None)

    @property
    def options(self) -> SynthesisOptions:
        """The options it was made with."""
        return SynthesisOptions.from_record(self.provenance.options)

    def all_maps(self) -> dict:
        """``spread`` and the error maps, by name (None where not made)."""
        return {MapKind.SPREAD: self.spread, **self.maps}

    def save(self, source: Volume, out, *, maps_folder=None, protect=(), extra: dict | None = None,
             volume: bool = True) -> list[Path]:
        """Write the synthesis, its sidecar (with ``extra``) and, with ``maps_folder``, its maps (save_result)."""
        return save_result(self.synthesis, source, out, self.provenance, protect=protect, maps_folder=maps_folder,
                           maps=self.all_maps() if maps_folder is not None else None, extra=extra, volume=volume)


def check_contrast(volume: Volume, expected: str, role: str) -> None:
    """Refuse an IXI- or BIDS-named file of the other of T2 and PD (a ``_PDw`` given as the T2
    source); warn (one line, and go on) when any other name says another contrast
    (``IXI012-HH-1211-T1.nii.gz``, ``case7_flair.nii``), or, for a name that says none, when the
    intensities say it cannot be ``expected``, naming what it could be ("a PD or T1 image"; see
    :meth:`~napari_medsynth.core.evaluation.contrast.ContrastEvidence.possible`).

    Raises
    ------
    MedSynthError
        For example a PD file given as the source of a T2->PD generator.
    """
    from ..evaluation.contrast import contrast_evidence

    name = scan_name(volume.path) if volume.path is not None else None
    shown = volume.path.name if volume.path is not None else f"the {role}"
    said = name.contrast if name is not None else None
    if said in CONTRASTS and said != expected and name.scheme != "other":
        raise MedSynthError(f"{shown} is a {said} image, but the {role} of this generator must be {expected}")
    if said is not None and said != expected:
        looks = f"{said} image (its name)"
    elif said is None and (evidence := contrast_evidence(volume)) and (unlike := evidence.unlike(expected)):
        looks = unlike
    else:
        return
    warnings.warn(f"{shown} looks like a {looks}, but the {role} of this generator is {expected}: the synthesis "
                  "goes on, check its input", UserWarning, stacklevel=3)


def synthesize(
    source: Volume,
    generator,
    options: SynthesisOptions | None = None,
    *,
    target: Volume | None = None,
    mask=None,
    progress=None,
    cancel=None,
    prepared: Preprocessed | None = None,
    figures: bool = True,
    checks: bool = True,
) -> SynthesisResult:
    """Preprocess ``source``, reconstruct it patch by patch, and map the result back.

    ``generator``: a checkpoint file (``.pt``, or a ``.ts``/``.onnx`` export), or the
    ``(network, info)`` pair :func:`~napari_medsynth.core.networks.checkpoint.load_checkpoint` returns.
    ``options`` (:class:`~napari_medsynth.core.synthesis.options.SynthesisOptions`, the defaults if
    None): on the ``"native"`` grid every slice of the 224 x 224 x 96 resample is synthesized,
    as three interleaved stacks of the report's geometry (three times the report grid's
    patches); on the ``"report"`` grid one slice in three, as the report. With ``preview``,
    one pass of the fully convolutional generator over each stack
    (:func:`~napari_medsynth.core.synthesis.reconstruct.preview_volume`, about 1/13 of the work at
    stride 8) replaces the patch average; it has no spread map and ignores ``stride``.
    ``mask`` (on the source's grid) replaces the automatic head mask of the metrics;
    ``masked_maps`` sets the error maps to 0 outside that mask. The synthesis is clipped at 0 in
    the target's intensities (a magnitude image), before the figures are taken. ``prepared``:
    ``source``'s :func:`~napari_medsynth.core.preprocessing.preprocess.preprocess_volume` on ``options.grid``,
    when several generators share it (:func:`~napari_medsynth.core.synthesis.compare.compare_generators`).
    ``figures=False``: no figures or error maps yet, so that the picture can be shown before them;
    :meth:`SynthesisResult.scored` takes them against ``target`` afterwards. ``checks=False``: the
    contrast and pair checks were done already (by an earlier stage of the same synthesis).

    Raises
    ------
    MedSynthError
        Wrong contrast, a constant volume, a target or mask on another grid, an unreadable checkpoint.
    Cancelled
        ``cancel`` was set.
    """
    from ..networks.checkpoint import load_checkpoint

    options = options if options is not None else SynthesisOptions()
    network, info = load_checkpoint(generator) if isinstance(generator, (str, os.PathLike)) else generator
    if checks:
        check_contrast(source, info.source_contrast, "source")
        if target is not None:
            check_contrast(target, info.target_contrast, "ground truth")
            check_pair(source, target)
    if mask is not None:
        mask = check_mask(mask, source.data.shape)
    grid = options.grid
    prepared = prepared if prepared is not None else preprocess_volume(source, grid)
    count = KEEP_EVERY if grid == Grid.NATIVE else 1
    spread = options.spread and not options.preview and options.stride < info.patch  # (no overlap: no disagreement)
    if options.preview:
        standardized = preview_volume(network, prepared.data, device=options.device, stacks=count,
                                      engine=options.engine, progress=progress, cancel=cancel)
        spread_map = None
    else:
        reconstructed = reconstruct_volume(
            network, prepared.data, patch=info.patch, stride=options.stride, batch_size=options.batch_size,
            device=options.device, progress=progress, cancel=cancel, return_spread=spread, stacks=count,
            engine=options.engine,
        )
        standardized, spread_map = reconstructed if spread else (reconstructed, None)
    scale = info.target_intensity
    if scale is None:
        warnings.warn(
            "the checkpoint does not record its training targets' intensities; "
            "the synthesis keeps the source's intensity scale",
            RuntimeWarning,
            stacklevel=2,
        )
        scale = prepared.standardization
    if info.residual and grid == Grid.NATIVE:
        # A residual generator adds its output to the source: resample only what it added, and keep
        # the source's own detail, which the 224 x 224 x 96 round trip would smooth, as it is (the
        # report grid stays the report's pipeline, to the bit).
        on_source = (prepared.standardization.apply(source.data)
                     + to_source_grid(standardized - prepared.data, prepared))
    else:
        on_source = to_source_grid(standardized, prepared)
    # A magnitude MR image is never negative: clip at the target's 0 (standardized), before the figures.
    floor = scale.apply(np.zeros((), np.float32))
    on_source = np.maximum(on_source, floor)
    result = SynthesisResult(
        synthesis=np.maximum(scale.invert(on_source), 0.0),  # (exactly 0 where clipped, whatever the rounding)
        standardized=standardized,
        provenance=Provenance.of(info, options, source=source.path),
        spread=None if spread_map is None else np.maximum(to_source_grid(spread_map, prepared), 0.0),
        stage=Stage.PREVIEW if options.preview else Stage.REFINED,
        _scoring=(on_source, np.maximum(standardized, floor), prepared, source, mask, options.masked_maps),
    )
    return result.scored(target) if target is not None and figures else result


def compare_on_grids(on_source, standardized, prepared: Preprocessed, target: Volume, mask, masked_maps=False):
    """The figures and the error maps of a synthesis against ``target``.

    Units: both sides in the ground truth's standardized units, its preprocessing's mean
    and standard deviation (:func:`~napari_medsynth.core.preprocessing.preprocess.preprocess_volume`) on
    every grid; on the source grid the truth is the file's own voxels (no resampling), on
    the report grid the report's preprocessed truth, compared with the synthesis' report
    slices (the native grid's middle stack). PSNR's peak is the range of the standardized
    truth on the grid at hand.

    Parameters
    ----------
    on_source : np.ndarray
        The synthesis on the source's grid, standardized units.
    standardized : np.ndarray
        The synthesis on ``prepared``'s grid.
    prepared : Preprocessed
        The source's preprocessing (its grid and geometry).
    target : Volume
        The ground truth, on the source's grid.
    mask : np.ndarray
        Boolean, on the source's grid: the ``"head"`` scope.
    masked_maps : bool
        The maps are 0 outside ``mask``.

    Returns
    -------
    tuple
        ``metrics`` (:class:`~napari_medsynth.core.evaluation.figures.Figures`) and ``maps``
        (``squared_error``, ``gradient_difference`` on the source's grid).
    """
    truth_report = preprocess_volume(target, "report")
    truth = truth_report.standardization.apply(target.data)
    report_slices = stacks(standardized)[1] if prepared.grid == Grid.NATIVE else standardized
    on_source_grid = quality_by_region(on_source, truth, {"source": None, "head": mask})
    metrics = Figures(source=Quality(**on_source_grid["source"]), head=Quality(**on_source_grid["head"]),
                      report=Quality(**quality(report_slices, truth_report.data)))
    in_plane = tuple(axis for axis in range(3) if axis != prepared.slice_axis)
    within = mask if masked_maps else None
    maps = {
        MapKind.SQUARED_ERROR: squared_error_map(on_source, truth, mask=within),
        MapKind.GRADIENT_DIFFERENCE: gradient_difference_map(on_source, truth, axes=in_plane, mask=within),
    }
    return metrics, maps


def score_voxelwise(predict, source: Volume, target: Volume, mask=None) -> Figures:
    """The figures of a per-voxel baseline, ``predict(standardized
    source) -> standardized target`` (the identity, or an intensity mapping), applied to the
    source's own voxels and to its report-grid preprocessing."""
    return voxelwise_prediction(predict, source, target, mask)[1]


def voxelwise_prediction(predict, source: Volume, target: Volume, mask=None,
                         prepared: Preprocessed | None = None) -> tuple[np.ndarray, Figures, dict]:
    """A per-voxel baseline's prediction on the source's grid (standardized target units), with its
    figures and error maps as :func:`score_voxelwise` takes them: applied to the source's own voxels,
    or, with ``prepared`` (the source's preprocessing on a grid), to that grid and mapped back onto the
    source's as a generator's output is, so that it is compared with generators like with like."""
    check_pair(source, target)
    mask = check_mask(mask, source.data.shape) if mask is not None else head_mask(source.data)
    if prepared is None:
        prepared = preprocess_volume(source, "report")
        on_source = predict(prepared.standardization.apply(source.data))
        metrics, maps = compare_on_grids(on_source, predict(prepared.data), prepared, target, mask)
        return on_source, metrics, maps
    predicted = predict(prepared.data)
    on_source = to_source_grid(predicted, prepared)
    metrics, maps = compare_on_grids(on_source, predicted, prepared, target, mask)
    return on_source, metrics, maps
