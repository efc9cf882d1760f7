"""Test-set evaluation of checkpoints and baselines on both grids: per-subject CSV and a Markdown table."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_medsynth.core.choices import Direction, MetricScope, direction_label
from napari_medsynth.core.console import progress_bar
from napari_medsynth.core.evaluation.figures import Figures
from napari_medsynth.core.files.atomic import atomic_output
from napari_medsynth.core.files.nifti import Volume, load_volume
from napari_medsynth.core.files.scans import ScanPair
from napari_medsynth.core.networks.checkpoint import load_checkpoint
from napari_medsynth.core.synthesis.job import SynthesisJob
from napari_medsynth.core.synthesis.options import SynthesisOptions

from .data import SubjectSplit, pairs_of

__all__ = ["Evaluation", "evaluate_checkpoints", "evaluate_predictor", "markdown_table", "write_evaluations"]

METRICS = ("mae", "psnr", "ssim")


@dataclass
class Evaluation:
    """Per-subject test figures of one generator or baseline, for each :class:`MetricScope`
    (standardized volumes: the ground truth's preprocessing mean and std)."""

    name: str
    direction: str
    subjects: list[str] = field(default_factory=list)
    scores: dict = field(default_factory=lambda: {s.value: {m: [] for m in METRICS} for s in MetricScope})

    def add(self, subject: str, figures: Figures) -> None:
        """Record one subject's figures."""
        self.subjects.append(subject)
        for scope, quality in figures.items():
            for metric in METRICS:
                self.scores[scope][metric].append(getattr(quality, metric))

    def summary(self, metric: str, scope: str = "source") -> tuple[float, float]:
        """Mean and standard deviation of ``metric`` on ``scope`` over the subjects."""
        values = self.scores[scope][metric]
        return float(np.mean(values)), float(np.std(values))


def evaluate_predictor(name: str, direction: str, score: Callable[[Volume, Volume], Figures],
                       pairs: list[ScanPair]) -> Evaluation:
    """``score(source, target)`` (:class:`Figures`) of each pair, oriented by ``direction``."""
    source_contrast, target_contrast = Direction(direction).contrasts
    evaluation = Evaluation(name, direction)
    with progress_bar(f"testing {name}", unit="subject") as progress:
        for done, pair in enumerate(pairs, start=1):
            source, target = load_volume(pair.path(source_contrast)), load_volume(pair.path(target_contrast))
            evaluation.add(pair.subject, score(source, target))
            progress(done, len(pairs))
    return evaluation


def generator_score(generator, options: SynthesisOptions):
    """A ``score`` for :func:`evaluate_predictor`: the figures of the generator's synthesis with ``options``."""
    return lambda source, target: SynthesisJob.load(source, generator, options, target=target).run().metrics


def evaluate_checkpoints(data, checkpoints, options: SynthesisOptions | None = None, split=None,
                         out=None) -> list[Evaluation]:
    """Evaluate each checkpoint on its test subjects with ``options``; write ``test_table.md`` and
    ``test_subjects.csv``.

    The test subjects come from ``split`` (a split.json), else from the split.json beside
    each checkpoint, else all pairs in ``data``.
    """
    options = (options or SynthesisOptions()).replace(spread=False)
    checkpoints = [Path(c) for c in checkpoints]
    out = Path(out) if out else checkpoints[0].parent
    evaluations = []
    for path in checkpoints:
        generator = load_checkpoint(path)
        info = generator.info
        split_path = Path(split) if split else path.parent / "split.json"
        subjects_split = SubjectSplit.load(split_path) if split_path.is_file() else None
        pairs = pairs_of(data, subjects_split.test if subjects_split else None)
        evaluations.append(evaluate_predictor(
            f"{info.label} ({path.parent.name}/{path.name})", info.direction, generator_score(generator, options),
            pairs,
        ))
    write_evaluations(out, evaluations)
    print(markdown_table(evaluations))
    return evaluations


def write_evaluations(out: Path, evaluations: list[Evaluation]) -> None:
    """``test_subjects.csv`` (one row per generator, subject and scope) and ``test_table.md``, atomically."""
    with atomic_output(out / "test_subjects.csv") as tmp_name, open(tmp_name, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["generator", "direction", "subject", "scope", *METRICS])
        for e in evaluations:
            for index, subject in enumerate(e.subjects):
                for scope, values in e.scores.items():
                    writer.writerow([e.name, e.direction, subject, scope, *(values[m][index] for m in METRICS)])
    with atomic_output(out / "test_table.md") as tmp_name:
        Path(tmp_name).write_text(markdown_table(evaluations) + "\n")


def markdown_table(evaluations: list[Evaluation], published: dict[str, str] | None = None) -> str:
    """Mean (std) of MAE, PSNR and SSIM per generator on the source grid (whole volume), PSNR in the
    head mask, and MAE, PSNR and SSIM on the report grid, optionally beside published PSNRs."""
    published = published or {}
    columns = [("source", m) for m in METRICS] + [("head", "psnr")] + [("report", m) for m in METRICS]
    names = {"mae": "MAE", "psnr": "PSNR (dB)", "ssim": "SSIM"}
    header = ("| Generator | Direction | Subjects | "
              + " | ".join(f"{names[m]}, {MetricScope(s).short}" for s, m in columns) + " |"
              + (" Report's PSNR |" if published else ""))
    rule = "|---|---|---:|" + "---:|" * len(columns) + ("---:|" if published else "")
    lines = [header, rule]
    for e in evaluations:
        cells = [f"{mean:.3f} ({std:.3f})" for mean, std in (e.summary(m, s) for s, m in columns)]
        row = f"| {e.name} | {direction_label(e.direction)} | {len(e.subjects)} | " + " | ".join(cells) + " |"
        if published:
            row += f" {published.get(e.name, '')} |"
        lines.append(row)
    return "\n".join(lines)
