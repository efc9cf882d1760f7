"""What `pip install napari-medsynth` gives a user, checked from the installed wheel (run by
`.ci/legs wheel` from outside the source tree, so that nothing is imported from it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def test_the_package_comes_from_the_wheel_not_the_source_tree():
    import napari_medsynth

    assert "site-packages" in Path(napari_medsynth.__file__).parts


def test_napari_discovers_the_plugin_and_its_manifest_validates():
    from npe2 import PluginManager, PluginManifest

    manager = PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest("napari-medsynth")
    assert {w.display_name for w in manifest.contributions.widgets} == {"Synthesize contrast", "Train generator"}
    assert manifest.contributions.readers and manifest.contributions.writers
    import napari_medsynth

    PluginManifest.from_file(Path(napari_medsynth.__file__).with_name("napari.yaml"))  # raises if invalid
    done = subprocess.run([Path(sys.executable).with_name("npe2"), "validate", "napari-medsynth"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_bundled_generators_load():
    from napari_medsynth import bundled_generators, load_checkpoint

    entries = bundled_generators()
    assert len(entries) == 7
    for entry in entries:
        network, info = load_checkpoint(entry.path)
        assert info.direction in ("t2-pd", "pd-t2") and sum(p.numel() for p in network.parameters()) > 1000


def test_the_headless_demo_runs(tmp_path):
    done = subprocess.run([Path(sys.executable).with_name("medsynth"), "demo", "--headless", str(tmp_path / "demo"),
                           "--stride", "32", "--grid", "report", "--device", "cpu"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "demo" / "metrics.json").is_file() and (tmp_path / "demo" / "demo.png").is_file()


def test_the_docks_open_and_a_side_by_side_synthesis_runs(make_napari_viewer, qtbot):
    from napari_medsynth import SynthesisOptions

    viewer = make_napari_viewer()
    viewer.open_sample("napari-medsynth", "phantom_pair")
    _, synthesis = viewer.window.add_plugin_dock_widget("napari-medsynth", "Synthesize contrast")
    viewer.window.add_plugin_dock_widget("napari-medsynth", "Train generator")
    synthesis.configure("pd-t2", options=SynthesisOptions(grid="report", stride=32, device="cpu"),
                        side_by_side=True, preview_first=False)
    synthesis.start()
    qtbot.waitUntil(lambda: synthesis.worker is None, timeout=300_000)
    assert synthesis.shown is not None, synthesis.status
    layer = viewer.layers[synthesis.shown.name]
    assert layer.data.shape == viewer.layers["phantom PD"].data.shape and np.min(layer.data) >= 0
    assert synthesis.status.startswith(layer.name) and layer.visible
