"""The report's experiments end to end, and its tables beside the published figures.

Plan (each run in OUT/<name>, resumed if interrupted, skipped when finished):

- T2->PD: G1, G2, G3, and G4 = G3's best epoch fine-tuned with L1;
- PD->T2: G4 and G4 with residual learning, each fine-tuned from a G3 of the same kind.

Then every best.pt and two baselines are evaluated on the same test subjects: the
standardized source taken as the target, and a per-voxel intensity mapping (256
source-quantile bins -> mean target) fitted on the training subjects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_medsynth.core.evaluation.baselines import BASELINES, QuantileIntensityMapping
from napari_medsynth.core.files.atomic import atomic_output
from napari_medsynth.core.networks.checkpoint import load_checkpoint, read_checkpoint
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import score_voxelwise

from .data import PreprocessedCache, SubjectSplit, load_volume_pairs, pairs_of
from .evaluate import Evaluation, evaluate_predictor, generator_score, markdown_table, write_evaluations
from .plan import PLAN, PUBLISHED, REPORTED, ReproduceConfig, Run, plan_configs
from .run import run_training

__all__ = ["evaluate_baselines", "fit_intensity_mapping", "reproduce"]

def reproduce(config: ReproduceConfig) -> Path:
    """Train the plan (:func:`plan_configs`), evaluate it with the baselines, write ``OUT/report.md``;
    return its path."""
    out = Path(config.out)
    for run_config in plan_configs(config):
        run_dir = Path(run_config.out)
        if _epochs_done(run_dir) >= run_config.epochs:
            continue
        code = run_training(run_config, resume=(run_dir / "last.pt").is_file())  # also a run stopped in its first epoch
        if code:
            raise SystemExit(code)
    report = out / "report.md"
    with atomic_output(report) as tmp_name:
        Path(tmp_name).write_text(_report(config, out, PreprocessedCache(out / "cache")))
    print(f"wrote {report}")
    return report


def _report(config: ReproduceConfig, out: Path, cache: PreprocessedCache) -> str:
    lines = [
        "# Reproduction of the report's experiments", "",
        f"Data: `{config.data}`; width {config.width:g} (discriminator {config.discriminator_width:g}); "
        f"epochs {config.epochs or 'as the report'}; "
        f"validation/test stride {config.val_stride}; seed {config.seed}.",
        f"Test figures on the source's own grid (whole volume and head mask; {config.grid}-grid synthesis) and "
        "on the report's 224x224x32 grid, standardized volumes; PSNR peak = range of the standardized ground "
        "truth. Validation figures are on the training grid. The report's figures are on real IXI subjects, "
        "its grid and full-width models.", "",
    ]
    for direction, title in (("t2-pd", "T2 -> PD"), ("pd-t2", "PD -> T2")):
        runs = [r for r in PLAN if r.direction == direction and r.name in REPORTED]
        split = SubjectSplit.load(out / runs[0].name / "split.json")
        evaluations = [_evaluate_run(out, run, split, config) for run in runs]
        evaluations += evaluate_baselines(direction, fit_intensity_mapping(config.data, direction, split, cache),
                                          pairs_of(config.data, split.test))
        write_evaluations(out / direction, evaluations)
        lines += [f"## {title}: validation (best epoch by mean PSNR)", "",
                  "| Generator | Best epoch | MAE | PSNR (dB) | Report: best epoch | Report: MAE | Report: PSNR |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for run in runs:
            record = load_checkpoint(out / run.name / "best.pt").info.training
            published = PUBLISHED[run.name]
            lines.append(f"| {run.label} | {record.best_epoch}/{_epochs_done(out / run.name)} "
                         f"| {record.val_mae:.3f} | "
                         f"{record.val_psnr:.3f} | {published[0]} | {published[1]} | {published[2]} |")
        lines += ["", f"## {title}: test set ({len(split.test)} subjects), mean (std)", "",
                  markdown_table(evaluations, {r.label: PUBLISHED[r.name][3] for r in runs}), ""]
    return "\n".join(lines)


def _epochs_done(run_dir: Path) -> int:
    """Epochs a run has finished, from its last.pt (0 without one); a run trained past the plan counts its own."""
    last = run_dir / "last.pt"
    return read_checkpoint(last)["training"]["epoch"] if last.is_file() else 0


def _evaluate_run(out: Path, run: Run, split: SubjectSplit, config: ReproduceConfig) -> Evaluation:
    score = generator_score(load_checkpoint(out / run.name / "best.pt"),
                            SynthesisOptions(grid=config.grid, stride=config.val_stride, device=config.device))
    return evaluate_predictor(run.label, run.direction, score, pairs_of(config.data, split.test))


def fit_intensity_mapping(data, direction: str, split: SubjectSplit, cache) -> QuantileIntensityMapping:
    """The per-voxel intensity-mapping baseline, fitted on the split's training subjects."""
    train = load_volume_pairs(pairs_of(data, split.train), direction, cache)
    return QuantileIntensityMapping(bins=256).fit(
        np.concatenate([p.source.load().ravel() for p in train]),
        np.concatenate([p.target.load().ravel() for p in train]),
    )


def evaluate_baselines(direction: str, mapping: QuantileIntensityMapping, pairs) -> list[Evaluation]:
    """The standardized source and ``mapping``'s prediction, each scored on ``pairs``."""
    return [
        evaluate_predictor(name, direction, lambda s, t, p=predict: score_voxelwise(p, s, t), pairs)
        for name, predict in zip(BASELINES, (lambda source: source, mapping.predict))
    ]
