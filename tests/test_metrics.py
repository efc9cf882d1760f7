"""Metrics and maps, against scikit-image where it has them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_medsynth.core.evaluation.metrics import (
    gradient_difference_map,
    mae,
    psnr,
    quality_by_region,
    squared_error_map,
    ssim,
)
from napari_medsynth.core.simulation.phantom import make_phantom


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


def _reference_ssim_map(x, y, peak, win_size):
    """The oracle: the SSIM map as written out by hand before scikit-image computed it."""
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    n = win_size**x.ndim

    def mean(v):
        return ndimage.uniform_filter(v, size=win_size)

    ux, uy = mean(x), mean(y)
    vx = n / (n - 1) * (mean(x * x) - ux * ux)
    vy = n / (n - 1) * (mean(y * y) - uy * uy)
    vxy = n / (n - 1) * (mean(x * y) - ux * uy)
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def _standardized(volume):
    volume = np.asarray(volume, dtype=np.float64)
    return (volume - volume.mean()) / volume.std()


def test_ssim_equals_the_hand_written_reference_on_phantom_and_smooth_volumes():
    subject = make_phantom(3, shape=(64, 64, 32), zooms=(3.75, 3.75, 4.875))
    rng = np.random.default_rng(2)
    smooth = ndimage.gaussian_filter(rng.normal(size=(2, 30, 28, 24)), (0, 2, 2, 2))
    pairs = [
        (_standardized(subject.t2.data), _standardized(subject.pd.data), subject.labels > 0),
        (smooth[0], smooth[0] + 0.5 * smooth[1], smooth[1] > 0),
    ]
    for prediction, truth, mask in pairs:
        for data_range, win_size in ((None, 7), (4.0, 7), (None, 5), (2.0, 3)):
            peak = np.ptp(truth) if data_range is None else data_range
            expected = _reference_ssim_map(prediction, truth, peak, win_size)
            pad = (win_size - 1) // 2
            assert ssim(prediction, truth, data_range, win_size=win_size) == pytest.approx(
                expected[pad:-pad, pad:-pad, pad:-pad].mean(), abs=1e-12
            )
            masked = ssim(prediction, truth, data_range, mask, win_size)
            assert masked == pytest.approx(expected[mask].mean(), abs=1e-12)
        regions = quality_by_region(prediction, truth, {"all": None, "mask": mask})
        expected = _reference_ssim_map(prediction, truth, np.ptp(truth), 7)
        assert regions["all"]["ssim"] == pytest.approx(expected[3:-3, 3:-3, 3:-3].mean(), abs=1e-12)
        assert regions["mask"]["ssim"] == pytest.approx(expected[mask].mean(), abs=1e-12)


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
