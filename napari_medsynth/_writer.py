"""The napari writer for .nii / .nii.gz: an image layer back onto the grid of the file it came from.

napari's **File > Save Selected Layer(s)** and ``viewer.layers.save("out.nii.gz")`` call
:func:`write_nifti_layer` with the layer's data and state (one layer at a time).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np

from ._layer_metadata import LayerMetadata
from ._layers import layer_volume, write_result_layer
from .core.errors import MedSynthError
from .core.files.nifti import Volume, save_volume

__all__ = ["napari_affine", "write_nifti_layer"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_REVERSE = np.eye(4)[[2, 1, 0, 3]]  # (z, y, x) <-> (x, y, z), homogeneous


def write_nifti_layer(path: str, data, meta: dict) -> list[str]:
    """Write one 3D image layer as NIfTI (``.nii`` or ``.nii.gz``); returns ``[path]``.

    The grid, by what the layer's ``metadata`` holds:

    - an ``"affine"`` (layers of this plugin's reader, sample data and synthesis results,
      kept there by :func:`~napari_medsynth._layers.volume_layer`): the data goes back onto
      that file's voxel grid with exactly that affine (:func:`~napari_medsynth._layers.layer_volume`);
      napari's own scale, translate and affine of the layer are then not used;
    - none (any other layer, e.g. ``viewer.add_image(array)``): the display axes ``(z, y, x)``
      become the voxel axes ``(x, y, z)`` and the affine is napari's whole data-to-world
      transform (``affine`` after ``translate``, ``rotate``, ``shear`` and ``scale``, in mm,
      world axes ``(z, y, x)`` read as LPS as everywhere in this plugin): with only
      ``scale`` and ``translate`` set this is
      :func:`~napari_medsynth.core.files.nifti.display_affine`, as for the synthesis widget.

    The header: that of the layer's source file (its
    :class:`~napari_medsynth._layer_metadata.LayerMetadata`'s ``source_path``, used only if it
    places the voxels by the layer's affine): its qform and sform codes, units and the rest
    are kept. Without one, nibabel's defaults (sform code 2, "aligned"; qform code 0) and
    millimetres. Data are stored as float32. A synthesis result (its metadata's ``provenance``)
    is written as the command line and the dock's Save write it, with its sidecar
    (:func:`~napari_medsynth._layers.write_result_layer`).

    A name without an extension gets ``.nii.gz`` (napari's Save dialog passes the name as
    typed when this writer's file type is chosen). The file is written atomically by
    :func:`~napari_medsynth.core.files.nifti.save_volume`.

    Raises
    ------
    MedSynthError
        The path would overwrite an input file (the layer's source, the source of a result,
        or any file open in the current viewer), has another extension than ``.nii`` or
        ``.nii.gz``, the layer is not a 3D grey-level image, or the folder cannot be written.
    """
    if not Path(path).suffix:  # napari's Save dialog passes the name as typed, e.g. the layer's name
        path = f"{path}.nii.gz"
    metadata = dict(meta.get("metadata") or {})
    if meta.get("rgb"):
        raise MedSynthError(f"{meta.get('name', 'layer')}: an RGB layer cannot be written as a NIfTI volume")
    if meta.get("multiscale"):
        data = data[0]  # the full-resolution level, which scale and translate describe
    record = LayerMetadata.from_dict(metadata)
    protect = {p for p in (record.source_path, record.synthesized_from_path,
                           *(LayerMetadata.of(layer).source_path for layer in _current_viewer_layers())) if p}
    layer = SimpleNamespace(data=data, metadata=metadata, scale=meta.get("scale"), translate=meta.get("translate"))
    if record.is_result:  # a synthesis result: the one writer of results
        return [str(path) for path in write_result_layer(layer, path, protect=tuple(protect))[:1]]
    if record.affine is not None:
        volume = layer_volume(layer)
    else:
        array = np.asarray(data)
        if array.ndim != 3:
            raise MedSynthError(f"a 3D image layer is needed, this one has shape {array.shape}")
        volume = Volume(np.ascontiguousarray(array.transpose(2, 1, 0), dtype=np.float32), napari_affine(meta))
    header = _header_on(volume.header, volume.affine)
    if header is None:
        header = nib.Nifti1Header()
        header.set_xyzt_units("mm")
    written = save_volume(path, volume.data, Volume(volume.data, volume.affine, header, volume.path),
                          protect=tuple(protect))
    return [str(written)]


def napari_affine(meta: dict) -> np.ndarray:
    """The NIfTI affine (RAS, voxel axes ``(x, y, z)``) of a 3D layer placed only by napari:
    its data-to-world transform from the layer state ``meta`` (``scale``, ``translate``,
    ``rotate``, ``shear``, ``affine``), display axes ``(z, y, x)`` in LPS."""
    from napari.utils.transforms import CompositeAffine

    placed = CompositeAffine(meta.get("scale", np.ones(3)), meta.get("translate", np.zeros(3)),
                             rotate=meta.get("rotate"), shear=meta.get("shear"), ndim=3).affine_matrix
    extra = np.asarray(meta["affine"] if meta.get("affine") is not None else np.eye(4), dtype=float)
    return _LPS_TO_RAS @ _REVERSE @ extra @ placed @ _REVERSE


def _current_viewer_layers() -> list:
    """The layers of napari's current viewer (none when napari has no viewer open)."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # no napari GUI at all: a headless npe2 write
        return []
    return list(viewer.layers) if viewer is not None else []


def _header_on(header, affine: np.ndarray):
    """A copy of ``header`` if it places its voxels by ``affine`` (nibabel's sform-first choice), else None."""
    if header is None or not np.allclose(header.get_best_affine(), affine, atol=1e-6):
        return None
    return header.copy()
