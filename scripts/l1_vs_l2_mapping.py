"""What L1 costs in PSNR on the demo data, measured on the per-voxel intensity mapping.

L2 training converges towards the conditional mean of the target given the input, L1 towards
its conditional median; PSNR is a mean squared error, so where the target's conditional
distribution is skewed the median trades PSNR for MAE. This fits the mapping of
``scripts/package_demo_generators.py`` (each source-quantile bin's mean target, on the recipe's
training subjects), then the same bins with each bin's median target, and scores both on the
held-out subjects as that script scores its baselines::

    python scripts/l1_vs_l2_mapping.py WORK [--direction t2-pd]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_medsynth.core.baselines import QuantileIntensityMapping
from napari_medsynth.core.synthesis import score_voxelwise
from src_train.data import PreprocessedCache, SubjectSplit, load_volume_pairs, pairs_of
from src_train.evaluate import evaluate_predictor, markdown_table
from src_train.reproduce import fit_intensity_mapping


def median_mapping(mean_mapping: QuantileIntensityMapping, source: np.ndarray,
                   target: np.ndarray) -> QuantileIntensityMapping:
    """``mean_mapping``'s bins, each mapped to the median of its voxels' targets."""
    index = mean_mapping._bin_index(source)
    order = np.lexsort((target, index))
    target, index = target[order], index[order]
    bins = np.arange(mean_mapping.bins)
    starts, ends = np.searchsorted(index, bins), np.searchsorted(index, bins, side="right")
    counts = (ends - starts).astype(np.float64)
    medians = np.array([np.median(target[a:b]) if b > a else 0.0 for a, b in zip(starts, ends)])
    state = mean_mapping.to_dict()
    return QuantileIntensityMapping.from_dict({**state, "sums": (medians * counts).tolist(), "counts": counts.tolist()})


def main(work: Path, direction: str) -> None:
    split = SubjectSplit.load(next((work / "repro").glob("*/split.json")))
    cache = PreprocessedCache(work / "repro" / "cache", "native")
    mean = fit_intensity_mapping(work / "phantom10", direction, split, cache)
    train = load_volume_pairs(pairs_of(work / "phantom10", split.train), direction, cache)
    median = median_mapping(mean, np.concatenate([p.source.load().ravel() for p in train]).astype(np.float64),
                            np.concatenate([p.target.load().ravel() for p in train]).astype(np.float64))
    heldout = pairs_of(work / "heldout")
    print(markdown_table([
        evaluate_predictor(name, direction, lambda s, t, m=mapping: score_voxelwise(m.predict, s, t), heldout)
        for name, mapping in (("mapping, bin means (L2)", mean), ("mapping, bin medians (L1)", median))
    ]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="the recipe's work folder")
    parser.add_argument("--direction", default="t2-pd", choices=("t2-pd", "pd-t2"))
    arguments = parser.parse_args()
    main(arguments.work, arguments.direction)
