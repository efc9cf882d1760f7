"""fft_conv3d and the engine switch: the same numbers as F.conv3d, in values and gradients."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from napari_medsynth.core.choices import Engine
from napari_medsynth.core.networks import fftconv
from napari_medsynth.core.networks.fftconv import FFTConv3d, conv_engines, fft_conv3d, set_conv_engine
from napari_medsynth.core.networks.models import GENERATOR_LAYERS, Generator

CL = torch.channels_last_3d


def direct(x, w, b, d):
    return F.conv3d(x, w, b, padding=d * (w.shape[-1] - 1) // 2, dilation=d)


def operands(shape, cout, k, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    w = torch.randn(cout, shape[1], k, k, k, generator=g) / math.sqrt(shape[1] * k**3)
    b = torch.randn(cout, generator=g) if bias else None
    return x, w, b


def assert_close(actual, expected, rel=2e-5):
    """Max abs difference within ``rel`` of the expected values' largest magnitude."""
    scale = expected.abs().max().item()
    assert (actual - expected).abs().max().item() <= rel * max(scale, 1.0)


KERNELS = [(9, 1), (3, 2), (9, 2), (7, 2), (3, 1)]
SHAPES = [(2, 3, 32, 32, 32), (1, 2, 13, 20, 33), (2, 2, 5, 6, 7)]  # the last is smaller than the kernels


@pytest.mark.parametrize("k,d", KERNELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_conv3d(shape, k, d):
    bias = shape[0] == 2
    x, w, b = operands(shape, 4, k, bias=bias)
    expected = direct(x, w, b, d)
    with torch.inference_mode():
        out = fft_conv3d(x, w, b, d)
        out_cl = fft_conv3d(x.contiguous(memory_format=CL), w, b, d)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    assert out.is_contiguous(memory_format=CL)
    assert_close(out, expected)
    assert_close(out_cl, expected)


@pytest.mark.parametrize("k,d,shape", [(9, 2, (2, 3, 32, 32, 32)), (7, 2, (1, 2, 13, 20, 33)),
                                       (3, 1, (2, 3, 11, 9, 10))])
def test_gradients_match_conv3d(k, d, shape):
    x, w, b = operands(shape, 4, k)
    grad = torch.randn(shape[0], 4, *shape[2:])
    results = []
    for conv in (direct, fft_conv3d):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        results.append(torch.autograd.grad(conv(*leaves, d), leaves, grad))
    for actual, expected in zip(results[1], results[0]):
        assert_close(actual, expected, rel=1e-5)


def test_blocks_and_chunks(monkeypatch):
    """Overlap-save blocks (small spectrum budget) and chunks (small workspace budget)."""
    monkeypatch.setattr(fftconv, "SPECTRUM_BUDGET", 100_000)
    monkeypatch.setattr(fftconv, "CHUNK_BUDGET", 4_000_000)
    fftconv._plan.cache_clear()
    try:
        x, w, b = operands((2, 2, 37, 30, 25), 3, 9)
        axes = fftconv._plan((37, 30, 25), (9,) * 3, (2,) * 3, 2, 3, 2)
        assert all(a.nb > 1 for a in axes)
        assert fftconv._chunks(2, axes, 3) != [2, *(a.nb for a in axes)]
        with torch.inference_mode():
            assert_close(fft_conv3d(x, w, b, 2), direct(x, w, b, 2))
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        grads = torch.autograd.grad(fft_conv3d(*leaves, 2).square().sum(), leaves)
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        for actual, expected in zip(grads, torch.autograd.grad(direct(*leaves, 2).square().sum(), leaves)):
            assert_close(actual, expected, rel=1e-5)
    finally:
        fftconv._plan.cache_clear()


def test_dtypes_and_modes():
    x, w, b = operands((1, 2, 12, 12, 12), 3, 7)
    expected = direct(x, w, b, 2)
    with torch.inference_mode():  # DFT matrices made here must serve autograd later
        first = fft_conv3d(x, w, b, 2)
        second = fft_conv3d(x * 2, w, b, 2)
    assert_close(first, expected)  # not overwritten by the second call's reused workspace
    assert_close(second, direct(x * 2, w, b, 2))
    # DFT matrices made under inference_mode serve autograd, and the input gradient is the direct engine's
    # (stage outputs saved in the reused workspace slots, overwritten by later stages: one that exists but is wrong)
    upstream = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    leaves = [x.clone().requires_grad_() for _ in range(2)]
    (fft_conv3d(leaves[0], w, b, 2) * upstream).sum().backward()
    (direct(leaves[1], w, b, 2) * upstream).sum().backward()
    assert_close(leaves[0].grad, leaves[1].grad, rel=1e-5)
    out64 = fft_conv3d(x.double(), w.double(), b.double(), 2)
    assert out64.dtype == torch.float64
    assert (out64 - direct(x.double(), w.double(), b.double(), 2)).abs().max() < 1e-10
    out16 = fft_conv3d(x.bfloat16(), w, b, 2)
    assert out16.dtype == torch.bfloat16
    assert_close(out16.float(), expected, rel=2e-2)


def test_input_validation():
    with pytest.raises(ValueError, match="odd"):
        fft_conv3d(torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 1, 4, 4, 4))
    with pytest.raises(ValueError, match="same C"):
        fft_conv3d(torch.zeros(1, 2, 8, 8, 8), torch.zeros(1, 1, 3, 3, 3))
    with pytest.raises(ValueError, match="engine"):
        set_conv_engine(nn.Conv3d(1, 1, 3, padding=1), "winograd")
    strided = nn.Conv3d(1, 1, 3, padding=1, stride=2)
    model = set_conv_engine(nn.Sequential(strided, nn.Conv3d(1, 1, 3, padding="same"), nn.Conv3d(1, 1, 3)), "fft")
    assert conv_engines(model) == ["direct", "fft", "direct"]  # stride 2 and 'valid' padding stay direct
    bad = FFTConv3d(1, 1, 3, padding=1, stride=2)
    with pytest.raises(ValueError, match="stride 1"):
        bad(torch.zeros(1, 1, 8, 8, 8))


def generator(width: float) -> Generator:
    """An eval-mode generator with BatchNorm statistics and affine parameters away from identity."""
    torch.manual_seed(0)
    model = Generator(width=width)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("width", [0.125, 0.25])  # 0.25: the 9^3 layer is 16 -> 16
def test_generator_fft_engine(width):
    model = generator(width)
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.inference_mode():
        expected = model(x)
    fast = set_conv_engine(copy.deepcopy(model), "fft")
    assert conv_engines(fast) == ["fft"] * len(GENERATOR_LAYERS)
    assert all(type(m) is FFTConv3d for m in fast.modules() if isinstance(m, nn.Conv3d))
    reference, converted = model.state_dict(), fast.state_dict()
    assert list(reference) == list(converted)
    assert all(torch.equal(reference[k], converted[k]) for k in reference)
    with torch.inference_mode():
        assert (fast(x) - expected).abs().max().item() <= 1e-4
    # the cached kernel spectra follow in-place changes of the weights
    with torch.no_grad():
        for m in (model, fast):
            m.layers[0].weight.mul_(-2.0)
            m.layers[-1].weight.mul_(-2.0)
    with torch.inference_mode():
        changed = model(x)
        assert (changed - expected).abs().max().item() > 1e-2 * expected.abs().max().item()
        assert (fast(x) - changed).abs().max().item() <= 1e-4
    set_conv_engine(fast, "direct")
    assert conv_engines(fast) == ["direct"] * len(GENERATOR_LAYERS)
    assert all(type(m) is nn.Conv3d for m in fast.modules() if isinstance(m, nn.Conv3d))
    assert all(not hasattr(m, "engine") for m in fast.modules() if isinstance(m, nn.Conv3d))


def test_training_through_fft_engine():
    """Parameter gradients of a training-mode generator match the direct engine's."""
    model = generator(0.125).train()
    fast = set_conv_engine(copy.deepcopy(model), "fft")
    x = torch.randn(2, 1, 16, 16, 16)
    grads = []
    for m in (model, fast):
        m(x).square().mean().backward()
        grads.append([p.grad for p in m.parameters()])
    for actual, expected in zip(grads[1], grads[0]):
        assert_close(actual, expected, rel=1e-4)


def test_auto_rule():
    model = set_conv_engine(generator(0.125), "auto")
    assert conv_engines(model) == ["auto"] * len(GENERATOR_LAYERS)
    kernels = [k for k, _, _ in GENERATOR_LAYERS]
    for batch in (1, 16):
        picks = conv_engines(model, (batch, 1, 32, 32, 32))
        assert all(p == "direct" for p, k in zip(picks, kernels) if k == 3)
        assert picks == ["fft" if m.uses_fft((batch, m.in_channels, 32, 32, 32)) else "direct"
                         for m in model.modules() if isinstance(m, FFTConv3d)]
    # the rule measured on this CPU: at width 1/8 only the 9^3 8 -> 8 layer, from batches of 8 on
    assert conv_engines(model, (16, 1, 32, 32, 32)) == ["direct"] * 4 + ["fft"] + ["direct"] * 4
    assert conv_engines(model, (1, 1, 32, 32, 32)) == ["direct"] * 9
    # training on a CPU: every 7^3 and 9^3 layer in the transform domain (their direct backward is the slow one)
    assert conv_engines(model, (1, 1, 32, 32, 32), training=True) == ["fft" if k > 3 else "direct" for k in kernels]
    first = next(m for m in model.modules() if isinstance(m, FFTConv3d))  # 9^3 1 -> 4, direct in inference
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        by_fft = fft_conv3d(x, first.weight, first.bias, first.dilation)
        assert not torch.equal(first(x), by_fft)
    assert torch.equal(first(x), by_fft)  # autograd records the weight: the transform domain's result, to the bit
    full = set_conv_engine(Generator(width=1.0), "auto")
    assert conv_engines(full, (8, 1, 32, 32, 32)) == ["direct"] * 4 + ["fft"] + ["direct"] * 2 + ["fft", "direct"]
    x = torch.randn(16, 1, 32, 32, 32)
    with torch.inference_mode():
        assert (model(x) - set_conv_engine(copy.deepcopy(model), "direct")(x)).abs().max().item() <= 1e-4
    assert set(Engine) == {"auto", "direct", "fft"}


def test_full_width_generator_numerics():
    model = generator(1.0)
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.inference_mode():
        expected = model(x)
        actual = set_conv_engine(copy.deepcopy(model), "fft")(x)
    scale = expected.std().item()
    assert (actual - expected).abs().max().item() / scale <= 1e-4


def test_spectrum_cache_is_bounded_and_follows_weights():
    fftconv.clear_caches()
    x, w, b = operands((1, 2, 10, 10, 10), 3, 7)
    with torch.no_grad():
        fft_conv3d(x, w, b, 2)
        assert len(fftconv._SPECTRA.entries) == 1
        fft_conv3d(x, w, b, 2)  # a hit
        assert len(fftconv._SPECTRA.entries) == 1
        w.add_(1.0)  # a new version: a new entry, the same result as the direct convolution
        assert_close(fft_conv3d(x, w, b, 2), direct(x, w, b, 2))
        del w
        fft_conv3d(*operands((1, 2, 10, 10, 10), 3, 7, seed=1)[:2], None, 2)  # the dead weight's entries go
        assert len(fftconv._SPECTRA.entries) == 1
    # autograd through the weight: its spectrum recomputed, not taken from the cache (a detached one: no gradient),
    # and the weight gradient the direct engine's (one through overwritten workspace slots would be wrong)
    leaf, reference = (operands((1, 2, 10, 10, 10), 3, 7)[1].requires_grad_() for _ in range(2))
    upstream = torch.randn(1, 3, 10, 10, 10, generator=torch.Generator().manual_seed(2))
    (fft_conv3d(x, leaf, None, 2) * upstream).sum().backward()
    (direct(x, reference, None, 2) * upstream).sum().backward()
    assert_close(leaf.grad, reference.grad, rel=1e-5)
    assert len(fftconv._SPECTRA.entries) == 1
