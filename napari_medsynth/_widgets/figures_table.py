"""The figures table dock of a comparison: one row per generator and the intensity mapping, MAE,
PSNR and SSIM on each scope, sortable, the best of each column in bold; selecting rows shows their
maps (one) or their difference (two); Copy and Save CSV give
:func:`~napari_medsynth.core.synthesis.compare.metrics_csv`."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QFont, QFontMetrics, QGuiApplication
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.choices import MetricScope
from ..core.errors import MedSynthError
from ..core.files.atomic import atomic_output
from ..core.synthesis.compare import FIGURES, ComparedRow, metrics_csv
from ._shared import report_error

__all__ = ["COLUMNS", "FiguresTable"]

COLUMNS = [f"{scope.value}_{figure}" for scope in MetricScope for figure in FIGURES]  # as metrics.csv names them
_LOWER_IS_BETTER = {"mae"}
_DIGITS = {"mae": 4, "psnr": 2, "ssim": 4}
MOST_ROWS_IN_VIEW = 8
_CELL_PADDING = 8  # pixels each side of a figure, napari's theme's cell padding included


class FiguresTable(QWidget):
    """A comparison's figures; ``selected`` carries the labels of the selected rows."""

    selected = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[ComparedRow] = []
        self.table = QTableWidget(0, len(COLUMNS) + 2)
        figure_names = {"mae": "MAE", "psnr": "PSNR", "ssim": "SSIM"}
        self.table.setHorizontalHeaderLabels(  # short, so that nine figures fit napari's default window
            ["generator", *(f"{figure_names[c.split('_')[1]]}\n{c.split('_')[0]}" for c in COLUMNS), "note"])
        for column, key in enumerate(COLUMNS, start=1):  # what each short header means
            scope, figure = key.split("_")
            self.table.horizontalHeaderItem(column).setToolTip(
                f"{figure_names[figure]}{' (dB)' if figure == 'psnr' else ''}, {MetricScope(scope).description}")
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.AscendingOrder)  # the comparison's order until a click
        self.table.itemSelectionChanged.connect(lambda: self.selected.emit(self.selected_labels()))
        self._copy = QPushButton("Copy")
        self._copy.setToolTip("the table as CSV, to the clipboard")
        self._save = QPushButton("Save CSV...")
        self._copy.clicked.connect(self.copy)
        self._save.clicked.connect(lambda: self.save_csv())
        self.status = QLabel("select a row for its error maps, two for their difference")
        self.status.setWordWrap(True)
        header = self.table.horizontalHeader()  # the figures to their width, the names and notes share the rest:
        for column in (0, len(COLUMNS) + 1):  # no sideways scrolling at napari's default window
            header.setSectionResizeMode(column, QHeaderView.Stretch)
        self.table.setTextElideMode(Qt.ElideMiddle)  # "G4+RL (run…-b)": a cut name keeps its ends (and a tooltip)
        self.table.verticalHeader().hide()  # the generator names the row
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        buttons = QHBoxLayout()  # one line under the table: the dock stays low in napari's default window
        buttons.addWidget(self._copy)
        buttons.addWidget(self._save)
        buttons.addWidget(self.status, stretch=1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

    def set_rows(self, rows: list[ComparedRow]) -> None:
        """Show ``rows`` (keeping the sort order and the selection)."""
        selected = self.selected_labels()
        self.rows = list(rows)
        table = self.table
        table.blockSignals(True)
        table.setSortingEnabled(False)
        table.setRowCount(len(self.rows))
        for index, row in enumerate(self.rows):
            values = row.metrics.as_dict() if row.metrics is not None else {}
            name = QTableWidgetItem(row.label)
            name.setToolTip(row.label)
            table.setItem(index, 0, name)
            for column, key in enumerate(COLUMNS, start=1):
                scope, figure = key.split("_")
                item = QTableWidgetItem()
                if scope in values:
                    item.setData(Qt.DisplayRole, round(float(values[scope][figure]), _DIGITS[figure]))
                table.setItem(index, column, item)
            note = QTableWidgetItem(row.error or ("baseline" if row.is_baseline else ""))
            note.setToolTip(row.error or "")
            table.setItem(index, len(COLUMNS) + 1, note)
        table.setColumnHidden(len(COLUMNS) + 1, not any(row.error for row in self.rows))  # the mapping says "baseline"
        self._mark_best()
        table.setSortingEnabled(True)
        table.clearSelection()
        for index in range(table.rowCount()):
            if table.item(index, 0).text() in selected:
                table.selectRow(index)
        table.blockSignals(False)
        self._fit_columns()
        self._fit_rows()

    def _fit_columns(self) -> None:
        """Each figure's column as wide as its widest value (in bold: the best) or header line, and no
        wider: Qt's own fit also reserves the sort arrow's room in every column, which made nine figure
        columns too wide for napari's default window (the arrow draws over the sorted header's end)."""
        table = self.table
        bold = QFont(table.font())
        bold.setBold(True)
        values, header = QFontMetrics(bold), table.horizontalHeader().fontMetrics()
        for column in range(1, len(COLUMNS) + 1):
            texts = [table.item(row, column).text() for row in range(table.rowCount())]
            lines = table.horizontalHeaderItem(column).text().split("\n")
            widest = max([values.horizontalAdvance(text) for text in texts]
                         + [header.horizontalAdvance(line) for line in lines])
            table.setColumnWidth(column, widest + 2 * _CELL_PADDING)

    def _fit_rows(self, most: int = MOST_ROWS_IN_VIEW) -> None:
        """Make the table tall enough for its header and every row (up to ``most``; more scroll), so
        that the dock napari gives it shows them all."""
        table = self.table
        rows = min(table.rowCount(), most)
        height = (table.horizontalHeader().sizeHint().height() + rows * table.verticalHeader().defaultSectionSize()
                  + table.horizontalScrollBar().sizeHint().height() + 2 * table.frameWidth())
        table.setMinimumHeight(height)

    def best(self, column: str) -> str | None:
        """The label of the best row in ``column`` (``"source_psnr"``...): lowest MAE, highest PSNR and SSIM."""
        scope, figure = column.split("_")
        scored = [(row.metrics.as_dict()[scope][figure], row.label) for row in self.rows if row.metrics is not None]
        if not scored:
            return None
        return (min if figure in _LOWER_IS_BETTER else max)(scored)[1]

    def marked(self, column: str) -> list[str]:
        """The labels shown in bold in ``column``."""
        index = COLUMNS.index(column) + 1
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())
                if self.table.item(r, index).font().bold()]

    def selected_labels(self) -> list[str]:
        """The labels of the selected rows, top to bottom."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.table.item(r, 0).text() for r in rows]

    def select(self, labels) -> None:
        """Select the rows of ``labels`` (as a user's click and ctrl-click would)."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.MultiSelection)
        for index in range(self.table.rowCount()):
            if self.table.item(index, 0).text() in labels:
                self.table.selectRow(index)
        self.table.setSelectionMode(mode)

    def csv(self) -> str:
        """The table as :func:`~napari_medsynth.core.synthesis.compare.metrics_csv` writes it."""
        return metrics_csv(self.rows)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.csv())
        self.status.setText(f"copied {len(self.rows)} rows as CSV")

    def save_csv(self, path=None) -> Path | None:
        """Write the table to ``path`` (asked with a file dialog when None), atomically."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save the figures", "metrics.csv", "CSV (*.csv)")
            if not path:
                return None
        path = Path(path)
        try:
            with atomic_output(path) as tmp_name:
                Path(tmp_name).write_text(self.csv())
        except (OSError, MedSynthError) as error:
            self.status.setText(report_error(error, "saving the figures"))
            return None
        self.status.setText(f"saved {path}")
        return path

    def _mark_best(self) -> None:
        for column, key in enumerate(COLUMNS, start=1):
            best = self.best(key)
            for index, row in enumerate(self.rows):
                item = self.table.item(index, column)
                font = QFont(item.font())
                font.setBold(row.label == best)
                item.setFont(font)
                item.setToolTip("best in this column" if row.label == best else "")
