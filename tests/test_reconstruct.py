"""Patch-overlap reconstruction: exactness, peers as oracles, spread, modes, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_medsynth import Generator, reconstruct_volume
from napari_medsynth.core.errors import Cancelled
from napari_medsynth.core.networks.inference import fold_batchnorm
from napari_medsynth.core.preprocessing.patches import patch_grid
from napari_medsynth.core.synthesis.reconstruct import preview_volume


def _trained_looking_generator(seed=0, width=0.125, residual=False):
    """A small generator with non-trivial BatchNorm running statistics, in train mode."""
    torch.manual_seed(seed)
    generator = Generator(residual=residual, width=width)
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return generator


def _calibrated_generator(residual, seed=4, width=0.125):
    """A small eval-mode, channels-last generator (fast on CPUs) whose BatchNorm statistics come
    from training-mode passes on shifted, scaled noise, its last layer scaled to unit output std."""
    torch.manual_seed(seed)
    generator = Generator(residual=residual, width=width).to(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        for _ in range(3):
            generator(1.5 * torch.randn(2, 1, 16, 16, 16) + 0.3)
        generator.eval()
        generator.layers[-1].weight /= generator.layers(torch.randn(1, 1, 16, 16, 16)).std()
    return generator


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).normal(size=(40, 38, 34)).astype(np.float32)


@pytest.fixture(scope="module")
def generator():
    return _trained_looking_generator(residual=True).eval().to(memory_format=torch.channels_last_3d)


@pytest.fixture(scope="module")
def ours(volume, generator):
    """Our reconstruction and spread at strides 8 and 16, shared by the oracle tests."""
    return {
        stride: reconstruct_volume(generator, volume, stride=stride, batch_size=5, device="cpu", return_spread=True)
        for stride in (8, 16)
    }


@pytest.mark.parametrize("shape", [(64, 64, 32), (50, 37, 33), (20, 40, 32)], ids=["divisible", "odd", "small"])
@pytest.mark.parametrize("stride", [8, 16, 32])
@pytest.mark.parametrize("batch_size", [1, 7])
def test_a_known_predictor_is_reproduced_exactly(shape, stride, batch_size):
    source = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    result = reconstruct_volume(lambda x: 2 * x + 1, source, stride=stride, batch_size=batch_size, device="cpu")
    assert result.shape == shape and result.dtype == np.float32
    np.testing.assert_allclose(result, 2 * source + 1, atol=1e-5)


@pytest.mark.parametrize("stride", [8, 16])
def test_equals_monai_sliding_window_average(volume, generator, ours, stride):
    from monai.inferers import sliding_window_inference

    with torch.inference_mode():
        theirs = sliding_window_inference(
            torch.from_numpy(volume)[None, None], roi_size=32, sw_batch_size=5, predictor=generator,
            overlap=1 - stride / 32, mode="constant",
        )[0, 0].numpy()
    assert np.abs(ours[stride][0] - theirs).max() <= 1e-5


@pytest.mark.parametrize("stride", [8, 16])
def test_equals_torchio_grid_aggregator_average(volume, generator, ours, stride):
    import torchio as tio

    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(volume)[None]))
    sampler = tio.inference.GridSampler(subject, patch_size=32, patch_overlap=32 - stride)
    aggregator = tio.inference.GridAggregator(sampler, overlap_mode="average")
    with torch.inference_mode():
        for batch in torch.utils.data.DataLoader(sampler, batch_size=6):
            aggregator.add_batch(generator(batch["image"][tio.DATA]), batch[tio.LOCATION])
    theirs = aggregator.get_output_tensor()[0].numpy()
    assert np.abs(ours[stride][0] - theirs).max() <= 1e-5


def test_spread_is_the_std_of_the_overlapping_predictions(volume, generator, ours):
    stride = 8
    mean, spread = ours[stride]
    starts = patch_grid(volume.shape, 32, stride)
    stacked = np.full((len(starts), *volume.shape), np.nan)
    with torch.inference_mode():
        for index, (z, y, x) in enumerate(starts):
            patch = torch.from_numpy(volume[z : z + 32, y : y + 32, x : x + 32])[None, None]
            stacked[index, z : z + 32, y : y + 32, x : x + 32] = generator(patch)[0, 0].numpy()
    np.testing.assert_allclose(mean, np.nanmean(stacked, axis=0), atol=1e-5)
    np.testing.assert_allclose(spread, np.nanstd(stacked, axis=0), atol=1e-5)
    assert spread.max() > 0


def test_generator_runs_in_eval_mode_and_comes_back_as_it_was():
    generator = _trained_looking_generator(seed=2, width=0.0625).train()
    source = np.random.default_rng(3).normal(size=(32, 32, 33)).astype(np.float32)
    statistics = {k: v.clone() for k, v in generator.state_dict().items()}
    result = reconstruct_volume(generator, source, stride=32, device="cpu")
    assert generator.training
    for key, value in generator.state_dict().items():
        torch.testing.assert_close(value, statistics[key])
    expected = reconstruct_volume(generator.eval(), source, stride=32, device="cpu")
    np.testing.assert_array_equal(result, expected)
    with torch.inference_mode():
        in_train_mode = generator.train()(torch.from_numpy(source[:, :, :32])[None, None])[0, 0].numpy()
    assert np.abs(result[:, :, :32] - in_train_mode).max() > 1e-3


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_folded_batchnorm_gives_the_plain_float32_reconstruction(residual):
    generator = _calibrated_generator(residual)
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    source = np.random.default_rng(5).normal(size=(33, 40, 32)).astype(np.float32)
    folded = reconstruct_volume(generator, source, stride=16, device="cpu")
    plain = reconstruct_volume(lambda x: generator(x), source, stride=16, device="cpu")  # a callable runs as is
    assert plain.std() > 0.5
    assert np.abs(folded - plain).max() <= 1e-5
    copy = fold_batchnorm(generator)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in copy.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in generator.modules()) == 8
    for key, value in generator.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def _reference_fold(conv, norm):
    """The oracle: the folded weight and bias as written out by hand in float64 before torch's
    ``fuse_conv_bn_eval`` did the folding."""
    scale = torch.rsqrt(norm.running_var.double() + norm.eps)
    shift = torch.zeros_like(scale)
    if norm.affine:
        scale, shift = scale * norm.weight.double(), norm.bias.double()
    bias = 0.0 if conv.bias is None else conv.bias.double()
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1, 1)
    return weight.float(), ((bias - norm.running_mean.double()) * scale + shift).float()


def test_fold_batchnorm_equals_the_float64_reference():
    torch.manual_seed(11)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(2, 3, 3, padding=1), torch.nn.BatchNorm3d(3, affine=False), torch.nn.ReLU(),
        torch.nn.Conv3d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm3d(4), torch.nn.LeakyReLU(0.2),
        torch.nn.BatchNorm3d(4),  # after an activation: kept
    )
    with torch.no_grad():
        for norm in (model[1], model[4], model[6]):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.2, 2.0)
            if norm.affine:
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.3, 0.3)
    folded = fold_batchnorm(model)
    assert model.training and not folded.training
    assert [type(layer).__name__ for layer in folded] == [
        "Conv3d", "Identity", "ReLU", "Conv3d", "Identity", "LeakyReLU", "BatchNorm3d"
    ]
    for index in (0, 3):
        weight, bias = _reference_fold(model[index], model[index + 1])
        torch.testing.assert_close(folded[index].weight, weight, rtol=0, atol=0)
        torch.testing.assert_close(folded[index].bias, bias, rtol=0, atol=0)
    source = torch.randn(2, 2, 8, 8, 8)
    with torch.no_grad():
        assert (folded(source) - model.eval()(source)).abs().max() <= 1e-5


def test_preview_tiles_give_the_whole_volume_result():
    generator = _trained_looking_generator(seed=8, width=0.0625, residual=True).eval()
    source = np.random.default_rng(9).normal(size=(40, 48, 36)).astype(np.float32)
    whole = preview_volume(generator, source, device="cpu")
    assert whole.shape == source.shape and whole.dtype == np.float32
    calls = []
    tile = (40, 16, 36)  # along y, halos of 29 reach past the neighbouring tiles but not the whole axis
    tiled = preview_volume(generator, source, device="cpu", tile=tile, progress=lambda *call: calls.append(call))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert np.abs(tiled - whole).max() <= 1e-4
    short_halo = preview_volume(generator, source, device="cpu", tile=tile, halo=4)
    assert np.abs(short_halo - whole).max() > 1e-3


def test_preview_of_a_callable():
    source = np.random.default_rng(10).normal(size=(20, 30, 10)).astype(np.float32)
    np.testing.assert_allclose(preview_volume(lambda x: 2 * x + 1, source, device="cpu"), 2 * source + 1, atol=1e-6)
    tiled = preview_volume(lambda x: 2 * x + 1, source, device="cpu", tile=8, halo=0)
    np.testing.assert_allclose(tiled, 2 * source + 1, atol=1e-6)
    with pytest.raises(ValueError, match="halo"):
        preview_volume(lambda x: x, source, device="cpu", tile=8)


def test_accepts_torch_tensors(volume):
    result = reconstruct_volume(lambda x: -x, torch.from_numpy(volume), stride=16)
    assert isinstance(result, np.ndarray)
    np.testing.assert_allclose(result, -volume, atol=1e-6)


def test_progress_and_cancel(volume):
    calls = []
    reconstruct_volume(lambda x: x, volume, stride=8, batch_size=4, device="cpu",
                       progress=lambda done, total: calls.append((done, total)))
    total = len(patch_grid(volume.shape, 32, 8))
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})

    cancel = threading.Event()
    seen = []

    def cancel_after_first_batch(done, total):
        seen.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        reconstruct_volume(lambda x: x, volume, stride=8, batch_size=4, device="cpu",
                           progress=cancel_after_first_batch, cancel=cancel)
    assert seen == [4]


def test_bad_arguments():
    with pytest.raises(ValueError, match="3D volume"):
        reconstruct_volume(lambda x: x, np.zeros((32, 32)))
    with pytest.raises(ValueError, match="stride=0"):
        reconstruct_volume(lambda x: x, np.zeros((32, 32, 32)), stride=0)
    with pytest.raises(ValueError, match="tile"):
        preview_volume(lambda x: x, np.zeros((32, 32, 32)), tile=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(volume, generator):
    on_cpu = reconstruct_volume(generator, volume, stride=16, device="cpu")
    on_gpu = reconstruct_volume(generator, volume, stride=16, device="cuda")
    assert np.abs(on_cpu - on_gpu).max() < 1e-3
    assert next(generator.parameters()).device.type == "cpu"


def test_stacks_are_reconstructed_each_on_its_own_and_interleaved(generator):
    native = np.random.default_rng(2).normal(size=(40, 36, 96)).astype(np.float32)
    together, spread = reconstruct_volume(generator, native, stride=16, device="cpu", stacks=3, return_spread=True)
    for offset in range(3):
        alone, alone_spread = reconstruct_volume(generator, native[..., offset::3], stride=16, device="cpu",
                                                 return_spread=True)
        np.testing.assert_array_equal(together[..., offset::3], alone)
        np.testing.assert_array_equal(spread[..., offset::3], alone_spread)
        np.testing.assert_allclose(preview_volume(generator, native, device="cpu", stacks=3)[..., offset::3],
                                   preview_volume(generator, native[..., offset::3], device="cpu"), atol=1e-6)


def test_progress_counts_the_patches_of_every_stack_and_cancel_stops_within_a_batch():
    native = np.zeros((48, 48, 96), np.float32)
    calls = []
    reconstruct_volume(lambda x: x, native, stride=8, batch_size=5, device="cpu", stacks=3,
                       progress=lambda done, total: calls.append((done, total)))
    total = 3 * len(patch_grid((48, 48, 32), 32, 8))
    assert calls[-1] == (total, total) and {t for _, t in calls} == {total}
    cancel = threading.Event()
    seen = []
    with pytest.raises(Cancelled):
        reconstruct_volume(lambda x: x, native, stride=8, batch_size=5, device="cpu", stacks=3, cancel=cancel,
                           progress=lambda done, total: (seen.append(done), cancel.set()))
    assert seen == [5]
    with pytest.raises(ValueError, match="stacks must be a positive divisor"):
        reconstruct_volume(lambda x: x, np.zeros((32, 32, 95), np.float32), stacks=3)


@pytest.mark.parametrize("engine", ["fft", "auto"])
def test_engines_give_the_direct_reconstruction(volume, generator, engine):
    direct = reconstruct_volume(generator, volume, stride=16, device="cpu", engine="direct")
    np.testing.assert_allclose(reconstruct_volume(generator, volume, stride=16, device="cpu", engine=engine),
                               direct, atol=1e-4)
    np.testing.assert_allclose(preview_volume(generator, volume, device="cpu", engine=engine),
                               preview_volume(generator, volume, device="cpu", engine="direct"), atol=1e-4)
    assert all(type(m) is torch.nn.Conv3d for m in generator.modules() if isinstance(m, torch.nn.Conv3d))
    with pytest.raises(ValueError, match="engine must be one of"):
        reconstruct_volume(generator, volume, engine="winograd")
