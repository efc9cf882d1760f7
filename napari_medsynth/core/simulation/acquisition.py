"""What real acquisitions do to an image that a phantom does not: thick slices, coarse voxels and
blur, another scanner's voxel size, 8-bit storage, a strong bias field, another field of view, a lesion.

Each function takes a :class:`~napari_medsynth.core.files.nifti.Volume` and returns a new one (its affine
follows the grid), so that checks calibrated on phantoms (the contrast check,
``scripts/contrast_check_calibration.py``) can be tried on images that look like what users bring.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..files.nifti import Volume

__all__ = [
    "DEGRADATIONS",
    "LESION_FACTOR",
    "bias_field",
    "coarse_blurred",
    "degrade",
    "eight_bit",
    "lesion",
    "resampled",
    "thick_slices",
    "tight_field_of_view",
    "wide_field_of_view",
]


def _zooms(affine) -> np.ndarray:
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def thick_slices(volume: Volume, mm: float = 5.0) -> Volume:
    """Slices about ``mm`` thick along the third axis: whole groups of slices averaged (partial volume)."""
    group = max(1, round(mm / _zooms(volume.affine)[2]))
    depth = volume.data.shape[2] // group * group
    data = volume.data[:, :, :depth].reshape(*volume.data.shape[:2], -1, group).mean(axis=-1)
    affine = volume.affine.copy()
    affine[:3, 3] += affine[:3, 2] * (group - 1) / 2  # the new slice's centre
    affine[:3, 2] *= group
    return Volume(data.astype(np.float32), affine)


def coarse_blurred(volume: Volume, mm: float = 2.0, sigma: float = 1.0) -> Volume:
    """Resampled to ``mm`` voxels (linear), then blurred by a Gaussian of ``sigma`` voxels (as the avg152 templates)."""
    factors = _zooms(volume.affine) / mm
    data = ndimage.gaussian_filter(ndimage.zoom(volume.data, factors, order=1), sigma)
    affine = volume.affine.copy()
    affine[:3, :3] = affine[:3, :3] / factors
    return Volume(data.astype(np.float32), affine)


def resampled(volume: Volume, zooms=(0.86, 0.86, 2.4)) -> Volume:
    """Resampled to voxels of ``zooms`` mm (linear), each first blurred to its own size where it is larger than
    the original's (a Gaussian of FWHM ``sqrt(new**2 - old**2)``: the slice profile's partial volume)."""
    old, new = _zooms(volume.affine), np.asarray(zooms, dtype=float)
    sigma = np.sqrt(np.maximum(new**2 - old**2, 0.0)) / (2 * np.sqrt(2 * np.log(2))) / old
    shape = [int((n - 1) * o / z) + 1 for n, o, z in zip(volume.data.shape, old, new)]
    data = ndimage.affine_transform(ndimage.gaussian_filter(volume.data, sigma), new / old, output_shape=shape,
                                    order=1)
    affine = volume.affine.copy()
    affine[:3, :3] = affine[:3, :3] * (new / old)
    return Volume(data.astype(np.float32), affine)


def eight_bit(volume: Volume) -> Volume:
    """Stored as 0..255: scaled by its 99.9th percentile, rounded, clipped."""
    top = float(np.percentile(volume.data, 99.9)) or 1.0
    return Volume(np.clip(np.round(volume.data / top * 255.0), 0, 255).astype(np.float32), volume.affine.copy())


def bias_field(volume: Volume, strength: float = 1.0) -> Volume:
    """A strong smooth multiplicative field: ``exp(strength * (0.5 x + 0.3 y - 0.3 z + 0.3 x y))`` over the
    grid's [-1, 1] coordinates (a factor of about 3 from one side of a head to the other at strength 1)."""
    x, y, z = np.meshgrid(*[np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in volume.data.shape], indexing="ij")
    field = np.exp(np.float32(strength) * (0.5 * x + 0.3 * y - 0.3 * z + 0.3 * x * y))
    return Volume((volume.data * field).astype(np.float32), volume.affine.copy())


def tight_field_of_view(volume: Volume, keep: float = 0.7) -> Volume:
    """The middle ``keep`` of the in-plane field of view (a clinical field of view that cuts the air away)."""
    start = [int(n * (1 - keep) / 2) for n in volume.data.shape[:2]]
    data = volume.data[start[0]: volume.data.shape[0] - start[0], start[1]: volume.data.shape[1] - start[1]]
    affine = volume.affine.copy()
    affine[:3, 3] += affine[:3, :2] @ np.array(start, dtype=float)
    return Volume(np.ascontiguousarray(data), affine)


def wide_field_of_view(volume: Volume, pad: int = 40) -> Volume:
    """``pad`` voxels of air around the in-plane field of view and ``pad // 4`` above and below."""
    widths = ((pad, pad), (pad, pad), (pad // 4, pad // 4))
    affine = volume.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.array([pad, pad, pad // 4], dtype=float)
    return Volume(np.pad(volume.data, widths), affine)


def lesion(volume: Volume, factor: float, radius_mm: float = 8.0, offset_mm=(19.0, -14.0, 12.0)) -> Volume:
    """A Gaussian blob ``factor`` times as bright at its centre (above 1: a T2 hyperintensity), at
    ``offset_mm`` from the grid's centre (in deep white matter of a centred head)."""
    zooms = _zooms(volume.affine)
    centre = (np.array(volume.data.shape) - 1) / 2 + np.asarray(offset_mm) / zooms
    axes = [(np.arange(n, dtype=np.float32) - c) * z for n, c, z in zip(volume.data.shape, centre, zooms)]
    squared = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    blob = np.exp(-squared / np.float32(2 * radius_mm**2))
    return Volume((volume.data * (1 + (factor - 1) * blob)).astype(np.float32), volume.affine.copy())


# The degradations of the contrast check's calibration (docs/contrast_check.md), by name; a lesion
# needs the factor of the image's contrast (:data:`LESION_FACTOR`). Each is its steps, in order.
LESION_FACTOR = {"T2": 2.0, "PD": 1.3, "T1": 0.6}
_STEPS = {
    "as simulated": (),
    "5 mm slices": (thick_slices,),
    "2 mm, blurred": (coarse_blurred,),
    "8-bit": (eight_bit,),
    "strong bias field": (bias_field,),
    "tight field of view": (tight_field_of_view,),
    "wide field of view": (wide_field_of_view,),
    "lesion": (lesion,),
    "5 mm, 8-bit, lesion": (lesion, thick_slices, eight_bit),
    "0.86x0.86x2.4 mm": (resampled,),  # another scanner's voxels: thinner in plane, thick slices
    "0.86x0.86x2.4 mm, 8-bit": (resampled, eight_bit),
    "0.86x0.86x2.4 mm, bias field, 8-bit": (resampled, bias_field, eight_bit),
}
DEGRADATIONS = tuple(_STEPS)


def degrade(volume: Volume, name: str, contrast: str) -> Volume:
    """``volume`` (of ``contrast``: T2, PD or T1) degraded as :data:`DEGRADATIONS` ``name`` says."""
    for step in _STEPS[name]:
        volume = step(volume, LESION_FACTOR[contrast]) if step is lesion else step(volume)
    return volume
