"""The one module that reaches into napari's internals or bridges its versions; each reach has a
fallback that keeps the plugin working, in a plainer way, on a napari laid out otherwise.

- Tile labels: short role labels ("source PD", "G4+RL", "truth T2", "error", ...) on napari's grid
  tiles (napari's ``_vispy`` overlays and a layer's ``_overlays``; fallback: napari's name labels).
- The grid's settings and a layer's tile (``viewer.canvas.grid`` from napari 0.9, ``viewer.grid``
  before), the canvas width, the Qt main window's first paint and its bottom-left corner
  (``window._qt_window``).

napari labels a grid tile with its layer's full name (``layer.name_overlay``), which a narrow tile
cuts to "IXI002 PD s"; it has no public per-layer text. A :class:`TileLabel` is a layer-name
overlay drawing a text of our choosing, with napari's own visual, so the tiles name their roles
while the layer names keep subject, contrast and generator. Where napari's drawing internals are
not what this module knows, the tiles fall back to napari's name labels.
"""

from __future__ import annotations

from napari.components.overlays import LayerNameOverlay

__all__ = ["TileLabel", "after_first_paint", "canvas_width", "dock_below_canvas", "fit_label", "grid_settings",
           "grid_tile", "hide_tile_label", "show_tile_label", "tile_label"]

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


def grid_settings(viewer):
    """napari's grid settings (``viewer.canvas.grid`` from napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def grid_tile(grid, layers, name: str) -> tuple[int, int]:
    """(row, column) of layer ``name``'s tile in napari's grid (its API changed in napari 0.9)."""
    index = layers.index(name)
    try:
        return tuple(grid.position(index, layers))
    except TypeError:  # napari < 0.9: position(index, nlayers)
        return tuple(grid.position(index, len(layers)))


def canvas_width(viewer) -> float | None:
    """The canvas' width in pixels (``viewer.canvas.size`` from napari 0.9), or None where unknown."""
    size = getattr(getattr(viewer, "canvas", None), "size", None)  # (height, width)
    return size[1] if size is not None else None


def after_first_paint(viewer, callback) -> None:
    """Call ``callback`` (on the GUI thread) right after ``viewer``'s window first paints (at once
    where this napari has no Qt main window to watch)."""
    from qtpy.QtCore import QEvent, QObject, QTimer

    window = getattr(viewer.window, "_qt_window", None)
    if window is None:
        QTimer.singleShot(0, callback)
        return

    class FirstPaint(QObject):
        def eventFilter(self, watched, event):  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Paint:
                window.removeEventFilter(self)
                QTimer.singleShot(0, callback)
            return False

    window._medsynth_first_paint = FirstPaint(window)  # kept alive with the window
    window.installEventFilter(window._medsynth_first_paint)


def dock_below_canvas(viewer, widget, name: str) -> None:
    """Dock ``widget`` at the bottom, under the canvas and the right-hand docks only: the left-hand docks
    (the layer list and its controls) keep the window's full height (Qt gives the bottom area the
    bottom-left corner, which squeezed the layer list to two rows in napari's default window)."""
    from qtpy.QtCore import Qt

    window = getattr(viewer.window, "_qt_window", None)
    if window is not None and hasattr(window, "setCorner"):
        window.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
    viewer.window.add_dock_widget(widget, name=name, area="bottom")
