"""``medsynth-train reproduce``: the report's plan end to end, at one epoch and a tiny width."""

from __future__ import annotations

import csv
import json
from dataclasses import fields

import pytest

from napari_medsynth.core.evaluation.baselines import BASELINES
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.synthesis.pipeline import score_voxelwise
from src_train.cli import build_parser, main
from src_train.plan import PLAN, ReproduceConfig, plan_configs

# One epoch, and a generator of one filter per layer (width 1/64): each run of the plan trains in seconds.
TINY = ["--epochs", "1", "--width", "0.015625", "--discriminator-width", "0.125", "--val-stride", "32",
        "--workers", "0", "--device", "cpu", "--batch-size", "7"]


def _table_rows(report: str, heading: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under ``heading``, by their first cell."""
    lines = report.split(heading, 1)[1].split("\n\n", 2)[1].splitlines()
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}


def test_reproduce_trains_the_plan_and_reports_each_runs_own_epochs(phantom_dir, tmp_path):
    out = tmp_path / "repro"
    # A run already trained past the plan (as the demo recipe does) keeps its finished epochs,
    # is not retrained, and reports its own length.
    g1 = out / "t2-pd-G1"
    assert main(["train", "--data", str(phantom_dir), "--out", str(g1), *TINY[2:], "--epochs", "2"]) == 0
    untouched = (g1 / "last.pt").stat().st_mtime_ns
    assert main(["reproduce", "--data", str(phantom_dir), "--out", str(out), *TINY, "--grid", "report"]) == 0
    assert "width 0.015625 (discriminator 0.125)" in (out / "report.md").read_text()
    assert "(whole volume and head mask; report-grid synthesis)" in (out / "report.md").read_text()
    assert (g1 / "last.pt").stat().st_mtime_ns == untouched
    assert all((out / run.name / "best.pt").is_file() for run in PLAN)
    report = (out / "report.md").read_text()
    validation = _table_rows(report, "## T2 -> PD: validation")
    assert validation["G1"][0].endswith("/2")
    assert [validation[label][0] for label in ("G2", "G3", "G4")] == ["1/1"] * 3
    test = _table_rows(report, "## T2 -> PD: test set (1 subjects)")
    assert {"G1", "G2", "G3", "G4", "standardized source (baseline)", "intensity mapping (baseline)"} <= set(test)
    assert set(_table_rows(report, "## PD -> T2: test set (1 subjects)")) >= {"G4", "G4+RL"}
    with open(out / "t2-pd" / "test_subjects.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["generator"] for r in rows} == {"G1", "G2", "G3", "G4", *BASELINES}
    # One epoch at width 1/64 trains nothing a figure shows (about 12.5 dB, below both baselines): this test
    # checks the plan's plumbing, not its quality. The standardized source's rows are recomputed here...
    (subject,) = json.loads((g1 / "split.json").read_text())["test"]
    figures = {(r["generator"], r["scope"]): r for r in rows if r["subject"] == subject}
    source, truth = (load_volume(phantom_dir / f"{subject}-{contrast}.nii.gz") for contrast in ("T2", "PD"))
    for scope, quality in score_voxelwise(lambda x: x, source, truth).items():
        row = figures[BASELINES[0], scope.value]
        assert {m: float(row[m]) for m in ("mae", "psnr", "ssim")} == pytest.approx(vars(quality), abs=1e-6), scope
        # ...the intensity mapping (fitted on the training subject) beats them (by 4.4-6 dB)...
        assert float(figures[BASELINES[1], scope.value]["psnr"]) > quality.psnr + 2, scope
    # ...and each run's row is its own generator's (the plan's four runs are four figures)
    assert len({figures[label, "source"]["psnr"] for label in ("G1", "G2", "G3", "G4")}) == 4


def test_the_config_holds_every_option_of_the_command(tmp_path):
    shared = ReproduceConfig.shared_options()
    assert {f.name for f in fields(ReproduceConfig)} == {"data", "out", "epochs", "batch_size", "grid", *shared}
    assert {"width", "lr", "device", "seed", "engine", "all_stacks"} <= set(shared)
    help_text = build_parser()._subparsers._group_actions[0].choices["reproduce"].format_help()
    assert all(f"--{name.replace('_', '-')}" in help_text for name in shared)
    args = build_parser().parse_args(["reproduce", "--data", "d", "--out", str(tmp_path), *TINY])
    config = ReproduceConfig.from_args(args)
    assert plan_configs(config) == plan_configs(ReproduceConfig(
        "d", tmp_path, epochs=1, batch_size=7, width=0.015625, discriminator_width=0.125, val_stride=32, workers=0,
        device="cpu"))
    assert {(c.epochs, c.width, c.workers, c.cache) for c in plan_configs(config)} == {
        (1, 0.015625, 0, str(tmp_path / "cache"))}
