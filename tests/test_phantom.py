"""The MNI-based T2/PD phantom, the per-voxel intensity-mapping baseline and the pair statistics."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.evaluation.baselines import QuantileIntensityMapping, contrast_pair_statistics, otsu_threshold
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.files.scans import find_pairs
from napari_medsynth.core.simulation import phantom
from napari_medsynth.core.simulation.phantom import (
    IXI_SEQUENCE,
    MIXED_LABEL,
    SEQUENCE_RANGES,
    TISSUES,
    Sequence,
    make_phantom,
    make_phantom_pair,
    phantom_subject_seed,
    sequence_of,
    write_phantom_dataset,
)

# The default field of view on a coarse grid: the same code path, a fraction of the time.
SMALL = {"shape": (64, 64, 32), "zooms": (3.75, 3.75, 4.875)}


@pytest.fixture(scope="module")
def subject():
    """Phantom subject 0 on the default IXI-like grid."""
    return make_phantom(0)


def _medians(volume, labels):
    return {
        name: float(np.median(volume[labels == code]))
        for code, name in enumerate(TISSUES)
        if np.count_nonzero(labels == code) >= 50
    }


def test_grid_is_ixi_like(subject):
    t2, pd = subject.t2, subject.pd
    assert t2.data.shape == pd.data.shape == subject.labels.shape == (256, 256, 130)
    assert t2.data.dtype == pd.data.dtype == np.float32
    assert subject.labels.dtype == np.uint8
    assert t2.path is pd.path is t2.header is pd.header is None
    np.testing.assert_array_equal(t2.affine, pd.affine)
    zooms = nib.affines.voxel_sizes(t2.affine)
    np.testing.assert_allclose(zooms, [0.9375, 0.9375, 1.2])
    rotation = t2.affine[:3, :3] / zooms
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert nib.aff2axcodes(t2.affine) == ("L", "P", "S")
    centre = np.round(np.linalg.inv(t2.affine) @ [0.0, 0.0, 0.0, 1.0]).astype(int)[:3]
    brain = [TISSUES.index(name) for name in ("csf", "gm", "wm")] + [MIXED_LABEL]
    assert subject.labels[tuple(centre)] in brain


def test_head_fills_the_field_of_view_like_ixi(subject):
    head = subject.labels != TISSUES.index("air")
    rows = np.nonzero(head.any(axis=(0, 1)))[0]
    assert rows.max() < 129, "the vertex must lie inside the slab"
    assert rows.min() == 0, "the slab must reach down through the cerebellum"
    middle = head[:, :, 65]
    width = np.ptp(np.nonzero(middle.any(axis=1))[0]) * 0.9375
    length = np.ptp(np.nonzero(middle.any(axis=0))[0]) * 0.9375
    assert 130 < width < 190 and 160 < length < 225


def test_scanner_like_intensities(subject):
    for volume in (subject.t2.data, subject.pd.data):
        assert np.isfinite(volume).all() and volume.min() >= 0
        corner = volume[:20, :20, :]
        assert 5 < corner.mean() < 40, "background should be a Rician noise floor"
        assert 300 < np.percentile(volume, 99) < 5000


def test_tissue_contrast_follows_the_physics(subject):
    t2 = _medians(subject.t2.data, subject.labels)
    pd = _medians(subject.pd.data, subject.labels)
    # T2: CSF bright, WM dark, GM between, fat moderately bright, bone dark.
    assert t2["csf"] > 1.8 * t2["gm"] and t2["gm"] > 1.3 * t2["wm"]
    assert t2["fat"] > t2["gm"] and t2["bone"] < 0.5 * t2["wm"]
    # PD: low grey/white contrast, GM above WM, CSF moderately bright, fat bright.
    assert 1.05 < pd["gm"] / pd["wm"] < 1.4 and pd["gm"] / pd["wm"] < t2["gm"] / t2["wm"]
    assert pd["csf"] > pd["gm"] and pd["csf"] < 1.6 * pd["gm"]
    assert pd["fat"] > pd["gm"] and pd["bone"] < 0.5 * pd["wm"]
    # Muscle: dark on T2, mid-grey on PD.
    assert t2["muscle"] < t2["wm"] and pd["muscle"] > 2 * t2["muscle"]


def test_same_seed_same_subject_other_seed_other_subject():
    first, again, other = (make_phantom(seed, **SMALL) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first.t2.data, again.t2.data)
    np.testing.assert_array_equal(first.pd.data, again.pd.data)
    np.testing.assert_array_equal(first.labels, again.labels)
    difference = np.abs(first.t2.data - other.t2.data).mean()
    assert difference > 0.1 * first.t2.data.mean()
    assert not np.array_equal(first.labels, other.labels)


def test_phantom_is_unchanged_for_a_seed():
    """Summaries of the seed-3 pair, recorded before the rotation came from scipy's ``Rotation``.

    Float rounding differs in its last bits between CPUs, so a few voxels may round to the
    neighbouring integer there (one part in 10^7 of these sums); a change to the model moves
    them by far more.
    """
    t2, pd = make_phantom_pair(3, **SMALL)
    for volume, total, squares, voxels in (
        (t2.data, 16377644.0, 7141670132.0, [237.0, 210.0, 13.0]),
        (pd.data, 31365561.0, 21014406475.0, [626.0, 630.0, 10.0]),
    ):
        values = volume.astype(np.float64)
        assert values.sum() == pytest.approx(total, rel=1e-6)
        assert (values**2).sum() == pytest.approx(squares, rel=1e-6)
        assert [volume[32, 32, 16], volume[20, 40, 8], volume[10, 50, 28]] == pytest.approx(voxels, abs=1)


class _HandWrittenRotation:
    """The oracle: the rotation matrix the phantom built by hand before scipy's ``Rotation``."""

    def __init__(self, matrix):
        self.matrix = matrix

    @classmethod
    def from_euler(cls, sequence, angles):
        assert sequence == "xyz"
        ax, ay, az = angles
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        return cls(rz @ ry @ rx)

    def as_matrix(self):
        return self.matrix


@pytest.mark.parametrize("seed", [3, 8])
def test_scipy_rotation_gives_the_hand_written_phantom(seed, monkeypatch):
    scipy_rotation = make_phantom(seed, **SMALL)
    monkeypatch.setattr(phantom, "Rotation", _HandWrittenRotation)
    hand_written = make_phantom(seed, **SMALL)
    np.testing.assert_array_equal(scipy_rotation.t2.data, hand_written.t2.data)
    np.testing.assert_array_equal(scipy_rotation.pd.data, hand_written.pd.data)
    np.testing.assert_array_equal(scipy_rotation.labels, hand_written.labels)


def test_bad_arguments_raise_one_line_errors(tmp_path):
    with pytest.raises(MedSynthError, match="subjects"):
        write_phantom_dataset(tmp_path, 0)
    with pytest.raises(MedSynthError, match="seed"):
        make_phantom_pair(-1)
    with pytest.raises(MedSynthError, match="shape"):
        make_phantom_pair(0, shape=(64, 0, 32))
    with pytest.raises(MedSynthError) as error:
        write_phantom_dataset(tmp_path, -3)
    assert "\n" not in str(error.value)
    assert not any(tmp_path.iterdir())


def test_dataset_round_trips_with_ixi_names(tmp_path):
    calls = []
    pairs = write_phantom_dataset(tmp_path, 2, seed=1, progress=lambda *a: calls.append(a), shape=SMALL["shape"])
    assert [(t2.name, pd.name) for t2, pd in pairs] == [
        ("IXI001-Phantom-1001-T2.nii.gz", "IXI001-Phantom-1001-PD.nii.gz"),
        ("IXI002-Phantom-1002-T2.nii.gz", "IXI002-Phantom-1002-PD.nii.gz"),
    ]
    assert calls == [(1, 2), (2, 2)]
    assert phantom.field_of_view_zooms(SMALL["shape"]) == pytest.approx(SMALL["zooms"])
    assert len(find_pairs(tmp_path).pairs) == 2
    for index, (t2_path, pd_path) in enumerate(pairs):
        t2, pd = phantom.make_phantom_pair(phantom_subject_seed(1, index), **SMALL)
        for path, expected in ((t2_path, t2), (pd_path, pd)):
            loaded = load_volume(path)
            np.testing.assert_array_equal(loaded.data, expected.data)
            np.testing.assert_allclose(loaded.affine, expected.affine, atol=1e-6)


def test_dataset_subject_does_not_depend_on_the_count(tmp_path):
    three = write_phantom_dataset(tmp_path / "three", 3, seed=5, shape=SMALL["shape"])
    two = write_phantom_dataset(tmp_path / "two", 2, seed=5, shape=SMALL["shape"])
    for (t2_a, pd_a), (t2_b, pd_b) in zip(three, two):
        np.testing.assert_array_equal(load_volume(t2_a).data, load_volume(t2_b).data)
        np.testing.assert_array_equal(load_volume(pd_a).data, load_volume(pd_b).data)
    assert not np.array_equal(load_volume(three[0][0]).data, load_volume(three[1][0]).data)


def test_varied_sequences_write_each_subjects_timing_beside_its_images(tmp_path):
    pairs = write_phantom_dataset(tmp_path, 2, seed=1, shape=SMALL["shape"], varied_sequences=True)
    fixed = write_phantom_dataset(tmp_path / "ixi", 1, seed=1, shape=SMALL["shape"])
    assert len(find_pairs(tmp_path).pairs) == 2  # the sidecars are not scans
    assert not list((tmp_path / "ixi").glob("*.json"))
    timings = []
    for index, (t2_path, pd_path) in enumerate(pairs):
        t2_side, pd_side = (json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
                            for path in (t2_path, pd_path))
        timing = sequence_of(phantom_subject_seed(1, index))
        # one excitation, two echoes; BIDS's seconds
        assert t2_side == {"RepetitionTime": timing.tr_ms / 1000, "EchoTime": timing.te_t2_ms / 1000}
        assert pd_side == {"RepetitionTime": timing.tr_ms / 1000, "EchoTime": timing.te_pd_ms / 1000}
        assert all(low <= getattr(timing, name) <= high for name, (low, high) in SEQUENCE_RANGES.items())
        timings.append(timing)
    assert timings[0] != timings[1]
    # the same head as the IXI-timed subject, another contrast
    drawn, ixi = load_volume(pairs[0][0]).data, load_volume(fixed[0][0]).data
    assert np.corrcoef(drawn.ravel(), ixi.ravel())[0, 1] > 0.9 and not np.array_equal(drawn, ixi)


def test_sequence_timing_sets_the_contrast():
    seed = phantom_subject_seed(0, 0)
    ixi = make_phantom(seed, **SMALL)
    assert ixi.t2.data.tobytes() == make_phantom(seed, **SMALL, sequence=IXI_SEQUENCE).t2.data.tobytes()
    short_tr = make_phantom(seed, **SMALL, sequence=Sequence(tr_ms=2500.0))
    late_echo = make_phantom(seed, **SMALL, sequence=Sequence(te_t2_ms=120.0))
    pd_ixi, pd_short = _medians(ixi.pd.data, ixi.labels), _medians(short_tr.pd.data, short_tr.labels)
    # IXI's long TR leaves CSF brighter than grey matter on PD; at 2500 ms its long T1 darkens it below
    assert pd_ixi["csf"] > pd_ixi["gm"] and pd_short["csf"] < pd_short["gm"]
    t2_ixi, t2_late = _medians(ixi.t2.data, ixi.labels), _medians(late_echo.t2.data, late_echo.labels)
    # a later echo: white matter darker, the CSF-to-white-matter contrast higher
    assert t2_late["wm"] < t2_ixi["wm"] and t2_late["csf"] / t2_late["wm"] > t2_ixi["csf"] / t2_ixi["wm"]


def test_mapping_recovers_a_monotone_mapping():
    rng = np.random.default_rng(0)
    source = rng.normal(size=200_000)
    target = np.exp(source)
    mapping = QuantileIntensityMapping(256).fit(source, target)
    probe = np.linspace(-2, 2, 101)
    prediction = mapping.predict(probe)
    assert prediction.dtype == np.float32 and prediction.shape == probe.shape
    np.testing.assert_allclose(prediction, np.exp(probe), rtol=0.05)


def test_mapping_recovers_a_non_monotone_mapping_with_noise():
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 1, size=(400, 500))
    target = np.sin(6 * source) + rng.normal(scale=0.1, size=source.shape)
    mask = source < 0.9
    mapping = QuantileIntensityMapping(128).fit(source, target, mask=mask)
    probe = np.linspace(0.05, 0.85, 41)
    np.testing.assert_allclose(mapping.predict(probe), np.sin(6 * probe), atol=0.05)
    assert mapping.edges[-1] < 0.9


def test_mapping_partial_fit_serialisation_and_empty_bins():
    rng = np.random.default_rng(2)
    source = np.concatenate([np.zeros(5000), rng.uniform(1, 2, 5000)])  # ties: empty bins
    target = 3 * source + 1
    whole = QuantileIntensityMapping(64).fit(source, target)
    parts = QuantileIntensityMapping(64).partial_fit(source[::2], target[::2])
    parts.partial_fit(source[1::2], target[1::2])
    assert np.isfinite(whole.values).all()
    np.testing.assert_allclose(whole.predict([0.0, 1.5, 2.0]), [1.0, 5.5, 7.0], atol=0.1)
    # Edges come from the first batch, so the two binnings differ by up to a bin.
    np.testing.assert_allclose(parts.predict(source), whole.predict(source), atol=0.15)
    restored = QuantileIntensityMapping.from_dict(json.loads(json.dumps(whole.to_dict())))
    np.testing.assert_array_equal(restored.predict(source), whole.predict(source))
    with pytest.raises(MedSynthError, match="intensity mapping"):
        QuantileIntensityMapping.from_dict({**whole.to_dict(), "sums": [0.0, 1.0]})
    with pytest.raises(MedSynthError, match="no voxels"):
        QuantileIntensityMapping().fit(source, target, mask=np.zeros(source.shape, bool))


def test_pair_statistics_of_identical_and_unrelated_slices():
    rng = np.random.default_rng(3)
    image = np.zeros((64, 64))
    image[16:48, 16:48] = rng.uniform(100, 200, (32, 32))
    same = contrast_pair_statistics(image, 3 * image + 7)
    assert same["correlation"] == pytest.approx(1.0)
    assert same["psnr_identity"] > 100
    assert 0.2 < same["head_fraction"] < 0.3
    noise = contrast_pair_statistics(rng.uniform(size=(64, 64)), image)
    assert abs(noise["correlation"]) < 0.2 and noise["psnr_identity"] < 10


def _reference_otsu(image, bins=256):
    """The oracle: Otsu's threshold as written out by hand before scikit-image computed it."""
    counts, edges = np.histogram(np.asarray(image, dtype=np.float64).ravel(), bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    return centres[np.argmax((weight_low * weight_high * (mean_low - mean_high) ** 2)[:-1])]


def test_otsu_threshold_equals_the_hand_written_reference():
    subject = make_phantom(3, **SMALL)
    middle = subject.pd.data[:, :, 16]
    for image, bins in ((subject.pd.data, 256), (subject.t2.data, 256), (subject.t2.data, 64), (middle, 256)):
        threshold = otsu_threshold(image, bins)
        assert isinstance(threshold, float) and threshold == _reference_otsu(image, bins)
        np.testing.assert_array_equal(image > threshold, image > _reference_otsu(image, bins))


def test_phantom_contrast_lands_near_the_real_ixi_figures(subject):
    """Real IXI mid-axial slice: correlation 0.82, identity 19.95 dB, mapping 28.2 dB.

    Far above these the phantom would be a lookup table; far below, harder than MRI.
    """
    middle = subject.t2.data.shape[2] // 2
    stats = contrast_pair_statistics(subject.t2.data[:, :, middle], subject.pd.data[:, :, middle])
    assert 0.75 < stats["correlation"] < 0.93
    assert 17.0 < stats["psnr_identity"] < 23.0
    assert 25.5 < stats["psnr_mapping"] < 31.0
    assert stats["psnr_mapping"] > stats["psnr_identity"] + 5.0
