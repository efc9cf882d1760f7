"""The report's preprocessing, and its inverse.

A volume is resampled to 224 x 224 x 96 (anti-aliased where it shrinks), one slice in
three is kept (224 x 224 x 32), and the result is standardized to zero mean and unit
standard deviation.

Slice axis: the voxel axis whose direction in the affine is closest to superior-inferior
(IXI T2/PD files are axial, so it is their third axis). It is moved last; the two
in-plane axes keep their file order. Of each three resampled slices the middle one is
kept (indices 1, 4, ..., 94), so the kept slices sit symmetrically in the volume.

Resampling is linear and done in one pass from the source grid, which gives exactly the
slices that resampling to 96 and then keeping one in three gives. Voxel centres are
aligned (as ``skimage.transform.resize``), so :func:`to_source_grid` maps a result back
onto the source's voxel grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations as nio
from scipy import ndimage

from .errors import MedSynthError
from .nifti import Volume

__all__ = [
    "PREPROCESSED_SHAPE",
    "Preprocessed",
    "Standardization",
    "check_pair",
    "preprocess_volume",
    "slice_axis",
    "to_source_grid",
]

RESAMPLED_SHAPE = (224, 224, 96)
KEEP_EVERY = 3
KEEP_OFFSET = 1
PREPROCESSED_SHAPE = (224, 224, 32)
_AFFINE_TOLERANCE_MM = 1e-2


@dataclass(frozen=True)
class Standardization:
    """The mean and standard deviation a volume was standardized with."""

    mean: float
    std: float

    @classmethod
    def of(cls, data: np.ndarray, label: str = "volume") -> Standardization:
        """The statistics of ``data``.

        Raises
        ------
        MedSynthError
            ``data`` is constant, so it has no contrast to standardize.
        """
        mean = float(np.mean(data, dtype=np.float64))
        std = float(np.std(data, dtype=np.float64))
        if not std > 1e-6 * max(1.0, abs(mean)):
            raise MedSynthError(
                f"{label}: the image is constant (every voxel is {mean:g}); nothing to synthesize"
            )
        return cls(mean, std)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``(data - mean) / std`` as float32."""
        return ((np.asarray(data, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def invert(self, data: np.ndarray) -> np.ndarray:
        """``data * std + mean`` as float32: standardized values back to intensities."""
        return (np.asarray(data, dtype=np.float32) * self.std + self.mean).astype(np.float32)


@dataclass(frozen=True)
class Preprocessed:
    """A standardized 224 x 224 x 32 volume and what is needed to go back to its source.

    Attributes
    ----------
    data : np.ndarray
        float32 ``(224, 224, 32)``, axes (in-plane, in-plane, slice), mean 0, std 1.
    standardization : Standardization
        Statistics of the resampled volume before standardization.
    source_shape : tuple of int
        Shape of the source volume in its file's voxel order.
    slice_axis : int
        The source's voxel axis that became the last axis.
    """

    data: np.ndarray
    standardization: Standardization
    source_shape: tuple[int, int, int]
    slice_axis: int


def slice_axis(affine: np.ndarray) -> int:
    """The voxel axis closest to the superior-inferior world axis."""
    return int(np.flatnonzero(nio.io_orientation(affine)[:, 0] == 2)[0])


def check_pair(first: Volume, second: Volume) -> None:
    """Refuse a T2/PD pair whose volumes do not share one voxel grid.

    Raises
    ------
    MedSynthError
        The shapes or the affines differ.
    """
    if first.data.shape != second.data.shape:
        raise MedSynthError(
            f"{first.name} has shape {first.data.shape} but {second.name} has shape "
            f"{second.data.shape}; a T2/PD pair must share one voxel grid"
        )
    if not np.allclose(first.affine, second.affine, atol=_AFFINE_TOLERANCE_MM):
        raise MedSynthError(
            f"{first.name} and {second.name} have different affines; "
            "a T2/PD pair must share one voxel grid"
        )


def preprocess_volume(volume: Volume) -> Preprocessed:
    """Resample to 224 x 224 x 96, keep one slice in three, and standardize.

    Raises
    ------
    MedSynthError
        The volume is constant.
    """
    axis = slice_axis(volume.affine)
    data = np.moveaxis(volume.data, axis, -1)
    matrix, offset = _grid_map(data.shape)
    sigma = [max(0.0, (n / m - 1.0) / 2.0) for n, m in zip(data.shape, RESAMPLED_SHAPE)]
    if any(sigma):
        data = ndimage.gaussian_filter(data, sigma, mode="nearest")
    resampled = ndimage.affine_transform(
        data, matrix, offset=offset, output_shape=PREPROCESSED_SHAPE, order=1, mode="nearest"
    )
    standardization = Standardization.of(resampled, volume.name)
    return Preprocessed(
        data=standardization.apply(resampled),
        standardization=standardization,
        source_shape=tuple(volume.data.shape),
        slice_axis=axis,
    )


def to_source_grid(data: np.ndarray, preprocessed: Preprocessed) -> np.ndarray:
    """Bring a ``(224, 224, 32)`` array back onto the source's voxel grid (linear)."""
    shape = list(preprocessed.source_shape)
    moved_shape = tuple(np.delete(shape, preprocessed.slice_axis)) + (
        shape[preprocessed.slice_axis],
    )
    matrix, offset = _grid_map(moved_shape)
    restored = ndimage.affine_transform(
        np.asarray(data, dtype=np.float32),
        1.0 / matrix,
        offset=-offset / matrix,
        output_shape=moved_shape,
        order=1,
        mode="nearest",
    )
    return np.moveaxis(restored, -1, preprocessed.slice_axis)


def _grid_map(source_shape) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal map from preprocessed voxel indices to source voxel coordinates."""
    source = np.asarray(source_shape, dtype=np.float64)
    resampled = np.asarray(RESAMPLED_SHAPE, dtype=np.float64)
    step = source / resampled
    matrix = step * np.array([1.0, 1.0, KEEP_EVERY])
    offset = (np.array([0.0, 0.0, KEEP_OFFSET]) + 0.5) * step - 0.5
    return matrix, offset
