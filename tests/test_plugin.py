"""The installed plugin in a real napari viewer: manifest, reader and sample data."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import IXI_AFFINE, smooth_volume, write_nifti

import napari_medsynth
from napari_medsynth._reader import napari_get_reader, read_nifti
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import from_display, load_volume

REPO = Path(__file__).resolve().parents[1]


def test_installed_plugin_loads_the_root_manifest():
    from importlib.metadata import entry_points

    from npe2 import PluginManifest

    (entry,) = [e for e in entry_points(group="napari.manifest") if e.name == "napari-medsynth"]
    assert entry.value == "napari_medsynth:napari.yaml"
    package = Path(napari_medsynth.__file__).parent
    assert (package / "napari.yaml").read_text() == (REPO / "napari.yaml").read_text()
    loaded = PluginManifest.from_distribution("napari-medsynth")
    assert loaded.contributions == PluginManifest.from_file(REPO / "napari.yaml").contributions
    assert loaded.icon == "napari_medsynth:icon.svg"
    assert (package / "icon.svg").read_text() == (REPO / "icons" / "medsynth.svg").read_text()


def test_manifest_validates_with_its_imports():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-medsynth")
    manifest.validate_imports()
    assert {r.command for r in manifest.contributions.readers} == {"napari-medsynth.get_reader"}
    assert [s.key for s in manifest.contributions.sample_data] == ["phantom_pair"]


def test_napari_lists_the_plugin(make_napari_viewer):
    import npe2

    make_napari_viewer()
    manager = npe2.PluginManager.instance()
    assert "napari-medsynth" in {m.name for m in manager.iter_manifests()}
    assert not manager.is_disabled("napari-medsynth")


def test_reader_ignores_other_files():
    assert napari_get_reader("image.tif") is None
    assert napari_get_reader(["a.nii.gz", "b.png"]) is None
    assert napari_get_reader("brain.nii.gz") is not None


def test_opening_one_half_of_a_pair_opens_both(make_napari_viewer, ixi_pair):
    t2_path, pd_path = ixi_pair
    viewer = make_napari_viewer()
    viewer.open(str(pd_path), plugin="napari-medsynth")

    assert [layer.name for layer in viewer.layers] == ["IXI002 T2", "IXI002 PD"]  # the opened file on top
    for layer, path in zip(viewer.layers, (t2_path, pd_path)):
        source = load_volume(path)
        assert layer.data.shape == (30, 36, 40)
        np.testing.assert_allclose(layer.scale, (1.2, 0.9375, 0.9375))
        np.testing.assert_allclose(layer.metadata["affine"], IXI_AFFINE)
        assert layer.metadata["contrast"] in {"T2", "PD"}
        assert layer.metadata["source_path"] == str(path)
        np.testing.assert_array_equal(from_display(layer.data, layer.metadata["affine"]), source.data)
        lo, hi = layer.contrast_limits
        assert source.data.min() <= lo < hi <= source.data.max()
    np.testing.assert_allclose(viewer.layers[0].translate, viewer.layers[1].translate)


def test_permuted_file_is_shown_axial_with_its_affine_kept(make_napari_viewer, tmp_path):
    # Slices stored along the first voxel axis, pointing inferior: shown axial all the same.
    affine = np.array([[0, 0, -1.0, 90], [0, 1.0, 0, -100], [-1.5, 0, 0, 60], [0, 0, 0, 1]])
    data = smooth_volume((20, 24, 28))
    path = write_nifti(tmp_path / "permuted.nii.gz", data, affine)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-medsynth")

    layer = viewer.layers["permuted"]
    assert layer.data.shape == (20, 24, 28)
    np.testing.assert_allclose(layer.scale, (1.5, 1.0, 1.0))
    np.testing.assert_allclose(layer.metadata["affine"], affine)
    assert layer.metadata["axcodes"] == "IAL"
    # The source's first voxel plane is its most superior one: it is the last display
    # slice, with rows running posterior (the source's second axis reversed).
    np.testing.assert_array_equal(layer.data[-1], data[0][::-1, :])
    np.testing.assert_array_equal(from_display(layer.data, affine), data)


def test_bad_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_text("not an image")
    with pytest.raises(MedSynthError, match="broken.nii.gz: not a readable NIfTI file"):
        read_nifti(str(path))


def test_opening_a_2d_file_is_one_notification_and_no_dialog(make_napari_viewer, tmp_path, monkeypatch):
    """napari offers its "Choose reader" dialog when a reader fails: ours says why in one line instead."""
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QDialog

    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((32, 32), np.float32), np.eye(4)), str(path))
    dialogs = []
    monkeypatch.setattr(QDialog, "exec_", lambda self: dialogs.append(self) or 0)
    monkeypatch.setattr(QDialog, "exec", lambda self: dialogs.append(self) or 0)
    shown = []
    notification_manager.notification_ready.connect(shown.append)
    try:
        viewer = make_napari_viewer()
        viewer.window._qt_viewer._qt_open([str(path)], stack=False, plugin="napari-medsynth")  # File > Open
    finally:
        notification_manager.notification_ready.disconnect(shown.append)
    errors = [n.message for n in shown if n.severity == "error"]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith("slice.nii.gz") and "3D volume" in errors[0], errors
    assert not dialogs and len(viewer.layers) == 0


def test_sample_data_opens_the_phantom_pair(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-medsynth", "phantom_pair")
    assert [layer.name for layer in viewer.layers] == ["phantom PD", "phantom T2"]  # the T2 source on top
    pd, t2 = viewer.layers
    for layer in (t2, pd):
        assert layer.data.shape == (130, 256, 256) and layer.data.dtype == np.float32
        np.testing.assert_allclose(layer.scale, (1.2, 0.9375, 0.9375))
    assert t2.metadata["contrast"] == "T2" and pd.metadata["contrast"] == "PD"
    assert t2.rendering == pd.rendering == "attenuated_mip"  # a plain MIP of a head is a white blob in 3D
    np.testing.assert_allclose(t2.metadata["affine"], pd.metadata["affine"])
    # T2 and PD are different contrasts of one anatomy: correlated, not identical.
    head = (t2.data > t2.contrast_limits[0]) & (pd.data > pd.contrast_limits[0])
    correlation = np.corrcoef(t2.data[head], pd.data[head])[0, 1]
    assert 0.5 < correlation < 0.97
