"""Acquisition randomization (SynthSR-style; Iglesias et al. 2021-2023): each training subject is
acquired again as real scanners differ from the phantom, on the volumes and before the preprocessing,
so that it reaches the network through the same pipeline as a user's scan (resampled to 224 x 224 x 96
from its own grid, then standardized with its own statistics).

A T2/PD pair is one acquisition: what the scanner's geometry and coil do (the field of view, the voxel
size and slice thickness, blur, the bias field, 8-bit storage) and a lesion of the anatomy change the
source and the target alike, as they change a user's scan and its ground truth; what differs between
contrasts and sequences (the intensity curve, the noise drawn) changes the source alone, so that the
generator learns the mapping from any such source to the target's contrast.

Each transform takes a :class:`~napari_medsynth.core.files.nifti.Volume` in scanner intensities and a
seeded ``numpy`` generator and returns a new volume over the same field of view (a coarser acquisition
has its own grid and affine; :func:`field_of_view` crops or pads it); :class:`AcquisitionRandomization`
applies each with its probability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import Volume
from napari_medsynth.core.simulation.acquisition import eight_bit

__all__ = ["SHARED", "AcquisitionRandomization", "bias_field", "field_of_view", "intensity_curve", "lesion",
           "partial_volume", "quantization", "resolution", "rician_noise"]


def _top(data: np.ndarray) -> float:
    """The bright end of the intensities (99.9th percentile), the scale the transforms draw on."""
    return float(np.percentile(data, 99.9)) or 1.0


def _zooms(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def _like(volume: Volume, data: np.ndarray, affine=None) -> Volume:
    return Volume(np.asarray(data, dtype=np.float32), volume.affine.copy() if affine is None else affine)


def intensity_curve(volume: Volume, rng: np.random.Generator, knots: int = 5,
                    gamma: tuple[float, float] = (0.7, 1.4)) -> Volume:
    """A gamma, then a random increasing piecewise-linear curve on [0, top]: the tissues keep their
    order but not their spacing, as between scanners and sequences (above ``top``, the last slope)."""
    top = _top(volume.data)
    steps = rng.uniform(0.5, 1.5, knots)
    curve = np.concatenate([[0.0], np.cumsum(steps) / steps.sum()])
    unit = np.maximum(volume.data / top, 0.0) ** np.exp(rng.uniform(*np.log(gamma)))
    inside = np.interp(unit, np.linspace(0.0, 1.0, knots + 1), curve)
    beyond = 1.0 + (unit - 1.0) * steps[-1] / steps.sum() * knots
    return _like(volume, np.where(unit > 1.0, beyond, inside) * top)


def bias_field(volume: Volume, rng: np.random.Generator, strength: tuple[float, float] = (0.1, 0.5)) -> Volume:
    """A smooth multiplicative field over the head: the exponential of a random polynomial of the
    world coordinates (linear, quadratic and cross terms), ``strength`` log units at its extreme."""
    axes = np.meshgrid(*(np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in volume.data.shape), indexing="ij")
    log_field = sum(rng.uniform(-1, 1) * axis + 0.5 * rng.uniform(-1, 1) * axis ** 2 for axis in axes)
    log_field = log_field + 0.5 * sum(rng.uniform(-1, 1) * axes[i] * axes[(i + 1) % 3] for i in range(3))
    log_field *= rng.uniform(*strength) / max(float(np.abs(log_field).max()), 1e-6)
    return _like(volume, volume.data * np.exp(log_field))


def resolution(volume: Volume, rng: np.random.Generator, thickness: tuple[float, float] = (1.5, 6.0),
               in_plane: tuple[float, float] = (1.0, 2.0)) -> Volume:
    """Acquired on a coarser grid over the same field of view: slices ``thickness`` mm thick (a box
    profile) along a random axis (axial, coronal or sagittal acquisitions), ``in_plane`` mm voxels
    across (anti-aliased); the volume keeps that grid and its affine, as a user's file does."""
    zooms = _zooms(volume.affine)
    across = int(rng.integers(3))
    wanted = np.full(3, rng.uniform(*in_plane))
    wanted[across] = rng.uniform(*thickness)
    data, affine = volume.data, volume.affine.copy()
    for axis in range(3):
        factor = wanted[axis] / zooms[axis]
        size = max(2, round(data.shape[axis] / factor))
        if size >= data.shape[axis]:
            continue
        factor = data.shape[axis] / size  # the same field of view, exactly
        if axis == across:  # a slice profile: the box of its thickness
            data = ndimage.uniform_filter1d(data, size=max(1, round(factor)), axis=axis, mode="nearest")
        else:
            sigma = [0.0, 0.0, 0.0]
            sigma[axis] = (factor - 1.0) / 2.0
            data = ndimage.gaussian_filter(data, sigma, mode="nearest")
        zoom = [1.0, 1.0, 1.0]
        zoom[axis] = size / data.shape[axis]
        data = ndimage.zoom(data, zoom, order=1, mode="nearest", grid_mode=True)
        affine[:3, 3] += affine[:3, axis] * (factor - 1.0) / 2.0  # the first voxel's centre
        affine[:3, axis] *= factor
    return _like(volume, data, affine)


def partial_volume(volume: Volume, rng: np.random.Generator, sigma: tuple[float, float] = (0.0, 1.5)) -> Volume:
    """An isotropic Gaussian blur of ``sigma`` voxels: boundaries mixed as in a smooth or averaged image."""
    return _like(volume, ndimage.gaussian_filter(volume.data, rng.uniform(*sigma), mode="nearest"))


def lesion(volume: Volume, rng: np.random.Generator, radius_mm: tuple[float, float] = (3.0, 10.0),
           factor: tuple[float, float] = (0.6, 2.0)) -> Volume:
    """A soft ellipsoidal blob ``factor`` times as bright at its centre, in the middle of the field of
    view (the brain of a centred head): the lesions of clinical scans, which the phantom does not have."""
    centre = rng.uniform(0.35, 0.65, 3) * (np.array(volume.data.shape) - 1)
    radii = rng.uniform(*radius_mm, 3) / _zooms(volume.affine)
    axes = [((np.arange(n, dtype=np.float32) - c) / r) ** 2 for n, c, r in zip(volume.data.shape, centre, radii)]
    blob = np.exp(-2.0 * (axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]))
    return _like(volume, volume.data * (1.0 + (rng.uniform(*factor) - 1.0) * blob))


def field_of_view(volume: Volume, rng: np.random.Generator, change: tuple[float, float] = (-0.1, 0.15)) -> Volume:
    """Another field of view: each side of each axis cropped (down to ``change[0]`` of the axis) or
    padded with air (up to ``change[1]``), as clinical scans cut the air away or take more of the neck."""
    data, affine = volume.data, volume.affine.copy()
    for axis in range(3):
        size = data.shape[axis]
        low, high = (round(rng.uniform(*change) * size) for _ in range(2))
        start, stop = max(0, -low), size - max(0, -high)
        data = np.take(data, np.arange(start, stop), axis=axis)
        widths = [(0, 0)] * 3
        widths[axis] = (max(0, low), max(0, high))
        data = np.pad(data, widths)
        affine[:3, 3] += affine[:3, axis] * (start - max(0, low))
    return _like(volume, data, affine)


def rician_noise(volume: Volume, rng: np.random.Generator, sigma: tuple[float, float] = (0.0, 0.04)) -> Volume:
    """Magnitude noise: Gaussian noise (``sigma`` of the bright end) on two channels, then the
    magnitude, so that air gets its Rician floor."""
    level = rng.uniform(*sigma) * _top(volume.data)
    real = volume.data + rng.normal(0.0, level, volume.data.shape).astype(np.float32)
    imaginary = rng.normal(0.0, level, volume.data.shape).astype(np.float32)
    return _like(volume, np.hypot(real, imaginary))


def quantization(volume: Volume, rng: np.random.Generator) -> Volume:
    """Stored as 8 bits (0..255 over the 99.9th percentile), as many exported and older scans are."""
    return eight_bit(volume)


_TRANSFORMS = {"lesion": lesion, "intensity_curve": intensity_curve, "bias_field": bias_field,
               "field_of_view": field_of_view, "resolution": resolution, "partial_volume": partial_volume,
               "rician_noise": rician_noise, "quantization": quantization}
# what changes the source and the target alike: the anatomy and the acquisition's geometry, coil and storage
SHARED = frozenset({"lesion", "bias_field", "field_of_view", "resolution", "partial_volume", "quantization"})


@dataclass(frozen=True)
class AcquisitionRandomization:
    """Which transforms a training pair gets, each with its probability, in this order (anatomy,
    contrast, the coil's field, the acquisition's field of view, grid and blur, noise, then storage)."""

    lesion: float = 0.1
    intensity_curve: float = 0.8
    bias_field: float = 0.5
    field_of_view: float = 0.3
    resolution: float = 0.5
    partial_volume: float = 0.3
    rician_noise: float = 0.5
    quantization: float = 0.2

    def __call__(self, source: Volume, target: Volume, rng: np.random.Generator) -> tuple[Volume, Volume]:
        """The pair acquired again: the :data:`SHARED` transforms with one draw for both volumes."""
        for name, transform in _TRANSFORMS.items():
            if rng.random() >= getattr(self, name):
                continue
            draw = int(rng.integers(2**63))
            source = transform(source, np.random.default_rng(draw))
            if name in SHARED:
                target = transform(target, np.random.default_rng(draw))
        return source, target

    @classmethod
    def only(cls, names: str | None) -> AcquisitionRandomization:
        """Every transform (``names`` None), or only those named (comma-separated), the others off; a
        name may carry its own probability (``resolution=1.0``), for the strength ablations.

        Raises
        ------
        MedSynthError
            A name that is not one of the transforms, or a probability that is not a number in [0, 1].
        """
        if not names:
            return cls()
        defaults = asdict(cls())
        wanted = {}
        for item in filter(None, (part.strip() for part in names.split(","))):
            name, _, probability = (part.strip() for part in item.partition("="))
            if name not in defaults:
                raise MedSynthError(f"no randomization transform {name!r}; the transforms: {', '.join(_TRANSFORMS)}")
            try:
                value = float(probability) if probability else defaults[name]
            except ValueError:
                value = float("nan")  # fails the range check below
            if not 0.0 <= value <= 1.0:
                raise MedSynthError(f"the probability of {name} must be a number from 0 to 1, not {probability!r}")
            wanted[name] = value
        return cls(**{name: wanted.get(name, 0.0) for name in defaults})

    def record(self) -> dict:
        """The probabilities, as a checkpoint records them."""
        return asdict(self)
