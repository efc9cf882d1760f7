"""The napari reader for .nii / .nii.gz files."""

from __future__ import annotations

import warnings
from pathlib import Path

from ._layers import volume_layer
from .core.errors import MedSynthError
from .core.files.nifti import is_nifti_path, load_volume
from .core.files.scans import partner_path

__all__ = ["NIFTI_PATTERNS", "claim_nifti_files", "napari_get_reader", "read_nifti", "read_nifti_for_napari"]

PLUGIN = "napari-medsynth"  # the manifest's name
NIFTI_PATTERNS = ("*.nii", "*.nii.gz")  # never "*.gz": that would take every gzipped file


def claim_nifti_files() -> bool:
    """Make this plugin napari's reader of ``*.nii`` and ``*.nii.gz`` where the user has chosen none
    (napari's built-in reader claims them too, so every File > Open would ask which reader), and say
    so once, in a notification. A choice the user made stays. Returns whether anything changed."""
    from napari.settings import get_settings
    from napari.utils.notifications import show_info

    plugins = get_settings().plugins
    chosen = dict(plugins.extension2reader)
    unset = [pattern for pattern in NIFTI_PATTERNS if pattern not in chosen]
    if not unset:
        return False
    plugins.extension2reader = {**chosen, **dict.fromkeys(unset, PLUGIN)}
    show_info("MedSynth now opens .nii and .nii.gz files, with no reader to choose; napari's File > Preferences > "
              "Plugins > 'File extension readers' changes that")
    return True


def napari_get_reader(path):
    """Return :func:`read_nifti_for_napari` when every path is a NIfTI file, else None (never raises)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(is_nifti_path(p) for p in paths):
        return None
    return read_nifti_for_napari


def read_nifti_for_napari(path) -> list[tuple]:
    """:func:`read_nifti` as napari's File > Open calls it: a file that cannot be shown (2D, 4D,
    truncated...) is one error notification with its one-line reason, and napari is told the read
    is done (``[(None,)]``, napari's "nothing to add") instead of offering other readers; a warning
    while reading (NaNs set to 0...) is a warning notification."""
    from napari.utils.notifications import show_error, show_warning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            layers = read_nifti(path)
    except MedSynthError as error:
        show_error(str(error))
        return [(None,)]
    for warning in caught:  # NaNs set to 0, a qform that disagrees with the sform: the user is told
        show_warning(str(warning.message))
    return layers


def read_nifti(path) -> list[tuple]:
    """One image layer per file; opening one half of a T2/PD pair (IXI, BIDS) opens its partner too,
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
