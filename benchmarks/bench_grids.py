"""Benchmark a whole synthesis on both grids: native (every slice) against the report's (one in three).

Times :func:`~napari_medsynth.core.synthesis.pipeline.synthesize` end to end, as a user waits for it
(preprocessing, the patch average, mapping back, the metrics and maps against the truth),
on the held-out phantom subject (the napari sample, ``make_phantom_pair(seed=0)``), for a
trained generator (``--checkpoint``) or seeded random ones (``--widths``), at each stride.
It reports seconds, patches, the native/report time ratio and the source-grid PSNR.

    .venv/bin/python benchmarks/bench_grids.py --checkpoint napari_medsynth/data/generators/t2-pd-G4.pt \
        --strides 16 8 --out benchmarks/results/cpu_grids_t2pd_G4.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from napari_medsynth import Generator, load_checkpoint
from napari_medsynth.core.choices import Grid
from napari_medsynth.core.networks.checkpoint import CheckpointInfo
from napari_medsynth.core.simulation.phantom import make_phantom_pair
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import synthesize


def generators(args):
    """``(name, generator, info)`` for the checkpoint or each width."""
    if args.checkpoint:
        generator, info = load_checkpoint(args.checkpoint)
        yield Path(args.checkpoint).name, generator, info
        return
    for width in args.widths:
        torch.manual_seed(0)
        generator = Generator(width=width).eval()
        info = CheckpointInfo("t2-pd", "G1", width, False, provenance={"target_intensity": {"mean": 0.0, "std": 1.0}})
        yield f"random width {width:g}", generator, info


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained generator (default: random ones of --widths)")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.125])
    parser.add_argument("--strides", type=int, nargs="+", default=[16, 8])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write JSON here, and Markdown beside it")
    args = parser.parse_args(argv)
    volumes = dict(zip(("T2", "PD"), make_phantom_pair(seed=0)))
    rows = []
    for name, generator, info in generators(args):
        source, truth = volumes[info.source_contrast], volumes[info.target_contrast]
        for stride in args.strides:
            timed = {}
            for grid in Grid:
                counted = []
                start = time.perf_counter()
                options = SynthesisOptions(grid=grid, stride=stride, device=args.device)
                result = synthesize(source, (generator, info), options, target=truth,
                                    progress=lambda done, total: counted.append(total))
                timed[grid] = (time.perf_counter() - start, counted[-1], result.metrics["source"].psnr)
            rows.append({"generator": name, "stride": stride,
                         **{f"{grid}_{key}": value for grid, values in timed.items()
                            for key, value in zip(("seconds", "patches", "psnr"), values)}})
            rows[-1]["ratio"] = rows[-1]["native_seconds"] / rows[-1]["report_seconds"]
            print(rows[-1], flush=True)
    summary = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "torch": torch.__version__, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(summary) + "\n")
    print(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    lines = [f"Machine: {summary['machine']}; torch {summary['torch']}.", "",
             "| Generator | Stride | Report grid: s | patches | PSNR "
             "| Native grid: s | patches | PSNR | native/report |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        lines.append(f"| {r['generator']} | {r['stride']} | {r['report_seconds']:.1f} | {r['report_patches']} | "
                     f"{r['report_psnr']:.2f} | {r['native_seconds']:.1f} | {r['native_patches']} | "
                     f"{r['native_psnr']:.2f} | {r['ratio']:.2f}x |")
    lines.append("\nPSNR: source grid, whole volume (dB), against the phantom's ground truth.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
