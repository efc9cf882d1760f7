"""The Qt binding the suite runs on is the one asked for (QT_API; PyQt5 by default), and napari's
viewer starts on it without a deprecation notice on Qt6."""

from __future__ import annotations

import importlib.util
import os


def test_the_binding_is_the_one_asked_for(make_napari_viewer):
    from napari.utils.notifications import notification_manager
    from qtpy import API_NAME

    wanted = os.environ.get("QT_API", "pyqt5").lower()
    assert API_NAME.lower() == wanted
    if wanted == "pyqt6":  # the Qt6 leg: PyQt5 is not installed at all
        assert importlib.util.find_spec("PyQt5") is None
        shown = []
        notification_manager.notification_ready.connect(shown.append)
        try:
            make_napari_viewer()
        finally:
            notification_manager.notification_ready.disconnect(shown.append)
        assert not [n.message for n in shown if "deprecat" in n.message.lower()]
