"""A deterministic T2/PD head phantom on an IXI-like grid, built from the MNI ICBM152 template.

Each subject is a simulated dual-echo spin-echo acquisition (one excitation, one TR,
two echo times) of a head whose brain comes from the ICBM 2009a nonlinear symmetric
template (a compact copy in ``napari_medsynth/data``; see ``MNI_ICBM152_NOTICE.txt``
there and ``docs/phantom.md``).

Anatomy
    Grey and white matter are the template's probability maps, sharpened (an
    individual's tissue boundaries are crisper than a 152-subject average's); CSF fills
    the rest of the intracranial volume: the template's brain mask, closed and filled
    so that ventricles and sulci are inside, plus a rim of subarachnoid space. The
    template is brain-masked, so everything outside the brain is modelled: inner
    table, diploe (fatty marrow in trabecular bone), outer table, muscle (galea,
    temporalis, neck muscles), subcutaneous fat and skin are shells at smoothly varying
    distances from the brain; the skull follows the brain, the soft tissues its closed
    hull, and the gap below the skull base (orbits, face) is a fat/muscle mix. Every
    boundary is fuzzy (partial volume, about one voxel).

Signal
    ``S(TE) = gain * coil * bias * sum_t m_t * PD_t * MT_t * (1 - exp(-TR/T1_t)) * exp(-TE/T2_t)``
    over the tissue memberships ``m_t`` (partial volume), with Rician noise drawn
    independently for the two echoes, rounded to whole numbers. ``MT_t`` is the signal
    left by the incidental magnetization transfer of multi-slice turbo spin echo (the
    off-resonance pulses of the other slices saturate macromolecule-bound protons;
    Dixon et al. 1990): strong in muscle, mild in white matter, none in fluid and
    fat. Flowing blood loses signal by through-plane washout, more at the later echo
    (``1 - v TE / (2 slice thickness)``): slow veins show on PD and vanish on T2,
    fast arteries are flow voids on both. ``coil`` is the receive profile of a phased-array head coil, rising
    towards the scalp, and ``bias`` a smooth random field; both multiply both echoes.

====== ==== ======= ======= ==== ===============================================
tissue  PD  T1 (ms) T2 (ms)  MT  source (1.5 T)
====== ==== ======= ======= ==== ===============================================
WM     0.69    884      72  0.90 T1, T2: Stanisz et al. 2005; PD: water content
GM     0.80   1124      95  0.93 T1, T2: Stanisz et al. 2005; PD: water content
CSF    1.00   4000    2000  1.00 rounded literature values (see the Bojorquez
                                 et al. 2017 review; CSF T1 hardly depends on
                                 the field strength)
fat    0.90    343     240  1.00 T1: Gold et al. 2004 (subcutaneous fat). T2 is
                                 an apparent value: fat is bright on turbo spin
                                 echo, its J-coupling being suppressed by the
                                 echo train (Henkelman et al. 1992)
muscle 0.75   1008      44  0.70 Stanisz et al. 2005 (skeletal muscle); also skin
bone   0.10    250     0.5  1.00 cortical bone: sub-millisecond T2, no signal
blood  0.80   1441     290  1.00 Stanisz et al. 2005
====== ==== ======= ======= ==== ===============================================

The PD column is the relative water (proton) content; the MT column is a model value.
Echo settings are IXI-like: TR 5725 ms shared by both echoes, TE 8 ms (PD) and
100 ms (T2) (:data:`IXI_SEQUENCE`); a data set may instead draw each subject's from the
span of clinical protocols (:data:`SEQUENCE_RANGES`).

Per subject (all drawn from ``numpy.random.default_rng(seed)``): head size (about
0.95 of the template, a few percent anisotropic), a rotation of a few degrees and a
shift of a few mm, a smooth random deformation (about 2.5 mm), brain atrophy (wider
sulci and ventricles), the subarachnoid rim and layer thicknesses, tissue parameters
jittered by a few percent, smooth heterogeneity fields modulating PD, T1 and T2 within
every tissue (independent fields: PD changes both echoes alike, T2 mostly the second,
so the T2 -> PD relation is not a lookup table), a myelin/iron-like modulation of
brain PD and T2 by the template's T1-weighted intensity, vessels (tubes along the
common zero set of two random fields, in the CSF spaces near the brain surface) and
their flow speeds, the coil profile, the bias field, the receiver gain, and the noise.

Geometry
    256 x 256 x 130 voxels of 0.9375 x 0.9375 x 1.2 mm by default, axial slices along
    the third voxel axis. Voxel axes run towards the patient's Left, Posterior and
    Superior (LPS: the pixel order of an axial DICOM series); world (RAS, mm)
    ``(0, 0, 0)`` is near the brain centre and the top slice lies a few mm above the
    vertex, so the 156 mm slab reaches down through the cerebellum.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy import special
from scipy.spatial.transform import Rotation

from ..errors import MedSynthError
from ..files.atomic import atomic_output, write_json
from ..files.nifti import Volume, save_volume
from ..files.results import sidecar_path

__all__ = [
    "IXI_SEQUENCE",
    "MIXED_LABEL",
    "SAMPLE_SEED",
    "SEQUENCE_RANGES",
    "TISSUES",
    "TISSUE_PARAMETERS",
    "Phantom",
    "Sequence",
    "field_of_view_zooms",
    "make_phantom",
    "make_phantom_pair",
    "phantom_affine",
    "phantom_subject_seed",
    "sample_pair",
    "sequence_of",
    "write_phantom_dataset",
]

ASSET_PATH = Path(__file__).resolve().parents[2] / "data" / "mni_icbm152_2009a_head.npz"

TISSUES = ("air", "csf", "gm", "wm", "fat", "muscle", "bone", "blood")
"""Tissue names; a label map's value is the index into this tuple."""

MIXED_LABEL = 255
"""Label of voxels where no tissue has a membership of at least 0.9."""

TISSUE_PARAMETERS = {
    "csf": (1.00, 4000.0, 2000.0, 1.00),
    "gm": (0.80, 1124.0, 95.0, 0.93),
    "wm": (0.69, 884.0, 72.0, 0.90),
    "fat": (0.90, 343.0, 240.0, 1.00),
    "muscle": (0.75, 1008.0, 44.0, 0.70),
    "bone": (0.10, 250.0, 0.5, 1.00),
    "blood": (0.80, 1441.0, 290.0, 1.00),
}
"""Per tissue: relative proton density, T1 and T2 (ms) at 1.5 T, and the signal fraction
left by incidental magnetization transfer (see the module table)."""


@dataclass(frozen=True)
class Sequence:
    """A dual-echo spin echo's timing, ms: one repetition time, the PD echo's and the T2 echo's."""

    tr_ms: float = 5725.0
    te_pd_ms: float = 8.0
    te_t2_ms: float = 100.0

    def sidecars(self) -> tuple[dict, dict]:
        """The T2 and PD images' BIDS sidecar fields (seconds)."""
        return tuple({"RepetitionTime": self.tr_ms / 1000, "EchoTime": te / 1000}
                     for te in (self.te_t2_ms, self.te_pd_ms))


IXI_SEQUENCE = Sequence()
"""IXI's dual-echo timing (TR 5725 ms, TE 8 and 100 ms), the default of every phantom."""

_SEQUENCE_STREAM = 2026  # a subject's timing is drawn from (its seed, this), apart from its anatomy
SEQUENCE_RANGES = {"tr_ms": (2500.0, 6000.0), "te_pd_ms": (8.0, 30.0), "te_t2_ms": (80.0, 120.0)}
"""The span of clinical PD/T2 spin-echo protocols (1.5 and 3 T), from which ``--varied-sequences`` draws."""


def sequence_of(subject_seed: int) -> Sequence:
    """The timing a data set with varied sequences gives the subject of ``subject_seed``: uniform in
    :data:`SEQUENCE_RANGES`, drawn apart from the subject's anatomy."""
    rng = np.random.default_rng([int(subject_seed), _SEQUENCE_STREAM])
    return Sequence(*(float(rng.uniform(*SEQUENCE_RANGES[name])) for name in ("tr_ms", "te_pd_ms", "te_t2_ms")))


DEFAULT_SHAPE = (256, 256, 130)
DEFAULT_ZOOMS = (0.9375, 0.9375, 1.2)

# Geometry.
_BRAIN_CENTRE_MNI = np.array([0.0, -16.0, 12.0])  # MNI point placed at world (0, 0, 0)
_TOP_SLICE_MM = 90.0  # world z of the top slice; the average vertex is at ~81 mm
_DEFORMATION_MM = 2.5
# Template-derived maps.
_EXTEND_BELOW_MM = 40  # the template stops below the medulla: repeat its last slice
_DISTANCE_STEP_MM = 2.0  # grid of the distance maps
_DISTANCE_PAD_MM = 60.0
_DISTANCE_SMOOTH_MM = 2.0
_HULL_CLOSING_MM = 16.0
_AIR_MM = 100.0  # distance taken beyond the distance maps
# Tissues and layers.
_SHARPEN = 2.0  # power applied to the template's GM/WM/CSF shares
_EDGE_MM = 0.8  # width of every layer boundary (partial volume)
_LAYERS_MM = {"table": 1.8, "diploe": 2.0, "galea": 0.5, "skin": 1.0}
_TEMPORALIS_TOP_MNI = 15.0  # MNI z above which the temporalis thins out
_DIPLOE_FAT = 0.7  # fatty-marrow share of the diploe, the rest trabecular bone
_HETEROGENEITY = (0.03, 0.04, 0.05)  # relative std of PD, T1 and T2 within a tissue
_VESSEL_RADIUS = 0.12  # in units of the vessel fields' std: tubes about 1 mm wide
_PURE = 0.9
# Acquisition.
_GAIN = 1000.0
_COIL_RADII_MM = (80.0, 100.0)  # left-right and anterior-posterior semi-axes of the ring
_NOISE_SIGMA = 12.0
_SLAB = 24  # slices simulated at a time (bounds the memory)


@dataclass(frozen=True)
class Phantom:
    """One simulated subject.

    Attributes
    ----------
    t2, pd : Volume
        The two echoes, float32, on one grid (``path`` and ``header`` are None).
    labels : np.ndarray
        uint8 map on that grid: the index into :data:`TISSUES` of the tissue whose
        membership is at least 0.9, :data:`MIXED_LABEL` elsewhere.
    """

    t2: Volume
    pd: Volume
    labels: np.ndarray


@dataclass(frozen=True)
class _Anatomy:
    """The template, loaded once, and the distance maps derived from its brain mask."""

    gm: np.ndarray  # uint8, probability * 255, on the template's 1 mm grid
    wm: np.ndarray  # uint8
    t1: np.ndarray  # uint8, T1-weighted intensity
    mni_origin: np.ndarray  # MNI mm of voxel (0, 0, 0) of the three maps
    distance: np.ndarray  # float32 signed distance (mm) to the brain mask, + outside
    hull_distance: np.ndarray  # float32 signed distance (mm) to the closed brain mask
    distance_origin: np.ndarray  # MNI mm of voxel (0, 0, 0) of both distance maps
    notch_top: float  # MNI z (mm) above which the two distance maps agree


@lru_cache(maxsize=1)
def _anatomy() -> _Anatomy:
    """Load the compact template and derive the distances to its brain mask and hull."""
    if not ASSET_PATH.is_file():
        raise MedSynthError(f"{ASSET_PATH}: the MNI template copy is missing; reinstall")
    with np.load(ASSET_PATH) as asset:
        gm, wm, t1, affine = (asset[key] for key in ("gm", "wm", "t1", "affine"))
    brain = (t1 > 0) | (gm.astype(np.uint16) + wm > 127)
    brain = ndi.binary_fill_holes(ndi.binary_closing(brain, iterations=2))
    below = _EXTEND_BELOW_MM
    gm, wm, t1 = (np.pad(m, ((0, 0), (0, 0), (below, 0)), mode="edge") for m in (gm, wm, t1))
    mni_origin = affine[:3, 3] - [0.0, 0.0, below]

    step = int(_DISTANCE_STEP_MM)
    pad = int(_DISTANCE_PAD_MM / step)
    coarse = _mean_pool(brain.astype(np.float32), step) > 0.5
    coarse = np.pad(coarse, ((pad, pad), (pad, pad), (0, pad)))
    coarse = np.pad(coarse, ((0, 0), (0, 0), (pad, 0)), mode="edge")
    distance = _signed_distance(coarse)
    # Close the mask with a large ball (dilate, then erode, by distance thresholds).
    closing = _HULL_CLOSING_MM / _DISTANCE_STEP_MM
    hull = _inside_distance(distance < _HULL_CLOSING_MM) > closing
    hull_distance = _signed_distance(hull | coarse)
    distance_origin = affine[:3, 3] + (step - 1) / 2.0 - pad * step
    notch = (hull_distance < distance - 0.5) & (hull_distance < 0.0)
    rows = np.nonzero(notch.any(axis=(0, 1)))[0]
    notch_top = distance_origin[2] + _DISTANCE_STEP_MM * (rows.max() + 1 if rows.size else 0)
    return _Anatomy(
        gm, wm, t1, mni_origin, distance, hull_distance, distance_origin, float(notch_top)
    )


def _mean_pool(array: np.ndarray, step: int) -> np.ndarray:
    shape = [-(-n // step) * step for n in array.shape]
    padded = np.zeros(shape, array.dtype)
    padded[tuple(slice(0, n) for n in array.shape)] = array
    a, b, c = (n // step for n in shape)
    return padded.reshape(a, step, b, step, c, step).mean(axis=(1, 3, 5))


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Smoothed signed distance (mm, positive outside) to a distance-grid mask's surface."""
    outside = ndi.distance_transform_edt(~mask) - 0.5
    inside = _inside_distance(mask) - 0.5
    distance = np.where(mask, -inside, outside) * _DISTANCE_STEP_MM
    smooth = _DISTANCE_SMOOTH_MM / _DISTANCE_STEP_MM
    return ndi.gaussian_filter(distance, smooth).astype(np.float32)


def _inside_distance(mask: np.ndarray) -> np.ndarray:
    """Distance (voxels) from each True voxel to the nearest False one; 0 elsewhere.

    Computed on the mask's bounding box with a one-voxel margin, which is exact and
    much smaller than the padded grid.
    """
    box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in _bounding_box(mask))
    inside = np.zeros(mask.shape)
    inside[box] = ndi.distance_transform_edt(mask[box])
    return inside


def phantom_affine(shape=DEFAULT_SHAPE, zooms=DEFAULT_ZOOMS) -> np.ndarray:
    """The voxel-to-world (RAS mm) matrix of the phantom grid: LPS voxel axes.

    The grid's in-plane centre is at world x = y = 0 and its top slice at world
    z = 90 mm, a few mm above the vertex of an average phantom head.
    """
    nx, ny, nz = shape
    dx, dy, dz = zooms
    affine = np.diag([-dx, -dy, dz, 1.0])
    affine[:3, 3] = [dx * (nx - 1) / 2, dy * (ny - 1) / 2, _TOP_SLICE_MM - dz * (nz - 1)]
    return affine


def field_of_view_zooms(shape) -> tuple[float, float, float]:
    """The voxel sizes (mm) that give a grid of ``shape`` the default field of view (240 x 240 x 156 mm)."""
    shape, _ = _check_grid(shape, DEFAULT_ZOOMS)
    return tuple(n * z / m for n, z, m in zip(DEFAULT_SHAPE, DEFAULT_ZOOMS, shape))


def phantom_subject_seed(seed: int, index: int) -> int:
    """The phantom seed of subject ``index`` of the data set drawn with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def make_phantom_pair(
    seed: int = 0, shape=DEFAULT_SHAPE, zooms=DEFAULT_ZOOMS
) -> tuple[Volume, Volume]:
    """Simulate one subject's T2 and PD volumes.

    Parameters
    ----------
    seed : int
        Non-negative subject seed: the same seed gives bit-identical arrays.
    shape : tuple of int
        Grid size; axial slices along the third axis.
    zooms : tuple of float
        Voxel sizes in mm.

    Returns
    -------
    t2, pd : Volume
        float32 volumes sharing one affine, with ``path`` and ``header`` None.

    Raises
    ------
    MedSynthError
        A negative seed, or a grid that is not three positive sizes and voxel sizes.
    """
    t2, pd = _last_pair(seed, tuple(int(n) for n in shape), tuple(float(z) for z in zooms))
    return Volume(t2.data.copy(), t2.affine.copy()), Volume(pd.data.copy(), pd.affine.copy())


@lru_cache(maxsize=1)
def _last_pair(seed, shape, zooms) -> tuple[Volume, Volume]:
    """The last subject simulated (the sample data, the demo and its tests ask for seed 0 again and
    again; a simulation takes seconds); callers get copies."""
    phantom = make_phantom(seed, shape, zooms)
    return phantom.t2, phantom.pd


SAMPLE_SEED = 0  # the napari sample and the demo: held out from every bundled generator's training
_SAMPLE_LOCK = threading.Lock()


def sample_pair() -> tuple[Volume, Volume]:
    """The sample subject (seed 0, IXI's grid) as :func:`make_phantom_pair` simulates it, from the
    user's cache folder (``$MEDSYNTH_CACHE``, else the platform's cache folder for napari-medsynth):
    simulated (seconds) and cached there (34 MB), atomically, the first time; read back in a quarter
    of a second after that. The cache key holds this module's and the template's fingerprint, so a
    changed simulation is never read from an old file. One caller simulates while the others wait."""
    with _SAMPLE_LOCK:
        path = _sample_cache_path()
        if path is not None and path.is_file():
            try:
                with np.load(path) as cached:
                    t2, pd, affine = (cached[key] for key in ("t2", "pd", "affine"))
                return Volume(t2.astype(np.float32), affine), Volume(pd.astype(np.float32), affine.copy())
            except (OSError, ValueError, KeyError, EOFError):
                pass  # a damaged cache file is simulated and written anew
        t2, pd = make_phantom_pair(SAMPLE_SEED)
        if path is not None:
            # (a cache that cannot be written costs time only)
            with contextlib.suppress(MedSynthError, OSError), atomic_output(path, ".npz") as tmp_name, \
                    open(tmp_name, "wb") as handle:
                # uncompressed: 34 MB written in 0.05 s (compressed, 18 MB took 4 s the first time)
                np.savez(handle, t2=t2.data.astype(np.int16), pd=pd.data.astype(np.int16), affine=t2.affine)
        return t2, pd


def _sample_cache_path() -> Path | None:
    """Where :func:`sample_pair` keeps the sample, or None when there is no cache folder."""
    folder = os.environ.get("MEDSYNTH_CACHE")
    if not folder:
        try:
            from platformdirs import user_cache_path
        except ImportError:
            return None
        folder = user_cache_path("napari-medsynth")
    fingerprint = hashlib.sha1(Path(__file__).read_bytes())
    fingerprint.update(str(ASSET_PATH.stat().st_size if ASSET_PATH.is_file() else 0).encode())
    shape = "x".join(map(str, DEFAULT_SHAPE))
    return Path(folder) / f"phantom-seed{SAMPLE_SEED}-{shape}-{fingerprint.hexdigest()[:12]}.npz"


def make_phantom(seed: int = 0, shape=DEFAULT_SHAPE, zooms=DEFAULT_ZOOMS,
                 sequence: Sequence = IXI_SEQUENCE) -> Phantom:
    """Simulate one subject: both echoes and its tissue label map.

    Parameters and errors are those of :func:`make_phantom_pair`; ``sequence`` replaces IXI's timing:
    at TR 500 ms the first echo (TE 8 ms) is a T1-weighted spin echo (CSF dark, fat bright). The
    subject's anatomy is the same whatever the timing.
    """
    if int(seed) < 0:
        raise MedSynthError(f"phantom seed must be non-negative, got {seed}")
    shape, zooms = _check_grid(shape, zooms)
    rng = np.random.default_rng(int(seed))
    signal_pd, signal_t2, labels = _Subject(rng, shape, zooms, sequence).simulate()
    affine = phantom_affine(shape, zooms)
    t2 = Volume(data=_rician(signal_t2, rng), affine=affine)
    pd = Volume(data=_rician(signal_pd, rng), affine=affine.copy())
    return Phantom(t2=t2, pd=pd, labels=labels)


def write_phantom_dataset(
    out_dir: str | os.PathLike,
    subjects: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    shape=DEFAULT_SHAPE,
    bids: bool = False,
    varied_sequences: bool = False,
) -> list[tuple[Path, Path]]:
    """Write ``subjects`` phantom T2/PD pairs with IXI names (or as a BIDS dataset) into ``out_dir``.

    Subject ``i`` (from 0) is ``IXI{i+1:03d}-Phantom-{k:04d}-T2.nii.gz`` and
    ``...-PD.nii.gz`` with hospital number ``k = (1000 * seed + i + 1) % 10000``
    (with ``bids``: ``sub-{i+1:03d}/anat/sub-{i+1:03d}_T2w.nii.gz`` and ``..._PDw.nii.gz``, and a
    ``dataset_description.json``), simulated from ``phantom_subject_seed(seed, i)``: the same
    whatever ``subjects`` is.

    Parameters
    ----------
    out_dir : path-like
        Folder to write into (created if needed).
    subjects : int
        Number of subjects, 1 to 999 (IXI numbers have three digits).
    seed : int
        Non-negative data-set seed.
    progress : callable, optional
        Called as ``progress(done, total)`` after each subject.
    shape : tuple of int
        Grid size; the voxels grow or shrink to keep the default field of view
        (:func:`field_of_view_zooms`).
    bids : bool
        BIDS names instead of IXI's.
    varied_sequences : bool
        Each subject acquired with its own timing, drawn from :data:`SEQUENCE_RANGES` (from the
        subject's seed), and written beside each image as a BIDS sidecar (``.json``: RepetitionTime,
        EchoTime); otherwise IXI's, with no sidecar.

    Returns
    -------
    list of (Path, Path)
        The (T2, PD) files in subject order.

    Raises
    ------
    MedSynthError
        ``subjects`` outside 1..999, a negative seed, or an unwritable folder.
    """
    subjects = int(subjects)
    if not 1 <= subjects <= 999:
        raise MedSynthError(f"phantom subjects must be between 1 and 999, got {subjects}")
    if int(seed) < 0:
        raise MedSynthError(f"phantom seed must be non-negative, got {seed}")
    out_dir = Path(out_dir)
    written = []
    for index in range(subjects):
        subject_seed = phantom_subject_seed(seed, index)
        if varied_sequences:
            sequence = sequence_of(subject_seed)
            simulated = make_phantom(subject_seed, shape, field_of_view_zooms(shape), sequence)
            t2, pd = simulated.t2, simulated.pd
        else:
            t2, pd = make_phantom_pair(subject_seed, shape, field_of_view_zooms(shape))
        number = index + 1
        if bids:
            names = [out_dir / f"sub-{number:03d}" / "anat" / f"sub-{number:03d}_{suffix}.nii.gz"
                     for suffix in ("T2w", "PDw")]
        else:
            stem = f"IXI{number:03d}-Phantom-{(1000 * int(seed) + number) % 10000:04d}"
            names = [out_dir / f"{stem}-{contrast}.nii.gz" for contrast in ("T2", "PD")]
        # int16 like IXI's own files: the data are whole numbers, so nothing is lost.
        t2_path = save_volume(names[0], t2.data, t2, dtype=np.int16)
        pd_path = save_volume(names[1], pd.data, pd, dtype=np.int16)
        if varied_sequences:
            for path, fields in zip((t2_path, pd_path), sequence.sidecars()):
                write_json(sidecar_path(path), fields)
        written.append((t2_path, pd_path))
        if progress is not None:
            progress(number, subjects)
    if bids:
        write_json(out_dir / "dataset_description.json",
                   {"Name": "napari-medsynth brain phantom", "BIDSVersion": "1.10.0", "DatasetType": "raw"})
    return written


def _check_grid(shape, zooms) -> tuple[tuple[int, ...], tuple[float, ...]]:
    shape = tuple(int(n) for n in shape)
    zooms = tuple(float(z) for z in zooms)
    if len(shape) != 3 or min(shape) < 1:
        raise MedSynthError(f"phantom shape must be three positive sizes, got {shape}")
    if len(zooms) != 3 or not all(z > 0 for z in zooms):
        raise MedSynthError(f"phantom voxel sizes must be three positive numbers, got {zooms}")
    return shape, zooms


def _rician(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The magnitude of ``signal`` plus complex Gaussian noise, in whole numbers.

    Scanners store integers; whole numbers also make the files compress 2.5 times
    better than noisy float mantissas.
    """
    real = rng.standard_normal(signal.shape, dtype=np.float32)
    real *= np.float32(_NOISE_SIGMA)
    real += signal
    imaginary = rng.standard_normal(signal.shape, dtype=np.float32)
    imaginary *= np.float32(_NOISE_SIGMA)
    magnitude = np.hypot(real, imaginary, out=real)
    return np.rint(magnitude, out=magnitude)


class _Fields:
    """Smooth random fields on the phantom grid: Gaussian bumps on a lattice.

    A field is a tensor product of per-axis bases with standard-normal coefficients,
    normalised to unit variance, so that it can be evaluated on any box of the grid
    with three small matrix products.
    """

    def __init__(self, rng: np.random.Generator, shape, zooms):
        self._rng = rng
        self._extent = [n * z for n, z in zip(shape, zooms)]
        self._zooms = zooms

    def draw(self, spacing_mm: float) -> np.ndarray:
        """Coefficients of a new field with correlation length about ``spacing_mm``."""
        counts = [int(np.ceil(extent / spacing_mm)) + 3 for extent in self._extent]
        return self._rng.standard_normal(counts, dtype=np.float32)

    def evaluate(self, coefficients: np.ndarray, box) -> np.ndarray:
        """The field of ``coefficients`` on ``box`` (index slices, any step)."""
        bx, by, bz = (self._basis(axis, n, box[axis]) for axis, n in enumerate(coefficients.shape))
        # einsum's own loops, not BLAS: a multithreaded BLAS rounds differently with each thread
        # count, and the phantom must not depend on it
        partial = np.einsum("jb,abk->ajk", by, np.einsum("abc,kc->abk", coefficients, bz))
        return np.einsum("ia,ajk->ijk", bx, partial)

    def _basis(self, axis: int, count: int, index: slice) -> np.ndarray:
        spacing = self._extent[axis] / (count - 3)
        centres = (np.arange(count) - 1.0) * spacing
        positions = np.arange(index.stop)[index] * self._zooms[axis]
        basis = np.exp(-0.5 * ((positions[:, None] - centres[None, :]) / (0.6 * spacing)) ** 2)
        return (basis / np.sqrt((basis**2).sum(axis=1, keepdims=True))).astype(np.float32)


class _Subject:
    """One subject's random parameters (drawn in a fixed order) and its simulation."""

    def __init__(self, rng: np.random.Generator, shape, zooms, sequence: Sequence):
        self.shape, self.zooms, self.sequence = shape, zooms, sequence
        self.fields = _Fields(rng, shape, zooms)
        # Position and size: world (subject, mm) -> template (MNI, mm).
        scale = 0.95 * np.exp(rng.normal(0.0, 0.03) + rng.normal(0.0, 0.015, 3))
        angles = np.deg2rad(rng.normal(0.0, [3.0, 2.0, 2.0]))
        shift = rng.normal(0.0, [2.0, 3.0, 2.0])
        self.world_to_mni = np.eye(4)
        rotation = Rotation.from_euler("xyz", angles).as_matrix()  # about x, then y, then z
        self.world_to_mni[:3, :3] = rotation / scale[:, None]
        self.world_to_mni[:3, 3] = _BRAIN_CENTRE_MNI - self.world_to_mni[:3, :3] @ shift
        self.head_centre_mm = shift
        self.mean_scale = np.float32(np.prod(scale) ** (1 / 3))
        self.deformation = [self.fields.draw(32.0) for _ in range(3)]
        # Anatomy.
        self.atrophy = rng.uniform(0.0, 0.25)
        self.rim_mm = rng.uniform(1.0, 2.5)
        self.temporalis_mm = rng.uniform(4.0, 8.0)
        self.fat_mm = rng.uniform(3.0, 6.0)
        self.thickness = [self.fields.draw(40.0) for _ in range(3)]  # skull, muscle, fat
        self.deep_tissue = self.fields.draw(15.0)  # fat/muscle mix below the skull base
        # Tissue properties: per-subject jitter, then smooth heterogeneity.
        self.parameters = {
            name: (
                pd * mt * np.exp(rng.normal(0.0, 0.02)),
                t1 * np.exp(rng.normal(0.0, 0.03)),
                t2 * np.exp(rng.normal(0.0, 0.03)),
            )
            for name, (pd, t1, t2, mt) in TISSUE_PARAMETERS.items()
        }
        self.heterogeneity = [self.fields.draw(12.0) for _ in range(3)]  # PD, T1, T2
        self.myelin_gain = rng.uniform(0.8, 1.2)
        # Vessels: the common zero set of two fields is a set of curves; a third field
        # thins them out, a fourth sets the flow speed.
        self.vessel_axes = [self.fields.draw(7.0) for _ in range(2)]
        self.vessel_gate = self.fields.draw(20.0)
        self.vessel_speed = self.fields.draw(15.0)
        # Acquisition.
        self.coil_gain = rng.uniform(0.25, 0.75)
        self.coil_depth_mm = rng.uniform(10.0, 20.0)
        self.coil_tilt = rng.uniform(0.0, 0.15)
        self.bias = self.fields.draw(90.0)
        self.bias_amplitude = rng.uniform(0.05, 0.15)
        self.gain = _GAIN * np.exp(rng.normal(0.0, 0.05))

    def simulate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noise-free PD and T2 signals on the whole grid, and the label map."""
        anatomy = _anatomy()
        signal_pd = np.zeros(self.shape, np.float32)
        signal_t2 = np.zeros(self.shape, np.float32)
        labels = np.zeros(self.shape, np.uint8)
        for box in self._head_boxes(anatomy):
            signal_pd[box], signal_t2[box], labels[box] = self._simulate_box(anatomy, box)
        return signal_pd, signal_t2, labels

    def _head_boxes(self, anatomy: _Anatomy) -> list[tuple[slice, slice, slice]]:
        """Boxes of at most ``_SLAB`` slices holding the head, found on a coarse grid."""
        step = 4
        coarse = tuple(slice(0, n, step) for n in self.shape)
        mni = self._mni_coordinates(coarse)
        boundaries = self._layer_boundaries(mni, coarse)
        distance, hull_distance = (
            _sample(volume, mni, anatomy.distance_origin, _DISTANCE_STEP_MM, _AIR_MM)
            for volume in (anatomy.distance, anatomy.hull_distance)
        )
        soft = np.minimum(distance, hull_distance + boundaries[3] / self.mean_scale)
        head = soft * self.mean_scale < boundaries[-1] + _EDGE_MM
        boxes = []
        for start in range(0, self.shape[2], _SLAB):
            stop = min(start + _SLAB, self.shape[2])
            rows = head[:, :, max(start // step - 1, 0) : stop // step + 2]
            inside = np.argwhere(rows.any(axis=2))
            if inside.size:
                low = np.maximum((inside.min(axis=0) - 1) * step, 0)
                high = np.minimum((inside.max(axis=0) + 2) * step, self.shape[:2])
                boxes.append((slice(low[0], high[0]), slice(low[1], high[1]), slice(start, stop)))
        return boxes

    def _simulate_box(self, anatomy: _Anatomy, box) -> tuple[np.ndarray, ...]:
        """PD and T2 signals and labels on ``box``; brain tissues only on its brain part."""
        mni = self._mni_coordinates(box)
        distance = _sample(
            anatomy.distance, mni, anatomy.distance_origin, _DISTANCE_STEP_MM, _AIR_MM
        )
        distance *= self.mean_scale
        boundaries = self._layer_boundaries(mni, box)
        # The skull follows the brain; muscle, fat and skin follow its closed hull.
        ramps = [_ramp(distance, boundary) for boundary in boundaries[:4]]
        soft = distance
        if mni[2].min() < anatomy.notch_top:
            soft = _sample(
                anatomy.hull_distance, mni, anatomy.distance_origin, _DISTANCE_STEP_MM, _AIR_MM
            )
            soft *= self.mean_scale
            soft += boundaries[3]
            np.minimum(soft, distance, out=soft)
        ramps += [_ramp(soft, boundary) for boundary in boundaries[3:]]
        del boundaries, soft

        intracranial = 1.0 - ramps[0]
        inner = _bounding_box(intracranial > 0.0)
        inner_box = tuple(
            slice(outer.start + part.start, outer.start + part.stop)
            for outer, part in zip(box, inner)
        )
        brain, myelin = self._brain(
            anatomy, mni[(slice(None), *inner)], intracranial[inner], distance[inner], inner_box
        )
        del mni, distance, intracranial
        layers = self._layers(ramps, box)
        return self._mix(brain, myelin, layers, box, inner)

    def _mni_coordinates(self, box) -> np.ndarray:
        """MNI mm ``(3, nx, ny, nz)`` of the voxels of ``box``."""
        axes = [np.arange(n, dtype=np.float32)[index] for n, index in zip(self.shape, box)]
        voxel_to_mni = (self.world_to_mni @ phantom_affine(self.shape, self.zooms)).astype(
            np.float32
        )
        coordinates = np.empty((3, *(len(a) for a in axes)), np.float32)
        for row, (a, b, c, offset) in enumerate(voxel_to_mni[:3]):
            coordinates[row] = self.fields.evaluate(self.deformation[row], box)
            coordinates[row] *= np.float32(_DEFORMATION_MM)
            coordinates[row] += (
                a * axes[0][:, None, None] + b * axes[1][None, :, None] + (c * axes[2] + offset)
            )
        return coordinates

    def _layer_boundaries(self, mni: np.ndarray, box) -> list[np.ndarray]:
        """Outer surfaces (mm from the brain mask) of the CSF rim, inner table, diploe,
        outer table, muscle, fat and skin; thick temporalis laterally below the
        temporal lines, thick neck muscles low and posterior."""
        x, y, z = mni
        lateral = np.abs(x) / np.hypot(x, 0.8 * (y + 20.0))
        temporal = _window(z, -45.0, _TEMPORALIS_TOP_MNI, 20.0) * _window(y, -70.0, 30.0, 16.0)
        temporal *= np.clip((lateral - 0.55) / 0.3, 0.0, 1.0)
        neck = np.clip((-20.0 - z) / 25.0, 0.0, 1.0) * np.clip((-30.0 - y) / 30.0, 0.0, 1.0)
        skull_factor, muscle_factor, fat_factor = (
            1.0 + 0.3 * self.fields.evaluate(c, box) for c in self.thickness
        )
        rim = np.maximum(self.rim_mm * skull_factor, 0.2)
        inner_table = rim + _LAYERS_MM["table"]
        diploe_mm = _LAYERS_MM["diploe"] * skull_factor * (1.0 - 0.7 * temporal)
        diploe = inner_table + np.maximum(diploe_mm, 0.3)
        outer_table = diploe + _LAYERS_MM["table"]
        muscle_mm = _LAYERS_MM["galea"] + self.temporalis_mm * temporal + 15.0 * neck
        muscle = outer_table + muscle_mm * np.maximum(muscle_factor, 0.3)
        fat = muscle + np.maximum(self.fat_mm * fat_factor + 5.0 * neck, 1.0)
        skin = fat + _LAYERS_MM["skin"]
        return [rim, inner_table, diploe, outer_table, muscle, fat, skin]

    def _brain(self, anatomy: _Anatomy, mni, intracranial, distance, box):
        """GM, WM, CSF and blood memberships inside the skull, and the myelin index."""
        gm = _sample(anatomy.gm, mni, anatomy.mni_origin, 1.0, scale=1 / 255)
        wm = _sample(anatomy.wm, mni, anatomy.mni_origin, 1.0, scale=1 / 255)
        # Atrophy: tissue recedes where it already shares voxels with CSF.
        tissue = gm + wm
        shrunk = np.clip((tissue - self.atrophy) / (1.0 - self.atrophy), 0.0, None)
        np.minimum(shrunk, intracranial, out=shrunk)
        factor = np.divide(shrunk, tissue, out=np.zeros_like(tissue), where=tissue > 1e-3)
        gm *= factor
        wm *= factor
        csf = intracranial - gm - wm
        np.maximum(csf, 0.0, out=csf)
        # Sharpen the population-average shares into an individual's crisper ones.
        shares = [np.power(m, np.float32(_SHARPEN)) for m in (gm, wm, csf)]
        total = shares[0] + shares[1] + shares[2] + np.float32(1e-6)
        np.divide(intracranial, total, out=total)
        gm, wm, csf = (share * total for share in shares)
        del shares, total
        blood = self._vessels(csf, distance, box)
        csf -= blood
        # Where the template's T1-weighted image is brighter than its tissue mix
        # predicts (more myelin or iron), brain PD and T2 are lower; dimmer, higher.
        myelin = _sample(anatomy.t1, mni, anatomy.mni_origin, 1.0, scale=1 / 255)
        myelin -= 0.64 * gm + 0.87 * wm + 0.26 * csf
        np.clip(myelin, -0.1, 0.1, out=myelin)
        myelin *= np.clip(2.0 * (gm + wm) - 1.0, 0.0, 1.0)
        myelin *= np.float32(self.myelin_gain)
        return {"csf": csf, "gm": gm, "wm": wm, "blood": blood}, myelin

    def _vessels(self, csf: np.ndarray, distance: np.ndarray, box) -> np.ndarray:
        """Blood membership: tubes in the CSF within ~20 mm of the brain surface."""
        first, second = (self.fields.evaluate(c, box) for c in self.vessel_axes)
        first *= first
        second *= second
        first += second
        first *= np.float32(-0.5 / _VESSEL_RADIUS**2)
        tube = np.exp(first, out=first)
        tube *= np.clip(self.fields.evaluate(self.vessel_gate, box) + 0.3, 0.0, 1.0)
        tube *= np.clip((distance + 20.0) / 5.0, 0.0, 1.0)
        np.minimum(tube, 1.0, out=tube)
        tube *= csf
        return tube

    def _layers(self, ramps: list[np.ndarray], box) -> dict[str, np.ndarray]:
        """Air, fat, muscle and bone memberships from the layer ramps."""
        # ramps: intracranial | inner table | diploe | outer table | deep soft tissue
        # (below the skull base) | muscle | fat | skin | air
        inner_table, diploe, outer_table, deep, muscle, fat, skin = (
            ramps[i] - ramps[i + 1] for i in range(7)
        )
        fat += _DIPLOE_FAT * diploe
        if deep.any():
            deep_fat = np.clip(0.5 + 0.5 * self.fields.evaluate(self.deep_tissue, box), 0.0, 1.0)
            deep_fat *= deep
            fat += deep_fat
            deep -= deep_fat
            muscle += deep
        muscle += skin
        bone = inner_table
        bone += (1.0 - _DIPLOE_FAT) * diploe
        bone += outer_table
        return {"air": ramps[7], "fat": fat, "muscle": muscle, "bone": bone}

    def _mix(self, brain, myelin, layers, box, inner):
        """Sum the tissue signals of both echoes; label the pure voxels."""
        tr, te_pd, te_t2 = self.sequence.tr_ms, self.sequence.te_pd_ms, self.sequence.te_t2_ms
        density, rate_1, rate_2 = (
            1.0 + amplitude * self.fields.evaluate(c, box)
            for amplitude, c in zip(_HETEROGENEITY, self.heterogeneity)
        )
        np.reciprocal(rate_1, out=rate_1)  # 1 / relative T1
        np.reciprocal(rate_2, out=rate_2)
        brain_density = density[inner] * (1.0 - 0.3 * myelin)
        brain_rate_2 = rate_2[inner] / (1.0 - myelin)
        inner_box = tuple(slice(o.start + i.start, o.start + i.stop) for o, i in zip(box, inner))
        speed = 0.03 * np.exp(3.0 * _normal_cdf(self.fields.evaluate(self.vessel_speed, inner_box)))
        washout_mm = 2.0 * self.zooms[2]  # speed in mm/ms: 0.03 (veins) to 0.6 (arteries)

        signal_pd = np.zeros(density.shape, np.float32)
        signal_t2 = np.zeros(density.shape, np.float32)
        best = np.zeros(density.shape, np.float32)
        labels = np.zeros(density.shape, np.uint8)
        everywhere = (slice(None),) * 3
        for code, name in enumerate(TISSUES):
            region = inner if name in brain else everywhere
            membership = brain[name] if name in brain else layers[name]
            np.maximum(best[region], membership, out=best[region])
            labels[region][membership >= _PURE] = code
            if name == "air":
                continue
            pd, t1, t2 = self.parameters[name]
            if t2 * 10.0 < te_pd:  # cortical bone: no spin-echo signal
                continue
            white_or_grey = name in ("gm", "wm")
            weight = np.exp(np.float32(-tr / t1) * rate_1[region])
            np.subtract(1.0, weight, out=weight)
            weight *= brain_density if white_or_grey else density[region]
            weight *= membership * np.float32(pd)
            rate = brain_rate_2 if white_or_grey else rate_2[region]
            for te, signal in ((te_pd, signal_pd), (te_t2, signal_t2)):
                echo = np.exp(np.float32(-te / t2) * rate)
                echo *= weight
                if name == "blood":
                    echo *= np.clip(1.0 - speed * (te / washout_mm), 0.0, 1.0)
                signal[region] += echo
        labels[best < _PURE] = MIXED_LABEL
        scale = np.exp(np.float32(self.bias_amplitude) * self.fields.evaluate(self.bias, box))
        scale *= self._coil_sensitivity(box)
        scale *= np.float32(self.gain)
        signal_pd *= scale
        signal_t2 *= scale
        return signal_pd, signal_t2, labels

    def _coil_sensitivity(self, box) -> np.ndarray:
        """Receive profile of a phased-array head coil: rising towards the scalp."""
        affine = phantom_affine(self.shape, self.zooms)
        i, j = (np.arange(n, dtype=np.float32)[index] for n, index in zip(self.shape, box[:2]))
        x = (affine[0, 0] * i + affine[0, 3] - self.head_centre_mm[0]) / _COIL_RADII_MM[0]
        y = (affine[1, 1] * j + affine[1, 3] - self.head_centre_mm[1]) / _COIL_RADII_MM[1]
        radius = np.sqrt(x[:, None] ** 2 + y[None, :] ** 2)
        # Roughly the depth below the coil; tissue reaching past the elements gets their peak, not more.
        depth_mm = np.maximum(1.0 - radius, 0.0) * _COIL_RADII_MM[1]
        sensitivity = 1.0 + self.coil_gain * np.exp(-depth_mm / self.coil_depth_mm)
        sensitivity -= self.coil_tilt * y[None, :]  # the head rests on the posterior elements
        return sensitivity[:, :, None].astype(np.float32)


def _ramp(distance: np.ndarray, boundary) -> np.ndarray:
    """0 inside ``boundary``, 1 outside, linear over ``_EDGE_MM`` (partial volume)."""
    ramp = distance - boundary
    ramp *= np.float32(1.0 / _EDGE_MM)
    ramp += np.float32(0.5)
    return np.clip(ramp, 0.0, 1.0, out=ramp)


def _window(values: np.ndarray, low: float, high: float, soft: float) -> np.ndarray:
    """Smooth indicator of ``low < values < high`` with edges ``soft`` mm wide."""
    rising = np.clip((values - low) / soft + 0.5, 0.0, 1.0)
    rising *= np.clip((high - values) / soft + 0.5, 0.0, 1.0)
    return rising


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """The smallest box holding the True voxels of ``mask`` (one voxel if none)."""
    box = []
    for axis in range(3):
        hits = np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        box.append(slice(int(hits[0]), int(hits[-1]) + 1) if hits.size else slice(0, 1))
    return tuple(box)


def _normal_cdf(values: np.ndarray) -> np.ndarray:
    return special.ndtr(values).astype(np.float32)


def _sample(
    volume: np.ndarray,
    mni: np.ndarray,
    origin: np.ndarray,
    step: float,
    outside: float = 0.0,
    scale: float = 1.0,
) -> np.ndarray:
    """Linear interpolation of ``volume`` (voxel ``k`` at MNI ``origin + step * k``) at ``mni``."""
    coordinates = mni - origin.astype(np.float32)[:, None, None, None]
    if step != 1.0:
        coordinates *= np.float32(1.0 / step)
    values = ndi.map_coordinates(volume, coordinates, order=1, cval=outside, output=np.float32)
    if scale != 1.0:
        values *= np.float32(scale)
    return values
