"""Bundle the phantom-trained generators of a ``medsynth-train reproduce`` run as package data.

Usage (the last step of ``scripts/make_demo_generators.sh``, the whole recipe)::

    python scripts/package_demo_generators.py REPRO_DIR PHANTOM_DIR

For every generator of the report's tables it copies ``REPRO_DIR/<run>/best.pt`` into
``napari_medsynth/data/generators/<run>.pt``, labelled as trained on the synthetic phantom,
with the recipe that made it (the text of make_demo_generators.sh) and its held-out test
metrics. It also fits the per-voxel
intensity-mapping baseline of each direction on the same training subjects and writes it
beside them, so that the demo can compare against it, and writes docs/demo_generators.md
from the recipe and ``REPRO_DIR/report.md``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from napari_medsynth.core.atomic import atomic_output
from napari_medsynth.core.catalog import BUNDLED_DIR, MAPPING_FILE
from napari_medsynth.core.checkpoint import read_checkpoint, write_atomically
from src_train.data import PreprocessedCache, SubjectSplit
from src_train.reproduce import PLAN, REPORTED, fit_intensity_mapping

TRAINED_ON = "synthetic phantom (medsynth phantom --subjects 10 --seed 0), not real MRI"
RECIPE = Path(__file__).with_name("make_demo_generators.sh")
DOC = Path(__file__).resolve().parent.parent / "docs" / "demo_generators.md"


def main(repro: Path, data: Path) -> None:
    command = RECIPE.read_text()
    cache = PreprocessedCache(repro / "cache")
    test_metrics = _test_metrics(repro)
    BUNDLED_DIR.mkdir(parents=True, exist_ok=True)
    mappings = {}
    for run in (r for r in PLAN if r.name in REPORTED):
        payload = read_checkpoint(repro / run.name / "best.pt")
        payload.pop("discriminator", None)  # best.pt keeps it for G4's fine-tuning; the demo needs G only
        provenance = payload["provenance"]
        provenance.update(trained_on=TRAINED_ON, command=command, data_set="phantom10",
                          test=test_metrics[run.direction][run.label])
        init = Path(provenance.get("init") or "")
        if init.is_absolute():  # as the recipe names it (from the work folder), not this machine's path
            provenance["init"] = init.relative_to(repro.parent.resolve()).as_posix()
        write_atomically(BUNDLED_DIR / f"{run.name}.pt", payload)
        if run.direction not in mappings:
            split = SubjectSplit.load(repro / run.name / "split.json")
            mapping = fit_intensity_mapping(data, run.direction, split, cache)
            mappings[run.direction] = {"trained_on": TRAINED_ON, "train_subjects": list(split.train),
                                       "test_subjects": list(split.test), "mapping": mapping.to_dict()}
        print(f"bundled {run.name}: test PSNR {test_metrics[run.direction][run.label]['psnr']:.3f} dB")
    with atomic_output(BUNDLED_DIR / MAPPING_FILE) as tmp_name:
        Path(tmp_name).write_text(json.dumps(mappings))
    size = sum(p.stat().st_size for p in BUNDLED_DIR.iterdir())
    print(f"wrote {BUNDLED_DIR} ({size / 1e6:.2f} MB)")
    report = (repro / "report.md").read_text().split("\n", 1)[1]
    with atomic_output(DOC) as tmp_name:
        Path(tmp_name).write_text(_DOC_HEAD.format(size=size / 1e6, recipe=command.strip()) + report)
    print(f"wrote {DOC}")


_DOC_HEAD = """# The demo generators

`napari_medsynth/data/generators/` holds six generators ({size:.1f} MB in all), made with this
project's own `medsynth-train` on the synthetic phantom (`medsynth phantom`, 10 subjects, seed 0:
7 training, 1 validation and 2 test subjects by the report's proportions). They are small (width
1/8: 59,576 parameters against the report's 3,638,592) and trained for minutes on a 2-core CPU:
they show the pipeline at work and are no stand-in for models trained on real MRI. Each file is a
self-describing checkpoint whose provenance says it was trained on the phantom, holds the recipe
below and its test figures; `intensity-mapping.json` beside them is the per-voxel mapping baseline
fitted on the same training subjects.

The default demo generator, used by `medsynth demo`, is PD->T2 G4+RL. Its runs and those of
T2->PD G3 and G4 differ from the rest of the plan, as the recipe records: more optimizer steps
before G4's 4 epochs, PD->T2 G3+RL at batch 7 rather than the report's 49 for 20 epochs, and
T2->PD G3 (at the report's batch 7) for 40 epochs rather than 4. In the first 4-epoch runs no
generator had overtaken the per-voxel intensity mapping (with 49-patch batches an epoch of the 7
training subjects is 7 steps). T2->PD G3 and both G4s then beat that baseline on the test
subjects. The other three (T2->PD G1 and G2, PD->T2 G4 without residual) had 4 epochs each and
stay below it, as the tables show: they are there to compare the variants.

## The recipe (`scripts/make_demo_generators.sh`)

```bash
{recipe}
```

## Their figures
"""


def _test_metrics(repro: Path) -> dict:
    """Mean test MAE/PSNR/SSIM per direction and generator label, from the reproduce tables."""
    metrics = defaultdict(dict)
    for direction in ("t2-pd", "pd-t2"):
        rows = defaultdict(list)
        with open(repro / direction / "test_subjects.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                rows[row["generator"]].append(row)
        for name, subject_rows in rows.items():
            metrics[direction][name] = {
                key: float(np.mean([float(r[key]) for r in subject_rows])) for key in ("mae", "psnr", "ssim")
            } | {"subjects": [r["subject"] for r in subject_rows]}
    return metrics


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]), Path(sys.argv[2]))
