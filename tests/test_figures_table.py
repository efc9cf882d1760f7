"""The figures table dock of a comparison, on its own (no synthesis): best marks, sorting, selection, CSV."""

from __future__ import annotations

import pytest

from napari_medsynth.core.evaluation.figures import Figures, Quality
from napari_medsynth.core.synthesis.compare import MAPPING, ComparedRow


def figures(psnr: float, mae: float) -> Figures:
    return Figures(source=Quality(mae, psnr, 0.9), head=Quality(mae * 2, psnr - 3, 0.8),
                   report=Quality(mae, psnr + 2, 0.95 if psnr > 24 else 0.9))


@pytest.fixture
def table(qtbot):
    from napari_medsynth._widgets.figures_table import FiguresTable

    widget = FiguresTable()
    qtbot.addWidget(widget)
    widget.set_rows([ComparedRow("G1", "g1.pt", metrics=figures(22.0, 0.2)),
                     ComparedRow("G4", "g4.pt", metrics=figures(25.0, 0.1)),
                     ComparedRow("old.pt", "old.pt", error="old.pt: a PD->T2 generator, but T2->PD was asked for"),
                     ComparedRow(MAPPING, None, metrics=figures(23.0, 0.15))])
    return widget


def test_the_best_of_each_column_is_bold_and_the_error_row_says_why(table):
    assert table.best("source_psnr") == "G4" and table.marked("source_psnr") == ["G4"]
    assert table.marked("source_mae") == ["G4"]  # lowest MAE
    assert table.table.item(2, table.table.columnCount() - 1).text().startswith("old.pt: a PD->T2 generator")
    assert table.table.item(2, 1).text() == ""
    assert table.table.item(3, table.table.columnCount() - 1).text() == "baseline"


def test_sorting_by_a_column_and_selecting_rows_gives_their_labels(table):
    from qtpy.QtCore import Qt

    assert [table.table.item(r, 0).text() for r in range(4)] == ["G1", "G4", "old.pt", MAPPING]  # as compared
    table.table.sortItems(2, Qt.DescendingOrder)  # PSNR on the source grid, numerically
    assert [table.table.item(r, 0).text() for r in range(3)] == ["G4", MAPPING, "G1"]
    heard = []
    table.selected.connect(heard.append)
    table.select(["G1", "G4"])
    assert heard[-1] == ["G4", "G1"]  # top to bottom, as shown


def test_copy_and_save_give_the_csv_and_an_unwritable_file_is_one_line(table, tmp_path, qtbot):
    from qtpy.QtGui import QGuiApplication

    table.copy()
    assert QGuiApplication.clipboard().text() == table.csv()
    lines = table.csv().splitlines()
    assert len(lines) == 5 and lines[2].startswith("G4,g4.pt,,0.1,25,")
    assert table.save_csv(tmp_path / "figures.csv").read_text() == table.csv()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert table.save_csv(blocker / "figures.csv") is None
    assert "cannot write there" in table.status.text() and "\n" not in table.status.text()
