"""NIfTI volumes: reading with checks, atomic writing, and the display orientation.

Every volume is read to float32 on its file's own voxel grid, with the file's affine and
header kept, so that anything computed from it can be written back onto that grid.

For display, volumes are reoriented (losslessly: flips and axis permutations only) to
the closest *LPS* voxel orientation and stored with axes ``(z, y, x)``: napari's slider
then steps through axial slices from inferior to superior, anterior is at the top of the
canvas and the patient's right on its left (the radiological convention). The original
affine stays with the data so that ``from_display`` brings any result back exactly.
"""

from __future__ import annotations

import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as nio

from .atomic import atomic_output
from .errors import MedSynthError

__all__ = [
    "DISPLAY_AXCODES",
    "OrientationWarning",
    "Volume",
    "display_affine",
    "from_display",
    "load_volume",
    "save_volume",
    "to_display",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DISPLAY_AXCODES = ("L", "P", "S")
_QFORM_SFORM_TOLERANCE_MM = 1e-3


class OrientationWarning(UserWarning):
    """The file's header is self-contradictory about where its voxels are."""


@dataclass(frozen=True)
class Volume:
    """A 3D image on its file's voxel grid.

    Attributes
    ----------
    data : np.ndarray
        float32 array of shape ``(I, J, K)`` in the file's voxel order.
    affine : np.ndarray
        4x4 voxel-to-world (RAS+, mm) matrix, nibabel's sform-first choice.
    header : nibabel.Nifti1Header or None
        The file's header, reused when writing results onto the same grid.
    path : Path or None
        Where the volume was read from.
    """

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        """The file name without its NIfTI suffix (``"IXI002-Guys-0828-T2"``)."""
        return strip_nifti_suffix(self.path.name) if self.path else "volume"


def is_nifti_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a ``.nii`` or ``.nii.gz`` file."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def strip_nifti_suffix(name: str) -> str:
    """``"a.nii.gz"`` -> ``"a"``; other names are returned unchanged."""
    for suffix in sorted(NIFTI_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_volume(path: str | os.PathLike) -> Volume:
    """Read a 3D NIfTI file to float32.

    Trailing singleton dimensions (``(X, Y, Z, 1)``) are dropped. Non-finite voxels
    are set to 0 with a warning. A qform that disagrees with the sform is reported
    as an :class:`OrientationWarning` (the sform is used, as nibabel does).

    Raises
    ------
    MedSynthError
        The file is missing, unreadable, truncated, not 3D, or holds no finite value.
    """
    path = Path(path)
    label = path.name
    if not path.is_file():
        raise MedSynthError(f"{label}: no such file")
    try:
        image = nib.load(str(path))
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            raise MedSynthError(f"{label}: not a NIfTI image ({type(image).__name__})")
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except MedSynthError:
        raise
    except (EOFError, zlib.error) as error:
        raise MedSynthError(f"{label}: the file is truncated or corrupt ({error})") from error
    except Exception as error:  # nibabel raises many types for a broken file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MedSynthError(f"{label}: not a readable NIfTI file ({reason})") from error
    data = _squeeze_trailing(data)
    if data.ndim != 3:
        kind = f"{data.ndim}D" if data.ndim else "empty"
        raise MedSynthError(
            f"{label}: the image is {kind} with shape {data.shape}; a 3D volume is needed"
        )
    finite = np.isfinite(data)
    if not finite.any():
        raise MedSynthError(f"{label}: every voxel is NaN or infinite")
    if not finite.all():
        warnings.warn(
            f"{label}: {int((~finite).sum())} NaN or infinite voxels set to 0",
            RuntimeWarning,
            stacklevel=2,
        )
        data = np.where(finite, data, np.float32(0))
    _warn_on_qform_sform_mismatch(image, label)
    return Volume(data=data, affine=image.affine.copy(), header=image.header.copy(), path=path)


def save_volume(
    path: str | os.PathLike,
    data: np.ndarray,
    like: Volume,
    *,
    protect: tuple[str | os.PathLike, ...] = (),
    dtype=np.float32,
) -> Path:
    """Write ``data`` as NIfTI on the grid of ``like`` (its affine and header).

    The file is written to a temporary name in the same folder and renamed into
    place, so a crash or Ctrl-C never leaves a partial file under ``path``.

    Parameters
    ----------
    path : path-like
        Output file, ``.nii`` or ``.nii.gz``.
    data : np.ndarray
        Array of ``like.data.shape``.
    like : Volume
        The volume whose grid ``data`` lies on.
    protect : tuple of path-like
        Files that must never be overwritten, typically the inputs; ``like.path``
        is always protected.
    dtype : numpy dtype, default=np.float32
        Stored data type; integer types round the data (scanner files such as IXI's
        are int16).

    Raises
    ------
    MedSynthError
        Wrong shape, a protected or non-NIfTI output path, or an unwritable folder.
    """
    path = Path(path)
    if not is_nifti_path(path):
        raise MedSynthError(f"{path.name}: output must end in .nii or .nii.gz")
    data = np.asarray(data)
    if data.shape != like.data.shape:
        raise MedSynthError(
            f"{path.name}: data of shape {data.shape} does not fit the grid {like.data.shape}"
        )
    protected = {Path(p).resolve() for p in (*protect, like.path) if p is not None}
    if path.resolve() in protected:
        raise MedSynthError(f"{path}: refusing to overwrite an input file")
    header = like.header.copy() if like.header is not None else None
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.rint(data), info.min, info.max)
    image = nib.Nifti1Image(data.astype(dtype), like.affine, header=header)
    image.set_data_dtype(dtype)
    image.header.set_slope_inter(1.0, 0.0)
    suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    with atomic_output(path, suffix) as tmp_name:
        nib.save(image, tmp_name)
    return path


def display_orientation(affine: np.ndarray) -> np.ndarray:
    """The nibabel orientation transform from the file's voxel axes to LPS voxel axes."""
    return nio.ornt_transform(nio.io_orientation(affine), nio.axcodes2ornt(DISPLAY_AXCODES))


def to_display(volume: Volume) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...]]:
    """The volume as napari shows it: data ``(z, y, x)`` in LPS, its scale and translate.

    Returns
    -------
    data : np.ndarray
        A view (no copy) of ``volume.data``, reoriented and transposed.
    scale : tuple of float
        Voxel sizes in mm, ``(z, y, x)``.
    translate : tuple of float
        World position (LPS, mm) of the first voxel, ``(z, y, x)``.
    """
    ornt = display_orientation(volume.affine)
    data = nio.apply_orientation(volume.data, ornt).transpose(2, 1, 0)
    affine = volume.affine @ nio.inv_ornt_aff(ornt, volume.data.shape)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    origin_lps = affine[:3, 3] * np.array([-1.0, -1.0, 1.0])
    return data, tuple(float(z) for z in zooms[::-1]), tuple(float(t) for t in origin_lps[::-1])


def display_affine(scale, translate=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The affine of a display-ordered ``(z, y, x)`` LPS array with napari's ``scale`` and
    ``translate``: :func:`to_display` of a volume with it gives that scale and translate back."""
    (sz, sy, sx), (tz, ty, tx) = ([float(v) for v in scale], [float(v) for v in translate])
    affine = np.diag([-sx, -sy, sz, 1.0])
    affine[:3, 3] = (-tx, -ty, tz)  # LPS -> RAS
    return affine


def from_display(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Invert :func:`to_display`: a ``(z, y, x)`` LPS array back onto the file's voxel grid."""
    back = nio.ornt_transform(nio.axcodes2ornt(DISPLAY_AXCODES), nio.io_orientation(affine))
    return nio.apply_orientation(np.asarray(data).transpose(2, 1, 0), back)


def _squeeze_trailing(data: np.ndarray) -> np.ndarray:
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return data


def _warn_on_qform_sform_mismatch(image, label: str) -> None:
    header = image.header
    qform, qcode = header.get_qform(coded=True)
    sform, scode = header.get_sform(coded=True)
    if qform is None or sform is None or not qcode or not scode:
        return
    if not np.allclose(qform, sform, atol=_QFORM_SFORM_TOLERANCE_MM):
        warnings.warn(
            f"{label}: the qform ({''.join(nib.aff2axcodes(qform))}) and sform "
            f"({''.join(nib.aff2axcodes(sform))}) disagree; using the sform",
            OrientationWarning,
            stacklevel=3,
        )
