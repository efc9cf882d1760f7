"""Save docs/napari_synthesis_widget.png (the `medsynth demo` window) and docs/napari_training_widget.png.

Run under a display (or ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_widgets.py PHANTOM_DIR``),
where PHANTOM_DIR holds a few subjects from ``medsynth phantom``.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_medsynth._widgets._shared import RUNS
from napari_medsynth._widgets.training import TrainingWidget
from napari_medsynth.demo import open_demo_viewer


def wait(condition, timeout: float) -> None:
    end = time.time() + timeout
    while not condition() and time.time() < end:
        QApplication.processEvents()
        time.sleep(0.05)
    QApplication.processEvents()


def synthesis_screenshot(out: Path) -> None:
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 950)
    _, widget = open_demo_viewer(viewer, stride=8)
    wait(lambda: widget.worker is None, 900)
    depth = viewer.dims.range[0]
    viewer.dims.set_point(0, depth.start + 0.55 * (depth.stop - depth.start))
    viewer.reset_view()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    viewer.close()


def training_screenshot(data: Path, out: Path) -> None:
    RUNS.set(Path(tempfile.mkdtemp()) / "runs")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 950)
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train generator")
    widget._data.value = data
    widget._variant.value = "G3"
    widget._epochs.value = 3
    widget._width.value = 0.0625
    widget._lr.value = 1e-3
    widget._val_stride.value = 32
    widget._device.value = "cpu"
    widget._workers.value = 0
    widget.start()
    wait(lambda: len(widget._plot.points["psnr"]) >= 2, 1200)
    widget._plot.draw()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    widget.stop()
    wait(lambda: widget.process is None, 300)
    viewer.close()


def main(data: str, docs: str = "docs") -> None:
    warnings.filterwarnings("ignore", message="napari support for the PyQt5 backend")  # no toast in the pictures
    docs_dir = Path(docs)
    synthesis_screenshot(docs_dir / "napari_synthesis_widget.png")
    training_screenshot(Path(data), docs_dir / "napari_training_widget.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
