"""Shared fixtures: real NIfTI files written with nibabel."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

# The widgets remember choices in a settings file: never the user's own during the tests, and a
# fresh one for each test (_fresh_settings), so that no test starts from another's choices.
os.environ["MEDSYNTH_SETTINGS"] = str(Path(tempfile.mkdtemp(prefix="medsynth-settings-")) / "settings.json")
os.environ.pop("MEDSYNTH_RUNS_DIR", None)
# The sample phantom's cache: never the user's, one for the whole run (the sample is simulated once).
os.environ["MEDSYNTH_CACHE"] = tempfile.mkdtemp(prefix="medsynth-cache-")


@pytest.fixture(autouse=True)
def _fresh_settings(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_SETTINGS", str(tmp_path_factory.mktemp("settings") / "settings.json"))

# IXI T2/PD-like geometry: axial slices along the third voxel axis.
IXI_AFFINE = np.array(
    [
        [-0.9375, 0.0, 0.0, 120.0],
        [0.0, 0.9375, 0.0, -120.0],
        [0.0, 0.0, 1.2, -78.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def write_nifti(path, data, affine=IXI_AFFINE, dtype=np.float32):
    """Write ``data`` with nibabel and return the path."""
    image = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))
    return path


def smooth_volume(shape, seed=0):
    """A smooth, positive, non-constant test volume."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    weights = rng.uniform(0.5, 2.0, size=3)
    return (
        100
        + 50 * np.sin(weights[0] * 3 * grids[0])
        + 40 * np.cos(weights[1] * 2 * grids[1])
        + 30 * grids[2] ** 2
    ).astype(np.float32)


@pytest.fixture
def ixi_pair(tmp_path):
    """A small IXI-named T2/PD pair in a flat folder: (t2_path, pd_path)."""
    shape = (40, 36, 30)
    t2 = write_nifti(tmp_path / "IXI002-Guys-0828-T2.nii.gz", smooth_volume(shape, 1))
    pd = write_nifti(tmp_path / "IXI002-Guys-0828-PD.nii.gz", smooth_volume(shape, 2))
    return t2, pd


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    """Three phantom subjects written by ``medsynth phantom`` (one train, one validation, one test), on a
    128 x 128 x 65 grid (IXI's field of view, voxels twice as coarse), which keeps the source-grid
    metrics cheap; training sees the same 224 x 224 x 96 resample either way."""
    from napari_medsynth.cli import main

    folder = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", str(folder), "--subjects", "3", "--seed", "0", "--shape", "128", "128", "65"]) == 0
    return folder
