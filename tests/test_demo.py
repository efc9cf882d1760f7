"""The out-of-the-box demo: bundled generators, `medsynth demo --headless`, and the napari demo."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from napari_medsynth._napari_adapter import grid_tile, tile_label
from napari_medsynth._widgets._settings import save_settings, settings_path
from napari_medsynth.cli import main
from napari_medsynth.core.evaluation.baselines import BASELINES
from napari_medsynth.core.simulation.phantom import make_phantom_pair
from napari_medsynth.core.synthesis.catalog import bundled_generators, bundled_mapping, default_generator, describe
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.demo import open_demo_viewer


def test_the_package_bundles_the_reports_generators_labelled_as_phantom_trained():
    labels = {(e.info.direction, e.info.label) for e in bundled_generators()}
    assert labels == {("t2-pd", "G1"), ("t2-pd", "G2"), ("t2-pd", "G3"), ("t2-pd", "G4"), ("t2-pd", "G4+RL"),
                      ("pd-t2", "G4"), ("pd-t2", "G4+RL")}
    for entry in bundled_generators():
        provenance = entry.info.provenance
        assert "synthetic phantom" in provenance["trained_on"]
        assert "medsynth-train train $common" in provenance["command"]  # the recipe, with its options
        assert 'common="--data phantom10 --width 0.25' in provenance["command"]
        assert provenance["training_hours"] > 0 and entry.info.width == 0.25
        test = provenance["test"]  # ten held-out subjects, on the source grid first
        assert len(test["subjects"]) == 10 and test["grid"] == "native"
        for scope in ("source", "head", "report"):
            assert set(test[scope]) == {"mae", "psnr", "ssim"}
        assert entry.path.stat().st_size < 1_500_000
    default = default_generator()
    assert (default.info.direction, default.info.label) == ("pd-t2", "G4+RL")
    assert "held-out PSNR" in describe(default) and "on the source grid (10 subjects)" in describe(default)
    assert bundled_mapping("pd-t2").bins == 256


def test_demo_without_a_display_runs_headless_writes_the_results_and_beats_both_baselines(monkeypatch, tmp_path,
                                                                                             capsys):
    for variable in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    save_settings(direction="t2-pd", grid="report")  # a user's remembered choices
    remembered = settings_path().read_bytes()
    assert main(["demo", "--stride", "24", "--device", "cpu"]) == 0  # overlapping patches (a spread map), for time
    assert settings_path().read_bytes() == remembered  # the demo leaves them alone
    printed = capsys.readouterr()
    assert "no display to open napari on: running headless into demo-output/" in printed.err
    assert "PD->T2 pd-t2-G4+RL.pt" in printed.out
    out = tmp_path / "demo-output"

    names = ["phantom_T2.nii.gz", "phantom_PD.nii.gz", "phantom_T2_synth_G4RL.nii.gz", "phantom_T2_synth_G4RL.json",
             "phantom_T2_synth_G4RL_spread.nii.gz", "phantom_T2_synth_G4RL_squared_error.nii.gz",
             "phantom_T2_synth_G4RL_gradient_difference.nii.gz", "metrics.json", "demo.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    t2, _ = make_phantom_pair(seed=0)
    for name in (name for name in names if name.endswith(".nii.gz")):
        image = nib.load(out / name)
        assert image.shape == t2.data.shape
        np.testing.assert_allclose(image.affine, t2.affine, atol=1e-5)
        assert np.isfinite(image.get_fdata()).all()
    np.testing.assert_array_equal(nib.load(out / "phantom_T2.nii.gz").get_fdata(dtype=np.float32), t2.data)
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = json.loads((out / "metrics.json").read_text())
    assert summary["direction"] == "PD->T2"
    assert summary["options"]["stride"] == 24 and summary["options"]["grid"] == "native"
    metrics = summary["metrics"]
    demo = metrics["G4+RL (demo generator)"]
    for baseline in BASELINES:  # on a subject none of them was fitted on, on the grid the user sees
        for scope in ("source", "head"):
            assert demo[scope]["psnr"] > metrics[baseline][scope]["psnr"], (baseline, scope, metrics)
            assert demo[scope]["mae"] < metrics[baseline][scope]["mae"], (baseline, scope, metrics)


def test_headless_demo_into_an_unwritable_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["demo", "--headless", str(blocker / "out")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("medsynth: error: ") and "cannot write there" in error and "\n" not in error


def test_demo_viewer_shows_source_synthesis_truth_and_maps_side_by_side(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QApplication

    save_settings(direction="t2-pd", grid="report")  # a user's remembered choices
    remembered = settings_path().read_bytes()
    # (the report grid and stride 32, for time: the native grid is the dock's own tests')
    options = SynthesisOptions(grid="report", stride=32, device="cpu")
    viewer, widget = open_demo_viewer(make_napari_viewer(), options=options)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=180_000)
    assert settings_path().read_bytes() == remembered  # PD->T2 is the demo's, not the user's next direction
    tiles = ["phantom PD", "phantom T2 synth [G4+RL]", "phantom T2",  # source | synthesis | truth
             "phantom T2 squared error [G4+RL]", "phantom T2 gradient difference [G4+RL]"]  # (stride 32: no spread)
    assert viewer.canvas.grid.enabled and all(layer.visible for layer in viewer.layers)
    assert [grid_tile(viewer.canvas.grid, viewer.layers, name) for name in tiles] == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    # At napari's default window (~110 px tiles) each tile's label names its role and fits its tile.
    QApplication.processEvents()  # (a hidden window: no layout to wait for; the labels' widths are the font's)
    canvas = viewer.window._qt_viewer.canvas
    room = canvas.size[1] / 3 - viewer.canvas.overlay_tiling.padding[0]
    for name, role in zip(tiles, ["source PD", "G4+RL", "truth T2", "error", "grad. diff."], strict=True):
        label = tile_label(viewer.layers[name])
        assert label.visible and label.text == role and not viewer.layers[name].name_overlay.visible
        width = canvas._layer_overlay_to_visual[viewer.layers[name]][label].node.get_width_height()[0]
        assert 0 < width <= room, (role, width, room)
    assert viewer.layers["phantom T2 synth [G4+RL]"].metadata["metrics"]["source"]["psnr"] > 20
