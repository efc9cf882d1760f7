"""The report's preprocessing: 224 x 224 x 96, one slice in three, standardization, and back."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IXI_AFFINE, smooth_volume
from scipy import ndimage

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import Volume
from napari_medsynth.core.preprocessing.preprocess import (
    PREPROCESSED_SHAPE,
    Standardization,
    _grid_map,
    check_pair,
    interleave,
    preprocess_volume,
    slice_axis,
    stacks,
    to_source_grid,
)

IXI_SHAPE = (256, 256, 130)


@pytest.fixture(scope="module")
def ixi_sized():
    return Volume(smooth_volume(IXI_SHAPE), IXI_AFFINE)


def test_ixi_volume_becomes_standardized_224_224_32(ixi_sized):
    prep = preprocess_volume(ixi_sized)
    assert prep.data.shape == PREPROCESSED_SHAPE == (224, 224, 32)
    assert prep.data.dtype == np.float32
    assert abs(float(prep.data.mean())) < 1e-5
    assert float(prep.data.std()) == pytest.approx(1.0, abs=1e-5)
    assert prep.slice_axis == 2
    assert prep.source_shape == IXI_SHAPE


def test_kept_slices_are_the_middle_of_each_three_of_96():
    # A linear ramp along the slice axis survives linear resampling exactly (away from the
    # ends, where the anti-aliasing filter meets the border), so the kept slice k must sit
    # at index 3k+1 of the 96-slice grid, i.e. at source coordinate (3k+1.5)*S/96 - 0.5.
    n_slices = 130
    ramp = np.broadcast_to(np.arange(n_slices, dtype=np.float32), (24, 24, n_slices)).copy()
    prep = preprocess_volume(Volume(ramp, IXI_AFFINE))
    restored = prep.standardization.invert(prep.data)[12, 12, :]
    expected = (3 * np.arange(32) + 1.5) * n_slices / 96 - 0.5
    np.testing.assert_allclose(restored[3:-3], expected[3:-3], atol=1e-3)


def test_slice_axis_comes_from_the_affine():
    sagittal_first = np.array([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [1.2, 0, 0, 0], [0, 0, 0, 1]])
    assert slice_axis(sagittal_first) == 0
    assert slice_axis(IXI_AFFINE) == 2
    data = smooth_volume((40, 50, 60))
    axial = preprocess_volume(Volume(data, IXI_AFFINE))
    moved = preprocess_volume(Volume(np.moveaxis(data, 2, 0).copy(), sagittal_first))
    assert moved.slice_axis == 0
    np.testing.assert_allclose(moved.data, axial.data, atol=1e-5)


def test_result_maps_back_onto_the_source_grid(ixi_sized):
    prep = preprocess_volume(ixi_sized)
    restored = prep.standardization.invert(to_source_grid(prep.data, prep))
    assert restored.shape == IXI_SHAPE
    error = np.abs(restored - ixi_sized.data)
    # A smooth volume survives the round trip through 32 slices to within a few percent.
    assert float(error.mean()) < 0.01 * float(np.ptp(ixi_sized.data))


def test_to_source_grid_restores_a_permuted_volume():
    sagittal_first = np.array([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [1.2, 0, 0, 0], [0, 0, 0, 1]])
    data = np.moveaxis(smooth_volume((64, 64, 40)), 2, 0).copy()
    prep = preprocess_volume(Volume(data, sagittal_first))
    restored = prep.standardization.invert(to_source_grid(prep.data, prep))
    assert restored.shape == (40, 64, 64)
    assert float(np.abs(restored - data).mean()) < 0.01 * float(np.ptp(data))


def test_constant_volume_cannot_be_standardized():
    with pytest.raises(MedSynthError, match=r"flat-PD: the image is constant \(every voxel is 7\)"):
        Standardization.of(np.full((4, 4, 4), 7.0), "flat-PD")


def test_standardization_inverts():
    data = smooth_volume((8, 8, 8))
    stats = Standardization.of(data)
    np.testing.assert_allclose(stats.invert(stats.apply(data)), data, rtol=1e-5)


def test_pair_of_different_shapes_is_refused():
    t2 = Volume(np.ones((10, 10, 10), np.float32), IXI_AFFINE)
    pd = Volume(np.ones((10, 10, 12), np.float32), IXI_AFFINE)
    with pytest.raises(MedSynthError, match=r"shape \(10, 10, 10\) but .* shape \(10, 10, 12\)"):
        check_pair(t2, pd)
    shifted = IXI_AFFINE.copy()
    shifted[0, 3] += 5
    with pytest.raises(MedSynthError, match="different affines"):
        check_pair(t2, Volume(t2.data, shifted))


def test_native_grid_keeps_all_96_slices_and_its_middle_stack_is_the_report_grid(ixi_sized):
    native, report = preprocess_volume(ixi_sized, "native"), preprocess_volume(ixi_sized, "report")
    assert native.data.shape == (224, 224, 96) and native.grid == "native"
    parts = stacks(native.data)
    assert [p.shape for p in parts] == [PREPROCESSED_SHAPE] * 3
    np.testing.assert_array_equal(interleave(parts), native.data)
    # the same voxels in intensity units (each grid standardizes with its own slices' statistics)
    np.testing.assert_allclose(native.standardization.invert(parts[1]), report.standardization.invert(report.data),
                               atol=1e-3)


def test_native_grid_maps_back_closer_than_the_report_grid():
    """A textured volume: two slices in three interpolated lose far more than cubic from all 96."""
    rng = np.random.default_rng(0)
    data = ndimage.gaussian_filter(rng.normal(size=(96, 96, 60)), 1.5).astype(np.float32)
    volume = Volume(data, IXI_AFFINE)
    errors = {}
    for grid in ("native", "report"):
        prep = preprocess_volume(volume, grid)
        errors[grid] = float(np.mean((prep.standardization.invert(to_source_grid(prep.data, prep)) - data) ** 2))
    assert errors["native"] < 0.5 * errors["report"]


def test_native_to_source_grid_is_cubic_spline_interpolation():
    data = smooth_volume((50, 40, 30))
    prep = preprocess_volume(Volume(data, IXI_AFFINE), "native")
    values = np.random.default_rng(1).normal(size=prep.data.shape).astype(np.float32)
    matrix, offset = _grid_map(data.shape, "native")
    expected = ndimage.affine_transform(values, 1.0 / matrix, offset=-offset / matrix, output_shape=data.shape,
                                        order=3, mode="nearest")
    np.testing.assert_allclose(to_source_grid(values, prep), expected, atol=1e-4)


def test_unknown_grid_is_refused():
    with pytest.raises(ValueError, match="grid must be one of native, report"):
        preprocess_volume(Volume(smooth_volume((20, 20, 20)), IXI_AFFINE), "fine")
