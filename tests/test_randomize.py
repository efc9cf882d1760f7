"""Acquisition randomization of the training source: each transform keeps the patch's shape and a
bounded range, is the same under the same seed, and changes the patch; the config records it."""

from __future__ import annotations

import numpy as np
import pytest

from src_train import randomize
from src_train.randomize import SourceRandomization

TRANSFORMS = ["intensity_curve", "bias_field", "rician_noise", "resolution", "partial_volume", "lesion"]


@pytest.fixture(scope="module")
def patch() -> np.ndarray:
    """A standardized head-like patch: air, two tissues and a bright CSF-like ball."""
    z, y, x = np.mgrid[:32, :32, :32]
    radius = np.sqrt((z - 16) ** 2 + (y - 16) ** 2 + (x - 16) ** 2)
    out = np.where(radius < 14, 0.5, -1.2) + np.where(radius < 9, 0.6, 0.0) + np.where(radius < 4, 2.0, 0.0)
    return out.astype(np.float32)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_keeps_shape_and_range_and_is_seeded(name, patch):
    transform = getattr(randomize, name)
    out = transform(patch, np.random.default_rng(3))
    assert out.shape == patch.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert out.min() >= -3.0 and out.max() <= 6.0  # within the standardized range, lesions included
    np.testing.assert_array_equal(out, transform(patch, np.random.default_rng(3)))
    draws = [transform(patch, np.random.default_rng(seed)) for seed in range(6)]
    assert any(not np.allclose(draw, patch, atol=1e-3) for draw in draws)  # it does change the patch


def test_the_intensity_curve_keeps_the_tissues_in_order(patch):
    out = randomize.intensity_curve(patch, np.random.default_rng(0))
    levels = [out[patch == value].mean() for value in np.unique(patch)]
    assert levels == sorted(levels)


def test_noise_gives_air_a_rician_floor(patch):
    out = randomize.rician_noise(patch, np.random.default_rng(1), sigma=(0.03, 0.03))
    assert out[patch == patch.min()].mean() > patch.min() + 0.05  # magnitude noise lifts the air


def test_the_randomization_is_a_function_of_its_seed_and_can_be_off(patch):
    chain = SourceRandomization()
    first = chain(patch, np.random.default_rng([0, 1, 7]))
    np.testing.assert_array_equal(first, chain(patch, np.random.default_rng([0, 1, 7])))
    off = SourceRandomization(**{name: 0.0 for name in SourceRandomization().record()})
    np.testing.assert_array_equal(off(patch, np.random.default_rng(0)), patch)
    assert set(chain.record()) == set(TRANSFORMS)


def test_a_randomized_run_draws_per_epoch_keeps_the_target_and_records_it(phantom_dir, tmp_path):
    import torch

    from napari_medsynth.core.training.config import TrainConfig
    from napari_medsynth.core.training.events import StepEvent
    from src_train.data import PatchDataset
    from src_train.trainer import Trainer, TrainingStopped

    out = tmp_path / "randomized"
    config = TrainConfig(data=str(phantom_dir), out=str(out), width=0.0625, batch_size=7, val_stride=32, workers=0,
                         device="cpu", epochs=1, randomize=True)
    trainer = Trainer(config)
    trainer.on_event = lambda event: isinstance(event, StepEvent) and trainer.stop_requested.set()
    with pytest.raises(TrainingStopped):
        trainer.run()
    dataset = trainer.loader.dataset
    index = next(i for i in range(len(dataset)) if dataset[i][1].std() > 0.1)  # a patch inside the head
    (first, target), (again, _) = dataset[index], dataset[index]
    next_epoch, next_target = dataset[index + len(dataset)]
    torch.testing.assert_close(first, again, rtol=0, atol=0)  # a function of (seed, epoch, patch)
    torch.testing.assert_close(target, next_target, rtol=0, atol=0)  # the target stays the phantom's own
    assert not torch.equal(first, next_epoch)  # each epoch its own draw
    plain = PatchDataset(trainer.train_pairs)  # the same patches, not randomized
    torch.testing.assert_close(plain[index][1], target, rtol=0, atol=0)
    assert any(not torch.equal(plain[i][0], dataset[i][0]) for i in range(index, index + 5))
    saved = torch.load(out / "last.pt", weights_only=False)
    assert saved["training"]["config"]["randomize"] is True
