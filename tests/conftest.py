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



def layout_pending(root) -> list[str]:
    """What Qt has still to lay out under the widget ``root`` (empty: nothing). A box, grid or form layout's
    geometry is empty from the moment a size hint under it changes (a longer status line, a table given more
    rows) until the event loop redoes it; a dock is then smaller than its contents' minimum until its turn
    comes; a scroll area sizes its content (as wide as its viewport, or as the content's own minimum where
    that is wider) and its scroll range last."""
    from qtpy.QtWidgets import QDockWidget, QScrollArea, QStackedLayout, QWidget

    pending = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisible():
            continue
        layout = widget.layout()
        if isinstance(widget, QDockWidget):  # (its own layout keeps no geometry)
            least = widget.minimumSizeHint()
            if widget.width() < least.width() or widget.height() < least.height():
                pending.append(f"the dock {widget.windowTitle()!r}")
        elif (layout is not None and not isinstance(layout, QStackedLayout)  # (nor does a stacked one)
              and layout.geometry().isNull() and not widget.contentsRect().isNull()):
            pending.append(f"the layout of {widget!r}")
        content = widget.widget() if isinstance(widget, QScrollArea) and widget.widgetResizable() else None
        if content is not None:
            width, room = content.width(), widget.viewport().width()
            least = min(max(content.minimumWidth() or content.minimumSizeHint().width(), 0), content.maximumWidth())
            if width != max(room, least) or widget.horizontalScrollBar().maximum() != width - room:
                pending.append(f"the content of {widget!r}")
    return pending


def laid_out(*widgets) -> bool:
    """A ``qtbot.waitUntil`` condition for assertions on sizes: each of ``widgets`` is shown and Qt has laid
    it out (see :func:`layout_pending`)."""
    return all(widget.isVisible() and not layout_pending(widget) for widget in widgets)


# The can-fail check (scripts/check_quality_tests_fail.sh, tests/README.md): with MEDSYNTH_TEST_UNTRAINED=1
# each trained generator a quality test takes through `trained` is an untrained one of its shape, and those
# tests must fail.
UNTRAINED = os.environ.get("MEDSYNTH_TEST_UNTRAINED") == "1"


def untrained_like(checkpoint, path, seed=0) -> Path:
    """``checkpoint`` (a file) with its generator's weights as a trainer starts them (``torch.manual_seed(seed)``,
    then the generator of its width and residual path), its direction, variant and provenance kept."""
    import torch

    from napari_medsynth.core.networks.checkpoint import read_checkpoint, write_atomically
    from napari_medsynth.core.networks.models import Generator

    payload = read_checkpoint(checkpoint)
    torch.manual_seed(seed)
    generator = Generator(width=payload["architecture"]["width"], residual=payload["architecture"]["residual"])
    return write_atomically(path, {**payload, "generator": generator.state_dict()})


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """``trained(checkpoint)``: a trained generator's file (a path, or a bundled name such as ``"t2-pd-G3"``),
    as it is; under MEDSYNTH_TEST_UNTRAINED=1 an untrained one of its shape (:func:`untrained_like`)."""
    from napari_medsynth.core.synthesis.catalog import resolve_generator

    def take(checkpoint) -> Path:
        path = resolve_generator(checkpoint)
        return untrained_like(path, tmp_path_factory.mktemp("untrained") / path.name) if UNTRAINED else path

    return take
