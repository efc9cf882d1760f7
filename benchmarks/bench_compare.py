"""What comparing N generators costs against N single syntheses.

``compare_generators`` preprocesses the source once, computes one head mask, and runs each
generator; the peer is what a user did before: one ``synthesize`` per generator (each its own
preprocessing and head mask), plus ``score_voxelwise`` for the intensity mapping. Both in this
process, on phantom subject 0 (256 x 256 x 130) with the bundled generators of one direction.

    .venv/bin/python benchmarks/bench_compare.py --grid report --stride 32 --out results/compare.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from napari_medsynth.core.evaluation.masks import head_mask
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
from napari_medsynth.core.simulation.phantom import make_phantom_pair
from napari_medsynth.core.synthesis.catalog import bundled_generators, bundled_mapping
from napari_medsynth.core.synthesis.compare import compare_generators
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import score_voxelwise, synthesize


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direction", default="t2-pd")
    parser.add_argument("--grid", default="report", choices=["native", "report"])
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs of each side")
    parser.add_argument("--out", type=Path, help="write the figures as JSON (and Markdown beside it)")
    args = parser.parse_args()

    options = SynthesisOptions(grid=args.grid, stride=args.stride, device=args.device)
    entries = bundled_generators(args.direction)
    t2, pd = make_phantom_pair(seed=0)
    source, target = (t2, pd) if args.direction == "t2-pd" else (pd, t2)

    def singles():
        for entry in entries:  # each loads its checkpoint, as compare_generators does
            synthesize(source, entry.path, options, target=target)
        score_voxelwise(bundled_mapping(args.direction).predict, source, target)

    def compared():
        return compare_generators(source, [entry.path for entry in entries], args.direction, options, target=target)

    single_s = min(timed(singles)[1] for _ in range(args.repeat))
    compare_s = min(timed(compared)[1] for _ in range(args.repeat))
    _, preprocess_s = timed(lambda: preprocess_volume(source, args.grid))
    _, mask_s = timed(lambda: head_mask(source.data))
    figures = {
        "generators": [entry.info.label for entry in entries], "grid": args.grid, "stride": args.stride,
        "device": args.device, "single_syntheses_s": round(single_s, 2), "compare_s": round(compare_s, 2),
        "compare_over_singles": round(compare_s / single_s, 3), "saved_s": round(single_s - compare_s, 2),
        "one_preprocessing_s": round(preprocess_s, 2), "one_head_mask_s": round(mask_s, 2),
    }
    n = len(entries)
    lines = [f"| {n} generators + mapping, {args.grid} grid, stride {args.stride}, {args.device} | seconds |",
             "|---|---|",
             f"| {n} `synthesize` + `score_voxelwise` (the peer) | {single_s:.2f} |",
             f"| `compare_generators` | {compare_s:.2f} |",
             f"| ratio (compare / singles) | {compare_s / single_s:.3f} |",
             f"| saved; one preprocessing, one head mask cost | {single_s - compare_s:.2f}; "
             f"{preprocess_s:.2f}, {mask_s:.2f} |"]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
