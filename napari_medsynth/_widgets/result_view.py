"""The synthesis dock's layer bookkeeping: results replace their generator's earlier layers, a
preview is swapped for its refinement, a cancelled rerun keeps the finished result, and the grid
shows source | synthesis | truth | maps side by side."""

from __future__ import annotations

from dataclasses import dataclass

from .._layer_metadata import LayerMetadata
from .._layers import result_layers, volume_layer
from .._napari_adapter import canvas_width, grid_settings, grid_tile, hide_tile_label, show_tile_label
from ..core.choices import Direction, MapKind
from ..core.synthesis.pipeline import SynthesisResult
from .requests import SynthesisRequest

__all__ = ["PREVIEW", "ResultView", "ShownResult", "arrange_grid", "put_layer"]

PREVIEW = "preview"  # the label suffix of a one-pass preview's layers until the refinement replaces them
# tile labels, short enough for napari's default window (three tiles of ~110 px)
MAP_ROLES = {MapKind.SPREAD: "spread", MapKind.SQUARED_ERROR: "error", MapKind.GRADIENT_DIFFERENCE: "grad. diff."}


@dataclass(frozen=True)
class ShownResult:
    """A result on screen: its synthesis layer's name, what made it and its status line (whether it
    is a preview: its layer's :class:`LayerMetadata` says)."""

    name: str
    request: SynthesisRequest
    line: str = ""


class ResultView:
    """The result layers of one synthesis dock in ``viewer``."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.shown: ShownResult | None = None  # the result Save writes
        self.finished: ShownResult | None = None  # the last refined result
        self._preview_run: str | None = None  # the run key of the preview on screen
        self._grid_tiles = ()

    def show(self, request: SynthesisRequest, result: SynthesisResult, *, preview: bool, side_by_side: bool) -> str:
        """Show ``result`` (replacing this generator's earlier layers for the subject, or its preview);
        returns the synthesis layer's name."""
        if not preview:
            self.drop_preview()
        provenance = result.provenance
        target = Direction(provenance.direction).contrasts[1]
        label = f"{provenance.variant} {PREVIEW}" if preview else provenance.variant
        run_key = f"{request.subject} {target} [{label}]"
        mark = LayerMetadata(provenance=provenance.record(), run=run_key, preview=preview,
                             synthesized_from=request.source_layer, ground_truth=request.truth_layer,
                             metrics=result.metrics.as_dict() if result.metrics is not None else {})
        layers = result_layers(result, request.source, subject=request.subject, label=label, target=target, mark=mark,
                               against=request.truth_subject)
        names = self._add(layers, run_key)
        self._preview_run = run_key if preview else None
        self.shown = ShownResult(names[0], request)
        self.apply_grid(side_by_side)
        return names[0]

    def settle(self, line: str) -> None:
        """The shown result is the refined one; ``line`` is its status."""
        self.shown = self.finished = ShownResult(self.shown.name, self.shown.request, line)

    def drop_preview(self) -> None:
        """Remove the preview's layers (the refinement replaces them, or a finished result stays)."""
        run_key, self._preview_run = self._preview_run, None
        layers = self.viewer.layers
        for layer in [layer for layer in layers if run_key and LayerMetadata.of(layer).run == run_key]:
            layers.remove(layer)

    def keep_finished(self, side_by_side: bool) -> str:
        """After a cancel or an error: the earlier finished result, when it is still on screen, stays
        (and is what Save writes) and the preview goes; else the preview stays, named as one.
        Returns the words that say which."""
        if self._preview_run is None:
            return ""
        if self.finished is not None and self.finished.name in self.viewer.layers:
            self.drop_preview()
            self.shown = self.finished
            self.apply_grid(side_by_side)
            return f"; the earlier result stays: {self.finished.line}"
        return f"; only the one-pass preview is left ({self.shown.name}): Save writes that"

    def open_input(self, volume) -> str:
        """The layer of an input ``volume`` (a folder's file), added if it is not there yet; its name."""
        data, kwargs, _ = volume_layer(volume)
        if kwargs["name"] not in self.viewer.layers:
            self.viewer.add_image(data, **kwargs)
        return kwargs["name"]

    def _add(self, layers: list[tuple], run_key: str) -> list[str]:
        """Add the result layers in their order, replacing the run's previous ones."""
        names = [kwargs["name"] for _, kwargs, _ in layers]
        existing = self.viewer.layers
        for layer in list(existing):
            if LayerMetadata.of(layer).run == run_key and layer.name not in names:
                existing.remove(layer)
        for previous, (data, kwargs, _) in zip([None, *names], layers):
            put_layer(self.viewer, data, kwargs)
            if previous is not None:  # a map added by a later run goes beside its synthesis
                existing.move(existing.index(kwargs["name"]), existing.index(previous) + 1)
        return names

    def apply_grid(self, side_by_side: bool) -> None:
        """Side by side: source | synthesis | ground truth | maps in napari's grid (one shared camera),
        each tile labelled with its role and the whole head in view. Off: the maps are hidden
        and the synthesis is on top, over its source."""
        grid, layers = grid_settings(self.viewer), self.viewer.layers
        shown = self.shown if self.shown is not None and self.shown.name in layers else None
        if not side_by_side or shown is None:
            was_grid = grid.enabled
            grid.enabled = False
            for layer in layers:
                hide_tile_label(layer)
                if LayerMetadata.of(layer).run is not None and LayerMetadata.of(layer).map is not None:
                    layer.visible = False
            if shown is not None:
                layers[shown.name].visible = True
                layers.move(layers.index(shown.name), len(layers))
                layers.selection = {layers[shown.name]}  # the layer controls act on what is seen, not a hidden map
            if was_grid:
                self.viewer.reset_view()
            self._grid_tiles = ()
            return
        synthesis = layers[shown.name]
        record = LayerMetadata.of(synthesis)
        ordered = [record.synthesized_from, synthesis.name, record.ground_truth,
                   *(layer.name for layer in layers
                     if LayerMetadata.of(layer).run == record.run and layer.name != synthesis.name)]
        ordered = [name for name in ordered if name and name in layers]
        self._grid_tiles = arrange_grid(self.viewer, _tile_roles(layers, synthesis, ordered), self._grid_tiles)


def put_layer(viewer, data, kwargs: dict) -> None:
    """Add an image layer, or give the layer of its name (an earlier result) the new data and look."""
    if kwargs["name"] not in viewer.layers:
        viewer.add_image(data, **kwargs)
        return
    layer = viewer.layers[kwargs["name"]]
    layer.data = data
    for key in ("scale", "translate", "contrast_limits", "colormap", "metadata"):
        setattr(layer, key, kwargs[key])


def arrange_grid(viewer, tiles: dict[str, str], previous=(), columns: int = 3) -> tuple[str, ...]:
    """Show the layers named in ``tiles`` (in its order, row by row, ``columns`` wide) in napari's grid,
    each tile labelled with its text, every other layer hidden; the whole head fits each tile when the
    tiles differ from ``previous``. Returns the tiles' names (the next call's ``previous``)."""
    grid, layers = grid_settings(viewer), viewer.layers
    ordered = list(tiles)
    for layer in layers:
        layer.visible = layer.name in tiles
    for name in reversed(ordered):  # the first tile on top of the list
        layers.move(layers.index(name), len(layers))
    grid.shape = (-1, min(columns, len(ordered)))
    grid.enabled = True
    if grid_tile(grid, layers, ordered[0]) != (0, 0):  # this napari fills the grid from the bottom layer up
        for name in ordered:
            layers.move(layers.index(name), len(layers))
    width = canvas_width(viewer)
    room = width / min(columns, len(ordered)) - 12 if width is not None else None  # (12: the tile's padding)
    for layer in layers:
        if layer.name in tiles:
            show_tile_label(layer, tiles[layer.name], room)
        else:
            hide_tile_label(layer)
    if tuple(ordered) != tuple(previous):  # new tiles: fit the whole head into each
        viewer.reset_view()
    return tuple(ordered)


def _tile_roles(layers, synthesis, ordered: list[str]) -> dict[str, str]:
    """The tile label of each layer of ``ordered`` (source, synthesis, truth, maps): its role, with
    the contrast for the inputs."""
    record = LayerMetadata.of(synthesis)
    source, target = Direction(record.provenance["direction"]).contrasts
    generator = record.provenance["variant"]  # which made it, after a cancelled rerun too; between source and truth
    roles = {record.synthesized_from: f"source {source}",
             synthesis.name: f"{generator} {PREVIEW}" if record.preview else generator,
             record.ground_truth: f"truth {target}"}
    return {name: roles.get(name) or MAP_ROLES.get(LayerMetadata.of(layers[name]).map, name) for name in ordered}

