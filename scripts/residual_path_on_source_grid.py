"""Where the bundled PD->T2 G4+RL's lead over G4 on the source grid comes from.

On the native grid a residual generator's synthesis is brought to the source's grid as the
source itself plus the resampled residual (``synthesize``): the source's own detail skips the
224 x 224 x 96 round trip. This scores the bundled G4+RL that way (what napari shows and saves),
the same synthesis resampled whole (as a generator without the residual path is), and the
bundled G4, on the held-out subjects of the demo recipe, as ``scripts/package_demo_generators.py``
scores them::

    python scripts/residual_path_on_source_grid.py WORK [--stride 16]

WORK needs only ``heldout/`` (``medsynth phantom heldout --subjects 10 --seed 7``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_medsynth.core.evaluation.figures import Figures
from napari_medsynth.core.evaluation.masks import head_mask
from napari_medsynth.core.networks.checkpoint import load_checkpoint
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume, to_source_grid
from napari_medsynth.core.synthesis.catalog import BUNDLED_DIR
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import compare_on_grids, synthesize
from src_train.data import pairs_of
from src_train.evaluate import Evaluation, evaluate_predictor, generator_score, markdown_table

DIRECTION = "pd-t2"


def main(work: Path, stride: int, device: str) -> None:
    heldout = pairs_of(work / "heldout")
    residual, residual_info = load_checkpoint(BUNDLED_DIR / f"{DIRECTION}-G4+RL.pt")
    plain, plain_info = load_checkpoint(BUNDLED_DIR / f"{DIRECTION}-G4.pt")
    resampled_whole = []

    def residual_score(source, target) -> Figures:
        result = synthesize(source, (residual, residual_info), SynthesisOptions(stride=stride, device=device),
                            target=target)
        prepared = preprocess_volume(source, "native")
        metrics, _ = compare_on_grids(to_source_grid(result.standardized, prepared), result.standardized,
                                      prepared, target, head_mask(source.data))
        resampled_whole.append(metrics)
        return result.metrics

    shown = evaluate_predictor("G4+RL, source + resampled residual (as shown)", DIRECTION, residual_score, heldout)
    whole = Evaluation("G4+RL, whole synthesis resampled", DIRECTION)
    for subject, metrics in zip(shown.subjects, resampled_whole, strict=True):
        whole.add(subject, metrics)
    options = SynthesisOptions(stride=stride, device=device)
    no_residual = evaluate_predictor("G4", DIRECTION, generator_score((plain, plain_info), options), heldout)
    print(markdown_table([shown, whole, no_residual]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    main(args.work, args.stride, args.device)
