"""The automatic head mask that the masked metrics and maps use.

Method: Otsu's threshold of the volume (``skimage.filters.threshold_otsu``, 256 bins)
separates the head from the air; a binary closing (one iteration of the 3D cross)
joins the gaps, the holes are filled (CSF darker than the threshold inside the head
stays in), and the largest connected component is kept (stray bright voxels and noise
in the air go).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import MedSynthError

__all__ = ["check_mask", "head_mask"]


def head_mask(volume) -> np.ndarray:
    """A boolean mask of the head in ``volume`` (any 3D intensity array), by the module's method."""
    from skimage.filters import threshold_otsu

    data = np.asarray(volume, dtype=np.float32)
    foreground = ndimage.binary_closing(data > threshold_otsu(data), iterations=1, border_value=0)
    foreground = ndimage.binary_fill_holes(foreground)
    labels, count = ndimage.label(foreground)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        foreground = labels == int(np.argmax(sizes))
    return foreground


def check_mask(mask, shape, name: str = "the mask") -> np.ndarray:
    """``mask`` as a boolean array of ``shape``.

    Raises
    ------
    MedSynthError
        It lies on another grid (another shape), or it selects no voxel.
    """
    mask = np.asarray(mask) != 0
    if mask.shape != tuple(shape):
        raise MedSynthError(f"{name} has shape {mask.shape} but the volume has shape {tuple(shape)}; "
                            "a mask must lie on the volume's grid")
    if not mask.any():
        raise MedSynthError(f"{name} selects no voxel")
    return mask
