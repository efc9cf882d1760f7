"""The study's generator and discriminator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_medsynth import Discriminator, Generator
from napari_medsynth.core.networks.models import count_parameters


def test_generator_parameter_counts_match_the_report():
    generator = Generator()
    assert count_parameters(generator) == 3_638_592
    assert count_parameters(generator, running_statistics=True) == 3_639_296


def test_discriminator_parameter_counts_match_the_report():
    discriminator = Discriminator()
    assert count_parameters(discriminator) == 2_279_265
    assert count_parameters(discriminator, running_statistics=True) == 2_280_225


def test_a_narrower_discriminator_scales_every_layer():
    narrow = Discriminator(width=0.25)
    convs = [m for m in narrow.modules() if isinstance(m, nn.Conv3d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]
    assert [m.out_features for m in narrow.classifier if isinstance(m, nn.Linear)] == [128, 32, 1]
    assert narrow(torch.randn(2, 1, 32, 32, 32), torch.randn(2, 1, 32, 32, 32)).shape == (2, 1)
    with pytest.raises(ValueError, match="width must be positive"):
        Discriminator(width=0)


def test_generator_layers_are_the_reports():
    convs = [m for m in Generator().modules() if isinstance(m, nn.Conv3d)]
    assert [c.kernel_size[0] for c in convs] == [9, 3, 3, 3, 9, 3, 3, 7, 3]
    assert [c.out_channels for c in convs] == [32, 32, 32, 64, 64, 64, 32, 32, 1]
    assert [c.dilation[0] for c in convs] == [1, 2, 2, 2, 2, 2, 2, 2, 1]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm3d) for m in Generator().modules()) == 8


@pytest.mark.parametrize("shape", [(32, 32, 32), (20, 27, 33)])
def test_generator_output_has_the_input_size(shape):
    generator = Generator(width=0.125).eval()
    with torch.no_grad():
        assert generator(torch.randn(2, 1, *shape)).shape == (2, 1, *shape)


def test_width_scales_filters_but_not_the_output():
    convs = [m for m in Generator(width=0.25).modules() if isinstance(m, nn.Conv3d)]
    assert [c.out_channels for c in convs] == [8, 8, 8, 16, 16, 16, 8, 8, 1]
    with pytest.raises(ValueError, match="width must be positive"):
        Generator(width=0)


def test_residual_generator_adds_the_source():
    generator = Generator(residual=True, width=0.125).eval()
    last = [m for m in generator.modules() if isinstance(m, nn.Conv3d)][-1]
    nn.init.zeros_(last.weight)
    source = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(generator(source), source)
        assert not torch.equal(Generator(width=0.125).eval()(source), source)


def test_receptive_field_is_59_voxels():
    generator = Generator(width=0.125).eval()
    source = torch.zeros(1, 1, 81, 1, 1)
    impulse = source.clone()
    impulse[0, 0, 40] = 1.0
    with torch.no_grad():
        changed = (generator(impulse) - generator(source)).abs()[0, 0, :, 0, 0] > 0
    assert int(changed.sum()) == 59


def test_discriminator_returns_unbounded_logits():
    discriminator = Discriminator().eval()
    assert isinstance(discriminator.classifier[-1], nn.Linear)
    with torch.no_grad():
        nn.init.constant_(discriminator.classifier[-1].bias, -5.0)
        logits = discriminator(torch.randn(3, 1, 32, 32, 32), torch.randn(3, 1, 32, 32, 32))
    assert logits.shape == (3, 1)
    assert (logits < 0).any()
    with pytest.raises(ValueError, match="divisible by 16"):
        Discriminator(patch=24)
