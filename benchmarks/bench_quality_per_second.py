"""Quality per second of the synthesis settings the dock's form offers.

For each setting (the native grid's one-pass preview; the native grid at strides 32 and 16; the
report grid at strides 16 and 8), on held-out phantom subjects at IXI's geometry (data-set seed 7,
which no bundled generator saw), with the bundled default generator of each direction: the
seconds of one :func:`~napari_medsynth.core.synthesis.pipeline.synthesize` (preprocessing, patches, back onto
the source grid, figures) and the source-grid PSNR, both as the mean over the subjects. Beside each,
the bundled intensity mapping through the same grid. The form's labels follow this table
(docs/performance.md, "Quality per second").

    .venv/bin/python benchmarks/bench_quality_per_second.py --subjects 3 \
        --out benchmarks/results/cpu_quality_per_second.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from napari_medsynth.core.networks.checkpoint import load_checkpoint
from napari_medsynth.core.preprocessing.preprocess import preprocess_volume
from napari_medsynth.core.simulation.phantom import make_phantom_pair, phantom_subject_seed
from napari_medsynth.core.synthesis.catalog import bundled_mapping, default_generator
from napari_medsynth.core.synthesis.options import SynthesisOptions
from napari_medsynth.core.synthesis.pipeline import synthesize, voxelwise_prediction

SETTINGS = (("native, one-pass preview", dict(grid="native", preview=True)),
            ("native, stride 32", dict(grid="native", stride=32)),
            ("native, stride 16", dict(grid="native", stride=16)),
            ("report, stride 16", dict(grid="report", stride=16)),
            ("report, stride 8 (the report's)", dict(grid="report", stride=8)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--directions", nargs="+", default=["t2-pd", "pd-t2"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write JSON here, and Markdown beside it")
    args = parser.parse_args(argv)
    subjects = [dict(zip(("T2", "PD"), make_phantom_pair(phantom_subject_seed(7, i)))) for i in range(args.subjects)]
    rows = []
    for direction in args.directions:
        entry = default_generator(direction)
        generator = load_checkpoint(entry.path, direction)
        info = generator[1]
        for name, changes in SETTINGS:
            options = SynthesisOptions(device=args.device, **changes)
            seconds, psnr, mapping = [], [], []
            for volumes in subjects:
                source, truth = volumes[info.source_contrast], volumes[info.target_contrast]
                start = time.perf_counter()
                result = synthesize(source, generator, options, target=truth)
                seconds.append(time.perf_counter() - start)
                psnr.append(result.metrics.source.psnr)
                prepared = preprocess_volume(source, options.grid)
                mapping.append(voxelwise_prediction(bundled_mapping(direction).predict, source, truth,
                                                    prepared=prepared)[1].source.psnr)
            rows.append({"direction": direction, "generator": info.label, "setting": name, "seconds": np.mean(seconds),
                         "psnr": np.mean(psnr), "psnr_std": np.std(psnr), "mapping_psnr": np.mean(mapping)})
            rows[-1]["margin"] = rows[-1]["psnr"] - rows[-1]["mapping_psnr"]
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    summary = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "torch": torch.__version__, "subjects": args.subjects, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2, default=float) + "\n")
        args.out.with_suffix(".md").write_text(markdown(summary) + "\n")
    print(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    lines = [f"Machine: {summary['machine']}; torch {summary['torch']}; {summary['subjects']} held-out phantom "
             "subjects at IXI's geometry (256x256x130), mean.", "",
             "| Direction | Generator | Setting | s | PSNR (dB), source grid | mapping, same grid | margin |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        lines.append(f"| {r['direction']} | {r['generator']} | {r['setting']} | {r['seconds']:.1f} | "
                     f"{r['psnr']:.2f} ({r['psnr_std']:.2f}) | {r['mapping_psnr']:.2f} | {r['margin']:+.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
