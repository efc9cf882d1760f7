"""Turning core volumes into napari layer data tuples (no napari import needed)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ._layer_metadata import LayerMetadata
from .core.choices import MapKind
from .core.errors import MedSynthError
from .core.files.nifti import Volume, display_affine, from_display, to_display
from .core.files.scans import scan_name

__all__ = ["RESULT_MAPS", "layer_mask", "layer_volume", "map_layers", "result_layers", "robust_contrast_limits",
           "synthesis_layer", "volume_layer", "write_result_layer"]

_SAMPLE_VOXELS = 200_000


def robust_contrast_limits(data: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Percentile contrast limits of the voxels above the background, so one hot voxel cannot black out the view."""
    flat = np.asarray(data).ravel()
    if flat.size > _SAMPLE_VOXELS:
        flat = flat[:: flat.size // _SAMPLE_VOXELS]
    foreground = flat[flat > flat.min()]
    values = foreground if foreground.size else flat
    lo, hi = np.percentile(values, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def volume_layer(
    volume: Volume, *, name: str | None = None, subject: str | None = None, contrast: str | None = None
) -> tuple:
    """An ``(data, kwargs, "image")`` tuple showing ``volume`` in the display orientation.

    The layer metadata keeps the file's affine, voxel axis codes and path, so results
    computed on the layer can be written back onto the file's grid.
    """
    data, scale, translate = to_display(volume)
    if volume.path:  # its identity from its file name: "IXI002 T2", "sub-01_ses-1 T2", "case7 T2"
        parsed = scan_name(volume.path)
        subject, contrast = subject or parsed.label, contrast or parsed.contrast
    subject = subject or volume.name
    if name is None:
        name = f"{subject} {contrast}" if contrast else subject
    metadata = LayerMetadata(affine=volume.affine.copy(), axcodes="".join(nib.aff2axcodes(volume.affine)),
                             source_path=str(volume.path) if volume.path else None, subject=subject, contrast=contrast)
    kwargs = {
        "name": name,
        "scale": scale,
        "translate": translate,
        "contrast_limits": robust_contrast_limits(data),
        "colormap": "gray",
        "rendering": "attenuated_mip",  # in 3D a plain MIP of a head is a white silhouette
        "metadata": metadata.to_dict(),
    }
    return data, kwargs, "image"


def layer_volume(layer) -> Volume:
    """The :class:`Volume` behind a napari image layer, on its file's voxel grid.

    Layers made by this plugin keep the file's affine in ``metadata``; for any other
    3D layer the display axes ``(z, y, x)`` are taken as LPS placed by the layer's
    ``scale`` and ``translate`` (:func:`~napari_medsynth.core.files.nifti.display_affine`).

    Raises
    ------
    MedSynthError
        The layer is not 3D (a 2D image, or RGB / time series data).
    """
    array, metadata = np.asarray(layer.data), LayerMetadata.of(layer)
    if array.ndim != 3:
        raise MedSynthError(f"a 3D image layer is needed, this one has shape {array.shape}")
    affine = metadata.affine
    if affine is None:
        affine = display_affine(layer.scale, layer.translate)
    affine = np.asarray(affine, dtype=float)
    path = metadata.source_path
    header = _header_of(path)
    return Volume(np.ascontiguousarray(from_display(array, affine), dtype=np.float32), affine, header,
                  Path(path) if path else None)


def layer_mask(mask_layer, source_layer) -> np.ndarray:
    """A mask layer (labels or image; non-zero: inside) on the source layer's file grid.

    Raises
    ------
    MedSynthError
        The mask layer does not have the source layer's shape (another grid).
    """
    data = np.asarray(mask_layer.data)
    if data.shape != np.asarray(source_layer.data).shape:
        raise MedSynthError(f"the mask layer {mask_layer.name!r} has shape {data.shape} but the source has "
                            f"{np.asarray(source_layer.data).shape}; a mask must lie on the source's grid")
    return from_display(data != 0, layer_volume(source_layer).affine)


# name suffix, colormap and SynthesisResult field of each result layer
RESULT_MAPS = {
    MapKind.SPREAD: ("spread", "magma"),
    MapKind.SQUARED_ERROR: ("squared error", "inferno"),
    MapKind.GRADIENT_DIFFERENCE: ("gradient difference", "viridis"),
}


def result_layers(result, source: Volume, *, subject: str, label: str, target: str,
                  mark: LayerMetadata, against: str | None = None) -> list[tuple]:
    """Layer tuples for a :class:`SynthesisResult`: the synthesis, then its maps.

    Names read ``"IXI002 PD synth [G4+RL]"`` and ``"IXI002 PD squared error [G4+RL]"`` (``"... squared
    error vs IXI003 [G4+RL]"`` against a truth of ``against``, another subject); every layer shares the
    source's scale and translate, and its :class:`LayerMetadata` has the fields ``mark`` sets and the
    source's file as ``synthesized_from_path`` (its header is the one a saved result keeps).
    """
    synthesis = synthesis_layer(result.synthesis, source, name=f"{subject} {target} synth [{label}]",
                                subject=subject, target=target, mark=mark, header=source.header)
    return [synthesis, *map_layers(result.all_maps(), source, subject=subject, label=label, target=target,
                                   mark=mark, against=against)]


def synthesis_layer(data, source: Volume, *, name: str, subject: str, target: str, mark: LayerMetadata,
                    header=None) -> tuple:
    """The layer tuple of a synthesis (``data`` on ``source``'s grid) named ``name``."""
    layer = volume_layer(Volume(data, source.affine, header), name=name, subject=subject, contrast=target)
    _mark_result(layer, source, mark)
    return layer


def map_layers(maps: dict, source: Volume, *, subject: str, label: str, target: str,
               mark: LayerMetadata, against: str | None = None) -> list[tuple]:
    """Layer tuples of the :data:`RESULT_MAPS` in ``maps`` (on ``source``'s grid), each in its colormap;
    the error maps against a truth of ``against`` (another subject) say so in their names."""
    layers = []
    for key, (suffix, colormap) in RESULT_MAPS.items():
        if maps.get(key) is None:
            continue
        versus = f" vs {against}" if against and key.against_truth else ""
        data, kwargs, kind = volume_layer(Volume(maps[key], source.affine), subject=subject, contrast=target,
                                          name=f"{subject} {target} {suffix}{versus} [{label}]")
        low, high = robust_contrast_limits(data, 0.0, 99.5)
        kwargs.update(colormap=colormap, contrast_limits=(low, high), blending="translucent")
        _mark_result((data, kwargs, kind), source, mark.replace(map=key))
        layers.append((data, kwargs, kind))
    return layers


def _mark_result(layer: tuple, source: Volume, mark: LayerMetadata) -> None:
    """Give a layer tuple the :class:`LayerMetadata` fields ``mark`` sets, and those of a result of ``source``."""
    record = LayerMetadata.from_dict(layer[1]["metadata"]).marked(mark)
    layer[1]["metadata"] = record.replace(source_path=None,
                                          synthesized_from_path=str(source.path) if source.path else None).to_dict()


def write_result_layer(layer, path, protect=()) -> list[Path]:
    """Write a synthesis layer (its sidecar beside it) or a map layer of this plugin on its source
    file's grid with :func:`~napari_medsynth.core.files.results.save_result` / ``save_map``: the header of
    the file it was synthesized from, ``descrip`` naming the generator; the written paths."""
    from .core.files.results import Provenance, save_map, save_result

    volume = layer_volume(layer)
    metadata = LayerMetadata.of(layer)
    origin = metadata.synthesized_from_path
    source = Volume(volume.data, volume.affine, _header_of(origin), Path(origin) if origin else None)
    provenance = Provenance.from_record(metadata.provenance)
    if metadata.map:
        return [save_map(volume.data, metadata.map, source, path, provenance, protect=protect)]
    return save_result(volume.data, source, path, provenance, protect=protect)


def _header_of(path):
    """The NIfTI header of the file ``path``, or None when there is no such readable file."""
    if not path or not Path(path).is_file():
        return None
    try:
        return nib.load(str(path)).header
    except Exception:  # changed or unreadable since it was opened: the affine alone places the result
        return None
