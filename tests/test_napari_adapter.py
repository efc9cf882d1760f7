"""napari's internals are reached from one module, and each reach falls back to a plainer way on a
napari laid out otherwise: the tiles keep napari's name labels, the grid and canvas are found."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from napari_medsynth import _napari_adapter as adapter


def test_tile_labels_show_the_role_cut_to_the_tile(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((4, 8, 8)), name="IXI002 PD squared error [G4+RL]")
    adapter.show_tile_label(layer, "error G4+RL (a long role)", room_px=80)
    label = adapter.tile_label(layer)
    assert label.visible and label.text == "error G…" and not layer.name_overlay.visible
    adapter.hide_tile_label(layer)
    assert not label.visible and not layer.name_overlay.visible


def test_without_napari_drawing_internals_the_tiles_keep_napari_name_labels(make_napari_viewer, monkeypatch):
    monkeypatch.setattr(adapter, "_DRAWN", False)  # a napari whose visuals are laid out otherwise
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((4, 8, 8)), name="IXI002 T2")
    adapter.show_tile_label(layer, "source T2")
    assert adapter.tile_label(layer) is None and layer.name_overlay.visible


def test_grid_and_canvas_on_this_napari_and_on_one_without_a_canvas(make_napari_viewer):
    viewer = make_napari_viewer()
    assert adapter.grid_settings(viewer) is viewer.canvas.grid
    assert adapter.canvas_width(viewer) > 0
    older = SimpleNamespace(grid=SimpleNamespace(enabled=False))  # napari < 0.9: viewer.grid, no canvas
    assert adapter.grid_settings(older) is older.grid and adapter.canvas_width(older) is None


def test_grid_tile_takes_either_signature_of_grid_position():
    layers = ["a", "b", "c"]

    class NewGrid:  # napari 0.9: position(index, layers)
        def position(self, index, layers_):
            assert layers_ is layers
            return (0, index)

    class OldGrid:  # before: position(index, number of layers)
        def position(self, index, count):
            if not isinstance(count, int):
                raise TypeError("nlayers")
            return (index // 2, index % 2)

    assert adapter.grid_tile(NewGrid(), layers, "c") == (0, 2)
    assert adapter.grid_tile(OldGrid(), layers, "c") == (1, 0)


def test_after_first_paint_calls_back_once_the_window_paints(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    called = []
    adapter.after_first_paint(viewer, lambda: called.append(True))
    viewer.window._qt_window.update()
    qtbot.waitUntil(lambda: called == [True], timeout=10_000)
    without_window = SimpleNamespace(window=SimpleNamespace())  # no Qt main window to watch: at once
    adapter.after_first_paint(without_window, lambda: called.append(False))
    qtbot.waitUntil(lambda: called == [True, False], timeout=10_000)
