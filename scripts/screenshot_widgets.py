"""Save docs/napari_synthesis_widget.png (the `medsynth demo` window, both docks),
docs/napari_save_as_nifti.png (File > Save Selected Layers with the NIfTI type),
docs/napari_folder_mode.png (a folder under way) and docs/napari_training_widget.png (live
curves), at 1600x1000.

Run under a display (or ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_widgets.py PHANTOM_DIR``),
where PHANTOM_DIR holds a few subjects from ``medsynth phantom``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import napari
from napari._qt import qt_main_window
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QComboBox, QDockWidget, QLineEdit

from napari_medsynth._widgets._shared import RUNS
from napari_medsynth._widgets.training import TrainingWidget
from napari_medsynth.core.options import SynthesisOptions
from napari_medsynth.demo import open_demo_viewer


def wait(condition, timeout: float) -> None:
    end = time.time() + timeout
    while not condition() and time.time() < end:
        QApplication.processEvents()
        time.sleep(0.05)
    QApplication.processEvents()


def raise_dock(widget) -> None:
    """Bring the dock (tab) holding ``widget`` to the front."""
    dock = widget.native
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    dock.raise_()
    QApplication.processEvents()


def save_dialog_screenshot(viewer, layer_name: str, out: Path) -> None:
    """File > Save Selected Layers on ``layer_name``, with the NIfTI type chosen: the whole screen,
    grabbed while napari's (modal) dialog is open, which is then cancelled."""
    viewer.layers.selection = {viewer.layers[layer_name]}

    def grab():
        dialog = QApplication.activeModalWidget()
        types = dialog.findChild(QComboBox, "fileTypeCombo") or dialog.findChildren(QComboBox)[-1]
        nifti = next(i for i in range(types.count()) if ".nii" in types.itemText(i))
        types.setCurrentIndex(nifti)
        types.activated.emit(nifti)
        dialog.findChild(QLineEdit, "fileNameEdit").setText("phantom_T2_synth_G4RL.nii.gz")
        QApplication.processEvents()
        QApplication.primaryScreen().grabWindow(0).save(str(out))
        dialog.reject()

    QTimer.singleShot(1500, grab)
    viewer.window._qt_viewer._save_layers_dialog(selected=True)


def screenshots(data: Path, docs: Path) -> None:
    """One 1600x1000 window with both docks (tabbed on the right): the demo's side-by-side grid, then
    a small training run's live curves."""
    RUNS.set(Path(tempfile.mkdtemp()) / "runs")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    _, synthesis = open_demo_viewer(viewer, options=SynthesisOptions(stride=8))
    training = TrainingWidget(viewer)
    viewer.window.add_dock_widget(training, name="Train generator", tabify=True)
    raise_dock(synthesis)  # the synthesis tab in front
    wait(lambda: synthesis.worker is None, 1800)
    depth = viewer.dims.range[0]
    viewer.dims.set_point(0, depth.start + 0.55 * (depth.stop - depth.start))
    viewer.screenshot(str(docs / "napari_synthesis_widget.png"), canvas_only=False, flash=False)

    save_dialog_screenshot(viewer, "phantom T2 synth [G4+RL]", docs / "napari_save_as_nifti.png")

    synthesis.configure(options=synthesis.options().replace(stride=16))
    synthesis.start_folder(data, Path(tempfile.mkdtemp()) / "syntheses")
    wait(lambda: synthesis.progress[0] >= 1, 1800)  # the second file under way
    synthesis._scroll.root_native_widget.verticalScrollBar().setValue(10_000)  # the folder fields in view
    viewer.screenshot(str(docs / "napari_folder_mode.png"), canvas_only=False, flash=False)
    wait(lambda: synthesis.worker is None, 1800)

    raise_dock(training)
    training._data.value = data
    training._variant.value = "G3"
    training._epochs.value = 3
    training._width.value = 0.0625
    training._lr.value = 1e-3
    training._val_stride.value = 32
    training._device.value = "cpu"
    training._workers.value = 0
    training.start()
    wait(lambda: len(training._plot.points["psnr"]) >= 2, 1800)
    training._plot.draw()
    viewer.screenshot(str(docs / "napari_training_widget.png"), canvas_only=False, flash=False)
    training.stop()
    wait(lambda: training.process is None, 300)
    viewer.close()


def main(data: str, docs: str = "docs") -> None:
    # No toast in the pictures: napari shows its PyQt5 deprecation notice when the window first
    # appears, as a notification (not a Python warning that a filter would catch)
    qt_main_window.SHOW_QT_WARNING = False
    screenshots(Path(data), Path(docs))


if __name__ == "__main__":
    main(*sys.argv[1:])
