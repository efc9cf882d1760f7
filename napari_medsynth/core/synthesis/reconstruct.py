"""Whole-volume synthesis by averaging overlapping patch predictions (the report's method),
and a one-pass preview."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import Cancelled, MedSynthError
from ..networks.devices import resolve_device
from ..networks.inference import inference_model, receptive_radius
from ..preprocessing.patches import patch_grid, patch_starts

__all__ = ["default_batch_size", "preview_volume", "reconstruct_volume"]

_CPU_BATCH_LIMIT = 16
_CUDA_BATCH_LIMIT = 256
_CPU_PREVIEW_BYTES = 4 << 30
_LIVE_ACTIVATIONS = 4  # float32 activations of the widest layer alive at once, per voxel


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
    stacks: int = 1,
    engine: str = "auto",
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
        Maps ``(B, 1, p, p, p)`` to ``(B, 1, p, p, p)``. An ``nn.Module`` runs as an
        eval-mode copy on ``device``, channels-last, with its BatchNorm folded into the
        convolutions (see :func:`~napari_medsynth.core.networks.inference.fold_batchnorm`: the same
        float32 output to ~1e-6); the module itself is not touched. Any other callable is
        called as it is.
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
    stacks : int, default=1
        Synthesize the last axis as this many interleaved stacks, each on its own (slices
        ``k, k + stacks, ...``; 3 on the native grid, see
        :func:`~napari_medsynth.core.preprocessing.preprocess.stacks`): the generator sees each stack's
        slice spacing, and progress counts the patches of all stacks.
    engine : {"auto", "direct", "fft"}, default="auto"
        How a module's convolutions run (:mod:`~napari_medsynth.core.networks.fftconv`): ``"fft"``
        in the transform domain, ``"direct"`` as ``nn.Conv3d``, ``"auto"`` the faster of the
        two per layer and input size. The same result to float32 rounding.

    Returns
    -------
    np.ndarray or tuple of np.ndarray
        The float32 synthesis of ``source``'s shape, and the spread map if asked for.

    Raises
    ------
    ValueError
        ``source`` is not 3D, ``patch``/``stride``/``stacks`` is not positive, ``stacks``
        does not divide the last axis, or ``engine`` is unknown.
    Cancelled
        ``cancel`` was set.
    MedSynthError
        CUDA ran out of memory even one patch at a time.
    """
    volume = _as_volume(source)
    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be positive, got patch={patch}, stride={stride}")
    parts = _stacks(volume, stacks)
    compute = resolve_device(device)
    per_part = [len(patch_grid(tuple(max(n, patch) for n in part.shape), patch, stride)) for part in parts]
    if batch_size is None:
        batch_size = default_batch_size(generator, patch, compute)
    model = _prepared(generator, compute, engine)
    mean = torch.empty(volume.shape, dtype=torch.float32)
    spread = torch.empty(volume.shape, dtype=torch.float32) if return_spread else None
    counter = _Counter(progress, sum(per_part))
    with torch.inference_mode():
        for index, part in enumerate(parts):
            part_mean, part_spread, batch_size = _average_patches(
                model, part, patch, stride, batch_size, compute, return_spread, counter, cancel
            )
            mean[..., index :: len(parts)] = part_mean
            if spread is not None:
                spread[..., index :: len(parts)] = part_spread
    return mean.numpy() if spread is None else (mean.numpy(), spread.numpy())


def _average_patches(model, volume, patch, stride, batch_size, compute, return_spread, counter, cancel):
    """The patch average of one stack (and its spread), on the CPU; and the batch size that fit."""
    volume, crop = _pad_to_patch(volume, patch)
    starts = patch_grid(tuple(volume.shape), patch, stride).tolist()
    coverage = _coverage(volume.shape, patch, stride).to(compute)
    volume = volume.to(compute)
    # float64 sums when the spread is asked for: a variance from float32 sums would be noise.
    accumulate = torch.float64 if return_spread else torch.float32
    summed = torch.zeros(volume.shape, dtype=accumulate, device=compute)
    squared = torch.zeros_like(summed) if return_spread else None
    done = 0
    while done < len(starts):
        batch = starts[done : done + batch_size]
        try:
            predictions = _predict(model, volume, batch, patch)
        except torch.cuda.OutOfMemoryError as error:
            if batch_size == 1:
                raise MedSynthError(
                    "CUDA ran out of memory with one patch per batch; free GPU memory or use the CPU"
                ) from error
            batch_size = max(1, batch_size // 2)
            torch.cuda.empty_cache()
            continue
        # In-place adds into views of the volume; one advanced-index scatter is several
        # times slower on CPUs (measured for 16 patches of 32^3).
        for (z, y, x), prediction in zip(batch, predictions):
            region = (slice(z, z + patch), slice(y, y + patch), slice(x, x + patch))
            summed[region] += prediction
            if squared is not None:
                squared[region] += prediction.double() ** 2
        done += len(batch)
        counter.advance(len(batch))
        if cancel is not None and cancel.is_set():
            raise Cancelled("synthesis cancelled")
    mean = summed / coverage
    result = mean[crop].float().cpu()
    if squared is None:
        return result, None, batch_size
    variance = (squared / coverage - mean**2).clamp_min_(0)
    return result, variance.sqrt()[crop].float().cpu(), batch_size


def preview_volume(
    generator: Callable[[torch.Tensor], torch.Tensor],
    source,
    *,
    device: str | torch.device = "auto",
    tile: int | tuple[int, int, int] | None = None,
    halo: int | None = None,
    stacks: int = 1,
    engine: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
) -> np.ndarray:
    """Synthesize a whole volume in one pass of the fully convolutional generator.

    A fast preview: the generator sees the whole volume at once, so its work is one
    output per voxel instead of one per voxel of every patch (1/13 of
    :func:`reconstruct_volume`'s at the report's settings on 224x224x32). Without patch
    borders to average over, its output differs somewhat from the patch average. Large
    volumes run as tiles that each see ``halo`` voxels of context on every side; with
    ``halo`` at least the generator's receptive-field radius, the tiles give the
    whole-volume result to float rounding.

    Parameters
    ----------
    generator : callable
        Maps ``(1, 1, Z, Y, X)`` to the same shape; an ``nn.Module`` runs as in
        :func:`reconstruct_volume` (a folded, eval-mode, channels-last copy).
    source : np.ndarray or torch.Tensor
        The preprocessed 3D volume.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    tile : int or tuple of 3 int, optional
        Edge of the tiles' cores. By default the whole volume, or tiles as large as fit
        a memory budget (half the free GPU memory, 4 GiB on CPUs); on CUDA out-of-memory
        the largest edge is halved and the pass restarted.
    halo : int, optional
        Context voxels around each tile; by default the receptive-field radius of the
        module's convolutions (29 for :class:`~napari_medsynth.core.networks.models.Generator`).
        Needed for a callable that is not an ``nn.Module`` when tiles are used.
    stacks : int, default=1
        As in :func:`reconstruct_volume`: one pass per interleaved stack of the last axis.
    engine : {"auto", "direct", "fft"}, default="auto"
        As in :func:`reconstruct_volume`.
    progress : callable, optional
        Called as ``progress(done, total)`` after each tile (of all stacks).
    cancel : object with ``is_set()``, optional
        When set, :class:`Cancelled` is raised after the tile.

    Returns
    -------
    np.ndarray
        The float32 synthesis of ``source``'s shape.

    Raises
    ------
    ValueError
        ``source`` is not 3D, ``tile`` or ``halo`` is not positive, ``engine`` is unknown,
        or tiles are needed for a plain callable without ``halo``.
    Cancelled
        ``cancel`` was set.
    MedSynthError
        CUDA ran out of memory even with one-voxel tiles, or untiled for a plain callable
        without ``halo``.
    """
    volume = _as_volume(source)
    parts = _stacks(volume, stacks)
    shape = tuple(parts[0].shape)
    compute = resolve_device(device)
    if halo is None:  # an exported generator knows its own
        halo = receptive_radius(generator) if isinstance(generator, nn.Module) else getattr(
            generator, "receptive_radius", None)
    if halo is not None and halo < 0:
        raise ValueError(f"halo must not be negative, got {halo}")
    tiles = _tile_shape(shape, tile) if tile is not None else _fitting_tile(generator, shape, halo or 0, compute)
    if tiles != shape and halo is None:
        raise ValueError("preview_volume needs halo= to tile a callable that is not an nn.Module")
    model = _prepared(generator, compute, engine)
    output = torch.empty(volume.shape, dtype=torch.float32)
    with torch.inference_mode():
        for index, part in enumerate(parts):
            part = part.to(compute)
            while True:
                counter = _Counter(progress, len(parts) * _tile_count(shape, tiles), index * _tile_count(shape, tiles))
                try:
                    part_output = _run_tiles(model, part, tiles, halo or 0, counter, cancel)
                    break
                except torch.cuda.OutOfMemoryError as error:
                    if max(tiles) == 1 or halo is None:
                        raise MedSynthError("CUDA ran out of memory for the preview; use the CPU") from error
                    largest = tiles.index(max(tiles))
                    tiles = tuple(t // 2 if axis == largest else t for axis, t in enumerate(tiles))
                    torch.cuda.empty_cache()
            output[..., index :: len(parts)] = part_output.cpu()
    return output.numpy()


def _run_tiles(model, volume, tiles, halo, counter, cancel) -> torch.Tensor:
    """Run each tile's core plus ``halo`` (clipped to the volume) and keep the core."""
    output = torch.empty(volume.shape, dtype=torch.float32, device=volume.device)
    axes = [range(0, size, edge) for size, edge in zip(volume.shape, tiles)]
    cores = [(z, y, x) for z in axes[0] for y in axes[1] for x in axes[2]]
    for start in cores:
        core = [slice(a, min(a + t, n)) for a, t, n in zip(start, tiles, volume.shape)]
        seen = [slice(max(0, c.start - halo), min(n, c.stop + halo)) for c, n in zip(core, volume.shape)]
        inputs = volume[tuple(seen)][None, None].contiguous(memory_format=torch.channels_last_3d)
        predicted = model(inputs)[0, 0]
        keep = tuple(slice(c.start - s.start, c.stop - s.start) for c, s in zip(core, seen))
        output[tuple(core)] = predicted[keep].float()
        counter.advance(1)
        if cancel is not None and cancel.is_set():
            raise Cancelled("preview cancelled")
    return output


def _tile_count(shape, tiles) -> int:
    return int(np.prod([-(-n // t) for n, t in zip(shape, tiles)]))


class _Counter:
    """Reports ``progress(done, total)`` as work units finish, across stacks."""

    def __init__(self, progress, total: int, done: int = 0):
        self.progress, self.total, self.done = progress, total, done

    def advance(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total)


def _stacks(volume: torch.Tensor, count: int) -> list[torch.Tensor]:
    """The ``count`` interleaved stacks of the last axis, as views."""
    if count < 1 or volume.shape[-1] % count:
        raise ValueError(f"stacks must be a positive divisor of the last axis ({volume.shape[-1]}), got {count}")
    return [volume[..., index::count] for index in range(count)]


def _as_volume(source) -> torch.Tensor:
    volume = torch.as_tensor(np.asarray(source.cpu() if torch.is_tensor(source) else source),
                             dtype=torch.float32)
    if volume.ndim != 3:
        raise ValueError(f"source must be a 3D volume, got shape {tuple(volume.shape)}")
    return volume


def _prepared(generator, device: torch.device, engine: str):
    """The generator as it runs: a folded inference copy of a module on ``engine``, other callables
    as they are."""
    return inference_model(generator, device, engine) if isinstance(generator, nn.Module) else generator


def _predict(model, volume: torch.Tensor, starts: list, patch: int) -> torch.Tensor:
    patches = torch.stack(
        [volume[z : z + patch, y : y + patch, x : x + patch] for z, y, x in starts]
    )[:, None].contiguous(memory_format=torch.channels_last_3d)
    return model(patches)[:, 0].float()


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


def _widest(generator) -> int:
    """Output channels of the widest convolution (64, the full generator's, for a callable)."""
    if isinstance(generator, nn.Module):
        return max((m.out_channels for m in generator.modules() if isinstance(m, nn.Conv3d)), default=64)
    return 64


def default_batch_size(generator, patch: int, device: torch.device) -> int:
    """Patches per pass: bounded by a share of free memory for the widest activations."""
    per_patch = _LIVE_ACTIVATIONS * _widest(generator) * patch**3 * 4
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(1, min(_CUDA_BATCH_LIMIT, free // 2 // per_patch)))
    return int(max(1, min(_CPU_BATCH_LIMIT, (1 << 30) // per_patch)))


def _tile_shape(shape, tile) -> tuple[int, int, int]:
    edges = (tile,) * 3 if isinstance(tile, (int, np.integer)) else tuple(tile)
    if len(edges) != 3 or min(edges) < 1:
        raise ValueError(f"tile must be a positive int or three of them, got {tile!r}")
    return tuple(min(int(e), n) for e, n in zip(edges, shape))


def _fitting_tile(generator, shape, halo: int, device: torch.device) -> tuple[int, int, int]:
    """The whole volume if it fits the memory budget, else halve the largest tile edge until
    a tile with its halo does."""
    budget = torch.cuda.mem_get_info(device)[0] // 2 if device.type == "cuda" else _CPU_PREVIEW_BYTES
    per_voxel = _LIVE_ACTIVATIONS * _widest(generator) * 4
    tiles = tuple(shape)
    while per_voxel * np.prod([min(n, t + 2 * halo) for t, n in zip(tiles, shape)]) > budget and max(tiles) > 1:
        largest = tiles.index(max(tiles))
        tiles = tuple(-(-t // 2) if axis == largest else t for axis, t in enumerate(tiles))
    return tiles
