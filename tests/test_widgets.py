"""The dock widgets in a real napari viewer: synthesis, cancel, save, training with Stop/Resume, errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import smooth_volume, write_nifti

from napari_medsynth._layer_metadata import LayerMetadata
from napari_medsynth._napari_adapter import grid_tile, tile_label
from napari_medsynth._widgets._shared import RUNS
from napari_medsynth._widgets.job_runner import JobState
from napari_medsynth._widgets.synthesis import SynthesisWidget
from napari_medsynth._widgets.training import TrainingWidget
from napari_medsynth.core.files.nifti import from_display, load_volume, to_display
from napari_medsynth.core.networks.checkpoint import save_checkpoint
from napari_medsynth.core.networks.models import Generator
from napari_medsynth.core.simulation.phantom import field_of_view_zooms, make_phantom_pair
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import synthesize

PD_SCALE = {"mean": 400.0, "std": 150.0}


@pytest.fixture
def runs(tmp_path):
    """An empty runs folder both widgets point at (restored afterwards)."""
    previous = RUNS.folder
    folder = tmp_path / "runs"
    folder.mkdir()
    RUNS.set(folder)
    yield folder
    RUNS.set(previous)


@pytest.fixture
def notifications():
    """The napari notifications shown during the test."""
    from napari.utils.notifications import notification_manager

    shown = []
    notification_manager.notification_ready.connect(shown.append)
    yield shown
    notification_manager.notification_ready.disconnect(shown.append)


def tiny_checkpoint(path: Path, direction="t2-pd", variant="G3", residual=False, seed=0) -> Path:
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    generator = Generator(residual=residual, width=0.0625)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, generator, direction=direction, variant=variant, target_intensity=PD_SCALE)


def synthesis_widget(viewer, qtbot, stride=32, grid="report"):
    """The dock, on the report grid (a third of the native grid's work) unless a test needs the native one."""
    widget = SynthesisWidget(viewer)
    viewer.window.add_dock_widget(widget)
    set_options(widget, stride=stride, grid=grid)
    return widget


def set_options(widget, **changes):
    """Change the dock's synthesis options as a user would in its form."""
    widget.configure(options=widget.options().replace(**changes))


def run_and_wait(widget, qtbot, timeout=120_000):
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def save_and_wait(widget, qtbot, path) -> Path:
    """Save (in its worker thread) and wait for it; the path written."""
    widget.save(path)
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    return Path(path)


def open_phantom_subject(viewer, phantom_dir):
    """Open the first phantom subject's T2 through the reader (which opens its PD partner too); its volumes."""
    t2_path = sorted(phantom_dir.glob("*-T2.nii.gz"))[0]
    viewer.open(t2_path, plugin="napari-medsynth")
    return load_volume(t2_path), load_volume(str(t2_path).replace("-T2.", "-PD."))


def test_synthesis_widget_adds_the_synthesis_and_maps_beside_the_phantom(make_napari_viewer, qtbot, runs,
                                                                         phantom_dir):
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer()
    t2, pd = open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot, stride=16)  # patches overlap: a spread map
    request = widget.request()
    assert (request.source_layer, request.truth_layer) == ("IXI001 T2", "IXI001 PD")
    assert str(checkpoint) in widget.generators
    widget.configure(generator=checkpoint, preview_first=False)
    set_options(widget, grid="report")
    run_and_wait(widget, qtbot)

    names = ["IXI001 PD synth [G3]", "IXI001 PD spread [G3]", "IXI001 PD squared error [G3]",
             "IXI001 PD gradient difference [G3]"]
    # side by side off (the default): the maps are there but hidden, the synthesis is on top of its source
    assert [layer.name for layer in viewer.layers][2:] == [*names[1:], names[0]]
    visible = [layer.name for layer in viewer.layers if layer.visible]
    assert sorted(visible[:2]) == ["IXI001 PD", "IXI001 T2"] and visible[2:] == [names[0]]
    source = viewer.layers["IXI001 T2"]
    for name in names:
        layer = viewer.layers[name]
        assert layer.data.shape == source.data.shape and layer.data.dtype == np.float32
        np.testing.assert_allclose(layer.scale, source.scale)
        np.testing.assert_allclose(layer.translate, source.translate)
        np.testing.assert_array_equal(layer.metadata["affine"], source.metadata["affine"])

    # The widget shows exactly what the core computes, in the target's intensity scale.
    expected = synthesize(t2, checkpoint, SynthesisOptions(grid="report", stride=16), target=pd)
    synthesis = viewer.layers[names[0]]
    np.testing.assert_allclose(synthesis.data, to_display(t2.__class__(expected.synthesis, t2.affine))[0], atol=1e-4)
    for scope, figures in expected.metrics.as_dict().items():
        assert synthesis.metadata["metrics"][scope] == pytest.approx(figures)
    provenance = synthesis.metadata["provenance"]
    assert provenance["variant"] == "G3" and provenance["options"]["stride"] == 16
    assert provenance["options"]["grid"] == "report" and not synthesis.metadata["preview"]
    assert widget.status == f"{names[0]}: {expected.metrics.line()}"
    assert widget.state == JobState.DONE
    assert viewer.layers[names[2]].colormap.name == "inferno"

    # Running again (on the native grid, every slice; stride 32 for time) replaces this generator's
    # layers; without the spread its layer goes.
    set_options(widget, spread=False, grid="native", stride=32)
    run_and_wait(widget, qtbot)
    assert viewer.layers[names[0]].metadata["provenance"]["options"]["grid"] == "native"
    assert [layer.name for layer in viewer.layers][2:] == [*names[2:], names[0]]
    assert [layer.name for layer in viewer.layers if layer.visible][-1] == names[0]

    # Side by side: source | synthesis | truth | maps in napari's grid.
    widget.configure(side_by_side=True)
    assert viewer.canvas.grid.enabled
    tiles = ["IXI001 T2", names[0], "IXI001 PD", *names[2:]]
    assert [grid_tile(viewer.canvas.grid, viewer.layers, name) for name in tiles] == [(0, 0), (0, 1), (0, 2),
                                                                                      (1, 0), (1, 1)]

    # The other direction takes the input layers of its contrasts, never a result layer.
    widget.configure("pd-t2")
    assert (widget.request().source_layer, widget.request().truth_layer) == ("IXI001 PD", "IXI001 T2")


def test_a_one_pass_preview_shows_first_then_the_patch_average_replaces_it(make_napari_viewer, qtbot, runs,
                                                                           phantom_dir):
    checkpoint = tiny_checkpoint(runs / "p" / "best.pt")
    viewer = make_napari_viewer()
    t2, pd = open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot, stride=16)  # overlapping patches: a refinement (at 32 the preview is it)
    set_options(widget, spread=False)
    widget.configure(generator=checkpoint)
    assert widget.request().preview_first  # on by default
    inserted, shown, states = [], {}, []

    def on_inserted(event):  # the preview's layers are named as one; the refined result replaces them
        inserted.append(event.value.name)
        if event.value.name == "IXI001 PD synth [G3 preview]":
            shown.update(data=event.value.data.copy(), preview=event.value.metadata["preview"])
            states.append(widget.state)
            set_options(widget, stride=8)  # changed while the run refines: the result still says what it ran at

    viewer.layers.events.inserted.connect(on_inserted)
    run_and_wait(widget, qtbot)

    preview = synthesize(t2, checkpoint, SynthesisOptions(grid="report", preview=True), target=pd)
    np.testing.assert_allclose(shown["data"], to_display(t2.__class__(preview.synthesis, t2.affine))[0], atol=1e-4)
    assert shown["preview"] and states == [JobState.REFINING]
    final = ["IXI001 PD synth [G3]", "IXI001 PD squared error [G3]", "IXI001 PD gradient difference [G3]"]
    assert inserted == [name.replace("]", " preview]") for name in final] + final  # (no spread map asked)
    assert [layer.name for layer in viewer.layers][2:] == [*final[1:], final[0]]  # no preview left
    assert viewer.layers[final[0]].metadata["provenance"]["options"]["stride"] == 16
    assert not np.allclose(viewer.layers[final[0]].data, shown["data"])


def test_cancel_stops_the_synthesis_without_layers(make_napari_viewer, qtbot, runs, notifications, phantom_dir):
    checkpoint = tiny_checkpoint(runs / "r" / "best.pt")
    viewer = make_napari_viewer()
    open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot, stride=8)
    widget.configure(generator=checkpoint)
    widget.start()
    widget.cancel()
    assert widget.state == JobState.CANCELLING and not widget.can_cancel
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert len(viewer.layers) == 2
    assert widget.status == "synthesis cancelled" and widget.state == JobState.DONE
    assert widget.can_start and not widget.can_cancel


def ixi_files(folder: Path, shape=(40, 44, 36)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t2 = write_nifti(folder / "IXI002-Guys-0828-T2.nii.gz", 300 * smooth_volume(shape, 1) + 500)
    write_nifti(folder / "IXI002-Guys-0828-PD.nii.gz", 200 * smooth_volume(shape, 2) + 800)
    return t2


def test_wrong_checkpoints_are_one_line_notifications(make_napari_viewer, qtbot, runs, tmp_path, notifications):
    t2_path = ixi_files(tmp_path / "data")
    viewer = make_napari_viewer()
    viewer.open(t2_path, plugin="napari-medsynth")
    widget = synthesis_widget(viewer, qtbot)

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    widget.add_checkpoint(broken)
    assert [n.message for n in notifications if n.severity == "error"][-1] == (
        "broken.pt: not a readable checkpoint, truncated or not a torch file"
    )

    # A PD->T2 checkpoint switches the direction and the layers (the reader opened the PD partner);
    # a T2 source picked by hand switches them back: the direction follows the source's contrast, and each
    # direction keeps the generator last chosen for it.
    t2_to_pd = widget.request().checkpoint
    pd_to_t2 = tiny_checkpoint(tmp_path / "pd" / "pd-to-t2.pt", direction="pd-t2", variant="G4", residual=True)
    widget.add_checkpoint(pd_to_t2)
    request = widget.request()
    assert request.direction == "pd-t2" and request.checkpoint == str(pd_to_t2)
    assert (request.source_layer, request.truth_layer) == ("IXI002 PD", "IXI002 T2")
    widget.configure(source=viewer.layers["IXI002 T2"])
    request = widget.request()
    assert (request.direction, request.checkpoint) == ("t2-pd", t2_to_pd)
    assert (request.source_layer, request.truth_layer) == ("IXI002 T2", "IXI002 PD")
    widget.configure(source=viewer.layers["IXI002 PD"])
    assert widget.request().checkpoint == str(pd_to_t2)


def test_a_source_that_looks_like_the_other_contrast_is_a_warning_and_the_synthesis_goes_on(
    make_napari_viewer, qtbot, runs, tmp_path, notifications, phantom_dir
):
    pd = sorted(phantom_dir.glob("*-PD.nii.gz"))[0]
    scan = tmp_path / "scan.nii.gz"  # a name that says nothing of the contrast
    scan.write_bytes(pd.read_bytes())
    viewer = make_napari_viewer()
    viewer.open(scan, plugin="napari-medsynth")
    widget = synthesis_widget(viewer, qtbot)
    widget.add_checkpoint(tiny_checkpoint(tmp_path / "t2-pd.pt"))
    widget.configure(source=viewer.layers["scan"], side_by_side=False, preview_first=False)
    run_and_wait(widget, qtbot)
    assert [n.message for n in notifications if n.severity == "warning"] == [
        "scan.nii.gz looks like a PD image (its intensities), but the source of this generator is T2: "
        "the synthesis goes on, check its input"]
    assert widget.shown is not None and widget.shown.name in viewer.layers


def test_save_writes_the_synthesis_on_the_source_grid_and_never_over_an_input(
    make_napari_viewer, qtbot, runs, tmp_path, notifications
):
    checkpoint = tiny_checkpoint(runs / "r" / "best.pt")
    shape = (40, 44, 36)
    t2_path = ixi_files(tmp_path / "data", shape)
    viewer = make_napari_viewer()
    viewer.open(t2_path, plugin="napari-medsynth")
    widget = synthesis_widget(viewer, qtbot)
    assert (widget.request().source_layer, widget.request().truth_layer) == ("IXI002 T2", "IXI002 PD")
    widget.configure(generator=checkpoint)
    run_and_wait(widget, qtbot)
    assert "IXI002 PD synth [G3]" in viewer.layers
    assert widget.save_path.parent == runs / "syntheses"  # never among the input data

    written = save_and_wait(widget, qtbot, tmp_path / "out" / "synth.nii.gz")
    assert widget.status == f"saved IXI002 PD synth [G3] to {written}"
    saved = load_volume(written)
    np.testing.assert_array_equal(saved.affine, load_volume(t2_path).affine)
    assert saved.data.shape == shape and saved.data.min() >= 0  # a magnitude image
    layer = viewer.layers["IXI002 PD synth [G3]"]
    np.testing.assert_allclose(saved.data, from_display(layer.data, saved.affine), atol=1e-4)

    before = t2_path.read_bytes()
    save_and_wait(widget, qtbot, t2_path)
    assert t2_path.read_bytes() == before
    errors = [n.message for n in notifications if n.severity == "error"]
    assert errors[-1].endswith("refusing to overwrite an input file")
    assert nib.load(t2_path).shape == shape
    # with "write the maps as files" on, Save writes the maps beside the synthesis, named as the CLI names them
    set_options(widget, maps=True)
    written = save_and_wait(widget, qtbot, tmp_path / "with_maps" / "synth.nii.gz")
    names = {path.name for path in written.parent.glob("*.nii.gz")}
    assert {"synth.nii.gz", "synth_squared_error.nii.gz", "synth_gradient_difference.nii.gz"} <= names
    squared = load_volume(written.parent / "synth_squared_error.nii.gz")
    assert squared.data.shape == shape and np.allclose(squared.affine, saved.affine)


def training_widget(viewer, data, runs, epochs=1):
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.fields["data"].value = data
    widget.fields["epochs"].value = epochs
    widget.fields["width"].value = 0.0625
    widget.fields["discriminator_width"].value = 0.125
    widget.fields["lr"].value = 1e-3
    widget.fields["val_stride"].value = 32
    widget.fields["device"].value = "cpu"
    widget.fields["workers"].value = 0
    widget.fields["variant"].value = "G3"
    return widget


def test_training_widget_trains_stops_resumes_and_lists_the_best_checkpoint(
    make_napari_viewer, qtbot, runs, phantom_dir, notifications
):
    viewer = make_napari_viewer()
    synthesis = synthesis_widget(viewer, qtbot)
    widget = training_widget(viewer, phantom_dir, runs, epochs=2)
    assert widget.pairs.value.startswith("3 T2/PD pairs")
    assert widget.run_name.value == "t2-pd-G3"
    assert widget.command_line.value.startswith(f"medsynth-train train --data {phantom_dir} --out {runs / 't2-pd-G3'}")
    assert "--variant G3" in widget.command_line.value and "--epochs 2" in widget.command_line.value

    progress = []
    widget.progress.changed.connect(progress.append)
    process = widget.start()
    qtbot.waitUntil(lambda: bool(widget.plot.points["loss_g"]), timeout=240_000)  # first logged steps
    widget.stop()
    qtbot.waitUntil(lambda: widget.process is None, timeout=120_000)
    assert process.poll() == 130
    run = runs / "t2-pd-G3"
    assert (run / "last.pt").is_file() and widget.resume_button.enabled
    assert widget.status.value == "stopped: last.pt saved, Resume continues"

    widget.start(resume=True)
    assert "--resume" in widget.process.argv
    qtbot.waitUntil(lambda: widget.process is None, timeout=240_000)
    assert (run / "best.pt").is_file()
    assert [epoch for epoch, _ in widget.plot.points["psnr"]] == [1, 2]
    assert len(widget.plot.points["loss_g"]) >= 2
    assert widget.progress.value == widget.progress.max
    assert len({value for value in progress if 0 < value <= 7}) >= 3  # the first 7-step epoch moved live
    assert str(run / "best.pt") in synthesis.generators
    assert any("training finished" in n.message for n in notifications)
    best = max(range(2), key=lambda i: widget.plot.points["psnr"][i][1])  # the final figures, not the path only
    assert widget.status.value.startswith(f"done: best epoch {best + 1}: validation PSNR "
                                          f"{widget.plot.points['psnr'][best][1]:.2f} dB, MAE ")
    assert widget.status.value.endswith(str(run / "best.pt"))


def test_closing_napari_during_a_synthesis_and_a_training_leaves_no_process_and_a_resumable_run(
    make_napari_viewer, qtbot, runs, phantom_dir
):
    import psutil
    from qtpy.QtCore import QThreadPool

    checkpoint = tiny_checkpoint(runs / "tiny" / "best.pt")
    viewer = make_napari_viewer()
    open_phantom_subject(viewer, phantom_dir)
    synthesis = synthesis_widget(viewer, qtbot, stride=8)  # 8: still running when napari closes
    synthesis.configure(generator=checkpoint)
    training = training_widget(viewer, phantom_dir, runs, epochs=3)
    training.fields["variant"].value = "G1"
    training.fields["workers"].value = 2  # the trainer has loader workers of its own
    process, run_dir = training.start(), training.run_dir
    qtbot.waitUntil(lambda: (run_dir / "events.jsonl").exists(), timeout=120_000)
    synthesis.start()
    qtbot.waitUntil(lambda: synthesis.progress[0] > 0, timeout=60_000)
    assert psutil.Process().children(recursive=True)

    viewer.close()
    assert process.poll() == 130
    assert QThreadPool.globalInstance().waitForDone(5_000)  # the synthesis thread stopped
    assert psutil.Process().children(recursive=True) == []  # trainer and its loader workers: all gone
    assert (run_dir / "last.pt").is_file()


def test_training_without_pairs_is_one_notification(make_napari_viewer, runs, tmp_path, notifications):
    viewer = make_napari_viewer()
    empty = tmp_path / "empty"
    empty.mkdir()
    widget = training_widget(viewer, empty, runs)
    assert widget.pairs.value == f"no T2/PD pairs (IXI or BIDS) in {empty}"
    assert widget.start() is None
    assert [n.message for n in notifications if n.severity == "error"] == [
        f"no T2/PD pairs (IXI or BIDS) in {empty}: choose the data folder"
    ]


def test_a_form_the_trainer_would_refuse_starts_nothing(make_napari_viewer, runs, phantom_dir, notifications):
    viewer = make_napari_viewer()
    widget = training_widget(viewer, phantom_dir, runs)
    widget.fields["variant"].value, widget.fields["batch_size"].value = "G2", 1
    assert widget.start() is None
    widget.fields["variant"].value, widget.fields["batch_size"].value, widget.run_name.value = "G1", 7, " "
    assert widget.start() is None
    assert [n.message for n in notifications if n.severity == "error"] == [
        "G2 splits each batch into real and generated halves: use --batch-size 2 or more",
        "run name '': give the run a folder name (no '/')",
    ]
    assert list(runs.iterdir()) == []  # no run folder, no train.log


def test_a_layer_from_another_reader_gets_results_in_its_place(make_napari_viewer, qtbot, runs):
    """No affine in the metadata (napari's own reader, another plugin): the layer's scale and
    translate place the source, the synthesis and the maps."""
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer()
    shape = (96, 96, 48)
    data, scale, _ = to_display(make_phantom_pair(seed=0, shape=shape, zooms=field_of_view_zooms(shape))[0])
    layer = viewer.add_image(np.array(data), name="T2 elsewhere", scale=scale, translate=(10.0, -20.0, 30.0))
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint, source=layer, preview_first=False)
    widget.form.truth.value = None  # no ground truth (the one field configure cannot clear)
    run_and_wait(widget, qtbot)
    results = [result for result in viewer.layers if LayerMetadata.of(result).run is not None]
    assert len(results) == 1  # the synthesis (no ground truth: no error maps; stride 32: no spread map)
    for result in results:
        np.testing.assert_allclose(result.scale, layer.scale)
        np.testing.assert_allclose(result.translate, layer.translate)


def test_both_docks_fit_a_1600x1000_screen_and_every_grid_tile_shows_the_whole_head(
    make_napari_viewer, qtbot, runs, phantom_dir
):
    from qtpy.QtWidgets import QApplication

    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1600, 1000)
    open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot)
    training_widget(viewer, phantom_dir, runs)
    widget.configure(generator=checkpoint, side_by_side=True, preview_first=False)
    long_folder = runs / " ".join(["a long folder name"] * 8)  # a long status line must not widen the dock
    long_folder.mkdir()
    widget.start_folder(long_folder, runs / "out")
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert len(widget.status) > 150 and str(long_folder) in widget.status
    assert not (runs / "out").exists()  # a folder run that fails before its first file makes no folder
    from conftest import laid_out
    qtbot.waitUntil(lambda: laid_out(window))  # the long status line laid out: the docks' final widths
    screen = QApplication.primaryScreen().availableGeometry()
    canvas = viewer.window._qt_viewer.canvas.native
    assert canvas.width() >= 0.5 * window.width(), (canvas.width(), window.width())
    assert window.frameGeometry().height() <= screen.height()

    run_and_wait(widget, qtbot)
    qtbot.waitUntil(lambda: laid_out(window))  # the canvas at the size the camera must fit the tiles into
    grid = viewer.canvas.grid
    tiles = [layer for layer in viewer.layers if layer.visible]
    assert grid.enabled and len(tiles) == 5  # source, synthesis, truth, two error maps (no spread at stride 32)
    assert [tile_label(layer).text for layer in tiles] == [  # each tile says what it shows
        "source T2", "G3", "truth PD", "error", "grad. diff."]
    height, width = viewer.canvas.viewbox_size(viewer.layers)
    camera = viewer.scene.camera  # napari 0.9 (viewer.camera before)
    shown = np.array([[camera.center[-2] - height / 2 / camera.zoom, camera.center[-1] - width / 2 / camera.zoom],
                      [camera.center[-2] + height / 2 / camera.zoom, camera.center[-1] + width / 2 / camera.zoom]])
    for layer in tiles:
        extent = layer.extent.world[:, -2:]
        assert np.all(shown[0] <= extent[0]) and np.all(extent[1] <= shown[1]), (layer.name, shown, extent)

    # Rerun and cancel during the refinement: the finished result, its maps and its figures stay.
    finished = {layer.name: layer.data.copy() for layer in tiles}
    line = widget.status
    viewer.layers.events.inserted.connect(lambda event: widget.cancel() if "preview" in event.value.name else None)
    widget.configure(preview_first=True)
    set_options(widget, stride=16)  # a refinement to cancel (at stride 32 the preview is the result)
    run_and_wait(widget, qtbot)
    assert widget.status == f"synthesis cancelled; the earlier result stays: {line}"
    assert not any("preview" in layer.name for layer in viewer.layers)
    for name, data in finished.items():
        np.testing.assert_array_equal(viewer.layers[name].data, data)
    assert widget.shown.name == "IXI001 PD synth [G3]"
    assert widget.save_path.name == "IXI001_PD_synth_G3.nii.gz"  # not the cancelled preview's name

    widget.configure(side_by_side=False)  # off: the maps hide, the synthesis shows over its source
    assert not grid.enabled
    assert [layer.name for layer in viewer.layers if layer.visible][-1] == "IXI001 PD synth [G3]"
    assert not any(layer.visible for layer in viewer.layers if "error" in layer.name or "difference" in layer.name)


def test_without_a_gpu_the_training_form_starts_cpu_sized(make_napari_viewer):
    import torch

    widget = TrainingWidget(make_napari_viewer())
    fields = widget.fields
    if torch.cuda.is_available():
        assert (fields["width"].value, fields["epochs"].value) == (1.0, 32) and not widget.size_note.visible
    else:
        assert (fields["width"].value, fields["discriminator_width"].value, fields["epochs"].value) == (0.25, 0.25, 4)
        assert widget.size_note.value.startswith("no GPU found: a CPU-sized run")
        fields["variant"].value = "G3"
        options = widget.options()  # what Start runs
        assert (options["epochs"], options["width"], options["discriminator_width"]) == (4, "0.25", "0.25")
        assert "--discriminator-width 0.25" in widget.command_line.value
        fields["variant"].value = "G1"  # no discriminator to size
        assert not fields["discriminator_width"].visible and "--discriminator-width" not in widget.command_line.value
        assert not widget.size_note.native.isHidden()
        fields["epochs"].value = 8  # the note speaks of the CPU-sized defaults: it goes when they change
        assert widget.size_note.native.isHidden()
        fields["epochs"].value = 4
        assert not widget.size_note.native.isHidden()
        fields["width"].value = 0.5
        assert widget.size_note.native.isHidden()


def test_folder_mode_synthesizes_every_file_with_progress_and_reports_the_bad_one(
    make_napari_viewer, qtbot, runs, phantom_dir, tmp_path, notifications
):
    import shutil

    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    data = tmp_path / "data"
    shutil.copytree(phantom_dir, data)
    (data / "IXI009-Bad-0009-T2.nii.gz").write_bytes(b"not a NIfTI file")
    viewer = make_napari_viewer()
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint)
    set_options(widget, grid="report", maps=True)
    files, inserted = [], []
    widget.file_started.connect(lambda done, total, name: files.append((done, total, name)))
    viewer.layers.events.inserted.connect(lambda event: inserted.append(event.value.name))
    widget.start_folder(data, tmp_path / "out")
    qtbot.waitUntil(lambda: widget.worker is None, timeout=180_000)
    assert [done for done, _, _ in files] == [0, 1, 2, 3] and {total for _, total, _ in files} == {4}
    # the first file opens in the viewer, and its pictures come as a single synthesis' do: preview first
    assert inserted[:3] == ["IXI001 T2", "IXI001 PD", "IXI001 PD synth [G3 preview]"]
    assert "IXI001 PD synth [G3]" in viewer.layers and "IXI001 PD synth [G3 preview]" not in viewer.layers
    # each file with its error maps (its PD partner is there), and no spread map at stride 32
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == [
        f"IXI00{i}-Phantom-000{i}-PD_synth{suffix}.nii.gz" for i in (1, 2, 3)
        for suffix in ("", "_gradient_difference", "_squared_error")]
    assert (tmp_path / "out" / "metrics.csv").is_file()
    assert widget.status.startswith(f"3 of 4 files synthesized into {tmp_path / 'out'}, 1 failed: "
                                           "IXI009-Bad-0009-T2.nii.gz: not a readable NIfTI file")
    assert [n.message for n in notifications if n.severity == "error"][-1].startswith("IXI009-Bad-0009-T2.nii.gz")
    assert widget.can_start and not widget.can_cancel

    widget.start_folder(data, tmp_path / "again")  # cancelled during the first file: it stops there
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.status == "synthesis cancelled"
    assert not list((tmp_path / "again").glob("*.nii.gz"))


def test_compare_three_bundled_generators_and_the_mapping_in_the_grid_and_the_figures_table(
    make_napari_viewer, qtbot, runs, tmp_path, phantom_dir
):
    from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
    from napari_medsynth.core.synthesis.catalog import bundled_generators, bundled_mapping
    from napari_medsynth.core.synthesis.compare import MAPPING
    from napari_medsynth.core.synthesis.pipeline import score_voxelwise, synthesize, voxelwise_prediction

    viewer = make_napari_viewer()
    t2, pd = open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot)
    chosen = [str(e.path) for e in bundled_generators("t2-pd") if e.info.label in ("G1", "G3", "G4")]
    widget.configure("t2-pd", options=SynthesisOptions(grid="report", stride=32, device="cpu"), preview_first=False)
    options = widget.options()
    widget.compare(chosen + [str(tmp_path / "missing.pt")])  # a generator that cannot run is one row
    qtbot.waitUntil(lambda: widget.worker is None, timeout=180_000)

    rows = widget.comparing.figures.rows
    assert [row.label for row in rows] == ["G1", "G3", "G4", "missing.pt", MAPPING]
    assert rows[3].error == "missing.pt: no such checkpoint file" and rows[3].metrics is None
    for row, checkpoint in zip(rows, chosen):  # each row is what a single synthesis of it reports
        single = synthesize(t2, checkpoint, options, target=pd).metrics
        for scope in ("source", "head", "report"):
            assert abs(single[scope].psnr - row.metrics[scope].psnr) < 0.01, (row.label, scope)
            assert abs(single[scope].ssim - row.metrics[scope].ssim) < 1e-4
    # the mapping goes through the generators' grid (one slice in three here) and back, as they do
    predict = bundled_mapping("t2-pd").predict
    mapping = voxelwise_prediction(predict, t2, pd, prepared=preprocess_volume(t2, "report"))[1]
    assert abs(mapping.source.psnr - rows[-1].metrics.source.psnr) < 0.01
    per_voxel = score_voxelwise(predict, t2, pd)  # (not on every source voxel, as it was)
    assert per_voxel.source.psnr - rows[-1].metrics.source.psnr > 0.5
    best = max(rows[:3] + rows[4:], key=lambda row: row.metrics.source.psnr).label
    figures = widget.comparing.figures
    assert figures.best("source_psnr") == best and figures.marked("source_psnr") == [best]
    assert widget.status.startswith("compared 3 generators and the intensity mapping; best PSNR on the source "
                                    f"grid: {best}; missing.pt could not run")

    # The grid: source | truth | each synthesis | the mapping, each tile labelled with its generator.
    tiles = [layer for layer in viewer.layers if layer.visible]
    assert viewer.canvas.grid.enabled
    assert sorted(tile_label(layer).text for layer in tiles) == sorted(
        ["source T2", "truth PD", "G1", "G3", "G4", "mapping"])
    assert grid_tile(viewer.canvas.grid, viewer.layers, "IXI001 T2") == (0, 0)

    # One row selected: its error maps; two: their difference.
    widget.comparing.figures.select(["G3"])
    assert "IXI001 PD squared error [G3]" in viewer.layers
    assert tile_label(viewer.layers["IXI001 PD squared error [G3]"]).text == "error G3"
    widget.comparing.figures.select(["G3", "G4"])
    assert "IXI001 PD squared error [G3]" not in viewer.layers
    difference = viewer.layers["IXI001 PD difference [G3 - G4]"]
    np.testing.assert_allclose(difference.data, viewer.layers["IXI001 PD synth [G3]"].data
                               - viewer.layers["IXI001 PD synth [G4]"].data, atol=1e-3)

    written = widget.comparing.figures.save_csv(tmp_path / "figures.csv")
    lines = written.read_text().splitlines()
    assert lines[0].startswith("generator,checkpoint,error,source_mae,source_psnr,source_ssim")
    assert [line.split(",")[0] for line in lines[1:]] == ["G1", "G3", "G4", "missing.pt", MAPPING]


def test_compare_previews_each_generator_then_refines_and_cancel_keeps_the_finished(
    make_napari_viewer, qtbot, runs, phantom_dir
):
    checkpoints = [str(tiny_checkpoint(runs / f"run{seed}" / "best.pt", seed=seed)) for seed in range(3)]
    viewer = make_napari_viewer()
    open_phantom_subject(viewer, phantom_dir)
    widget = synthesis_widget(viewer, qtbot)
    widget.configure("t2-pd", options=SynthesisOptions(grid="report", stride=16, spread=False, device="cpu"),
                     preview_first=True)  # (overlapping patches: a refinement after the previews)
    truth = widget.form.truth.value
    widget.form.truth.value = None
    widget.compare(checkpoints)  # the figures need a truth: one line, nothing runs
    assert widget.worker is None and widget.status == (
        "Compare needs a ground truth layer: the figures are taken against it")
    widget.form.truth.value = truth
    widget.compare([])
    assert widget.worker is None and widget.status == "select the generators to compare in the list above Compare"
    added = []
    viewer.layers.events.inserted.connect(lambda event: added.append(event.value.name))

    def refined():
        return [label for label, row in widget.comparing.view.rows.items()
                if label not in widget.comparing.view.previews and row.checkpoint]

    widget.compare(checkpoints)
    qtbot.waitUntil(lambda: len(refined()) == 2, timeout=120_000)
    widget.cancel()  # during the third generator's patches
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)

    labels = ["G3 (run0)", "G3 (run1)", "G3 (run2)"]  # alike variants: told apart by their run folders
    previews = [name for name in added if "synth [" in name and "preview]" in name]
    assert previews == [f"IXI001 PD synth [{label} preview]" for label in labels]
    assert widget.comparing.view.rows.keys() == set(labels[:2])
    assert [row.label for row in widget.comparing.figures.rows] == labels[:2]
    assert not any("preview" in layer.name for layer in viewer.layers)
    assert all(f"IXI001 PD synth [{label}]" in viewer.layers for label in labels[:2])
    assert widget.status == "comparison cancelled; kept G3 (run0), G3 (run1)"
