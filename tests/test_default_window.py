"""After the first run, at napari's default window size: the docks fit, every figure is in view,
the layer controls act on a visible layer, and each notice is said once."""

from __future__ import annotations

import re
import shutil

from conftest import laid_out
from qtpy.QtWidgets import QScrollArea
from test_widgets import (  # noqa: F401 (fixtures)
    notifications,
    open_phantom_subject,
    runs,
    synthesis_widget,
    tiny_checkpoint,
)

from napari_medsynth._napari_adapter import tile_label


def horizontal_ranges(widget) -> list[int]:
    """How far each scroll area of a dock scrolls sideways (0: it fits)."""
    return [area.horizontalScrollBar().maximum() for area in widget.native.findChildren(QScrollArea)]


def test_after_a_synthesis_the_dock_fits_and_the_status_bar_tells_the_outcome(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                                                phantom_dir):
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer(show=True)  # napari's own default window size
    open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint, preview_first=True, side_by_side=False)
    qtbot.waitUntil(lambda: laid_out(viewer.window._qt_window))  # the dock added: its scroll ranges set
    assert horizontal_ranges(widget) and set(horizontal_ranges(widget)) == {0}
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    qtbot.waitUntil(lambda: laid_out(viewer.window._qt_window))  # the outcome's status line laid out
    assert set(horizontal_ranges(widget)) == {0}, horizontal_ranges(widget)  # long status lines wrap
    assert not re.search(r"patch \d+ of \d+", viewer.status) and viewer.status == f"MedSynth: {widget.status}"
    assert "SD, PSNR" in widget.status and "head only" in widget.status  # units, and why the head figure is lower
    # side by side off: the maps are hidden, so the selected layer (what the layer controls act on) is the synthesis
    assert viewer.layers.selection and all(layer.visible for layer in viewer.layers.selection)
    assert viewer.layers.selection.active.name == "IXI001 PD synth [G3]"


def test_after_comparing_three_generators_every_row_of_the_figures_is_in_view(make_napari_viewer, qtbot,
                                                                              runs, phantom_dir):  # noqa: F811
    checkpoints = [str(tiny_checkpoint(runs / f"g{seed}" / "best.pt", seed=seed)) for seed in range(3)]
    viewer = make_napari_viewer(show=True)
    open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot)
    widget.configure("t2-pd", preview_first=False)
    widget.compare(checkpoints)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=180_000)
    qtbot.waitUntil(lambda: laid_out(viewer.window._qt_window))  # the table given the height of its rows
    table = widget.comparing.figures.table
    assert table.rowCount() == 4  # three generators and the mapping
    shown = table.viewport().rect()
    for row in range(table.rowCount()):
        assert shown.contains(table.visualRect(table.model().index(row, 0))), (row, shown)
    assert set(horizontal_ranges(widget)) == {0}
    widget.comparing.figures.select([widget.comparing.figures.rows[0].label])  # its maps join the grid: 4 tiles a row
    qtbot.waitUntil(lambda: laid_out(viewer.window._qt_window))  # the canvas at its size: the tiles' room
    tiles = [layer for layer in viewer.layers if layer.visible]
    assert len(tiles) == 8  # source, truth, three generators, the mapping, and two maps (no spread at 32)
    for layer in tiles:  # every tile's label fits its tile (it had read "source T" and "G1 grad.")
        assert label_width(viewer, layer) <= tile_room(viewer), (tile_label(layer).text, tile_room(viewer))


def tile_room(viewer) -> float:
    """The width (canvas pixels) a grid tile's label has."""
    canvas = viewer.window._qt_viewer.canvas
    return canvas.size[1] / viewer.canvas.grid.shape[1] - viewer.canvas.overlay_tiling.padding[0]


def label_width(viewer, layer) -> float:
    """The drawn width of ``layer``'s tile label (canvas pixels)."""
    label = tile_label(layer)
    assert label is not None and label.visible, layer.name
    visual = viewer.window._qt_viewer.canvas._layer_overlay_to_visual[layer][label]
    return visual.node.get_width_height()[0]


def test_a_t1_named_source_is_one_notification_per_run(make_napari_viewer, qtbot, runs, phantom_dir,  # noqa: F811
                                                        tmp_path, notifications):  # noqa: F811
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    t1 = tmp_path / "IXI001-Phantom-0001-T1.nii.gz"
    shutil.copy(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz", t1)
    viewer = make_napari_viewer()
    viewer.open(t1, plugin="napari-medsynth")
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint, preview_first=True, source=viewer.layers["IXI001 T1"])
    for _ in range(2):
        widget.start()  # a preview, then the patch average: the same source checked twice
        qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    said = [n.message for n in notifications if "looks like a T1 image (its name)" in n.message]
    assert len(said) == 2  # once per run
