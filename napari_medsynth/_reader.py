"""The napari reader for .nii / .nii.gz files."""

from __future__ import annotations

from pathlib import Path

from ._layers import volume_layer
from .core.ixi import partner_path
from .core.nifti import is_nifti_path, load_volume

__all__ = ["napari_get_reader", "read_nifti"]


def napari_get_reader(path):
    """Return :func:`read_nifti` when every path is a NIfTI file, else None (never raises)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(is_nifti_path(p) for p in paths):
        return None
    return read_nifti


def read_nifti(path) -> list[tuple]:
    """One image layer per file; opening one half of an IXI T2/PD pair opens its partner too,
    below it, so the file the user opened is the one on top.

    Raises
    ------
    MedSynthError
        A file is unreadable, truncated, or not 3D.
    """
    requested = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    paths: list[Path] = []
    for p in requested:
        partner = partner_path(p)
        for candidate in (partner, p):
            if candidate is not None and candidate.resolve() not in {q.resolve() for q in paths}:
                paths.append(candidate)
    return [volume_layer(load_volume(p)) for p in paths]
