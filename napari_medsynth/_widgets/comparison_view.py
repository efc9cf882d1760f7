"""The layers of a comparison: source | truth | one synthesis per generator | the intensity mapping in
napari's grid, each tile labelled with its generator; the error maps of the row selected in the
figures table, or the difference of two selected rows."""

from __future__ import annotations

import numpy as np

from .._layer_metadata import LayerMetadata
from .._layers import map_layers, synthesis_layer
from ..core.choices import Direction
from ..core.synthesis.compare import MAPPING, ComparedRow, difference_map
from .requests import ComparisonRequest
from .result_view import MAP_ROLES, PREVIEW, arrange_grid, put_layer

__all__ = ["ComparisonView"]


def _of_comparison(layer) -> bool:
    record = LayerMetadata.of(layer)
    return record.compare_row is not None or record.compare_selection is not None


class ComparisonView:
    """One comparison's layers in ``viewer``; rows come in one by one, previews first."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.comparison: ComparisonRequest | None = None
        self.rows: dict[str, ComparedRow] = {}  # by label, in the order they came (refined replacing previews)
        self.previews: set[str] = set()  # labels whose row on screen is a preview
        self._names: dict[str, str] = {}  # label -> its synthesis layer's name
        self._selection: tuple[str, ...] = ()
        self._grid_tiles = ()

    def begin(self, comparison: ComparisonRequest) -> None:
        """A new comparison: the previous one's layers go."""
        self._remove(_of_comparison)
        self.comparison, self.rows, self.previews, self._names, self._selection = comparison, {}, set(), {}, ()

    @property
    def target(self) -> str:
        return Direction(self.comparison.request.direction).contrasts[1]

    def show_row(self, row: ComparedRow, preview: bool) -> None:
        """Show ``row``'s synthesis (replacing its preview, or an earlier layer of that name)."""
        if row.label in self.previews and not preview:
            self._remove(lambda layer: layer.name == self._names.get(row.label))
        self.rows[row.label] = row
        self.previews.discard(row.label)
        if row.error is None:
            if preview:
                self.previews.add(row.label)
            self._names[row.label] = self._add(self._synthesis_layer(row, preview))
        self.arrange()

    def finish(self) -> list[str]:
        """The comparison ended (done or cancelled): previews that no refined row replaced go; the
        labels of the syntheses that stay."""
        for label in sorted(self.previews):
            self._remove(lambda layer, label=label: layer.name == self._names.get(label))
            del self.rows[label], self._names[label]
        self.previews.clear()
        self.arrange()
        return [label for label in self.rows if label in self._names]

    def select(self, labels) -> None:
        """The table's selection: one row shows its error maps, two their difference."""
        self._remove(lambda layer: LayerMetadata.of(layer).compare_selection is not None)
        self._selection = tuple(label for label in labels if label in self._names)[:2]
        if not self._selection:
            self.arrange()
            return
        request = self.comparison.request
        if len(self._selection) == 1:
            row = self.rows[self._selection[0]]
            for layer in map_layers(row.maps, request.source, subject=request.subject, label=row.label,
                                    target=self.target, mark=LayerMetadata(compare_selection="maps"),
                                    against=request.truth_subject):
                self._add(layer)
        elif len(self._selection) == 2:
            first, second = (self.rows[label] for label in self._selection)
            difference = difference_map(first, second)
            name = f"{request.subject} {self.target} difference [{first.label} - {second.label}]"
            data, kwargs, kind = synthesis_layer(difference, request.source, name=name, subject=request.subject,
                                                 target=self.target, mark=LayerMetadata(compare_selection="difference"))
            bound = float(np.percentile(np.abs(data), 99.5)) or 1.0
            kwargs.update(colormap="bwr", contrast_limits=(-bound, bound))
            self._add((data, kwargs, kind))
        self.arrange()

    def arrange(self) -> None:
        """Source | truth | each synthesis | the mapping | the selection's maps, in the grid."""
        if self.comparison is None:
            return
        request, layers = self.comparison.request, self.viewer.layers
        source, target = Direction(request.direction).contrasts
        tiles = {request.source_layer: f"source {source}", request.truth_layer: f"truth {target}"}
        for label, name in self._names.items():
            tiles[name] = "mapping" if label == MAPPING else label + (f" {PREVIEW}" if label in self.previews else "")
        for layer in layers:
            record = LayerMetadata.of(layer)
            if record.compare_selection == "difference":
                tiles[layer.name] = " - ".join(self._selection)
            elif record.compare_selection == "maps":
                tiles[layer.name] = f"{MAP_ROLES[record.map]} {self._selection[0]}"  # role first
        tiles = {name: text for name, text in tiles.items() if name in layers}
        if len(tiles) > 1:
            self._grid_tiles = arrange_grid(self.viewer, tiles, self._grid_tiles, columns=4 if len(tiles) > 6 else 3)

    def _synthesis_layer(self, row: ComparedRow, preview: bool) -> tuple:
        request = self.comparison.request
        label = f"{row.label} {PREVIEW}" if preview else row.label
        mark = LayerMetadata(compare_row=row.label, preview=preview, synthesized_from=request.source_layer,
                             ground_truth=request.truth_layer,
                             metrics=row.metrics.as_dict() if row.metrics is not None else {},
                             provenance=row.result.provenance.record() if row.result is not None else None)
        if row.result is not None:
            name = f"{request.subject} {self.target} synth [{label}]"
        else:
            name = f"{request.subject} {self.target} intensity mapping" + (f" [{PREVIEW}]" if preview else "")
        return synthesis_layer(row.synthesis, request.source, name=name, subject=request.subject,
                               target=self.target, mark=mark, header=request.source.header)

    def _add(self, layer: tuple) -> str:
        """Add ``layer`` (or update the layer of its name); its name."""
        data, kwargs, _ = layer
        put_layer(self.viewer, data, kwargs)
        return kwargs["name"]

    def _remove(self, which) -> None:
        for layer in [layer for layer in self.viewer.layers if which(layer)]:
            self.viewer.layers.remove(layer)
