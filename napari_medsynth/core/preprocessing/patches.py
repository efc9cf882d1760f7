"""Where 32^3 patches start in a volume.

Patch starts on each axis are ``0, stride, 2*stride, ...`` and, when the stride does not
divide ``size - patch``, one more start at ``size - patch``, so the last patch ends on
the border and every voxel is covered (the published medSynthesis code instead leaves
the border uncovered). A preprocessed 224 x 224 x 32 volume gives 7 x 7 x 1 = 49
non-overlapping training patches and, at stride 8, 25 x 25 x 1 = 625 overlapping ones.
"""

from __future__ import annotations

import numpy as np

__all__ = ["patch_grid", "patch_starts"]


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Starts of the patches along one axis of length ``size``.

    Raises
    ------
    ValueError
        ``patch`` or ``stride`` is not positive, or ``patch`` exceeds ``size``.
    """
    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be positive, got patch={patch}, stride={stride}")
    if patch > size:
        raise ValueError(f"a {patch}-voxel patch does not fit an axis of {size} voxels")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def patch_grid(shape: tuple[int, ...], patch: int = 32, stride: int | None = None) -> np.ndarray:
    """Start corners of all patches of a volume, shape ``(N, ndim)``, C order.

    ``stride`` defaults to ``patch``: non-overlapping patches, as used for training.
    """
    stride = patch if stride is None else stride
    axes = [patch_starts(size, patch, stride) for size in shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)
