"""``medsynth synthesize DIR``: every file of a folder, sidecars, one metrics.csv, bad files, torchrun;
and the same folder API from Python."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_medsynth.cli import main
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks.checkpoint import save_checkpoint
from napari_medsynth.core.networks.models import Generator
from napari_medsynth.core.synthesis.folder import run_folder
from napari_medsynth.core.synthesis.options import SynthesisOptions

SYNTH = ["--stride", "32", "--grid", "report", "--device", "cpu"]


@pytest.fixture(scope="module")
def folder(phantom_dir, tmp_path_factory):
    """Three phantom subjects and one corrupt T2 file, and a T2->PD checkpoint."""
    root = tmp_path_factory.mktemp("folder")
    data = root / "data"
    shutil.copytree(phantom_dir, data)
    (data / "IXI009-Bad-0009-T2.nii.gz").write_bytes(b"not a NIfTI file")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(root / "t2-pd.pt", Generator(width=0.0625), direction="t2-pd", variant="G3")
    return data, checkpoint


def _outputs(out):
    return sorted(p.name for p in out.iterdir())


def test_a_folder_gives_volumes_sidecars_and_one_metrics_file_and_reports_the_bad_file(folder, tmp_path, capsys):
    data, checkpoint = folder
    out = tmp_path / "out"
    assert main(["synthesize", str(data), "--checkpoint", str(checkpoint), "--out", str(out), *SYNTH]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == ["medsynth: error: IXI009-Bad-0009-T2.nii.gz: not a readable NIfTI file "
                      f"(File {data / 'IXI009-Bad-0009-T2.nii.gz'} is not a gzip file)"]
    subjects = [f"IXI00{i}-Phantom-000{i}" for i in (1, 2, 3)]
    assert _outputs(out) == sorted([f"{s}-PD_synth.{ext}" for s in subjects for ext in ("json", "nii.gz")]
                                   + ["metrics.csv"])
    for subject in subjects:
        source = load_volume(data / f"{subject}-T2.nii.gz")
        synthesis = load_volume(out / f"{subject}-PD_synth.nii.gz")
        assert synthesis.data.shape == source.data.shape and synthesis.data.min() >= 0
        np.testing.assert_allclose(synthesis.affine, source.affine, atol=1e-6)
        sidecar = json.loads((out / f"{subject}-PD_synth.json").read_text())
        assert sidecar["checkpoint_sha256"] and len(sidecar["checkpoint_sha256"]) == 64
        assert {k: sidecar[k] for k in ("direction", "variant", "width")} == {
            "direction": "t2-pd", "variant": "G3", "width": 0.0625}
        assert {k: sidecar["options"][k] for k in ("stride", "grid", "engine")} == {
            "stride": 32, "grid": "report", "engine": "auto"}
        assert sidecar["package_version"] and sidecar["time"]
        assert sidecar["ground_truth"].endswith(f"{subject}-PD.nii.gz") and sidecar["metrics"]["source"]["psnr"] > 0
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["source"] for row in rows] == [f"{s}-T2.nii.gz" for s in subjects]
    assert float(rows[0]["head_psnr"]) > 0 and float(rows[0]["report_ssim"]) <= 1

    # --skip-existing rewrites nothing (the corrupt file still fails: exit 1)
    times = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["synthesize", str(data), "--checkpoint", str(checkpoint), "--out", str(out), "--skip-existing",
                 *SYNTH]) == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == times
    assert "0 of 4 files synthesized, 3 skipped (already there), 1 failed" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:the checkpoint does not record:RuntimeWarning")  # (a bare test checkpoint)
def test_the_core_folder_api_runs_from_python_without_the_cli(folder, tmp_path, monkeypatch):
    data, checkpoint = folder
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    one = tmp_path / "one"
    one.mkdir()
    for contrast in ("T2", "PD"):
        shutil.copy(data / f"IXI001-Phantom-0001-{contrast}.nii.gz", one)
    out, options = tmp_path / "out", SynthesisOptions(stride=32, grid="report", device="cpu")
    outcome = run_folder(one, checkpoint, out, options)
    assert (outcome.total, outcome.written, outcome.skipped, outcome.failed, outcome.rank) == (1, 1, 0, 0, 0)
    assert outcome.files == [one / "IXI001-Phantom-0001-T2.nii.gz"]
    assert outcome.report.written == [out / "IXI001-Phantom-0001-PD_synth.nii.gz"]
    assert outcome.metrics == out / "metrics.csv" and outcome.summary() == "1 of 1 files synthesized"
    assert _outputs(out) == ["IXI001-Phantom-0001-PD_synth.json", "IXI001-Phantom-0001-PD_synth.nii.gz", "metrics.csv"]
    assert json.loads((out / "IXI001-Phantom-0001-PD_synth.json").read_text())["options"]["device"] == "cpu"
    again = run_folder(one, checkpoint, out, options, skip_existing=True)
    assert again.summary() == "0 of 1 files synthesized, 1 skipped (already there)"
    assert again.report.skipped == outcome.report.written and again.metrics == outcome.metrics


def test_torchrun_shares_the_files_and_merges_one_metrics_file(folder, tmp_path):
    data, checkpoint = folder
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    assert main(["synthesize", str(data), "--checkpoint", str(checkpoint), "--out", str(alone), *SYNTH]) == 1
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         "-m", "napari_medsynth.cli", "synthesize", str(data), "--checkpoint", str(checkpoint),
         "--out", str(shared), *SYNTH], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0  # the corrupt file failed on one rank
    assert done.stderr.count("IXI009-Bad-0009-T2.nii.gz: not a readable NIfTI file") == 1
    assert _outputs(shared) == _outputs(alone)
    for name in _outputs(alone):
        if name.endswith(".nii.gz"):
            np.testing.assert_allclose(load_volume(shared / name).data, load_volume(alone / name).data, atol=1e-5)
    with open(alone / "metrics.csv") as a, open(shared / "metrics.csv") as b:
        rows_alone, rows_shared = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["source"] for r in rows_shared] == [r["source"] for r in rows_alone] and len(rows_shared) == 3
    for x, y in zip(rows_alone, rows_shared):
        assert float(x["source_psnr"]) == pytest.approx(float(y["source_psnr"]), abs=1e-3)
