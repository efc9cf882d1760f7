"""A BIDS dataset made from phantoms: `medsynth check`, folder synthesis into a BIDS-derivatives
dataset, `medsynth compare` finding the partner by entities, and one epoch of training."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from napari_medsynth.cli import main
from napari_medsynth.core.evaluation import metrics
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks.checkpoint import save_checkpoint
from napari_medsynth.core.networks.models import Generator
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
from napari_medsynth.core.version import __version__
from src_train.cli import main as train_main

SYNTH = ["--stride", "32", "--grid", "report", "--device", "cpu"]
# the phantom subjects of phantom_dir, as BIDS: sub-02 has a session
LAYOUT = {1: ("sub-01/anat", "sub-01"), 2: ("sub-02/ses-1/anat", "sub-02_ses-1"), 3: ("sub-03/anat", "sub-03")}


@pytest.fixture(scope="module")
def bids(phantom_dir, tmp_path_factory):
    """A BIDS dataset of the three phantom subjects (sub-02 in ses-1), with a derivatives folder and a
    sourcedata file that must be skipped, and a T2->PD checkpoint: untrained, as these tests check the plumbing
    (the figures are recomputed from the files), not the figures' level."""
    root = tmp_path_factory.mktemp("bids") / "dataset"
    for number, (folder, stem) in LAYOUT.items():
        for contrast, suffix in (("T2", "T2w"), ("PD", "PDw")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(phantom_dir / f"IXI00{number}-Phantom-000{number}-{contrast}.nii.gz",
                        root / folder / f"{stem}_{suffix}.nii.gz")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "phantoms", "BIDSVersion": "1.10.0"}))
    (root / "derivatives" / "old" / "sub-01" / "anat").mkdir(parents=True)
    (root / "derivatives" / "old" / "sub-01" / "anat" / "sub-01_desc-synth_PDw.nii.gz").write_bytes(b"x")
    (root / "sourcedata").mkdir()
    (root / "sourcedata" / "sub-09_T2w.nii.gz").write_bytes(b"x")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(root.parent / "t2-pd.pt", Generator(width=0.0625), direction="t2-pd", variant="G3")
    return root, checkpoint


def test_check_finds_every_pair_of_a_bids_dataset(bids, capsys):
    root, _ = bids
    assert main(["check", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"3 T2/PD pairs in the BIDS dataset {root}"
    assert "all 3 pairs are usable" in out


def test_folder_synthesis_of_a_bids_dataset_writes_a_derivatives_dataset(bids, tmp_path, capsys):
    root, checkpoint = bids
    missing = root / "sub-04" / "anat"
    missing.mkdir(parents=True)
    shutil.copy(root / "sub-01" / "anat" / "sub-01_T2w.nii.gz", missing / "sub-04_T2w.nii.gz")  # no PDw partner
    out = tmp_path / "derivatives" / "medsynth"
    try:
        assert main(["synthesize", str(root), "--checkpoint", str(checkpoint), "--out", str(out), *SYNTH]) == 0
    finally:
        shutil.rmtree(root / "sub-04")
    captured = capsys.readouterr()
    assert captured.err.count("no PD partner") == 1  # said once
    assert "1 sources have no PD partner and were synthesized without figures: sub-04_T2w.nii.gz" in captured.err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [
        "dataset_description.json", "metrics.tsv",
        "sub-01/anat/sub-01_desc-synth_PDw.json", "sub-01/anat/sub-01_desc-synth_PDw.nii.gz",
        "sub-02/ses-1/anat/sub-02_ses-1_desc-synth_PDw.json", "sub-02/ses-1/anat/sub-02_ses-1_desc-synth_PDw.nii.gz",
        "sub-03/anat/sub-03_desc-synth_PDw.json", "sub-03/anat/sub-03_desc-synth_PDw.nii.gz",
        "sub-04/anat/sub-04_desc-synth_PDw.json", "sub-04/anat/sub-04_desc-synth_PDw.nii.gz",
    ]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    generated, = description["GeneratedBy"]
    assert generated["Name"] == "napari-medsynth" and generated["Version"] == __version__
    assert "G3" in generated["Description"] and "t2-pd.pt" in generated["Description"]
    assert description["DatasetLinks"]["raw"] == root.resolve().as_uri()
    sidecar = json.loads((out / "sub-02/ses-1/anat/sub-02_ses-1_desc-synth_PDw.json").read_text())
    assert sidecar["Sources"] == ["bids:raw:sub-02/ses-1/anat/sub-02_ses-1_T2w.nii.gz"]
    assert sidecar["ground_truth"].endswith("sub-02_ses-1_PDw.nii.gz")
    assert json.loads((out / "sub-04/anat/sub-04_desc-synth_PDw.json").read_text())["metrics"] is None
    source = load_volume(root / "sub-02/ses-1/anat/sub-02_ses-1_T2w.nii.gz")
    synthesis = load_volume(out / "sub-02/ses-1/anat/sub-02_ses-1_desc-synth_PDw.nii.gz")
    assert synthesis.data.shape == source.data.shape
    np.testing.assert_allclose(synthesis.affine, source.affine, atol=1e-6)
    # the sidecar's figure is the written file's against its partner's (a checkpoint that records no target
    # intensities keeps the source's scale: its report-grid standardization)
    truth = load_volume(root / "sub-02/ses-1/anat/sub-02_ses-1_PDw.nii.gz")
    recomputed = metrics.psnr(preprocess_volume(source, "report").standardization.apply(synthesis.data),
                              preprocess_volume(truth, "report").standardization.apply(truth.data))
    assert sidecar["metrics"]["source"]["psnr"] == pytest.approx(recomputed, abs=0.01)
    with open(out / "metrics.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [(row["source"], row["output"]) for row in rows] == [
        ("sub-01/anat/sub-01_T2w.nii.gz", "sub-01/anat/sub-01_desc-synth_PDw.nii.gz"),
        ("sub-02/ses-1/anat/sub-02_ses-1_T2w.nii.gz", "sub-02/ses-1/anat/sub-02_ses-1_desc-synth_PDw.nii.gz"),
        ("sub-03/anat/sub-03_T2w.nii.gz", "sub-03/anat/sub-03_desc-synth_PDw.nii.gz"),
    ]
    assert float(rows[1]["source_psnr"]) == pytest.approx(sidecar["metrics"]["source"]["psnr"], abs=1e-5)


def test_a_folder_run_whose_every_file_fails_leaves_no_folder(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "sub-01" / "anat").mkdir(parents=True)
    (data / "sub-01" / "anat" / "sub-01_T2w.nii.gz").write_bytes(b"truncated")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "t2-pd.pt", Generator(width=0.0625), direction="t2-pd", variant="G3")
    out = tmp_path / "out"
    assert main(["synthesize", str(data), "--checkpoint", str(checkpoint), "--out", str(out), *SYNTH]) == 1
    assert "sub-01_T2w.nii.gz: not a readable NIfTI file" in capsys.readouterr().err
    assert not out.exists()


def test_compare_finds_the_partner_by_its_entities(bids, tmp_path, capsys):
    root, checkpoint = bids
    source = root / "sub-02/ses-1/anat/sub-02_ses-1_T2w.nii.gz"
    assert main(["compare", str(source), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "cmp"),
                 *SYNTH]) == 0
    rows = list(csv.DictReader((tmp_path / "cmp" / "metrics.csv").open()))
    assert [row["generator"] for row in rows] == ["G3", "intensity mapping (baseline)"]
    # the generator's figure is the written file's against the partner found by its entities
    truth = load_volume(root / "sub-02/ses-1/anat/sub-02_ses-1_PDw.nii.gz")
    written = load_volume(tmp_path / "cmp" / "G3.nii.gz")
    recomputed = metrics.psnr(preprocess_volume(load_volume(source), "report").standardization.apply(written.data),
                              preprocess_volume(truth, "report").standardization.apply(truth.data))
    assert float(rows[0]["source_psnr"]) == pytest.approx(recomputed, abs=0.01)
    assert main(["compare", str(root / "sub-01/anat/sub-01_T2w.nii.gz"), "--target",
                 str(root / "sub-01/anat/sub-01_PDw.nii.gz"), "--checkpoint", str(checkpoint), "--out",
                 str(tmp_path / "cmp1"), *SYNTH]) == 0
    alone = tmp_path / "alone_T2w.nii.gz"
    shutil.copy(source, alone)
    capsys.readouterr()
    assert main(["compare", str(alone), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "cmp2")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medsynth: error: {alone}: no --target given and no T2/PD partner of it beside it (IXI -T2/-PD, "
        "BIDS _T2w/_PDw of the same entities, NAME_T2/NAME_PD)")


def test_one_epoch_of_training_on_a_bids_dataset(bids, tmp_path):
    root, _ = bids
    out = tmp_path / "run"
    assert train_main(["train", "--data", str(root), "--out", str(out), "--variant", "G1", "--epochs", "1",
                       "--width", "0.0625", "--batch-size", "7", "--val-stride", "32", "--workers", "0",
                       "--device", "cpu"]) == 0
    split = json.loads((out / "split.json").read_text())
    assert sorted(split["train"] + split["validation"] + split["test"]) == ["sub-01", "sub-02", "sub-03"]
    assert (out / "best.pt").is_file()


def test_training_refuses_a_file_without_its_partner(bids, tmp_path, capsys):
    root, _ = bids
    data = tmp_path / "data"
    shutil.copytree(root, data)
    (data / "sub-03" / "anat" / "sub-03_PDw.nii.gz").unlink()
    assert train_main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--variant", "G1",
                       "--epochs", "1", "--device", "cpu"]) != 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medsynth-train: error: {data / 'sub-03/anat/sub-03_T2w.nii.gz'} has no T2/PD partner: training needs "
        "whole pairs (add its partner or move the file out of the folder)")
    assert not (tmp_path / "run" / "best.pt").exists()
