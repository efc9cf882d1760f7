"""What the two dock widgets share: the runs folder, device choices and error reporting."""

from __future__ import annotations

import logging
from dataclasses import MISSING
from pathlib import Path

from magicgui.widgets import Container
from psygnal import Signal
from qtpy.QtCore import QEvent, QObject

from ..core.choices import Choice, DeviceChoices
from ..core.errors import MedSynthError
from ._settings import load_settings, save_settings

__all__ = ["RUNS", "field_widget", "fit_text_height", "narrow", "notify_warnings", "report_error",
           "scrolling_form"]

log = logging.getLogger("napari_medsynth")


class RunsFolder:
    """The training runs folder: the training widget writes runs there, the synthesis widget lists them.

    Read from the settings when first asked for (not at import). ``changed`` is emitted with the
    folder when it is set and when a run adds a checkpoint.
    """

    changed = Signal(object)

    def __init__(self):
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = Path(load_settings()["runs_folder"]).expanduser()
        return self._folder

    @folder.setter
    def folder(self, folder) -> None:
        self._folder = Path(folder)

    def set(self, folder) -> None:
        """Point both widgets at ``folder`` (remembered for the next start)."""
        folder = Path(folder).expanduser()
        if folder != self.folder:
            self._folder = folder
            save_settings(runs_folder=folder)
            self.changed.emit(folder)

    def touched(self) -> None:
        """A run in the folder wrote a new checkpoint."""
        self.changed.emit(self.folder)


RUNS = RunsFolder()


def field_widget(option_field, value=MISSING):
    """The one widget builder of both docks: the widget of a field of
    :class:`~napari_medsynth.core.synthesis.options.SynthesisOptions` or
    :class:`~napari_medsynth.core.training.config.TrainConfig` (:func:`~napari_medsynth.core.fields.option`),
    from its metadata (label, help as tooltip, choices, range, file picker), showing ``value`` (default:
    the field's default)."""
    from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, LineEdit, SpinBox

    meta, default = option_field.metadata, option_field.default
    value = default if value is MISSING else value
    options = {"label": meta.get("label") or option_field.name.replace("_", " "), "tooltip": meta["help"] or None,
               **meta.get("widget", {})}
    if "mode" in options:  # a file or folder picker
        return FileEdit(value=value, **options)
    choices = meta["choices"].offered() if isinstance(meta["choices"], DeviceChoices) else meta["choices"]
    if choices is None and isinstance(default, Choice):
        choices = [member.value for member in type(default)]
    if choices is not None:
        return ComboBox(choices=choices, value=value.value if isinstance(value, Choice) else value, **options)
    kind = value if default is None else default  # a field without a default takes its value's type
    if isinstance(kind, bool):
        return CheckBox(text=options.pop("label"), value=value, **options)
    if isinstance(kind, int):
        return SpinBox(value=value, **{"min": 1, "max": 10_000, **options})
    if isinstance(kind, float):
        return FloatSpinBox(value=value, **options)
    return LineEdit(value="" if value is None else str(value), **options)


def report_error(error: BaseException, what: str) -> str:
    """Show ``error`` as a one-line napari notification (the traceback goes to the log); return the line."""
    from napari.utils.notifications import show_error

    if isinstance(error, MedSynthError):
        line = str(error)
        log.info("%s: %s", what, line, exc_info=error)  # the cause, if any, stays in the log
    elif isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        line = f"{what}: out of memory; close other programs, or choose the CPU if it was the GPU"
    else:
        log.error("%s failed", what, exc_info=error)
        detail = str(error).splitlines()[0] if str(error) else ""
        line = f"{what} failed: {type(error).__name__}{': ' + detail if detail else ''}"
    show_error(line)
    return line


def notify_warnings(worker) -> None:
    """Show each warning ``worker``'s function gives (a source that looks like another contrast, NaN
    voxels set to 0) as a napari warning notification: napari's own relay of a worker's warnings is
    never connected (its notifying mixin comes after ``QRunnable``, whose ``__init__`` stops the chain)."""
    from napari.utils.notifications import show_warning

    shown = set()  # a preview and its refinement check the same input: one notification per job

    def once(args):
        if str(args[0]) not in shown:
            shown.add(str(args[0]))
            show_warning(str(args[0]))

    worker.warned.connect(once)


def scrolling_form(dock, widgets) -> Container:
    """Lay ``widgets`` out in a form that scrolls vertically inside the ``dock`` container (napari's
    docks do not scroll, and two tall docks would push the window off a 1000-pixel screen), each
    :func:`narrow` so that the form fits napari's default window; the form."""
    narrow(*widgets)
    form = Container(widgets=widgets, scrollable=True)
    dock.native.layout().addWidget(form.root_native_widget)
    dock.native.layout().setContentsMargins(0, 0, 0, 0)
    return form


def narrow(*widgets) -> None:
    """Keep long text from widening the dock: labels wrap, combo boxes size to a short text
    and elide the rest (the generator list has its full description as a tooltip), a file
    field's button says "..." (its tooltip says what it chooses)."""
    from qtpy.QtWidgets import QComboBox, QLabel, QSizePolicy

    for widget in widgets:
        button = getattr(widget, "choose_btn", None)  # magicgui's FileEdit: "Choose directory" is 130 px
        if button is not None:
            button.tooltip = button.text.lower()
            button.text = "..."
            button.native.setMaximumWidth(button.native.fontMetrics().horizontalAdvance("...") + 24)
            widget.line_edit.native.setMinimumWidth(60)
            continue
        native = widget.native
        if isinstance(native, QLabel):
            native.setWordWrap(True)
            native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
            native.installEventFilter(_WHOLE_TEXT)
        elif isinstance(native, QComboBox):
            native.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            native.setMinimumContentsLength(12)


def fit_text_height(label) -> None:
    """Make a wrapped QLabel as tall as its text at its width (a form lays a label out by its one-line
    height, which cut a long status line to its first lines); call it when its text changes."""
    wanted = label.heightForWidth(label.width()) if label.text() else 0
    if wanted > 0 and label.minimumHeight() != wanted:
        label.setMinimumHeight(wanted)


class _WholeText(QObject):
    """Keeps each wrapped label of a form as tall as its text when its width changes."""

    def eventFilter(self, label, event):  # noqa: N802 (Qt's name)
        if event.type() in (QEvent.Resize, QEvent.Show) and label.wordWrap():
            fit_text_height(label)
        return False


_WHOLE_TEXT = _WholeText()
