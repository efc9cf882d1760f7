"""The phantom's per-tissue contrast: median intensity ratios (CSF/GM, GM/WM) of each echo over pure-tissue
voxels, at IXI's timing and at timings drawn as ``medsynth phantom --varied-sequences`` draws them; with
``--templates``, the same ratios of the avg152 T2 and PD templates, their tissues taken from the ICBM 2009a
maps the phantom is built from (resampled onto avg152's 2 mm grid: GM share > 0.7, WM share > 0.9, CSF
inside the brain mask with GM + WM < 0.1). avg152 is a check, not a target: nothing is fitted to it.

::

    python scripts/phantom_tissue_ratios.py [--subjects 10] [--seed 0] [--templates SPM12/canonical]

Prints a Markdown table (one row per subject and timing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from napari_medsynth.core.simulation.phantom import (
    ASSET_PATH,
    IXI_SEQUENCE,
    TISSUES,
    Sequence,
    make_phantom,
    phantom_subject_seed,
    sequence_of,
)


def ratios(t2: np.ndarray, pd: np.ndarray, masks: dict) -> list[float]:
    """T2 CSF/GM, T2 GM/WM, PD CSF/GM, PD GM/WM from the tissues' median intensities."""
    medians = {name: (np.median(t2[mask]), np.median(pd[mask])) for name, mask in masks.items()}
    return [float(medians[a][echo] / medians[b][echo]) for echo in (0, 1) for a, b in (("csf", "gm"), ("gm", "wm"))]


def phantom_ratios(seed: int, sequence: Sequence) -> list[float]:
    subject = make_phantom(seed, sequence=sequence)
    masks = {name: subject.labels == TISSUES.index(name) for name in ("csf", "gm", "wm")}
    return ratios(subject.t2.data, subject.pd.data, masks)


def template_ratios(templates: Path) -> list[float]:
    t2, pd = (nib.load(templates / f"avg152{c}.nii") for c in ("T2", "PD"))
    with np.load(ASSET_PATH) as asset:
        maps, affine = {k: asset[k].astype(np.float32) for k in ("gm", "wm", "t1")}, asset["affine"]
    voxels = np.indices(t2.shape).reshape(3, -1)
    to_map = np.linalg.inv(affine) @ t2.affine
    where = to_map[:3, :3] @ voxels + to_map[:3, 3:4]
    gm, wm, brain = (ndi.map_coordinates(maps[k], where, order=1).reshape(t2.shape) for k in ("gm", "wm", "t1"))
    gm, wm = gm / 255, wm / 255
    inside = ndi.binary_erosion(brain > 1, iterations=3)
    masks = {"gm": gm > 0.7, "wm": wm > 0.9, "csf": inside & (gm + wm < 0.1)}
    return ratios(t2.get_fdata(), pd.get_fdata(), masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="the data set's seed (default 0, the recipe's)")
    parser.add_argument("--templates", type=Path, help="SPM12's canonical/ folder (avg152T2.nii, avg152PD.nii)")
    args = parser.parse_args()
    print("| image | TR, TE PD / T2 (ms) | T2: CSF/GM | T2: GM/WM | PD: CSF/GM | PD: GM/WM |")
    print("|---|---|---:|---:|---:|---:|")
    for index in range(args.subjects):
        seed = phantom_subject_seed(args.seed, index)
        for label, sequence in (("IXI's", IXI_SEQUENCE), ("drawn", sequence_of(seed))):
            timing = f"{sequence.tr_ms:.0f}, {sequence.te_pd_ms:.0f} / {sequence.te_t2_ms:.0f} ({label})"
            values = " | ".join(f"{v:.2f}" for v in phantom_ratios(seed, sequence))
            print(f"| phantom subject {index + 1} | {timing} | {values} |", flush=True)
    if args.templates:
        print(f"| avg152 | | {' | '.join(f'{v:.2f}' for v in template_ratios(args.templates))} |")


if __name__ == "__main__":
    main()
