"""Image-quality metrics and error maps between a synthesis and its ground truth.

The report computes MAE and PSNR on standardized volumes (zero mean, unit std), with the
PSNR peak taken from the data's range; :func:`psnr` defaults to the ground truth's
dynamic range, never the prediction's. Its absolute value therefore depends on the
standardization and on the peak convention, and is comparable with the report's
figures only under the same convention (standardized 224 x 224 x 32 volumes, peak =
range of the standardized ground truth).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity
from skimage.util import crop

__all__ = ["gradient_difference_map", "mae", "psnr", "quality", "quality_by_region", "squared_error_map", "ssim"]

IN_PLANE_AXES = (0, 1)  # of a preprocessed (224, 224, 32) volume: the slice axis is last


def _pair(prediction, target):
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: prediction {prediction.shape}, target {target.shape}")
    return prediction, target


def _mean_within(values: np.ndarray, mask) -> float:
    return float(values[np.asarray(mask, dtype=bool)].mean() if mask is not None else values.mean())


def mae(prediction, target, mask=None) -> float:
    """Mean absolute error, optionally within a boolean ``mask``."""
    prediction, target = _pair(prediction, target)
    return _mean_within(np.abs(prediction - target), mask)


def psnr(prediction, target, data_range: float | None = None, mask=None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(peak^2 / MSE)``.

    The peak is ``data_range`` when given, otherwise the ground truth's dynamic range
    ``target.max() - target.min()`` (never taken from the prediction, which would
    reward a synthesis for inventing bright voxels). Agrees with
    ``skimage.metrics.peak_signal_noise_ratio`` given the same ``data_range``.
    """
    prediction, target = _pair(prediction, target)
    peak = float(np.ptp(target)) if data_range is None else float(data_range)
    mse = _mean_within((prediction - target) ** 2, mask)
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(peak**2 / mse))


def ssim(prediction, target, data_range: float | None = None, mask=None, win_size: int = 7) -> float:
    """Structural similarity over the whole 3D volume.

    ``skimage.metrics.structural_similarity`` with its defaults (7-voxel uniform window,
    K1=0.01, K2=0.03, sample covariance, the border of half a window left out of the
    mean) and ``data_range`` defaulting to the ground truth's range. With ``mask``, its
    SSIM map is averaged within the mask instead.
    """
    prediction, target = _pair(prediction, target)
    return _ssim_mean(_ssim_map(prediction, target, data_range, win_size), mask, win_size)


def _ssim_map(prediction: np.ndarray, target: np.ndarray, data_range, win_size: int) -> np.ndarray:
    peak = float(np.ptp(target)) if data_range is None else float(data_range)
    return structural_similarity(prediction, target, win_size=win_size, data_range=peak, full=True)[1]


def _ssim_mean(ssim_map: np.ndarray, mask, win_size: int) -> float:
    if mask is not None:
        return _mean_within(ssim_map, mask)
    return float(crop(ssim_map, (win_size - 1) // 2).mean())  # the border left out, as skimage


def quality(prediction, target, mask=None) -> dict[str, float]:
    """``mae``, ``psnr`` (dB) and ``ssim`` of ``prediction`` against ``target``, as the report;
    within ``mask`` when given (the PSNR peak stays the whole target's range)."""
    return quality_by_region(prediction, target, {"": mask})[""]


def quality_by_region(prediction, target, regions: dict) -> dict[str, dict[str, float]]:
    """:func:`quality` within each of ``regions`` (name -> mask, None for the whole volume),
    the SSIM map computed once."""
    prediction, target = _pair(prediction, target)
    ssim_map = _ssim_map(prediction, target, None, 7)
    return {
        name: {"mae": mae(prediction, target, mask), "psnr": psnr(prediction, target, mask=mask),
               "ssim": _ssim_mean(ssim_map, mask, 7)}
        for name, mask in regions.items()
    }


def squared_error_map(prediction, target, mask=None) -> np.ndarray:
    """Per-voxel ``(prediction - target)^2`` as float32, 0 outside ``mask``."""
    prediction, target = _pair(prediction, target)
    return _masked((prediction - target) ** 2, mask)


def gradient_difference_map(prediction, target, axes=IN_PLANE_AXES, mask=None) -> np.ndarray:
    """Per-voxel ``| |grad target| - |grad prediction| |`` as float32, 0 outside ``mask``.

    ``|grad|`` is the magnitude of the central-difference gradient along ``axes``:
    the in-plane axes by default, as the report's 2D gradient-difference loss, or
    ``(0, 1, 2)`` for the paper's 3D one. Large where edges are missing or invented.
    """
    prediction, target = _pair(prediction, target)

    def magnitude(x):
        gradients = np.gradient(x, axis=tuple(axes))
        gradients = [gradients] if len(tuple(axes)) == 1 else gradients
        return np.sqrt(sum(g**2 for g in gradients))

    return _masked(np.abs(magnitude(target) - magnitude(prediction)), mask)


def _masked(values: np.ndarray, mask) -> np.ndarray:
    if mask is not None:
        values = np.where(np.asarray(mask, dtype=bool), values, 0.0)
    return values.astype(np.float32)
