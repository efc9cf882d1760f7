"""The ``medsynth`` command line: real files, real exit codes, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import smooth_volume, write_nifti

from napari_medsynth.cli import main
from src_train.cli import main as train_main


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_check_accepts_good_pairs(tmp_path, ixi_pair, capsys):
    assert main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 T2/PD pairs in" in out
    assert "all 1 pairs are usable" in out


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (_truncate, "IXI002-Guys-0828-PD.nii.gz: the file is truncated or corrupt"),
        (lambda p: p.write_text("hello"), "IXI002-Guys-0828-PD.nii.gz: not a readable NIfTI file"),
        (lambda p: write_nifti(p, np.ones((8, 8, 8, 2))), "IXI002-Guys-0828-PD.nii.gz: the image is 4D"),
        (lambda p: write_nifti(p, np.ones((8, 8))), "IXI002-Guys-0828-PD.nii.gz: the image is 2D"),
        (lambda p: write_nifti(p, smooth_volume((40, 36, 31))), r"shape \(40, 36, 30\) but .* \(40, 36, 31\)"),
        (lambda p: write_nifti(p, np.full((40, 36, 30), np.nan)), "every voxel is NaN"),
        (lambda p: write_nifti(p, np.full((40, 36, 30), 3.0)), "the image is constant"),
    ],
    ids=["truncated", "text", "4d", "2d", "shape-mismatch", "all-nan", "constant"],
)
def test_check_reports_each_bad_input_in_one_line(tmp_path, ixi_pair, capsys, spoil, problem):
    spoil(ixi_pair[1])
    before = _files(tmp_path)
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    problem_lines = [line for line in err.splitlines() if "IXI002" in line]
    assert len(problem_lines) == 1
    assert re.search(problem, problem_lines[0])
    assert err.strip().splitlines()[-1] == "medsynth: error: 1 of 1 pairs cannot be used"
    assert _files(tmp_path) == before


def test_check_on_an_empty_folder(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path}: no T2/PD pairs (IXI###-Site-####-T2.nii.gz with its -PD partner; BIDS: " in err


def test_console_script_exits_non_zero_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "napari_medsynth.cli", "check", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"medsynth: error: {tmp_path / 'missing'}: no such folder"


def test_debug_shows_the_cause_behind_the_same_one_line_error(tmp_path, capsys):
    checkpoint = tmp_path / "g.pt"
    checkpoint.write_bytes(b"PK not really a torch file")
    argv = ["synthesize", str(tmp_path / "t2.nii.gz"), "--checkpoint", str(checkpoint),
            "--out", str(tmp_path / "o.nii.gz")]
    assert main(argv) == 1
    plain = capsys.readouterr().err
    assert "Traceback" not in plain
    assert main([*argv, "--debug"]) == 1
    debug = capsys.readouterr().err
    assert "Traceback" in debug and "The above exception was the direct cause" in debug
    assert debug.strip().splitlines()[-1] == plain.strip() and plain.startswith("medsynth: error: ")


def test_phantom_refuses_bad_requests_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["phantom", str(blocker / "out"), "--subjects", "1"]) == 1
    assert main(["phantom", str(tmp_path / "out"), "--subjects", "0"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith("medsynth: error: ") and "cannot write there" in errors[0]
    assert errors[1] == "medsynth: error: phantom subjects must be between 1 and 999, got 0"
    assert not (tmp_path / "out").exists()


BAD_OPTIONS = [
    (main, ["demo", "--headless", "OUT", "--stride", "0"], "the stride must be a whole number of at least 1, got '0'"),
    (main, ["synthesize", "SOURCE", "--checkpoint", "C", "--out", "O", "--batch-size", "-1"],
     "the batch size must be a whole number of at least 1, got '-1'"),
    (main, ["synthesize", "SOURCE", "--checkpoint", "C", "--out", "O", "--stride", "0"],
     "the stride must be a whole number of at least 1, got '0'"),
    (main, ["synthesize", "FOLDER", "--checkpoint", "C", "--out", "OUT", "--stride", "0"],
     "the stride must be a whole number of at least 1, got '0'"),
    (main, ["synthesize", "SOURCE", "--checkpoint", "C", "--out", "O", "--device", "gpu7"],
     "unknown device 'gpu7'; use auto, cpu, cuda or cuda:N"),
    (main, ["synthesize", "SOURCE", "--checkpoint", "C", "--out", "O", "--grid", "fine"],
     "argument --grid: invalid choice: 'fine'"),
    (main, ["synthesize", "SOURCE", "--checkpoint", "C"], "the following arguments are required: --out"),
    (train_main, ["evaluate", "--data", "OUT", "--checkpoint", "C", "--stride", "0"],
     "the stride must be a whole number of at least 1, got '0'"),
    (train_main, ["evaluate", "--data", "OUT", "--checkpoint", "C", "--engine", "gpu"],
     "argument --engine: invalid choice: 'gpu'"),
    (train_main, ["train", "--data", "OUT", "--out", "RUN", "--epochs", "0"],
     "epochs, batch size, validation stride and learning rate must be positive"),
]


@pytest.mark.parametrize(("command", "argv", "message"), BAD_OPTIONS)
def test_a_bad_option_is_one_line_and_exit_1_on_every_command(command, argv, message, tmp_path, capsys):
    (tmp_path / "FOLDER").mkdir()
    argv = [str(tmp_path / a) if a in ("OUT", "SOURCE", "C", "O", "FOLDER", "RUN") else a for a in argv]
    try:
        code = command(argv)
    except SystemExit as exit_info:  # argparse's own refusals
        code = exit_info.code
    err = capsys.readouterr().err
    prog = "medsynth" if command is main else "medsynth-train"
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: {message}"), err  # one prefix, whether argparse or the command refused
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "RUN").exists()


def test_a_missing_file_is_named_with_its_folder(tmp_path, capsys, monkeypatch):
    from napari_medsynth.core.synthesis.catalog import default_generator

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ph").mkdir()
    assert main(["synthesize", "ph/nope-T2.nii.gz", "--checkpoint", str(default_generator("t2-pd").path),
                 "--out", "o.nii.gz"]) == 1
    assert capsys.readouterr().err.strip() == "medsynth: error: ph/nope-T2.nii.gz: no such file"
