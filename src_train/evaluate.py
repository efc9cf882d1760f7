"""Test-set evaluation of checkpoints and baselines: per-subject CSV and a Markdown table."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_medsynth.core.atomic import atomic_output
from napari_medsynth.core.checkpoint import direction_label, load_checkpoint
from napari_medsynth.core.console import progress_bar
from napari_medsynth.core.metrics import quality
from napari_medsynth.core.reconstruct import reconstruct_volume

from .data import PreprocessedCache, SubjectSplit, VolumePair, load_volume_pairs, pairs_of

__all__ = ["Evaluation", "evaluate_checkpoints", "evaluate_predictor", "markdown_table", "write_evaluations"]


@dataclass
class Evaluation:
    """Per-subject test figures of one generator or baseline (standardized volumes)."""

    name: str
    direction: str
    subjects: list[str]
    mae: list[float]
    psnr: list[float]
    ssim: list[float]

    def summary(self, metric: str) -> tuple[float, float]:
        """Mean and standard deviation of ``metric`` over the subjects."""
        values = getattr(self, metric)
        return float(np.mean(values)), float(np.std(values))


def evaluate_predictor(name: str, direction: str, predict: Callable[[np.ndarray], np.ndarray],
                       pairs: list[VolumePair]) -> Evaluation:
    """MAE, PSNR and SSIM of ``predict(source)`` against each pair's target, as in validation."""
    evaluation = Evaluation(name, direction, [], [], [], [])
    with progress_bar(f"testing {name}", unit="subject") as progress:
        for done, pair in enumerate(pairs, start=1):
            prediction, target = predict(pair.source.load(mmap=False)), pair.target.load(mmap=False)
            evaluation.subjects.append(pair.subject)
            for metric, value in quality(prediction, target).items():
                getattr(evaluation, metric).append(value)
            progress(done, len(pairs))
    return evaluation


def evaluate_checkpoints(data, checkpoints, split=None, out=None, stride: int = 8, device="auto",
                         cache=None) -> list[Evaluation]:
    """Evaluate each checkpoint on its test subjects; write ``test_table.md`` and ``test_subjects.csv``.

    The test subjects come from ``split`` (a split.json), else from the split.json beside
    each checkpoint, else all pairs in ``data``.
    """
    checkpoints = [Path(c) for c in checkpoints]
    out = Path(out) if out else checkpoints[0].parent
    cache = PreprocessedCache(cache or out / "cache")
    evaluations = []
    for path in checkpoints:
        generator, info = load_checkpoint(path)
        split_path = Path(split) if split else path.parent / "split.json"
        subjects_split = SubjectSplit.load(split_path) if split_path.is_file() else None
        pairs = load_volume_pairs(pairs_of(data, subjects_split.test if subjects_split else None), info.direction, cache)
        evaluations.append(evaluate_predictor(
            f"{info.label} ({path.parent.name}/{path.name})", info.direction,
            lambda source, g=generator: reconstruct_volume(g, source, patch=info.patch, stride=stride, device=device),
            pairs,
        ))
    write_evaluations(out, evaluations)
    print(markdown_table(evaluations))
    return evaluations


def write_evaluations(out: Path, evaluations: list[Evaluation]) -> None:
    """``test_subjects.csv`` (one row per generator and subject) and ``test_table.md``, atomically."""
    with atomic_output(out / "test_subjects.csv") as tmp_name, open(tmp_name, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["generator", "direction", "subject", "mae", "psnr", "ssim"])
        for e in evaluations:
            for row in zip(e.subjects, e.mae, e.psnr, e.ssim):
                writer.writerow([e.name, e.direction, *row])
    with atomic_output(out / "test_table.md") as tmp_name:
        Path(tmp_name).write_text(markdown_table(evaluations) + "\n")


def markdown_table(evaluations: list[Evaluation], published: dict[str, str] | None = None) -> str:
    """Mean (std) of MAE, PSNR and SSIM per generator, optionally beside published PSNRs."""
    published = published or {}
    header = "| Generator | Direction | Subjects | MAE | PSNR (dB) | SSIM |" + (" Report's PSNR |" if published else "")
    rule = "|---|---|---:|---:|---:|---:|" + ("---:|" if published else "")
    lines = [header, rule]
    for e in evaluations:
        cells = [f"{m:.3f} ({s:.3f})" for m, s in (e.summary("mae"), e.summary("psnr"), e.summary("ssim"))]
        row = f"| {e.name} | {direction_label(e.direction)} | {len(e.subjects)} | " + " | ".join(cells) + " |"
        if published:
            row += f" {published.get(e.name, '')} |"
        lines.append(row)
    return "\n".join(lines)
