"""Under Xvfb: BIDS-named sources keep their own result layers and file names, and NIfTI files open
with no reader to choose once the plugin has been used."""

from __future__ import annotations

import shutil

import pytest
from test_widgets import notifications, runs, synthesis_widget, tiny_checkpoint  # noqa: F401 (fixtures)


def test_two_bids_sources_give_two_results_and_two_file_names(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                               phantom_dir, tmp_path):
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    for number in (1, 2):
        folder = tmp_path / f"sub-0{number}" / "anat"
        folder.mkdir(parents=True)
        shutil.copy(phantom_dir / f"IXI00{number}-Phantom-000{number}-T2.nii.gz", folder / f"sub-0{number}_T2w.nii.gz")
    viewer = make_napari_viewer()
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint, preview_first=False)
    names, suggested = [], []
    for number in (1, 2):
        viewer.open(tmp_path / f"sub-0{number}" / "anat" / f"sub-0{number}_T2w.nii.gz", plugin="napari-medsynth")
        widget.configure(source=viewer.layers[f"sub-0{number} T2"])
        widget.start()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
        names.append(widget.view.shown.name)
        suggested.append(widget.save_path.name)
    assert names == ["sub-01 PD synth [G3]", "sub-02 PD synth [G3]"]
    assert suggested == ["sub-01_PD_synth_G3.nii.gz", "sub-02_PD_synth_G3.nii.gz"]
    assert all(name in viewer.layers for name in names)  # the second did not replace the first
    assert viewer.layers[names[0]].data.shape == viewer.layers["sub-01 T2"].data.shape


def test_two_files_of_one_name_from_two_folders_keep_two_results(make_napari_viewer, qtbot, runs,  # noqa: F811
                                                                  phantom_dir, tmp_path):
    checkpoint = tiny_checkpoint(runs / "t2-pd-G3" / "best.pt")
    for folder, number in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        shutil.copy(phantom_dir / f"IXI00{number}-Phantom-000{number}-T2.nii.gz", tmp_path / folder / "scan_T2.nii.gz")
    viewer = make_napari_viewer()
    widget = synthesis_widget(viewer, qtbot)
    widget.configure(generator=checkpoint, preview_first=False)
    for folder in ("a", "b"):
        viewer.open(tmp_path / folder / "scan_T2.nii.gz", plugin="napari-medsynth")
    shown = []
    for layer in [layer for layer in viewer.layers if layer.name.startswith("scan T2")]:
        widget.configure(source=layer)
        widget.start()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
        shown.append(widget.view.shown.name)
    assert shown == ["scan (a) PD synth [G3]", "scan (b) PD synth [G3]"]
    assert all(name in viewer.layers for name in shown)


@pytest.fixture
def fresh_napari_settings(tmp_path, monkeypatch):
    """napari's settings from a new, empty settings folder, as on a new machine."""
    import napari.settings
    from napari.settings import NapariSettings

    settings = NapariSettings(config_path=tmp_path / "napari" / "settings.yaml")
    monkeypatch.setattr(napari.settings, "_SETTINGS", settings)
    return settings


def test_after_the_dock_opens_a_nifti_opens_with_no_reader_to_choose(fresh_napari_settings, make_napari_viewer,
                                                                      notifications, ixi_pair,  # noqa: F811
                                                                      monkeypatch):
    import napari._qt.qt_viewer
    from napari.plugins.utils import get_preferred_reader

    from napari_medsynth._widgets.synthesis import SynthesisWidget

    dialogs = []  # napari's "Choose reader" dialog (File > Open, `napari FILE`) would open here
    monkeypatch.setattr(napari._qt.qt_viewer, "handle_gui_reading", lambda paths, *_, **__: dialogs.append(paths))
    viewer = make_napari_viewer()
    qt_viewer = viewer.window._qt_viewer
    qt_viewer._qt_open([str(ixi_pair[0])], stack=False)  # File > Open, before the plugin was used
    assert len(dialogs) == 1 and len(viewer.layers) == 0  # napari's own reader claims NIfTI too: it asks
    with pytest.raises(Exception, match="Multiple plugins found capable of reading"):
        viewer.open(ixi_pair[0], plugin=None)
    viewer.window.add_dock_widget(SynthesisWidget(viewer))
    readers = fresh_napari_settings.plugins.extension2reader
    assert readers == {"*.nii": "napari-medsynth", "*.nii.gz": "napari-medsynth"}  # never "*.gz"
    told = [n for n in notifications if "MedSynth now opens .nii and .nii.gz files" in str(n.message)]
    assert len(told) == 1 and "Preferences" in str(told[0].message)
    assert get_preferred_reader(ixi_pair[0]) == "napari-medsynth"
    qt_viewer._qt_open([str(ixi_pair[0])], stack=False)  # File > Open and `napari FILE`: no dialog, no error
    assert len(dialogs) == 1
    assert [layer.name for layer in viewer.layers] == ["IXI002 PD", "IXI002 T2"]
    viewer.layers.clear()
    assert {layer.name for layer in viewer.open(ixi_pair[1], plugin=None)} == {"IXI002 T2", "IXI002 PD"}
    viewer.window.add_dock_widget(SynthesisWidget(viewer))  # a second dock: nothing more to say
    assert len([n for n in notifications if "MedSynth now opens" in str(n.message)]) == 1


def test_a_reader_the_user_chose_stays(fresh_napari_settings, make_napari_viewer, notifications):  # noqa: F811
    from napari_medsynth._reader import claim_nifti_files

    fresh_napari_settings.plugins.extension2reader = {"*.nii.gz": "napari", "*.gz": "napari"}
    make_napari_viewer()
    assert claim_nifti_files()  # only *.nii was free
    assert fresh_napari_settings.plugins.extension2reader == {"*.nii.gz": "napari", "*.gz": "napari",
                                                              "*.nii": "napari-medsynth"}
    assert not claim_nifti_files()
