"""The study's 3D generator and discriminator (Nie et al. 2018, as in the report)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GENERATOR_LAYERS", "Discriminator", "Generator", "count_parameters"]

# (kernel size, filters, dilation) of the generator's nine convolutions.
GENERATOR_LAYERS = (
    (9, 32, 1),
    (3, 32, 2),
    (3, 32, 2),
    (3, 64, 2),
    (9, 64, 2),
    (3, 64, 2),
    (3, 32, 2),
    (7, 32, 2),
    (3, 1, 1),
)
DISCRIMINATOR_FILTERS = (32, 64, 128, 256)
DISCRIMINATOR_DENSE = (512, 128)
LEAKY_SLOPE = 0.2


class Generator(nn.Module):
    """The fully convolutional dilated generator: nine 3D convolutions, no pooling.

    Each convolution but the last is followed by BatchNorm and LeakyReLU; the
    convolutions have no bias (BatchNorm's shift replaces it) and 'same' padding,
    so the output has the input's size. Its receptive field is 59 voxels.

    Parameters
    ----------
    residual : bool, default=False
        Add the source to the last convolution's output (residual learning).
    width : float, default=1.0
        Scales the filter counts (32, 32, 32, 64, 64, 64, 32, 32), for CPU-sized
        models; the last layer always has one filter. At 1.0 the model has
        3,638,592 trainable parameters, as in the report.

    Input and output are ``(B, 1, Z, Y, X)`` tensors.
    """

    def __init__(self, residual: bool = False, width: float = 1.0):
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        self.residual = bool(residual)
        self.width = float(width)
        layers: list[nn.Module] = []
        channels = 1
        for index, (kernel, filters, dilation) in enumerate(GENERATOR_LAYERS):
            last = index == len(GENERATOR_LAYERS) - 1
            out = filters if last else max(1, round(filters * width))
            layers.append(
                nn.Conv3d(channels, out, kernel, padding=dilation * (kernel - 1) // 2,
                          dilation=dilation, bias=False)
            )
            if not last:
                layers += [nn.BatchNorm3d(out), nn.LeakyReLU(LEAKY_SLOPE)]
            channels = out
        self.layers = nn.Sequential(*layers)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """The synthesized target for ``source``, same shape."""
        output = self.layers(source)
        return output + source if self.residual else output


class Discriminator(nn.Module):
    """The conditional discriminator: is this target patch real, given its source?

    Four stages of 3^3 convolution, BatchNorm, LeakyReLU and 2x max-pooling (32, 64,
    128, 256 filters), then dense layers of 512 and 128 units with LeakyReLU and one
    output. It returns a logit: the sigmoid belongs to the loss
    (``BCEWithLogitsLoss``), which keeps it numerically stable.

    Parameters
    ----------
    patch : int, default=32
        Edge of the cubic patches; a multiple of 16.
    width : float, default=1.0
        Scales the filter and unit counts, as the generator's ``width`` does: at 1/4 a CPU run
        no longer spends most of its time in the discriminator.

    Input: source and target ``(B, 1, p, p, p)`` each; output ``(B, 1)`` logits.
    """

    def __init__(self, patch: int = 32, width: float = 1.0):
        super().__init__()
        if patch % 16:
            raise ValueError(f"the discriminator needs a patch size divisible by 16, got {patch}")
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        self.patch = patch
        self.width = float(width)
        stages: list[nn.Module] = []
        channels = 2
        for filters in (max(1, round(f * width)) for f in DISCRIMINATOR_FILTERS):
            stages += [
                nn.Conv3d(channels, filters, 3, padding=1),
                nn.BatchNorm3d(filters),
                nn.LeakyReLU(LEAKY_SLOPE),
                nn.MaxPool3d(2),
            ]
            channels = filters
        self.features = nn.Sequential(*stages, nn.Flatten())
        dense: list[nn.Module] = []
        units = channels * (patch // 16) ** 3
        for size in (max(1, round(u * width)) for u in DISCRIMINATOR_DENSE):
            dense += [nn.Linear(units, size), nn.LeakyReLU(LEAKY_SLOPE)]
            units = size
        dense.append(nn.Linear(units, 1))
        self.classifier = nn.Sequential(*dense)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Logits that ``target`` is a real target of ``source``."""
        return self.classifier(self.features(torch.cat([source, target], dim=1)))


def count_parameters(model: nn.Module, running_statistics: bool = False) -> int:
    """Trainable parameters, plus BatchNorm running means and variances if asked (as Keras counts)."""
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if running_statistics:
        count += sum(
            b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var"))
        )
    return count
