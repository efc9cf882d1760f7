"""Reading, writing and reorienting NIfTI volumes."""

from __future__ import annotations

import itertools
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import IXI_AFFINE, smooth_volume, write_nifti

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import (
    OrientationWarning,
    Volume,
    display_affine,
    from_display,
    load_volume,
    save_volume,
    to_display,
)


def test_write_then_read_keeps_data_affine_and_header(tmp_path):
    source = load_volume(write_nifti(tmp_path / "src.nii.gz", smooth_volume((20, 18, 16))))
    source.header["descrip"] = b"scanner note"
    result = np.random.default_rng(0).normal(size=source.data.shape).astype(np.float32)

    out = save_volume(tmp_path / "out" / "synth.nii.gz", result, source)

    back = load_volume(out)
    np.testing.assert_array_equal(back.data, result)
    np.testing.assert_allclose(back.affine, IXI_AFFINE)
    assert back.header["descrip"].item() == b"scanner note"
    assert back.data.dtype == np.float32


def test_save_refuses_to_overwrite_an_input(tmp_path):
    path = write_nifti(tmp_path / "IXI002-Guys-0828-T2.nii.gz", smooth_volume((8, 8, 8)))
    before = path.read_bytes()
    source = load_volume(path)
    with pytest.raises(MedSynthError, match="refusing to overwrite an input"):
        save_volume(path, source.data * 2, source)
    other = tmp_path / "other.nii.gz"
    other.write_bytes(before)
    with pytest.raises(MedSynthError, match="refusing to overwrite"):
        save_volume(other, source.data, source, protect=(other,))
    assert path.read_bytes() == before


def test_save_into_an_unusable_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    source = Volume(np.zeros((4, 4, 4), np.float32), IXI_AFFINE)
    with pytest.raises(MedSynthError, match="cannot write there"):
        save_volume(blocker / "out.nii.gz", source.data, source)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    source = Volume(np.ones((6, 6, 6), np.float32), IXI_AFFINE)

    def interrupted_save(image, filename):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(nib, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_volume(tmp_path / "out.nii.gz", source.data, source)
    assert list(tmp_path.iterdir()) == []


def _truncated(path):
    write_nifti(path, smooth_volume((30, 30, 30)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _text(path):
    path.write_text("this is not an image\n")


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_truncated, "truncated or corrupt"),
        (_text, "not a readable NIfTI file"),
        (lambda p: write_nifti(p, np.ones((5, 5, 5, 3))), r"4D with shape \(5, 5, 5, 3\)"),
        (lambda p: write_nifti(p, np.ones((5, 5))), r"2D with shape \(5, 5\)"),
        (lambda p: write_nifti(p, np.full((5, 5, 5), np.nan)), "every voxel is NaN"),
    ],
    ids=["truncated", "text", "4d", "2d", "all-nan"],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path, make, problem):
    path = tmp_path / "bad-T2.nii.gz"
    make(path)
    with pytest.raises(MedSynthError, match=problem) as error:
        load_volume(path)
    message = str(error.value)
    assert message.startswith("bad-T2.nii.gz: ")
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(MedSynthError, match="missing.nii.gz: no such file"):
        load_volume(tmp_path / "missing.nii.gz")


def test_trailing_singleton_dimension_is_dropped(tmp_path):
    path = write_nifti(tmp_path / "a.nii.gz", np.arange(60, dtype=np.float32).reshape(3, 4, 5, 1))
    assert load_volume(path).data.shape == (3, 4, 5)


def test_some_nans_become_zero_with_a_warning(tmp_path):
    data = smooth_volume((6, 6, 6))
    data[0, 0, :3] = np.nan
    path = write_nifti(tmp_path / "a.nii.gz", data)
    with pytest.warns(RuntimeWarning, match="3 NaN or infinite voxels set to 0"):
        volume = load_volume(path)
    assert np.all(volume.data[0, 0, :3] == 0)
    assert np.isfinite(volume.data).all()


def test_qform_that_disagrees_with_sform_is_reported(tmp_path):
    image = nib.Nifti1Image(smooth_volume((6, 6, 6)), IXI_AFFINE)
    flipped = IXI_AFFINE.copy()
    flipped[0, 0] *= -1
    image.set_sform(IXI_AFFINE, code=1)
    image.set_qform(flipped, code=1)
    path = tmp_path / "a.nii.gz"
    nib.save(image, str(path))
    with pytest.warns(OrientationWarning, match="qform .* and sform .* disagree"):
        volume = load_volume(path)
    np.testing.assert_allclose(volume.affine, IXI_AFFINE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_volume(write_nifti(tmp_path / "ok.nii.gz", smooth_volume((6, 6, 6))))


def _orientation_affines():
    """Every axis permutation with a few flips, at anisotropic voxel sizes."""
    zooms = np.array([0.9, 1.1, 1.5])
    for perm in itertools.permutations(range(3)):
        for signs in [(1, 1, 1), (-1, 1, 1), (1, -1, -1), (-1, -1, -1)]:
            affine = np.eye(4)
            affine[:3, :3] = 0
            for voxel_axis, world_axis in enumerate(perm):
                affine[world_axis, voxel_axis] = signs[voxel_axis] * zooms[voxel_axis]
            affine[:3, 3] = [10.0, -20.0, 5.0]
            yield affine


@pytest.mark.parametrize("affine", list(_orientation_affines()))
def test_display_is_lps_axial_and_inverts_exactly(affine):
    shape = (5, 6, 7)
    data = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    # A marker at the voxel that lies furthest left, posterior and superior in the world.
    world = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1) @ affine[:3, :3].T
    lps_score = -world[..., 0] * 1e6 - world[..., 1] * 1e3 + world[..., 2]
    marker = np.unravel_index(np.argmax(lps_score), shape)
    data[marker] = 100.0
    volume = Volume(data, affine)

    display, scale, translate = to_display(volume)

    # (z, y, x) with z superior, y posterior, x left: the marker is at the last index on every axis.
    assert display[-1, -1, -1] == 100.0
    zooms_zyx = sorted(scale)
    assert zooms_zyx == pytest.approx([0.9, 1.1, 1.5])
    np.testing.assert_array_equal(from_display(display, affine), data)
    assert len(translate) == 3


def test_a_display_array_placed_by_scale_and_translate_gets_them_back():
    scale, translate = (1.2, 0.9, 0.8), (30.0, -20.5, 10.0)
    data = np.random.default_rng(2).normal(size=(4, 5, 6)).astype(np.float32)
    affine = display_affine(scale, translate)
    shown, shown_scale, shown_translate = to_display(Volume(from_display(data, affine), affine))
    np.testing.assert_array_equal(shown, data)
    assert shown_scale == pytest.approx(scale) and shown_translate == pytest.approx(translate)


def test_display_scale_follows_voxel_sizes_of_an_ixi_file(tmp_path):
    volume = load_volume(write_nifti(tmp_path / "a.nii.gz", smooth_volume((8, 9, 10))))
    display, scale, translate = to_display(volume)
    assert display.shape == (10, 9, 8)
    assert scale == pytest.approx((1.2, 0.9375, 0.9375))
    # IXI_AFFINE runs x toward the patient's left already; y must be flipped to run posterior.
    np.testing.assert_array_equal(display[:, ::-1, :], volume.data.transpose(2, 1, 0))
    assert translate[0] == pytest.approx(-78.0)
