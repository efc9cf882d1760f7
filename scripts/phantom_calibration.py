"""Compare the phantom's T2/PD contrast with a real IXI pair: a Markdown table.

For the mid-axial slice of phantom subjects (seeds 0..9 by default) it computes
:func:`napari_medsynth.core.evaluation.baselines.contrast_pair_statistics` -- the correlation of
T2 and PD over the head, the PSNR of the standardised T2 taken as the PD ("identity")
and the PSNR of a 256-bin per-voxel T2 -> PD mapping fitted on that slice -- and
prints them next to the same figures measured on the mid-axial slice of a real IXI
T2/PD pair. With ``--figure`` it also draws the mid-axial T2 and PD slices of the
first seed side by side into a PNG (with Pillow).

Usage::

    PYTHONPATH=. python scripts/phantom_calibration.py [--seeds 0 1 2 3 4 5 6 7 8 9]
        [--figure docs/phantom_slices.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from napari_medsynth.core.evaluation.baselines import contrast_pair_statistics
from napari_medsynth.core.simulation.phantom import make_phantom_pair

REAL_IXI = {"correlation": 0.82, "psnr_identity": 19.95, "psnr_mapping": 28.2}
COLUMNS = (
    ("correlation", "correlation over the head", "{:.3f}"),
    ("psnr_identity", "PSNR identity (dB)", "{:.2f}"),
    ("psnr_mapping", "PSNR per-voxel mapping (dB)", "{:.2f}"),
)


def mid_axial_slices(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The mid-axial T2 and PD slices of phantom subject ``seed``."""
    t2, pd = make_phantom_pair(seed)
    middle = t2.data.shape[2] // 2
    return t2.data[:, :, middle], pd.data[:, :, middle]


def draw_figure(t2_slice: np.ndarray, pd_slice: np.ndarray, path: Path, title: str) -> None:
    """Save the two slices side by side, each scaled to its 99.8th percentile.

    Voxel axes are LPS, so the transposed slice shows anterior at the top and the
    patient's right on the left (the radiological convention).
    """
    panels = []
    for name, image in (("T2", t2_slice), ("PD", pd_slice)):
        grey = np.clip(image / np.percentile(image, 99.8) * 255, 0, 255).astype(np.uint8)
        panel = Image.fromarray(np.ascontiguousarray(grey.T)).resize(
            (2 * grey.shape[0], 2 * grey.shape[1]), Image.LANCZOS
        )
        ImageDraw.Draw(panel).text((10, 8), name, fill=255)
        panels.append(panel)
    figure = Image.new("L", (sum(p.width for p in panels), panels[0].height + 24))
    for index, panel in enumerate(panels):
        figure.paste(panel, (index * panels[0].width, 24))
    ImageDraw.Draw(figure).text((10, 6), title, fill=255)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.save(path)


def markdown_table(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table with one row per ``(name, statistics)``."""
    lines = [
        "| slice | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, stats in rows:
        cells = " | ".join(fmt.format(stats[key]) for key, _, fmt in COLUMNS)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--figure", type=Path, help="PNG of the first seed's mid-axial slices")
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        t2_slice, pd_slice = mid_axial_slices(seed)
        rows.append((f"phantom seed {seed}", contrast_pair_statistics(t2_slice, pd_slice)))
        if args.figure is not None and seed == args.seeds[0]:
            title = f"napari-medsynth phantom, seed {seed}, mid-axial slice"
            draw_figure(t2_slice, pd_slice, args.figure, title)
    mean = {key: float(np.mean([stats[key] for _, stats in rows])) for key, _, _ in COLUMNS}
    rows.append((f"**phantom mean ({len(args.seeds)} seeds)**", mean))
    rows.append(("**real IXI pair**", REAL_IXI))
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
