"""What the synthesis dock tells its user while and after it works: the status line (each stage, its
figures, the outcome), the run's warnings (kept in view until the next run), the progress bar, and
napari's status bar."""

from __future__ import annotations

from magicgui.widgets import Label, ProgressBar
from psygnal import Signal

from ._shared import fit_text_height

__all__ = ["DockStatus"]

_WARNING_STYLE = "color: #e8a33d;"  # napari's warning amber, readable on its dark and light themes


class DockStatus:
    """The dock's status line, its warnings and its progress bar; ``changed`` tells each new line."""

    changed = Signal(str)

    def __init__(self, viewer):
        self._viewer = viewer
        self.progress = ProgressBar(label="patches", value=0, max=1, visible=False)
        self.progress.native.setFormat("%v of %m")
        self.line = Label(value="")
        self.warning = Label(value="", visible=False)
        self.warning.native.setStyleSheet(_WARNING_STYLE)
        self.scroll = None  # the dock's scroll area, once it is laid out
        self._warnings: list[str] = []

    def widgets(self) -> list:
        """In the order the dock shows them, right below its buttons."""
        return [self.progress, self.line, self.warning]

    @property
    def text(self) -> str:
        return self.line.value

    @text.setter
    def text(self, line: str) -> None:
        self.line.value = line
        fit_text_height(self.line.native)
        self.changed.emit(line)

    def notify(self, line: str, toast: bool = True) -> None:
        """``line`` in the status line (and as a napari notification with ``toast``)."""
        if toast:
            from napari.utils.notifications import show_info

            show_info(f"MedSynth: {line}")
        self.text = line

    @property
    def warnings(self) -> list[str]:
        """The warnings of the last run (or of the form), in the order they came."""
        return list(self._warnings)

    def warn(self, line: str) -> None:
        """Keep ``line`` in view under the status line (once) until the next run."""
        if line not in self._warnings:
            self._warnings.append(line)
            self.warning.value = "\n".join(f"⚠ {each}" for each in self._warnings)
            self.warning.visible = True
            fit_text_height(self.warning.native)

    def clear_warnings(self) -> None:
        self._warnings = []
        self.warning.value, self.warning.visible = "", False

    def started(self) -> None:
        """A run began: its progress bar from 0, no warnings of an earlier run."""
        self.clear_warnings()
        self.progress.visible, self.progress.value = True, 0

    def advance(self, unit: str, done: int, total: int, text: str) -> None:
        """The work's progress: in the bar (the status line keeps the figures of the stage shown), and
        in napari's status bar after the line; a folder's file names the status line too."""
        self.progress.label = unit
        self.progress.max, self.progress.value = total, done
        if unit == "files":
            self.text = text
        self._viewer.status = f"MedSynth: {self.text} ({text})"

    def finished(self) -> None:
        """No run is going on: the bar goes, napari's status bar keeps the outcome."""
        self.progress.label, self.progress.visible = "patches", False
        self._viewer.status = f"MedSynth: {self.text}"

    def reveal(self, *_) -> None:
        """Scroll the status line, or the warnings under it, into view once their text is laid out."""
        from qtpy.QtCore import QTimer

        def show():
            if self.scroll is not None:
                self.scroll.ensureWidgetVisible((self.warning if self._warnings else self.line).native, 0, 0)

        QTimer.singleShot(0, show)
