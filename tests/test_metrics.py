"""Metrics and maps, against scikit-image where it has them."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_medsynth.core.metrics import gradient_difference_map, mae, psnr, squared_error_map, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(24, 26, 20))
    return truth + 0.25 * rng.normal(size=truth.shape), truth


def test_psnr_and_ssim_agree_with_skimage(pair):
    prediction, truth = pair
    for data_range in (4.0, float(np.ptp(truth))):
        assert psnr(prediction, truth, data_range) == pytest.approx(
            peak_signal_noise_ratio(truth, prediction, data_range=data_range), abs=1e-9
        )
        assert ssim(prediction, truth, data_range) == pytest.approx(
            structural_similarity(truth, prediction, data_range=data_range), abs=1e-9
        )


def test_psnr_peak_is_the_truths_range_not_the_predictions(pair):
    prediction, truth = pair
    spiked = prediction.copy()
    spiked[0, 0, 0] = 1e3
    mse = np.mean((spiked - truth) ** 2)
    assert psnr(spiked, truth) == pytest.approx(10 * np.log10(np.ptp(truth) ** 2 / mse))


def test_mae_and_masks(pair):
    prediction, truth = pair
    mask = np.zeros(truth.shape, bool)
    mask[5:10] = True
    assert mae(prediction, truth) == pytest.approx(np.abs(prediction - truth).mean())
    assert mae(prediction, truth, mask) == pytest.approx(np.abs(prediction - truth)[mask].mean())
    squared = squared_error_map(prediction, truth, mask)
    assert squared.dtype == np.float32 and squared[~mask].max() == 0
    np.testing.assert_allclose(squared[mask], ((prediction - truth) ** 2)[mask], rtol=1e-6)
    assert psnr(prediction, truth, mask=mask) != psnr(prediction, truth)


def test_gradient_difference_map_in_plane_or_3d():
    ramp_along_slices = np.broadcast_to(np.arange(10.0), (12, 12, 10))
    flat = np.zeros((12, 12, 10))
    # A change only across slices is invisible in-plane (the report's 2D GDL) but not in 3D.
    assert gradient_difference_map(flat, ramp_along_slices).max() == 0
    np.testing.assert_allclose(gradient_difference_map(flat, ramp_along_slices, axes=(0, 1, 2)), 1.0)
    edge = np.zeros((12, 12, 10))
    edge[6:] = 1.0
    assert gradient_difference_map(flat, edge)[5:7].min() == pytest.approx(0.5)
    assert gradient_difference_map(edge, edge).max() == 0


def test_identical_volumes():
    truth = np.random.default_rng(1).normal(size=(16, 16, 16))
    assert psnr(truth, truth) == float("inf")
    assert ssim(truth, truth) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        mae(truth, truth[1:])
