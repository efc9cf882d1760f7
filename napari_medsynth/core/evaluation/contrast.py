"""Which contrasts a brain volume's intensities say it could have: T2-, PD- or T1-weighted.

CSF tells them apart. On a T2-weighted image it is the brightest brain tissue (two to four times
grey matter), on a PD-weighted one it is close to grey matter (darker where a short TR adds T1
weighting), on a T1-weighted one it is the darkest. :func:`contrast_evidence` measures that where
there is CSF and little else: in the core of the head (the voxels farther from the head's surface
than half the deepest one: ventricles, deep grey and white matter; no scalp fat or marrow), on a
grid of about 2.5 mm, in log intensities less their 20 mm Gaussian average (a bias field, a gain,
an offset-free rescaling and 8-bit quantization drop out). Its ``upper`` is the core's 98th
percentile above its median (bright CSF), its ``lower`` the 2nd percentile below it (dark CSF),
both as natural logs.

:meth:`ContrastEvidence.possible` names every contrast whose range the evidence falls in: one where
it is sure, two where the ranges meet (a PD with T1 weighting has CSF nearly as dark as a blurred
T1), all three where the image has no tissue contrast. The ranges come from phantoms of three
contrasts at several repetition times, degraded as real scans are (thick slices, 2 mm and blurred,
another scanner's voxels, 8-bit, a strong bias field, another field of view, a lesion), with a
margin, and hold on the ICBM avg152 T1/T2/PD templates (docs/contrast_check.md,
``scripts/contrast_check_calibration.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..files.nifti import Volume

__all__ = ["WEIGHTINGS", "ContrastEvidence", "contrast_evidence", "guess_contrast"]

WEIGHTINGS = ("T2", "PD", "T1")  # from the brightest CSF to the darkest
_GRID_MM = 2.5  # the voxels are pooled by whole steps up to about this size
_SMOOTH_MM = 20.0  # the bias field's scale: what varies slower than this is taken out
_CORE = 0.5  # the core: farther from the head's surface than this share of the deepest voxel
_MIN_CORE_VOXELS = 200
# the ranges, in natural logs of intensity ratios (docs/contrast_check.md)
T2_UPPER = 0.30  # T2 from here up: the core's brightest 2% at least 1.35 times its median (bright CSF)
BRIGHT = 0.40  # PD and T1 below this only: CSF brighter than 1.49 times the median is T2's
T1_LOWER = 0.25  # T1 from here up: the darkest 2% below 0.78 of the median (dark CSF)
PD_LOWER = 0.50  # PD below this only: CSF darker than 0.61 of the median is T1's
TEXTURE = 0.08  # both below this: no tissue contrast (a smooth image is no brain), nothing said


@dataclass(frozen=True)
class ContrastEvidence:
    """How far the head core's brightest and darkest 2% lie from its median (natural logs)."""

    upper: float
    lower: float

    def possible(self) -> tuple[str, ...]:
        """The contrasts the image could be, in :data:`WEIGHTINGS`' order: one where the evidence is
        clear, two where it lies where their ranges meet, all three where it says nothing."""
        if max(self.upper, self.lower) < TEXTURE:
            return WEIGHTINGS
        return tuple(contrast for contrast, could in (
            ("T2", self.upper >= T2_UPPER),
            ("PD", self.upper < BRIGHT and self.lower < PD_LOWER),
            ("T1", self.upper < BRIGHT and self.lower >= T1_LOWER)) if could)

    def contrast(self) -> str | None:
        """``"T2"``, ``"PD"`` or ``"T1"`` where the image can be only that, else None."""
        possible = self.possible()
        return possible[0] if len(possible) == 1 else None

    def unlike(self, expected: str) -> str | None:
        """What the image looks like where it cannot be ``expected`` (``"PD or T1 image (its
        intensities)"``), or None where it could."""
        possible = self.possible()
        return None if expected in possible else f"{' or '.join(possible)} image (its intensities)"


def contrast_evidence(volume: Volume) -> ContrastEvidence | None:
    """The :class:`ContrastEvidence` of a 3D brain volume, or None when it has no head core to measure."""
    data = np.asarray(volume.data, dtype=np.float32)
    zooms = np.sqrt((np.asarray(volume.affine, dtype=float)[:3, :3] ** 2).sum(axis=0))
    steps = np.maximum(1, np.floor(_GRID_MM / np.maximum(zooms, 1e-3))).astype(int)
    data = data[:: steps[0], :: steps[1], :: steps[2]]
    zooms = zooms * steps
    finite = np.isfinite(data)
    if finite.sum() < _MIN_CORE_VOXELS:
        return None
    data = np.where(finite, data, 0.0)
    low, high = np.percentile(data, [2, 98])
    if not high > low:
        return None
    head = _largest(ndimage.binary_fill_holes(
        ndimage.binary_closing(data > low + 0.1 * (high - low), iterations=2, border_value=0)))
    depth = ndimage.distance_transform_edt(head, sampling=zooms)
    core = depth > _CORE * depth.max()
    if core.sum() < _MIN_CORE_VOXELS or not np.median(data[core]) > 0:
        return None
    log = np.log(np.maximum(data, np.float32(1e-3 * np.median(data[core]))))
    weight = core.astype(np.float32)
    sigma = [_SMOOTH_MM / z for z in zooms]
    average = ndimage.gaussian_filter(log * weight, sigma) / np.maximum(ndimage.gaussian_filter(weight, sigma), 1e-6)
    detail = (log - average)[core]
    low, median, high = np.quantile(detail, [0.02, 0.5, 0.98])
    return ContrastEvidence(upper=float(high - median), lower=float(median - low))


def guess_contrast(volume: Volume) -> str | None:
    """``"T2"``, ``"PD"`` or ``"T1"`` when the volume's intensities say so clearly, else None."""
    evidence = contrast_evidence(volume)
    return evidence.contrast() if evidence is not None else None


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of ``mask``."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))
