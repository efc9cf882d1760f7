"""Derive the compact MNI ICBM152 2009a copy that the brain phantom is built from.

The phantom (``napari_medsynth.core.simulation.phantom``) needs three maps of the ICBM 2009a
nonlinear symmetric template: the grey- and white-matter probability maps and the
T1-weighted average. The nilearn wheel carries them at 1 mm (197 x 233 x 189 voxels,
stored as uint8); this script crops them to the bounding box
of the non-zero voxels (nilearn's T1 template is brain-masked, so that box is the
brain's, with a one-voxel margin) and writes them, with the affine of the cropped
grid, to ``napari_medsynth/data/mni_icbm152_2009a_head.npz`` (an ``.npz`` whose
members are LZMA-compressed, which ``numpy.load`` reads), together with the MNI
copyright and permission notice ``MNI_ICBM152_NOTICE.txt``.

Usage::

    pip download --no-deps nilearn==0.14.1 -d /tmp/nilearn-wheel
    unzip -q /tmp/nilearn-wheel/nilearn-0.14.1-py3-none-any.whl -d /tmp/nl
    python scripts/derive_mni_template.py /tmp/nl/nilearn/datasets/data
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np

SOURCE_FILES = {
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
}
EXPECTED_SHAPE = (197, 233, 189)
MARGIN_VOXELS = 1
DATA_DIR = Path(__file__).resolve().parents[1] / "napari_medsynth" / "data"
ASSET_NAME = "mni_icbm152_2009a_head.npz"
NOTICE_NAME = "MNI_ICBM152_NOTICE.txt"

NOTICE = """\
MNI ICBM152 2009a nonlinear symmetric template -- copyright and permission notice
===============================================================================

Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal
Neurological Institute, McGill University. Permission to use, copy, modify, and
distribute this software and its documentation for any purpose and without fee is
hereby granted, provided that the above copyright notice appear in all copies. The
authors and McGill University make no representations about the suitability of this
software for any purpose. It is provided "as is" without express or implied
warranty. The authors are not responsible for any data loss, equipment damage,
property loss, or injury to subjects or patients resulting from the use or misuse
of this software package.

What {asset} holds and how it was derived
---------------------------------------------------------------

Source: the ICBM 2009a nonlinear symmetric template as shipped in the nilearn 0.14.1
wheel (nilearn/datasets/data/), 1 mm isotropic, 197 x 233 x 189 voxels:

{sources}

Derivation (scripts/derive_mni_template.py in napari-medsynth):

- the three maps keep the uint8 values (0..255) of nilearn's files, so no further
  quantization is applied: probability = value / 255, T1-weighted intensity =
  value / 255;
- they are cropped to the bounding box of the voxels that are non-zero in any of the
  three maps (nilearn's T1-weighted template is brain-masked, so this is the brain's
  box) plus a {margin}-voxel margin: voxel ranges {box};
- arrays "gm", "wm", "t1" (uint8, shape {shape}) and "affine" (the 4x4 voxel-to-MNI
  mm matrix of the cropped grid) are stored in an .npz whose members are
  LZMA-compressed.

Scalp, skull and the other tissues outside the brain are not in these files; the
phantom models them from the brain's outline.
"""


def _load(folder: Path, key: str) -> tuple[np.ndarray, np.ndarray, str]:
    path = folder / SOURCE_FILES[key]
    if not path.is_file():
        raise SystemExit(f"{path}: missing; pass the nilearn/datasets/data folder of the wheel")
    image = nib.load(str(path))
    data = np.asarray(image.dataobj)
    if data.shape != EXPECTED_SHAPE or data.dtype != np.uint8:
        raise SystemExit(
            f"{path.name}: expected uint8 {EXPECTED_SHAPE}, got {data.dtype} {data.shape}"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return data, image.affine, digest


def derive(folder: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write the cropped maps and the notice into ``out_dir``; return both paths."""
    maps, digests, affine = {}, {}, None
    for key in SOURCE_FILES:
        maps[key], key_affine, digests[key] = _load(folder, key)
        if affine is not None and not np.allclose(affine, key_affine):
            raise SystemExit(f"{SOURCE_FILES[key]}: its affine differs from the other maps'")
        affine = key_affine
    nonzero = np.argwhere(np.any([m > 0 for m in maps.values()], axis=0))
    low = np.maximum(nonzero.min(axis=0) - MARGIN_VOXELS, 0)
    high = np.minimum(nonzero.max(axis=0) + 1 + MARGIN_VOXELS, EXPECTED_SHAPE)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    cropped_affine = affine.copy()
    cropped_affine[:3, 3] = affine[:3, :3] @ low + affine[:3, 3]

    out_dir.mkdir(parents=True, exist_ok=True)
    asset = out_dir / ASSET_NAME
    with zipfile.ZipFile(asset, "w", compression=zipfile.ZIP_LZMA) as archive:
        arrays = {key: np.ascontiguousarray(m[box]) for key, m in maps.items()}
        arrays["affine"] = cropped_affine.astype(np.float64)
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)

    sources = "\n".join(f"- {name} (sha256 {digests[key]})" for key, name in SOURCE_FILES.items())
    box_text = ", ".join(f"{s.start}:{s.stop}" for s in box)
    shape = tuple(int(b - a) for a, b in zip(low, high))
    notice = out_dir / NOTICE_NAME
    notice.write_text(
        NOTICE.format(
            asset=ASSET_NAME, sources=sources, margin=MARGIN_VOXELS, box=box_text, shape=shape
        ),
        encoding="utf-8",
    )
    return asset, notice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="nilearn/datasets/data of the unpacked wheel")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    args = parser.parse_args(argv)
    asset, notice = derive(args.folder, args.out)
    print(f"wrote {asset} ({asset.stat().st_size / 1e6:.2f} MB) and {notice.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
