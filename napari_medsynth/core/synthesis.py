"""One synthesis from a source volume to the target contrast, as the CLI and the GUI run it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointInfo
from .errors import MedSynthError
from .ixi import ixi_name
from .masks import check_mask, head_mask
from .metrics import gradient_difference_map, quality, quality_by_region, squared_error_map
from .models import Generator
from .nifti import Volume, save_volume, strip_nifti_suffix
from .preprocess import GRIDS, KEEP_EVERY, Preprocessed, check_pair, preprocess_volume, stacks, to_source_grid
from .reconstruct import preview_volume, reconstruct_volume

__all__ = [
    "METRIC_SCOPES",
    "SynthesisResult",
    "check_contrast",
    "compare_on_grids",
    "save_result",
    "score_voxelwise",
    "synthesize",
]

# Where the figures are taken, the user's view first: the source's own voxel grid (whole
# volume, and the automatic head mask of :mod:`~napari_medsynth.core.masks`), then the
# report's 224 x 224 x 32 grid.
METRIC_SCOPES = {
    "source": "source grid, whole volume",
    "head": "source grid, head mask",
    "report": "report grid (224x224x32)",
}


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
    grid : str
        ``"native"`` (every resampled slice synthesized) or ``"report"`` (one in three).
    spread : np.ndarray or None
        Standard deviation of the overlapping patch predictions, on the source's grid,
        in standardized units; None unless asked for, in a preview, and at a stride of a
        patch or more (the patches do not overlap).
    metrics : dict of dict
        When a ground truth was given: for each of :data:`METRIC_SCOPES`, ``mae``,
        ``psnr`` (dB) and ``ssim`` (see :func:`compare_on_grids`).
    maps : dict of np.ndarray
        ``squared_error`` and ``gradient_difference`` on the source's grid (standardized
        units), when a ground truth was given.
    """

    synthesis: np.ndarray
    standardized: np.ndarray
    grid: str = "native"
    spread: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)


def check_contrast(volume: Volume, expected: str, role: str) -> None:
    """Refuse an IXI-named file whose contrast is not ``expected`` (other names pass).

    Raises
    ------
    MedSynthError
        For example a PD file given as the source of a T2->PD generator.
    """
    parsed = ixi_name(volume.path) if volume.path else None
    if parsed and parsed[1] != expected:
        raise MedSynthError(
            f"{volume.path.name} is a {parsed[1]} image, but the {role} of this generator must be {expected}"
        )


def synthesize(
    source: Volume,
    generator: Generator,
    info: CheckpointInfo,
    *,
    target: Volume | None = None,
    grid: str = "native",
    stride: int = 8,
    device="auto",
    batch_size: int | None = None,
    spread: bool = False,
    preview: bool = False,
    engine: str = "auto",
    mask=None,
    masked_maps: bool = False,
    progress=None,
    cancel=None,
) -> SynthesisResult:
    """Preprocess ``source``, reconstruct it patch by patch, and map the result back.

    On the ``"native"`` grid (the default) every slice of the 224 x 224 x 96 resample is
    synthesized, as three interleaved stacks of the report's geometry (three times the
    report grid's patches); on the ``"report"`` grid one slice in three, as the report.
    With ``preview``, one pass of the fully convolutional generator over each stack
    (:func:`~napari_medsynth.core.reconstruct.preview_volume`, about 1/13 of the work at
    stride 8) replaces the patch average; it has no spread map and ignores ``stride``.
    ``engine`` picks how the convolutions run (``"auto"``, ``"direct"``, ``"fft"``: see
    :func:`~napari_medsynth.core.reconstruct.reconstruct_volume`). ``mask`` (on the source's
    grid) replaces the automatic head mask of the metrics; ``masked_maps`` sets the error maps
    to 0 outside that mask.

    Raises
    ------
    MedSynthError
        Wrong contrast, a constant volume, a target or mask on another grid.
    Cancelled
        ``cancel`` was set.
    """
    if grid not in GRIDS:
        raise MedSynthError(f"unknown grid {grid!r}; use {' or '.join(GRIDS)}")
    check_contrast(source, info.source_contrast, "source")
    if target is not None:
        check_contrast(target, info.target_contrast, "ground truth")
        check_pair(source, target)
    if mask is not None:
        mask = check_mask(mask, source.data.shape)
    prepared = preprocess_volume(source, grid)
    count = KEEP_EVERY if grid == "native" else 1
    spread = spread and stride < info.patch  # patches that do not overlap do not disagree
    if preview:
        standardized = preview_volume(generator, prepared.data, device=device, stacks=count, engine=engine,
                                      progress=progress, cancel=cancel)
        spread_map = None
    else:
        reconstructed = reconstruct_volume(
            generator, prepared.data, patch=info.patch, stride=stride, batch_size=batch_size,
            device=device, progress=progress, cancel=cancel, return_spread=spread, stacks=count, engine=engine,
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
    if info.residual and grid == "native":
        # A residual generator adds its output to the source: resample only what it added, and keep
        # the source's own detail, which the 224 x 224 x 96 round trip would smooth, as it is (the
        # report grid stays the report's pipeline, to the bit).
        on_source = (prepared.standardization.apply(source.data)
                     + to_source_grid(standardized - prepared.data, prepared))
    else:
        on_source = to_source_grid(standardized, prepared)
    result = SynthesisResult(
        synthesis=scale.invert(on_source),
        standardized=standardized,
        grid=grid,
        spread=None if spread_map is None else np.maximum(to_source_grid(spread_map, prepared), 0.0),
    )
    if target is not None:
        head = mask if mask is not None else head_mask(source.data)
        result.metrics, result.maps = compare_on_grids(on_source, standardized, prepared, target, head,
                                                       masked_maps=masked_maps)
    return result


def compare_on_grids(on_source, standardized, prepared: Preprocessed, target: Volume, mask, masked_maps=False):
    """The figures of :data:`METRIC_SCOPES` and the error maps of a synthesis against ``target``.

    Units: both sides in the ground truth's standardized units, its preprocessing's mean
    and standard deviation (:func:`~napari_medsynth.core.preprocess.preprocess_volume`) on
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
    tuple of dict
        ``metrics`` (scope -> ``mae``, ``psnr``, ``ssim``) and ``maps``
        (``squared_error``, ``gradient_difference`` on the source's grid).
    """
    truth_report = preprocess_volume(target, "report")
    truth = truth_report.standardization.apply(target.data)
    report_slices = stacks(standardized)[1] if prepared.grid == "native" else standardized
    metrics = {
        **quality_by_region(on_source, truth, {"source": None, "head": mask}),
        "report": quality(report_slices, truth_report.data),
    }
    in_plane = tuple(axis for axis in range(3) if axis != prepared.slice_axis)
    within = mask if masked_maps else None
    maps = {
        "squared_error": squared_error_map(on_source, truth, mask=within),
        "gradient_difference": gradient_difference_map(on_source, truth, axes=in_plane, mask=within),
    }
    return metrics, maps


def score_voxelwise(predict, source: Volume, target: Volume, mask=None) -> dict:
    """The figures of :data:`METRIC_SCOPES` of a per-voxel baseline, ``predict(standardized
    source) -> standardized target`` (the identity, or an intensity mapping), applied to the
    source's own voxels and to its report-grid preprocessing."""
    check_pair(source, target)
    prepared = preprocess_volume(source, "report")
    on_source = predict(prepared.standardization.apply(source.data))
    mask = check_mask(mask, source.data.shape) if mask is not None else head_mask(source.data)
    return compare_on_grids(on_source, predict(prepared.data), prepared, target, mask)[0]


def save_result(result: SynthesisResult, source: Volume, out, maps_folder=None, protect=()) -> list[Path]:
    """Write the synthesis to ``out`` and its maps to ``maps_folder`` as ``<out stem>_<map>.nii.gz``,
    each atomically on ``source``'s grid with its affine; never over a ``protect`` path.

    Returns
    -------
    list of Path
        The files written, the synthesis first.
    """
    out = Path(out)
    written = [save_volume(out, result.synthesis, source, protect=protect)]
    if maps_folder is not None:
        stem = strip_nifti_suffix(out.name)
        maps = {"spread": result.spread, **result.maps}
        for name, data in maps.items():
            if data is not None:
                written.append(save_volume(Path(maps_folder) / f"{stem}_{name}.nii.gz", data, source, protect=protect))
    return written
