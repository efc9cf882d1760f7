"""Under Xvfb at napari's default window: the synthesis dock follows what the user opens and picks (the
source, its partner as the truth, the direction), says a truth of another subject or grid instead of
scoring it silently, keeps the run's warnings and the preview's figures in view, never shows a
refinement that is only the preview with seams, and lays its lists out without sideways scrolling."""

from __future__ import annotations

import shutil

from qtpy.QtWidgets import QScrollArea
from test_widgets import notifications, runs, set_options, synthesis_widget, tiny_checkpoint  # noqa: F401

from napari_medsynth._widgets.synthesis_form import default_save_path


def bids_subjects(phantom_dir, root, numbers=(1, 2), contrasts=("T2", "PD")):
    """BIDS copies of phantom subjects: ``root/sub-0N/anat/sub-0N_T2w.nii.gz`` (and ``_PDw``)."""
    for number in numbers:
        folder = root / f"sub-0{number}" / "anat"
        folder.mkdir(parents=True, exist_ok=True)
        for contrast in contrasts:
            shutil.copy(phantom_dir / f"IXI00{number}-Phantom-000{number}-{contrast}.nii.gz",
                        folder / f"sub-0{number}_{contrast}w.nii.gz")
    return root


def names(widget):
    form = widget.form
    return (form.direction.value, getattr(form.source.value, "name", None), getattr(form.truth.value, "name", None))


def wait_done(widget, qtbot, timeout=120_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_the_source_follows_what_is_opened_and_the_truth_follows_the_source(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                                             phantom_dir, tmp_path):
    root = bids_subjects(phantom_dir, tmp_path / "bids")
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer(show=True)
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint, preview_first=False)
    viewer.open(root / "sub-01" / "anat" / "sub-01_T2w.nii.gz", plugin="napari-medsynth")
    qtbot.waitUntil(lambda: names(widget) == ("t2-pd", "sub-01 T2", "sub-01 PD"))
    viewer.open(root / "sub-02" / "anat" / "sub-02_T2w.nii.gz", plugin="napari-medsynth")
    qtbot.waitUntil(lambda: names(widget) == ("t2-pd", "sub-02 T2", "sub-02 PD"))  # opened last, with its partner
    widget.start()
    wait_done(widget, qtbot)
    assert widget.view.shown.name == "sub-02 PD synth [G3]" and "another subject" not in widget.status
    own = widget.status
    widget.configure(source=viewer.layers["sub-01 T2"])
    assert names(widget) == ("t2-pd", "sub-01 T2", "sub-01 PD")  # the truth followed the source
    widget.start()
    wait_done(widget, qtbot)
    assert widget.view.shown.name == "sub-01 PD synth [G3]" and widget.warnings == []
    psnr_own = float(widget.status.split("PSNR ")[1].split(" dB")[0])
    # the user picks another subject's truth: said in the dock, on the result and in the maps' names
    widget.configure(truth=viewer.layers["sub-02 PD"])
    widget.start()
    wait_done(widget, qtbot)
    assert widget.warnings == ["the ground truth 'sub-02 PD' is not sub-01's scan: its figures compare sub-01's "
                               "synthesis with sub-02"]
    assert widget.status.startswith("sub-01 PD synth [G3] against sub-02 PD, another subject's scan: MAE")
    psnr_other = float(widget.status.split("PSNR ")[1].split(" dB")[0])
    from napari_medsynth.core.files.nifti import load_volume
    from napari_medsynth.core.synthesis.pipeline import synthesize

    anat = root / "sub-01" / "anat"
    against = synthesize(load_volume(anat / "sub-01_T2w.nii.gz"), checkpoint, widget.options(),
                         target=load_volume(root / "sub-02" / "anat" / "sub-02_PDw.nii.gz")).metrics.source.psnr
    assert abs(psnr_other - against) < 0.01 and abs(psnr_other - psnr_own) > 0.1, (own, widget.status)
    assert "sub-01 PD squared error vs sub-02 [G3]" in viewer.layers
    assert widget.lines.warning.native.isVisible()


def test_a_lone_pd_scan_sets_the_direction_and_is_never_its_own_truth(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                                      phantom_dir, tmp_path):
    root = bids_subjects(phantom_dir, tmp_path / "bids", numbers=(1,), contrasts=("PD",))
    viewer = make_napari_viewer(show=True)
    widget = synthesis_widget(viewer, qtbot)
    assert widget.form.direction.value == "t2-pd"
    viewer.open(root / "sub-01" / "anat" / "sub-01_PDw.nii.gz", plugin="napari-medsynth")
    qtbot.waitUntil(lambda: names(widget) == ("pd-t2", "sub-01 PD", None))
    widget.form.truth.reset_choices()
    assert list(widget.form.truth.choices) == [None]  # the source is no truth of itself
    widget.folder.folder.value = root  # a folder run goes to a folder of its own, never where Save writes
    assert widget.folder.out.value == runs / "folders" / "bids"
    assert default_save_path("sub-01 T2 synth [G4]").parent == runs / "syntheses"


def test_a_truth_on_another_grid_gives_a_synthesis_without_figures_and_says_why(make_napari_viewer, qtbot,
                                                                                 runs, phantom_dir,  # noqa: F811
                                                                                 tmp_path):
    from napari_medsynth.core.files.nifti import Volume, load_volume, save_volume

    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    pd = load_volume(phantom_dir / "IXI001-Phantom-0001-PD.nii.gz")
    cropped = tmp_path / "cropped_PD.nii.gz"
    save_volume(cropped, pd.data[8:-8], Volume(pd.data[8:-8], pd.affine))
    viewer = make_napari_viewer(show=True)
    viewer.open(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz", plugin="napari-medsynth")
    viewer.open(cropped, plugin="napari-medsynth")
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint, preview_first=False, source=viewer.layers["IXI001 T2"],
                     truth=viewer.layers["cropped PD"])
    widget.start()
    wait_done(widget, qtbot)
    assert widget.status == "IXI001 PD synth [G3] (no ground truth: no metrics)"
    assert len(widget.warnings) == 1 and widget.warnings[0].startswith(
        "no figures: the ground truth 'cropped PD' is not on the source's grid")


def test_a_warning_of_the_run_stays_in_the_dock(make_napari_viewer, qtbot, runs, phantom_dir, tmp_path,  # noqa: F811
                                                notifications):  # noqa: F811
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    t1 = tmp_path / "IXI001-Phantom-0001-T1.nii.gz"
    shutil.copy(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz", t1)
    viewer = make_napari_viewer(show=True)
    viewer.open(t1, plugin="napari-medsynth")
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint, preview_first=True, source=viewer.layers["IXI001 T1"])
    widget.start()
    wait_done(widget, qtbot)
    assert len(widget.warnings) == 1 and "looks like a T1 image (its name)" in widget.warnings[0]
    label = widget.lines.warning.native
    assert label.isVisible() and widget.warnings[0] in label.text()
    assert label.height() >= label.heightForWidth(label.width())  # the whole warning, not its first line
    area = widget.native.findChildren(QScrollArea)[0]
    top = label.mapTo(area.widget(), label.rect().topLeft()).y() - area.verticalScrollBar().value()
    assert top >= 0 and top + label.height() <= area.viewport().height()  # scrolled into view
    assert any("looks like a T1 image" in str(n.message) for n in notifications)  # and said once as a toast
    widget.configure(source=viewer.layers["IXI001 T1"], options=widget.options().replace(stride=16))
    set_options(widget, stride=32)
    widget.start()  # the next run starts with no warning of the last
    assert widget.warnings == []
    wait_done(widget, qtbot)


def test_the_preview_figures_stay_readable_while_it_refines(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                             phantom_dir):
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer(show=True)
    viewer.open(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz", plugin="napari-medsynth")
    widget = synthesis_widget(viewer, qtbot, stride=16)
    widget.configure(generator=checkpoint, preview_first=True)
    seen = []  # the status line and napari's status bar at each patch of the refinement
    widget.job.progressed.connect(lambda unit, done, total, text: seen.append((widget.status, viewer.status, text)))
    widget.start()
    wait_done(widget, qtbot)
    refining = [entry for entry in seen if "preview" in entry[0] and "PSNR" in entry[0]]
    assert len(refining) > 1, seen[:3]  # the patches came after the preview's figures, and they stayed
    for status, bar, text in refining:
        assert "patch" not in status and status in bar and text in bar
    assert widget.progress[1] > 1


def test_at_a_stride_without_overlap_the_preview_is_the_result(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                                phantom_dir):
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer(show=True)
    viewer.open(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz", plugin="napari-medsynth")
    widget = synthesis_widget(viewer, qtbot, stride=16)
    spread = widget.form.options["spread"]
    assert spread.enabled and spread.value
    set_options(widget, stride=32)
    assert not spread.enabled and not spread.value  # no spread map at stride 32: the box says so
    assert "do not overlap" in spread.tooltip
    widget.configure(generator=checkpoint, preview_first=True)
    stages = []
    widget.job.progressed.connect(lambda *args: stages.append("patches"))
    widget.start()
    wait_done(widget, qtbot)
    assert stages == []  # no patch average was run after the preview
    assert widget.view.shown.name == "IXI001 PD synth [G3]"  # the finished result, not named a preview
    assert "at stride 32 the patches do not overlap: the one-pass preview is the result" in widget.status
    assert widget.view.finished is not None and widget.view.finished.name == widget.view.shown.name
    assert widget.view.shown.request.options.stride == 32
    widget.form.options["stride"].value = 16  # as a user picks it
    assert spread.enabled and spread.value  # the user's choice comes back


def test_the_figures_table_and_the_compare_list_fit_napari_default_window(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                                           phantom_dir):
    checkpoints = [str(tiny_checkpoint(runs / f"a-rather-long-run-name-{seed}" / "best.pt", seed=seed))
                   for seed in range(3)]
    viewer = make_napari_viewer(show=True)
    viewer.open(phantom_dir / "IXI001-Phantom-0001-T2.nii.gz", plugin="napari-medsynth")
    layer_list = viewer.window._qt_viewer.layers
    rows_before = layer_list.viewport().height()
    widget = synthesis_widget(viewer, qtbot)
    widget.configure("t2-pd", preview_first=False)
    chosen = widget.comparing.chosen.native
    qtbot.waitUntil(lambda: chosen.isVisible())
    assert chosen.horizontalScrollBar().maximum() == 0
    for index in range(chosen.count()):  # each title whole: wrapped, not cut
        rect = chosen.visualItemRect(chosen.item(index))
        assert rect.width() <= chosen.viewport().width()
    widget.compare(checkpoints)
    wait_done(widget, qtbot, timeout=180_000)
    table = widget.comparing.figures.table
    qtbot.waitUntil(lambda: table.isVisible() and table.rowCount() == 4)
    assert table.horizontalScrollBar().maximum() == 0, (
        [table.columnWidth(c) for c in range(table.columnCount())], table.viewport().width(),
        [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())],
        [table.item(0, c).text() for c in range(table.columnCount())])
    for row in range(table.rowCount()):  # every row in view
        assert table.viewport().rect().contains(table.visualRect(table.model().index(row, 0)))
    for column in range(1, table.columnCount() - 1):  # every figure whole (a cut number reads "27.…")
        item = table.item(0, column)
        text = item.text()
        assert table.columnWidth(column) >= table.fontMetrics().horizontalAdvance(text), (column, text)
    row_height = layer_list.sizeHintForRow(0) if layer_list.model().rowCount() else 30
    assert layer_list.viewport().height() >= min(rows_before, 4 * row_height)  # the layer list keeps 4 rows
