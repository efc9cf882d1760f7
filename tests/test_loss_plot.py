"""The training dock's live plot: its legend names the curves the run has."""

from __future__ import annotations

from napari_medsynth._widgets.loss_plot import LossPlot
from napari_medsynth.core.events import StepEvent


def steps(loss_d: float) -> list[StepEvent]:
    return [StepEvent(epoch=1, step=s, steps=4, loss_g=100.0 / s, loss_d=loss_d, loss_rec=1.0, loss_adv=0.0,
                      loss_gdl=0.0) for s in range(1, 5)]


def legend_labels(plot: LossPlot) -> list[str]:
    legend = plot.loss_axes.get_legend()
    return [text.get_text() for text in legend.get_texts()] if legend and legend.get_visible() else []


def test_a_g1_run_has_no_discriminator_in_the_legend_and_a_g3_run_has(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    assert legend_labels(plot) == []  # nothing trained yet
    plot.add_events(steps(loss_d=0.0))  # G1: no discriminator
    assert legend_labels(plot) == ["G"] and len(plot.points["loss_d"]) == 0
    plot.clear()
    plot.add_events(steps(loss_d=0.7))  # G3
    assert legend_labels(plot) == ["G", "D"]
