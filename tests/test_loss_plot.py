"""The training dock's live plot: its legend names the curves the run has; a panel without points waits."""

from __future__ import annotations

from napari_medsynth._widgets.loss_plot import LossPlot
from napari_medsynth.core.training.events import StepEvent, ValidationEvent


def steps(loss_d: float) -> list[StepEvent]:
    return [StepEvent(epoch=1, step=s, steps=4, loss_g=100.0 / s, loss_d=loss_d, loss_rec=1.0, loss_adv=0.0,
                      loss_gdl=0.0) for s in range(1, 5)]


def drawn_tick_labels(*axes_list) -> list[str]:
    """The tick labels drawn on ``axes_list`` after a draw (a hidden axes draws none)."""
    return [label for axes in axes_list if axes.get_visible() for axis in (axes.xaxis, axes.yaxis)
            for label in tick_labels_in_view(axis)]


def tick_labels_in_view(axis) -> list[str]:
    """The labels of ``axis``'s ticks within its view."""
    low, high = sorted(axis.get_view_interval())
    return [label.get_text() for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks())
            if low <= tick.get_loc() <= high for label in (tick.label1, tick.label2)
            if label.get_visible() and label.get_text()]


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


def validation(epoch: int, psnr: float, mae: float) -> ValidationEvent:
    return ValidationEvent(epoch=epoch, mae=mae, psnr=psnr, ssim=0.8, mae_std=0.0, psnr_std=0.0, ssim_std=0.0,
                           best=True, best_epoch=epoch, seconds=1.0, losses={}, throughput={})


def _marker_height(axes, line) -> float:
    """The display height (pixels) of a line's last point."""
    x, y = line.get_xdata()[-1], line.get_ydata()[-1]
    return axes.transData.transform((x, y))[1]


def test_each_panel_says_when_its_curves_come_instead_of_an_empty_axis(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    assert plot.starting.get_visible() and not plot.loss_axes.get_visible()  # no +-0.05 ticks of nothing
    plot.add_events(steps(loss_d=0.7))
    assert not plot.starting.get_visible() and plot.loss_axes.get_visible()
    assert plot.waiting.get_visible() and "after the first epoch" in plot.waiting.get_text()
    assert not plot.psnr_axes.get_visible() and not plot.mae_axes.get_visible()
    plot.add_events([validation(1, 24.0, 0.15)])
    assert not plot.waiting.get_visible() and plot.psnr_axes.get_visible() and plot.mae_axes.get_visible()
    plot.figure.canvas.draw()
    assert tick_labels_in_view(plot.psnr_axes.yaxis) and tick_labels_in_view(plot.mae_axes.yaxis)
    assert tick_labels_in_view(plot.psnr_axes.xaxis) == ["1"]  # epoch 1, not 0.96 ... 1.04
    plot.clear()  # a new run: the panels wait again
    assert plot.starting.get_visible() and plot.waiting.get_visible() and not plot.loss_axes.get_visible()


def test_one_epoch_shows_both_validation_markers(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.add_events([validation(1, 24.0, 0.15)])
    plot.figure.canvas.draw()
    psnr, mae = _marker_height(plot.psnr_axes, plot.psnr), _marker_height(plot.mae_axes, plot.mae)
    box = plot.psnr_axes.get_window_extent()
    assert abs(psnr - mae) > box.height / 4  # the MAE square no longer hides the PSNR dot
    assert box.y0 < min(psnr, mae) and max(psnr, mae) < box.y1
    plot.add_events([validation(2, 25.0, 0.12)])  # from two epochs on, each axis fits its curve
    assert plot.psnr_axes.get_ylim()[0] <= 24.0 and plot.psnr_axes.get_ylim()[1] >= 25.0
