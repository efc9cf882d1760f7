"""Whole-volume synthesis by averaging overlapping patch predictions (the report's method)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from .devices import resolve_device
from .errors import Cancelled, MedSynthError
from .patches import patch_grid, patch_starts

__all__ = ["reconstruct_volume"]

_CPU_BATCH_LIMIT = 16
_CUDA_BATCH_LIMIT = 256


def reconstruct_volume(
    generator: Callable[[torch.Tensor], torch.Tensor],
    source,
    patch: int = 32,
    stride: int = 8,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    *,
    return_spread: bool = False,
):
    """Synthesize a whole volume from overlapping ``patch``^3 predictions.

    Patches start every ``stride`` voxels on each axis, plus one more that ends on the
    border when the stride does not divide, so every voxel is covered. Each voxel
    gets the plain average of the predictions that cover it (equal to MONAI's
    ``sliding_window_inference(..., overlap=1 - stride/patch, mode="constant")``).
    Patches run in batches under ``torch.inference_mode``; the accumulators have the
    volume's size whatever the patch count. An axis shorter than ``patch`` is padded
    with zeros on both sides and cropped back.

    Parameters
    ----------
    generator : callable
        Maps ``(B, 1, p, p, p)`` to ``(B, 1, p, p, p)``; an ``nn.Module`` is run in eval
        mode (BatchNorm on its running statistics) on ``device`` and handed back in
        the mode and on the device it came in.
    source : np.ndarray or torch.Tensor
        The preprocessed 3D volume.
    patch, stride : int
        Patch edge and step in voxels (the report: 32 and 8, 625 patches on 224x224x32).
    batch_size : int, optional
        Patches per forward pass; by default as many as memory comfortably allows.
        On CUDA out-of-memory the batch is halved and retried.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.
    cancel : object with ``is_set()``, optional
        A ``threading.Event``; when set, :class:`Cancelled` is raised after the batch.
    return_spread : bool, default=False
        Also return the per-voxel standard deviation of the overlapping predictions, a
        map of where the patches disagree (population std; 0 where one patch covers).

    Returns
    -------
    np.ndarray or tuple of np.ndarray
        The float32 synthesis of ``source``'s shape, and the spread map if asked for.

    Raises
    ------
    ValueError
        ``source`` is not 3D, or ``patch``/``stride`` is not positive.
    Cancelled
        ``cancel`` was set.
    MedSynthError
        CUDA ran out of memory even one patch at a time.
    """
    volume = torch.as_tensor(np.asarray(source.cpu() if torch.is_tensor(source) else source),
                             dtype=torch.float32)
    if volume.ndim != 3:
        raise ValueError(f"source must be a 3D volume, got shape {tuple(volume.shape)}")
    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be positive, got patch={patch}, stride={stride}")
    compute = resolve_device(device)
    volume, crop = _pad_to_patch(volume, patch)
    starts = patch_grid(tuple(volume.shape), patch, stride)
    coverage = _coverage(volume.shape, patch, stride).to(compute)
    total = len(starts)
    if batch_size is None:
        batch_size = _default_batch_size(generator, patch, compute)
    volume = volume.to(compute)
    # float64 sums when the spread is asked for: a variance from float32 sums would be noise.
    accumulate = torch.float64 if return_spread else torch.float32
    summed = torch.zeros(volume.shape, dtype=accumulate, device=compute)
    squared = torch.zeros_like(summed) if return_spread else None
    done = 0
    with _evaluating(generator, compute), torch.inference_mode():
        while done < total:
            batch = starts[done : done + batch_size]
            try:
                predictions = _predict(generator, volume, batch, patch)
            except torch.cuda.OutOfMemoryError:
                if batch_size == 1:
                    raise MedSynthError(
                        "CUDA ran out of memory with one patch per batch; free GPU memory or use the CPU"
                    ) from None
                batch_size = max(1, batch_size // 2)
                torch.cuda.empty_cache()
                continue
            for (z, y, x), prediction in zip(batch.tolist(), predictions):
                region = (slice(z, z + patch), slice(y, y + patch), slice(x, x + patch))
                summed[region] += prediction
                if squared is not None:
                    squared[region] += prediction.double() ** 2
            done += len(batch)
            if progress is not None:
                progress(done, total)
            if cancel is not None and cancel.is_set():
                raise Cancelled("synthesis cancelled")
    mean = summed / coverage
    result = mean[crop].float().cpu().numpy()
    if squared is None:
        return result
    variance = (squared / coverage - mean**2).clamp_min_(0)
    return result, variance.sqrt()[crop].float().cpu().numpy()


def _predict(generator, volume: torch.Tensor, starts: np.ndarray, patch: int) -> torch.Tensor:
    patches = torch.stack(
        [volume[z : z + patch, y : y + patch, x : x + patch] for z, y, x in starts.tolist()]
    )[:, None].contiguous(memory_format=torch.channels_last_3d)
    return generator(patches)[:, 0].float()


def _coverage(shape, patch: int, stride: int) -> torch.Tensor:
    """How many patches cover each voxel: the grid is a product, so the count is too."""
    counts = []
    for size in shape:
        count = torch.zeros(size)
        for start in patch_starts(size, patch, stride):
            count[start : start + patch] += 1
        counts.append(count)
    return counts[0][:, None, None] * counts[1][None, :, None] * counts[2][None, None, :]


def _pad_to_patch(volume: torch.Tensor, patch: int):
    """Zero-pad axes shorter than ``patch`` on both sides; return the crop that undoes it."""
    pads, crop = [], []
    for size in volume.shape:
        missing = max(0, patch - size)
        before = missing // 2
        pads.append((before, missing - before))
        crop.append(slice(before, before + size))
    if any(sum(p) for p in pads):
        flat = [value for pair in reversed(pads) for value in pair]
        volume = torch.nn.functional.pad(volume, flat)
    return volume, tuple(crop)


def _default_batch_size(generator, patch: int, device: torch.device) -> int:
    """Patches per pass: bounded by a share of free memory for the widest activations."""
    channels = 64
    if isinstance(generator, nn.Module):
        convs = [m.out_channels for m in generator.modules() if isinstance(m, nn.Conv3d)]
        channels = max(convs, default=channels)
    per_patch = 4 * channels * patch**3 * 4  # a few live float32 activations per patch
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(1, min(_CUDA_BATCH_LIMIT, free // 2 // per_patch)))
    return int(max(1, min(_CPU_BATCH_LIMIT, (1 << 30) // per_patch)))


@contextmanager
def _evaluating(generator, device: torch.device):
    """Run an ``nn.Module`` in eval mode on ``device`` in channels-last layout (several times
    faster for 3D convolutions on CPUs); restore its mode, device and layout after."""
    if not isinstance(generator, nn.Module):
        yield
        return
    was_training = generator.training
    weight = next((p for p in generator.parameters() if p.ndim == 5 and p.shape[1] > 1), None)
    home = weight.device if weight is not None else device
    layout = (
        torch.channels_last_3d
        if weight is not None and weight.is_contiguous(memory_format=torch.channels_last_3d)
        else torch.contiguous_format
    )
    generator.eval().to(device, memory_format=torch.channels_last_3d)
    try:
        yield
    finally:
        generator.train(was_training).to(home, memory_format=layout)
