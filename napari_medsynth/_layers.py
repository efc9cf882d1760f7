"""Turning core volumes into napari layer data tuples (no napari import needed)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from .core.ixi import ixi_name
from .core.nifti import Volume, to_display

__all__ = ["robust_contrast_limits", "volume_layer"]

_SAMPLE_VOXELS = 200_000


def robust_contrast_limits(data: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Percentile contrast limits of the voxels above the background, so one hot voxel cannot black out the view."""
    flat = np.asarray(data).ravel()
    if flat.size > _SAMPLE_VOXELS:
        flat = flat[:: flat.size // _SAMPLE_VOXELS]
    foreground = flat[flat > flat.min()]
    values = foreground if foreground.size else flat
    lo, hi = np.percentile(values, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def volume_layer(
    volume: Volume, *, name: str | None = None, subject: str | None = None, contrast: str | None = None
) -> tuple:
    """An ``(data, kwargs, "image")`` tuple showing ``volume`` in the display orientation.

    The layer metadata keeps the file's affine, voxel axis codes and path, so results
    computed on the layer can be written back onto the file's grid.
    """
    data, scale, translate = to_display(volume)
    parsed = ixi_name(volume.path) if volume.path else None
    if parsed:
        subject, contrast = subject or parsed[0], contrast or parsed[1]
    subject = subject or volume.name
    if name is None:
        name = f"{subject.split('-')[0]} {contrast}" if contrast else subject
    metadata = {
        "affine": volume.affine.copy(),
        "axcodes": "".join(nib.aff2axcodes(volume.affine)),
        "source_path": str(volume.path) if volume.path else None,
        "subject": subject,
        "contrast": contrast,
    }
    kwargs = {
        "name": name,
        "scale": scale,
        "translate": translate,
        "contrast_limits": robust_contrast_limits(data),
        "colormap": "gray",
        "metadata": metadata,
    }
    return data, kwargs, "image"
