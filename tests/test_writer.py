"""The NIfTI writer through napari's own saving: layers go back onto their source file's grid."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import IXI_AFFINE, smooth_volume

from napari_medsynth._layers import result_layers
from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.files.nifti import display_affine, from_display, load_volume

PLUGIN = "napari-medsynth"
CODES = (1, 4)  # qform "scanner", sform "MNI": neither is nibabel's default (0, 2)


def write_coded(path: Path, data, affine=IXI_AFFINE, codes=CODES, dtype=np.int16) -> Path:
    """A NIfTI file with the given qform/sform codes and a description of its own."""
    image = nib.Nifti1Image(np.rint(data).astype(dtype), affine)
    image.set_qform(affine, code=codes[0])
    image.set_sform(affine, code=codes[1])
    image.header["descrip"] = b"scanner file"
    nib.save(image, str(path))
    return path


@pytest.fixture
def coded_pair(tmp_path):
    """An IXI-named T2/PD pair (int16, qform code 1, sform code 4): (t2_path, pd_path)."""
    folder = tmp_path / "data"
    folder.mkdir()
    shape = (40, 44, 36)
    t2 = write_coded(folder / "IXI002-Guys-0828-T2.nii.gz", 300 * smooth_volume(shape, 1) + 500)
    pd = write_coded(folder / "IXI002-Guys-0828-PD.nii.gz", 200 * smooth_volume(shape, 2) + 800)
    return t2, pd


def save(viewer, name: str, path: Path, plugin: str | None = PLUGIN) -> list[str]:
    """napari's File > Save Selected Layers for the one layer ``name``."""
    viewer.layers.selection.select_only(viewer.layers[name])
    return viewer.layers.save(str(path), selected=True, plugin=plugin)


def codes(path: Path) -> tuple[int, int]:
    header = nib.load(str(path)).header
    return int(header["qform_code"]), int(header["sform_code"])


def assert_on_grid_of(written: Path, source: Path, data: np.ndarray):
    """``written`` has ``source``'s affine and qform/sform codes and holds ``data`` on its grid."""
    saved, original = load_volume(written), load_volume(source)
    np.testing.assert_array_equal(saved.affine, original.affine)
    assert codes(written) == codes(source)
    assert nib.load(str(written)).get_data_dtype() == np.float32
    assert saved.data.shape == original.data.shape
    np.testing.assert_array_equal(saved.data, data)


def test_a_reader_layer_is_written_back_on_its_file_grid(make_napari_viewer, coded_pair, tmp_path):
    t2_path, pd_path = coded_pair
    viewer = make_napari_viewer()
    viewer.open(str(t2_path), plugin=PLUGIN)

    out = tmp_path / "out" / "t2 copy.nii.gz"
    assert save(viewer, "IXI002 T2", out) == [str(out)]
    assert_on_grid_of(out, t2_path, load_volume(t2_path).data)
    assert nib.load(str(out)).header["descrip"] == b"scanner file"  # an input layer keeps its header

    # Without naming the plugin, a .nii.gz name finds this writer (napari used to write nothing);
    # a name without an extension gets .nii.gz, and .nii writes uncompressed.
    assert save(viewer, "IXI002 PD", tmp_path / "pd.nii.gz", plugin=None) == [str(tmp_path / "pd.nii.gz")]
    assert_on_grid_of(tmp_path / "pd.nii.gz", pd_path, load_volume(pd_path).data)
    assert save(viewer, "IXI002 PD", tmp_path / "pd") == [str(tmp_path / "pd.nii.gz")]
    assert save(viewer, "IXI002 PD", tmp_path / "pd.nii") == [str(tmp_path / "pd.nii")]
    assert (tmp_path / "pd.nii").read_bytes()[344:348] == b"n+1\x00"  # the NIfTI-1 magic, not gzip
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def tiny_checkpoint(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from napari_medsynth.core.networks.checkpoint import save_checkpoint
    from napari_medsynth.core.networks.models import Generator

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, Generator(width=0.0625), direction="t2-pd", variant="G3",
                           target_intensity={"mean": 400.0, "std": 150.0})


def test_a_synthesis_and_its_maps_are_saved_on_the_source_grid_never_over_an_input(
    make_napari_viewer, coded_pair, tmp_path, monkeypatch
):
    from qtpy.QtWidgets import QFileDialog

    from napari_medsynth._layer_metadata import LayerMetadata
    from napari_medsynth.core.networks.checkpoint import load_checkpoint
    from napari_medsynth.core.synthesis.options import SynthesisOptions
    from napari_medsynth.core.synthesis.pipeline import synthesize

    t2_path, pd_path = coded_pair
    checkpoint = tiny_checkpoint(tmp_path / "runs" / "t2-pd-G3" / "best.pt")
    viewer = make_napari_viewer()
    viewer.open(str(t2_path), plugin=PLUGIN)
    source, truth = load_volume(t2_path), load_volume(pd_path)
    generator, info = load_checkpoint(checkpoint)
    result = synthesize(source, (generator, info), SynthesisOptions(grid="report", stride=32), target=truth)
    # the layers the synthesis widget adds (its metadata, the source layer's grid)
    mark = LayerMetadata(provenance=result.provenance.record(), synthesized_from="IXI002 T2",
                         ground_truth="IXI002 PD", run=f"IXI002 PD [{info.label}]")
    for data, kwargs, _ in result_layers(result, source, subject="IXI002", label=info.label, target="PD", mark=mark):
        viewer.add_image(data, **kwargs)

    for name, expected, what in (("IXI002 PD synth [G3]", result.synthesis, ""),
                                 ("IXI002 PD squared error [G3]", result.maps["squared_error"], " squared_error")):
        out = tmp_path / "out" / f"{name.replace(' ', '_')}.nii.gz"
        assert save(viewer, name, out) == [str(out)]
        assert_on_grid_of(out, t2_path, expected)
        np.testing.assert_array_equal(load_volume(out).data, from_display(viewer.layers[name].data, IXI_AFFINE))
        assert nib.load(str(out)).header["descrip"] == f"napari-medsynth G3 t2-pd-G3/best.pt{what}".encode()
    # the synthesis' sidecar says where it came from (a map has none)
    sidecar = json.loads((tmp_path / "out" / "IXI002_PD_synth_[G3].json").read_text())
    assert sidecar["checkpoint"] == str(checkpoint.resolve()) and sidecar["options"]["stride"] == 32
    assert not (tmp_path / "out" / "IXI002_PD_squared_error_[G3].json").exists()

    # File > Save Selected Layers with the NIfTI file type (the first offered for an image layer)
    # and the name as typed, without an extension: napari hands that name to the writer.
    name = "IXI002 PD gradient difference [G3]"
    viewer.layers.selection.select_only(viewer.layers[name])
    typed = tmp_path / "out" / "gradient difference"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_, **__: (str(typed), "MedSynth NIfTI"))
    viewer.window._qt_viewer._save_layers_dialog(selected=True)
    assert_on_grid_of(Path(f"{typed}.nii.gz"), t2_path, result.maps["gradient_difference"])

    # Never over an input file: neither the source nor its partner; both stay as they were.
    for path in (t2_path, pd_path):
        before = path.read_bytes()
        with pytest.raises(MedSynthError) as error:
            save(viewer, "IXI002 PD synth [G3]", path)
        assert str(error.value) == f"{path}: refusing to overwrite an input file"
        assert path.read_bytes() == before
    assert sorted(p.name for p in t2_path.parent.iterdir()) == [pd_path.name, t2_path.name]


def test_a_layer_over_its_own_file_is_refused(make_napari_viewer, coded_pair):
    t2_path, _ = coded_pair
    viewer = make_napari_viewer()
    viewer.open(str(t2_path), plugin=PLUGIN)
    viewer.layers["IXI002 T2"].data[:] = 0  # an edited layer would otherwise replace the scan
    before = t2_path.read_bytes()
    with pytest.raises(MedSynthError, match="refusing to overwrite an input file") as error:
        save(viewer, "IXI002 T2", t2_path)
    assert "\n" not in str(error.value)
    assert t2_path.read_bytes() == before


def test_an_axis_permuted_file_round_trips_to_its_own_grid(make_napari_viewer, tmp_path):
    # Slices along the first voxel axis pointing inferior, rows posterior->anterior ("IAL"):
    # napari shows it reoriented, the written file is on the file's own grid again.
    affine = np.array([[0, 0, -1.0, 90], [0, 1.0, 0, -100], [-1.5, 0, 0, 60], [0, 0, 0, 1]])
    data = np.rint(smooth_volume((20, 24, 28), 3))
    path = write_coded(tmp_path / "permuted.nii.gz", data, affine, codes=(2, 1))
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    layer = viewer.layers["permuted"]
    assert layer.metadata["axcodes"] == "IAL" and layer.data.shape == (20, 24, 28)
    assert not np.array_equal(layer.data, data.transpose(2, 1, 0))  # the display is reoriented

    out = tmp_path / "out.nii"
    assert save(viewer, "permuted", out) == [str(out)]
    assert_on_grid_of(out, path, data)
    np.testing.assert_array_equal(load_volume(out).affine, affine.astype(np.float32))
    assert "".join(nib.aff2axcodes(nib.load(str(out)).affine)) == "IAL"


def test_a_layer_from_elsewhere_is_placed_by_napari(make_napari_viewer, tmp_path):
    """No affine in the metadata: napari's scale and translate (and rotate, shear, affine) place it."""
    viewer = make_napari_viewer()
    array = smooth_volume((12, 14, 16), 4)
    scale, translate = (1.5, 0.8, 0.7), (10.0, -20.0, 30.0)
    viewer.add_image(array, name="plain", scale=scale, translate=translate)

    out = tmp_path / "plain.nii.gz"
    assert save(viewer, "plain", out) == [str(out)]
    saved = load_volume(out)
    np.testing.assert_allclose(saved.affine, display_affine(scale, translate), atol=1e-5)
    np.testing.assert_array_equal(saved.data, array.transpose(2, 1, 0))
    header = nib.load(str(out)).header
    assert codes(out) == (0, 2) and header.get_xyzt_units()[0] == "mm"
    # opened again through the plugin, it is the same layer in the same place
    (reopened,) = viewer.open(str(out), plugin=PLUGIN)
    np.testing.assert_array_equal(reopened.data, array)
    np.testing.assert_allclose(reopened.scale, scale, atol=1e-6)
    np.testing.assert_allclose(reopened.translate, translate, atol=1e-5)

    # rotated and sheared by napari: every voxel lands where napari draws it (LPS world <-> RAS)
    turned = viewer.add_image(array, name="turned", scale=scale, translate=translate, rotate=20,
                              shear=[0.1, 0.0, 0.2], affine=np.diag([1.0, 1.0, -1.0, 1.0]))
    out = tmp_path / "turned.nii.gz"
    save(viewer, "turned", out)
    affine = nib.load(str(out)).affine
    for index in [(0, 0, 0), (11, 13, 15), (3, 7, 2)]:
        world_zyx = np.asarray(turned.data_to_world(index))
        ras = affine @ np.array([*index[::-1], 1.0])
        np.testing.assert_allclose(ras[:3], world_zyx[::-1] * [-1, -1, 1], atol=1e-4)

    viewer.add_image(array[0], name="flat")
    with pytest.raises(MedSynthError, match=r"a 3D image layer is needed, this one has shape \(14, 16\)"):
        save(viewer, "flat", tmp_path / "flat.nii.gz")


def test_the_cli_the_docks_save_and_file_save_write_the_same_file(make_napari_viewer, qtbot, coded_pair,
                                                                    tmp_path, monkeypatch):
    """One writer: the same header fields (descrip, qform/sform and their codes, cal_min/max), the same
    voxels and the same provenance, whichever of the three paths wrote the synthesis."""
    from napari_medsynth._widgets._shared import RUNS
    from napari_medsynth._widgets.synthesis import SynthesisWidget
    from napari_medsynth.cli import main
    from napari_medsynth.core.synthesis.options import SynthesisOptions

    monkeypatch.setattr(RUNS, "_folder", tmp_path / "runs")
    t2_path, pd_path = coded_pair  # qform code 1, sform code 4: both kept
    checkpoint = tiny_checkpoint(tmp_path / "runs" / "t2-pd-G3" / "best.pt")
    cli_out = tmp_path / "cli" / "synth.nii.gz"
    assert main(["synthesize", str(t2_path), "--checkpoint", str(checkpoint), "--target", str(pd_path),
                 "--out", str(cli_out), "--grid", "report", "--stride", "32", "--device", "cpu"]) == 0

    viewer = make_napari_viewer()
    viewer.open(str(t2_path), plugin=PLUGIN)
    widget = SynthesisWidget(viewer)
    options = SynthesisOptions(grid="report", stride=32, device="cpu", spread=False)  # as the CLI without --maps
    widget.configure("t2-pd", checkpoint, options=options, preview_first=False)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    dock_out = tmp_path / "dock" / "synth.nii.gz"
    widget.save(dock_out)
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    menu_out = tmp_path / "menu" / "synth.nii.gz"
    assert save(viewer, widget.shown.name, menu_out) == [str(menu_out)]

    source_header = nib.load(str(t2_path)).header
    headers = [nib.load(str(path)).header for path in (cli_out, dock_out, menu_out)]
    for header in headers:
        assert header["descrip"].tobytes().rstrip(b"\0") == b"napari-medsynth G3 t2-pd-G3/best.pt"
        assert header["cal_min"] == header["cal_max"] == 0
        for key in ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "srow_x",
                    "srow_y", "srow_z", "pixdim", "xyzt_units"):
            np.testing.assert_array_equal(header[key], source_header[key], err_msg=key)
    volumes = [load_volume(path).data for path in (cli_out, dock_out, menu_out)]
    np.testing.assert_allclose(volumes[1], volumes[0], atol=1e-4)
    np.testing.assert_array_equal(volumes[2], volumes[1])
    sidecars = [json.loads(path.with_name("synth.json").read_text()) for path in (cli_out, dock_out, menu_out)]
    for sidecar in sidecars:
        for key in ("time", "output"):
            sidecar.pop(key)
    assert sidecars[0] == sidecars[1] == sidecars[2]
    assert sidecars[0]["source"] == str(t2_path.resolve()) and sidecars[0]["ground_truth"] == str(pd_path.resolve())
