"""Masks for the figures and the maps: a mask file on the CLI, masked maps, errors outside the mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_nifti

from napari_medsynth.cli import main
from napari_medsynth.core.evaluation.masks import head_mask
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks.checkpoint import load_checkpoint, save_checkpoint
from napari_medsynth.core.networks.models import Generator
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume, to_source_grid
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import compare_on_grids, synthesize


@pytest.fixture(scope="module")
def subject(phantom_dir, tmp_path_factory):
    t2_path = sorted(phantom_dir.glob("*-T2.nii.gz"))[0]
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path_factory.mktemp("mask") / "g.pt", Generator(width=0.0625),
                                 direction="t2-pd", variant="G3", target_intensity={"mean": 400.0, "std": 150.0})
    return t2_path, load_volume(t2_path), load_volume(str(t2_path).replace("-T2.", "-PD.")), checkpoint


def test_an_error_outside_the_mask_leaves_the_masked_figures_and_maps_unchanged(subject):
    _, t2, pd, checkpoint = subject
    generator, info = load_checkpoint(checkpoint)
    mask = head_mask(t2.data)
    result = synthesize(t2, (generator, info), SynthesisOptions(grid="report", stride=32, masked_maps=True),
                        target=pd, mask=mask)
    assert result.maps["squared_error"][~mask].max() == 0 and result.maps["squared_error"][mask].max() > 0
    prepared = preprocess_volume(t2, "report")
    on_source = to_source_grid(result.standardized, prepared)
    clean = compare_on_grids(on_source, result.standardized, prepared, pd, mask)[0]
    spoiled = compare_on_grids(on_source + 5.0 * ~mask, result.standardized, prepared, pd, mask)[0]
    assert spoiled["head"].mae == clean["head"].mae and spoiled["head"].psnr == clean["head"].psnr
    assert spoiled["source"].mae > clean["source"].mae + 1.0


def test_the_cli_takes_a_mask_file_and_refuses_one_on_another_grid(subject, tmp_path, capsys):
    t2_path, t2, _, checkpoint = subject
    pd_path = str(t2_path).replace("-T2.", "-PD.")
    mask_path = write_nifti(tmp_path / "mask.nii.gz", head_mask(t2.data).astype(np.uint8), t2.affine, np.uint8)
    common = [str(t2_path), "--checkpoint", str(checkpoint), "--target", pd_path, "--stride", "32", "--grid", "report",
              "--device", "cpu"]
    assert main(["synthesize", *common, "--out", str(tmp_path / "s.nii.gz"), "--mask", str(mask_path),
                 "--masked-maps", "--maps"]) == 0
    error_map = load_volume(tmp_path / "s_squared_error.nii.gz").data
    assert error_map[~head_mask(t2.data)].max() == 0
    small = write_nifti(tmp_path / "small.nii.gz", np.ones((8, 8, 8), np.uint8), t2.affine, np.uint8)
    capsys.readouterr()
    assert main(["synthesize", *common, "--out", str(tmp_path / "t.nii.gz"), "--mask", str(small)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("medsynth: error: the mask has shape (8, 8, 8) but the volume has shape "
                   f"{t2.data.shape}; a mask must lie on the volume's grid")
    assert not (tmp_path / "t.nii.gz").exists()


def test_a_labels_layer_is_a_mask_on_the_source_files_grid(make_napari_viewer, subject):
    from napari_medsynth._layers import layer_mask
    from napari_medsynth.core.errors import MedSynthError
    from napari_medsynth.core.files.nifti import to_display

    t2_path, t2, _, _ = subject
    viewer = make_napari_viewer()
    viewer.open(t2_path, plugin="napari-medsynth")
    source = viewer.layers["IXI001 T2"]
    expected = head_mask(t2.data)
    labels = viewer.add_labels(to_display(t2.__class__(expected.astype(np.uint8), t2.affine))[0].astype(np.uint8))
    np.testing.assert_array_equal(layer_mask(labels, source), expected)
    other = viewer.add_labels(np.ones((4, 4, 4), np.uint8), name="elsewhere")
    with pytest.raises(MedSynthError, match="a mask must lie on the source's grid"):
        layer_mask(other, source)
