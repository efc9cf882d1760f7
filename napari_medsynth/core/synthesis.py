"""One synthesis from a source volume to the target contrast, as the CLI and the GUI run it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointInfo
from .errors import MedSynthError
from .ixi import ixi_name
from .metrics import gradient_difference_map, quality, squared_error_map
from .models import Generator
from .nifti import Volume, save_volume, strip_nifti_suffix
from .preprocess import check_pair, preprocess_volume, to_source_grid
from .reconstruct import preview_volume, reconstruct_volume

__all__ = ["SynthesisResult", "check_contrast", "save_result", "synthesize"]


@dataclass
class SynthesisResult:
    """A synthesis on the source's voxel grid, with its quality figures when a truth was given.

    Attributes
    ----------
    synthesis : np.ndarray
        float32 on the source's grid, in the target contrast's typical intensity scale
        (the training targets' statistics stored in the checkpoint).
    standardized : np.ndarray
        The generator's raw output, ``(224, 224, 32)``, standardized units.
    spread : np.ndarray or None
        Standard deviation of the overlapping patch predictions, on the source's grid,
        in standardized units.
    metrics : dict
        ``mae``, ``psnr`` (dB) and ``ssim`` against the ground truth, both volumes
        standardized as in the report, peak = range of the standardized truth.
    maps : dict of np.ndarray
        ``squared_error`` and ``gradient_difference`` on the source's grid (standardized
        units), when a ground truth was given.
    """

    synthesis: np.ndarray
    standardized: np.ndarray
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
    stride: int = 8,
    device="auto",
    batch_size: int | None = None,
    spread: bool = False,
    preview: bool = False,
    progress=None,
    cancel=None,
) -> SynthesisResult:
    """Preprocess ``source``, reconstruct it patch by patch, and map the result back.

    With ``preview``, one pass of the fully convolutional generator over the whole volume
    (:func:`~napari_medsynth.core.reconstruct.preview_volume`, about 1/13 of the work at
    stride 8) replaces the patch average; it has no spread map and ignores ``stride``.

    Raises
    ------
    MedSynthError
        Wrong contrast, a constant volume, or a target on another grid.
    Cancelled
        ``cancel`` was set.
    """
    check_contrast(source, info.source_contrast, "source")
    if target is not None:
        check_contrast(target, info.target_contrast, "ground truth")
        check_pair(source, target)
    prepared = preprocess_volume(source)
    if preview:
        standardized = preview_volume(generator, prepared.data, device=device, progress=progress, cancel=cancel)
        spread_map = None
    else:
        reconstructed = reconstruct_volume(
            generator, prepared.data, patch=info.patch, stride=stride, batch_size=batch_size,
            device=device, progress=progress, cancel=cancel, return_spread=spread,
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
    result = SynthesisResult(
        synthesis=scale.invert(to_source_grid(standardized, prepared)),
        standardized=standardized,
        spread=None if spread_map is None else to_source_grid(spread_map, prepared),
    )
    if target is not None:
        truth = preprocess_volume(target).data
        result.metrics = quality(standardized, truth)
        result.maps = {
            "squared_error": to_source_grid(squared_error_map(standardized, truth), prepared),
            "gradient_difference": to_source_grid(gradient_difference_map(standardized, truth), prepared),
        }
    return result


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
