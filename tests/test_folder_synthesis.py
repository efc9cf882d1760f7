"""``medsynth synthesize DIR``: every file of a folder, sidecars, one metrics.csv, bad files, torchrun;
and the same folder API from Python."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_medsynth.cli import main
from napari_medsynth.core.evaluation import metrics
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks.checkpoint import save_checkpoint
from napari_medsynth.core.networks.models import Generator
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
from napari_medsynth.core.synthesis.folder import run_folder
from napari_medsynth.core.synthesis.options import SynthesisOptions

SYNTH = ["--stride", "32", "--grid", "report", "--device", "cpu"]


@pytest.fixture(scope="module")
def folder(phantom_dir, tmp_path_factory):
    """Three phantom subjects and one corrupt T2 file, and a T2->PD checkpoint: untrained, as these tests check
    the plumbing (each figure is recomputed from the written files), not the figures' level."""
    root = tmp_path_factory.mktemp("folder")
    data = root / "data"
    shutil.copytree(phantom_dir, data)
    (data / "IXI009-Bad-0009-T2.nii.gz").write_bytes(b"not a NIfTI file")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(root / "t2-pd.pt", Generator(width=0.0625), direction="t2-pd", variant="G3")
    return data, checkpoint


def _outputs(out):
    return sorted(p.name for p in out.iterdir())


def _source_psnr(written, source, truth) -> float:
    """The source-grid PSNR of a written synthesis, from the files: a checkpoint that records no target
    intensities keeps the source's scale (its report-grid standardization), the truth in its own."""
    synthesis = preprocess_volume(source, "report").standardization.apply(written.data)
    return metrics.psnr(synthesis, preprocess_volume(truth, "report").standardization.apply(truth.data))


def test_a_folder_gives_volumes_sidecars_and_one_metrics_file_and_reports_the_bad_file(folder, tmp_path, capsys):
    data, checkpoint = folder
    out = tmp_path / "out"
    assert main(["synthesize", str(data), "--checkpoint", str(checkpoint), "--out", str(out), *SYNTH]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == ["medsynth: error: IXI009-Bad-0009-T2.nii.gz: not a readable NIfTI file "
                      f"(File {data / 'IXI009-Bad-0009-T2.nii.gz'} is not a gzip file)"]
    subjects = [f"IXI00{i}-Phantom-000{i}" for i in (1, 2, 3)]
    sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert _outputs(out) == sorted([f"{s}-PD_synth.{ext}" for s in subjects for ext in ("json", "nii.gz")]
                                   + ["metrics.csv"])
    for subject in subjects:
        source = load_volume(data / f"{subject}-T2.nii.gz")
        synthesis = load_volume(out / f"{subject}-PD_synth.nii.gz")
        assert synthesis.data.shape == source.data.shape and synthesis.data.min() >= 0
        np.testing.assert_allclose(synthesis.affine, source.affine, atol=1e-6)
        sidecar = json.loads((out / f"{subject}-PD_synth.json").read_text())
        assert sidecar["checkpoint_sha256"] == sha256
        assert {k: sidecar[k] for k in ("direction", "variant", "width")} == {
            "direction": "t2-pd", "variant": "G3", "width": 0.0625}
        assert {k: sidecar["options"][k] for k in ("stride", "grid", "engine")} == {
            "stride": 32, "grid": "report", "engine": "auto"}
        assert sidecar["package_version"] and sidecar["time"]
        assert sidecar["ground_truth"].endswith(f"{subject}-PD.nii.gz")
        if subject == subjects[0]:  # (one is enough: the same code wrote every sidecar)
            truth = load_volume(data / f"{subject}-PD.nii.gz")
            assert sidecar["metrics"]["source"]["psnr"] == pytest.approx(_source_psnr(synthesis, source, truth),
                                                                         abs=0.01)
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["source"] for row in rows] == [f"{s}-T2.nii.gz" for s in subjects]
    for row, subject in zip(rows, subjects):  # every figure of each row is its own file's sidecar's
        figures = json.loads((out / f"{subject}-PD_synth.json").read_text())["metrics"]
        assert {k: float(v) for k, v in row.items() if k.endswith(("_mae", "_psnr", "_ssim"))} == pytest.approx(
            {f"{scope}_{name}": value for scope in figures for name, value in figures[scope].items()}, abs=1e-6)

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
    table = (out / "metrics.csv").read_text(), (out / "metrics.csv").stat().st_mtime_ns
    again = run_folder(one, checkpoint, out, options, skip_existing=True)
    assert again.summary() == "0 of 1 files synthesized, 1 skipped (already there)"
    assert again.report.skipped == outcome.report.written and again.metrics == out / "metrics.csv"
    assert ((out / "metrics.csv").read_text(), (out / "metrics.csv").stat().st_mtime_ns) == table  # its row kept


def test_torchrun_shares_the_files_and_merges_one_metrics_file(folder, tmp_path):
    data, checkpoint = folder
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    assert main(["synthesize", str(data), "--checkpoint", str(checkpoint), "--out", str(alone), *SYNTH]) == 1
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
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
