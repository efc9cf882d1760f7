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

import gzip
import logging
import math
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as nio

from ..errors import MedSynthError
from .atomic import atomic_output, human_size

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
_DEFLATE_MAX_RATIO = 1032  # deflate at its best: one compressed byte stands for at most 1032
_CHUNK_BYTES = 1 << 16


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

    The header is checked against itself and against the file before any voxel is read
    (:func:`_check_header`), so a hostile or corrupt header costs no more memory than the
    file holds. Trailing singleton dimensions (``(X, Y, Z, 1)``) are dropped. Non-finite
    voxels are set to 0 with a warning. A qform that disagrees with the sform is reported
    as an :class:`OrientationWarning` (the sform is used, as nibabel does).

    Raises
    ------
    MedSynthError
        The file is missing, unreadable, truncated, not 3D, holds no finite value, or its
        header is self-contradictory: see :func:`_check_header`.
    """
    path = Path(path)
    label = path.name
    if not path.is_file():
        raise MedSynthError(f"{path}: no such file")  # as given: the folder tells which
    quiet = logging.Filter("napari_medsynth")  # nibabel logs the header fixes it makes; they need no reader
    nib.imageglobals.logger.addFilter(quiet)
    try:
        _check_header(path, label)
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
    finally:
        nib.imageglobals.logger.removeFilter(quiet)
    data = _squeeze_trailing(data)
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
    _warn_on_qform_sform_mismatch(image.header, label)
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
    if image.header["qform_code"] and _qform_problem(image.header):  # pass on no qform that places nothing
        image.set_qform(like.affine)
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


def _check_header(path: Path, label: str) -> None:
    """Refuse a NIfTI header that contradicts itself or its file, before nibabel reads more of it.

    In order: the NIfTI-1/2 magic of a single file, 1 to 7 dimensions of at least 1 voxel of
    which 3 remain after dropping trailing 1s, a known real-valued datatype with its bitpix, a
    vox_offset past the header, voxels that fit in the file (for ``.nii.gz`` the gzip ISIZE
    trailer, trusted only up to deflate's 1032:1 ratio, else a capped count of the
    decompressed bytes), extensions that end by the voxels, a finite scl_inter when there
    is a scl_slope, and an affine (sform, else qform, else pixdim) that places voxels in 3D.
    A ``.gz`` file that is not gzip at all is left for nibabel to refuse in its words.
    """
    compressed = path.name.lower().endswith(".gz")
    with gzip.open(path, "rb") if compressed else open(path, "rb") as stream:
        try:
            block = stream.read(nib.Nifti2Header.single_vox_offset)
        except gzip.BadGzipFile:
            return
        klass = next((k for k in (nib.Nifti2Header, nib.Nifti1Header) if k.may_contain_header(block)), None)
        if klass is None:
            raise MedSynthError(f"{label}: not a readable NIfTI file (no NIfTI-1 or NIfTI-2 header)")
        size = klass.sizeof_hdr
        endianness = next((e for e, order in (("<", "little"), (">", "big"))
                           if int.from_bytes(block[:4], order) == size), None)
        header = klass(block[:size], endianness=endianness, check=False)
        if header["magic"].item() != klass.single_magic:
            raise MedSynthError(f"{label}: the header's magic says a .hdr/.img pair, not a single .nii file")
        byteorder = "little" if header.endianness == "<" else "big"
        shape, dtype = _header_shape(header, label), _header_dtype(header, label)
        offset = _header_offset(header, label)
        claimed = offset + math.prod(shape) * dtype.itemsize
        held = _bytes_held(path, stream, len(block), claimed) if compressed else path.stat().st_size
        if offset >= held:
            raise MedSynthError(
                f"{label}: the header's vox_offset ({offset}) lies at or past the end of the file ({human_size(held)})"
            )
        if claimed > held:
            raise MedSynthError(
                f"{label}: the header claims {human_size(claimed - offset)} of voxels but the file holds "
                f"{human_size(held - offset)} after its vox_offset"
            )
        if block[size:size + 1] not in (b"", b"\0"):
            _check_extensions(stream, size + 4, offset, byteorder, label)
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if slope != 0 and math.isfinite(slope) and not math.isfinite(inter):
        raise MedSynthError(f"{label}: the header's scl_inter is {inter} (with scl_slope {slope:g})")
    _check_geometry(header, label)


def _header_shape(header, label: str) -> tuple[int, ...]:
    ndim = int(header["dim"][0])
    if not 1 <= ndim <= 7:
        raise MedSynthError(f"{label}: the header's dim[0] is {ndim}; it must be 1 to 7, the number of dimensions")
    shape = tuple(int(n) for n in header["dim"][1:ndim + 1])
    if min(shape) < 1:
        raise MedSynthError(f"{label}: the header gives the shape {shape}; every dimension must be at least 1")
    spatial = shape
    while len(spatial) > 3 and spatial[-1] == 1:
        spatial = spatial[:-1]
    if len(spatial) != 3:
        raise MedSynthError(
            f"{label}: the image is {len(spatial)}D with shape {spatial}; a 3D volume is needed"
        )
    return shape


def _header_dtype(header, label: str) -> np.dtype:
    code = int(header["datatype"])
    if code not in nib.nifti1.data_type_codes.value_set():
        raise MedSynthError(f"{label}: the header's datatype code {code} is not a NIfTI data type")
    dtype, name = header.get_data_dtype(), nib.nifti1.data_type_codes.label[code]
    if dtype.kind not in "iuf" or dtype.itemsize > 8:  # nibabel's float128 is the machine's long double
        raise MedSynthError(
            f"{label}: the header's datatype {name} (code {code}) is not supported; an integer or float image "
            "of up to 64 bits is needed"
        )
    if int(header["bitpix"]) != 8 * dtype.itemsize:
        raise MedSynthError(
            f"{label}: the header's bitpix is {int(header['bitpix'])} but its datatype {name} has "
            f"{8 * dtype.itemsize} bits per voxel"
        )
    return dtype


def _header_offset(header, label: str) -> int:
    value, least = float(header["vox_offset"]), type(header).single_vox_offset
    if not (math.isfinite(value) and value >= least):
        raise MedSynthError(
            f"{label}: the header's vox_offset is {value:g}; the voxels of a .nii start at byte {least} or later"
        )
    return int(value)


def _bytes_held(path: Path, stream, done: int, claimed: int) -> int:
    """How many bytes the gzip ``stream`` (``done`` of them read) decompresses to: exactly when
    fewer than ``claimed``, else some number at least ``claimed``."""
    with open(path, "rb") as raw:
        raw.seek(-4, os.SEEK_END)
        isize = int.from_bytes(raw.read(4), "little")  # the size mod 2**32 (of the last member)
    if claimed <= isize and claimed <= _DEFLATE_MAX_RATIO * path.stat().st_size:
        return claimed
    held = done
    while held < claimed and (chunk := stream.read(min(_CHUNK_BYTES, claimed - held))):
        held += len(chunk)
    return held


def _check_extensions(stream, start: int, end: int, byteorder: str, label: str) -> None:
    """nibabel reads each header extension at the size it claims: refuse a size that is not a
    positive multiple of 16 or runs past the voxels at ``end``."""
    position = start
    while end - position >= 16:  # where nibabel stops looking for another extension
        stream.seek(position)
        esize = int.from_bytes(stream.read(4), byteorder, signed=True)
        if esize < 16 or esize % 16 or position + esize > end:
            raise MedSynthError(
                f"{label}: the header extension at byte {position} claims {esize} bytes; an extension is a "
                f"positive multiple of 16 bytes that ends by the voxels at byte {end}"
            )
        position += esize


def _check_geometry(header, label: str) -> None:
    """Refuse an affine that cannot place voxels: nibabel's choice (sform, else qform, else
    the voxel sizes alone) after the fixes it makes on loading (an unknown xform code is 0)."""
    fixed = header.copy()
    fixed.check_fix(error_level=100)
    if fixed["sform_code"]:
        source, problem = "sform", _affine_problem(fixed.get_sform())
    else:
        pixdim = [float(v) for v in header["pixdim"][1:4]]  # as written: nibabel takes abs(), and 1 for 0
        if not all(math.isfinite(v) and v > 0 for v in pixdim):
            raise MedSynthError(
                f"{label}: the voxel sizes (pixdim) are {_mm(pixdim)} mm; each must be finite and positive"
            )
        if fixed["qform_code"]:
            source, problem = "qform", _qform_problem(fixed)
        else:
            source, problem = "voxel-size affine", _affine_problem(fixed.get_base_affine())
    if problem:
        raise MedSynthError(f"{label}: the {source} {problem}")


def _qform_problem(header) -> str | None:
    """Why the qform of ``header`` does not place voxels in 3D space, or None when it does."""
    bcd = [float(header[f"quatern_{k}"]) for k in "bcd"]
    if sum(v * v for v in bcd) > 1 + 3 * np.finfo(np.float32).eps:  # nibabel's tolerance
        return f"has a quaternion (b, c, d) = ({', '.join(f'{v:g}' for v in bcd)}) longer than 1, so no rotation"
    try:
        with np.errstate(all="ignore"):  # a non-finite qform is a problem to report, not to warn about
            return _affine_problem(header.get_qform())
    except (ValueError, nib.spatialimages.HeaderDataError) as error:
        return f"is not usable ({error})"


def _affine_problem(affine: np.ndarray) -> str | None:
    """Why ``affine`` does not place voxels in 3D space, or None when it does."""
    if not np.isfinite(affine).all():
        return "has NaN or infinite entries"
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    if not (sizes > 0).all():
        return f"gives voxel sizes {_mm(sizes)} mm; each must be positive"
    if abs(np.linalg.det(affine[:3, :3] / sizes)) < 1e-6:
        return "has voxel axes that are (nearly) parallel"
    return None


def _mm(sizes) -> str:
    return " x ".join(f"{float(v):.4g}" for v in sizes)


def _warn_on_qform_sform_mismatch(header, label: str) -> None:
    sform, scode = header.get_sform(coded=True)
    if sform is None or not scode or not header["qform_code"]:
        return
    problem = _qform_problem(header)
    if problem:
        message = f"{label}: the qform {problem}; using the sform"
    elif not np.allclose(qform := header.get_qform(), sform, atol=_QFORM_SFORM_TOLERANCE_MM):
        qcodes, scodes = ("".join(nib.aff2axcodes(a)) for a in (qform, sform))
        if qcodes == scodes:  # same orientation: the voxel sizes or the origin differ
            qcodes += f", {_mm(np.linalg.norm(qform[:3, :3], axis=0))} mm at {_mm(qform[:3, 3])}"
            scodes += f", {_mm(np.linalg.norm(sform[:3, :3], axis=0))} mm at {_mm(sform[:3, 3])}"
        message = f"{label}: the qform ({qcodes}) and sform ({scodes}) disagree; using the sform"
    else:
        return
    warnings.warn(message, OrientationWarning, stacklevel=3)
