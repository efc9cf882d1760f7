"""Image-quality metrics between a synthesis and its ground truth."""

from __future__ import annotations

import numpy as np

__all__ = ["mae", "psnr"]


def _pair(prediction, target, mask):
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: prediction {prediction.shape}, target {target.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        return prediction[mask], target[mask]
    return prediction, target


def mae(prediction, target, mask=None) -> float:
    """Mean absolute error, optionally within a boolean ``mask``."""
    prediction, target = _pair(prediction, target, mask)
    return float(np.mean(np.abs(prediction - target)))


def psnr(prediction, target, data_range: float | None = None, mask=None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(peak^2 / MSE)``.

    The peak is ``data_range`` when given, otherwise the ground truth's dynamic range
    ``target.max() - target.min()`` (never taken from the prediction, which would
    reward a synthesis for inventing bright voxels).
    """
    full_target = np.asarray(target, dtype=np.float64)
    peak = float(np.ptp(full_target)) if data_range is None else float(data_range)
    prediction, target = _pair(prediction, target, mask)
    mse = float(np.mean((prediction - target) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak**2 / mse))
