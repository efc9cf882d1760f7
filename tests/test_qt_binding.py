"""The Qt binding the suite runs on is the one asked for (QT_API; PyQt6 by default, the binding napari
recommends and the README installs), and napari's viewer starts on it without a deprecation notice."""

from __future__ import annotations

import importlib.util
import os


def test_the_binding_is_the_one_asked_for(make_napari_viewer):
    from napari.utils.notifications import notification_manager
    from qtpy import API_NAME

    wanted = os.environ.get("QT_API", "pyqt6").lower()
    assert API_NAME.lower() == wanted
    if wanted == "pyqt5":  # the PyQt5 leg (napari deprecates PyQt5, and says so): PyQt6 is not installed there
        assert importlib.util.find_spec("PyQt6") is None
    else:  # the README's install: PyQt6 alone, and no deprecation notice covering the canvas
        assert importlib.util.find_spec("PyQt5") is None
        shown = []
        notification_manager.notification_ready.connect(shown.append)
        try:
            make_napari_viewer()
        finally:
            notification_manager.notification_ready.disconnect(shown.append)
        assert not [n.message for n in shown if "deprecat" in n.message.lower()]
