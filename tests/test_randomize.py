"""Acquisition randomization of the training pairs: each transform acts on the volume before the
preprocessing, keeps the anatomy where it is in the world (so source and target stay aligned after the
preprocessing), is the same under the same seed, and changes the volume; the acquisition's geometry,
coil and storage change source and target alike, the contrast and the noise the source alone; a
randomized run draws its patches from the randomized acquisitions, validates on acquisitions too, and
records the option."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import Volume
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
from src_train import randomize
from src_train.randomize import SHARED, AcquisitionRandomization

TRANSFORMS = ["lesion", "intensity_curve", "bias_field", "field_of_view", "resolution", "partial_volume",
              "rician_noise", "quantization"]
AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])


@pytest.fixture(scope="module")
def head() -> Volume:
    """A head-like volume in scanner intensities: air, two tissues and a bright CSF-like ball."""
    z, y, x = np.mgrid[:48, :48, :40]
    radius = np.sqrt((z - 24) ** 2 + (y - 24) ** 2 + ((x - 20) * 1.3) ** 2)
    data = np.where(radius < 20, 400.0, 0.0) + np.where(radius < 13, 200.0, 0.0) + np.where(radius < 6, 600.0, 0.0)
    return Volume(data.astype(np.float32), AFFINE.copy())


def _extent(volume: Volume) -> np.ndarray:
    """The world coordinates of the field of view's corners (voxel edges, not centres)."""
    corners = np.array([[-0.5, -0.5, -0.5, 1.0], [*(np.array(volume.data.shape) - 0.5), 1.0]])
    return (volume.affine @ corners.T).T[:, :3]


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_keeps_the_field_of_view_and_is_seeded(name, head):
    transform = getattr(randomize, name)
    out = transform(head, np.random.default_rng(3))
    assert out.data.dtype == np.float32 and np.isfinite(out.data).all() and out.data.min() >= 0.0
    if name != "field_of_view":
        np.testing.assert_allclose(_extent(out), _extent(head), atol=1e-4)  # the same head, wherever its voxels
    again = transform(head, np.random.default_rng(3))
    np.testing.assert_array_equal(out.data, again.data)
    draws = [transform(head, np.random.default_rng(seed)) for seed in range(6)]
    assert any(d.data.shape != head.data.shape or not np.allclose(d.data, head.data, atol=1.0) for d in draws)


def test_a_coarser_acquisition_stays_aligned_through_the_preprocessing():
    """A smooth field sampled on the coarse grid a randomized acquisition chooses, then preprocessed, is
    the same field on the network's 224 x 224 x 96 grid: a half-voxel shift would misalign source and target."""
    z, y, x = np.mgrid[:64, :64, :48].astype(np.float32)
    volume = Volume((100 + 3 * z + 2 * y + 5 * x).astype(np.float32), AFFINE.copy())  # linear: survives any blur
    coarse = randomize.resolution(volume, np.random.default_rng(0), thickness=(5.5, 6.0), in_plane=(2.9, 3.0))
    assert all(c < n for c, n in zip(coarse.data.shape, volume.data.shape))
    inner = (slice(20, -20), slice(20, -20), slice(12, -12))  # away from the edges' nearest-mode padding
    np.testing.assert_allclose(preprocess_volume(coarse, "native").data[inner],
                               preprocess_volume(volume, "native").data[inner], atol=0.02)


def test_another_field_of_view_keeps_each_voxel_where_it_was_in_the_world(head):
    for seed in range(4):
        out = randomize.field_of_view(head, np.random.default_rng(seed), change=(-0.2, 0.2))
        assert out.data.shape != head.data.shape
        to_head = np.linalg.inv(head.affine) @ out.affine  # output voxel -> input voxel
        index = np.indices(out.data.shape).reshape(3, -1)
        original = np.rint((to_head[:3, :3] @ index) + to_head[:3, 3:]).astype(int)
        inside = np.all((original >= 0) & (original < np.array(head.data.shape)[:, None]), axis=0)
        np.testing.assert_array_equal(out.data.reshape(-1)[inside], head.data[tuple(original[:, inside])])
        assert (out.data.reshape(-1)[~inside] == 0).all()  # padded with air


def test_the_intensity_curve_keeps_the_tissues_in_order(head):
    out = randomize.intensity_curve(head, np.random.default_rng(0))
    levels = [out.data[head.data == value].mean() for value in np.unique(head.data)]
    assert levels == sorted(levels)


def test_noise_gives_air_a_rician_floor(head):
    out = randomize.rician_noise(head, np.random.default_rng(1), sigma=(0.03, 0.03))
    assert out.data[head.data == 0].mean() > 0.03 * 1200 * 0.8  # magnitude noise lifts the air: ~1.25 sigma


def test_a_pair_shares_its_acquisition_and_only_the_source_changes_contrast(head):
    target = Volume((head.data[::-1] * 0.5 + 50).astype(np.float32), head.affine.copy())  # another contrast
    chain = AcquisitionRandomization()
    first = chain(head, target, np.random.default_rng([0, 1, 7]))
    again = chain(head, target, np.random.default_rng([0, 1, 7]))
    for one, two in zip(first, again):
        np.testing.assert_array_equal(one.data, two.data)
    for name in TRANSFORMS:
        only = AcquisitionRandomization(**{n: float(n == name) for n in TRANSFORMS})
        for seed in range(3):
            source, changed = only(head, target, np.random.default_rng(seed))
            np.testing.assert_array_equal(source.affine, changed.affine if name in SHARED else head.affine)
            if name in SHARED:  # the same draw: the same grid, and the same change where the two are alike
                assert changed.data.shape == source.data.shape
                assert not np.array_equal(changed.data, target.data) or name == "lesion"
            else:
                np.testing.assert_array_equal(changed.data, target.data)  # the target keeps its contrast
    off = AcquisitionRandomization(**dict.fromkeys(TRANSFORMS, 0.0))
    np.testing.assert_array_equal(off(head, target, np.random.default_rng(0))[0].data, head.data)
    assert list(chain.record()) == TRANSFORMS
    only = AcquisitionRandomization.only("bias_field, resolution")
    assert {k for k, v in only.record().items() if v > 0} == {"bias_field", "resolution"}
    assert only.bias_field == chain.bias_field
    with pytest.raises(MedSynthError, match="no randomization transform 'blur'"):
        AcquisitionRandomization.only("blur")
    stronger = AcquisitionRandomization.only("resolution=1, partial_volume=0.6, bias_field")
    assert (stronger.resolution, stronger.partial_volume, stronger.bias_field, stronger.lesion) == (1.0, 0.6, 0.5, 0.0)
    for bad in ("resolution=1.5", "resolution=often"):
        with pytest.raises(MedSynthError, match="the probability of resolution must be a number from 0 to 1"):
            AcquisitionRandomization.only(bad)


def test_a_randomized_run_draws_acquisitions_keeps_the_target_and_records_it(phantom_dir, tmp_path):
    import torch

    from napari_medsynth.core.training.config import TrainConfig
    from napari_medsynth.core.training.events import StepEvent
    from src_train.data import PatchDataset
    from src_train.trainer import VALIDATION_ACQUISITIONS, Trainer, TrainingStopped

    out = tmp_path / "randomized"
    config = TrainConfig(data=str(phantom_dir), out=str(out), width=0.0625, batch_size=7, val_stride=32, workers=0,
                         device="cpu", epochs=1, randomize=True, randomize_variants=2)
    trainer = Trainer(config)
    trainer.on_event = lambda event: isinstance(event, StepEvent) and trainer.stop_requested.set()
    with pytest.raises(TrainingStopped):
        trainer.run()
    (pair,) = trainer.train_pairs
    assert len(pair.variants) == 2
    own = np.load(pair.source.array_path)
    for source, target in pair.variants:  # standardized as a user's scan is, and not the phantom's own source
        acquisition = np.load(source.array_path)
        assert acquisition.shape == own.shape and abs(acquisition.mean()) < 1e-3 and abs(acquisition.std() - 1) < 1e-3
        assert not np.allclose(acquisition, own, atol=0.05)
        assert np.load(target.array_path).shape == own.shape
    dataset = trainer.loader.dataset
    inside = [i for i in range(len(dataset)) if dataset[i][1].std() > 0.1]  # patches inside the head
    plain = PatchDataset([pair.__class__(pair.subject, pair.source, pair.target)])
    index = inside[len(inside) // 2]
    (first, target), (again, again_target) = dataset[index], dataset[index]
    torch.testing.assert_close(first, again, rtol=0, atol=0)  # a function of (seed, epoch, patch)
    torch.testing.assert_close(target, again_target, rtol=0, atol=0)
    drawn = [dataset[i + epoch * len(dataset)] for i in inside[:8] for epoch in range(3)]
    own_patches = [plain[i] for i in inside[:8] for _ in range(3)]
    changed = sum(not torch.equal(s, o) for (s, _), (o, _) in zip(drawn, own_patches))
    assert 0 < changed < len(drawn)  # mostly an acquisition, sometimes the subject's own pair
    for (source, target), (own_source, own_target) in zip(drawn, own_patches):  # a pair comes whole:
        if torch.equal(source, own_source):  # the subject's own source with its own target, never another's
            torch.testing.assert_close(target, own_target, rtol=0, atol=0)
    assert len(trainer.val_acquisitions) == VALIDATION_ACQUISITIONS * len(trainer.val_pairs)
    scores = trainer.validate()
    assert scores["subject"][1:] == [f"{trainer.val_pairs[0].subject} (acquisition {n})"
                                     for n in range(1, VALIDATION_ACQUISITIONS + 1)]
    saved = torch.load(out / "last.pt", weights_only=False)
    assert saved["training"]["config"]["randomize"] is True
    assert saved["training"]["config"]["randomize_variants"] == 2
