"""The training losses on small tensors with known values."""

from __future__ import annotations

import pytest
import torch

from src_train.losses import VOLUME_DIMS, adversarial_loss, gradient_difference_loss, reconstruction_loss


def test_reconstruction_losses():
    prediction, target = torch.zeros(1, 1, 2, 2, 2), torch.full((1, 1, 2, 2, 2), 2.0)
    assert reconstruction_loss(prediction, target, "l2").item() == pytest.approx(32.0)  # the report's sum
    assert reconstruction_loss(prediction, target, "l2", "mean").item() == pytest.approx(4.0)
    assert reconstruction_loss(prediction, target, "l1").item() == pytest.approx(16.0)
    assert reconstruction_loss(prediction, target, "l1", "mean").item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        reconstruction_loss(prediction, target, "l3")


def test_adversarial_loss_takes_logits():
    logits = torch.tensor([[0.0], [0.0]])
    assert adversarial_loss(logits, True).item() == pytest.approx(0.6931, abs=1e-4)
    assert adversarial_loss(torch.tensor([[20.0]]), True).item() < 1e-6
    assert adversarial_loss(torch.tensor([[20.0]]), False).item() == pytest.approx(20.0, abs=1e-4)


def test_gradient_difference_loss_in_plane_and_3d():
    target = torch.arange(4.0).view(1, 1, 1, 1, 4).repeat(1, 1, 4, 4, 1)  # changes across slices only
    flat = torch.zeros_like(target)
    assert gradient_difference_loss(flat, target).item() == 0.0
    assert gradient_difference_loss(flat, target, dims=VOLUME_DIMS, reduction="mean").item() == pytest.approx(1.0)
    assert gradient_difference_loss(flat, target, dims=VOLUME_DIMS).item() == pytest.approx(3 * 16)  # 3 steps x 16
    edge = torch.zeros(1, 1, 4, 4, 4)
    edge[:, :, 2:] = 3.0
    # One jump of 3 between rows 1 and 2: |3|^2 on a third of the row pairs, exponent configurable.
    assert gradient_difference_loss(flat, edge, reduction="mean").item() == pytest.approx(9.0 / 3)
    assert gradient_difference_loss(flat, edge, exponent=1.0, reduction="mean").item() == pytest.approx(3.0 / 3)
    assert gradient_difference_loss(flat, edge).item() == pytest.approx(9.0 * 16)  # the jump at 4x4 places
    assert gradient_difference_loss(edge, edge).item() == 0.0
