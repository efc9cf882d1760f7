"""Live training curves in a dock: generator/discriminator loss per step, validation MAE and PSNR per epoch."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from qtpy.QtWidgets import QAbstractScrollArea, QApplication

from ..core.training.events import StepEvent, TrainingEvent, ValidationEvent

__all__ = ["LossPlot"]


class LossPlot(FigureCanvasQTAgg):
    """Two panels whose lines are updated in place as training events arrive (no redraw while hidden).

    A panel with nothing to plot yet shows a line saying when it will, in place of its axes. The mouse
    wheel scrolls the dock the plot sits in: there is nothing to zoom.
    """

    def __init__(self):
        figure = Figure(figsize=(4.0, 3.2), dpi=90, layout="constrained")
        super().__init__(figure)
        screen = QApplication.primaryScreen()  # a third of the screen's height, 240 to 420 px
        room = screen.availableGeometry().height() if screen is not None else 720
        self.setMinimumHeight(int(min(420, max(240, room / 3))))
        self.loss_axes, self.psnr_axes = figure.subplots(2, 1)
        self.mae_axes = self.psnr_axes.twinx()
        # log scale: the summed G loss (~10^4 per batch) and D's cross-entropy (~1) on one axis
        self.loss_axes.set_yscale("log")
        self.loss_axes.set_ylabel("loss")
        self.loss_axes.set_xlabel("epoch")
        self.psnr_axes.set_ylabel("val PSNR (dB)", color="tab:blue")
        self.mae_axes.set_ylabel("val MAE", color="tab:orange")
        self.psnr_axes.set_xlabel("epoch")
        self.psnr_axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # once an epoch
        # markers: the first step events of a run are single points
        (self.loss_g,) = self.loss_axes.plot([], [], label="G", color="tab:green", marker=".", markersize=3)
        (self.loss_d,) = self.loss_axes.plot([], [], label="D", color="tab:red", marker=".", markersize=3)
        (self.psnr,) = self.psnr_axes.plot([], [], marker="o", color="tab:blue")
        (self.mae,) = self.mae_axes.plot([], [], marker="s", color="tab:orange", markerfacecolor="none")
        # each panel's place in the figure (two rows): its line while it has no points, not over any axes
        self.starting = figure.text(0.5, 0.75, "training losses once the run starts", ha="center", va="center",
                                    color="gray", wrap=True)
        self.waiting = figure.text(0.5, 0.25, "validation MAE and PSNR after the first epoch", ha="center",
                                   va="center", color="gray", wrap=True)
        self.points: dict[str, list[tuple[float, float]]] = {}
        self.clear()

    def clear(self) -> None:
        """Forget all points (a new run starts)."""
        self.points = {"loss_g": [], "loss_d": [], "psnr": [], "mae": []}
        self._refresh()

    def add_events(self, events: list[TrainingEvent]) -> None:
        """Add the points of step and validation events."""
        for event in events:
            if isinstance(event, StepEvent):
                x = event.epoch - 1 + event.step / event.steps
                self.points["loss_g"].append((x, event.loss_g))
                if event.loss_d:  # G1 has no discriminator
                    self.points["loss_d"].append((x, event.loss_d))
            elif isinstance(event, ValidationEvent):
                self.points["psnr"].append((event.epoch, event.psnr))
                self.points["mae"].append((event.epoch, event.mae))
        if events:
            self._refresh()

    def _refresh(self) -> None:
        for name in self.points:
            line = getattr(self, name)
            xs, ys = zip(*self.points[name]) if self.points[name] else ((), ())
            line.set_data(xs, ys)
        # the legend names the curves the run has: a G1 run has no discriminator
        shown = [line for line in (self.loss_g, self.loss_d) if len(line.get_xdata())]
        self.loss_axes.legend(shown, [line.get_label() for line in shown], loc="upper right",
                              fontsize="small").set_visible(bool(shown))
        for axes in (self.loss_axes, self.psnr_axes, self.mae_axes):
            axes.set_autoscaley_on(True)  # (a single validation point fixed the limits below)
            axes.relim()
            axes.autoscale_view()
        stepped, validated = len(self.points["loss_g"]), len(self.points["psnr"])
        self.starting.set_visible(not stepped)  # no empty axes with made-up ticks (-0.05 to 0.05)
        self.loss_axes.set_visible(bool(stepped))
        self.waiting.set_visible(not validated)
        self.psnr_axes.set_visible(bool(validated))
        self.mae_axes.set_visible(bool(validated))
        if validated == 1:  # one point each: PSNR in the upper third, MAE in the lower, not one over the other
            (_, psnr), (_, mae) = self.points["psnr"][0], self.points["mae"][0]
            self.psnr_axes.set_ylim(psnr - 1.0, psnr + 0.5)
            span = max(abs(mae) * 0.1, 1e-3)
            self.mae_axes.set_ylim(mae - span / 2, mae + span)
        if self.isVisible():
            self.draw_idle()

    def showEvent(self, event):  # noqa: N802 (Qt's name)
        """Draw what arrived while the dock was hidden."""
        self.draw_idle()
        super().showEvent(event)

    def wheelEvent(self, event):  # noqa: N802 (Qt's name)
        """Hand the wheel to the scroll area the plot sits in (the canvas would take it and zoom nothing)."""
        area = self.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is None:
            event.ignore()  # to the parent
        else:  # handed on, not ignored: Qt passes on to the parents only a user's wheel, never a program's
            QApplication.sendEvent(area.viewport(), event)
