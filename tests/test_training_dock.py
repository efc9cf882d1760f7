"""The training dock at napari's default window: it refuses a folder it cannot train before Start and says
why in full; its empty plot draws no axes of nothing; the mouse wheel over the plot scrolls the dock."""

from __future__ import annotations

import shutil

import pytest
from qtpy.QtCore import QPoint, QPointF, Qt
from qtpy.QtGui import QWheelEvent
from qtpy.QtWidgets import QApplication, QScrollArea
from test_widgets import runs  # noqa: F401 (a fixture)

from napari_medsynth._widgets.training import TrainingWidget
from napari_medsynth.core.simulation.phantom import write_phantom_dataset
from napari_medsynth.core.training.config import data_folder_check


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Folders of two and of three small phantom T2/PD pairs: {2: folder, 3: folder}."""
    three = tmp_path_factory.mktemp("three")
    write_phantom_dataset(three, 3, shape=(64, 64, 40))
    two = tmp_path_factory.mktemp("two")
    for path in sorted(three.glob("IXI00[12]-*")):
        shutil.copy(path, two)
    return {2: two, 3: three}


def training_dock(viewer) -> TrainingWidget:
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def scroll_area(widget) -> QScrollArea:
    """The dock's form, which scrolls vertically."""
    (area,) = widget.native.findChildren(QScrollArea)
    return area


def scrolled_to(dock, widget) -> bool:
    """Scroll the dock's form to ``widget`` as a user would (once the dock is laid out); whether it is in view."""
    scroll_area(dock).ensureWidgetVisible(widget)
    return in_view(widget)


def in_view(widget) -> bool:
    """No part of ``widget`` is clipped by the dock, or scrolled out of it."""
    return widget.isVisible() and widget.visibleRegion().boundingRect() == widget.rect()


def shown_in_full(label) -> bool:
    """Every line of ``label``'s text is in view: wrapped to its width, none cut at its edge or below it."""
    room = label.contentsRect()
    needed = label.fontMetrics().boundingRect(room.x(), room.y(), room.width(), 100_000,
                                              Qt.TextFlag.TextWordWrap, label.text())
    return in_view(label) and needed.width() <= room.width() and needed.height() <= room.height()


def test_a_two_pair_folder_disables_start_and_the_status_beside_it_says_why_in_full(
    make_napari_viewer, qtbot, runs, pairs  # noqa: F811
):
    viewer = make_napari_viewer(show=True)  # napari's own default window size
    widget = training_dock(viewer)
    widget.fields["data"].value = pairs[2]
    assert not widget.start_button.enabled and not widget.resume_button.enabled
    assert widget.status.value == "2 T2/PD pairs found; training needs at least 3 (train, validation, test)"
    assert widget.pairs.value.startswith("2 T2/PD pairs")
    qtbot.mouseClick(widget.start_button.native, Qt.MouseButton.LeftButton)
    assert widget.process is None and list(runs.iterdir()) == []  # no child, no run folder
    qtbot.waitUntil(lambda: scrolled_to(widget, widget.status.native) and shown_in_full(widget.status.native))
    assert in_view(widget.start_button.native)  # the disabled Start and its reason in one view

    widget.fields["data"].value = pairs[3]
    assert widget.start_button.enabled and widget.status.value == ""


def test_a_folder_completed_while_napari_was_in_the_background_is_checked_again(
    make_napari_viewer, qtbot, runs, pairs, tmp_path  # noqa: F811
):
    data = shutil.copytree(pairs[3], tmp_path / "data")
    lone = shutil.copy(data / "IXI001-Phantom-0001-T2.nii.gz", data / "IXI004-Phantom-0004-T2.nii.gz")
    viewer = make_napari_viewer(show=True)
    widget = training_dock(viewer)
    widget.fields["data"].value = data
    assert not widget.start_button.enabled
    assert widget.status.value.startswith(f"{lone} has no T2/PD partner: training needs whole pairs")
    shutil.copy(data / "IXI001-Phantom-0001-PD.nii.gz", data / "IXI004-Phantom-0004-PD.nii.gz")  # its partner
    QApplication.instance().applicationStateChanged.emit(Qt.ApplicationState.ApplicationActive)  # napari in front
    assert widget.start_button.enabled and widget.status.value == ""
    assert widget.pairs.value.startswith("4 T2/PD pairs")


def test_the_sessions_of_one_participant_count_once_toward_the_three_a_run_needs(tmp_path):
    """The split keeps a participant's sessions on one side: three sessions of one participant cannot train."""
    for session in (1, 2, 3):  # names only: the check lists the folder, it reads no file
        anat = tmp_path / "sub-01" / f"ses-{session}" / "anat"
        anat.mkdir(parents=True)
        for suffix in ("T2w", "PDw"):
            (anat / f"sub-01_ses-{session}_{suffix}.nii.gz").touch()
    summary, refusal = data_folder_check(tmp_path)
    assert summary.startswith("3 T2/PD pairs in the BIDS dataset")
    assert refusal == ("3 T2/PD pairs of 1 participant found; training needs at least 3 participants (train, "
                       "validation, test: a participant's sessions stay together)")


def clear_of_the_axes(plot, text) -> bool:
    """``text`` is drawn inside the canvas and over no axes (tick labels and axis labels included)."""
    renderer = plot.figure.canvas.get_renderer()
    box, canvas = text.get_window_extent(renderer), plot.figure.bbox
    inside = canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0 and box.y1 <= canvas.y1
    return inside and not any(box.overlaps(axes.get_tightbbox(renderer))
                              for axes in plot.figure.axes if axes.get_visible())


def test_the_empty_plot_draws_no_ticks_of_nothing_and_its_placeholders_clear_the_axes(
    make_napari_viewer, qtbot, runs  # noqa: F811
):
    from test_loss_plot import drawn_tick_labels, steps

    viewer = make_napari_viewer(show=True)
    plot = training_dock(viewer).plot  # napari's default window: the plot as wide as the dock
    plot.figure.canvas.draw()
    assert drawn_tick_labels(*plot.figure.axes) == []  # had -0.04 ... 0.04 and 10^0, 10^1
    assert plot.starting.get_visible() and plot.waiting.get_visible()
    assert clear_of_the_axes(plot, plot.starting) and clear_of_the_axes(plot, plot.waiting)

    plot.add_events(steps(loss_d=0.7))  # the first steps: the losses show, validation still to come
    plot.figure.canvas.draw()
    assert drawn_tick_labels(plot.loss_axes) and drawn_tick_labels(plot.psnr_axes, plot.mae_axes) == []
    assert not plot.starting.get_visible() and clear_of_the_axes(plot, plot.waiting)


def test_the_mouse_wheel_over_the_plot_scrolls_the_dock(make_napari_viewer, qtbot, runs):  # noqa: F811
    viewer = make_napari_viewer(show=True)
    widget = training_dock(viewer)
    bar, plot = scroll_area(widget).verticalScrollBar(), widget.plot
    qtbot.waitUntil(lambda: bar.maximum() > 0)  # laid out: the form is taller than the dock at the default window
    assert bar.value() == 0
    centre = QPoint(plot.width() // 2, plot.height() // 2)
    wheel = QWheelEvent(QPointF(centre), QPointF(plot.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(plot, wheel)
    qtbot.waitUntil(lambda: bar.value() > 0)
