"""The study's losses: reconstruction (L2 or L1), adversarial BCE, gradient difference."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["adversarial_loss", "gradient_difference_loss", "reconstruction_loss"]

# Patches are (B, 1, a, b, slice): the first two spatial axes are in-plane.
IN_PLANE_DIMS = (2, 3)
VOLUME_DIMS = (2, 3, 4)


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, norm: str = "l2",
                        reduction: str = "sum") -> torch.Tensor:
    """``||Y - G(X)||_2^2`` (``norm="l2"``, G1-G3) or ``||Y - G(X)||_1`` (``"l1"``, G4).

    ``reduction="sum"`` (the default) is the report's formula; ``"mean"`` divides by the number
    of voxels, which weighs the adversarial term (a mean over the discriminator's few outputs)
    some 10^4 times more against this one and the gradient difference than the report does.
    """
    if norm == "l2":
        return F.mse_loss(prediction, target, reduction=reduction)
    if norm == "l1":
        return F.l1_loss(prediction, target, reduction=reduction)
    raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")


def adversarial_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Binary cross-entropy of the discriminator's logits against all-real or all-fake labels."""
    labels = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, labels)


def gradient_difference_loss(prediction: torch.Tensor, target: torch.Tensor, dims=IN_PLANE_DIMS,
                             exponent: float = 2.0, reduction: str = "sum") -> torch.Tensor:
    """``sum_d | |grad_d Y| - |grad_d G(X)| |^exponent`` with forward differences along ``dims``.

    ``dims`` are the in-plane axes by default, as the report (its slices are not
    contiguous after keeping one in three); ``VOLUME_DIMS`` gives the paper's 3D loss.
    The exponent is configurable as in medSynthesis' ``loss_functions.py``.
    """
    total = prediction.new_zeros(())
    for dim in dims:
        size = prediction.shape[dim]
        grad_target = (target.narrow(dim, 1, size - 1) - target.narrow(dim, 0, size - 1)).abs()
        grad_prediction = (prediction.narrow(dim, 1, size - 1) - prediction.narrow(dim, 0, size - 1)).abs()
        difference = (grad_target - grad_prediction).abs() ** exponent
        total = total + (difference.sum() if reduction == "sum" else difference.mean())
    return total
