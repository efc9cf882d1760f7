"""Short role labels ("source PD", "synthesis", "truth T2", "error", ...) on napari's grid tiles.

napari labels a grid tile with its layer's full name (``layer.name_overlay``), which a narrow tile
cuts to "IXI002 PD s"; it has no public per-layer text. A :class:`TileLabel` is a layer-name
overlay drawing a text of our choosing, with napari's own visual, so the tiles name their roles
while the layer names keep subject, contrast and generator. Where napari's drawing internals are
not what this module knows, the tiles fall back to napari's name labels.
"""

from __future__ import annotations

from napari.components.overlays import LayerNameOverlay

__all__ = ["TileLabel", "fit_label", "hide_tile_label", "show_tile_label", "tile_label"]

_KEY = "medsynth_tile_label"
CHAR_PX = 9.5  # a label character's advance at font size 9, canvas pixels (measured: 9.4 for "error G3 (g…")


def fit_label(text: str, room_px: float | None) -> str:
    """``text`` cut to what a tile ``room_px`` wide shows, its end replaced by "…" (None: all of it)."""
    if room_px is None or len(text) * CHAR_PX <= room_px:
        return text
    keep = max(1, int(room_px // CHAR_PX) - 1)
    return text[:keep].rstrip() + "…"


class TileLabel(LayerNameOverlay):
    """A layer's grid-tile label reading ``text`` instead of the layer's name."""

    text: str = ""
    font_size: float = 9  # (napari: 10) three role labels fit napari's default window with room to spare


def _register() -> bool:
    """Draw :class:`TileLabel` with napari's layer-name visual fed from ``text``; False where the
    napari installed lays its visuals out otherwise."""
    try:
        from napari._vispy.overlays.text import VispyLayerNameOverlay
        from napari._vispy.utils.visual import overlay_to_visual
    except ImportError:
        return False

    class VispyTileLabel(VispyLayerNameOverlay):
        def _connect_events(self):
            self.overlay.events.text.connect(self._on_text_change)

        def _on_text_change(self):
            self.node.text = self.overlay.text
            self._on_position_change()

    overlay_to_visual[TileLabel] = VispyTileLabel
    return True


_DRAWN = _register()


def tile_label(layer) -> TileLabel | None:
    """The role label of ``layer``'s tile, if it has one."""
    return layer._overlays.get(_KEY)


def show_tile_label(layer, text: str, room_px: float | None = None) -> None:
    """Label ``layer``'s grid tile with ``text``, cut to fit ``room_px`` (napari's name label where the
    role label cannot be drawn)."""
    if not _DRAWN:
        layer.name_overlay.visible = True
        return
    text = fit_label(text, room_px)
    label = tile_label(layer)
    if label is None:
        layer._overlays[_KEY] = TileLabel(text=text, visible=True)
    else:
        label.text, label.visible = text, True
    layer.name_overlay.visible = False


def hide_tile_label(layer) -> None:
    """No label on ``layer``'s tile."""
    layer.name_overlay.visible = False
    label = tile_label(layer)
    if label is not None:
        label.visible = False
