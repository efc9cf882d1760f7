"""The contrast check's calibration: what it says of T2-, PD- and T1-weighted images, as simulated
and degraded as real scans are, and of real templates. Writes the tables of docs/contrast_check.md.

Images: held-out phantom subjects (data-set seed 7, which no bundled generator saw) at IXI's
geometry, simulated with IXI's TR of 5725 ms (T2 and PD), a clinical TR of 2500 ms (T2 and PD,
CSF less bright on T2 and darker on PD) and 500 ms (the first echo: a T1-weighted spin echo),
each as simulated and degraded (:data:`napari_medsynth.core.simulation.acquisition.DEGRADATIONS`). With
``--templates DIR``: the ICBM avg152 T1/T2/PD, avg305 T1 and single-subject T1 templates of SPM12
(``canonical/*.nii`` in github.com/spm/spm12; GPL, so not shipped here), as given and degraded.

For each image the check either names a contrast or says nothing. A miss: it says nothing of an
image; a false alarm: it names the wrong contrast. The synthesis' warning (``check_contrast``)
fires when the named contrast is not the generator's source contrast, and for a T2 source also
when the core's CSF is no brighter than the brain.

Usage::

    PYTHONPATH=. python scripts/contrast_check_calibration.py [--subjects 4] [--templates /tmp/spm]
        [--write docs/contrast_check.md]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from napari_medsynth.core.evaluation.contrast import contrast_evidence
from napari_medsynth.core.files.nifti import Volume, load_volume
from napari_medsynth.core.simulation.acquisition import DEGRADATIONS, degrade
from napari_medsynth.core.simulation.phantom import make_phantom, phantom_subject_seed

# the phantom images: (name, true contrast, TR in ms, echo)
PHANTOM_IMAGES = (("T2, TR 5725 ms (IXI)", "T2", None, "t2"), ("PD, TR 5725 ms (IXI)", "PD", None, "pd"),
                  ("T2, TR 2500 ms", "T2", 2500.0, "t2"), ("PD, TR 2500 ms", "PD", 2500.0, "pd"),
                  ("T1, TR 500 ms", "T1", 500.0, "pd"))
TEMPLATES = (("avg152T2", "T2"), ("avg152PD", "PD"), ("avg152T1", "T1"), ("avg305T1", "T1"),
             ("single_subj_T1", "T1"))
TEMPLATE_DEGRADATIONS = ("as simulated", "5 mm slices", "8-bit", "strong bias field", "lesion")
BEGIN, END = "<!-- contrast check table: written by scripts/contrast_check_calibration.py -->", "<!-- end -->"


def phantom_images(subjects: int):
    """``(image name, true contrast, Volume)`` of each held-out subject at each TR."""
    for index in range(subjects):
        seed = phantom_subject_seed(7, index)
        for tr in sorted({tr for _, _, tr, _ in PHANTOM_IMAGES}, key=str):
            phantom = make_phantom(seed, tr_ms=tr)
            for name, contrast, image_tr, echo in PHANTOM_IMAGES:
                if image_tr == tr:
                    yield name, contrast, getattr(phantom, echo)


def verdicts(images, degradations) -> dict:
    """``{(image name, degradation): Counter of what the check said}`` and the evidence's ranges."""
    said: dict = {}
    for name, contrast, volume in images:
        for degradation in degradations:
            evidence = contrast_evidence(degrade(Volume(volume.data, volume.affine), degradation, contrast))
            guess = evidence.contrast() if evidence is not None else None
            said.setdefault((name, contrast, degradation), []).append((guess, evidence))
    return said


def table(said: dict) -> list[str]:
    """One row per image and degradation: what the check said, its evidence, and the warnings."""
    lines = ["| image | degradation | n | said T2 | said PD | said T1 | said nothing | upper | lower "
             "| warned as a T2 source | warned as a PD source |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (name, contrast, degradation), results in said.items():
        counts = Counter(guess for guess, _ in results)
        uppers = [e.upper for _, e in results if e is not None]
        lowers = [e.lower for _, e in results if e is not None]
        warned = {expected: sum(1 for _, e in results if e is not None and e.unlike(expected)) for expected in
                  ("T2", "PD")}
        cells = [f"**{counts[c]}**" if c == contrast and counts[c] else str(counts[c]) for c in ("T2", "PD", "T1")]
        lines.append(f"| {name} | {degradation} | {len(results)} | {' | '.join(cells)} | {counts[None]} "
                     f"| {_span(uppers)} | {_span(lowers)} | {warned['T2']} | {warned['PD']} |")
    return lines


def summary(said: dict) -> list[str]:
    """Misses and false alarms per true contrast, and the warnings' false alarms."""
    lines = ["| true contrast | images | named right | said nothing (misses) | named wrong (false alarms) "
             "| warned wrongly as its own source |", "|---|---:|---:|---:|---:|---:|"]
    by_contrast: dict = {}
    for (_, contrast, _), results in said.items():
        by_contrast.setdefault(contrast, []).extend(results)
    for contrast, results in by_contrast.items():
        right = sum(1 for guess, _ in results if guess == contrast)
        nothing = sum(1 for guess, _ in results if guess is None)
        own = sum(1 for _, e in results if contrast in ("T2", "PD") and e is not None and e.unlike(contrast))
        lines.append(f"| {contrast} | {len(results)} | {right} | {nothing} | {len(results) - right - nothing} "
                     f"| {own if contrast in ('T2', 'PD') else '-'} |")
    return lines


def _span(values) -> str:
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
