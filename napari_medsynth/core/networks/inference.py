"""Inference-only copies of a generator: BatchNorm folded into its convolutions.

Folding rewrites each ``Conv -> BatchNorm`` pair of an ``nn.Sequential`` into one convolution
with a bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``: ``w' = w * s`` and
``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``): the eval-mode output is
the same up to float32 rounding, one pass over the activations fewer per layer.
"""

from __future__ import annotations

import copy
from itertools import pairwise

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .fftconv import set_conv_engine

__all__ = ["fold_batchnorm", "inference_model", "receptive_radius"]

_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ACTIVATIONS = (nn.LeakyReLU, nn.ReLU)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each BatchNorm that directly follows a convolution in
    an ``nn.Sequential`` folded into that convolution; ``model`` itself is left untouched.

    The activations that directly follow a convolution (folded or not) run in place: their
    input is a fresh tensor, and this saves one allocation per layer. BatchNorm layers
    without running statistics, or after anything but a convolution, are kept as they are.
    """
    folded = copy.deepcopy(model).eval()
    for sequence in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        layers = sequence._modules
        names = list(layers)
        fresh = set()  # layers whose output is a new tensor: convolutions and what folded into them
        for previous, name in pairwise(names):
            if isinstance(layers[previous], _CONVOLUTIONS):
                fresh.add(previous)
                if _foldable(layers[name], layers[previous]):
                    layers[previous] = _fused(layers[previous], layers[name])
                    layers[name] = nn.Identity()
                    fresh.add(name)
                    continue
            if previous in fresh and isinstance(layers[name], _ACTIVATIONS):
                layers[name].inplace = True
    return folded


def inference_model(model: nn.Module, device: torch.device, engine: str = "auto") -> nn.Module:
    """:func:`fold_batchnorm`'s copy on ``device``, without gradients, its convolutions on
    ``engine`` (:func:`~napari_medsynth.core.networks.fftconv.set_conv_engine`), each direct one in the
    faster memory layout.

    Layouts (``benchmarks/results/cpu_fftconv_layers.md``, 2-core AVX-512 CPU): channels-last
    is faster for every 3^3 and 7^3 layer and the 9^3 first layer (one input channel); the
    default contiguous layout for the 9^3 dilated layer (64->64: 10.9 s against 22.4 s for 16
    patches, which made a channels-last model twice as slow as the plain one), so that one
    runs contiguous when it runs direct. The transform-domain layers take either layout.
    """
    folded = set_conv_engine(fold_batchnorm(model), engine)
    folded = folded.to(device, memory_format=torch.channels_last_3d).requires_grad_(False)
    for conv in folded.modules():
        if type(conv) is nn.Conv3d and _prefers_contiguous(conv):
            conv.weight.data = conv.weight.data.contiguous()
            conv.register_forward_pre_hook(_contiguous_input)
    return folded


def _prefers_contiguous(conv: nn.Module) -> bool:
    """The measured layout rule: the 9^3 dilated kernel runs faster in the contiguous layout."""
    return min(conv.kernel_size) >= 9 and max(conv.dilation) > 1


def _contiguous_input(_module, inputs):
    return (inputs[0].contiguous(),)


def receptive_radius(model: nn.Module) -> int:
    """Voxels each output sees on either side: the sum of ``dilation * (kernel - 1) // 2`` over
    the convolutions, largest axis (29 for :class:`~napari_medsynth.core.networks.models.Generator`)."""
    return sum(
        max(d * (k - 1) // 2 for k, d in zip(m.kernel_size, m.dilation))
        for m in model.modules()
        if isinstance(m, _CONVOLUTIONS)
    )


def _foldable(layer: nn.Module, conv: nn.Module) -> bool:
    return (
        isinstance(layer, nn.modules.batchnorm._BatchNorm)
        and layer.track_running_stats
        and layer.running_mean is not None
        and layer.num_features == conv.out_channels
    )


def _fused(conv: nn.Module, norm: nn.Module) -> nn.Module:
    """``conv`` with ``norm`` folded in by ``fuse_conv_bn_eval``, in float64 then back to ``conv``'s
    dtype (float64 was chosen: in tests/test_reconstruct.py the folded model is 4.6e-6 from the
    unfolded one, against 5.1e-6 when folded in float32; the bound there is 1e-5)."""
    dtype = conv.weight.dtype
    return fuse_conv_bn_eval(conv.double(), norm.double()).to(dtype)
