"""How much of a generator's lead over the bundled intensity mapping survives on scans that do not
look like the phantom it was trained on.

For each generator, on the source grid (whole volume), the PSNR margin over the bundled intensity
mapping of its direction (``medsynth compare``'s two rows, one preprocessing) on:

(a) held-out phantom subjects at IXI geometry (``WORK/heldout``, from ``medsynth phantom heldout
    --subjects 10 --seed 7``: subjects no run saw);
(b) the same subjects degraded as real acquisitions are (``core.simulation.acquisition``: 2 mm and
    blurred, 5 mm slices, 8-bit, a strong bias field), source and truth alike (one acquisition);
(c) the ICBM avg152 T2 and PD templates of SPM12 (``--templates DIR``, SPM12's ``canonical/``
    folder: averages of 152 real scans, 2 mm; GPL, so not shipped here). Only ever a check.

::

    python scripts/real_scan_margins.py WORK --templates SPM12/canonical GENERATOR.pt ... \\
        [--subjects 10] [--stride 32] [--json out.json]

With no generator, the bundled default pair (T2->PD and PD->T2 G4+RL). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_medsynth.core.choices import Direction, direction_label
from napari_medsynth.core.files.nifti import load_volume
from napari_medsynth.core.networks.checkpoint import load_checkpoint
from napari_medsynth.core.simulation.acquisition import degrade
from napari_medsynth.core.synthesis.catalog import BUNDLED_DIR
from napari_medsynth.core.synthesis.compare import compare_generators
from napari_medsynth.core.synthesis.options import SynthesisOptions
from src_train.data import pairs_of

DEGRADED = ("2 mm, blurred", "5 mm slices", "8-bit", "strong bias field")
CASES = ("IXI geometry", *DEGRADED, "avg152")
DEFAULT_PAIR = (BUNDLED_DIR / "t2-pd-G4+RL.pt", BUNDLED_DIR / "pd-t2-G4+RL.pt")


def _margins(source, target, checkpoints: list[Path], direction: str, options: SynthesisOptions) -> list[dict]:
    """Each generator's PSNR and the mapping's, from one comparison (one preprocessing, one mapping)."""
    *generators, mapping = compare_generators(source, checkpoints, direction, options, target=target)
    for checkpoint, row in zip(checkpoints, generators):
        if row.error:
            raise SystemExit(f"{checkpoint}: {row.error}")
    theirs = mapping.metrics.source.psnr
    return [{"generator": row.metrics.source.psnr, "mapping": theirs, "margin": row.metrics.source.psnr - theirs}
            for row in generators]


def score(checkpoints: list[Path], direction: str, work: Path, templates: Path | None, subjects: int,
          options: SynthesisOptions, cases=CASES) -> list[dict]:
    """Per generator of ``direction``, ``{case: {"margin": (mean, std), "generator": mean, "mapping": mean,
    "n": count}}``; every case is compared once for all of them."""
    source_contrast, target_contrast = Direction(direction).contrasts
    pairs = pairs_of(work / "heldout")[:subjects]
    found: dict[str, list[list[dict]]] = {case: [] for case in cases}
    for pair in pairs:
        source, target = load_volume(pair.path(source_contrast)), load_volume(pair.path(target_contrast))
        for case in cases:
            if case == "IXI geometry":
                found[case].append(_margins(source, target, checkpoints, direction, options))
            elif case in DEGRADED:
                found[case].append(_margins(degrade(source, case, source_contrast),
                                            degrade(target, case, target_contrast), checkpoints, direction, options))
    if "avg152" in cases and templates is not None:
        found["avg152"].append(_margins(load_volume(templates / f"avg152{source_contrast}.nii"),
                                        load_volume(templates / f"avg152{target_contrast}.nii"),
                                        checkpoints, direction, options))
    return [{case: {"margin": (float(np.mean([r[k]["margin"] for r in rows])),
                               float(np.std([r[k]["margin"] for r in rows]))),
                    "generator": float(np.mean([r[k]["generator"] for r in rows])),
                    "mapping": float(np.mean([r[k]["mapping"] for r in rows])), "n": len(rows)}
             for case, rows in found.items() if rows}
            for k in range(len(checkpoints))]


def markdown(results: dict[str, dict]) -> str:
    """One row per generator: its margin (dB, mean (std) over subjects) in each case."""
    cases = [c for c in CASES if any(c in r for r in results.values())]
    lines = ["| Generator | " + " | ".join(cases) + " |", "|---|" + "---:|" * len(cases)]
    for name, result in results.items():
        cells = []
        for case in cases:
            if case not in result:
                cells.append("")
                continue
            mean, std = result[case]["margin"]
            cells.append(f"{mean:+.2f}" + (f" ({std:.2f})" if result[case]["n"] > 1 else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="folder holding heldout/ (the recipe's work folder)")
    parser.add_argument("generators", type=Path, nargs="*", help="checkpoints (default: the bundled G4+RL pair)")
    parser.add_argument("--templates", type=Path, help="SPM12's canonical/ folder (avg152T2.nii, avg152PD.nii)")
    parser.add_argument("--subjects", type=int, default=10, help="held-out subjects to score (default 10)")
    parser.add_argument("--stride", type=int, default=32, help="patch stride (default 32, as the issue's figures)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    options = SynthesisOptions(grid="native", stride=args.stride, device=args.device, spread=False)
    by_direction: dict[str, list[Path]] = {}
    for checkpoint in args.generators or DEFAULT_PAIR:
        by_direction.setdefault(load_checkpoint(checkpoint).info.direction, []).append(checkpoint)
    results = {}
    for direction, checkpoints in by_direction.items():
        started = time.perf_counter()
        for checkpoint, result in zip(checkpoints, score(checkpoints, direction, args.work, args.templates,
                                                          args.subjects, options, args.cases)):
            info = load_checkpoint(checkpoint).info
            results[f"{direction_label(direction)} {info.label} ({checkpoint.parent.name}/{checkpoint.name})"] = result
        print(f"{direction_label(direction)}: {len(checkpoints)} scored in {time.perf_counter() - started:.0f} s",
              flush=True)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
