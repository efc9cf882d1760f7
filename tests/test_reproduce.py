"""``medsynth-train reproduce``: the report's plan end to end, at one epoch and a tiny width."""

from __future__ import annotations

import csv
from dataclasses import fields

from src_train.cli import REPRODUCE_OPTIONS, build_parser, main
from src_train.reproduce import PLAN, ReproduceConfig, plan_configs

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
    assert {r["generator"] for r in rows} >= {"G1", "G4"} and all(float(r["psnr"]) > 0 for r in rows)


def test_the_config_holds_every_option_of_the_command(tmp_path):
    assert {f.name for f in fields(ReproduceConfig)} == {"data", "out", "epochs", "batch_size", "grid",
                                                         *REPRODUCE_OPTIONS}
    args = build_parser().parse_args(["reproduce", "--data", "d", "--out", str(tmp_path), *TINY])
    config = ReproduceConfig.from_args(args)
    assert plan_configs(config) == plan_configs(ReproduceConfig(
        "d", tmp_path, epochs=1, batch_size=7, width=0.015625, discriminator_width=0.125, val_stride=32, workers=0,
        device="cpu"))
    assert {(c.epochs, c.width, c.workers, c.cache) for c in plan_configs(config)} == {
        (1, 0.015625, 0, str(tmp_path / "cache"))}
