"""Acquisition randomization of the source (SynthSR-style; Iglesias et al. 2021-2023): each training
patch's source is changed as real acquisitions differ from the phantom, while its target stays the
phantom's own, so that the generator learns the contrast mapping rather than the phantom's look.

Each transform takes a standardized (z-scored) patch and a seeded ``numpy`` generator and returns a
new float32 patch of the same shape; :class:`SourceRandomization` applies each with its probability.
The draw is a function of (seed, epoch, patch index) alone, so a resumed run sees the same patches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

__all__ = ["SourceRandomization", "bias_field", "intensity_curve", "lesion", "partial_volume", "resolution",
           "rician_noise"]

# The standardized intensities the transforms work in: air lies near the low end, CSF of a T2 near the top.
_LOW, _HIGH = -1.5, 4.5


def _unit(patch: np.ndarray) -> np.ndarray:
    """The patch on [0, 1] over the standardized range (values outside it are clipped)."""
    return np.clip((patch - _LOW) / (_HIGH - _LOW), 0.0, 1.0)


def _standard(unit: np.ndarray) -> np.ndarray:
    return (unit * (_HIGH - _LOW) + _LOW).astype(np.float32)


def intensity_curve(patch: np.ndarray, rng: np.random.Generator, knots: int = 5,
                    gamma: tuple[float, float] = (0.7, 1.4)) -> np.ndarray:
    """A smooth monotone non-linearity (a random increasing piecewise-linear curve) after a gamma:
    the tissues keep their order but not their spacing, as between scanners and sequences."""
    steps = rng.uniform(0.5, 1.5, knots)
    curve = np.concatenate([[0.0], np.cumsum(steps) / steps.sum()])
    unit = _unit(patch) ** np.exp(rng.uniform(*np.log(gamma)))
    return _standard(np.interp(unit, np.linspace(0.0, 1.0, knots + 1), curve))


def bias_field(patch: np.ndarray, rng: np.random.Generator, strength: float = 0.3) -> np.ndarray:
    """A smooth multiplicative field (the exponential of a random linear-and-quadratic polynomial,
    up to ``strength`` in log units across the patch) on the intensities above air."""
    axes = np.meshgrid(*(np.linspace(-1.0, 1.0, n) for n in patch.shape), indexing="ij")
    log_field = sum(rng.uniform(-1, 1) * axis + 0.5 * rng.uniform(-1, 1) * axis ** 2 for axis in axes)
    log_field *= strength / max(np.abs(log_field).max(), 1e-6)
    unit = _unit(patch)
    return _standard(np.clip(unit * np.exp(log_field), 0.0, 1.0))


def rician_noise(patch: np.ndarray, rng: np.random.Generator, sigma: tuple[float, float] = (0.0, 0.04)) -> np.ndarray:
    """Magnitude noise: Gaussian noise on two channels, then the magnitude, so that air gets its
    Rician floor; ``sigma`` is drawn on the unit intensity scale."""
    level = rng.uniform(*sigma)
    unit = _unit(patch)
    real = unit + rng.normal(0.0, level, patch.shape)
    imaginary = rng.normal(0.0, level, patch.shape)
    return _standard(np.clip(np.hypot(real, imaginary), 0.0, 1.0))


def resolution(patch: np.ndarray, rng: np.random.Generator, thickness: tuple[float, float] = (1.0, 3.0),
               in_plane: tuple[float, float] = (0.0, 0.8)) -> np.ndarray:
    """Thick slices along a random axis (a box average over ``thickness`` voxels, then linear
    interpolation back) and an in-plane Gaussian blur: what a 2D acquisition resampled to 1 mm looks like."""
    axis = int(rng.integers(3))
    step = max(1, round(rng.uniform(*thickness)))
    out = ndimage.uniform_filter1d(patch, size=step, axis=axis, mode="nearest")
    if step > 1:  # keep every step-th slice and interpolate back
        kept = np.take(out, np.arange(0, patch.shape[axis], step), axis=axis)
        zoom = [1.0, 1.0, 1.0]
        zoom[axis] = patch.shape[axis] / kept.shape[axis]
        out = np.take(ndimage.zoom(kept, zoom, order=1, mode="nearest"), np.arange(patch.shape[axis]), axis=axis,
                      mode="clip")
    sigma = [rng.uniform(*in_plane)] * 3
    sigma[axis] = 0.0
    return ndimage.gaussian_filter(out, sigma, mode="nearest").astype(np.float32)


def partial_volume(patch: np.ndarray, rng: np.random.Generator, sigma: tuple[float, float] = (0.0, 0.8)) -> np.ndarray:
    """An isotropic Gaussian blur: tissue boundaries mixed over a voxel, as at lower resolution."""
    return ndimage.gaussian_filter(patch, rng.uniform(*sigma), mode="nearest").astype(np.float32)


def lesion(patch: np.ndarray, rng: np.random.Generator, radius: tuple[float, float] = (2.0, 6.0),
           contrast: tuple[float, float] = (-0.8, 1.2)) -> np.ndarray:
    """A soft ellipsoidal blob of changed intensity (``contrast`` in standardized units) inside the
    head: the lesions of clinical scans, which the phantom does not have."""
    head = patch > _LOW + 0.1 * (_HIGH - _LOW)
    if not head.any():
        return patch.astype(np.float32)
    centre = np.argwhere(head)[rng.integers(int(head.sum()))]
    radii = rng.uniform(*radius, 3)
    grids = np.meshgrid(*(np.arange(n) for n in patch.shape), indexing="ij")
    distance = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii))
    blob = np.exp(-2.0 * distance) * head
    return (patch + rng.uniform(*contrast) * blob).astype(np.float32)


_TRANSFORMS = {"intensity_curve": intensity_curve, "bias_field": bias_field, "resolution": resolution,
               "partial_volume": partial_volume, "lesion": lesion, "rician_noise": rician_noise}


@dataclass(frozen=True)
class SourceRandomization:
    """Which transforms a training source patch gets, each with its probability, in this order
    (contrast, then the field, the resolution and a lesion, noise last, as an acquisition adds it)."""

    intensity_curve: float = 0.8
    bias_field: float = 0.5
    resolution: float = 0.5
    partial_volume: float = 0.3
    lesion: float = 0.1
    rician_noise: float = 0.5

    def __call__(self, patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.asarray(patch, dtype=np.float32)
        for name, transform in _TRANSFORMS.items():
            if rng.random() < getattr(self, name):
                out = transform(out, rng)
        return out

    def record(self) -> dict:
        """The probabilities, as a checkpoint records them."""
        return asdict(self)
