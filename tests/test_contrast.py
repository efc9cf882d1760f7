"""The contrast check on phantoms of three contrasts, degraded as real scans are: what each could be, and the
warnings of the synthesis."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import smooth_volume

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.evaluation.contrast import contrast_evidence, guess_contrast
from napari_medsynth.core.files.nifti import Volume, load_volume
from napari_medsynth.core.simulation.acquisition import (
    DEGRADATIONS,
    degrade,
    eight_bit,
    resampled,
    thick_slices,
    tight_field_of_view,
    wide_field_of_view,
)
from napari_medsynth.core.simulation.phantom import Sequence, field_of_view_zooms, make_phantom, phantom_subject_seed
from napari_medsynth.core.synthesis.pipeline import check_contrast

SHAPE = (128, 128, 65)


@pytest.fixture(scope="module")
def contrasts(phantom_dir):
    """The first phantom subject as T2, PD (phantom_dir's files) and T1 (the same head at TR 500 ms)."""
    t2 = load_volume(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz")
    pd = load_volume(phantom_dir / "IXI001-Phantom-0001-PD.nii.gz")
    t1 = make_phantom(phantom_subject_seed(0, 0), SHAPE, field_of_view_zooms(SHAPE), Sequence(tr_ms=500.0)).pd
    return {"T2": Volume(t2.data, t2.affine), "PD": Volume(pd.data, pd.affine), "T1": t1}


@pytest.fixture(scope="module")
def short_tr(tmp_path_factory):
    """Both echoes of a dual-echo spin echo at TR 1500 ms (a PD with T1 weighting: CSF darker than grey matter)
    on another scanner's grid, 0.86 x 0.86 x 2.4 mm, stored 8-bit, under a name that says no contrast."""
    phantom = make_phantom(phantom_subject_seed(0, 0), (280, 280, 65), (0.86, 0.86, 2.4), Sequence(tr_ms=1500.0))
    path = tmp_path_factory.mktemp("scanner") / "scan.nii.gz"
    return {c: Volume(eight_bit(v).data, v.affine, path=path) for c, v in (("PD", phantom.pd), ("T2", phantom.t2))}


@pytest.mark.parametrize("degradation", DEGRADATIONS)
@pytest.mark.parametrize("contrast", ["T2", "PD", "T1"])
def test_each_contrast_is_told_however_it_was_degraded(contrasts, contrast, degradation):
    possible = contrast_evidence(degrade(contrasts[contrast], degradation, contrast)).possible()
    # a T1 blurred as the avg152 templates has CSF no darker than a T1-weighted PD's
    assert possible == (("PD", "T1") if (contrast, degradation) == ("T1", "2 mm, blurred") else (contrast,))


def test_the_degradations_change_the_grid_as_they_say(contrasts):
    t2 = contrasts["T2"]
    thick = thick_slices(t2, 5.0)
    assert thick.data.shape == (128, 128, 32)
    assert np.linalg.norm(thick.affine[:3, 2]) == pytest.approx(2 * np.linalg.norm(t2.affine[:3, 2]))
    centre = np.array([10, 20, 3, 1.0])  # slice 3 of the thick grid is slices 6 and 7 of the thin one
    np.testing.assert_allclose(thick.affine @ centre, t2.affine @ [10, 20, 6.5, 1.0])
    scanner = resampled(t2, (0.86, 0.86, 2.4))  # the same field of view in 0.86 mm voxels, from the same corner
    assert scanner.data.shape == (277, 277, 65)
    np.testing.assert_allclose(scanner.affine @ [2, 2, 1, 1.0], t2.affine @ [1.72 / 1.875, 1.72 / 1.875, 1, 1.0])
    tight, wide = tight_field_of_view(t2), wide_field_of_view(t2, 8)
    np.testing.assert_allclose(tight.affine @ [0, 0, 0, 1.0], t2.affine @ [19, 19, 0, 1.0])
    np.testing.assert_allclose(wide.affine @ [8, 8, 2, 1.0], t2.affine @ [0, 0, 0, 1.0])
    stored = eight_bit(t2).data
    assert stored.min() == 0 and stored.max() == 255 and np.array_equal(stored, np.round(stored))


def test_what_is_no_brain_gets_no_verdict():
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    assert guess_contrast(Volume(smooth_volume((40, 36, 30)), affine)) is None
    assert contrast_evidence(Volume(np.full((40, 36, 30), 7.0, np.float32), affine)) is None
    assert contrast_evidence(Volume(np.zeros((4, 4, 3), np.float32), affine)) is None


def _warnings(volume, expected, role="source") -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_contrast(volume, expected, role)
    return [str(w.message) for w in caught]


def test_the_synthesis_warns_of_an_unnamed_source_of_another_contrast(contrasts, tmp_path):
    named = {c: Volume(v.data, v.affine, path=tmp_path / "scan.nii.gz") for c, v in contrasts.items()}
    assert _warnings(named["T2"], "T2") == [] and _warnings(named["PD"], "PD") == []
    assert _warnings(named["PD"], "T2") == [
        "scan.nii.gz looks like a PD image (its intensities), but the source of this generator is T2: the synthesis "
        "goes on, check its input"]
    assert _warnings(named["T1"], "PD", "ground truth") == [
        "scan.nii.gz looks like a T1 image (its intensities), but the ground truth of this generator is PD: the "
        "synthesis goes on, check its input"]
    assert _warnings(named["T1"], "T2") == [
        "scan.nii.gz looks like a T1 image (its intensities), but the source of this generator is T2: the synthesis "
        "goes on, check its input"]
    assert _warnings(named["T2"], "PD")[0].startswith("scan.nii.gz looks like a T2 image (its intensities)")
    clinical = degrade(contrasts["T2"], "5 mm, 8-bit, lesion", "T2")  # thick slices, 8-bit, a lesion: still T2
    assert _warnings(Volume(clinical.data, clinical.affine, path=tmp_path / "scan.nii.gz"), "T2") == []


def test_a_t1_weighted_pd_is_no_wrong_pd_source_and_a_pd_or_t1_as_a_t2_source(short_tr):
    pd, t2 = short_tr["PD"], short_tr["T2"]
    assert _warnings(pd, "PD") == [] and _warnings(pd, "PD", "ground truth") == []
    assert _warnings(pd, "T2") == [
        "scan.nii.gz looks like a PD or T1 image (its intensities), but the source of this generator is T2: the "
        "synthesis goes on, check its input"]
    assert _warnings(t2, "T2") == [] and _warnings(t2, "T2", "ground truth") == []  # its T2 echo is a T2
    assert _warnings(t2, "PD") == [
        "scan.nii.gz looks like a T2 image (its intensities), but the source of this generator is PD: the synthesis "
        "goes on, check its input"]


def test_names_speak_before_intensities(contrasts, tmp_path):
    pd = contrasts["PD"]
    with pytest.raises(MedSynthError, match="sub-01_PDw.nii.gz is a PD image, but the source of this generator "
                                            "must be T2"):
        check_contrast(Volume(pd.data, pd.affine, path=tmp_path / "sub-01_PDw.nii.gz"), "T2", "source")
    t2 = contrasts["T2"]
    assert _warnings(Volume(t2.data, t2.affine, path=tmp_path / "sub-01_T1w.nii.gz"), "T2") == [
        "sub-01_T1w.nii.gz looks like a T1 image (its name), but the source of this generator is T2: the "
        "synthesis goes on, check its input"]
    assert _warnings(Volume(pd.data, pd.affine, path=tmp_path / "case_t2.nii.gz"), "T2") == []  # the name says T2
