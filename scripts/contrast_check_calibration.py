"""The contrast check's calibration: what it says of T2-, PD- and T1-weighted images, as simulated
and degraded as real scans are, and of real templates. Writes the tables of docs/contrast_check.md.

Images: held-out phantom subjects (data-set seed 7, which no bundled generator saw) at IXI's
geometry, simulated as dual-echo spin echoes at IXI's TR of 5725 ms and at clinical TRs of 3000,
2500, 2000 and 1500 ms (T2 and PD: the shorter the TR, the less bright CSF is on T2 and the darker
on PD, which takes on T1 weighting), and at 500 and 700 ms (the first echo: a T1-weighted spin
echo), each as simulated and degraded (:data:`napari_medsynth.core.simulation.acquisition.DEGRADATIONS`).
With ``--templates DIR``: the ICBM avg152 T1/T2/PD, avg305 T1 and single-subject T1 templates of
SPM12 (``canonical/*.nii`` in github.com/spm/spm12; GPL, so not shipped here), as given and degraded.

For each image the check says which contrasts it could be (:meth:`ContrastEvidence.possible`). The
synthesis' warning (``check_contrast``) fires when the generator's source contrast is not among
them: wrongly for a T2 given as a T2 source or a PD as a PD source; rightly for a T1 given as
either, and a T1 it does not warn of is missed.

Usage::

    PYTHONPATH=. python scripts/contrast_check_calibration.py [--subjects 4] [--templates /tmp/spm]
        [--write docs/contrast_check.md]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from napari_medsynth.core.evaluation.contrast import WEIGHTINGS, contrast_evidence
from napari_medsynth.core.files.nifti import Volume, load_volume
from napari_medsynth.core.simulation.acquisition import DEGRADATIONS, degrade
from napari_medsynth.core.simulation.phantom import Sequence, make_phantom, phantom_subject_seed

# the phantom images: (name, true contrast, TR in ms, echo)
PHANTOM_IMAGES = (
    *((f"{c}, TR {tr:.0f} ms{' (IXI)' if tr == 5725 else ''}", c, tr, c.lower()) for tr in
      (5725.0, 3000.0, 2500.0, 2000.0, 1500.0) for c in ("T2", "PD")),
    ("T1, TR 700 ms", "T1", 700.0, "pd"), ("T1, TR 500 ms", "T1", 500.0, "pd"))
TEMPLATES = (("avg152T2", "T2"), ("avg152PD", "PD"), ("avg152T1", "T1"), ("avg305T1", "T1"),
             ("single_subj_T1", "T1"))
TEMPLATE_DEGRADATIONS = ("as simulated", "5 mm slices", "8-bit", "strong bias field", "lesion",
                         "0.86x0.86x2.4 mm, 8-bit")
SOURCES = ("T2", "PD")  # the generators' source contrasts
BEGIN, END = "<!-- contrast check table: written by scripts/contrast_check_calibration.py -->", "<!-- end -->"


def phantom_images(subjects: int):
    """``(image name, true contrast, Volume)`` of each held-out subject at each TR."""
    for index in range(subjects):
        seed = phantom_subject_seed(7, index)
        for tr in dict.fromkeys(tr for _, _, tr, _ in PHANTOM_IMAGES):
            phantom = make_phantom(seed, sequence=Sequence(tr_ms=tr))
            for name, contrast, image_tr, echo in PHANTOM_IMAGES:
                if image_tr == tr:
                    yield name, contrast, getattr(phantom, echo)


def verdicts(images, degradations) -> dict:
    """``{(image name, true contrast, degradation): [(what it could be, evidence or None), ...]}``."""
    said: dict = {}
    for name, contrast, volume in images:
        for degradation in degradations:
            evidence = contrast_evidence(degrade(Volume(volume.data, volume.affine), degradation, contrast))
            possible = evidence.possible() if evidence is not None else WEIGHTINGS
            said.setdefault((name, contrast, degradation), []).append((possible, evidence))
    return said


def _warned(results, source: str) -> int:
    return sum(1 for possible, _ in results if source not in possible)


def table(said: dict) -> list[str]:
    """One row per image and degradation: what the check said, its evidence, and the warnings."""
    lines = ["| image | degradation | n | could be | upper | lower | warned as a T2 source | warned as a PD source |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for (name, contrast, degradation), results in said.items():
        counts = Counter(possible for possible, _ in results)
        could = ", ".join(f"{_named(possible, contrast)}: {count}" for possible, count in sorted(
            counts.items(), key=lambda item: (len(item[0]), item[0])))
        cells = [f"**{_warned(results, s)}**" if s == contrast and _warned(results, s) else str(_warned(results, s))
                 for s in SOURCES]
        lines.append(f"| {name} | {degradation} | {len(results)} | {could} | {_span(e.upper for _, e in results if e)} "
                     f"| {_span(e.lower for _, e in results if e)} | {' | '.join(cells)} |")
    return lines


def summary(said: dict) -> list[str]:
    """Per image (all its degradations) and per true contrast: sure, unsure and wrong, and the warnings
    a user would see wrongly (its own source) or miss (a T1 as a T2 or PD source)."""
    lines = ["| image | true contrast | images | sure, right | unsure, right among them | wrong (not among them) "
             "| said nothing | warned wrongly as its own source | T1 not warned as a T2 source "
             "| T1 not warned as a PD source |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    groups: dict = {}
    for (name, contrast, _), results in said.items():
        groups.setdefault((name, contrast), []).extend(results)
    for contrast in WEIGHTINGS:
        groups[(f"**all {contrast}**", contrast)] = [result for (_, c, _), results in said.items() if c == contrast
                                                     for result in results]
    for (name, contrast), results in groups.items():
        sure = sum(1 for possible, _ in results if possible == (contrast,))
        nothing = sum(1 for possible, _ in results if possible == WEIGHTINGS)
        wrong = sum(1 for possible, _ in results if contrast not in possible)
        own = _warned(results, contrast) if contrast in SOURCES else "-"
        missed = [len(results) - _warned(results, s) if contrast == "T1" else "-" for s in SOURCES]
        lines.append(f"| {name} | {contrast} | {len(results)} | {sure} | {len(results) - sure - nothing - wrong} "
                     f"| {wrong} | {nothing} | {own} | {missed[0]} | {missed[1]} |")
    return lines


def _named(possible: tuple, contrast: str) -> str:
    """``"PD or T1"``, in bold when the true contrast is among them."""
    text = "nothing" if possible == WEIGHTINGS else " or ".join(possible)
    return f"**{text}**" if contrast in possible and possible != WEIGHTINGS else text


def _span(values) -> str:
    values = list(values)
    return f"{min(values):.2f} to {max(values):.2f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4, help="held-out phantom subjects (default 4)")
    parser.add_argument("--templates", type=Path, help="a folder with SPM12's canonical/*.nii templates")
    parser.add_argument("--write", type=Path, help="replace the tables in this Markdown file")
    args = parser.parse_args()
    said = verdicts(phantom_images(args.subjects), DEGRADATIONS)
    if args.templates:
        images = [(f"{name} (SPM12, real scans averaged)" if name.startswith("avg") else f"{name} (SPM12, one "
                   "real subject)", contrast, load_volume(args.templates / f"{name}.nii")) for name, contrast in
                  TEMPLATES if (args.templates / f"{name}.nii").is_file()]
        said.update(verdicts(images, TEMPLATE_DEGRADATIONS))
    text = "\n".join([BEGIN, "", *summary(said), "", *table(said), "", END])
    print(text)
    if args.write:
        document = args.write.read_text()
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
        args.write.write_text(pattern.sub(lambda _: text, document))


if __name__ == "__main__":
    main()
