"""Save docs/napari_synthesis_widget.png (the `medsynth demo` window, both docks),
docs/napari_save_as_nifti.png (File > Save Selected Layers with the NIfTI type),
docs/napari_folder_mode.png (a folder under way) and docs/napari_training_widget.png (live
curves), at 1600x1000; with ``default`` as the third argument, the synthesis and training pictures
at napari's default window size instead (``..._default.png``).

Run under a display (or ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_widgets.py PHANTOM_DIR
[docs [default]]``), where PHANTOM_DIR holds a few subjects from ``medsynth phantom``.
"""

from __future__ import annotations

import os
import tempfile

# napari as a new user has it: its default window, not the size an earlier run left in its settings
os.environ.setdefault("NAPARI_CONFIG", os.path.join(tempfile.mkdtemp(), "napari.yaml"))

import sys
import time
from pathlib import Path

import napari
from napari._qt.dialogs.qt_notification import NapariQtNotification
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QComboBox, QDockWidget, QLineEdit

from napari_medsynth._widgets._shared import RUNS
from napari_medsynth._widgets.training import TrainingWidget
from napari_medsynth.core.synthesis.options import SynthesisOptions
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


def close_toasts(viewer) -> None:
    """Close napari's notification toasts (the plugin's one-time reader notice), which would cover the canvas."""
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    QApplication.processEvents()


def screenshots(data: Path, docs: Path, default_size: bool = False) -> None:
    """One 1600x1000 window (or napari's default one) with both docks (tabbed on the right): the
    demo's side-by-side grid, then a small training run's live curves."""
    RUNS.set(Path(tempfile.mkdtemp()) / "runs")
    viewer = napari.Viewer(show=True)
    if not default_size:
        viewer.window.resize(1600, 1000)
    suffix = "_default" if default_size else ""
    _, synthesis = open_demo_viewer(viewer, options=SynthesisOptions(stride=8))
    training = TrainingWidget(viewer)
    viewer.window.add_dock_widget(training, name="Train generator", tabify=True)
    raise_dock(synthesis)  # the synthesis tab in front
    wait(lambda: synthesis.worker is None, 1800)
    depth = viewer.dims.range[0]
    viewer.dims.set_point(0, depth.start + 0.55 * (depth.stop - depth.start))
    close_toasts(viewer)
    viewer.screenshot(str(docs / f"napari_synthesis_widget{suffix}.png"), canvas_only=False, flash=False)
    if default_size:
        training_screenshot(viewer, training, data, docs / "napari_training_widget_default.png")
        return

    save_dialog_screenshot(viewer, "phantom T2 synth [G4+RL]", docs / "napari_save_as_nifti.png")

    synthesis.configure(options=synthesis.options().replace(stride=16))
    synthesis.start_folder(data, Path(tempfile.mkdtemp()) / "syntheses")
    wait(lambda: synthesis.progress[0] >= 1, 1800)  # the second file under way
    synthesis._scroll.root_native_widget.verticalScrollBar().setValue(10_000)  # the folder fields in view
    viewer.screenshot(str(docs / "napari_folder_mode.png"), canvas_only=False, flash=False)
    wait(lambda: synthesis.worker is None, 1800)

    training_screenshot(viewer, training, data, docs / "napari_training_widget.png")


def training_screenshot(viewer, training, data: Path, out: Path) -> None:
    """A small G3 run's live curves after two epochs, then Stop and close."""
    raise_dock(training)
    training.fields["data"].value = data
    training.fields["variant"].value = "G3"
    training.fields["epochs"].value = 3
    training.fields["width"].value = 0.0625
    training.fields["lr"].value = 1e-3
    training.fields["val_stride"].value = 32
    training.fields["device"].value = "cpu"
    training.fields["workers"].value = 0
    training.start()
    wait(lambda: len(training.plot.points["psnr"]) >= 2, 1800)
    training.plot.draw()
    close_toasts(viewer)
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    training.stop()
    wait(lambda: training.process is None, 300)
    viewer.close()


def main(data: str, docs: str = "docs", size: str = "1600x1000") -> None:
    screenshots(Path(data), Path(docs), default_size=size == "default")


if __name__ == "__main__":
    main(*sys.argv[1:])
