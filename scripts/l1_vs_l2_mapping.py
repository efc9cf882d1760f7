"""What L1 costs in PSNR on the demo data, measured on the per-voxel intensity mapping.

L2 training converges towards the conditional mean of the target given the input, L1 towards
its conditional median; PSNR is a mean squared error, so where the target's conditional
distribution is skewed the median trades PSNR for MAE. This takes the bundled per-voxel mapping
(``intensity-mapping.json`` beside the demo generators: each source-quantile bin's mean target on
the recipe's training subjects), maps the same bins to each bin's median target on those subjects,
and scores both on the held-out subjects as ``scripts/package_demo_generators.py`` scores its
baselines. WORK needs only the recipe's two phantom folders (``phantom10``, ``heldout``), which
``medsynth phantom`` regenerates::

    python scripts/l1_vs_l2_mapping.py WORK [--direction t2-pd]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from napari_medsynth.core.evaluation.baselines import QuantileIntensityMapping
from napari_medsynth.core.synthesis.catalog import BUNDLED_DIR, MAPPING_FILE
from napari_medsynth.core.synthesis.pipeline import score_voxelwise
from src_train.data import PreprocessedCache, load_volume_pairs, pairs_of
from src_train.evaluate import evaluate_predictor, markdown_table


def median_mapping(mean_mapping: QuantileIntensityMapping, source: np.ndarray,
                   target: np.ndarray) -> QuantileIntensityMapping:
    """``mean_mapping``'s bins, each mapped to the median of its voxels' targets."""
    index = mean_mapping.bin_index(source)
    order = np.lexsort((target, index))
    target, index = target[order], index[order]
    bins = np.arange(mean_mapping.bins)
    starts, ends = np.searchsorted(index, bins), np.searchsorted(index, bins, side="right")
    counts = (ends - starts).astype(np.float64)
    medians = np.array([np.median(target[a:b]) if b > a else 0.0 for a, b in zip(starts, ends)])
    state = mean_mapping.to_dict()
    return QuantileIntensityMapping.from_dict({**state, "sums": (medians * counts).tolist(), "counts": counts.tolist()})


def main(work: Path, direction: str) -> None:
    bundled = json.loads((BUNDLED_DIR / MAPPING_FILE).read_text())[direction]
    train_subjects, mean = bundled["train_subjects"], QuantileIntensityMapping.from_dict(bundled["mapping"])
    with tempfile.TemporaryDirectory() as scratch:
        train = load_volume_pairs(pairs_of(work / "phantom10", train_subjects), direction,
                                  PreprocessedCache(scratch, "native"))
        median = median_mapping(mean, *(np.concatenate([getattr(p, side).load().ravel() for p in train])
                                        .astype(np.float64) for side in ("source", "target")))
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
