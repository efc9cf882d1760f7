"""Patch grids for training and reconstruction."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from napari_medsynth.core.preprocessing.patches import patch_grid, patch_starts


def test_training_grid_has_49_patches_per_subject():
    grid = patch_grid((224, 224, 32), patch=32)
    assert grid.shape == (49, 3)
    assert set(grid[:, 0]) == set(range(0, 224, 32))


def test_reconstruction_grid_at_stride_8_has_625_patches():
    assert len(patch_grid((224, 224, 32), patch=32, stride=8)) == 625


@pytest.mark.parametrize(("size", "stride"), [(50, 8), (37, 16), (32, 8), (100, 7), (33, 32)])
def test_last_patch_ends_on_the_border_and_every_voxel_is_covered(size, stride):
    starts = patch_starts(size, 32, stride)
    assert starts[0] == 0
    assert starts[-1] == size - 32
    assert all(b - a <= stride for a, b in pairwise(starts))
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + 32] = True
    assert covered.all()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="does not fit an axis of 20"):
        patch_starts(20, 32, 8)
    with pytest.raises(ValueError, match="stride=0"):
        patch_starts(64, 32, 0)
