"""The one reader and writer of this plugin's layer metadata: a typed record per layer.

napari keeps a layer's ``metadata`` dict with the layer (and in a saved session). Every key this
plugin puts there is a field of :class:`LayerMetadata`, read and written only here, so that a
renamed field fails at once instead of silently breaking Save, File > Save or the grid. The dict
carries a version key; a record read from an older or newer version keeps the fields it knows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

import numpy as np

__all__ = ["VERSION", "VERSION_KEY", "LayerMetadata"]

VERSION = 1
VERSION_KEY = "medsynth_metadata"
_KEYS = {"run": "medsynth_run", "compare_row": "medsynth_compare", "compare_selection": "medsynth_compare_selection"}


@dataclass
class LayerMetadata:
    """What this plugin knows of a layer (every field None or empty for a layer it did not make)."""

    # the file the voxels lie on: every layer this plugin makes
    affine: np.ndarray | None = None  # the file's voxel-to-RAS affine
    axcodes: str | None = None  # its voxel axis codes, e.g. "RAS"
    source_path: str | None = None  # the file the layer shows (None for a result, which no file holds yet)
    subject: str | None = None  # the scan's identity: "IXI002", "sub-01_ses-1", "case7"
    contrast: str | None = None  # "T2", "PD", ...
    # a synthesis result and its maps
    provenance: dict | None = None  # :meth:`Provenance.record`: what made it (a result is saved with it)
    run: str | None = None  # the dock's run key: the layers of one result share it
    preview: bool = False  # a one-pass preview, replaced by its refinement
    synthesized_from: str | None = None  # the source layer's name
    synthesized_from_path: str | None = None  # the source's file: its header goes on the saved result
    ground_truth: str | None = None  # the truth layer's name
    metrics: dict = field(default_factory=dict)  # :meth:`Figures.as_dict` against the truth
    map: str | None = None  # which map: a :class:`~napari_medsynth.core.choices.MapKind` value
    # a comparison's layers
    compare_row: str | None = None  # the figures table's row the layer shows
    compare_selection: str | None = None  # "maps" or "difference" of the table's selection

    @property
    def is_result(self) -> bool:
        """A synthesis (or one of its maps) made by this plugin: the writer saves it with its sidecar."""
        return self.provenance is not None

    @property
    def is_input(self) -> bool:
        """A scan (not something this plugin computed): a source or a ground truth to choose."""
        return self.run is None and self.compare_row is None and self.compare_selection is None

    def to_dict(self) -> dict:
        """The layer's ``metadata`` dict (the version key first)."""
        values = {_KEYS.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}
        if values["affine"] is not None:
            values["affine"] = np.array(values["affine"], dtype=float)
        return {VERSION_KEY: VERSION, **values}

    @classmethod
    def from_dict(cls, metadata: dict | None) -> LayerMetadata:
        """The record of a ``metadata`` dict (keys it does not know are left out)."""
        metadata = metadata or {}
        values = {f.name: metadata[_KEYS.get(f.name, f.name)] for f in fields(cls)
                  if metadata.get(_KEYS.get(f.name, f.name)) is not None}
        return cls(**values)

    @classmethod
    def of(cls, layer) -> LayerMetadata:
        """The record of a napari layer (or of anything with a ``metadata`` dict)."""
        return cls.from_dict(getattr(layer, "metadata", None))

    def replace(self, **changes) -> LayerMetadata:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def marked(self, mark: LayerMetadata) -> LayerMetadata:
        """A copy with the fields ``mark`` sets (those not at their default)."""
        blank = LayerMetadata()
        sets = {f.name: getattr(mark, f.name) for f in fields(self)}
        kept = {name: value for name, value in sets.items() if value is not None and (
            isinstance(value, np.ndarray) or value != getattr(blank, name))}
        return self.replace(**kept)
